"""`make image` (image/build.sh) picks docker, podman or buildah, tags the trainer's version, passes build args."""

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_SH = ROOT / "image" / "build.sh"
VERSION = tomllib.loads((ROOT / "trainer" / "pyproject.toml").read_text())["project"]["version"]
# What build.sh needs besides a builder; the fake bin dir holds only these, so a real docker,
# podman or buildah elsewhere on the machine cannot leak in.
TOOLS = ("sed", "head", "dirname")


@pytest.fixture
def fake_bin(tmp_path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    return bin_dir


def fake_builder(bin_dir: Path, name: str, usable_docker: bool = True) -> Path:
    """A builder that records its arguments; a fake docker answers `buildx version` and `info`."""
    log = bin_dir.parent / f"{name}.args"
    answers = "exit 0" if usable_docker else "exit 1"
    script = bin_dir / name
    script.write_text(
        "#!/bin/bash\n"
        f'case "$1 $2" in "buildx version"|"info ") {answers};; esac\n'
        f'printf "%s\\n" "$@" > {log}\n'
    )
    script.chmod(0o755)
    return log


def run_build(bin_dir: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["/bin/bash", str(BUILD_SH)],
        env={"PATH": str(bin_dir), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_build_fails_with_a_clear_message_when_no_builder_is_installed(fake_bin):
    result = run_build(fake_bin)
    assert result.returncode != 0
    assert "install docker" in result.stderr and "podman" in result.stderr and "buildah" in result.stderr


def test_build_uses_docker_buildx_and_tags_the_trainer_version(fake_bin):
    log = fake_builder(fake_bin, "docker")
    result = run_build(fake_bin)
    assert result.returncode == 0, result.stderr
    args = log.read_text().splitlines()
    assert args[:3] == ["buildx", "build", "--load"]
    assert args[args.index("--tag") + 1] == f"ray-maddpg:{VERSION}"
    assert args[args.index("--file") + 1] == str(ROOT / "image" / "Dockerfile")
    assert args[-1] == str(ROOT), "the build context is the repository root"


def test_build_passes_base_image_and_torch_index_as_build_args(fake_bin):
    log = fake_builder(fake_bin, "podman")
    base = "nvidia/cuda:12.8.1-runtime-ubuntu24.04"
    index = "https://download.pytorch.org/whl/cu128"
    result = run_build(fake_bin, BASE_IMAGE=base, TORCH_INDEX_URL=index)
    assert result.returncode == 0, result.stderr
    args = log.read_text().splitlines()
    build_args = [value for flag, value in zip(args, args[1:], strict=False) if flag == "--build-arg"]
    assert build_args == [f"BASE_IMAGE={base}", f"TORCH_INDEX_URL={index}"]


def test_build_passes_no_build_args_when_none_are_set(fake_bin):
    log = fake_builder(fake_bin, "podman")
    assert run_build(fake_bin).returncode == 0
    assert "--build-arg" not in log.read_text().splitlines()


def test_build_falls_back_to_podman_when_docker_has_no_daemon(fake_bin):
    docker_log = fake_builder(fake_bin, "docker", usable_docker=False)
    podman_log = fake_builder(fake_bin, "podman")
    result = run_build(fake_bin)
    assert result.returncode == 0, result.stderr
    assert "docker is here but unusable" in result.stderr
    assert podman_log.read_text().splitlines()[0] == "build"
    assert not docker_log.exists() or "build" not in docker_log.read_text().splitlines()


def test_build_uses_buildah_when_it_is_the_only_builder(fake_bin):
    log = fake_builder(fake_bin, "buildah")
    assert run_build(fake_bin).returncode == 0
    assert log.read_text().splitlines()[0] == "build"


def test_image_variable_renames_the_repository_but_keeps_the_version_tag(fake_bin):
    log = fake_builder(fake_bin, "buildah")
    assert run_build(fake_bin, IMAGE="registry.example/team/ray-maddpg").returncode == 0
    args = log.read_text().splitlines()
    assert args[args.index("--tag") + 1] == f"registry.example/team/ray-maddpg:{VERSION}"


def test_make_image_runs_the_build_script():
    result = subprocess.run(
        ["make", "--no-print-directory", "--dry-run", "image"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        # Under `make test` the parent make's flags would leak into this one.
        env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")},
    )
    assert result.stdout.strip() == "bash image/build.sh"
