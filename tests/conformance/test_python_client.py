"""The Python client passes the whole conformance suite (conformance/README.md).

The runner drives `python -m registry_tool.client.conformance` (the command contract of the
README) through every case, two cases at a time.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[2] / "conformance"
MODULE = "registry_tool.client.conformance"


@pytest.mark.skipif(importlib.util.find_spec(MODULE) is None, reason=f"{MODULE} is not part of this tree")
def test_python_client_passes_the_conformance_suite() -> None:
    cases = len(list((SUITE / "cases").glob("*.json")))
    proc = subprocess.run(
        [sys.executable, str(SUITE / "run.py"), "-j", "2", "--", sys.executable, "-m", MODULE],
        capture_output=True,
        text=True,
        timeout=900,
    )
    failures = "\n".join(line for line in proc.stdout.splitlines() if line.startswith("FAIL"))
    assert proc.stdout.splitlines()[-1] == f"{cases} passed, 0 failed", failures or proc.stdout[-3000:]
    assert proc.returncode == 0
