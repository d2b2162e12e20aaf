"""A cluster run's bookkeeping: its dirs and state file under /tmp/rm-cluster, its logs, its
teardown, and the teardown of runs whose owning process is gone."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from support.network import delete_run_network
from support.pods import Pod
from support.processes import kill_marked

RUN_ROOT = Path("/tmp/rm-cluster")


def register(run_id: str, mode: str) -> Path:
    """Record the run (owner pid, network mode) for ``cleanup_leftovers``; returns its dir."""
    RUN_ROOT.mkdir(parents=True, exist_ok=True)
    (RUN_ROOT / run_id).mkdir(parents=True, exist_ok=True)
    (RUN_ROOT / f"{run_id}.json").write_text(json.dumps({"pid": os.getpid(), "mode": mode}))
    return RUN_ROOT / run_id


def teardown(run_id: str) -> None:
    """Remove everything a run created: processes, namespaces, bridge, hosts files, dirs."""
    kill_marked(f"{run_id}/")
    delete_run_network(f"rm{run_id}-", f"rm{run_id}br")
    shutil.rmtree(RUN_ROOT / run_id, ignore_errors=True)
    (RUN_ROOT / f"{run_id}.json").unlink(missing_ok=True)


def cleanup_leftovers() -> list[str]:
    """Tear down runs whose owning process is gone (a crashed or killed test session)."""
    removed = []
    for state in RUN_ROOT.glob("*.json") if RUN_ROOT.exists() else []:
        owner = json.loads(state.read_text()).get("pid")
        if owner and Path(f"/proc/{owner}").exists():
            continue
        teardown(state.stem)
        removed.append(state.stem)
    return removed


def save_logs(pods: list[Pod], dest: Path) -> None:
    """Copy every container's output, launch script and Ray session logs to ``dest``."""
    for pod in pods:
        target = dest / pod.name
        target.mkdir(parents=True, exist_ok=True)
        for path in [*pod.dir.glob("*.log"), *pod.dir.glob("*.sh"), pod.dir / "hosts"]:
            if path.exists():
                shutil.copy(path, target / path.name)
        for logs in [
            *pod.dir.glob("tmp/*/ray/session_*/logs"),
            *pod.dir.glob("volumes/*/ray/session_*/logs"),
        ]:
            shutil.copytree(logs, target / "ray" / logs.parts[-2], dirs_exist_ok=True)
