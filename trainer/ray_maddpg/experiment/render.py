"""Headless rendering of a trained policy to a GIF (mpe2 ``rgb_array`` frames, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ray_maddpg.errors import ConfigError
from ray_maddpg.experiment.evaluate import run_episodes

FRAME_MS = 80  # per frame: a 25-step episode plays in about 2 s


def check_gif_path(out: str | Path) -> Path:
    out = Path(out)
    if out.suffix.lower() != ".gif":
        raise ConfigError([("--out", f"must end in .gif (got {out.name})")])
    return out


def write_gif(frames: list[np.ndarray], out: str | Path, frame_ms: int = FRAME_MS) -> Path:
    import imageio.v3 as iio

    out = check_gif_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(out, np.stack(frames), extension=".gif", duration=frame_ms, loop=0)
    return out


def render_gif(policy: Any, out: str | Path, episodes: int = 1, seed: int = 0) -> tuple[Path, int]:
    """Roll out ``episodes`` deterministic episodes and write them as one GIF; return (path, frames)."""
    report = run_episodes(policy, episodes, seed, render=True)
    return write_gif(report.frames, out), len(report.frames)


def thumbnails(frames: list[np.ndarray], count: int = 4, size: int = 128) -> np.ndarray:
    """``count`` evenly spaced frames, downsampled to about ``size`` px, as (N, 3, H, W) uint8."""
    picks = np.linspace(0, len(frames) - 1, num=min(count, len(frames))).round().astype(int)
    step = max(1, frames[0].shape[0] // size)
    return np.stack([frames[i][::step, ::step].transpose(2, 0, 1) for i in picks]).astype(np.uint8)
