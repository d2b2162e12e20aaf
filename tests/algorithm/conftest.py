"""A local Ray for the algorithm tests that need one."""

from __future__ import annotations

import pytest
import ray

from ray_maddpg.experiment.runner import connect


@pytest.fixture(scope="module")
def local_ray():
    """An embedded Ray (the CLI's own startup, which retries on a saturated machine)."""
    connect(None)
    yield
    ray.shutdown()
