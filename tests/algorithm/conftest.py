"""A local Ray for the algorithm tests that need one."""

from __future__ import annotations

import os

import pytest
import ray
from ray_maddpg.experiment.runner import connect


@pytest.fixture(scope="module")
def local_ray():
    """An embedded Ray (the CLI's own startup, with its retries).

    On a busy machine Ray's dashboard agent can come up after the raylet's default wait
    for it, and the raylet aborts; a longer wait avoids that.
    """
    os.environ.setdefault("RAY_agent_register_timeout_ms", "120000")
    connect(None)
    yield
    ray.shutdown()
