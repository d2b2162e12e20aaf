"""Session fixtures: one tiny trained sweep shared by the end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from experiment_helpers import QUICK, TINY, cli, sets, trial_dirs


@pytest.fixture(scope="session")
def sweep(tmp_path_factory):
    """A 2-trial grid over actor_lr, with evaluation (and GIFs) at iteration 2."""
    results = tmp_path_factory.mktemp("results")
    overrides = [
        *TINY,
        "name=tiny-sweep",
        "algorithm.actor_lr={grid_search: [0.01, 0.001]}",
        "evaluation={every_iterations: 2, episodes: 2, gif: true}",
    ]
    done = cli("train", "--config", str(QUICK), "--results-dir", str(results), *sets(*overrides), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    (experiment_dir,) = results.iterdir()
    return done, experiment_dir


@pytest.fixture(scope="session")
def checkpoint(sweep) -> Path:
    _, experiment_dir = sweep
    return sorted(trial_dirs(experiment_dir)[0].glob("checkpoint_*"))[-1]
