"""The batched counterpart of mpe2's ``BaseScenario`` (``mpe2/_mpe_utils/scenario.py``).

A scenario builds its world's constant spec, resets the envs a mask selects, and computes every
agent's observation and reward for all envs at once. Per-env choices made at reset (the goal
landmark, a key) live on the scenario as (B,) tensors; ``load_from_mpe`` copies them from an
mpe2 env for the exactness tests.

Curriculum: in mpe2 1.1.1 the stage never leaves 0. ``BaseScenario.curriculum_stage`` is a
property whose setter does nothing, and the scenarios assign to it, so ``set_curriculum_stage``
and ``advance_curriculum`` have no effect. ``curriculum=True`` therefore means stage 0 for good
(simple_spread: no collision penalty; simple_tag: prey at half speed), and that is what the
batched scenarios do.
"""

from __future__ import annotations

import torch

from ray_maddpg.envs.batched.world import World, WorldSpec, where_envs


class Scenario:
    """One mpe2 scenario over a batch of worlds; lists of agents are in mpe2's world order."""

    local_ratio: float | None = None
    """Set by scenarios whose mpe2 ``raw_env`` mixes local and global rewards."""

    def make_world(self) -> WorldSpec:
        """``make_world``: agents and landmarks with their constant properties."""
        raise NotImplementedError

    def reset_world(self, world: World, mask: torch.Tensor) -> None:
        """``reset_world`` for the envs where ``mask`` (B,) is True."""
        raise NotImplementedError

    def observation(self, world: World) -> list[torch.Tensor]:
        """``observation`` for every agent: a list of (B, obs_dim) tensors."""
        raise NotImplementedError

    def reward(self, world: World) -> torch.Tensor:
        """``reward`` for every agent: (B, A)."""
        raise NotImplementedError

    def global_reward(self, world: World) -> torch.Tensor:
        """``global_reward``: (B,), used only when ``local_ratio`` is set."""
        return torch.zeros(world.num_envs, device=world.device, dtype=world.dtype)

    def is_terminal(self, world: World) -> torch.Tensor:
        """``is_terminal``: (B,) bool, True where the scenario ends the episode early."""
        return torch.zeros(world.num_envs, device=world.device, dtype=torch.bool)

    def load_from_mpe(self, world: World, index: int, raw_env) -> None:
        """Copy the scenario's own per-env state (goals, keys) from an mpe2 env."""


class GoalLandmarkScenario(Scenario):
    """A scenario in which every env draws one of ``num_goals`` landmarks as its goal at reset;
    mpe2 keeps that goal on its first agent as ``goal_a``."""

    num_goals: int
    goal: torch.Tensor | None = None  # (B,) index of the goal landmark

    def reset_world(self, world: World, mask: torch.Tensor) -> None:
        self.draw_goal(world, mask)
        world.reset_agents(mask)
        world.reset_landmarks(mask)

    def draw_goal(self, world: World, mask: torch.Tensor) -> None:
        self.goal = where_envs(mask, world.integers(self.num_goals), self.goal)

    def load_from_mpe(self, world: World, index: int, raw_env) -> None:
        mpe_world = raw_env.world
        self.goal[index] = mpe_world.landmarks.index(mpe_world.agents[0].goal_a)

    def goal_pos(self, world: World) -> torch.Tensor:
        """(B, 2) position of each env's goal landmark."""
        return world.landmark_pos[world.env_index, self.goal]
