"""`ray-maddpg submit`: `ray job submit`'s output and exit code, with a message for a traceback.

A fake `ray` on PATH plays `ray job submit`'s endings; the real one against a real head runs in
tests/image (token refused) and tests/cluster (the head restarts mid-run).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ray_maddpg.submit import explain

CLI = Path(sys.executable).parent / "ray-maddpg"

WEBSOCKET = "RuntimeError: WebSocket connection closed unexpectedly with close code 1006"


@pytest.fixture
def fake_ray(tmp_path):
    """Install a `ray` that prints $OUT to stdout, $ERR to stderr and exits $CODE; return a runner."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ray = bin_dir / "ray"
    ray.write_text('#!/bin/sh\necho "args: $*"\nprintf "%b" "$OUT"\nprintf "%b" "$ERR" >&2\nexit "$CODE"\n')
    ray.chmod(0o755)

    def run(*args, out="", err="", code=0):
        env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "OUT": out,
            "ERR": err,
            "CODE": str(code),
        }
        return subprocess.run(
            [str(CLI), "submit", *args], capture_output=True, text=True, env=env, timeout=60
        )

    return run


def traceback_ending(last: str) -> str:
    return f'Traceback (most recent call last):\\n  File "ray", line 8, in <module>\\n{last}\\n'


def test_passes_every_argument_and_the_success_through(fake_ray):
    done = fake_ray("--address=http://head:8265", "--", "ray-maddpg", "train", out="Job succeeded\\n")
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        "args: job submit --address=http://head:8265 -- ray-maddpg train",
        "Job succeeded",
    ]


def test_keeps_the_jobs_failure_code_and_its_output(fake_ray):
    done = fake_ray("--", "false", out="Job 'x' failed\\n", err="some warning\\n", code=1)
    assert done.returncode == 1
    assert "Job 'x' failed" in done.stdout
    assert done.stderr == "some warning\n"


def test_head_lost_mid_run_becomes_one_message_without_the_traceback(fake_ray):
    done = fake_ray(
        "--address=http://rm-head:8265",
        out="Job 'raysubmit_1' submitted successfully\\n",
        err="INFO closing\\n" + traceback_ending(WEBSOCKET),
        code=1,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("INFO closing\n")
    (message,) = done.stderr.splitlines()[1:]
    assert "lost the Ray head at http://rm-head:8265" in message
    assert "--resume" in message and "docs/fault-tolerance.md" in message


def test_an_unreachable_head_before_submission_says_so(fake_ray):
    done = fake_ray("--", "true", err=traceback_ending("ConnectionError: Failed to connect to Ray"), code=1)
    assert "cannot reach the Ray head's jobs API" in done.stderr
    assert "Traceback" not in done.stderr


def test_any_other_traceback_keeps_its_whole_exception_message(fake_ray):
    # Ray's refused-token error spans lines, with the key words on the first.
    message = (
        "RuntimeError: Authentication failed: Forbidden: Invalid authentication token\\n\\nToken auth is on."
    )
    done = fake_ray("--", "true", err=traceback_ending(message), code=1)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "ray-maddpg submit: `ray job submit` failed: RuntimeError: Authentication failed: "
        "Forbidden: Invalid authentication token Token auth is on."
    )


def test_a_traceback_in_a_successful_run_is_left_as_it_was(fake_ray):
    done = fake_ray("--", "true", err=traceback_ending("ValueError: harmless"), code=0)
    assert done.returncode == 0
    assert "Traceback (most recent call last):" in done.stderr


def test_address_falls_back_to_the_environment(monkeypatch):
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "http://env-head:8265")
    from ray_maddpg.submit import _address

    assert _address([]) == "http://env-head:8265"
    assert _address(["--address", "http://flag:8265"]) == "http://flag:8265"
    assert "env-head" not in explain(WEBSOCKET, _address(["--address=http://x:1"]), True)


def test_without_arguments_it_prints_help_and_exits_2():
    done = subprocess.run([str(CLI), "submit"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "ray job submit" in done.stdout
