"""Puts ``tests/`` on sys.path, so that every test directory imports the shared ``support`` package,
and holds the fixtures that more than one test directory uses."""

import sys
from pathlib import Path

import pytest

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)


@pytest.fixture(scope="module")
def local_ray():
    """An embedded Ray for one test module (the CLI's own startup, which retries on a saturated
    machine). Imported here, not at the top: most test modules never need Ray."""
    import ray

    from ray_maddpg.experiment.runner import connect

    connect(None)
    yield
    ray.shutdown()
