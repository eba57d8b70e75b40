"""The README's main command, end to end: validate, smoke, build, serve, trust, install, run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.world.lockfile import line, lines, read_lock

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "REGISTRY_TOOL_DEMO_DIR": str(tmp_path / "demo")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "installed validate_email 1.0.0" in out
    assert "installed visit_counter 1.0.0" in out and "permissions: keys" in out
    assert "accepts a plain address: passed" in out
    assert out.rstrip().endswith("demo: all steps passed")
    plugins = tmp_path / "demo" / "plugins"
    assert (plugins / "registry-tool.lock.json").is_file(), "the client wrote no lockfile"
    doc = read_lock(plugins)  # version 3: a base line, then one change line per commit
    assert doc["lockfile_version"] == 3 and {"validate_email", "visit_counter"} <= set(doc["plugins"])
    assert all(each == line(json.loads(each)) for each in lines(plugins))
