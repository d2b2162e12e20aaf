"""The image's entrypoint contract (image/README.md) runs as given from this checkout's .venv.

The commands are read from the README's `<!-- contract: NAME -->` blocks, so the page cannot drift
from what was tested. Two network namespaces stand in for the head pod and a worker pod, joined
by a veth pair, each with an /etc/hosts that maps the head Service name, as cluster DNS would
(the namespaces, hosts files, process tracking and the image's env come from ``tests/support``,
which the cluster tests use too).
Only what Kubernetes provides is substituted: the pod IP, mounted files (token files, the results
volume, the experiment ConfigMap) and, for the Job, the training command (issue 7's cluster test
runs real training), which here is a short driver that reports what it sees.
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from support.http import netns_http_get
from support.launcher import IMAGE_ENV, VENV_BIN
from support.network import add_netns, delete_netns, hosts_text, join_pair
from support.processes import kill_group, marked_pids, signal_quietly, spawn, wait_for
from support.render import ROOT

README = ROOT / "image" / "README.md"
HEAD_SERVICE = "ray-maddpg-head"
POD_IPS = {"head": "10.99.0.1", "worker": "10.99.0.2"}
# Every process started here carries this variable, so cleanup also finds Ray's own children.
MARKER = "RM_IMAGE_CONTRACT_RUN"
TAG = "contract/reward"
RAY_NODE_UP = "This command will now block forever"
MAX_RESTARTS = 5
STOP_GRACE_S = 5

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

DRIVER = """
import json, os, shutil, time
import ray, ray_maddpg

ray.init()
deadline = time.time() + 120
while sum(node["Alive"] for node in ray.nodes()) < 2 and time.time() < deadline:
    time.sleep(1)
