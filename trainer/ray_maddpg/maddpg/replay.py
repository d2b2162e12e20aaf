"""A joint replay buffer for MADDPG (numpy, no Ray): one row is one env step of every agent.

RLlib's ``MultiAgentEpisodeReplayBuffer`` samples each agent's rows independently, so a sampled
batch mixes timesteps across agents; a centralized critic needs o_1..o_N, a_1..a_N of the same
step. Here every row holds all agents' data, so one index gathers a consistent joint transition.

Layout (agents in sorted order, ``offsets`` split the columns per agent):

    obs, next_obs   (capacity, sum(obs_dims))  float32
    actions         (capacity, sum(act_dims))  float32  (one-hot for discrete, [-1, 1] for continuous)
    rewards         (capacity, N)              float32
    terminated      (capacity, N)              bool
    truncated       (capacity, N)              bool

Memory per row = 4 * (2 * sum(obs_dims) + sum(act_dims) + N) + 2 * N bytes. simple_spread with
N=3 (obs 18, actions 5 each): 4 * (108 + 15 + 3) + 6 = 510 bytes, so 1e6 rows take ~510 MB.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ray_maddpg.maddpg.batch import JointBatch

ArrayOrList = np.ndarray | Sequence[np.ndarray]


class JointReplayBuffer:
    """A ring buffer of joint transitions; the oldest rows are overwritten once it is full."""

    def __init__(
        self, capacity: int, obs_dims: Sequence[int], act_dims: Sequence[int], seed: int | None = None
    ):
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        if len(obs_dims) != len(act_dims) or not obs_dims:
            raise ValueError(f"need one obs and one action width per agent, got {obs_dims} and {act_dims}")
        self.capacity = int(capacity)
        self.obs_dims = [int(d) for d in obs_dims]
        self.act_dims = [int(d) for d in act_dims]
        self.num_agents = len(self.obs_dims)
        self._obs_offsets = np.cumsum([0, *self.obs_dims])
        self._act_offsets = np.cumsum([0, *self.act_dims])
        self.rng = np.random.default_rng(seed)

        obs_width, act_width, n = int(self._obs_offsets[-1]), int(self._act_offsets[-1]), self.num_agents
        self._obs = np.zeros((capacity, obs_width), np.float32)
        self._next_obs = np.zeros((capacity, obs_width), np.float32)
        self._actions = np.zeros((capacity, act_width), np.float32)
        self._rewards = np.zeros((capacity, n), np.float32)
        self._terminated = np.zeros((capacity, n), bool)
        self._truncated = np.zeros((capacity, n), bool)
        self._pos = 0  # the next row to write
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes held by the storage arrays (allocated up front for the full capacity)."""
        return sum(a.nbytes for a in self._arrays().values())

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "obs": self._obs,
            "next_obs": self._next_obs,
            "actions": self._actions,
            "rewards": self._rewards,
            "terminated": self._terminated,
            "truncated": self._truncated,
        }

    # --- writing ---

    def add(self, batch: JointBatch) -> None:
        """Append a ``JointBatch`` of B joint transitions (e.g. one row per env and step of a runner).

        ``terminated``/``truncated`` may be (B, N), or (B,) when all agents end together (mpe2 does).
        """
        obs_m = self._matrix("obs", batch.obs, self.obs_dims)
        next_obs_m = self._matrix("next_obs", batch.next_obs, self.obs_dims)
        actions_m = self._matrix("actions", batch.actions, self.act_dims)
        self._write(obs_m, next_obs_m, actions_m, batch.rewards, batch.terminated, batch.truncated)

    def _write(self, obs_m, next_obs_m, actions_m, rewards, terminated, truncated) -> None:
        """Append rows given as concatenated (B, sum(dims)) matrices."""
        batch = obs_m.shape[0]
        rewards_m = self._per_agent("rewards", rewards, batch, broadcast=False)
        terminated_m = self._per_agent("terminated", terminated, batch, broadcast=True)
        truncated_m = self._per_agent("truncated", truncated, batch, broadcast=True)
        for name, m in (("next_obs", next_obs_m), ("actions", actions_m)):
            if m.shape[0] != batch:
                raise ValueError(f"{name} has {m.shape[0]} rows but obs has {batch}")
        if batch > self.capacity:  # only the newest rows would survive anyway
            keep = slice(batch - self.capacity, batch)
            obs_m, next_obs_m, actions_m = obs_m[keep], next_obs_m[keep], actions_m[keep]
            rewards_m, terminated_m, truncated_m = rewards_m[keep], terminated_m[keep], truncated_m[keep]
            batch = self.capacity

        # At most two slices: up to the end of the storage, then from its start.
        first = min(batch, self.capacity - self._pos)
        for dst, src in zip(
            self._arrays().values(),
            (obs_m, next_obs_m, actions_m, rewards_m, terminated_m, truncated_m),
            strict=True,
        ):
            dst[self._pos : self._pos + first] = src[:first]
            dst[: batch - first] = src[first:]
        self._pos = (self._pos + batch) % self.capacity
        self._size = min(self._size + batch, self.capacity)

    def _matrix(self, name: str, value: ArrayOrList, dims: list[int]) -> np.ndarray:
        if isinstance(value, np.ndarray):
            if value.ndim != 2 or value.shape[1] != sum(dims):
                raise ValueError(
                    f"{name} must be (B, {sum(dims)}) (agents' widths {dims}), got {value.shape}"
                )
            return value
        parts = list(value)
        if len(parts) != len(dims):
            raise ValueError(f"{name} needs one array per agent ({len(dims)}), got {len(parts)}")
        for i, (part, dim) in enumerate(zip(parts, dims, strict=True)):
            shape = np.shape(part)
            if len(shape) != 2 or shape[1] != dim or shape[0] != np.shape(parts[0])[0]:
                raise ValueError(
                    f"{name}[{i}] must be (B, {dim}) with the same B for every agent, got {shape}"
                )
        return np.concatenate(parts, axis=1)

    def _per_agent(self, name: str, value: np.ndarray, batch: int, broadcast: bool) -> np.ndarray:
        value = np.asarray(value)
        if broadcast and value.shape == (batch,):
            return np.repeat(value[:, None], self.num_agents, axis=1)
        if value.shape != (batch, self.num_agents):
            allowed = f"({batch}, {self.num_agents})" + (f" or ({batch},)" if broadcast else "")
            raise ValueError(f"{name} must be {allowed}, got {value.shape}")
        return value

    # --- reading ---

    def sample(self, batch_size: int, rng: np.random.Generator | None = None) -> JointBatch:
        """``batch_size`` rows drawn uniformly with replacement, as a ``JointBatch``: ``obs``,
        ``next_obs``, ``actions`` are per-agent (B, dim_i) views into one gathered matrix,
        ``rewards``/``terminated``/``truncated`` are (B, N). ``JointBatch.to_torch`` makes tensors."""
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = (rng or self.rng).integers(0, self._size, size=batch_size)
        return JointBatch(
            obs=self._split(self._obs[idx], self._obs_offsets),
            actions=self._split(self._actions[idx], self._act_offsets),
            rewards=self._rewards[idx],
            next_obs=self._split(self._next_obs[idx], self._obs_offsets),
            terminated=self._terminated[idx],
            truncated=self._truncated[idx],
        )

    @staticmethod
    def _split(matrix: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
        return [matrix[:, offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]

    # --- checkpointing ---

    def get_state(self) -> dict[str, Any]:
        """The filled rows, oldest first (not the empty capacity), plus the sampling RNG."""
        order = (np.arange(self._size) + (self._pos if self._size == self.capacity else 0)) % self.capacity
        state = {name: array[order] for name, array in self._arrays().items()}
        state.update(
            obs_dims=list(self.obs_dims),
            act_dims=list(self.act_dims),
            capacity=self.capacity,
            pos=self._pos,
            rng=self.rng.bit_generator.state,
        )
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore ``get_state()`` output; a smaller capacity keeps the newest rows.

        With the same capacity the rows go back to the same slots, so sampling resumes exactly.
        """
        if list(state["obs_dims"]) != self.obs_dims or list(state["act_dims"]) != self.act_dims:
            raise ValueError(
                f"buffer state has obs_dims {state['obs_dims']} and act_dims {state['act_dims']}, "
                f"this buffer has {self.obs_dims} and {self.act_dims}"
            )
        rows = len(state["obs"])
        keep = slice(max(0, rows - self.capacity), rows)
        same_layout = state["capacity"] == self.capacity
        self._pos = (state["pos"] - rows) % self.capacity if same_layout else 0
        self._size = 0
        for array in self._arrays().values():
            array.fill(0)
        self._write(
            self._matrix("obs", state["obs"][keep], self.obs_dims),
            self._matrix("next_obs", state["next_obs"][keep], self.obs_dims),
            self._matrix("actions", state["actions"][keep], self.act_dims),
            state["rewards"][keep],
            state["terminated"][keep],
            state["truncated"][keep],
        )
        self.rng.bit_generator.state = state["rng"]
