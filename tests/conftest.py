"""Puts ``tests/`` on sys.path, so that every test directory imports the shared ``support`` package."""

import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
