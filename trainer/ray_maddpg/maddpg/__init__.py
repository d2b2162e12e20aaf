"""MADDPG: the plain-torch math (core), the joint replay buffer, and the RLlib glue.

``MADDPGConfig``, ``MADDPG`` and ``load_policy`` are imported lazily, so that ``core``,
``replay``, ``fused``, ``layout`` (``AgentLayout``) and ``batch`` (``JointBatch``) stay importable
without Ray.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MADDPG", "MADDPGConfig", "load_policy"]


def __getattr__(name: str) -> Any:
    if name in ("MADDPG", "MADDPGConfig"):
        from ray_maddpg.maddpg import maddpg

        return getattr(maddpg, name)
    if name == "load_policy":
        from ray_maddpg.maddpg.checkpoint import load_policy

        return load_policy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
