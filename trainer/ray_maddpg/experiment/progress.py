"""One compact progress line per training iteration, in place of Tune's status tables."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, TextIO

from ray.tune import Callback

from ray_maddpg.experiment.schema import STOP_METRICS

STEPS = STOP_METRICS["env_steps"]
RETURN = STOP_METRICS["episode_return_mean"]


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _lookup(result: dict[str, Any], key: str) -> Any:
    """``result["a/b"]`` for a flat key, or ``result["a"]["b"]`` for a nested result."""
    if key in result:
        return result[key]
    node: Any = result
    for part in key.split("/"):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def eta_seconds(stop: dict[str, float], result: dict[str, Any]) -> float:
    """Seconds until the first stop condition is met, from the trial's average pace so far.

    A return threshold cannot be forecast, so it contributes no estimate.
    """
    elapsed = float(result.get("time_total_s") or 0.0)
    iteration = int(result.get("training_iteration") or 0)
    steps = _lookup(result, STEPS) or 0
    estimates = []
    if "time_total_s" in stop:
        estimates.append(stop["time_total_s"] - elapsed)
    if "training_iteration" in stop and iteration:
        estimates.append((stop["training_iteration"] - iteration) * elapsed / iteration)
    if "env_steps" in stop and steps and elapsed:
        estimates.append((stop["env_steps"] - steps) * elapsed / steps)
    return max(0.0, min(estimates)) if estimates else math.nan


def format_progress(
    trial_name: str, stop: dict[str, float], result: dict[str, Any], steps_per_s: float
) -> str:
    steps = _lookup(result, STEPS) or 0
    mean_return = _lookup(result, RETURN)
    shown_return = (
        f"{mean_return:9.2f}"
        if isinstance(mean_return, int | float) and math.isfinite(mean_return)
        else "      n/a"
    )
    parts = [
        f"[{trial_name}] iter {int(result.get('training_iteration') or 0):4d}",
        f"steps {int(steps):>10,}",
        f"return {shown_return}",
        f"{steps_per_s:7,.0f} steps/s",
        f"ETA {format_duration(eta_seconds(stop, result))}",
    ]
    evaluation = _lookup(result, "evaluation/return_mean")
    if isinstance(evaluation, int | float):
        parts.append(f"eval return {evaluation:.2f}")
    return " | ".join(parts)


class ProgressPrinter(Callback):
    """Tune callback printing one line per reported result, and trial ends and failures."""

    def __init__(self, stop: dict[str, float], stream: TextIO | None = None):
        self.stop = stop
        self.stream = stream
        self._last: dict[str, tuple[float, float]] = {}  # trial id -> (steps, time_total_s)

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into the experiment state; a stream does not pickle.
        return {**self.__dict__, "stream": None}

    def _print(self, line: str) -> None:
        print(line, file=self.stream or sys.stdout, flush=True)

    def steps_per_second(self, trial_id: str, result: dict[str, Any]) -> float:
        steps = float(_lookup(result, STEPS) or 0)
        elapsed = float(result.get("time_total_s") or 0.0)
        last_steps, last_elapsed = self._last.get(trial_id, (0.0, 0.0))
        self._last[trial_id] = (steps, elapsed)
        if elapsed <= last_elapsed or steps < last_steps:
            return 0.0
        return (steps - last_steps) / (elapsed - last_elapsed)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        rate = self.steps_per_second(trial.trial_id, result)
        self._print(format_progress(str(trial), self.stop, result, rate))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._print(f"[{trial}] finished")

    def on_trial_error(self, iteration, trials, trial, **info):
        where = f"; details in {Path(trial.path) / 'error.txt'}" if getattr(trial, "path", None) else ""
        self._print(f"[{trial}] FAILED{where}")
