"""mpe2 ``simple_spread`` (``mpe2/simple_spread/simple_spread.py``): N agents cover N landmarks.

The global reward is minus the sum, over landmarks, of the closest agent's distance; each agent's
own reward is -1 per other agent it touches (off with ``curriculum``: mpe2 stays in stage 0,
see scenario.py). ``local_ratio`` mixes
them. Partial observability keeps the nearest landmarks / agents, zero-padded.
"""

from __future__ import annotations

import torch

from ray_maddpg.envs.batched.scenario import Scenario
from ray_maddpg.envs.batched.world import (
    AgentSpec,
    LandmarkSpec,
    World,
    WorldSpec,
    distance,
    flat,
    is_collision,
    nearest,
    other_agent_positions,
    padded_relative_positions,
    relative_positions,
    select_padded,
)

_CAPTURE_RADIUS = 0.1
_AGENT_SIZE = 0.15


class SimpleSpread(Scenario):
    def __init__(
        self,
        N: int = 3,
        local_ratio: float = 0.5,
        curriculum: bool = False,
        terminate_on_success: bool = False,
        num_agent_neighbors: int | None = None,
        num_landmark_neighbors: int | None = None,
    ):
        self.num_agents = N
        self.local_ratio = local_ratio
        self.curriculum = curriculum
        self.terminate_on_success = terminate_on_success
        self.num_agent_neighbors = num_agent_neighbors
        self.num_landmark_neighbors = num_landmark_neighbors

    def make_world(self) -> WorldSpec:
        return WorldSpec(
            agents=tuple(
                AgentSpec(f"agent_{i}", size=_AGENT_SIZE, silent=True) for i in range(self.num_agents)
            ),
            landmarks=tuple(LandmarkSpec(collide=False) for _ in range(self.num_agents)),
            dim_c=2,
        )

    def reset_world(self, world: World, mask: torch.Tensor) -> None:
        world.reset_agents(mask)
        world.reset_landmarks(mask)

    def observation(self, world: World) -> list[torch.Tensor]:
        # [self_vel, self_pos, landmark_rel_positions, other_agent_rel_positions, other agents' messages]
        landmarks = padded_relative_positions(
            relative_positions(world, world.landmark_index), self.num_landmark_neighbors
        )
        other_pos, other_comm = other_agent_positions(world), world.comm[:, world.others]
        # padded_comms: the same nearest agents as the positions
        order, n = nearest(other_pos, self.num_agent_neighbors), self.num_agent_neighbors
        other_pos, other_comm = select_padded(other_pos, order, n), select_padded(other_comm, order, n)
        obs = torch.cat([world.vel, world.agent_pos, flat(landmarks), flat(other_pos), flat(other_comm)], -1)
        return list(obs.unbind(1))

    def _landmark_gaps(self, world: World) -> torch.Tensor:
        """(B, L): each landmark's distance to its closest agent."""
        dists = distance(world.agent_pos[:, :, None], world.landmark_pos[:, None])  # (B, A, L)
        return dists.amin(1)

    def reward(self, world: World) -> torch.Tensor:
        if self.curriculum:  # stage 0: no collision penalty
            return world.agent_pos.new_zeros(world.num_envs, world.num_agents)
        pos = world.agent_pos
        touching = is_collision(pos[:, :, None], pos[:, None], _AGENT_SIZE, _AGENT_SIZE)  # (B, A, A)
        touching = touching & ~torch.eye(world.num_agents, dtype=torch.bool, device=world.device)
        return -touching.sum(-1).to(world.dtype)

    def global_reward(self, world: World) -> torch.Tensor:
        return -self._landmark_gaps(world).sum(-1)

    def is_terminal(self, world: World) -> torch.Tensor:
        if not self.terminate_on_success:
            return super().is_terminal(world)
        return (self._landmark_gaps(world) < _CAPTURE_RADIUS).all(-1)
