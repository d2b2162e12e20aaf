"""Wait until the Ray jobs API answers and the cluster has the expected alive nodes and GPUs.

The chart mounts this file from a ConfigMap and runs it in the experiment Job (the whole cluster),
the workers' init container (only the head) and the `helm test` pod. Settings come from env:
RAY_API_SERVER_ADDRESS, RAY_EXPECTED_NODES, RAY_EXPECTED_GPUS and RAY_WAIT_TIMEOUT_SECONDS.
Exits 0 once the cluster is ready, or with a message naming what it last saw after the timeout.
"""

from __future__ import annotations

import os
import sys
import time

from ray.job_submission import JobSubmissionClient
from ray.util.state import list_nodes

POLL_SECONDS = 5


def alive_nodes_and_gpus(address: str) -> tuple[int, float]:
    """Alive nodes and their GPUs; raises while the jobs or state API does not answer."""
    JobSubmissionClient(address).list_jobs()
    # A worker that restarted leaves a dead node behind; without this the state API raises.
    nodes = list_nodes(
        address=address, filters=[("state", "=", "ALIVE")], detail=True, raise_on_missing_output=False
    )
    return len(nodes), sum(node.resources_total.get("GPU", 0) for node in nodes)


def wait_for_cluster(address: str, want_nodes: int, want_gpus: float, timeout: float) -> str | None:
    """Poll until the cluster is ready; None then, else the message to fail with."""
    deadline = time.monotonic() + timeout
    seen = "no answer yet"
    while True:
        try:
            nodes, gpus = alive_nodes_and_gpus(address)
            seen = f"{nodes} alive nodes with {gpus:g} GPUs"
            if nodes >= want_nodes and gpus >= want_gpus:
                print(f"Ray cluster at {address} is ready: {seen}", flush=True)
                return None
        except Exception as error:
            seen = f"{type(error).__name__}: {error}"
        if time.monotonic() >= deadline:
            return (
                f"Ray cluster at {address} not ready after {timeout:g}s: expected "
                f"{want_nodes} nodes with {want_gpus:g} GPUs, last saw {seen}"
            )
        print(f"waiting for the Ray cluster at {address}: {seen}", flush=True)
        time.sleep(POLL_SECONDS)


def main() -> None:
    sys.exit(
        wait_for_cluster(
            os.environ["RAY_API_SERVER_ADDRESS"],
            int(os.environ["RAY_EXPECTED_NODES"]),
            float(os.environ["RAY_EXPECTED_GPUS"]),
            float(os.environ["RAY_WAIT_TIMEOUT_SECONDS"]),
        )
    )


if __name__ == "__main__":
    main()
