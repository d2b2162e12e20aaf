"""mpe2 ``simple_speaker_listener`` (``mpe2/simple_speaker_listener/simple_speaker_listener.py``).

A speaker that sees the goal's colour and cannot move, and a silent listener that moves; both get
the listener's negative squared distance to the goal.
"""

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
    where_envs,
)

_SPEAKER, _LISTENER = 0, 1
_LANDMARK_COLOURS = [[0.65, 0.15, 0.15], [0.15, 0.65, 0.15], [0.15, 0.15, 0.65]]


class SimpleSpeakerListener(Scenario):
    def __init__(self):
        self.goal: torch.Tensor | None = None  # (B,) the landmark the listener must reach

    def make_world(self) -> WorldSpec:
        return WorldSpec(
            agents=(
                AgentSpec("speaker_0", size=0.075, collide=False, movable=False),
                AgentSpec("listener_0", size=0.075, collide=False, silent=True),
            ),
            landmarks=tuple(LandmarkSpec(size=0.04, collide=False) for _ in _LANDMARK_COLOURS),
            dim_c=3,
        )

    def reset_world(self, world: World, mask: torch.Tensor) -> None:
        self.goal = where_envs(mask, world.integers(len(_LANDMARK_COLOURS)), self.goal)
        world.reset_agents(mask)
        world.reset_landmarks(mask)

    def load_from_mpe(self, world: World, index: int, raw_env) -> None:
        mpe_world = raw_env.world
        self.goal[index] = mpe_world.landmarks.index(mpe_world.agents[_SPEAKER].goal_b)

    def observation(self, world: World) -> list[torch.Tensor]:
        # speaker: [goal colour]; listener: [self_vel, landmark_rel_positions, speaker's message]
        goal_colour = torch.tensor(_LANDMARK_COLOURS, device=world.device, dtype=world.dtype)[self.goal]
        landmarks = flat(relative_positions(world, world.landmark_index))[:, _LISTENER]
        listener = torch.cat([world.vel[:, _LISTENER], landmarks, world.comm[:, _SPEAKER]], -1)
        return [goal_colour, listener]

    def reward(self, world: World) -> torch.Tensor:
        goal_pos = world.landmark_pos[world.env_index, self.goal]
        dist2 = squared_norm(world.agent_pos[:, _LISTENER] - goal_pos)
        return (-dist2)[:, None].expand(-1, 2)
