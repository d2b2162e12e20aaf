"""`ray-maddpg submit ARGS...`: `ray job submit ARGS...` with a clear last word when it fails.

`ray job submit` streams the job's logs and exits 0 or 1 with the job's result, which is what
the chart's Job needs. When the Ray head goes away mid-run, though, it dies with a Python
traceback (a closed WebSocket). This wrapper passes the output through, keeps the exit code,
and replaces a traceback with one message that says what happened and what to do next.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading

TRACEBACK = "Traceback (most recent call last):"
# `SomeError: message` (or `pkg.mod.SomeError: ...`) at the start of a line ends a traceback.
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")
SUBMITTED = "submitted successfully"
# Last lines of the tracebacks `ray job submit` ends with when it cannot reach the head.
CONNECTION_LOST = (
    "WebSocket connection closed",
    "ConnectionError",
    "ConnectionRefused",
    "Connection refused",
    "Failed to connect",
    "ServerDisconnected",
    "ClientConnector",
    "Max retries exceeded",
)


def _address(args: list[str]) -> str:
    for i, arg in enumerate(args):
        if arg.startswith("--address="):
            return arg.split("=", 1)[1]
        if arg == "--address" and i + 1 < len(args):
            return args[i + 1]
    return os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS") or "(default)"


def exception_text(traceback: list[str]) -> str:
    """The final exception's type and message (which may span lines) from a traceback's lines."""
    headers = [i for i, line in enumerate(traceback) if EXCEPTION_LINE.match(line)]
    lines = traceback[headers[-1] :] if headers else traceback[-1:]
    return " ".join(line.strip() for line in lines if line.strip()) or "unknown error"


def explain(error: str, address: str, submitted: bool) -> str:
    """The message that replaces a traceback whose last line is ``error``."""
    if not any(marker in error for marker in CONNECTION_LOST):
        return f"ray-maddpg submit: `ray job submit` failed: {error}"
    if not submitted:
        return (
            f"ray-maddpg submit: cannot reach the Ray head's jobs API at {address} ({error}). "
            "Check that the head is running and that the address and port are right."
        )
    return (
        f"ray-maddpg submit: lost the Ray head at {address} while the job was running: the head "
        f"restarted or went away ({error}). The driver ran on the head, so this run stopped with it. "
        "Checkpoints written so far stay in the results dir: submit again with `--resume` "
        "(chart: experiment.trainArgs: [--resume]) to continue. A run that must outlive a head "
        "restart needs GCS fault tolerance (an external Redis): see docs/fault-tolerance.md."
    )


def main(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("\nEvery argument goes to `ray job submit`; see `ray job submit --help`.")
        return 0 if args else 2
    try:
        process = subprocess.Popen(
            ["ray", "job", "submit", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
    except FileNotFoundError:
        print("ray-maddpg submit: the `ray` command is not on PATH (install ray[default])", file=sys.stderr)
        return 127
    submitted = threading.Event()

    def forward_stdout() -> None:
        for line in process.stdout:
            if SUBMITTED in line:
                submitted.set()
            sys.stdout.write(line)
            sys.stdout.flush()

    reader = threading.Thread(target=forward_stdout, daemon=True)
    reader.start()
    traceback: list[str] = []
    try:
        for line in process.stderr:
            if traceback or line.startswith(TRACEBACK):
                traceback.append(line)
            else:
                sys.stderr.write(line)
                sys.stderr.flush()
        code = process.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached `ray job submit` too: it stops following, and the job runs on.
        process.wait()
        print(
            "ray-maddpg submit: interrupted; the job keeps running (`ray job logs -f`, `ray job stop`)",
            file=sys.stderr,
        )
        return 130
    reader.join()
    if traceback and code == 0:
        sys.stderr.writelines(traceback)
    elif traceback:
        error = exception_text(traceback)
        print(explain(error, _address(args), submitted.is_set()), file=sys.stderr)
        return code or 1
    return code
