"""mpe2 ``simple_crypto`` (``mpe2/simple_crypto/simple_crypto.py``).

Eve (adversary), Bob (listener) and Alice (speaker), none of them moving; only messages matter.
The goal colour and the key are one-hot vectors of size ``dim_c`` (the two landmarks' colours).
"""

from __future__ import annotations

import numpy as np
import torch

from ray_maddpg.envs.batched.scenario import GoalLandmarkScenario
from ray_maddpg.envs.batched.world import AgentSpec, LandmarkSpec, World, WorldSpec, where_envs

_EVE, _BOB, _ALICE = 0, 1, 2
_DIM_C = 4
_NUM_LANDMARKS = 2


class SimpleCrypto(GoalLandmarkScenario):
    """The goal is the landmark whose colour Alice encodes."""

    num_goals = _NUM_LANDMARKS

    def __init__(self):
        self.key: torch.Tensor | None = None  # (B,) landmark whose colour is the key

    def make_world(self) -> WorldSpec:
        agent = dict(collide=False, movable=False)
        return WorldSpec(
            agents=(AgentSpec("eve_0", **agent), AgentSpec("bob_0", **agent), AgentSpec("alice_0", **agent)),
            landmarks=tuple(LandmarkSpec(collide=False) for _ in range(_NUM_LANDMARKS)),
            dim_c=_DIM_C,
        )

    def reset_world(self, world: World, mask: torch.Tensor) -> None:
        self.draw_goal(world, mask)
        self.key = where_envs(mask, world.integers(_NUM_LANDMARKS), self.key)
        world.reset_agents(mask)
        world.reset_landmarks(mask)

    def load_from_mpe(self, world: World, index: int, raw_env) -> None:
        super().load_from_mpe(world, index, raw_env)
        self.key[index] = int(np.argmax(raw_env.world.agents[_ALICE].key))

    def _colour(self, world: World, landmark: torch.Tensor) -> torch.Tensor:
        """(B, dim_c) a landmark's colour: the one-hot of its index."""
        return torch.nn.functional.one_hot(landmark, _DIM_C).to(world.dtype)

    def observation(self, world: World) -> list[torch.Tensor]:
        # alice: [goal colour, key]; bob: [key, alice's message]; eve: [alice's message]
        goal, key = self._colour(world, self.goal), self._colour(world, self.key)
        alice_says = world.comm[:, _ALICE].clone()  # a copy: observations never alias the state
        return [alice_says, torch.cat([key, alice_says], -1), torch.cat([goal, key], -1)]

    def reward(self, world: World) -> torch.Tensor:
        goal = self._colour(world, self.goal)
        # A message of all zeros (possible with continuous actions) counts as no guess.
        spoke = world.comm.ne(0).any(-1)  # (B, A)
        error = torch.where(spoke, (world.comm - goal[:, None]).square().sum(-1), 0.0)
        eve = -error[:, _EVE]
        good = error[:, _EVE] - error[:, _BOB]  # adv_rew + good_rew
        return torch.stack([eve, good, good], -1)
