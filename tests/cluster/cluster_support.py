"""What the cluster tests share: the values they render, Ray's HTTP APIs, results, Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

from support.cluster import Cluster
from support.http import http_get
from support.kube import decoded_secret
from support.pods import Pod
from support.render import ROOT, find, render_files

ARTIFACTS = ROOT / "tests" / "artifacts"
VALUES = [ROOT / "values" / "cpu-only.yaml"]
# A few iterations of simple_spread: small enough for 2 cores, large enough to learn and checkpoint.
# One iteration is 2,500 env steps (MADDPGConfig.min_sample_timesteps_per_iteration).
ITERATION_ENV_STEPS = 2500
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
    # Sampling inside the trial's own actor: a remote env runner is one more process to start
    # (about 10 s here) for each trial; the worker-fault run asks for two.
    "resources": {"num_env_runners": 0, "num_envs_per_env_runner": 4, "num_gpus_per_learner": 0},
    "stop": {"env_steps": 3 * ITERATION_ENV_STEPS},
    "checkpoint": {"every_iterations": 1, "keep": 2},
    "seed": 0,
}
OVERRIDES = {
    "worker": {"replicas": 2},
    # The head runs no trials, so every trial and env runner lives on a worker that a test can kill.
    "head": {"rayStartParams": {"num-cpus": "0"}},
    "experiment": {"config": TINY_EXPERIMENT, "waitTimeoutSeconds": 300},
}


def render_experiment(revision: int, train_args: list[str] | None = None, **experiment) -> list[dict]:
    """The chart at ``revision`` (as ``helm upgrade`` renders it) with the experiment's keys replaced."""
    overrides = {**OVERRIDES, "experiment": {**OVERRIDES["experiment"], "trainArgs": train_args or []}}
    overrides["experiment"]["config"] = {**TINY_EXPERIMENT, **experiment}
    return render_files(VALUES, overrides, revision=revision)


def job_of(objects: list[dict]) -> dict:
    (job,) = find(objects, "Job")
    return job


# ---------------------------------------------------------------- Ray's HTTP APIs on the head


def ray_auth_header(objects: list[dict]) -> dict[str, str]:
    (secret,) = [s for s in find(objects, "Secret") if s["metadata"]["name"].endswith("ray-auth")]
    return {"Authorization": f"Bearer {decoded_secret(secret)['token'].decode()}"}


def ray_api(cluster: Cluster, path: str, method: str = "GET") -> dict | list | None:
    """JSON from the head's dashboard (jobs and state APIs), with the cluster's token; None if down."""
    url = cluster.url(cluster.service("head"), "dashboard", path)
    if method == "GET":
        status, body = http_get(url, ray_auth_header(cluster.objects))
        return json.loads(body) if status == 200 else None
    request = urllib.request.Request(url, method=method, headers=ray_auth_header(cluster.objects))
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def state(cluster: Cluster, resource: str) -> list[dict]:
    answer = ray_api(cluster, f"/api/v0/{resource}?limit=1000&detail=1")
    return answer["data"]["result"]["result"] if answer else []


def ray_nodes_alive(cluster: Cluster) -> int:
    """Alive nodes as Ray's state API on the head reports them."""
    return sum(node["state"] == "ALIVE" for node in state(cluster, "nodes"))


def pod_of_node(cluster: Cluster, node_id: str) -> Pod:
    (ip,) = [n["node_ip"] for n in state(cluster, "nodes") if n["node_id"] == node_id]
    (pod,) = [p for p in cluster.pods if p.ip == ip and p.kind == "Deployment"]
    return pod


def running_job_ids(cluster: Cluster) -> list[str]:
    return [j["submission_id"] for j in ray_api(cluster, "/api/jobs/") or [] if j["status"] == "RUNNING"]


# ---------------------------------------------------------------- results on the shared volume


def experiment_dir(results: Path, name: str) -> Path | None:
    runs = sorted(results.glob(f"{name}_*"))
    return runs[-1] if runs else None


def trial_dirs(results: Path, name: str) -> list[Path]:
    run = experiment_dir(results, name)
    return sorted(p for p in run.iterdir() if (p / "result.json").exists()) if run else []


def trial_results(trial: Path) -> list[dict]:
    return [json.loads(line) for line in (trial / "result.json").read_text().splitlines() if line.strip()]


def checkpoints(results: Path, name: str) -> list[Path]:
    run = experiment_dir(results, name)
    return sorted(run.glob("*/checkpoint_*")) if run else []


def state_saved_since(results: Path, name: str, since: float) -> bool:
    """Tune's experiment state was written after ``since`` (a ``time.time()``).

    Only a checkpoint that the state lists is one `--resume` knows about: Tune snapshots its state
    every few seconds, so a driver that dies right after a checkpoint resumes from the one before.
    """
    run = experiment_dir(results, name)
    return bool(run) and any(s.stat().st_mtime > since for s in run.glob("experiment_state-*.json"))


# ---------------------------------------------------------------- secrets and Chromium


def secret_of(objects: list[dict], suffix: str) -> str:
    (secret,) = [s for s in find(objects, "Secret") if s["metadata"]["name"].endswith(suffix)]
    return decoded_secret(secret)["token"].decode()


def screenshot(url: str, png: Path, *, wait_ms: int = 15000, expect: tuple[str, ...] = ()) -> str:
    """Load ``url`` in Debian's headless Chromium, save a screenshot to ``png``, return the DOM.

    Pages render lazily and Chromium's virtual time runs slower on a busy machine, so while the
    DOM lacks any of ``expect`` it tries twice more, doubling the time budget each time.
    """
    for attempt in range(3):
        dom = _chromium_shot(url, png, wait_ms * 2**attempt)
        if all(text in dom for text in expect):
            break
    return dom


def _chromium_shot(url: str, png: Path, wait_ms: int) -> str:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
    profile = png.parent / f".profile-{png.stem}"
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
        "--window-size=1400,900",
        f"--virtual-time-budget={wait_ms}",
    ]
    try:
        shutil.rmtree(profile, ignore_errors=True)
        shot = subprocess.run(
            [chromium, *flags, f"--user-data-dir={profile}", f"--screenshot={png}", url],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(profile, ignore_errors=True)
        dom = subprocess.run(
            [chromium, *flags, f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert shot.returncode == 0 and png.exists(), f"chromium screenshot failed: {shot.stderr[-2000:]}"
    return dom.stdout
