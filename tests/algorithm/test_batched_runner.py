"""JointEnvRunner with ``env.backend: batched``: rows, actions in mpe2's units, metrics, seeds.

Training with it runs in test_algorithm.py, on that module's Ray.
"""

from __future__ import annotations

import numpy as np
import pytest
from maddpg_helpers import small_config

from ray_maddpg.errors import ConfigError
from ray_maddpg.experiment.evaluate import run_episodes
from ray_maddpg.maddpg.env_runner import JointEnvRunner

NUM_ENVS, STEPS, MAX_CYCLES = 4, 60, 25


def batched_runner(
    scenario: str = "simple_spread", env_options: dict | None = None, seed: int = 0, **training
) -> JointEnvRunner:
    config = small_config(scenario, {"backend": "batched", **(env_options or {})}, **training)
    config = config.env_runners(num_envs_per_env_runner=NUM_ENVS, rollout_fragment_length=STEPS)
    return JointEnvRunner(config=config.debugging(seed=seed))


def per_env(rows: np.ndarray) -> np.ndarray:
    """(T, ...) rows, step-major, as (steps, envs, ...)."""
    return rows.reshape(-1, NUM_ENVS, *rows.shape[1:])


def test_each_rows_next_obs_is_the_next_rows_obs_of_the_same_env_until_its_episode_ends():
    runner = batched_runner()
    first, second = runner.sample(), runner.sample()
    truncated = per_env(first.truncated)
    assert not first.terminated.any()
    # Episodes of max_cycles steps, all envs in step: truncated exactly at steps 24 and 49.
    assert np.array_equal(np.flatnonzero(truncated.all(axis=1)), [24, 49])
    assert truncated.sum() == 2 * NUM_ENVS
    for obs, next_obs, later in zip(first.obs, first.next_obs, second.obs, strict=True):
        obs, next_obs = per_env(obs), per_env(next_obs)
        continues = ~truncated[:-1]
        assert np.array_equal(next_obs[:-1][continues], obs[1:][continues])
        # At a truncation the next row starts a new episode (reset_done), not the true next obs.
        assert not np.array_equal(next_obs[:-1][~continues], obs[1:][~continues])
        # The next sample picks up where this one stopped.
        assert np.array_equal(next_obs[-1], per_env(later)[0])


@pytest.mark.parametrize(
    ("env_options", "relaxation"),
    [({}, None), ({"continuous_actions": True}, None), ({"continuous_actions": True}, "simplex")],
    ids=["straight_through", "tanh", "simplex"],
)
def test_the_env_receives_the_stored_actions_in_mpe2_units(env_options, relaxation):
    runner = batched_runner("simple", env_options, action_relaxation=relaxation, exploration_noise=0.5)
    rule = runner._rules[0]
    data = runner.sample()
    (actions,), (obs,), (next_obs,) = data.actions, data.obs, data.next_obs
    if rule.one_hot:
        assert set(np.unique(actions)) == {0.0, 1.0} and np.array_equal(actions.sum(1), np.ones(len(actions)))
    elif rule.kind == "simplex":
        assert actions.min() >= 0.0 and np.allclose(actions.sum(1), 1.0) and actions.max() < 1.0
    else:
        assert actions.min() >= -1.0 and actions.max() <= 1.0 and actions.min() < 0.0
    # simple: obs starts with the agent's velocity, and mpe2 gives v' = 0.75 v + 0.5 u with
    # u = (m[2] - m[1], m[4] - m[3]) for the action m in mpe2's units (one-hot or [0, 1]).
    mpe_units = (actions + 1.0) / 2.0 if rule.kind == "tanh" else actions
    force = np.stack([mpe_units[:, 2] - mpe_units[:, 1], mpe_units[:, 4] - mpe_units[:, 3]], axis=1)
    np.testing.assert_allclose(next_obs[:, :2], 0.75 * obs[:, :2] + 0.5 * force, atol=1e-5)


def test_metrics_report_every_finished_episode_with_rllibs_keys():
    runner = batched_runner()
    data = runner.sample(num_timesteps=NUM_ENVS * 2 * MAX_CYCLES)
    metrics = runner.get_metrics()
    # Two whole episodes per env: (episode, step, env, agent) -> each episode's agent returns.
    returns = data.rewards.reshape(2, MAX_CYCLES, NUM_ENVS, 3).sum(axis=1).reshape(-1, 3)
    assert metrics["num_episodes"].peek() == 2 * NUM_ENVS
    assert metrics["num_env_steps_sampled_lifetime"].peek() == 2 * MAX_CYCLES * NUM_ENVS
    assert metrics["episode_len_mean"].peek() == MAX_CYCLES
    assert metrics["episode_return_mean"].peek() == pytest.approx(returns.sum(1).mean(), rel=1e-5)
    assert metrics["episode_return_min"].peek() == pytest.approx(returns.sum(1).min(), rel=1e-5)
    agent_means = {aid: stats.peek() for aid, stats in metrics["agent_episode_returns_mean"].items()}
    assert agent_means == pytest.approx(dict(zip(runner.agents, returns.mean(0), strict=True)), rel=1e-5)


def test_the_runners_seed_makes_its_rows_reproducible():
    first, again, other = (batched_runner(seed=seed).sample() for seed in (0, 0, 1))
    for key in ("obs", "actions"):
        assert all(
            np.array_equal(a, b) for a, b in zip(getattr(first, key), getattr(again, key), strict=True)
        )
    assert not np.array_equal(first.obs[0], other.obs[0])


def test_env_compile_samples_the_rows_the_eager_step_samples():
    eager, compiled = (batched_runner(env_options={"compile": c}).sample() for c in (False, True))
    assert isinstance(compiled.obs[0], np.ndarray)
    # Exploration draws do not depend on the step, so the rows match up to the compiled rounding.
    for key in ("obs", "actions", "next_obs"):
        for e, c in zip(getattr(eager, key), getattr(compiled, key), strict=True):
            np.testing.assert_allclose(c, e, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(compiled.rewards, eager.rewards, rtol=1e-5, atol=1e-5)
    assert np.array_equal(compiled.truncated, eager.truncated)


def test_an_unknown_backend_is_a_config_error_naming_env_backend_and_the_allowed_values():
    with pytest.raises(ConfigError) as err:
        batched_runner(env_options={"backend": "gpu"})
    message = dict(err.value.problems)["env.backend"]
    assert "mpe2" in message and "batched" in message and "'gpu'" in message


class StandStill:
    """A policy from a run trained with the batched backend: it always takes the no-op."""

    agent_ids = ["agent_0"]
    env_config = {"scenario": "simple", "backend": "batched", "max_cycles": 3}

    def act(self, obs):
        return dict.fromkeys(obs, 0)


def test_evaluation_and_rendering_step_mpe2_whatever_backend_trained_the_policy():
    report = run_episodes(StandStill(), episodes=1, render=True)
    assert len(report.frames) == 1 + 3 and report.frames[0].ndim == 3
