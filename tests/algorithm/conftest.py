"""A local Ray for the algorithm tests that need one."""

from __future__ import annotations

import time

import pytest
import ray


@pytest.fixture(scope="session")
def local_ray():
    """An embedded Ray with 2 CPUs; retried because a busy machine can time out its startup."""
    for attempt in range(3):
        try:
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception:
            if attempt == 2:
                raise
            ray.shutdown()
            time.sleep(5)
    yield
    ray.shutdown()
