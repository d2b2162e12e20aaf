"""One kind of action vector everywhere: executed, stored, in the TD target and in the actor loss.

For each ``action_relaxation`` the env runner's stored actions and the actions the critics are
queried at during an update are recorded on ``simple`` (one agent, critic input [obs(4), action(5)]).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from maddpg_helpers import built_learner, joint_batch, small_config

from ray_maddpg.errors import ConfigError
from ray_maddpg.maddpg.env_runner import JointEnvRunner
from ray_maddpg.maddpg.torch.maddpg_torch_learner import NUM_UPDATES

OBS_DIM = 4


def _one_hot(actions: np.ndarray) -> bool:
    return bool(np.all(np.isin(actions, (0.0, 1.0))) and np.all(actions.sum(-1) == 1.0))


def _interior_simplex(actions: np.ndarray) -> bool:
    return bool(np.allclose(actions.sum(-1), 1.0, atol=1e-5) and np.all(actions > 0) and np.all(actions < 1))


def _kind(actions: np.ndarray) -> str:
    return "one_hot" if _one_hot(actions) else "simplex" if _interior_simplex(actions) else "other"


def _critic_action_inputs(config) -> dict[str, np.ndarray]:
    """The action columns the target critic and the critic saw in one update (the critic is
    called first for the TD loss, then for the actor loss). The per-module update calls the
    networks themselves; the fused update is the same math (test_fused_learner_equivalence)."""
    config = config.copy(copy_frozen=False).training(fused_update=False)
    learner, batch = built_learner(config), joint_batch(config, steps=100, rows=64)
    module = learner.module["agent_0"].unwrapped()
    seen: dict[str, list[np.ndarray]] = {"target": [], "critic": []}

    def recorder(name):
        return lambda _mod, args: seen[name].append(args[0][:, OBS_DIM:].detach().numpy().copy())

    module.target_critic.q_nets[0].register_forward_pre_hook(recorder("target"))
    module.critic.q_nets[0].register_forward_pre_hook(recorder("critic"))
    learner.update(batch=batch, timesteps={"num_env_steps_sampled_lifetime": 0, NUM_UPDATES: 0})
    # The actor loss queries the critic once, or once per own one-hot action ('expected').
    (target,), (_stored, *actor_loss) = seen["target"], seen["critic"]
    return {"target": target, "actor_loss": np.concatenate(actor_loss)}


def _stored_actions(config) -> np.ndarray:
    runner = JointEnvRunner(config=config)
    return runner.sample(num_timesteps=50).actions[0]


@pytest.mark.parametrize(
    ("relaxation", "continuous", "expected"),
    [
        (None, False, dict(stored="one_hot", target="one_hot", actor_loss="one_hot")),
        ("expected", False, dict(stored="one_hot", target="one_hot", actor_loss="one_hot")),
        ("straight_through", False, dict(stored="one_hot", target="one_hot", actor_loss="one_hot")),
        ("simplex", True, dict(stored="simplex", target="simplex", actor_loss="simplex")),
        ("mixed", False, dict(stored="one_hot", target="simplex", actor_loss="simplex")),
    ],
)
def test_each_relaxation_uses_its_kind_of_action_vector_everywhere(relaxation, continuous, expected):
    config = small_config(
        "simple", env_options={"continuous_actions": continuous}, action_relaxation=relaxation
    )
    seen = {"stored": _stored_actions(config), **_critic_action_inputs(config)}
    assert {name: _kind(actions) for name, actions in seen.items()} == expected


def test_simplex_actions_reach_mpe2_as_the_same_soft_vector():
    config = small_config("simple", env_options={"continuous_actions": True}, action_relaxation="simplex")
    runner = JointEnvRunner(config=config)
    sent = []
    env = runner.env[0]
    original = env._to_mpe_action
    env._to_mpe_action = lambda action: sent.append(original(action)) or sent[-1]
    stored = runner.sample(num_timesteps=runner.num_envs * 3).actions[0]
    # Rows are (step, env); env 0 holds rows 0, num_envs, 2 * num_envs.
    np.testing.assert_allclose(np.stack(sent), stored[:: runner.num_envs], atol=1e-6)


@pytest.mark.parametrize(
    ("relaxation", "continuous", "field_message"),
    [
        ("simplex", False, "set env.continuous_actions: true"),
        ("straight_through", True, "needs discrete actions"),
        ("expected", True, "needs discrete actions"),
    ],
)
def test_a_relaxation_that_does_not_fit_the_env_actions_is_a_clear_error(
    relaxation, continuous, field_message
):
    config = small_config(
        "simple", env_options={"continuous_actions": continuous}, action_relaxation=relaxation
    )
    with pytest.raises(ConfigError, match="algorithm.action_relaxation") as error:
        config.get_multi_rl_module_spec()
    assert field_message in str(error.value)


def test_an_unknown_relaxation_is_refused_by_validate():
    config = small_config("simple", action_relaxation="soft")
    with pytest.raises(
        ConfigError, match="algorithm.action_relaxation.*expected, straight_through, simplex, mixed"
    ):
        config.validate()


def _by_hand(config, batch, sequential: bool) -> dict[str, list[torch.Tensor]]:
    """One MADDPG update of a single agent with continuous actions, written out in plain torch:
    the reference update (openai/maddpg's order when ``sequential``)."""
    learner = built_learner(config)
    module = learner.module["agent_0"].unwrapped()
    b = {k: torch.as_tensor(np.asarray(v))[:, 0] for k, v in batch.policy_batches["agent_0"].items()}
    actor_opt = torch.optim.Adam(module.actor.parameters(), lr=config.actor_lr)
    critic_opt = torch.optim.Adam(module.critic.parameters(), lr=config.critic_lr)

    def critic_step():
        with torch.no_grad():
            next_q = module.target_critic(
                torch.cat([b["new_obs"], torch.tanh(module.target_actor(b["new_obs"]))], -1)
            )[0]
            y = b["rewards"] + config.gamma * (1 - b["terminateds"]) * next_q
        loss = ((module.critic(torch.cat([b["obs"], b["actions"]], -1))[0] - y) ** 2).mean()
        critic_opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.critic.parameters(), config.grad_clip)

    def actor_grads():
        out = module.actor(b["obs"])
        q = module.critic(torch.cat([b["obs"], torch.tanh(out)], -1))[0]
        loss = -q.mean() + config.actor_logit_penalty * out.pow(2).mean()
        grads = torch.autograd.grad(loss, list(module.actor.parameters()))
        total = torch.cat([g.flatten() for g in grads]).norm()
        scale = min(1.0, config.grad_clip / (total.item() + 1e-6))
        return [g * scale for g in grads]

    if sequential:
        critic_step()
        critic_opt.step()
        grads = actor_grads()
    else:
        grads = actor_grads()
        critic_step()
        critic_opt.step()
    for p, g in zip(module.actor.parameters(), grads, strict=True):
        p.grad = g
    actor_opt.step()
    return {"actor": list(module.actor.parameters()), "critic": list(module.critic.parameters())}


@pytest.mark.parametrize("sequential", [True, False], ids=["sequential", "simultaneous"])
def test_an_update_equals_the_reference_update_written_by_hand(sequential):
    config = small_config("simple", env_options={"continuous_actions": True}, sequential_update=sequential)
    batch = joint_batch(config, steps=100, rows=64)
    torch.manual_seed(0)
    expected = _by_hand(config, batch, sequential)
    torch.manual_seed(0)
    learner = built_learner(config)
    learner.update(batch=batch, timesteps={"num_env_steps_sampled_lifetime": 0, NUM_UPDATES: 0})
    module = learner.module["agent_0"].unwrapped()
    for name, net in (("actor", module.actor), ("critic", module.critic)):
        for got, want in zip(net.parameters(), expected[name], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
