"""files/wait_for_cluster.py against a fake jobs and state API, and how the chart ships and runs it."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest
from support.render import CHART_DIR, container, env_of, mounted_file, pod_spec, render

SCRIPT = CHART_DIR / "files" / "wait_for_cluster.py"
ADDRESS = "http://ray-maddpg-head:8265"
# The containers that run the script: the workers' init container, the Job's, the `helm test` pod's.
WAITS = (
    ("Deployment", "worker", "wait-for-head"),
    ("Job", "experiment", "wait-for-cluster"),
    ("Pod", "test", "check-cluster"),
)


def load_script():
    spec = importlib.util.spec_from_file_location("wait_for_cluster", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeRay:
    """The cluster as the script sees it: one answer (a node list, or an error) per poll, on a fake clock."""

    def __init__(self, answers: list):
        self.answers = answers
        self.now = 0.0
        self.sleeps: list[float] = []
        self.list_nodes_calls: list[dict] = []
        self.jobs_api_addresses: list[str] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def job_client(self, address: str):
        """Each poll starts here: it takes the next answer (the last one repeats)."""
        self.jobs_api_addresses.append(address)
        self.current = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(self.current, Exception):
            raise self.current
        return SimpleNamespace(list_jobs=lambda: [])

    def list_nodes(self, **kwargs):
        self.list_nodes_calls.append(kwargs)
        return self.current


def nodes(*gpus: float) -> list:
    return [SimpleNamespace(resources_total={"CPU": 4.0} | ({"GPU": g} if g else {})) for g in gpus]


@pytest.fixture
def script():
    return load_script()


@pytest.fixture
def fake(script, monkeypatch):
    ray = FakeRay([ConnectionError("no head yet")])
    monkeypatch.setattr(script, "JobSubmissionClient", ray.job_client)
    monkeypatch.setattr(script, "list_nodes", ray.list_nodes)
    monkeypatch.setattr(script, "time", ray)
    return ray


def test_wait_returns_once_the_expected_nodes_and_gpus_are_alive(script, fake, capsys):
    fake.answers = [nodes(0, 1, 1)]
    assert script.wait_for_cluster(ADDRESS, 3, 2, timeout=60) is None
    assert fake.sleeps == []
    assert capsys.readouterr().out == f"Ray cluster at {ADDRESS} is ready: 3 alive nodes with 2 GPUs\n"


def test_wait_asks_the_jobs_api_then_the_state_api_for_alive_nodes_only(script, fake):
    fake.answers = [nodes(0)]
    script.wait_for_cluster(ADDRESS, 1, 0, timeout=60)
    assert fake.jobs_api_addresses == [ADDRESS]
    # A restarted worker leaves a dead node behind, which must neither count nor make the API raise.
    assert fake.list_nodes_calls == [
        {
            "address": ADDRESS,
            "filters": [("state", "=", "ALIVE")],
            "detail": True,
            "raise_on_missing_output": False,
        }
    ]


def test_wait_polls_every_five_seconds_while_the_head_does_not_answer(script, fake, capsys):
    fake.answers = [ConnectionError("refused"), ConnectionError("refused"), nodes(0, 1)]
    assert script.wait_for_cluster(ADDRESS, 2, 1, timeout=60) is None
    assert fake.sleeps == [5, 5]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"waiting for the Ray cluster at {ADDRESS}: ConnectionError: refused"
    assert out[-1].endswith("is ready: 2 alive nodes with 1 GPUs")


def test_wait_keeps_waiting_for_gpus_when_enough_nodes_are_alive(script, fake):
    fake.answers = [nodes(0, 0), nodes(0, 1)]
    assert script.wait_for_cluster(ADDRESS, 2, 1, timeout=60) is None
    assert fake.sleeps == [5]


def test_wait_gives_up_after_the_timeout_naming_what_it_expected_and_last_saw(script, fake):
    fake.answers = [ConnectionError("refused"), nodes(0, 1)]
    message = script.wait_for_cluster(ADDRESS, 3, 2, timeout=12)
    assert message == (
        f"Ray cluster at {ADDRESS} not ready after 12s: expected 3 nodes with 2 GPUs, "
        "last saw 2 alive nodes with 1 GPUs"
    )
    assert fake.now >= 12 and fake.sleeps == [5, 5, 5]


def test_main_reads_its_settings_from_env_and_exits_with_the_failure_message(script, fake, monkeypatch):
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", ADDRESS)
    monkeypatch.setenv("RAY_EXPECTED_NODES", "2")
    monkeypatch.setenv("RAY_EXPECTED_GPUS", "1")
    monkeypatch.setenv("RAY_WAIT_TIMEOUT_SECONDS", "0")
    fake.answers = [nodes(0)]
    with pytest.raises(SystemExit) as failed:
        script.main()
    assert failed.value.code.endswith("expected 2 nodes with 1 GPUs, last saw 1 alive nodes with 0 GPUs")
    fake.answers = [nodes(0, 1)]
    with pytest.raises(SystemExit) as ready:
        script.main()
    assert ready.value.code is None


# ---------------------------------------------------------------- in the chart


def test_chart_ships_the_script_unchanged_in_its_config_map(rendered):
    config_map = rendered.get("ConfigMap", "wait-for-cluster")
    assert config_map["data"] == {"wait_for_cluster.py": SCRIPT.read_text()}


@pytest.mark.parametrize("kind, component, name", WAITS, ids=[w[2] for w in WAITS])
def test_every_wait_runs_the_script_from_the_config_map_against_the_head(kind, component, name):
    rendered = render()
    obj = rendered.get(kind, component)
    wait = container(obj, name)
    assert wait["command"][0] == "python" and len(wait["command"]) == 2
    volume, key = mounted_file(obj, wait, wait["command"][1])
    assert volume["configMap"]["name"] == rendered.get("ConfigMap", "wait-for-cluster")["metadata"]["name"]
    assert key == "wait_for_cluster.py"
    assert env_of(wait)["RAY_API_SERVER_ADDRESS"]["value"] == ADDRESS
    assert volume in pod_spec(obj)["volumes"]
