"""Importing the client (and the format model) never imports the builder."""

from __future__ import annotations

import subprocess
import sys


def test_client_import_does_not_load_the_builder() -> None:
    code = (
        "import sys, registry_tool.client, registry_tool.client.conformance;"
        "print(sorted(m for m in sys.modules if m.startswith('registry_tool.registry')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
