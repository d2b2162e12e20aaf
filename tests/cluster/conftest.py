"""The chart's cluster, started once per test module from the rendered manifests."""

from __future__ import annotations

import os
import shutil

import pytest
from cluster_support import ARTIFACTS, OVERRIDES, VALUES, ray_nodes_alive
from support.cluster import Cluster
from support.render import render_files


def require_root_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("the cluster harness needs root (network and mount namespaces); CI runs as root")
    missing = [tool for tool in ("ip", "unshare", "nsenter", "chroot", "mount") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the cluster harness needs {missing}")


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return render_files(VALUES, OVERRIDES)


@pytest.fixture(scope="module")
def cluster(request, objects):
    require_root_tools()
    cluster = Cluster(objects)
    request.addfinalizer(cluster.stop)  # also when start() itself fails
    logs = ARTIFACTS / "cluster" / request.module.__name__
    shutil.rmtree(logs, ignore_errors=True)
    try:
        cluster.start()
        cluster.wait(lambda: ray_nodes_alive(cluster) == 3, 300, "the head and 2 workers to join", interval=3)
        yield cluster
    finally:
        cluster.save_logs(logs)
        cluster.stop()


@pytest.fixture(scope="module")
def results(cluster):
    """The results PVC, as one dir shared by every pod."""
    (claim,) = [o["metadata"]["name"] for o in cluster.objects if o.get("kind") == "PersistentVolumeClaim"]
    return cluster.pvc_dirs[claim]
