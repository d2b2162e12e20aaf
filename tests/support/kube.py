"""Kubernetes semantics: ``$(VAR)`` expansion, Secret and ConfigMap data, Service links,
resource quantities, the downward API and a container's env."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

from support.render import find, lookup

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: ``$$`` escapes, unknown references stay as written."""

    def sub(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR_REF.sub(sub, text)


def decoded_secret(secret: dict) -> dict[str, bytes]:
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    data.update({k: v.encode() for k, v in (secret.get("stringData") or {}).items()})
    return data


def configmap_data(configmap: dict) -> dict[str, bytes]:
    data = {k: v.encode() for k, v in (configmap.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (configmap.get("binaryData") or {}).items()})
    return data


def object_data(objects: list[dict], kind: str, name: str) -> dict[str, bytes] | None:
    """The decoded data of a Secret or ConfigMap; None when the chart does not render it."""
    obj = lookup(objects, kind, name)
    if obj is None:
        return None
    return decoded_secret(obj) if kind == "Secret" else configmap_data(obj)


def service_link_env(services: list[dict], address: Callable[[dict], str]) -> dict[str, str]:
    """The ``<SVC>_SERVICE_HOST``/``<SVC>_PORT...`` variables the kubelet injects into pods."""
    env: dict[str, str] = {}
    for svc in services:
        ports = svc["spec"].get("ports") or []
        if not ports or svc["spec"].get("clusterIP") == "None":
            continue
        name = svc["metadata"]["name"].upper().replace("-", "_")
        host = address(svc)
        first = ports[0]
        env[f"{name}_SERVICE_HOST"] = host
        env[f"{name}_SERVICE_PORT"] = str(first["port"])
        env[f"{name}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{host}:{first['port']}"
        for port in ports:
            proto = port.get("protocol", "TCP")
            prefix = f"{name}_PORT_{port['port']}_{proto}"
            env[prefix] = f"{proto.lower()}://{host}:{port['port']}"
            env[f"{prefix}_PROTO"] = proto.lower()
            env[f"{prefix}_PORT"] = str(port["port"])
            env[f"{prefix}_ADDR"] = host
            if port.get("name"):
                env[f"{name}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port["port"])
    return env


_CPU = {"m": 0.001}
_MEM = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def quantity(text: str | int | float) -> float:
    text = str(text)
    for suffix, scale in {**_MEM, **_CPU}.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def downward_field(template: dict, path: str, values: dict[str, str]) -> str:
    """A downward API ``fieldPath`` of a pod: ``values`` holds the plain fields, the pod
    ``template``'s metadata the labels and annotations."""
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return (template.get("metadata", {}).get(match.group(1)) or {}).get(match.group(2), "")
    if path not in values:
        raise NotImplementedError(f"downward API field {path} is not emulated")
    return values[path]


def container_env(
    pod: str,
    pod_spec: dict,
    spec: dict,
    objects: list[dict],
    field: Callable[[str], str],
    service_ip: Callable[[dict], str],
) -> dict[str, str]:
    """The env the kubelet gives container ``spec`` of pod ``pod``: Service links, HOSTNAME,
    ``envFrom`` and ``env`` (values with ``$(VAR)`` expansion, fieldRef through ``field``,
    secretKeyRef, configMapKeyRef and resourceFieldRef)."""
    env: dict[str, str] = {}
    if pod_spec.get("enableServiceLinks", True):
        env.update(service_link_env(find(objects, "Service"), service_ip))
    env["HOSTNAME"] = pod
    for source in spec.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            data = object_data(objects, "ConfigMap", source["configMapRef"]["name"]) or {}
        else:
            data = object_data(objects, "Secret", source["secretRef"]["name"]) or {}
        env.update({prefix + k: v.decode() for k, v in data.items()})
    for var in spec.get("env") or []:
        if "value" in var or "valueFrom" not in var:
            env[var["name"]] = expand(str(var.get("value", "")), env)
            continue
        ref = var["valueFrom"]
        if "fieldRef" in ref:
            env[var["name"]] = field(ref["fieldRef"]["fieldPath"])
        elif "secretKeyRef" in ref or "configMapKeyRef" in ref:
            kind, key = (
                ("Secret", "secretKeyRef") if "secretKeyRef" in ref else ("ConfigMap", "configMapKeyRef")
            )
            data = object_data(objects, kind, ref[key]["name"]) or {}
            if ref[key]["key"] in data:
                env[var["name"]] = data[ref[key]["key"]].decode()
            elif not ref[key].get("optional"):
                raise LookupError(
                    f"pod {pod}: env {var['name']} needs {kind} {ref[key]} that the chart does not render"
                )
        elif "resourceFieldRef" in ref:
            resource = ref["resourceFieldRef"]["resource"]
            kind, _, what = resource.partition(".")
            value = ((spec.get("resources") or {}).get(kind) or {}).get(what, 0)
            divisor = quantity(ref["resourceFieldRef"].get("divisor", "1"))
            env[var["name"]] = str(max(1, int(-(-quantity(value) // divisor)))) if value else "0"
        else:
            raise NotImplementedError(f"pod {pod}: env {var['name']} source {ref} not emulated")
    return env
