"""The chart's cluster, started once per test module from the rendered manifests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from harness import REPO, Cluster, decoded_secret, find, http_get, render

ARTIFACTS = REPO / "tests" / "artifacts"
VALUES = [REPO / "values" / "cpu-only.yaml"]
# A few iterations of simple_spread: small enough for 2 cores, large enough to learn and checkpoint.
TINY_EXPERIMENT = {
    "name": "cluster-e2e",
    "scenario": "simple_spread",
    "env": {"N": 3, "max_cycles": 25},
    "algorithm": {
        "train_batch_size_per_learner": 128,
        "num_steps_sampled_before_learning_starts": 500,
        "env_steps_per_update": 100,
        "replay_buffer_capacity": 20000,
    },
    "resources": {"num_env_runners": 1, "num_envs_per_env_runner": 4, "num_gpus_per_learner": 0},
    "stop": {"env_steps": 7500},
    "checkpoint": {"every_iterations": 1, "keep": 2},
    "seed": 0,
}
OVERRIDES = {
    "worker": {"replicas": 2},
    "experiment": {"config": TINY_EXPERIMENT, "waitTimeoutSeconds": 300},
}


def values_with(**experiment) -> dict:
    """OVERRIDES with the experiment file's top-level keys replaced."""
    overrides = {**OVERRIDES, "experiment": {**OVERRIDES["experiment"]}}
    overrides["experiment"]["config"] = {**TINY_EXPERIMENT, **experiment}
    return overrides


def require_root_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("the cluster harness needs root (network and mount namespaces); CI runs as root")
    missing = [tool for tool in ("ip", "unshare", "nsenter", "chroot", "mount") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the cluster harness needs {missing}")


def ray_auth_header(objects: list[dict]) -> dict[str, str]:
    (secret,) = [s for s in find(objects, "Secret") if s["metadata"]["name"].endswith("ray-auth")]
    return {"Authorization": f"Bearer {decoded_secret(secret)['token'].decode()}"}


def ray_nodes_alive(cluster: Cluster) -> int:
    """Alive nodes as Ray's state API on the head reports them (with the cluster's token)."""
    url = cluster.url(cluster.service("head"), "dashboard", "/api/v0/nodes?limit=100")
    status, body = http_get(url, ray_auth_header(cluster.objects))
    if status != 200:
        return 0
    return sum(node["state"] == "ALIVE" for node in json.loads(body)["data"]["result"]["result"])


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return render(VALUES, OVERRIDES)


@pytest.fixture(scope="module")
def cluster(request, objects):
    require_root_tools()
    cluster = Cluster(objects)
    request.addfinalizer(cluster.stop)
    try:
        cluster.start()
        cluster.wait(lambda: ray_nodes_alive(cluster) == 3, 300, "the head and 2 workers to join", interval=3)
        yield cluster
    finally:
        cluster.save_logs(ARTIFACTS / "cluster" / request.module.__name__)
        cluster.stop()


@pytest.fixture(scope="module")
def secrets(objects) -> dict[str, dict[str, str]]:
    """The rendered Secrets, decoded as Kubernetes would: {secret name: {key: value}}."""
    return {
        s["metadata"]["name"]: {k: v.decode() for k, v in decoded_secret(s).items()}
        for s in find(objects, "Secret")
    }


def secret_of(secrets: dict, component: str) -> str:
    (value,) = [data["token"] for name, data in secrets.items() if name.endswith(component)]
    return value


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium)")
    return path


def screenshot(url: str, png, *, wait_ms: int = 15000) -> str:
    """Load ``url`` in headless Chromium, save a screenshot to ``png``, return the DOM."""
    profile = png.parent / f".profile-{png.stem}"
    shutil.rmtree(profile, ignore_errors=True)
    png.parent.mkdir(parents=True, exist_ok=True)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1400,900",
        f"--virtual-time-budget={wait_ms}",
        "--run-all-compositor-stages-before-draw",
    ]
    try:
        shot = subprocess.run(
            [chromium(), *flags, f"--screenshot={png}", url], capture_output=True, timeout=120
        )
        dom = subprocess.run(
            [chromium(), *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert shot.returncode == 0 and png.exists(), f"chromium screenshot failed: {shot.stderr[-2000:]}"
    return dom.stdout
