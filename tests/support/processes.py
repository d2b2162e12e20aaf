"""Processes: started in their own session with a marker variable, found again through /proc by
that marker (Ray's own children carry it too), signalled and stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

# Every process a cluster run starts carries this variable, so cleanup finds Ray's own children too.
MARKER = "RM_CLUSTER_RUN"


def signal_quietly(pid: int, sig: int) -> None:
    """Send ``sig`` to ``pid``; a process that is already gone is fine."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def marked_pids(prefix: str, marker: str = MARKER) -> list[int]:
    """PIDs whose ``marker`` variable's value starts with ``prefix``."""
    needle = f"{marker}={prefix}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(var.startswith(needle) for var in (entry / "environ").read_bytes().split(b"\0")):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def cmdline(pid: int) -> str | None:
    """The process's command line, words joined by spaces; None when it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None


def spawn(argv: list[str], env: dict[str, str], log: Path, mode: str = "wb") -> subprocess.Popen:
    """Start ``argv`` in a session of its own, stdout and stderr to ``log`` (``mode`` "ab" appends)."""
    with open(log, mode) as out:
        return subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_group(process: subprocess.Popen, sig: int) -> None:
    """Signal the process group that ``spawn`` started; a group that is already gone is fine."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 1.0) -> None:
    """Poll ``condition`` every ``interval`` s until it holds; TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def kill_marked(prefix: str, marker: str = MARKER, grace: float = 5) -> None:
    """SIGTERM, then SIGKILL, every process marked with ``prefix``, waiting up to ``grace`` s each."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in marked_pids(prefix, marker):
            signal_quietly(pid, sig)
        deadline = time.monotonic() + grace
        while marked_pids(prefix, marker) and time.monotonic() < deadline:
            time.sleep(0.2)
