"""The chart's cluster, run for real: rendered pods as processes, one network namespace each.

One cluster (head + 2 workers) serves the whole module. The Job trains a tiny experiment and
the checks read its results; then the fault tests break a worker, the driver and the head, in
that order (the head restart goes last: it takes the whole cluster down).
"""

from __future__ import annotations

import json
import signal
import time

import pytest
from cluster_support import (
    ARTIFACTS,
    ITERATION_ENV_STEPS,
    checkpoints,
    job_of,
    pod_of_node,
    ray_auth_header,
    ray_nodes_alive,
    render_experiment,
    running_job_ids,
    screenshot,
    secret_of,
    state,
    state_saved_since,
    trial_dirs,
    trial_results,
)
from support.cluster import Cluster
from support.http import http_get

pytestmark = pytest.mark.e2e

RESTARTS = "num_remote_worker_restarts"
# The interrupted trial is long enough that its driver dies mid-run on a fast machine too.
RESUME_STOP_ITERATIONS = 5
# The worker-fault run stops once the lost runner is restored, or after this much training time.
# Restoring it can wait for the killed pod's restart (the other worker has no free CPU), which
# a loaded machine slows: fixed lengths of 20 and 40 iterations and of 120 s each ended a loaded
# fresh-clone run before the restart (at 120 s: 9 iterations of 13 s, one runner healthy).
WORKER_FAULT_SECONDS = 420


@pytest.fixture(scope="module")
def trained(cluster):
    """The chart's own Job (revision 1), run to completion."""
    return cluster.run_job(timeout=600)


# ---------------------------------------------------------------- the cluster as rendered


def test_workers_join_the_head_as_three_ray_nodes(cluster):
    assert ray_nodes_alive(cluster) == 3


def test_ray_jobs_api_refuses_a_request_without_the_auth_token(cluster):
    url = cluster.url(cluster.service("head"), "dashboard", "/api/jobs/")
    assert http_get(url)[0] in (401, 403)
    assert http_get(url, ray_auth_header(cluster.objects))[0] == 200


def test_jupyter_answers_403_without_the_token(cluster):
    url = cluster.url(cluster.service("jupyter"), path="/api/contents")
    cluster.wait(lambda: http_get(url)[0] != 0, 180, "JupyterLab to listen")
    assert http_get(url)[0] == 403


def test_jupyter_answers_200_with_the_token_from_its_secret(cluster):
    token = secret_of(cluster.objects, "jupyter")
    url = cluster.url(cluster.service("jupyter"), path="/api/contents")
    assert http_get(url, {"Authorization": f"token {token}"})[0] == 200


# ---------------------------------------------------------------- the experiment Job


def test_experiment_job_trains_and_exits_zero(trained):
    assert trained.process.returncode == 0, trained.output()[-6000:]


def test_results_and_checkpoints_land_in_the_shared_results_dir(trained, results):
    (trial,) = trial_dirs(results, "cluster-e2e")
    assert trial_results(trial)[-1]["env_runners"]["num_env_steps_sampled_lifetime"] >= 7500
    assert checkpoints(results, "cluster-e2e")


def test_tensorboard_serves_the_runs_scalars(cluster, trained):
    url = cluster.url(cluster.service("tensorboard"), path="/data/plugin/scalars/tags")
    cluster.wait(lambda: "cluster-e2e" in http_get(url)[1], 120, "TensorBoard to load the run")
    (tags,) = [tags for run, tags in json.loads(http_get(url)[1]).items() if run.startswith("cluster-e2e")]
    assert any(tag.endswith("env_runners/episode_return_mean") for tag in tags)


def test_chromium_shows_the_runs_return_on_tensorboards_scalars_page(cluster, trained):
    url = cluster.url(cluster.service("tensorboard"), path="/?tagFilter=episode_return_mean#timeseries")
    dom = screenshot(
        url, ARTIFACTS / "tensorboard-scalars.png", expect=("cluster-e2e", "episode_return_mean")
    )
    assert "cluster-e2e" in dom
    assert "episode_return_mean" in dom


