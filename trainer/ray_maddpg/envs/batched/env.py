"""``BatchedMPEEnv``: ``num_envs`` copies of one mpe2 scenario stepped as tensors, with the
lean env runner's list API (sorted agent ids, like ``MPEMultiAgentEnv.step_joint``).

One ``step`` is what ``MPEMultiAgentEnv.step_joint`` does for one env: every agent's action,
one ``World.step``, ``steps += 1``, rewards (with ``local_ratio`` mixing where the scenario
has it), the time limit first and then ``is_terminal``. Continuous actions here are mpe2's own
[0, 1] vectors (``MPEMultiAgentEnv`` maps RLlib's [-1, 1] onto them); discrete ones are one-hot
rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ray_maddpg.compiling import CompiledOrEager
from ray_maddpg.envs.batched.scenario import Scenario
from ray_maddpg.envs.batched.world import World, where_envs


class BatchedMPEEnv:
    """``num_envs`` envs of one scenario; every tensor has the env index first."""

    def __init__(
        self,
        scenario: Scenario,
        num_envs: int,
        *,
        max_cycles: int = 25,
        continuous_actions: bool = False,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        seed: int | None = None,
        compile_step: bool = False,
    ):
        device = torch.device(device)
        generator = torch.Generator(device=device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        self.scenario = scenario
        self.world = World(scenario.make_world(), num_envs, device=device, dtype=dtype, generator=generator)
        self.num_envs = num_envs
        self.max_cycles = max_cycles
        self.continuous = continuous_actions

        names = [a.name for a in self.world.spec.agents]
        self.agents = sorted(names)
        # World index of each sorted agent: observations and rewards come out in this order.
        self._world_index = [names.index(a) for a in self.agents]
        self._sorted_position = [self.agents.index(n) for n in names]
        self._reward_columns = torch.tensor(self._world_index, device=device)
        self.act_dims = [self.world.action_dim(i, continuous_actions) for i in self._world_index]
        self.discrete = [not continuous_actions] * len(self.agents)
        self.steps = torch.zeros(num_envs, dtype=torch.long, device=device)
        # A step is about a hundred small torch ops: compiled, their per-op overhead goes.
        self._advance = (
            CompiledOrEager(self._advance_eagerly, "the batched env step", "env.compile")
            if compile_step
            else self._advance_eagerly
        )
        self.obs_dims = [int(o.shape[1]) for o in self.reset()]

    @property
    def device(self) -> torch.device:
        return self.world.device

    def reset(self) -> list[torch.Tensor]:
        """Reset every env; return each agent's (B, obs_dim) observation in sorted agent order."""
        return self.reset_done(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))

    def reset_done(self, mask: torch.Tensor) -> list[torch.Tensor]:
        """Reset the envs where ``mask`` (B,) is True, in place; return every env's current observations."""
        mask = torch.as_tensor(mask, dtype=torch.bool, device=self.device)
        self.scenario.reset_world(self.world, mask)
        self.steps = where_envs(mask, torch.zeros_like(self.steps), self.steps)
        return self.observe()

    def observe(self) -> list[torch.Tensor]:
        """Every agent's current (B, obs_dim) observation, sorted agent order.

        The tensors are new on every call (they may be views into one), never the env's state.
        """
        observations = self.scenario.observation(self.world)
        return [observations[i] for i in self._world_index]

    def step(
        self, actions: Sequence[torch.Tensor]
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step of every env; ``actions`` in sorted agent order (one-hot rows or [0, 1] vectors).

        Returns ``(observations, rewards (B, N), terminated (B,), truncated (B,))``: the observations
        after the step (no env is reset here; call ``reset_done``).
        """
        self._check_actions(actions)
        return self._advance(list(actions))

    def _advance_eagerly(
        self, actions: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        in_world_order = [actions[p] for p in self._sorted_position]
        u, c = self.world.decode_actions(in_world_order, self.continuous)
        self.world.step(u, c)
        self.steps = self.steps + 1
        rewards = self._rewards()[:, self._reward_columns]
        truncated = self.steps >= self.max_cycles
        # mpe2 checks the time limit first, so success on the last step counts as truncation.
        terminated = ~truncated & self.scenario.is_terminal(self.world)
        return self.observe(), rewards, terminated, truncated

    def _rewards(self) -> torch.Tensor:
        """``SimpleEnv._execute_world_step``'s rewards, world order: local, or mixed with the global one."""
        local = self.scenario.reward(self.world)
        ratio = self.scenario.local_ratio
        if ratio is None:
            return local
        return self.scenario.global_reward(self.world)[:, None] * (1 - ratio) + local * ratio

    def _check_actions(self, actions: Sequence[torch.Tensor]) -> None:
        expected = [(self.num_envs, d) for d in self.act_dims]
        got = [tuple(a.shape) for a in actions]
        if got != expected:
            raise ValueError(f"actions must have shapes {expected} (sorted agents {self.agents}); got {got}")

    def set_state_from_mpe(self, index: int, raw_env) -> None:
        """Copy an mpe2 env's state (``MPEMultiAgentEnv._raw``, a ``SimpleEnv``) into env ``index``.

        Positions, velocities, messages, the step count and the scenario's choices (goals, keys).
        """
        self.world.load_from_mpe(index, raw_env.world)
        self.steps[index] = raw_env.steps
        self.scenario.load_from_mpe(self.world, index, raw_env)
