"""The mpe2 particle environments as RLlib ``MultiAgentEnv``s with sorted, stable agent ids.

``MPEMultiAgentEnv`` drives mpe2's unwrapped ``SimpleEnv`` directly: it writes every agent's
action into the env and runs one world step, which is what mpe2's AEC loop plus PettingZoo's
``aec_to_parallel`` wrapper end up doing, without their per-agent bookkeeping. The same step is
exposed twice: ``step(action_dict)`` (RLlib's dict API) and ``step_joint(actions)`` (lists in
sorted agent order, for the lean env runner).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from ray_maddpg.envs.options import option_check
from ray_maddpg.errors import ConfigError
from ray_maddpg.maddpg.layout import team_of, teams_of  # noqa: F401  (re-exported by ray_maddpg.envs)
from ray_maddpg.validation import boolean, one_of, problem

ENV_NAME = "mpe2"
"""The name under which ``register_mpe_env`` registers the env with Tune."""

BACKENDS = ("mpe2", "batched")
"""What steps an env runner's envs (``env.backend``): mpe2 itself, one object per env, or the
torch port in ``envs/batched``, all of a runner's envs as tensors (tested equal to mpe2 step by
step). Evaluation and rendering always step mpe2."""
DEFAULT_BACKEND = "batched"

RUNNER_OPTIONS = ("backend", "compile")
"""``env`` keys for the env runner, not mpe2 options: what steps the envs, and whether the
batched backend's step runs through ``torch.compile`` (``compile``, default false)."""

# mpe2 options the batched backend takes only at their default: mpe2 stays the renderer and
# the source of benchmark infos.
_MPE2_ONLY = {"render_mode": None, "benchmark_data": False}


_COMMON = ("max_cycles", "continuous_actions", "render_mode", "dynamic_rescaling", "benchmark_data")
_NEIGHBORS = ("num_agent_neighbors", "num_landmark_neighbors")


@dataclass(frozen=True)
class Scenario:
    """One mpe2 scenario: the module that builds it and the options its constructor takes."""

    name: str
    module: str
    options: tuple[str, ...]

    def raw_env_class(self) -> type:
        return importlib.import_module(self.module).raw_env


# The option lists mirror each mpe2 ``raw_env.__init__`` signature (a unit test keeps them in sync);
# they are spelled out so that validating an experiment file does not import pygame.
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("simple", "mpe2.simple_v3", _COMMON),
        Scenario("simple_adversary", "mpe2.simple_adversary_v3", ("N", *_COMMON, *_NEIGHBORS)),
        Scenario("simple_crypto", "mpe2.simple_crypto_v3", _COMMON),
        Scenario("simple_push", "mpe2.simple_push_v3", _COMMON),
        Scenario("simple_reference", "mpe2.simple_reference_v3", ("local_ratio", *_COMMON)),
        Scenario("simple_speaker_listener", "mpe2.simple_speaker_listener_v4", _COMMON),
        Scenario(
            "simple_spread",
            "mpe2.simple_spread_v3",
            ("N", "local_ratio", *_COMMON, "curriculum", "terminate_on_success", *_NEIGHBORS),
        ),
        Scenario(
            "simple_tag",
            "mpe2.simple_tag_v3",
            (
                "num_good",
                "num_adversaries",
                "num_obstacles",
                *_COMMON,
                "curriculum",
                "terminate_on_success",
                *_NEIGHBORS,
            ),
        ),
        Scenario(
            "simple_world_comm",
            "mpe2.simple_world_comm_v3",
            ("num_good", "num_adversaries", "num_obstacles", "num_food", "num_forests", *_COMMON),
        ),
    )
}