def test_chromium_shows_the_results_dir_in_jupyterlab(cluster, trained):
    token = secret_of(cluster.objects, "jupyter")
    url = cluster.url(cluster.service("jupyter"), path=f"/lab?token={token}")
    dom = screenshot(url, ARTIFACTS / "jupyterlab.png", wait_ms=25000, expect=("jp-LabShell", "cluster-e2e_"))
    assert "jp-LabShell" in dom
    assert "cluster-e2e_" in dom, "JupyterLab's file browser does not list the run's results dir"


# ---------------------------------------------------------------- fault: a worker dies


def env_runner_only_worker(cluster: Cluster) -> tuple[str, object]:
    """(node id, pod) of a worker that hosts env runners but not the trial (the algorithm)."""
    actors = [a for a in state(cluster, "actors") if a["state"] == "ALIVE"]
    runner_nodes = {a["node_id"] for a in actors if "EnvRunner" in a["class_name"]}
    trial_nodes = {a["node_id"] for a in actors if a["class_name"] == "MADDPG"}
    (node,) = runner_nodes - trial_nodes
    return node, pod_of_node(cluster, node)


@pytest.fixture(scope="module")
def worker_fault(cluster, results, trained):
    """A run with 2 env runners, whose runner-only worker loses its raylet after the 1st checkpoint.
    Returns the job, the killed pod and the trial's last result before the kill."""
    cluster.upgrade(
        render_experiment(
            2,
            name="cluster-worker-fault",
            # Helm merges maps with the values file's, whose env_steps (40 iterations here) would
            # stop the run first; null deletes it.
            stop={"env_runner_restarts": 1, "time_total_s": WORKER_FAULT_SECONDS, "env_steps": None},
            resources={"num_env_runners": 2, "num_envs_per_env_runner": 4, "num_gpus_per_learner": 0},
        )
    )
    job = cluster.start_job(job_of(cluster.objects))
    # A checkpoint is on disk before its result is logged (result.json starts empty); the kill
    # waits for both.
    cluster.wait(
        lambda: (
            checkpoints(results, "cluster-worker-fault")
            and any(trial_results(t) for t in trial_dirs(results, "cluster-worker-fault"))
        ),
        400,
        "the first checkpoint and result",
        0.5,
    )
    node, victim = env_runner_only_worker(cluster)
    assert cluster.kill_process(victim, "raylet", signal.SIGKILL), f"no raylet found in {victim.name}"
    (trial,) = trial_dirs(results, "cluster-worker-fault")
    before_kill = trial_results(trial)[-1]
    job.process.wait(timeout=600)
    assert before_kill["time_total_s"] < WORKER_FAULT_SECONDS, (
        "the raylet died only after the trial had finished"
    )
    return job, victim, before_kill


def fault_timeline(run: list[dict]) -> list[tuple]:
    """(iteration, training seconds, restarts, healthy runners) per result: what a failure shows."""
    return [
        (
            r["training_iteration"],
            round(r["time_total_s"]),
            r["fault_tolerance"][RESTARTS],
            r["fault_tolerance"].get("num_healthy_workers"),
        )
        for r in run
    ]


def test_training_finishes_after_a_worker_raylet_dies_mid_run(worker_fault, results):
    job, _, before_kill = worker_fault
    assert job.process.returncode == 0, job.output()[-6000:]
    (trial,) = trial_dirs(results, "cluster-worker-fault")
    last = trial_results(trial)[-1]
    assert last["training_iteration"] > before_kill["training_iteration"]
    assert (
        last["env_runners"]["num_env_steps_sampled_lifetime"]
        > before_kill["env_runners"]["num_env_steps_sampled_lifetime"]
    )


def test_the_run_reports_the_env_runner_restart(worker_fault, results):
    _, _, before_kill = worker_fault
    (trial,) = trial_dirs(results, "cluster-worker-fault")
    run = trial_results(trial)
    assert run[-1]["fault_tolerance"][RESTARTS] >= 1, (before_kill["training_iteration"], fault_timeline(run))


def test_the_dead_worker_restarts_and_rejoins_the_cluster(worker_fault, cluster):
    _, victim, _ = worker_fault
    assert victim.container("ray-worker").restarts >= 1
    cluster.wait(lambda: ray_nodes_alive(cluster) == 3, 180, "the restarted worker to rejoin", 3)


