"""mpe2 ``simple_reference`` (``mpe2/simple_reference/simple_reference.py``).

Two agents that move and speak; each must send the *other* to the landmark it alone knows.
Rewards mix each agent's own reward with their mean by ``local_ratio``.
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
    relative_positions,
    where_envs,
)

_NUM_AGENTS = 2
_LANDMARK_COLOURS = [[0.75, 0.25, 0.25], [0.25, 0.75, 0.25], [0.25, 0.25, 0.75]]


class SimpleReference(Scenario):
    def __init__(self, local_ratio: float = 0.5):
        self.local_ratio = local_ratio
        self.goal: torch.Tensor | None = None  # (B, 2): agent i's goal_b, where agent 1 - i must go

    def make_world(self) -> WorldSpec:
        return WorldSpec(
            agents=tuple(AgentSpec(f"agent_{i}", collide=False) for i in range(_NUM_AGENTS)),
            landmarks=tuple(LandmarkSpec(collide=False) for _ in _LANDMARK_COLOURS),
            dim_c=10,
        )

    def reset_world(self, world: World, mask: torch.Tensor) -> None:
        self.goal = where_envs(mask, world.integers(len(_LANDMARK_COLOURS), _NUM_AGENTS), self.goal)
        world.reset_agents(mask)
        world.reset_landmarks(mask)

    def load_from_mpe(self, world: World, index: int, raw_env) -> None:
        mpe_world = raw_env.world
        for i, agent in enumerate(mpe_world.agents):
            self.goal[index, i] = mpe_world.landmarks.index(agent.goal_b)

    def observation(self, world: World) -> list[torch.Tensor]:
        # [self_vel, landmark_rel_positions, goal_b colour, the other agent's message]
        landmarks = flat(relative_positions(world, world.landmark_index))
        goal_colour = torch.tensor(_LANDMARK_COLOURS, device=world.device, dtype=world.dtype)[self.goal]
        other_says = world.comm.flip(1)
        return list(torch.cat([world.vel, landmarks, goal_colour, other_says], -1).unbind(1))

    def reward(self, world: World) -> torch.Tensor:
        # -distance(goal_a = the other agent, goal_b = this agent's landmark)
        goal_pos = torch.take_along_dim(world.landmark_pos, self.goal[..., None], dim=1)  # (B, 2, 2)
        return -distance(world.agent_pos.flip(1), goal_pos)

    def global_reward(self, world: World) -> torch.Tensor:
        rewards = self.reward(world)
        return (rewards[:, 0] + rewards[:, 1]) / _NUM_AGENTS