print("CONTRACT " + json.dumps({
    "alive_nodes": sum(node["Alive"] for node in ray.nodes()),
    "gpus": ray.cluster_resources().get("GPU", 0),
    "experiment": open("experiment.yaml").read(),
    "trainer_version": ray_maddpg.__version__,
    "trainer_cli": shutil.which("ray-maddpg"),
}))
"""


def contract_commands() -> dict[str, str]:
    blocks = re.findall(r"<!-- contract: (\w+) -->\n```bash\n(.*?)```", README.read_text(), re.S)
    return {name: body.replace("\\\n", " ").strip() for name, body in blocks}


class Pods:
    """Pods as network namespaces; processes as process groups; everything removed by stop()."""

    def __init__(self) -> None:
        self.run_id = f"rmimg{os.getpid()}"
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.run_id}-", dir="/tmp"))
        self.token = secrets.token_hex(16)
        self.jupyter_token = secrets.token_hex(16)
        self.results = self.dir / "results"
        self.experiment = self.dir / "experiment"
        self.namespaces: list[str] = []
        self.processes: dict[str, subprocess.Popen] = {}
        self.specs: dict[str, tuple[list[str], dict[str, str]]] = {}
        self.restarts: dict[str, int] = {}
        self.logs: dict[str, Path] = {}

    def netns(self, pod: str) -> str:
        return f"{self.run_id}-{pod}"

    def create(self) -> None:
        for pod, address in POD_IPS.items():
            # A pod's /etc/hosts names the pod itself and, here, the head Service (cluster DNS's job).
            # The machine's hostname maps to the pod IP too: Ray resolves it, and a lookup that
            # goes to an unreachable nameserver stalls Ray's startup past its fixed 30 s limit.
            names = f"{pod} {socket.gethostname()}"
            hosts = hosts_text(names, address, [(POD_IPS["head"], HEAD_SERVICE, "default")])
            add_netns(self.netns(pod), hosts, resolv="options timeout:1 attempts:1\n")
            self.namespaces.append(self.netns(pod))
        join_pair(self.netns("head"), POD_IPS["head"], self.netns("worker"), POD_IPS["worker"])
        for path in ("ray-auth", "jupyter-auth", "results", "experiment", "home-head", "home-worker"):
            (self.dir / path).mkdir()
        (self.dir / "ray-auth" / "token").write_text(self.token)
        (self.dir / "jupyter-auth" / "token").write_text(self.jupyter_token)
        (self.experiment / "experiment.yaml").write_text("name: contract\n")
        (self.experiment / "check_cluster.py").write_text(DRIVER)

    def env(self, pod: str, **extra: str) -> dict[str, str]:
        """The image's env (venv first on PATH, a writable HOME) plus what the chart sets."""
        return {
            **IMAGE_ENV,
            "HOME": str(self.dir / f"home-{pod}"),
            "POD_IP": POD_IPS[pod],
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.dir / "ray-auth" / "token"),
            MARKER: f"{self.run_id}/{pod}",
            **extra,
        }

    def ray_flags(self, temp_dir: str) -> list[str]:
        """Flags the chart's rayStartParams could add: a temp dir per pod (pods share no /tmp),
        a small node, since this machine is shared, and fixed agent ports: with port 0 the raylet
        waits for the agents to report theirs, and on a busy machine Python agents can take
        longer than that wait allows."""
        return [
            f"--temp-dir={self.dir / temp_dir}",
            "--num-cpus=1",
            "--object-store-memory=200000000",
            "--dashboard-agent-grpc-port=52366",
            "--runtime-env-agent-port=52367",
            "--metrics-export-port=52368",
        ]

    def shell(self, pod: str, command: str, extra_args: list[str]) -> list[str]:
        """Run a contract command as a container would: one process (exec), extra flags appended."""
        return [
            "ip",
            "netns",
            "exec",
            self.netns(pod),
            "bash",
            "-c",
            f'exec {command} "$@"',
            "contract",
            *extra_args,
        ]

    def start(self, pod: str, name: str, command: str, extra_args: list[str] = (), **env: str) -> None:
        self.specs[name] = (self.shell(pod, command, list(extra_args)), self.env(pod, **env))
        self.restarts[name] = 0
        self.logs[name] = self.dir / f"{name}.log"
        self._launch(name)

    def _launch(self, name: str) -> None:
        argv, env = self.specs[name]
        self.processes[name] = spawn(argv, env, self.logs[name], mode="ab")

    def keep_running(self, name: str) -> None:
        """Restart an exited container, as the kubelet does for a Deployment.

        On a busy machine `ray start` can exceed Ray's fixed 30 s wait for its raylet and exit;
        in a pod that is a container restart, so it is one here too (at most MAX_RESTARTS).
        """
        process = self.processes[name]
        if process.poll() is None:
            return
        assert self.restarts[name] < MAX_RESTARTS, (
            f"{name} exited {process.returncode} {MAX_RESTARTS + 1} times:\n{self.logs[name].read_text()[-3000:]}"
        )
        kill_group(process, signal.SIGKILL)
        self.restarts[name] += 1
        self._launch(name)

    def wait_until(self, name: str, ready, what: str, timeout: float = 300) -> None:
        def ready_or_restarted() -> bool:
            if ready():
                return True
            self.keep_running(name)
            return False

        try:
            wait_for(ready_or_restarted, timeout, what)
        except TimeoutError:
            log = self.logs[name].read_text()[-3000:]
            raise AssertionError(f"{name}: {what} not seen in {timeout}s:\n{log}") from None

    def wait_ray_node(self, name: str) -> None:
        """`ray start --block` logs this line once its node has registered with the GCS."""
        self.wait_until(name, lambda: RAY_NODE_UP in self.logs[name].read_text(), RAY_NODE_UP)

    def run(self, pod: str, command: str, timeout: float, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.shell(pod, command, []),
            env=self.env(pod, **env),
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )

    def http(self, pod: str, url: str) -> tuple[int, str]:
        """Status and body of a GET from inside the pod's network namespace (0 when nothing answers)."""
        return netns_http_get(self.netns(pod), url)

    def wait_http(self, pod: str, url: str, name: str, until=lambda status, body: status == 200):
        answer = {}

        def ready() -> bool:
            answer["status"], answer["body"] = self.http(pod, url)
            return until(answer["status"], answer["body"])

        self.wait_until(name, ready, f"the expected answer from {url}")
        return answer["status"], answer["body"]

    def stop(self) -> None:
        # SIGTERM lets `ray start --block` stop its node; the group kill then catches stragglers.
        # One short grace for all: nothing here is checked after the tests, and a Ray node's
        # orderly stop took 20 s and more, most of the module's teardown.
        for process in self.processes.values():
            kill_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            kill_group(process, signal.SIGKILL)
            process.wait(timeout=10)
        for pid in marked_pids(f"{self.run_id}/", MARKER):
            signal_quietly(pid, signal.SIGKILL)
        for name in self.namespaces:
            delete_netns(name)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def pods():
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("curl"):
        pytest.skip("needs root, iproute2 and curl for the pods' network namespaces (CI runs as root)")
    pods = Pods()
    try:
        pods.create()
        yield pods
    finally:
        pods.stop()


