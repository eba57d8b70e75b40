"""The Python client against the whole conformance suite (conformance/README.md).

The runner drives `python -m registry_tool.client.conformance` (the command contract of the
README) through every case, two cases at a time.  KNOWN_FAILURES lists the cases the client does
not pass yet, each with the reason; the test fails when any other case fails and also when a
listed case starts passing (remove it from the list), so the list cannot go stale.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[2] / "conformance"
MODULE = "registry_tool.client.conformance"


KNOWN_FAILURES: dict[str, str] = {}


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec(MODULE) is None, reason=f"{MODULE} is not part of this tree")
def test_python_client_passes_the_conformance_suite() -> None:
    cases = len(list((SUITE / "cases").glob("*.json")))
    proc = subprocess.run(
        [sys.executable, str(SUITE / "run.py"), "-j", "2", "--", sys.executable, "-m", MODULE],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    lines = proc.stdout.splitlines()
    failed = {m.group(1): line for line in lines if (m := re.match(r"FAIL ([^:]+):", line))}
    new = sorted(set(failed) - set(KNOWN_FAILURES))
    fixed = sorted(set(KNOWN_FAILURES) - set(failed))
    assert not new, "new failures:\n" + "\n".join(failed[c] for c in new)
    assert not fixed, f"these cases pass now; remove them from KNOWN_FAILURES: {fixed}"
    assert lines[-1] == f"{cases - len(failed)} passed, {len(failed)} failed"
