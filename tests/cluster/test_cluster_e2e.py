"""The chart's cluster, run for real: rendered pods as processes, one network namespace each.

One cluster (head + 2 workers) serves the whole module. The first Job run trains a tiny
experiment; the later tests read its results, then the fault tests break things on purpose.
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import ARTIFACTS, ray_auth_header, ray_nodes_alive, screenshot, secret_of
from harness import http_get

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained(cluster):
    """The chart's Job, run once to completion: (container, results dir)."""
    job = cluster.run_job(timeout=600)
    print(job.output()[-3000:])
    return job, cluster.pvc_dirs[next(iter(cluster.pvc_dirs))]


def test_workers_join_the_head_as_three_ray_nodes(cluster):
    assert ray_nodes_alive(cluster) == 3


def test_ray_jobs_api_refuses_a_request_without_the_auth_token(cluster):
    url = cluster.url(cluster.service("head"), "dashboard", "/api/jobs/")
    refused, _ = http_get(url)
    accepted, _ = http_get(url, ray_auth_header(cluster.objects))
    assert refused in (401, 403)
    assert accepted == 200


def test_jupyter_answers_403_without_the_token(cluster):
    url = cluster.url(cluster.service("jupyter"), path="/api/contents")
    cluster.wait(lambda: http_get(url)[0] != 0, 180, "JupyterLab to listen")
    assert http_get(url)[0] == 403


def test_jupyter_answers_200_with_the_token_from_its_secret(cluster, secrets):
    token = secret_of(secrets, "jupyter")
    url = cluster.url(cluster.service("jupyter"), path="/api/contents")
    assert http_get(url, {"Authorization": f"token {token}"})[0] == 200


def test_experiment_job_trains_and_exits_zero(trained):
    job, _ = trained
    assert job.process.returncode == 0, job.output()[-6000:]


def test_results_and_checkpoints_land_in_the_shared_results_dir(trained):
    _, results = trained
    assert list(results.rglob("result.json")), f"no Tune result.json under {results}"
    assert list(results.rglob("checkpoint_*")), f"no checkpoint under {results}"


def test_tensorboard_serves_the_runs_scalars(cluster, trained):
    url = cluster.url(cluster.service("tensorboard"), path="/data/plugin/scalars/tags")
    cluster.wait(lambda: "episode_return" in http_get(url)[1], 120, "TensorBoard to load the run's scalars")
    tags = json.loads(http_get(url)[1])
    assert any("episode_return_mean" in tag for run in tags.values() for tag in run)


def test_chromium_shows_the_run_on_tensorboards_scalars_page(cluster, trained):
    url = cluster.url(cluster.service("tensorboard"), path="/#timeseries")
    dom = screenshot(url, ARTIFACTS / "tensorboard-scalars.png")
    assert "episode_return_mean" in dom


def test_chromium_shows_the_results_in_jupyterlab(cluster, secrets, trained):
    token = secret_of(secrets, "jupyter")
    url = cluster.url(cluster.service("jupyter"), path=f"/lab?token={token}")
    dom = screenshot(url, ARTIFACTS / "jupyterlab.png")
    assert "jp-LabShell" in dom
    assert re.search(r"cluster-e2e", dom), "the file browser does not list the run's results dir"
