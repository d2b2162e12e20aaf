"""JointEnvRunner: joint rows from several envs, exploration, metrics with RLlib's keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from maddpg_helpers import ScriptedEnv, small_config

from ray_maddpg.maddpg import MADDPGConfig
from ray_maddpg.maddpg.env_runner import JointEnvRunner, exploration_sigma


def _scripted_runner(num_envs: int = 3) -> JointEnvRunner:
    config = MADDPGConfig().environment(ScriptedEnv, env_config={"max_cycles": 4})
    return JointEnvRunner(
        config=config.env_runners(num_envs_per_env_runner=num_envs, rollout_fragment_length=6)
    )


def test_each_row_holds_every_agents_data_from_the_same_env_step():
    data = _scripted_runner().sample()
    steps = [o[:, 0] for o in data.obs]
    assert all(np.array_equal(steps[0], s) for s in steps)
    assert all(np.array_equal(steps[0] + 1, o[:, 0]) for o in data.next_obs)
    # Rewards encode the step after the action: obs step + 1, for every agent.
    assert np.array_equal(data.rewards, np.repeat((steps[0] + 1)[:, None], 3, axis=1))


def test_agents_come_in_sorted_order_with_their_own_widths():
    runner = _scripted_runner()
    data = runner.sample()
    assert runner.agents == ["alpha_0", "alpha_1", "zeta_0"]
    assert [o.shape[1] for o in data.obs] == [3, 3, 4]
    assert [o[0, 1] for o in data.obs] == [0, 1, 2]


def test_several_envs_step_in_one_sample_and_truncate_at_max_cycles():
    data = _scripted_runner(num_envs=3).sample()
    assert len(data) == 6 * 3
    # Episodes of 4 steps: the 4th step of each env is truncated, never terminated.
    assert data.truncated.sum() == 3 and not data.terminated.any()


def test_discrete_actions_are_one_hot_and_greedy_without_exploration():
    runner = JointEnvRunner(config=small_config())
    explore = runner.sample(explore=True)
    assert all(np.array_equal(a.sum(axis=1), np.ones(len(a))) for a in explore.actions)
    greedy = runner.sample(explore=False)
    for obs, actions, aid in zip(greedy.obs, greedy.actions, runner.agents, strict=True):
        logits = runner.module[aid].actor(torch.from_numpy(obs)).detach().numpy()
        assert np.array_equal(actions.argmax(1), logits.argmax(1))


def test_continuous_actions_stay_in_minus_one_to_one():
    runner = JointEnvRunner(
        config=small_config(env_options={"continuous_actions": True}, exploration_noise=0.5)
    )
    actions = np.concatenate(runner.sample().actions)
    assert actions.min() >= -1.0 and actions.max() <= 1.0 and actions.min() < 0.0


def test_exploration_noise_anneals_linearly():
    config = small_config(exploration_noise=0.4, exploration_noise_final=0.1, exploration_anneal_steps=1000)
    assert [exploration_sigma(config, s) for s in (0, 500, 1000, 5000)] == pytest.approx(
        [0.4, 0.25, 0.1, 0.1]
    )


def test_metrics_use_rllibs_standard_keys():
    runner = JointEnvRunner(config=small_config())
    runner.sample(num_timesteps=100)
    metrics = runner.get_metrics()
    assert metrics["num_env_steps_sampled_lifetime"].peek() == 100
    assert metrics["episode_len_mean"].peek() == 25
    assert set(metrics["agent_episode_returns_mean"]) == {"agent_0", "agent_1", "agent_2"}
    assert "episode_return_mean" in metrics


def test_weights_from_the_learner_reach_the_batched_actors():
    runner = JointEnvRunner(config=small_config())
    state = runner.get_state(components="rl_module")
    for weights in state["rl_module"].values():
        for name in weights:
            weights[name] = weights[name] * 0.0
    runner.set_state(state)
    obs = [np.ones((2, 18), np.float32)] * 3
    assert all(
        np.array_equal(out.numpy(), np.zeros((2, 5)))
        for out in runner._actors([torch.from_numpy(o) for o in obs])
    )
