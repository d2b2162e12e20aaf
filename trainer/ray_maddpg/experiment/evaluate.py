"""Evaluation (greedy by default): returns per agent and team, and the scenario's benchmark metrics."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ray_maddpg.envs import make_env, teams_of
from ray_maddpg.envs.mpe import RUNNER_OPTIONS
from ray_maddpg.errors import ConfigError
from ray_maddpg.experiment.metrics import EpisodeMetrics, episode_metrics, summarize


@dataclass
class EvaluationReport:
    scenario: str
    episodes: int
    seed: int
    agent_returns: dict[str, list[float]]
    team_returns: dict[str, list[float]]
    metrics: dict[str, list[float]]
    frames: list[np.ndarray] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-ready means and stds."""
        return {
            "scenario": self.scenario,
            "episodes": self.episodes,
            "seed": self.seed,
            "return": summarize(np.sum(list(self.agent_returns.values()), axis=0)),
            "agents": {k: summarize(v) for k, v in self.agent_returns.items()},
            "teams": {k: summarize(v) for k, v in self.team_returns.items()},
            "metrics": {k: summarize(v) for k, v in self.metrics.items()},
        }

    def flat_means(self) -> dict[str, float]:
        """``{"return_mean": .., "agent_return/<id>": .., "team_return/<team>": .., "<metric>": ..}``."""
        summary = self.summary()
        flat = {"return_mean": summary["return"]["mean"]}
        flat.update({f"agent_return/{k}": v["mean"] for k, v in summary["agents"].items()})
        flat.update({f"team_return/{k}": v["mean"] for k, v in summary["teams"].items()})
        flat.update({k: v["mean"] for k, v in summary["metrics"].items()})
        return flat


def run_episodes(
    policy: Any,
    episodes: int,
    seed: int = 0,
    *,
    render: bool = False,
    env_config: dict | None = None,
    tracker: Callable[[str], EpisodeMetrics] = episode_metrics,
) -> EvaluationReport:
    """Roll out ``policy`` (``.act(obs_dict) -> action_dict``) for ``episodes`` full episodes.

    Episode ``i`` resets the env with ``seed + i``, so the same seed gives the same episodes.
    With ``render`` the rgb frames of every step (and each reset) are kept in ``frames``.
    ``tracker(scenario)`` makes each episode's metrics (default: the scenario's benchmark
    metrics); a study can pass its own.
    """
    config = dict(env_config or policy.env_config)
    for name in RUNNER_OPTIONS:  # evaluation and rendering always step mpe2 itself
        config.pop(name, None)
    if render:
        config["render_mode"] = "rgb_array"
    scenario = config.pop("scenario")
    env = make_env(scenario, **config)
    try:
        agent_ids = sorted(policy.agent_ids)
        teams = teams_of(agent_ids)
        agent_returns: dict[str, list[float]] = {a: [] for a in agent_ids}
        metrics: dict[str, list[float]] = {}
        frames: list[np.ndarray] = []
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            episode_tracker = tracker(scenario)
            totals = dict.fromkeys(agent_ids, 0.0)
            if render:
                frames.append(env.render())
            done = False
            while not done:
                obs, rewards, terminated, truncated, _ = env.step(policy.act(obs))
                for agent_id, reward in rewards.items():
                    totals[agent_id] += float(reward)
                episode_tracker.observe(env.world)
                if render:
                    frames.append(env.render())
                done = terminated.get("__all__", False) or truncated.get("__all__", False)
            for agent_id in agent_ids:
                agent_returns[agent_id].append(totals[agent_id])
            for name, value in episode_tracker.result().items():
                metrics.setdefault(name, []).append(value)
    finally:
        env.close()
    team_returns = {
        team: list(np.mean([agent_returns[a] for a in members], axis=0)) for team, members in teams.items()
    }
    return EvaluationReport(scenario, episodes, seed, agent_returns, team_returns, metrics, frames)


def format_table(summary: dict[str, Any]) -> str:
    rows = [("", "mean", "std"), ("return (all agents)", summary["return"]["mean"], summary["return"]["std"])]
    rows += [(f"return {k}", v["mean"], v["std"]) for k, v in summary["agents"].items()]
    rows += [(f"team {k}", v["mean"], v["std"]) for k, v in summary["teams"].items()]
    rows += [(k, v["mean"], v["std"]) for k, v in summary["metrics"].items()]
    width = max(len(r[0]) for r in rows)
    actions = "sampled actions" if summary.get("sampled") else "greedy actions"
    lines = [f"{summary['scenario']}: {summary['episodes']} episodes, seed {summary['seed']}, {actions}"]
    lines.append(f"{'':<{width}}  {'mean':>10}  {'std':>10}")
    lines += [f"{name:<{width}}  {mean:>10.3f}  {std:>10.3f}" for name, mean, std in rows[1:]]
    return "\n".join(lines)


def newest_checkpoint(path: str | Path) -> Path:
    """A checkpoint dir as given, or the newest ``checkpoint_*`` under a trial or experiment dir."""
    path = Path(path)
    if not path.exists():
        raise ConfigError([("--checkpoint", f"no such file or directory: {path}")])
    if path.name.startswith("checkpoint_") or not path.is_dir():
        return path
    found = [p for p in path.glob("checkpoint_*") if p.is_dir()] or [
        p for p in path.glob("*/checkpoint_*") if p.is_dir()
    ]
    if not found:
        return path  # load_policy says what is wrong with it
    return max(found, key=lambda p: p.stat().st_mtime)


def load_checked_policy(
    path: str | Path, scenario: str | None = None, *, sampled: bool = False, seed: int = 0
) -> Any:
    from ray_maddpg.maddpg import load_policy

    policy = load_policy(newest_checkpoint(path), sampled=sampled, seed=seed)
    if scenario is not None and policy.scenario != scenario:
        raise ConfigError(
            [("--scenario", f"the checkpoint was trained on {policy.scenario!r}, not {scenario!r}")]
        )
    return policy


def write_json(summary: dict[str, Any], out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return out
