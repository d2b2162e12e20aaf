"""image/gpu_check.py runs the RLlib MADDPG learner's updates and reports updates/s per device."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small_check(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "result.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "image" / "gpu_check.py"),
            "--batch",
            "32",
            "--updates",
            "2",
            "--warmup",
            "0",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result, json.loads(out.read_text()) if out.exists() else None


def test_gpu_check_passes_its_cpu_leg(small_check):
    result, report = small_check
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    cpu = report["legs"][0]
    assert cpu["device"] == "cpu" and cpu["ok"]
    assert cpu["module_devices"] == ["cpu"] and cpu["losses_finite"]
    assert cpu["updates_per_s"] > 0


def test_gpu_check_times_three_simple_spread_agents_at_the_requested_batch(small_check):
    _, report = small_check
    assert report["legs"][0]["agents"] == 3
    assert report["legs"][0]["batch"] == 32


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA, so the CUDA leg runs instead")
def test_gpu_check_says_it_skipped_cuda_without_a_device(small_check):
    result, report = small_check
    assert "cuda: skipped, no CUDA device here" in result.stdout
    assert [leg["device"] for leg in report["legs"]] == ["cpu"]
