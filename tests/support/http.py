"""HTTP GETs for the checks: from this machine, or from inside a pod's network namespace."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request


def http_get(url: str, headers: dict | None = None, timeout: float = 10) -> tuple[int, str]:
    """Status and body of a GET (0 and "" when nothing answers)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, ""


def netns_http_get(netns: str, url: str, timeout: float = 5) -> tuple[int, str]:
    """Status and body of a GET from inside network namespace ``netns`` (0 when nothing answers)."""
    result = subprocess.run(
        ["ip", "netns", "exec", netns, "curl", "-s", "-m", str(timeout), "-w", "\n%{http_code}", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    body, _, status = result.stdout.rpartition("\n")
    return int(status or 0), body
