"""Multi-agent environments: the mpe2 particle scenarios behind RLlib's MultiAgentEnv API.

The names below come from ``ray_maddpg.envs.mpe`` (which imports Ray and mpe2) and are imported
lazily, on first use, so that ``ray_maddpg.envs.batched`` (plain torch) imports without either.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ENV_NAME",
    "SCENARIOS",
    "MPEMultiAgentEnv",
    "Scenario",
    "make_env",
    "register_mpe_env",
    "team_of",
    "teams_of",
    "validate_env_config",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ray_maddpg.envs import mpe

        return getattr(mpe, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
