"""Render the chart with the real Helm engine (helm-python-sdk) and read the rendered objects."""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "ray-maddpg"
VALUES_DIR = ROOT / "values"
RELEASE = "ray-maddpg"
NAMESPACE = "ml"

# The chart's defaults and every example a user starts from.
VALUE_SETS = {"defaults": {}} | {
    path.stem: yaml.safe_load(path.read_text()) for path in sorted(VALUES_DIR.glob("*.yaml"))
}


@dataclass
class Rendered:
    """One render: template path -> text, and the parsed objects."""

    texts: dict[str, str]
    objects: list[dict]

    def of_kind(self, kind: str) -> list[dict]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def get(self, kind: str, component: str) -> dict:
        """The one object of this kind whose component label matches."""
        found = [
            obj for obj in self.of_kind(kind) if labels(obj).get("app.kubernetes.io/component") == component
        ]
        assert len(found) == 1, f"expected one {kind} for component {component}, found {len(found)}"
        return found[0]

    def named(self, kind: str, name: str) -> dict:
        found = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} named {name}, found {len(found)}"
        return found[0]


@functools.cache
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART_DIR)


@functools.cache
def _render_cached(values_json: str, revision: int) -> Rendered:
    texts = chart().render(json.loads(values_json), name=RELEASE, namespace=NAMESPACE, revision=revision)
    objects = []
    for path, text in texts.items():
        if path.endswith(".yaml"):
            for doc in yaml.safe_load_all(text):
                if doc:
                    doc["__template__"] = path
                    objects.append(doc)
    return Rendered(texts, objects)


def render(values: dict | None = None, revision: int = 1) -> Rendered:
    """Render with these values over the chart's defaults; a fresh copy callers may change."""
    return copy.deepcopy(_render_cached(json.dumps(values or {}, sort_keys=True), revision))


def manifest(obj: dict) -> dict:
    """The object as Kubernetes sees it (without the template path we attach)."""
    return {key: value for key, value in obj.items() if key != "__template__"}


def labels(obj: dict) -> dict:
    return obj["metadata"].get("labels", {})


def pod_spec(obj: dict) -> dict | None:
    if obj["kind"] == "Pod":
        return obj["spec"]
    if obj["kind"] in ("Deployment", "Job"):
        return obj["spec"]["template"]["spec"]
    return None


def pod_labels(obj: dict) -> dict:
    return labels(obj) if obj["kind"] == "Pod" else obj["spec"]["template"]["metadata"]["labels"]


def all_containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec["containers"]


def container(obj: dict, name: str) -> dict:
    found = [c for c in all_containers(pod_spec(obj)) if c["name"] == name]
    assert len(found) == 1, f"no container {name} in {obj['metadata']['name']}"
    return found[0]


def mounted_file(obj: dict, c: dict, path: str) -> tuple[dict, str]:
    """(volume, key) of the file at ``path`` in container ``c``: a key of a Secret or ConfigMap volume."""
    volumes = {v["name"]: v for v in pod_spec(obj)["volumes"]}
    for mount in c["volumeMounts"]:
        if path.startswith(mount["mountPath"] + "/"):
            return volumes[mount["name"]], path.removeprefix(mount["mountPath"] + "/")
    raise AssertionError(f"{path} is not in a volume mounted in {c['name']}")


def env_of(c: dict) -> dict[str, dict]:
    return {item["name"]: item for item in c.get("env", [])}


def workloads(rendered: Rendered) -> list[dict]:
    return [obj for obj in rendered.objects if pod_spec(obj) is not None]
