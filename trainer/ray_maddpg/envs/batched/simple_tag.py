"""mpe2 ``simple_tag`` (``mpe2/simple_tag/simple_tag.py``): predators chase faster prey among obstacles.

Each adversary gets +10 for every (prey, adversary) contact in its env; each prey -10 for every
adversary touching it, and a penalty for leaving the screen. With ``curriculum`` the prey move at
stage 0's half speed and acceleration.
"""

from __future__ import annotations

import torch

from ray_maddpg.envs.batched.scenario import Scenario
from ray_maddpg.envs.batched.world import (
    AgentSpec,
    LandmarkSpec,
    World,
    WorldSpec,
    bound_penalty,
    flat,
    is_collision,
    nearest,
    other_agent_positions,
    padded_relative_positions,
    prey_columns,
    relative_positions,
    select_padded,
)

_PREY_MAX_SPEED = 1.3
_PREY_ACCEL = 4.0
_CATCH_REWARD = 10.0
_STAGE_0_PREY_FACTOR = 0.5  # curriculum stage 0, where mpe2 always is (see scenario.py)


class SimpleTag(Scenario):
    def __init__(
        self,
        num_good: int = 1,
        num_adversaries: int = 3,
        num_obstacles: int = 2,
        curriculum: bool = False,
        terminate_on_success: bool = False,
        num_agent_neighbors: int | None = None,
        num_landmark_neighbors: int | None = None,
    ):
        self.num_good = num_good
        self.num_adversaries = num_adversaries
        self.num_obstacles = num_obstacles
        self.curriculum = curriculum
        self.terminate_on_success = terminate_on_success
        self.num_agent_neighbors = num_agent_neighbors
        self.num_landmark_neighbors = num_landmark_neighbors

    def make_world(self) -> WorldSpec:
        adversary = dict(size=0.075, accel=3.0, max_speed=1.0, silent=True)
        factor = _STAGE_0_PREY_FACTOR if self.curriculum else 1.0
        prey = dict(size=0.05, accel=_PREY_ACCEL * factor, max_speed=_PREY_MAX_SPEED * factor, silent=True)
        return WorldSpec(
            agents=(
                *(AgentSpec(f"adversary_{i}", **adversary) for i in range(self.num_adversaries)),
                *(AgentSpec(f"agent_{i}", **prey) for i in range(self.num_good)),
            ),
            landmarks=tuple(LandmarkSpec(size=0.2) for _ in range(self.num_obstacles)),
            dim_c=2,
        )

    def reset_world(self, world: World, mask: torch.Tensor) -> None:
        world.reset_agents(mask)
        world.reset_landmarks(mask, -0.9, 0.9)

    def observation(self, world: World) -> list[torch.Tensor]:
        # [self_vel, self_pos, landmark_rel_positions, other_agent_rel_positions, other prey velocities]
        landmarks = padded_relative_positions(
            relative_positions(world, world.landmark_index), self.num_landmark_neighbors
        )
        other_pos, other_vel = other_agent_positions(world), world.vel[:, world.others]
        head = [world.vel, world.agent_pos, flat(landmarks)]
        if self.num_agent_neighbors is None:
            head = torch.cat([*head, flat(other_pos)], -1)
            adversary_sees, prey_sees = prey_columns(other_vel, self.num_adversaries, self.num_good)
            adversaries = torch.cat([head[:, : self.num_adversaries], flat(adversary_sees)], -1)
            prey = torch.cat([head[:, self.num_adversaries :], flat(prey_sees)], -1)
            return [*adversaries.unbind(1), *prey.unbind(1)]
        # padded_velocities: the same nearest agents as the positions, zeros for adversaries
        is_prey = (world.others >= self.num_adversaries)[None, :, :, None]
        order, n = nearest(other_pos, self.num_agent_neighbors), self.num_agent_neighbors
        other_pos = select_padded(other_pos, order, n)
        other_vel = select_padded(torch.where(is_prey, other_vel, 0.0), order, n)
        return list(torch.cat([*head, flat(other_pos), flat(other_vel)], -1).unbind(1))

    def _catches(self, world: World) -> torch.Tensor:
        """(B, adversaries, prey): which adversary touches which prey."""
        pos, size = world.agent_pos, world.size
        adv, prey = slice(None, self.num_adversaries), slice(self.num_adversaries, world.num_agents)
        return is_collision(pos[:, adv, None], pos[:, None, prey], size[adv, None], size[None, prey])

    def reward(self, world: World) -> torch.Tensor:
        catches = self._catches(world).to(world.dtype)
        adversary = (_CATCH_REWARD * catches.sum((1, 2)))[:, None].expand(-1, self.num_adversaries)
        prey = -_CATCH_REWARD * catches.sum(1)
        bounds = bound_penalty(world.agent_pos[:, self.num_adversaries :].abs())
        prey = prey - bounds[..., 0] - bounds[..., 1]
        return torch.cat([adversary, prey], -1)

    def is_terminal(self, world: World) -> torch.Tensor:
        if not self.terminate_on_success:
            return super().is_terminal(world)
        return self._catches(world).any(1).all(-1)