# ---------------------------------------------------------------- fault: the driver dies


@pytest.fixture(scope="module")
def driver_fault(cluster, results, worker_fault):
    """Two trials one after the other; the driver dies during the second and is resubmitted."""
    experiment = {
        "name": "cluster-resume",
        "tune": {"seeds": [0, 1], "max_concurrent_trials": 1},
        "stop": {"env_steps": RESUME_STOP_ITERATIONS * ITERATION_ENV_STEPS},
    }
    cluster.upgrade(render_experiment(3, **experiment))
    job = cluster.start_job(job_of(cluster.objects))
    cluster.wait(
        lambda: (
            len(trial_dirs(results, "cluster-resume")) == 2
            and len({c.parent for c in checkpoints(results, "cluster-resume")}) == 2
        ),
        500,
        "the second trial's first checkpoint",
        0.5,
    )
    seen = time.time()
    cluster.wait(
        lambda: state_saved_since(results, "cluster-resume", seen), 60, "Tune's state to record it", 0.2
    )
    # The driver runs on the head: kill it at once (as the OOM killer would), and the Job pod
    # with it. A graceful stop lets the trial run on for seconds, long enough to finish it.
    (submission,) = running_job_ids(cluster)
    (head,) = cluster.pods_of("head")
    assert cluster.kill_process(head, "ray-maddpg train"), "no driver process on the head"
    cluster.kill_pod(job.pod)
    cluster.wait(lambda: submission not in running_job_ids(cluster), 120, "Ray to see the driver gone")
    first, second = trial_dirs(results, "cluster-resume")
    before = {"first": trial_results(first), "second": trial_results(second)}
    cluster.upgrade(render_experiment(4, train_args=["--resume"], **experiment))
    resumed = cluster.run_job(job_of(cluster.objects), timeout=600)
    return resumed, before


def test_resubmitting_with_resume_after_the_driver_died_exits_zero(driver_fault):
    resumed, _ = driver_fault
    assert resumed.process.returncode == 0, resumed.output()[-6000:]


def test_resume_continues_the_interrupted_trial_from_its_last_checkpoint(driver_fault, results):
    _, before = driver_fault
    interrupted_at = before["second"][-1]["training_iteration"]
    assert interrupted_at < RESUME_STOP_ITERATIONS, "the driver died only after the trial had finished"
    _, second = trial_dirs(results, "cluster-resume")
    iterations = [r["training_iteration"] for r in trial_results(second)]
    assert iterations.count(1) == 1, f"the trial started over: iterations {iterations}"
    assert iterations[-1] == RESUME_STOP_ITERATIONS, f"iterations {iterations}"
    steps = trial_results(second)[-1]["env_runners"]["num_env_steps_sampled_lifetime"]
    assert steps >= RESUME_STOP_ITERATIONS * ITERATION_ENV_STEPS


def test_resume_keeps_the_finished_trial_as_it_was(driver_fault, results):
    _, before = driver_fault
    first, _ = trial_dirs(results, "cluster-resume")
    assert trial_results(first) == before["first"]


# ---------------------------------------------------------------- fault: the head restarts


@pytest.fixture(scope="module")
def head_restart(cluster, results, driver_fault):
    """A long run whose head container is killed (and restarted by the 'kubelet') mid-run."""
    cluster.upgrade(render_experiment(5, name="cluster-head-restart", stop={"env_steps": 1_000_000}))
    job = cluster.start_job(job_of(cluster.objects))
    cluster.wait(lambda: checkpoints(results, "cluster-head-restart"), 400, "the first checkpoint", 0.5)
    (head,) = cluster.pods_of("head")
    cluster.restart_container(head, "ray-head")
    job.process.wait(timeout=300)
    return job


def test_the_job_fails_when_the_head_restarts_mid_run(head_restart):
    assert head_restart.process.returncode != 0


def test_the_job_says_the_ray_head_went_away(head_restart):
    output = head_restart.output()
    assert "Traceback" not in output[-3000:], output[-3000:]
    assert "head" in output[-3000:].lower(), output[-3000:]
