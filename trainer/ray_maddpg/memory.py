"""glibc malloc settings for torch on the CPU (no Ray, no torch import).

By default glibc serves every block over 128 KiB (rising with use, to at most 32 MiB) with its
own ``mmap`` and unmaps it when freed, and gives the top of the heap back to the OS once more
than 128 KiB of it is free. An update at batch 1024 allocates and frees tensors of one to tens
of MiB, so each update re-faults its memory page by page: about 3,000 page faults per fused
update of 3 agents on a 2-core VM, a third of its time (docs/results.md). Keeping freed memory in
the heap lets the next update reuse it; the process's resident memory then stays at its peak
instead of dropping between updates, which a pod's memory limit must allow for anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 512 << 20  # free heap top kept before giving it back to the OS
MMAP_THRESHOLD = 32 << 20  # blocks from the heap below this size (glibc's own dynamic maximum)
OPT_OUT = "RAY_MADDPG_GLIBC_MALLOC_DEFAULTS"
"""Set this environment variable (to anything) to keep glibc's defaults."""


def keep_freed_memory() -> bool:
    """Tell glibc malloc to keep freed blocks for reuse (see the module docstring), once per
    process; returns whether the settings are in effect (False off Linux, without glibc, or
    with ``RAY_MADDPG_GLIBC_MALLOC_DEFAULTS`` set)."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


_applied: bool | None = None


def _apply() -> bool:
    if os.environ.get(OPT_OUT) or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # glibc's mallopt returns 1 on success (musl's is a stub returning 0); setting either
    # threshold also stops glibc's dynamic one.
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
