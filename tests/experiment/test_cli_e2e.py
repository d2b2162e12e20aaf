"""The real CLI end to end on tiny budgets: train (a 2-trial sweep), evaluate, render."""

import json
import re

import imageio.v3 as iio
import pytest
from experiment_helpers import trial_dirs
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ray_maddpg.cli import main

pytestmark = pytest.mark.e2e


def test_sweep_runs_one_trial_per_grid_value(sweep):
    _, experiment_dir = sweep
    lrs = sorted(json.loads((d / "params.json").read_text())["actor_lr"] for d in trial_dirs(experiment_dir))
    assert lrs == [0.001, 0.01]


def test_every_trial_keeps_its_checkpoints(sweep):
    _, experiment_dir = sweep
    assert all(sorted(d.glob("checkpoint_*")) for d in trial_dirs(experiment_dir))


def test_train_prints_one_progress_line_per_trial_iteration(sweep):
    done, _ = sweep
    lines = [line for line in done.stdout.splitlines() if re.search(r"\] iter +\d+ \| steps", line)]
    assert len(lines) == 4, done.stdout


def test_train_ends_by_saying_where_results_went_and_how_to_look_at_them(sweep):
    done, experiment_dir = sweep
    assert f"Results:      {experiment_dir}" in done.stdout
    assert f"tensorboard --logdir {experiment_dir}" in done.stdout
    assert "ray-maddpg evaluate --checkpoint" in done.stdout


def test_train_keeps_the_validated_experiment_file_next_to_the_trials(sweep):
    _, experiment_dir = sweep
    assert "tiny-sweep" in (experiment_dir / "experiment.yaml").read_text()


def scalars(trial_dir):
    events = EventAccumulator(str(trial_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def test_tensorboard_gets_returns_per_agent_and_team_losses_and_q_values(sweep):
    _, experiment_dir = sweep
    tags = set(scalars(trial_dirs(experiment_dir)[0]).Tags()["scalars"])
    for tag in (
        "ray/tune/env_runners/agent_episode_returns_mean/agent_0",
        "ray/tune/env_runners/team_episode_returns_mean/agent",
        "ray/tune/learners/agent_0/actor_loss",
        "ray/tune/learners/agent_0/critic_loss",
        "ray/tune/learners/agent_0/q_mean",
    ):
        assert tag in tags


def test_evaluation_during_training_logs_scenario_metrics_to_tensorboard(sweep):
    _, experiment_dir = sweep
    tags = set(scalars(trial_dirs(experiment_dir)[0]).Tags()["scalars"])
    assert {"ray/tune/evaluation/return_mean", "ray/tune/evaluation/landmark_distance"} <= tags


def test_evaluation_with_gif_writes_the_clip_and_logs_frames(sweep):
    _, experiment_dir = sweep
    trial = trial_dirs(experiment_dir)[0]
    assert (trial / "eval_000002.gif").is_file()
    assert "evaluation/frames" in scalars(trial).Tags()["images"]


def test_evaluate_writes_returns_per_agent_and_team_and_scenario_metrics(checkpoint, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--episodes", "3", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["agents"]) == {"agent_0", "agent_1", "agent_2"}
    assert set(report["teams"]) == {"agent"}
    assert set(report["metrics"]) == {"landmark_distance", "collisions", "landmarks_occupied"}
    assert "landmark_distance" in capsys.readouterr().out


def test_evaluate_is_deterministic_for_a_seed(checkpoint, capsys):
    outputs = []
    for _ in range(2):
        assert main(["evaluate", "--checkpoint", str(checkpoint), "--episodes", "2", "--seed", "7"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]


def test_sampled_evaluation_is_seeded_and_differs_from_greedy(checkpoint, capsys):
    def evaluate(*extra):
        assert main(["evaluate", "--checkpoint", str(checkpoint), "--episodes", "2", *extra]) == 0
        return capsys.readouterr().out

    greedy, sampled = evaluate(), evaluate("--sampled")
    assert "greedy actions" in greedy and "sampled actions" in sampled
    assert sampled.split("\n", 1)[1] != greedy.split("\n", 1)[1]  # the figures, not the title
    assert evaluate("--sampled") == sampled
    assert evaluate("--sampled", "--seed", "1").split("\n", 1)[1] != sampled.split("\n", 1)[1]


def test_evaluate_accepts_an_experiment_dir(sweep):
    _, experiment_dir = sweep
    assert main(["evaluate", "--checkpoint", str(experiment_dir), "--episodes", "1"]) == 0


def test_render_writes_a_gif_with_every_step_of_the_episode(checkpoint, tmp_path, capsys):
    out = tmp_path / "run.gif"
    assert main(["render", "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    assert "(26 frames, 1 episode)" in capsys.readouterr().out  # the reset frame and 25 steps
    assert iio.imread(out, index=None).shape[1:] == (700, 700, 3)


def test_evaluate_refuses_a_checkpoint_of_another_scenario(checkpoint, capsys):
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--scenario", "simple_tag"]) == 2
    assert "trained on 'simple_spread'" in capsys.readouterr().err
