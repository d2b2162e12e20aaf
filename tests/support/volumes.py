"""A pod's volumes as files and dirs on this machine, and its containers' mounts of them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from support.kube import object_data
from support.pods import Mount, Pod


def volume_sources(
    pod: Pod, objects: list[dict], pvc_dirs: dict[str, Path], pvc_root: Path, field: Callable[[str], str]
) -> dict[str, Path]:
    """Materialise the pod's volumes under its dir; a PVC is one dir under ``pvc_root``, shared by
    every pod (and recorded in ``pvc_dirs``). Returns volume name -> file or dir."""
    sources: dict[str, Path] = {}
    uid = (pod.spec.get("securityContext") or {}).get("runAsUser")
    group = (pod.spec.get("securityContext") or {}).get("fsGroup")
    for volume in pod.spec.get("volumes") or []:
        name = volume["name"]
        target = pod.dir / "volumes" / name
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            target = pvc_dirs.setdefault(claim, pvc_root / claim)
            target.mkdir(parents=True, exist_ok=True)
        elif "emptyDir" in volume:
            target.mkdir(parents=True, exist_ok=True)
        elif "secret" in volume:
            data = object_data(objects, "Secret", volume["secret"]["secretName"])
            write_items(target, data, volume["secret"], name)
        elif "configMap" in volume:
            data = object_data(objects, "ConfigMap", volume["configMap"]["name"])
            write_items(target, data, volume["configMap"], name)
        elif "downwardAPI" in volume:
            target.mkdir(parents=True, exist_ok=True)
            for item in volume["downwardAPI"]["items"]:
                (target / item["path"]).write_text(field(item["fieldRef"]["fieldPath"]))
        else:
            raise NotImplementedError(f"pod {pod.name}: volume {name} of an unsupported type: {volume}")
        if uid is not None or group is not None:
            chown_tree(target, uid, group)
        sources[name] = target
    return sources


def write_items(target: Path, data: dict[str, bytes] | None, source: dict, volume: str) -> None:
    """A Secret or ConfigMap volume: its keys (or listed ``items``) as files under ``target``."""
    if data is None:
        if source.get("optional"):
            target.mkdir(parents=True, exist_ok=True)
            return
        raise LookupError(f"volume {volume} refers to {source} that the chart does not render")
    target.mkdir(parents=True, exist_ok=True)
    items = source.get("items") or [{"key": k, "path": k} for k in data]
    for item in items:
        path = target / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[item["key"]])
        path.chmod(item.get("mode", source.get("defaultMode", 0o644)))


def chown_tree(path: Path, uid: int | None, gid: int | None) -> None:
    for item in [path, *path.rglob("*")]:
        os.chown(item, -1 if uid is None else uid, -1 if gid is None else gid)


def mounts(spec: dict, sources: dict[str, Path]) -> list[Mount]:
    """A container's ``volumeMounts`` as (mountPath, source on this machine, read-only)."""
    found = []
    for mount in spec.get("volumeMounts") or []:
        if mount["mountPath"] == "/dev/shm":
            continue  # the machine's /dev/shm stands in for the Memory emptyDir
        source = sources[mount["name"]]
        if mount.get("subPath"):
            source = source / mount["subPath"]
            if not source.exists():
                source.mkdir(parents=True)
        found.append(Mount(mount["mountPath"], source, bool(mount.get("readOnly"))))
    return found
