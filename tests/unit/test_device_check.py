"""bench/device_check.py, the Ray-free GPU check: a --quick CPU run that never imports Ray or mpe2
and reports every figure, and its device replay buffer."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "device_check.py"
FORBIDDEN = ("ray", "mpe2", "pygame")


def imported_top_level(importtime_stderr: str) -> set[str]:
    """Top-level package names from ``python -X importtime``'s lines ("import time: a | b | name")."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def load_device_check():
    """The script as a module (bench/ is no package)."""
    spec = importlib.util.spec_from_file_location("device_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("device_check") / "figures.json"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(SCRIPT), "--quick", "--device", "cpu", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT / "bench",  # not the repository root: the script must find trainer/ itself
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""},
    )
    return result, json.loads(out.read_text()) if out.exists() else None


def test_the_ray_free_parts_import_without_ray_or_mpe2():
    code = (
        "import sys; import ray_maddpg.envs.batched, ray_maddpg.maddpg.fused, ray_maddpg.maddpg.core,"
        " ray_maddpg.maddpg.replay, ray_maddpg.maddpg.batch, ray_maddpg.maddpg.layout, ray_maddpg.memory;"
        " sys.exit(sorted(m for m in sys.modules"
        f" if m.split('.')[0] in {FORBIDDEN!r}) or None)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_the_quick_run_succeeds_without_importing_ray_or_mpe2(quick_run):
    result, report = quick_run
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    imported = imported_top_level(result.stderr)
    assert "torch" in imported and "ray_maddpg" in imported  # the importtime lines were read
    assert not imported & set(FORBIDDEN)
    assert report is not None
    assert "running on the CPU" in result.stdout or torch.cuda.is_available()
    assert report["device"] == "cpu" and report["quick"] is True
    assert report["torch"] == torch.__version__


def test_the_quick_run_reports_every_figure(quick_run):
    _, report = quick_run
    sizes = [str(n) for n in report["settings"]["env_sizes"]]
    for key in ("env_steps_per_s", "sampling_steps_per_s"):
        assert sorted(report[key]) == ["simple_spread", "simple_world_comm"]
        for rates in report[key].values():
            assert sorted(rates) == sorted(sizes) and all(r > 0 for r in rates.values())
    assert sorted(report["learner_updates_per_s"], key=int) == ["3", "6", "12"]
    assert all(r > 0 for r in report["learner_updates_per_s"].values())

    train, cfg = report["train"], report["settings"]
    assert train["completed"] and train["env_steps"] >= cfg["train_env_steps"]
    # One update per 100 env steps once learning starts.
    assert train["updates"] == (train["env_steps"] - cfg["learning_starts"]) // 100 > 0
    for key in ("wall_s", "env_steps_per_s", "updates_per_s", "learner_s"):
        assert train[key] > 0
    assert 0 < train["learner_share"] < 1
    assert train["episodes_finished"] == train["env_steps"] // train["num_envs"] // 25 * train["num_envs"]
    for key in ("return_last_100", "return_last_round", "greedy_return"):
        assert math.isfinite(train[key]) and train[key] < 0  # simple_spread's rewards are negative
    assert report["total_s"] > 0


def test_the_device_replay_wraps_around_and_samples_the_learners_layout():
    device_check = load_device_check()
    replay = device_check.DeviceReplay(5, [2, 1], [3, 3], device_check.Device("cpu"))

    def rows(start, n):
        v = torch.arange(start, start + n, dtype=torch.float32)[:, None]
        return [v.expand(n, 2), v.expand(n, 1)], [v.expand(n, 3)] * 2, v.expand(n, 2), v[:, 0] < 0

    for start, n in ((0, 3), (3, 4)):  # the second batch wraps: rows 3, 4, then 5, 6 at slots 0, 1
        obs, actions, rewards, terminated = rows(start, n)
        replay.add(obs, actions, rewards, [o + 100 for o in obs], terminated)
    assert replay.size == 5 and replay.pos == 2
    assert replay.obs[:, 0].tolist() == [5, 6, 2, 3, 4]
    batch = replay.sample(64)
    assert [o.shape for o in batch.obs] == [(64, 2), (64, 1)]
    assert [a.shape for a in batch.actions] == [(64, 3), (64, 3)]
    assert batch.rewards.shape == batch.terminated.shape == (64, 2)
    assert set(batch.obs[0][:, 0].tolist()) <= {2.0, 3.0, 4.0, 5.0, 6.0}
    torch.testing.assert_close(batch.next_obs[1], batch.obs[1] + 100)
    torch.testing.assert_close(batch.rewards[:, 0], batch.obs[0][:, 0])


def test_policy_outputs_averaged_come_from_the_target_actors():
    """``averaged`` reads the target actors: equal to the actors at the start, and after one
    update (tau 0.01) still near the start while the actors have moved."""
    device_check = load_device_check()
    device = device_check.Device("cpu")
    env, learner, replay = device_check.setup("simple_spread", 64, device, 1024)
    stepper = device_check.Stepper(env)
    device_check.fill_with_random_steps(stepper, replay, torch.Generator().manual_seed(0), 4)
    obs = stepper.obs
    start = device_check.policy_outputs(learner, obs)
    for now, averaged in zip(start, device_check.policy_outputs(learner, obs, averaged=True), strict=True):
        torch.testing.assert_close(averaged, now)
    learner.update(replay.sample(256))
    moved = device_check.policy_outputs(learner, obs)
    averaged = device_check.policy_outputs(learner, obs, averaged=True)
    for s, m, a in zip(start, moved, averaged, strict=True):
        assert (m - s).abs().max() > 0
        assert (a - s).abs().max() < 0.05 * (m - s).abs().max()
