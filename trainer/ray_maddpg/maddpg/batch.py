"""``JointBatch``: joint env steps of every agent, as the env runner emits them, the replay buffer
stores and samples them and the learners read them (numpy or torch, no Ray).

Row b of every field is the same env step, agents in sorted id order (``AgentLayout.agents``):

    obs, next_obs   one (B, obs_dim_i) array per agent
    actions         one (B, act_dim_i) array per agent, as the module's ``core.ActionRule``
                    stores them (one-hot, simplex or [-1, 1])
    rewards         (B, N)
    terminated      (B,) when every agent's episode ends together (what env runners emit:
    truncated       mpe2 ends all agents at once), or (B, N) (what the replay buffer samples)

The per-agent fields are lists because agents may differ in width; ``JointReplayBuffer`` keeps
them as one concatenated matrix per field and returns views into it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Array = Any  # np.ndarray or torch.Tensor


@dataclass(frozen=True)
class JointBatch:
    """B joint transitions; see the module docstring for the fields' shapes."""

    obs: Sequence[Array]
    actions: Sequence[Array]
    rewards: Array
    next_obs: Sequence[Array]
    terminated: Array
    truncated: Array

    def __len__(self) -> int:
        return len(self.rewards)

    def map(self, fn: Callable[[Array], Array]) -> JointBatch:
        """``fn`` applied to every array (each agent's, for the per-agent fields)."""
        return JointBatch(
            obs=[fn(o) for o in self.obs],
            actions=[fn(a) for a in self.actions],
            rewards=fn(self.rewards),
            next_obs=[fn(o) for o in self.next_obs],
            terminated=fn(self.terminated),
            truncated=fn(self.truncated),
        )

    def to_torch(self, device: Any = "cpu") -> JointBatch:
        """The same rows as torch tensors on ``device`` (numpy arrays shared on the CPU, not copied)."""
        import torch

        def move(array: Array) -> torch.Tensor:
            tensor = torch.from_numpy(array) if isinstance(array, np.ndarray) else array
            return tensor.to(device, non_blocking=True)

        return self.map(move)