@pytest.fixture(scope="module")
def sidecars(pods) -> None:
    """The head pod's Jupyter and TensorBoard containers (stopped with the pods).

    Tests run as root and the image as uid 1000, so Jupyter gets --allow-root here only.
    """
    commands = contract_commands()
    write_scalar(pods.results / "contract_run")
    pods.start(
        "head",
        "jupyter",
        commands["jupyter"].replace("=/results", f"={pods.results}"),
        ["--allow-root"],
        JUPYTER_TOKEN_FILE=str(pods.dir / "jupyter-auth" / "token"),
    )
    pods.start("head", "tensorboard", commands["tensorboard"].replace("=/results", f"={pods.results}"))


@pytest.fixture(scope="module")
def ray_cluster(pods) -> None:
    """The Ray head, then a worker in its own pod (stopped with the pods)."""
    commands = contract_commands()
    pods.start("head", "head", commands["head"], pods.ray_flags("ray-head"))
    pods.wait_ray_node("head")
    pods.start("worker", "worker", commands["worker"], pods.ray_flags("ray-worker"))
    pods.wait_ray_node("worker")


def write_scalar(logdir: Path) -> None:
    from tensorboardX import SummaryWriter

    with SummaryWriter(str(logdir)) as writer:
        for step in range(3):
            writer.add_scalar(TAG, float(step), step)


@pytest.fixture(scope="module")
def job(pods, ray_cluster) -> subprocess.CompletedProcess:
    """The Job pod's command, submitted from the worker's namespace through the head Service name."""
    command = contract_commands()["job"]
    command = command.replace("=/experiment", f"={pods.experiment}")
    command = command[: command.index(" -- ")] + " -- python check_cluster.py"
    return pods.run("worker", command, timeout=300, RAY_API_SERVER_ADDRESS=f"http://{HEAD_SERVICE}:8265")


def job_report(job: subprocess.CompletedProcess) -> dict:
    line = next((line for line in job.stdout.splitlines() if line.startswith("CONTRACT ")), None)
    assert line, f"the driver printed no report:\n{job.stdout[-3000:]}\n{job.stderr[-3000:]}"
    return json.loads(line.removeprefix("CONTRACT "))


def test_readme_documents_all_five_contract_commands():
    assert set(contract_commands()) == {"head", "worker", "jupyter", "tensorboard", "job"}


def test_jupyter_answers_200_with_the_token(pods, sidecars):
    url = f"http://127.0.0.1:8888/api/status?token={pods.jupyter_token}"
    status, _ = pods.wait_http("head", url, "jupyter")
    assert status == 200


def test_jupyter_answers_403_without_the_token(pods, sidecars):
    pods.wait_http("head", "http://127.0.0.1:8888/api", "jupyter")
    status, _ = pods.http("head", "http://127.0.0.1:8888/api/status")
    assert status == 403


def test_tensorboard_serves_the_scalars_under_the_results_dir(pods, sidecars):
    url = "http://127.0.0.1:6006/data/plugin/scalars/tags"
    _, body = pods.wait_http(
        "head", url, "tensorboard", until=lambda status, body: status == 200 and TAG in body
    )
    assert TAG in json.loads(body)["contract_run"]


def test_tensorboard_listens_on_all_interfaces_for_its_service(pods, sidecars):
    pods.wait_http("head", "http://127.0.0.1:6006/", "tensorboard")
    status, _ = pods.http("worker", f"http://{POD_IPS['head']}:6006/")
    assert status == 200


def test_job_submit_exits_zero_when_the_driver_succeeds(job):
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]


def test_worker_joins_the_head_through_the_service_name_with_its_gpu(job):
    report = job_report(job)
    assert report["alive_nodes"] == 2
    assert report["gpus"] == 1, "the worker's --num-gpus=1"


def test_job_driver_runs_on_the_head_in_the_uploaded_experiment_dir(job):
    assert job_report(job)["experiment"] == "name: contract\n"


def test_job_driver_finds_the_trainer_and_its_cli_on_path(job):
    report = job_report(job)
    import ray_maddpg

    assert report["trainer_version"] == ray_maddpg.__version__
    assert report["trainer_cli"] == str(VENV_BIN / "ray-maddpg")


def test_job_submit_with_a_wrong_token_is_refused(pods, job):
    command = contract_commands()["job"].replace("=/experiment", f"={pods.experiment}")
    refused = pods.run(
        "worker",
        command,
        timeout=120,
        RAY_API_SERVER_ADDRESS=f"http://{HEAD_SERVICE}:8265",
        RAY_AUTH_TOKEN=secrets.token_hex(16),
        RAY_AUTH_TOKEN_PATH="",
    )
    assert refused.returncode != 0
    assert "Invalid authentication token" in refused.stdout + refused.stderr
