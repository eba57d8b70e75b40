"""Running the command-line tool from tests: always this interpreter's ``-m registry_tool``.

No test names a virtualenv path: the suite runs under whatever interpreter runs pytest
(a CI image, tox, a developer's venv), and the tool under test is the one importable there.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

# -P: like the installed console script, never import from the working directory (a checked
# pull request's tree is the working directory of `ci check`; see tests/ci/test_pr_tree_is_data.py).
TOOL: tuple[str, ...] = (sys.executable, "-P", "-m", "registry_tool")


def run_tool(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """``registry-tool ARGS`` in a subprocess; ``env`` is added to the current environment."""
    return subprocess.run(
        [*TOOL, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def tool_shim(directory: Path, name: str = "registry-tool") -> Path:
    """An executable ``registry-tool`` in ``directory`` that runs ``TOOL`` (for scripts that
    find the tool on PATH or at a fixed path: the GitHub Action, pre-commit hooks)."""
    directory.mkdir(parents=True, exist_ok=True)
    shim = directory / name
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -P -m registry_tool "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return shim


def check_jsonschema_command() -> tuple[str, ...]:
    """check-jsonschema as a module of this interpreter (it is a test dependency)."""
    return (sys.executable, "-m", "check_jsonschema")
