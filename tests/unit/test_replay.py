"""JointReplayBuffer: rows keep every agent's data of one env step together, through wrap-around."""

import numpy as np
import pytest

from ray_maddpg.maddpg.batch import JointBatch
from ray_maddpg.maddpg.replay import JointReplayBuffer

OBS_DIMS, ACT_DIMS = [3, 4], [2, 5]  # heterogeneous agents
NUM_ENVS, EPISODE_LEN, TERMINATE_ENV, TERMINATE_STEP = 3, 5, 2, 3


def scripted_obs(env, step, agent):
    """Agent ``agent``'s observation at ``step`` of env ``env``: [step, agent, env, ...]."""
    return np.array([step, agent, env, *[0.0] * (OBS_DIMS[agent] - 3)], np.float32)


def scripted_rollout(buffer, num_steps):
    """Step NUM_ENVS scripted envs in lockstep; every step adds one row per env.

    Env TERMINATE_ENV terminates at step TERMINATE_STEP; all envs truncate at EPISODE_LEN.
    Actions and rewards encode (step, agent) too.
    """
    steps = np.zeros(NUM_ENVS, int)
    for _ in range(num_steps):
        t = steps.copy()
        terminated = (np.arange(NUM_ENVS) == TERMINATE_ENV) & (t + 1 == TERMINATE_STEP)
        truncated = ~terminated & (t + 1 == EPISODE_LEN)
        obs = [np.stack([scripted_obs(e, t[e], i) for e in range(NUM_ENVS)]) for i in range(2)]
        next_obs = [np.stack([scripted_obs(e, t[e] + 1, i) for e in range(NUM_ENVS)]) for i in range(2)]
        actions = [
            np.tile(np.arange(d, dtype=np.float32), (NUM_ENVS, 1)) + 100 * t[:, None] + 10 * i
            for i, d in enumerate(ACT_DIMS)
        ]
        rewards = np.stack([t * 10.0 + i for i in range(2)], axis=1)
        buffer.add(JointBatch(obs, actions, rewards, next_obs, terminated, truncated))
        steps = np.where(terminated | truncated, 0, t + 1)


@pytest.fixture
def wrapped_buffer():
    """A buffer of 16 rows that has seen 8 steps x 3 envs = 24 rows, so it wrapped around."""
    buffer = JointReplayBuffer(16, OBS_DIMS, ACT_DIMS, seed=0)
    scripted_rollout(buffer, 8)
    return buffer


def test_sampled_rows_hold_every_agents_data_from_the_same_env_step(wrapped_buffer):
    batch = wrapped_buffer.sample(256)
    obs_0, obs_1 = batch.obs
    assert np.array_equal(obs_0[:, 0], obs_1[:, 0])  # same step
    assert np.array_equal(obs_0[:, 2], obs_1[:, 2])  # same env
    assert np.all(obs_0[:, 1] == 0) and np.all(obs_1[:, 1] == 1)  # agent columns not swapped


def test_sampled_actions_belong_to_the_sampled_step_and_agent(wrapped_buffer):
    batch = wrapped_buffer.sample(256)
    step = batch.obs[0][:, 0]
    for i, (action, dim) in enumerate(zip(batch.actions, ACT_DIMS, strict=True)):
        assert action.shape == (256, dim)
        assert np.array_equal(action, np.arange(dim) + 100 * step[:, None] + 10 * i)


def test_sampled_next_obs_is_the_observation_one_step_later(wrapped_buffer):
    batch = wrapped_buffer.sample(256)
    for obs, next_obs in zip(batch.obs, batch.next_obs, strict=True):
        assert np.array_equal(next_obs[:, 0], obs[:, 0] + 1)
        assert np.array_equal(next_obs[:, 1:3], obs[:, 1:3])


def test_sampled_rewards_belong_to_the_sampled_step(wrapped_buffer):
    batch = wrapped_buffer.sample(256)
    step = batch.obs[0][:, 0]
    assert np.array_equal(batch.rewards, np.stack([step * 10, step * 10 + 1], axis=1))


def test_sampled_dones_belong_to_the_sampled_step(wrapped_buffer):
    batch = wrapped_buffer.sample(512)
    step, env = batch.obs[0][:, 0], batch.obs[0][:, 2]
    expected_terminated = (env == TERMINATE_ENV) & (step + 1 == TERMINATE_STEP)
    expected_truncated = ~expected_terminated & (step + 1 == EPISODE_LEN)
    assert np.array_equal(batch.terminated, np.stack([expected_terminated] * 2, axis=1))
    assert np.array_equal(batch.truncated, np.stack([expected_truncated] * 2, axis=1))
    assert batch.terminated.any() and batch.truncated.any()


