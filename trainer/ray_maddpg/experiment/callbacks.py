"""RLlib ``on_train_result`` hooks: team returns, and periodic deterministic evaluation.

Whatever they add to ``result`` reaches Tune's loggers, so TensorBoard shows it per trial.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from ray_maddpg.envs import team_of

# The same evaluation episodes at every evaluation, so the curve compares like with like.
EVAL_SEED = 1_000_000


def add_team_returns(
    algorithm: Any = None, metrics_logger: Any = None, result: dict | None = None, **_
) -> None:
    """``env_runners/team_episode_returns_mean/<team>``: the mean of the team's agents' returns."""
    runners = (result or {}).get("env_runners") or {}
    per_agent = runners.get("agent_episode_returns_mean") or {}
    teams: dict[str, list[float]] = {}
    for agent_id, value in per_agent.items():
        teams.setdefault(team_of(agent_id), []).append(float(value))
    if teams:
        runners["team_episode_returns_mean"] = {t: sum(v) / len(v) for t, v in teams.items()}


def evaluate_during_training(
    algorithm: Any = None,
    metrics_logger: Any = None,
    result: dict | None = None,
    *,
    every_iterations: int,
    episodes: int,
    gif: bool,
    **_,
) -> None:
    """Every ``every_iterations``: run the deterministic policy, add ``evaluation/*`` to the result.

    With ``gif`` it also writes ``eval_<iteration>.gif`` into the trial dir and logs four
    thumbnail frames to TensorBoard (a few KB, so cheap enough for every evaluation).
    """
    from ray_maddpg.experiment.evaluate import run_episodes

    iteration = int(result.get("training_iteration") or algorithm.iteration + 1)
    if iteration % every_iterations:
        return
    policy = current_policy(algorithm)
    report = run_episodes(policy, episodes, seed=EVAL_SEED, render=gif)
    result["evaluation"] = report.flat_means()
    if gif:
        from ray_maddpg.experiment.render import thumbnails, write_gif

        # The trial's working dir; Tune syncs it into the trial dir under the results dir.
        trial_dir = Path(algorithm.logdir)
        write_gif(report.frames, trial_dir / f"eval_{iteration:06d}.gif")
        _log_frames(trial_dir, iteration, thumbnails(report.frames))


def current_policy(algorithm: Any) -> Any:
    """The learner's current actors as a ``TrainedPolicy`` (a copy, in this process)."""
    from ray_maddpg.maddpg.checkpoint import TrainedPolicy

    module = algorithm.config.get_multi_rl_module_spec().build()
    module.set_state(algorithm.learner_group.get_weights())
    for submodule in module.values():
        submodule.eval()
    return TrainedPolicy(algorithm.config, module)


def _log_frames(trial_dir: Path, iteration: int, frames: Any) -> None:
    """Write frames to an events file of its own in the trial dir (not through the result dict,
    which Tune's JSON/CSV loggers would also serialize). The step is the training iteration,
    as for Tune's scalars."""
    from tensorboardX import SummaryWriter

    with SummaryWriter(str(trial_dir), filename_suffix=".frames") as writer:
        writer.add_images("evaluation/frames", frames, global_step=iteration)


def train_result_hooks(every_iterations: int, episodes: int, gif: bool) -> list:
    hooks = [add_team_returns]
    if every_iterations:
        hooks.append(
            partial(evaluate_during_training, every_iterations=every_iterations, episodes=episodes, gif=gif)
        )
    return hooks