def validate_env_config(scenario: Any, options: Mapping[str, Any], field_prefix: str = "env") -> dict:
    """Check a scenario name and its options (``backend`` among them); return them as a plain dict.

    Raises ``ConfigError`` listing every problem (unknown scenario, unknown option, bad value),
    each under its dotted field name, e.g. ``env.N``.
    """
    prefix = f"{field_prefix}." if field_prefix else ""
    spec = SCENARIOS.get(scenario) if isinstance(scenario, str) else None
    if spec is None:
        allowed = ", ".join(sorted(SCENARIOS))
        what = "is required" if scenario is None else f"unknown scenario {scenario!r}"
        raise ConfigError([(f"{prefix}scenario", f"{what}; allowed: {allowed}")])
    problems = _backend_problems(options, prefix)
    for name, value in options.items():
        if name in RUNNER_OPTIONS:
            continue
        if name not in spec.options:
            allowed = ", ".join(sorted((*spec.options, *RUNNER_OPTIONS)))
            problems.append((f"{prefix}{name}", f"unknown option for {scenario}; allowed: {allowed}"))
            continue
        if (message := problem(option_check(scenario, name), value)) is not None:
            problems.append((f"{prefix}{name}", message))
    if problems:
        raise ConfigError(problems)
    return dict(options)


def _backend_problems(options: Mapping[str, Any], prefix: str) -> list[tuple[str, str]]:
    backend = options.get("backend", DEFAULT_BACKEND)
    if (message := problem(one_of(*BACKENDS), backend)) is not None:
        return [(f"{prefix}backend", message)]
    compile_step = options.get("compile", False)
    if (message := problem(boolean, compile_step)) is not None:
        return [(f"{prefix}compile", message)]
    if backend != "batched":
        if compile_step:
            return [(f"{prefix}compile", f"compiles the batched envs' step; set {prefix}backend: batched")]
        return []
    return [
        (
            f"{prefix}{name}",
            f"is not supported with {prefix}backend: batched (got {value!r}), which neither renders "
            f"nor reports benchmark data; set {prefix}backend: mpe2 (evaluate and render always step mpe2)",
        )
        for name, default in _MPE2_ONLY.items()
        if (value := options.get(name, default)) != default
    ]


