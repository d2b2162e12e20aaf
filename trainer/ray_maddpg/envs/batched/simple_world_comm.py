"""mpe2 ``simple_world_comm`` (``mpe2/simple_world_comm/simple_world_comm.py``).

A leader adversary that speaks, silent adversaries, and prey that eat food and hide in forests.
An agent in a forest is seen only by agents in the same forest (and by the leader); agents seen
by nobody show zeros. Landmarks are, in order: obstacles, food, forests.
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
    distance,
    flat,
    is_collision,
    of_others,
    other_agent_positions,
    prey_columns,
    relative_positions,
)

_LEADER = 0
_FOREST_SIZE = 0.3
_FOOD_SIZE = 0.03


class SimpleWorldComm(Scenario):
    def __init__(
        self,
        num_good: int = 2,
        num_adversaries: int = 4,
        num_obstacles: int = 1,
        num_food: int = 2,
        num_forests: int = 2,
    ):
        self.num_good = num_good
        self.num_adversaries = num_adversaries
        self.num_obstacles = num_obstacles
        self.num_food = num_food
        self.num_forests = num_forests

    def make_world(self) -> WorldSpec:
        adversary = dict(size=0.075, accel=3.0, max_speed=1.0)
        prey = dict(size=0.045, accel=4.0, max_speed=1.3, silent=True)
        followers = (
            AgentSpec(f"adversary_{i}", silent=True, **adversary) for i in range(self.num_adversaries - 1)
        )
        return WorldSpec(
            agents=(
                AgentSpec("leadadversary_0", **adversary),
                *followers,
                *(AgentSpec(f"agent_{i}", **prey) for i in range(self.num_good)),
            ),
            landmarks=(
                *(LandmarkSpec(size=0.2) for _ in range(self.num_obstacles)),
                *(LandmarkSpec(size=_FOOD_SIZE, collide=False) for _ in range(self.num_food)),
                *(LandmarkSpec(size=_FOREST_SIZE, collide=False) for _ in range(self.num_forests)),
            ),
            dim_c=4,
        )

    def reset_world(self, world: World, mask: torch.Tensor) -> None:
        world.reset_agents(mask)
        world.reset_landmarks(mask, -0.9, 0.9)

    def _food_pos(self, world: World) -> torch.Tensor:
        start = self.num_obstacles
        return world.landmark_pos[:, start : start + self.num_food]

    def _in_forest(self, world: World) -> torch.Tensor:
        """(B, A, forests): which agent is inside which forest (``is_collision(agent, forest)``)."""
        forests = world.landmark_pos[:, world.num_landmarks - self.num_forests :]
        return is_collision(
            world.agent_pos[:, :, None], forests[:, None], world.size[: world.num_agents, None], _FOREST_SIZE
        )

    def _visible(self, in_forest: torch.Tensor) -> torch.Tensor:
        """(B, A, A): whether agent i sees agent j, as observation()'s for/else over forests decides."""
        same_forest = (in_forest[:, :, None] & in_forest[:, None]).any(-1)
        outside = ~in_forest.any(-1)
        both_outside = outside[:, :, None] & outside[:, None]
        is_leader = torch.arange(in_forest.shape[1], device=in_forest.device) == _LEADER
        return same_forest | both_outside | is_leader[None, :, None]

    def observation(self, world: World) -> list[torch.Tensor]:
        # adversaries: [vel, pos, landmarks, others, prey vel, in_forest, leader's message]
        # prey:        [vel, pos, landmarks, others, in_forest, prey vel]
        in_forest = self._in_forest(world)
        seen = of_others(world, self._visible(in_forest))[..., None]  # (B, A, A - 1, 1)
        other_pos = torch.where(seen, other_agent_positions(world), 0.0)
        other_vel = torch.where(seen, world.vel[:, world.others], 0.0)
        landmarks = relative_positions(world, world.landmark_index)
        head = torch.cat([world.vel, world.agent_pos, flat(landmarks), flat(other_pos)], -1)
        forest_flags = torch.where(in_forest, 1.0, -1.0).to(world.dtype)
        adversary_sees, prey_sees = prey_columns(other_vel, self.num_adversaries, self.num_good)
        n_adv = self.num_adversaries
        leader_says = world.comm[:, _LEADER, None].expand(-1, n_adv, -1)
        adversaries = torch.cat(
            [head[:, :n_adv], flat(adversary_sees), forest_flags[:, :n_adv], leader_says], -1
        )
        prey = torch.cat([head[:, n_adv:], forest_flags[:, n_adv:], flat(prey_sees)], -1)
        return [*adversaries.unbind(1), *prey.unbind(1)]

    def reward(self, world: World) -> torch.Tensor:
        pos, size, n_adv = world.agent_pos, world.size, self.num_adversaries
        adv_pos, prey_pos = pos[:, :n_adv], pos[:, n_adv:]
        catches = is_collision(
            adv_pos[:, :, None], prey_pos[:, None], size[:n_adv, None], size[None, n_adv : world.num_agents]
        )
        catches = catches.to(world.dtype)  # (B, adversaries, prey)
        nearest_prey = distance(adv_pos[:, :, None], prey_pos[:, None]).amin(-1)
        adversary = -0.1 * nearest_prey + 5 * catches.sum((1, 2))[:, None]

        food = self._food_pos(world)
        bounds = bound_penalty(prey_pos.abs())
        eats = is_collision(
            prey_pos[:, :, None], food[:, None], size[n_adv : world.num_agents, None], _FOOD_SIZE
        )
        nearest_food = distance(food[:, None], prey_pos[:, :, None]).amin(-1)
        prey = -5 * catches.sum(1) - 2 * bounds[..., 0] - 2 * bounds[..., 1]
        prey = prey + 2 * eats.sum(-1).to(world.dtype) - 0.05 * nearest_food
        return torch.cat([adversary, prey], -1)
