"""Helpers for the experiment tests: run the real `ray-maddpg` CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "trainer" / "ray_maddpg" / "presets" / "quick.yaml"

# A budget of seconds: 2 iterations (2,800 env steps each, 16 batched envs), learning from step 500, small batches.
TINY = [
    "stop={training_iteration: 2}",
    "algorithm.num_steps_sampled_before_learning_starts=500",
    "algorithm.train_batch_size_per_learner=64",
    "resources.num_envs_per_env_runner=16",
    "checkpoint.every_iterations=1",
]


def cli_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)  # always an embedded local Ray, never a cluster someone else runs
    return env


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ray_maddpg.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(),
        cwd=ROOT,
    )


def sets(*overrides: str) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def trial_dirs(experiment_dir: Path) -> list[Path]:
    return sorted(p for p in experiment_dir.iterdir() if p.is_dir() and (p / "params.json").exists())
