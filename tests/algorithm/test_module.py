"""The RLModules: one per agent (or per sharing team), sized from the env's agents."""

from __future__ import annotations

import torch
from maddpg_helpers import ScriptedEnv, built_learner, joint_batch, small_config

from ray_maddpg.maddpg import MADDPGConfig, core


def _modules(config, inference_only=False):
    return config.get_multi_rl_module_spec(inference_only=inference_only).build()


def test_heterogeneous_agents_in_simple_adversary_get_their_own_sizes():
    module = _modules(small_config("simple_adversary"))
    assert list(module.keys()) == ["adversary_0", "agent_0", "agent_1"]
    assert module["adversary_0"].actor[0].in_features == 8
    assert module["agent_0"].actor[0].in_features == 10
    # Centralized critic: every observation (8 + 10 + 10) and every action (3 x 5).
    assert module["adversary_0"].critic.q_nets[0][0].in_features == 28 + 15


def test_local_critic_sees_only_the_agents_own_observation_and_action():
    module = _modules(small_config("simple_adversary", critic={"adversary": "local", "agent": "centralized"}))
    assert module["adversary_0"].critic.q_nets[0][0].in_features == 8 + 5
    assert module["agent_1"].critic.q_nets[0][0].in_features == 28 + 15


def test_twin_q_builds_two_critics_and_their_targets():
    module = _modules(small_config(twin_q=True))["agent_0"]
    assert len(module.critic.q_nets) == 2 and len(module.target_critic.q_nets) == 2


def test_a_sharing_team_gets_one_module_whose_critic_knows_which_agent_it_scores():
    module = _modules(small_config(share_parameters=True))
    assert list(module.keys()) == ["agent"]
    assert module["agent"].agents == ["agent_0", "agent_1", "agent_2"]
    assert module["agent"].critic.q_nets[0][0].in_features == 3 * (18 + 5) + 3


def test_env_runner_modules_hold_only_the_actor():
    module = _modules(small_config(), inference_only=True)["agent_0"]
    assert not any(name.startswith(("critic", "target")) for name in module.state_dict())


def test_critic_input_is_in_sorted_agent_order_whatever_order_the_env_lists():
    config = MADDPGConfig().environment(ScriptedEnv).training(train_batch_size_per_learner=8)
    learner = built_learner(config)
    module = learner.module["zeta_0"].unwrapped()
    assert module.all_agents == ["alpha_0", "alpha_1", "zeta_0"]
    batch = learner._convert_batch_type(joint_batch(config, steps=8)).policy_batches
    obs = {aid: batch[aid]["obs"][:, 0] for aid in batch}
    actions = {aid: batch[aid]["actions"][:, 0] for aid in batch}
    x = core.critic_input(module, 0, obs, actions)
    # Each agent's observation carries its sorted position in slot 1: 0, 1, 2 in order.
    positions = x[:, [1, 3 + 1, 6 + 1]]
    assert torch.equal(positions, torch.tensor([[0.0, 1.0, 2.0]]).expand_as(positions))
