"""Who acts in an env and how wide their data is (``AgentLayout``), without Ray.

The agents' ids, sizes and action kinds come from the env's spaces; which module serves which
agent comes from the algorithm config (``MADDPGConfig.agent_layout``, which builds the env once
per config object and env spec and keeps the result). Everything that lays out per-agent data (the
modules, the env runner, the replay buffer, the learner's batch, evaluation) reads one layout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium as gym


def team_of(agent_id: str) -> str:
    """An agent's team: its id without the trailing ``_<index>`` (``adversary_0`` -> ``adversary``)."""
    team, sep, index = agent_id.rpartition("_")
    return team if sep and index.isdigit() else agent_id


def teams_of(agent_ids: Sequence[str]) -> dict[str, list[str]]:
    """Group agent ids by team; teams and their members in sorted order."""
    teams: dict[str, list[str]] = {}
    for agent_id in sorted(agent_ids):
        teams.setdefault(team_of(agent_id), []).append(agent_id)
    return dict(sorted(teams.items()))


@dataclass(frozen=True)
class AgentLayout:
    """Every agent of an env in sorted id order, with its sizes, and the module serving it.

    ``obs_dims`` / ``act_dims``: per agent id, the observation size and the action width as the
    critic and the replay buffer see it (the one-hot size for a discrete action); ``obs_sizes`` /
    ``act_sizes`` give them as lists in agent order. ``module_of``: agent id -> module id (the
    agent id itself unless its team shares one module); ``modules``: module id -> the agents it
    serves, both in sorted order.
    """

    agents: tuple[str, ...]
    obs_dims: Mapping[str, int]
    act_dims: Mapping[str, int]
    discrete: Mapping[str, bool]
    observation_spaces: Mapping[str, gym.Space] = field(repr=False)
    action_spaces: Mapping[str, gym.Space] = field(repr=False)
    module_of: Mapping[str, str]

    @classmethod
    def from_env(cls, env: Any, module_of: Mapping[str, str] | None = None) -> AgentLayout:
        """The layout of an env with ``possible_agents`` and per-agent ``observation_spaces`` /
        ``action_spaces`` (Box observations, Discrete or Box actions); one module per agent
        unless ``module_of`` says otherwise."""
        agents = tuple(sorted(env.possible_agents))
        obs_dims, act_dims, discrete = {}, {}, {}
        for aid in agents:
            obs_space, act_space = env.observation_spaces[aid], env.action_spaces[aid]
            obs_dims[aid] = int(obs_space.shape[0])
            discrete[aid] = isinstance(act_space, gym.spaces.Discrete)
            act_dims[aid] = int(act_space.n) if discrete[aid] else int(act_space.shape[0])
        return cls(
            agents=agents,
            obs_dims=obs_dims,
            act_dims=act_dims,
            discrete=discrete,
            observation_spaces={a: env.observation_spaces[a] for a in agents},
            action_spaces={a: env.action_spaces[a] for a in agents},
            module_of=dict(module_of) if module_of is not None else {a: a for a in agents},
        )

    def with_modules(self, module_of: Mapping[str, str]) -> AgentLayout:
        """The same agents, served by the modules ``module_of`` names."""
        if sorted(module_of) != list(self.agents):
            raise ValueError(f"module_of must name a module for each of {list(self.agents)}")
        return replace(self, module_of=dict(module_of))

    @property
    def obs_sizes(self) -> list[int]:
        return [self.obs_dims[a] for a in self.agents]

    @property
    def act_sizes(self) -> list[int]:
        return [self.act_dims[a] for a in self.agents]

    @property
    def teams(self) -> dict[str, list[str]]:
        return teams_of(self.agents)

    @property
    def modules(self) -> dict[str, list[str]]:
        """Module id -> the agents it serves, in sorted order (module ids sorted too)."""
        members: dict[str, list[str]] = {}
        for aid in self.agents:
            members.setdefault(self.module_of[aid], []).append(aid)
        return dict(sorted(members.items()))
