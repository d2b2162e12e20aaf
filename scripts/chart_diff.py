"""Show how the chart's rendered objects differ between a git revision and the working tree.

    python scripts/chart_diff.py [--base REV]

Renders the defaults, every values/*.yaml and a few variants that reach the chart's other
branches, with the real Helm engine, from `git archive REV charts/ray-maddpg` and from the working
tree, and prints every difference between the objects. What a refactoring may change without
changing what Kubernetes gets is left out: template paths, the order of YAML keys and of named
list items (containers, env, volumes, ports), whose reordering is printed as one line per list,
and the values of generated Secrets (random on each render). Exit 1 when anything differs.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import helm_python
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = "charts/ray-maddpg"
RELEASE, NAMESPACE = "ray-maddpg", "ml"

# Beyond the examples: the other side of each switch the examples leave alone.
VARIANTS = {
    "s3": {
        "storage": {
            "type": "s3",
            "s3": {
                "uri": "s3://b/runs",
                "endpointUrl": "http://minio:9000",
                "region": "eu-1",
                "credentialsSecret": "s3",
            },
        }
    },
    "everything-off": {
        "rayAuth": {"enabled": False},
        "jupyter": {"enabled": False},
        "tensorboard": {"enabled": False},
        "experiment": {"enabled": False},
        "networkPolicy": {"enabled": False},
        "serviceAccount": {"create": False},
        "worker": {"podDisruptionBudget": {"enabled": False}},
    },
    "existing-and-extras": {
        "fullnameOverride": "rl",
        "image": {"digest": "sha256:" + "a" * 64, "pullSecrets": ["registry"]},
        "rayAuth": {"existingSecret": "ray-token"},
        "jupyter": {"existingSecret": "nb-token", "service": {"nodePort": 30888}},
        "tensorboard": {"service": {"type": "ClusterIP"}},
        "experiment": {
            "existingConfigMap": "exp",
            "submitArgs": ["--entrypoint-num-cpus=1"],
            "trainArgs": ["--resume"],
        },
        "storage": {"pvc": {"create": False, "existingClaim": "shared"}},
        "head": {"gpus": 1, "rayStartParams": {"num-cpus": "0"}, "podAnnotations": {"a": "b"}},
        "worker": {"runtimeClassName": "nvidia", "nodeSelector": {"gpu": "a100"}, "affinity": {"x": {}}},
        "extraEnv": [{"name": "WANDB_MODE", "value": "offline"}],
        "extraVolumes": [{"name": "data", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "data", "mountPath": "/data"}],
        "networkPolicy": {"extraIngress": [{"from": [{"namespaceSelector": {}}]}]},
    },
}


def value_sets() -> dict[str, dict]:
    examples = {
        path.stem: yaml.safe_load(path.read_text()) for path in sorted((ROOT / "values").glob("*.yaml"))
    }
    return {"defaults": {}} | examples | VARIANTS


def chart_at(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", rev, CHART], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / CHART


def render(chart: Path, values: dict) -> dict[str, object]:
    """(kind/name) -> the object, plus NOTES.txt as text."""
    texts = helm_python.Chart.load(str(chart)).render(values, name=RELEASE, namespace=NAMESPACE)
    found: dict[str, object] = {}
    for path, text in texts.items():
        if path.endswith("NOTES.txt"):
            found["NOTES.txt"] = text
            continue
        for obj in yaml.safe_load_all(text):
            if obj:
                if obj["kind"] == "Secret":
                    obj["data"] = {key: "<generated>" for key in obj.get("data", {})}
                found[f"{obj['kind']}/{obj['metadata']['name']}"] = obj
    return found


def named(items: list) -> dict | None:
    """A list of objects with unique names, as a mapping by name; None for any other list."""
    if items and all(isinstance(item, dict) and "name" in item for item in items):
        names = [item["name"] for item in items]
        if len(set(names)) == len(names):
            return dict(zip(names, items, strict=True))
    return None


def short(value) -> str:
    text = repr(value)
    return text if len(text) <= 120 else f"{text[:100]}... ({len(text)} chars)"


def diff(before, after, path: str) -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        lines = []
        for key in sorted(before.keys() | after.keys(), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in after:
                lines.append(f"- {where}: {short(before[key])}")
            elif key not in before:
                lines.append(f"+ {where}: {short(after[key])}")
            else:
                lines += diff(before[key], after[key], where)
        return lines
    if isinstance(before, list) and isinstance(after, list):
        by_name_before, by_name_after = named(before), named(after)
        if by_name_before is not None and by_name_after is not None:
            lines = diff(by_name_before, by_name_after, path)
            common = [name for name in by_name_before if name in by_name_after]
            if common != [name for name in by_name_after if name in by_name_before]:
                lines.append(
                    f"~ {path}: order {common} -> {[n for n in by_name_after if n in by_name_before]}"
                )
            return lines
    return [] if before == after else [f"~ {path}: {short(before)} -> {short(after)}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="git revision to compare with (default HEAD)")
    args = parser.parse_args(argv)
    changed = False
    with tempfile.TemporaryDirectory() as tmp:
        base = chart_at(args.base, Path(tmp))
        for name, values in value_sets().items():
            lines = diff(render(base, values), render(ROOT / CHART, values), "")
            print(f"{name}: {'no differences' if not lines else f'{len(lines)} difference(s)'}")
            print("".join(f"  {line}\n" for line in lines), end="")
            changed = changed or bool(lines)
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
