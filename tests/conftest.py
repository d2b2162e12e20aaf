"""Puts ``tests/`` on sys.path, so that every test directory imports the shared ``support`` package,
and schedules ``make test``'s two pytest-xdist workers (``-n 2 --dist loadfile``)."""

import sys
from pathlib import Path

import pytest

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

# The files that run Ray clusters of several nodes as pod processes. They share one worker, one
# after the other: two such clusters at once on a 2-core machine starve each other's Ray starts
# (a 50-second setup took 280) and stretch the fault tests' timing.
MULTI_NODE_FILES = {"test_cluster_e2e.py", "test_image_entrypoints.py"}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile``, with ``MULTI_NODE_FILES`` as one unit. (xdist's ``loadgroup`` would say
    this with marks, but it renames node ids, which pytest 9 no longer allows.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class MultiNodeFilesTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "multi-node" if Path(path).name in MULTI_NODE_FILES else path

    return MultiNodeFilesTogether(config, log)
