"""The lock file, the trainer's declared dependencies and the versions agree."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def read_lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, version = line.partition("==")
        assert version, f"requirements.lock line is not an exact pin: {line!r}"
        pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def declared_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "trainer" / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra if not r.startswith("ray-maddpg")]
    return reqs


def test_every_declared_dependency_is_pinned_in_the_lock_within_its_range():
    lock = read_lock()
    for req in declared_requirements():
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in lock, (
            f"{req.name} is declared in trainer/pyproject.toml but missing from requirements.lock"
        )
        assert req.specifier.contains(lock[name], prereleases=True), (
            f"requirements.lock pins {req.name}=={lock[name]}, outside the declared {req.specifier}"
        )


def test_lock_pins_torch_and_ray_exactly_as_the_contract_says():
    lock = read_lock()
    assert lock["torch"] == "2.13.0", "torch carries no +cpu/+cuXXX tag so the image can take the CUDA wheel"
    assert lock["ray"] == "2.60.0"


def test_package_version_matches_pyproject():
    import ray_maddpg

    project = tomllib.loads((ROOT / "trainer" / "pyproject.toml").read_text())["project"]
    assert ray_maddpg.__version__ == project["version"]


def test_importing_ray_builds_no_iri_parsers():
    """``make install`` removes rfc3987-syntax (Makefile, SLOW_UNUSED_PACKAGES): jsonschema, which
    every ray import loads, would otherwise build its Earley parsers, 2.4 s of CPU per process."""
    probe = "import sys, ray; print(sorted(m for m in sys.modules if m.startswith('rfc3987_syntax')))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", (
        f"importing ray loaded {out.strip()}: run `{sys.executable} -m pip uninstall -y rfc3987-syntax` "
        "(a fresh `make install` does it)"
    )
