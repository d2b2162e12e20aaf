"""mpe2's particle scenarios as batched torch envs: ``num_envs`` worlds per object, any device.

``make_batched_env("simple_spread", 1024, device="cuda")`` returns a ``BatchedMPEEnv`` whose
dynamics, observations and rewards are mpe2's (tests/unit/test_batched_envs.py checks them
against mpe2 step by step). Nothing here imports Ray or mpe2.

Options are mpe2's constructor arguments. ``dynamic_rescaling`` only affects mpe2's renderer and
is accepted and ignored; ``render_mode`` (other than None) and ``benchmark_data`` (other than
False) are not supported: mpe2 stays the renderer and the source of benchmark infos.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from ray_maddpg.envs.batched.env import BatchedMPEEnv
from ray_maddpg.envs.batched.scenario import Scenario
from ray_maddpg.envs.batched.simple import Simple
from ray_maddpg.envs.batched.simple_adversary import SimpleAdversary
from ray_maddpg.envs.batched.simple_crypto import SimpleCrypto
from ray_maddpg.envs.batched.simple_push import SimplePush
from ray_maddpg.envs.batched.simple_reference import SimpleReference
from ray_maddpg.envs.batched.simple_speaker_listener import SimpleSpeakerListener
from ray_maddpg.envs.batched.simple_spread import SimpleSpread
from ray_maddpg.envs.batched.simple_tag import SimpleTag
from ray_maddpg.envs.batched.simple_world_comm import SimpleWorldComm
from ray_maddpg.envs.options import option_check
from ray_maddpg.errors import ConfigError
from ray_maddpg.validation import positive_int, problem

SCENARIOS: dict[str, type[Scenario]] = {
    "simple": Simple,
    "simple_adversary": SimpleAdversary,
    "simple_crypto": SimpleCrypto,
    "simple_push": SimplePush,
    "simple_reference": SimpleReference,
    "simple_speaker_listener": SimpleSpeakerListener,
    "simple_spread": SimpleSpread,
    "simple_tag": SimpleTag,
    "simple_world_comm": SimpleWorldComm,
}

# Options every scenario takes: the env's own, then the renderer's (accepted, no effect here).
_ENV_OPTIONS = ("max_cycles", "continuous_actions")
_IGNORED_OPTIONS = ("dynamic_rescaling",)
# mpe2 options the batched envs support only at their default value.
_DEFAULT_ONLY = {"render_mode": None, "benchmark_data": False}


def _scenario_parameters(scenario: str) -> tuple[str, ...]:
    """The options the scenario class itself takes (the world's make-up: N, num_good, ...)."""
    return tuple(inspect.signature(SCENARIOS[scenario]).parameters)


def scenario_options(scenario: str) -> tuple[str, ...]:
    """Every option ``make_batched_env`` accepts for a scenario (mpe2's ``raw_env`` arguments)."""
    return (*_scenario_parameters(scenario), *_ENV_OPTIONS, *_IGNORED_OPTIONS, *_DEFAULT_ONLY)


def _problems(scenario: str, options: dict[str, Any]) -> list[tuple[str, str]]:
    allowed = scenario_options(scenario)
    problems = []
    for name, value in options.items():
        field = f"env.{name}"
        if name not in allowed:
            problems.append((field, f"unknown option for {scenario}; allowed: {', '.join(sorted(allowed))}"))
        elif name in _DEFAULT_ONLY and value != _DEFAULT_ONLY[name]:
            problems.append(
                (field, f"not supported by the batched envs (only {_DEFAULT_ONLY[name]!r}); use the mpe2 env")
            )
        elif (message := problem(option_check(scenario, name), value)) is not None:
            problems.append((field, message))
    return problems


def scenario_agents(scenario: str, **options: Any) -> list[str]:
    """The agent ids of a scenario with these options, sorted, read from its spec (no env built).

    They are mpe2's names (the exactness tests compare them); ``options`` must be valid ones.
    """
    own = {k: v for k, v in options.items() if k in _scenario_parameters(scenario)}
    return sorted(agent.name for agent in SCENARIOS[scenario](**own).make_world().agents)


def make_batched_env(
    scenario: str,
    num_envs: int,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int | None = None,
    compile_step: bool = False,
    **options: Any,
) -> BatchedMPEEnv:
    """Build ``num_envs`` envs of an mpe2 scenario; raises ``ConfigError`` listing every bad option.

    ``compile_step`` runs ``step`` through ``torch.compile`` (eager, with one warning, where
    inductor cannot build kernels).
    """
    if scenario not in SCENARIOS:
        raise ConfigError(
            [("scenario", f"unknown scenario {scenario!r}; allowed: {', '.join(sorted(SCENARIOS))}")]
        )
    problems = _problems(scenario, options)
    if (message := problem(positive_int, num_envs)) is not None:
        problems.append(("num_envs", message))
    if dtype not in (torch.float32, torch.float64):
        problems.append(("dtype", f"must be torch.float32 or torch.float64 (got {dtype!r})"))
    if problems:
        raise ConfigError(problems)
    env_options = {k: options.pop(k) for k in _ENV_OPTIONS if k in options}
    for name in (*_IGNORED_OPTIONS, *_DEFAULT_ONLY):
        options.pop(name, None)
    return BatchedMPEEnv(
        SCENARIOS[scenario](**options),
        num_envs,
        device=device,
        dtype=dtype,
        seed=seed,
        compile_step=compile_step,
        **env_options,
    )


__all__ = [
    "SCENARIOS",
    "BatchedMPEEnv",
    "Scenario",
    "make_batched_env",
    "scenario_agents",
    "scenario_options",
]
