"""Attack: the pull request's files are executed by the job that checks them.

The safe PR check (``pull_request_target``) runs the base's tool with the PR tree as its working
directory.  ``python -m`` puts the working directory first on ``sys.path``, so a PR that adds
``registry_tool/__init__.py`` (or ``pip.py``, ``venv.py``) at its top level would run its own code
in place of the checker's smoke worker -- with the base's token.  The tool starts its worker with
``-P`` (no unsafe path); the workflows install with ``python -I``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.world import TOOL

from .conftest import IndexRepo

REPO = Path(__file__).resolve().parents[2]

PAYLOAD = """import pathlib
pathlib.Path({marker!r}).write_text("PR code ran")
raise SystemExit(0)
"""


def test_pr_shadowing_the_worker_module_is_not_executed(index_repo: IndexRepo, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for rel in (
        "registry_tool/__init__.py",
        "registry_tool/sandbox/__init__.py",
        "registry_tool/sandbox/worker.py",
    ):
        path = index_repo.path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(PAYLOAD.format(marker=str(marker)))
    index_repo.release("alpha", "1.1.0")
    index_repo.commit()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run(
        [*TOOL, "ci", "check", "--base", "origin/main", "--format", "json", "index"],
        cwd=index_repo.path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert not marker.exists(), "the pull request's own code ran inside the check"
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"outcome": "passed"' in proc.stdout