class MPEMultiAgentEnv(MultiAgentEnv):
    """An mpe2 scenario with RLlib's ``MultiAgentEnv`` API.

    Built from ``{"scenario": "simple_spread", **options}`` (the ``env_config`` RLlib passes).

    - Agent ids are ``sorted`` (``self.agents``), whatever order mpe2 lists them in.
    - Continuous actions: RLlib's convention for Box actions is [-1, 1] (its action
      normalization and our ``tanh`` actors use it); mpe2 reads continuous actions in [0, 1].
      The env exposes ``Box(-1, 1)`` and maps explicitly with ``(a + 1) / 2`` after clipping,
      so the actor, the buffer and RLlib all see one convention.
    - Discrete actions are ints in ``Discrete(n)``.
    - Episodes end at ``max_cycles`` with ``truncated`` (a time limit, so the critic still
      bootstraps); ``terminated`` only when the scenario itself says the task is over.
    """

    def __init__(self, config: Mapping[str, Any] | None = None):
        config = dict(config or {})
        scenario = config.pop("scenario", None)
        validate_env_config(scenario, config)
        for name in RUNNER_OPTIONS:  # the env runner's choices, not mpe2 options
            config.pop(name, None)
        super().__init__()
        self.scenario = scenario
        self.render_mode = config.get("render_mode")
        self.continuous = bool(config.get("continuous_actions", False))
        self._raw = SCENARIOS[scenario].raw_env_class()(**config)
        self.max_cycles = self._raw.max_cycles

        self.possible_agents = sorted(self._raw.possible_agents)
        self.agents = list(self.possible_agents)
        # Positions of the sorted agents inside mpe2's own agent list.
        self._raw_index = [self._raw._index_map[a] for a in self.possible_agents]
        self._world_agents = [self._raw.world.agents[i] for i in self._raw_index]

        self.observation_spaces = {a: self._raw.observation_spaces[a] for a in self.possible_agents}
        self.action_spaces = {
            a: self._rllib_action_space(self._raw.action_spaces[a]) for a in self.possible_agents
        }
        self.observation_space = gym.spaces.Dict(self.observation_spaces)
        self.action_space = gym.spaces.Dict(self.action_spaces)

    def _rllib_action_space(self, mpe_space: gym.Space) -> gym.Space:
        if isinstance(mpe_space, gym.spaces.Box):
            return gym.spaces.Box(-1.0, 1.0, shape=mpe_space.shape, dtype=np.float32)
        return mpe_space

    @property
    def world(self):
        """mpe2's ``World`` (agents and landmarks with positions), for scenario metrics."""
        return self._raw.world

    @property
    def unwrapped_mpe(self):
        """The underlying mpe2 ``SimpleEnv``."""
        return self._raw

    # --- lists in sorted agent order (the lean env runner's API) ---

    def reset_joint(self, seed: int | None = None) -> list[np.ndarray]:
        """Reset; return every agent's observation in sorted agent order."""
        self._raw.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return self._observe_all()

    def step_joint(self, actions: Sequence[Any]) -> tuple[list[np.ndarray], np.ndarray, bool, bool]:
        """One world step with one action per agent, in sorted agent order.

        Returns ``(observations, rewards (N,) float32, terminated, truncated)``.
        """
        raw = self._raw
        for i, action in zip(self._raw_index, actions, strict=True):
            raw.current_actions[i] = self._to_mpe_action(action)
        raw._execute_world_step()
        raw.steps += 1
        truncated = raw.steps >= raw.max_cycles
        # mpe2 checks the time limit first, so an episode that succeeds on its last step is truncated.
        terminated = not truncated and bool(raw.scenario.is_terminal(raw.world))
        rewards = np.fromiter(
            (raw.rewards[a] for a in self.possible_agents), np.float32, len(self.possible_agents)
        )
        return self._observe_all(), rewards, terminated, truncated

    def _to_mpe_action(self, action: Any) -> Any:
        if self.continuous:
            return (np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0) + 1.0) / 2.0
        return int(action)

    def _observe_all(self) -> list[np.ndarray]:
        scenario, world = self._raw.scenario, self._raw.world
        return [scenario.observation(agent, world).astype(np.float32) for agent in self._world_agents]

    # --- RLlib's MultiAgentEnv API ---

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        observations = self.reset_joint(seed=seed)
        return dict(zip(self.possible_agents, observations, strict=True)), {}

    def step(self, action_dict: Mapping[str, Any]):
        agents = self.possible_agents
        observations, rewards, terminated, truncated = self.step_joint([action_dict[a] for a in agents])
        obs = dict(zip(agents, observations, strict=True))
        rew = dict(zip(agents, rewards.tolist(), strict=True))
        terminateds = dict.fromkeys(agents, terminated)
        terminateds["__all__"] = terminated
        truncateds = dict.fromkeys(agents, truncated)
        truncateds["__all__"] = truncated
        infos = {a: self._raw.infos[a] for a in agents} if self._raw.benchmark_data else {}
        if terminated or truncated:
            self.agents = []
        return obs, rew, terminateds, truncateds, infos

    def render(self):
        """An (H, W, 3) uint8 frame when built with ``render_mode="rgb_array"`` (works headless)."""
        return self._raw.render()

    def close(self):
        # mpe2's close() calls pygame.quit(), which invalidates the fonts of every other env in
        # this process (their next rgb_array render fails); only a human-mode window needs it.
        if self.render_mode == "human":
            self._raw.close()
        else:
            self._raw.screen = None


def make_env(scenario: str, **options: Any) -> MPEMultiAgentEnv:
    """Validate the options and build the mpe2 env (outside RLlib: tests, evaluate, render);
    ``backend`` defaults to mpe2 here, since this env is mpe2's (and may render)."""
    options = {"backend": "mpe2", **options}
    validate_env_config(scenario, options)
    return MPEMultiAgentEnv({"scenario": scenario, **options})


def register_mpe_env() -> None:
    """Register the env with Tune as ``"mpe2"``, so configs can say ``.environment("mpe2", env_config=...)``.

    Safe to call any number of times, in the driver and in every worker.
    """
    from ray.tune.registry import register_env

    register_env(ENV_NAME, MPEMultiAgentEnv)
