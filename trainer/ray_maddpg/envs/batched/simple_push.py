"""mpe2 ``simple_push`` (``mpe2/simple_push/simple_push.py``).

One adversary and one good agent (they collide), two landmarks, one of them the goal. The good
agent sees the goal and its own colour, which marks the goal.
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
    relative_positions,
)

_NUM_LANDMARKS = 2
# reset_world's colours, computed as mpe2 does: landmark i is 0.1 plus 0.8 in channel i + 1,
# the good agent is 0.25 plus 0.5 in the channel of the goal.
_LANDMARK_COLOURS = [[0.1 + (0.8 if c == i + 1 else 0.0) for c in range(3)] for i in range(_NUM_LANDMARKS)]
_AGENT_COLOURS = [[0.25 + (0.5 if c == g + 1 else 0.0) for c in range(3)] for g in range(_NUM_LANDMARKS)]


class SimplePush(GoalLandmarkScenario):
    num_goals = _NUM_LANDMARKS

    def make_world(self) -> WorldSpec:
        return WorldSpec(
            agents=(AgentSpec("adversary_0", silent=True), AgentSpec("agent_0", silent=True)),
            landmarks=tuple(LandmarkSpec(collide=False) for _ in range(_NUM_LANDMARKS)),
            dim_c=2,
        )

    def observation(self, world: World) -> list[torch.Tensor]:
        landmarks = flat(relative_positions(world, world.landmark_index))  # (B, A, 4)
        other = world.agent_pos.flip(1) - world.agent_pos  # the other agent, relative
        adversary = torch.cat([world.vel[:, 0], landmarks[:, 0], other[:, 0]], -1)
        colours = torch.tensor(_LANDMARK_COLOURS, device=world.device, dtype=world.dtype).flatten()
        own_colour = torch.tensor(_AGENT_COLOURS, device=world.device, dtype=world.dtype)[self.goal]
        good = torch.cat(
            [
                world.vel[:, 1],
                self.goal_pos(world) - world.agent_pos[:, 1],
                own_colour,
                landmarks[:, 1],
                colours.expand(world.num_envs, -1),
                other[:, 1],
            ],
            -1,
        )
        return [adversary, good]

    def reward(self, world: World) -> torch.Tensor:
        to_goal = distance(world.agent_pos, self.goal_pos(world)[:, None])  # (B, A)
        # adversary: the good agent's distance to the goal minus its own
        return torch.stack([to_goal[:, 1] - to_goal[:, 0], -to_goal[:, 1]], -1)
