"""The MADDPG Algorithm on a local Ray: schedule, remote runners, checkpoints, load_policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from maddpg_helpers import small_config

from ray_maddpg.envs.mpe import make_env
from ray_maddpg.errors import ConfigError
from ray_maddpg.maddpg import MADDPG, load_policy

pytestmark = pytest.mark.e2e


@pytest.fixture
def algo(local_ray, request):
    algorithms = []

    def build(config):
        algorithms.append(config.build_algo())
        return algorithms[-1]

    yield build
    for a in algorithms:
        a.stop()


def test_updates_follow_the_configured_replay_ratio_exactly(algo):
    a = algo(small_config(num_steps_sampled_before_learning_starts=150, env_steps_per_update=30))
    for _ in range(3):
        result = a.train()
    steps = result["env_runners"]["num_env_steps_sampled_lifetime"]
    assert steps == 3 * 100
    assert result["num_learner_updates_lifetime"] == (steps - 150) // 30
    assert result["updates_per_env_step"] == pytest.approx(((steps - 150) // 30) / (steps - 150))


def test_no_update_happens_before_learning_starts(algo):
    a = algo(small_config(num_steps_sampled_before_learning_starts=10_000))
    result = a.train()
    assert result["num_learner_updates_lifetime"] == 0


def test_a_remote_env_runner_with_several_envs_trains_and_reports_episodes(algo):
    config = small_config("simple_adversary").env_runners(num_env_runners=1, num_envs_per_env_runner=3)
    a = algo(config)
    results = [a.train() for _ in range(4)]
    runners = results[-1]["env_runners"]
    # The first call waits for its own sample; later ones receive the sample launched before.
    assert runners["num_env_steps_sampled_lifetime"] == 4 * 50 * 3
    assert set(runners["agent_episode_returns_mean"]) == {"adversary_0", "agent_0", "agent_1"}
    assert results[-1]["num_learner_updates_lifetime"] > 0
    assert "actor_loss" in results[-1]["learners"]["adversary_0"]


def test_maddpg_trains_with_the_batched_backend(algo):
    a = algo(small_config(env_options={"backend": "batched"}).env_runners(num_envs_per_env_runner=16))
    results = [a.train() for _ in range(3)]
    assert results[-1]["env_runners"]["num_env_steps_sampled_lifetime"] == 3 * 50 * 16
    assert results[-1]["num_learner_updates_lifetime"] > 0
    assert "actor_loss" in results[-1]["learners"]["agent_0"]
    assert np.isfinite(results[-1]["env_runners"]["episode_return_mean"])


def _module_state(a):
    return a.learner_group.get_state()["learner"]["rl_module"]


def test_checkpoint_round_trip_restores_weights_optimizers_and_counters(algo, tmp_path):
    a = algo(small_config(store_buffer_in_checkpoints=True))
    for _ in range(3):
        a.train()
    path = a.save_to_path(tmp_path / "ckpt")
    restored = algo(small_config(store_buffer_in_checkpoints=True))
    restored.restore_from_path(path)
    for mid, weights in _module_state(a).items():
        for name, value in weights.items():
            np.testing.assert_array_equal(value, _module_state(restored)[mid][name])
    optim = a.learner_group.get_state()["learner"]["optimizer"]
    optim_restored = restored.learner_group.get_state()["learner"]["optimizer"]
    assert optim.keys() == optim_restored.keys()
    for name in ("agent_0_actor", "agent_2_critic"):
        saved, loaded = optim[name]["state"]["state"][0], optim_restored[name]["state"]["state"][0]
        assert saved["step"] == loaded["step"] > 0
        np.testing.assert_array_equal(saved["exp_avg"], loaded["exp_avg"])
    assert (restored._env_steps, restored._num_updates) == (a._env_steps, a._num_updates)
    assert len(restored.replay_buffer) == len(a.replay_buffer)
    result = restored.train()
    assert result["num_learner_updates_lifetime"] > a._num_updates


def test_from_checkpoint_continues_the_run(algo, tmp_path):
    a = algo(small_config())
    a.train()
    a.train()
    path = a.save_to_path(tmp_path / "ckpt")
    restored = MADDPG.from_checkpoint(path)
    try:
        assert restored._env_steps == 200
        result = restored.train()
        assert result["num_learner_updates_lifetime"] > a._num_updates
    finally:
        restored.stop()

    policy = load_policy(path)
    assert policy.scenario == "simple_spread" and policy.env_config["max_cycles"] == 25
    assert policy.agent_ids == ["agent_0", "agent_1", "agent_2"]
    env = make_env("simple_spread", max_cycles=25)
    obs, _ = env.reset(seed=0)
    actions = policy.act(obs)
    assert all(isinstance(v, int) for v in actions.values())
    actor = a.learner_group._learner.module["agent_0"].unwrapped().actor
    expected = int(actor(torch.as_tensor(obs["agent_0"])[None]).argmax())
    assert actions["agent_0"] == expected
    env.step(actions)

    # Sampled as in training: a Gumbel-max draw, the same for the same seed.
    def sampled_actions(seed: int) -> list[int]:
        policy = load_policy(path, sampled=True, seed=seed)
        return [policy.act(obs)["agent_0"] for _ in range(50)]

    assert sampled_actions(0) == sampled_actions(0)
    assert len(set(sampled_actions(0))) > 1


def test_load_policy_rejects_a_missing_path(tmp_path):
    with pytest.raises(ConfigError, match="is not a directory") as err:
        load_policy(tmp_path / "nope")
    assert err.value.problems[0][0] == "checkpoint"


def test_load_policy_rejects_a_directory_that_is_not_a_maddpg_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="not a MADDPG checkpoint"):
        load_policy(tmp_path)
