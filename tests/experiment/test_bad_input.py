"""Bad input: one clear message, exit code 2, nothing written in the results dir."""

import socket
import time

import pytest
import yaml
from experiment_helpers import QUICK, cli

from ray_maddpg.cli import main
from ray_maddpg.experiment import runner


@pytest.fixture
def results(tmp_path):
    return tmp_path / "results"


def train(config, results, *extra):
    return main(["train", "--config", str(config), "--results-dir", str(results), *extra])


def write(tmp_path, text):
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return path


def test_malformed_yaml_exits_2_and_writes_nothing(tmp_path, results, capsys):
    config = write(tmp_path, "scenario: simple_spread\nenv: {N: 3\n")
    assert train(config, results) == 2
    assert "malformed YAML" in capsys.readouterr().err
    assert not results.exists()


def test_unknown_key_exits_2_naming_the_key(tmp_path, results, capsys):
    data = yaml.safe_load(QUICK.read_text())
    data["algorithm"]["learning_rate"] = 0.1
    assert train(write(tmp_path, yaml.safe_dump(data)), results) == 2
    assert "algorithm.learning_rate: unknown key" in capsys.readouterr().err
    assert not results.exists()


def test_wrong_type_exits_2_naming_the_field_and_value(results, capsys):
    assert train(QUICK, results, "--set", "stop.env_steps=lots") == 2
    assert "stop.env_steps: must be an integer >= 1 (got 'lots')" in capsys.readouterr().err
    assert not results.exists()


def test_missing_experiment_file_exits_2(tmp_path, results, capsys):
    assert train(tmp_path / "nope.yaml", results) == 2
    assert "file not found" in capsys.readouterr().err


def test_resume_without_a_previous_run_exits_2(results, capsys):
    assert train(QUICK, results, "--resume") == 2
    assert "no interrupted run" in capsys.readouterr().err


def test_resume_with_a_file_for_another_scenario_exits_2(results, capsys):
    previous = results / "quick-simple-spread_20260101-000000"
    previous.mkdir(parents=True)
    (previous / "tuner.pkl").write_bytes(b"")
    (previous / "experiment.yaml").write_text(QUICK.read_text())
    assert (
        train(QUICK, results, "--resume", "--set", "scenario=simple_tag", "--set", "env={max_cycles: 25}")
        == 2
    )
    assert "was trained on 'simple_spread', not 'simple_tag'" in capsys.readouterr().err


@pytest.mark.e2e
def test_a_trial_larger_than_the_local_ray_exits_2_instead_of_waiting_forever(results, capsys):
    # Tune would queue this trial for good (it only warns); the local Ray cannot grow.
    too_big = ("--set", "resources.num_env_runners=1", "--set", "resources.num_cpus_per_env_runner=100000")
    assert train(QUICK, results, *too_big) == 2
    err = capsys.readouterr().err
    assert "resources" in err and "num_env_runners" in err and "this Ray has" in err
    assert not results.exists() or not any(results.iterdir())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_address_where_no_ray_answers_exits_2_at_once(results, capsys):
    # ray.init would retry it for minutes, printing GCS warnings.
    address = f"127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    assert train(QUICK, results, "--address", address) == 2
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err
    assert f"--address: no Ray answers at {address}" in err and "ray start --head" in err
    assert not results.exists()


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("http://127.0.0.1:8265", "is not a Ray address"),
        ("127.0.0.1", "is not host:port"),
        ("127.0.0.1:port", "is not host:port"),
    ],
)
def test_a_malformed_address_exits_2_naming_the_form(results, capsys, address, says):
    assert train(QUICK, results, "--address", address) == 2
    assert f"--address: '{address}' {says}" in capsys.readouterr().err


def test_a_wrong_ray_address_variable_is_named_as_such(results, capsys, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{_closed_port()}")
    assert train(QUICK, results) == 2
    assert "RAY_ADDRESS: no Ray answers at" in capsys.readouterr().err


def test_a_local_ray_that_never_starts_exits_3_with_one_message(results, capsys, monkeypatch, tmp_path):
    import ray

    def fail(**kwargs):
        raise RuntimeError("The current node timed out during startup. This could happen because ...")

    monkeypatch.setattr(ray, "init", fail)
    monkeypatch.setattr(runner, "LOCAL_START_ATTEMPTS", 2)
    monkeypatch.setattr(runner, "LOCAL_START_BACKOFF_S", 0.0)
    monkeypatch.setattr(runner, "ray_logs_dir", lambda: tmp_path)  # no raylet log: no cause named
    assert train(QUICK, results) == 3
    err = capsys.readouterr().err
    assert "retrying in 0 s" in err
    assert "the embedded local Ray did not start (attempt 2 of 2: The current node timed out" in err
    assert f"Ray's logs: {tmp_path}" in err
    assert "ray-project/ray#65983" not in err
    assert "Traceback" not in err
    assert not results.exists()


def test_a_raylet_that_gave_up_on_its_agent_is_named_as_the_cause(results, capsys, monkeypatch, tmp_path):
    import ray

    def fail(**kwargs):
        raise RuntimeError("The current node timed out during startup. This could happen because ...")

    # What Ray 2.60's raylet logs when the dashboard agent misses its 15 s (seen in CI).
    (tmp_path / "raylet.out").write_text(
        "[2026-12-02 03:34:29,120 C 4101 4101] (raylet) node_manager.cc:3576: Check failed: "
        "statussetor3576.has_value() Timed out waiting for file /tmp/ray/session_x/metrics_agent_port_ab\n"
    )
    monkeypatch.setattr(ray, "init", fail)
    monkeypatch.setattr(runner, "LOCAL_START_ATTEMPTS", 1)
    monkeypatch.setattr(runner, "ray_logs_dir", lambda: tmp_path)
    assert train(QUICK, results) == 3
    err = capsys.readouterr().err
    assert "the raylet stopped waiting for its dashboard agent" in err
    assert "ray-project/ray#65983" in err
    assert "Traceback" not in err


def test_evaluate_a_missing_checkpoint_exits_2(tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(tmp_path / "gone"), "--episodes", "1"]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_evaluate_a_dir_that_is_no_checkpoint_exits_2(tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(tmp_path), "--episodes", "1"]) == 2
    assert "not a MADDPG checkpoint" in capsys.readouterr().err


def test_render_to_a_non_gif_path_exits_2_before_loading_anything(tmp_path, capsys):
    assert main(["render", "--checkpoint", str(tmp_path / "gone"), "--out", str(tmp_path / "x.mp4")]) == 2
    assert "--out: must end in .gif" in capsys.readouterr().err


def test_the_installed_command_reports_bad_input_without_a_traceback(tmp_path):
    done = cli("train", "--config", str(QUICK), "--results-dir", str(tmp_path / "r"), "--set", "env.N=0")
    assert done.returncode == 2
    assert "env.N: must be a positive integer" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists()
