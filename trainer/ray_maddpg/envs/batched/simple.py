"""mpe2 ``simple`` (``mpe2/simple/simple.py``): one agent, one landmark, reward -|p - landmark|^2."""

from __future__ import annotations

import torch

from ray_maddpg.envs.batched.scenario import Scenario
from ray_maddpg.envs.batched.world import (
    AgentSpec,
    LandmarkSpec,
    World,
    WorldSpec,
    flat,
    relative_positions,
    squared_norm,
)


class Simple(Scenario):
    def make_world(self) -> WorldSpec:
        return WorldSpec(
            agents=(AgentSpec("agent_0", collide=False, silent=True),),
            landmarks=(LandmarkSpec(collide=False),),
        )

    def reset_world(self, world: World, mask: torch.Tensor) -> None:
        world.reset_agents(mask)
        world.reset_landmarks(mask)

    def observation(self, world: World) -> list[torch.Tensor]:
        # [self_vel, landmark_rel_position]
        landmarks = relative_positions(world, world.landmark_index)
        return list(torch.cat([world.vel, flat(landmarks)], -1).unbind(1))

    def reward(self, world: World) -> torch.Tensor:
        return -squared_norm(world.agent_pos - world.landmark_pos[:, :1])
