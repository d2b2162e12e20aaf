"""mpe2 ``simple_adversary`` (``mpe2/simple_adversary/simple_adversary.py``).

One adversary and N good agents, N landmarks, one of them the goal. Good agents know the goal;
the adversary does not. Rewards are the shaped (distance) ones mpe2 uses.
"""

from __future__ import annotations

import torch

from ray_maddpg.envs.batched.scenario import GoalLandmarkScenario
from ray_maddpg.envs.batched.world import (
    AgentSpec,
    LandmarkSpec,
    World,
    WorldSpec,
    distance,
    flat,
    other_agent_positions,
    padded_relative_positions,
    relative_positions,
)


class SimpleAdversary(GoalLandmarkScenario):
    def __init__(
        self, N: int = 2, num_agent_neighbors: int | None = None, num_landmark_neighbors: int | None = None
    ):
        self.num_good = self.num_goals = N  # one landmark per good agent
        self.num_agent_neighbors = num_agent_neighbors
        self.num_landmark_neighbors = num_landmark_neighbors

    def make_world(self) -> WorldSpec:
        agent = dict(size=0.15, collide=False, silent=True)
        good = tuple(AgentSpec(f"agent_{i}", **agent) for i in range(self.num_good))
        return WorldSpec(
            agents=(AgentSpec("adversary_0", **agent), *good),
            landmarks=tuple(LandmarkSpec(size=0.08, collide=False) for _ in range(self.num_good)),
            dim_c=2,
        )

    def observation(self, world: World) -> list[torch.Tensor]:
        # good: [goal_rel_pos, landmark_positions, other_agent_positions]; adversary: without the goal
        landmarks = padded_relative_positions(
            relative_positions(world, world.landmark_index), self.num_landmark_neighbors
        )
        others = padded_relative_positions(other_agent_positions(world), self.num_agent_neighbors)
        seen = torch.cat([flat(landmarks), flat(others)], -1)
        goal_rel = self.goal_pos(world)[:, None] - world.agent_pos
        good = torch.cat([goal_rel[:, 1:], seen[:, 1:]], -1)
        return [seen[:, 0], *good.unbind(1)]

    def reward(self, world: World) -> torch.Tensor:
        to_goal = distance(world.agent_pos, self.goal_pos(world)[:, None])  # (B, A)
        adversary = -to_goal[:, :1]
        # agent_reward: -(closest good agent's distance) + sum of the adversaries' distances
        good = -to_goal[:, 1:].amin(-1, keepdim=True) + to_goal[:, :1]
        return torch.cat([adversary, good.expand(-1, self.num_good)], -1)
