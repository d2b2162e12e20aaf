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
    """One render: template path -> text, the parsed objects and the template each came from."""

    texts: dict[str, str]
    objects: list[dict]
    templates: list[str]  # templates[i] rendered objects[i]

    def template(self, obj: dict) -> str:
        return next(path for other, path in zip(self.objects, self.templates, strict=True) if other is obj)

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
def _render_cached(values_json: str, revision: int, release: str, namespace: str) -> Rendered:
    texts = chart().render(
        json.loads(values_json), name=release, namespace=namespace, revision=revision, is_upgrade=revision > 1
    )
    objects, templates = [], []
    for path, text in texts.items():
        if path.endswith(".yaml"):
            for doc in yaml.safe_load_all(text):
                if isinstance(doc, dict):
                    objects.append(doc)
                    templates.append(path)
    return Rendered(texts, objects, templates)


def render(
    values: dict | None = None, revision: int = 1, *, release: str = RELEASE, namespace: str = NAMESPACE
) -> Rendered:
    """Render with these values over the chart's defaults (as ``helm upgrade`` when revision > 1);
    a fresh copy callers may change."""
    values_json = json.dumps(values or {}, sort_keys=True)
    return copy.deepcopy(_render_cached(values_json, revision, release, namespace))


def render_files(
    values_files: list[Path],
    overrides: dict | None = None,
    *,
    release: str = "rm",
    namespace: str = "default",
    revision: int = 1,
) -> list[dict]:
    """The objects of ``helm template -f FILE... --set ...``."""
    values: dict = {}
    for path in values_files:
        deep_merge(values, yaml.safe_load(Path(path).read_text()) or {})
    deep_merge(values, copy.deepcopy(overrides or {}))
    return render(values, revision, release=release, namespace=namespace).objects


def deep_merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = value
    return base


# ---------------------------------------------------------------- queries on rendered objects


def labels(obj: dict) -> dict:
    return obj["metadata"].get("labels") or {}


def is_hook(obj: dict) -> bool:
    return "helm.sh/hook" in (obj.get("metadata", {}).get("annotations") or {})


def find(objects: list[dict], kind: str, component: str | None = None) -> list[dict]:
    """Objects of ``kind`` (hooks excluded), optionally with app.kubernetes.io/component."""
    return [
        obj
        for obj in objects
        if obj.get("kind") == kind
        and not is_hook(obj)
        and (component is None or labels(obj).get("app.kubernetes.io/component") == component)
    ]


def lookup(objects: list[dict], kind: str, name: str) -> dict | None:
    """The object of this kind and name, hooks included; None when the chart does not render it."""
    return next((o for o in objects if o.get("kind") == kind and o["metadata"]["name"] == name), None)


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
