"""--resume after an interrupt keeps finished trials; the quickstart notebook runs headless."""

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from experiment_helpers import QUICK, ROOT, TINY, cli, cli_env, sets, trial_dirs
from nbclient import NotebookClient

pytestmark = pytest.mark.e2e

NOTEBOOK = ROOT / "trainer" / "ray_maddpg" / "notebooks" / "quickstart.ipynb"


def iterations(trial: Path) -> list[int]:
    path = trial / "progress.csv"
    if not path.exists():
        return []
    with path.open() as f:
        return [int(row["training_iteration"]) for row in csv.DictReader(f)]


def interrupt_when(proc: subprocess.Popen, ready, timeout: float = 480) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "training ended before it could be interrupted"
        assert time.monotonic() < deadline, "training never reached the point to interrupt"
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=180)


def test_resume_continues_the_interrupted_trial_and_keeps_the_finished_one(tmp_path):
    results = tmp_path / "results"
    overrides = [
        *TINY,
        "stop={training_iteration: 4}",
        "name=resumable",
        "tune={seeds: [0, 1], max_concurrent_trials: 1}",
    ]
    train = ["train", "--config", str(QUICK), "--results-dir", str(results), *sets(*overrides)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ray_maddpg.cli", *train],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=cli_env(),
        cwd=ROOT,
    )

    def one_finished_other_checkpointed() -> bool:
        runs = list(results.glob("resumable_*"))
        trials = trial_dirs(runs[0]) if runs else []
        finished = [t for t in trials if iterations(t) == [1, 2, 3, 4]]
        started = [t for t in trials if t not in finished and list(t.glob("checkpoint_*"))]
        return bool(finished and started)

    interrupt_when(proc, one_finished_other_checkpointed)
    assert proc.returncode == 130
    (run_dir,) = results.glob("resumable_*")
    finished = next(t for t in trial_dirs(run_dir) if iterations(t) == [1, 2, 3, 4])
    finished_log = (finished / "progress.csv").read_text()

    done = cli(*train, "--resume", timeout=480)

    assert done.returncode == 0, done.stdout + done.stderr
    assert (finished / "progress.csv").read_text() == finished_log
    assert [iterations(t) for t in trial_dirs(run_dir)] == [[1, 2, 3, 4]] * 2


def test_quickstart_notebook_runs_headless_on_a_tiny_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("QUICKSTART_ENV_STEPS", "3000")
    monkeypatch.setenv("QUICKSTART_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("QUICKSTART_RAY_ADDRESS", "local")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)

    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 1  # the learning curve
    assert sum("image/gif" in o.get("data", {}) for o in outputs) == 1  # the rendered episode
    assert (tmp_path / "results" / "quickstart.gif").is_file()