def test_full_buffer_keeps_only_the_newest_rows():
    buffer = JointReplayBuffer(7, OBS_DIMS, ACT_DIMS)
    scripted_rollout(buffer, 4)  # 12 rows into 7
    assert len(buffer) == 7
    kept = buffer.get_state()["obs"]
    # Rows 5..11 survive: step 1 of env 2, step 2 of every env, then step 3 (env 2 restarted at 0).
    assert kept[:, 0].tolist() == [1, 2, 2, 2, 3, 3, 0]
    assert kept[:, 2].tolist() == [2, 0, 1, 2, 0, 1, 2]


def test_add_wraps_around_the_end_of_the_storage_in_one_call():
    buffer = JointReplayBuffer(5, [1], [1])
    for start, stop in ((0, 3), (3, 7)):
        zeros = np.zeros((stop - start, 1))
        buffer.add(
            JointBatch(
                [np.arange(start, stop, dtype=float)[:, None]],
                [zeros],
                zeros,
                [zeros],
                zeros[:, 0],
                zeros[:, 0],
            )
        )
    assert buffer.get_state()["obs"][:, 0].tolist() == [2, 3, 4, 5, 6]


def test_get_state_holds_only_the_filled_rows():
    buffer = JointReplayBuffer(1000, OBS_DIMS, ACT_DIMS)
    scripted_rollout(buffer, 2)
    assert buffer.get_state()["obs"].shape == (6, sum(OBS_DIMS))


def test_set_state_restores_contents_and_sampling(wrapped_buffer):
    restored = JointReplayBuffer(16, OBS_DIMS, ACT_DIMS, seed=123)
    restored.set_state(wrapped_buffer.get_state())
    assert len(restored) == len(wrapped_buffer)
    original, copy = wrapped_buffer.sample(64), restored.sample(64)
    for key in ("rewards", "terminated", "truncated"):
        assert np.array_equal(getattr(original, key), getattr(copy, key))
    for key in ("obs", "next_obs", "actions"):
        pairs = zip(getattr(original, key), getattr(copy, key), strict=True)
        assert all(np.array_equal(a, b) for a, b in pairs)


def test_set_state_into_a_smaller_buffer_keeps_the_newest_rows(wrapped_buffer):
    small = JointReplayBuffer(4, OBS_DIMS, ACT_DIMS)
    small.set_state(wrapped_buffer.get_state())
    assert np.array_equal(small.get_state()["obs"], wrapped_buffer.get_state()["obs"][-4:])


def test_set_state_rejects_a_buffer_of_other_agents(wrapped_buffer):
    with pytest.raises(ValueError, match="obs_dims"):
        JointReplayBuffer(16, [3, 3], ACT_DIMS).set_state(wrapped_buffer.get_state())


def test_add_names_the_array_with_the_wrong_shape():
    buffer = JointReplayBuffer(4, OBS_DIMS, ACT_DIMS)
    obs = [np.zeros((2, 3)), np.zeros((2, 5))]  # agent 1 should have 4 columns
    actions = [np.zeros((2, d)) for d in ACT_DIMS]
    with pytest.raises(ValueError, match=r"obs\[1\] must be \(B, 4\)"):
        buffer.add(JointBatch(obs, actions, np.zeros((2, 2)), obs, np.zeros(2), np.zeros(2)))
    assert len(buffer) == 0


def test_add_rejects_rewards_without_one_column_per_agent():
    buffer = JointReplayBuffer(4, OBS_DIMS, ACT_DIMS)
    obs = [np.zeros((2, d)) for d in OBS_DIMS]
    actions = [np.zeros((2, d)) for d in ACT_DIMS]
    with pytest.raises(ValueError, match=r"rewards must be \(2, 2\)"):
        buffer.add(JointBatch(obs, actions, np.zeros(2), obs, np.zeros(2), np.zeros(2)))


def test_sampling_an_empty_buffer_raises():
    with pytest.raises(ValueError, match="empty"):
        JointReplayBuffer(4, OBS_DIMS, ACT_DIMS).sample(1)


def test_nbytes_follows_the_documented_per_row_formula():
    buffer = JointReplayBuffer(1000, [18] * 3, [5] * 3)
    assert buffer.nbytes == 1000 * (4 * (2 * 54 + 15 + 3) + 2 * 3)


def test_a_sample_as_torch_holds_the_same_rows(wrapped_buffer):
    torch = pytest.importorskip("torch")
    as_numpy = wrapped_buffer.sample(32, rng=np.random.default_rng(7))
    as_torch = as_numpy.to_torch()
    assert len(as_torch) == 32
    assert torch.equal(as_torch.rewards, torch.from_numpy(as_numpy.rewards))
    assert all(torch.equal(t, torch.from_numpy(n)) for t, n in zip(as_torch.obs, as_numpy.obs, strict=True))
