"""Attack: a subverted worker sends a well-formed event with ill-typed figures or hostile text.

The reporters format the figures (``f"{fuel:,}"``, ``memory // 1024``): a string there crashed the
whole smoke command instead of failing one test closed.  Text fields are neutralised by the parent.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from registry_tool.sandbox import Case, EngineSpec, ImportPolicy, Job, Limits, Outcome, harness, run_job

# Writes the protocol's records by hand (registry_tool/sandbox/protocol.py): ["test", index, outcome,
# fuel, memory, wall_ms, stdout, stderr, detail, at], the fields from argv[1] over honest defaults.
FAKE = """
import json, os, sys, time
request = json.loads(sys.stdin.read())
fd = request["results_fd"]
given = json.loads(sys.argv[1])
def write(fields):
    os.write(fd, (json.dumps(fields) + "\\n").encode())
write(["compiled", 1, time.monotonic()])
for index in range(request["start"], len(request["job"]["cases"])):
    r = {"fuel_consumed": 1, "peak_memory_bytes": None, "wall_ms": 0.1, "stdout": "", "stderr": "",
         "detail": "", **given}
    write(["test", index, r["outcome"], r["fuel_consumed"], r["peak_memory_bytes"], r["wall_ms"],
           r["stdout"], r["stderr"], r["detail"], time.monotonic()])
os.write(1, b"end\\n")
"""


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outcome: str) -> list[harness.TestOutcome]:
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE)
    monkeypatch.setattr(harness, "WORKER_COMMAND", [sys.executable, str(script), outcome])
    wasm = tmp_path / "m.wasm"
    wasm.write_bytes(b"")
    job = Job(str(wasm), "core", [Case("a", "f")], Limits(), EngineSpec(), ImportPolicy())
    return run_job(job)


@pytest.mark.parametrize(
    "outcome",
    [
        '{"outcome": "passed", "fuel_consumed": "lots"}',
        '{"outcome": "passed", "peak_memory_bytes": [1]}',
        '{"outcome": "passed", "wall_ms": "fast"}',
        '{"outcome": "passed", "fuel_consumed": true}',
        '{"outcome": "passed", "stdout": {"a": 1}}',
        '{"outcome": "no_such_class"}',
        '{"outcome": ["passed"]}',
    ],
)
def test_ill_typed_figures_fail_the_test_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outcome: str
) -> None:
    [result] = _run(tmp_path, monkeypatch, outcome)
    assert result.outcome is Outcome.worker_crashed and "protocol" in result.detail
    # What the reporters format (``f"{fuel:,}"``, ``memory // 1024``) has the documented types.
    assert result.fuel_consumed is None or type(result.fuel_consumed) is int
    assert result.peak_memory_bytes is None or type(result.peak_memory_bytes) is int
    assert result.wall_ms is None or type(result.wall_ms) in (int, float)
    assert isinstance(result.stdout, str) and isinstance(result.stderr, str)


def test_hostile_text_from_a_worker_is_neutralised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "x\\n  ::error::forged\\u001b[31m"
    [result] = _run(tmp_path, monkeypatch, f'{{"outcome": "trap", "detail": "{text}", "stdout": "{text}"}}')
    assert result.outcome is Outcome.trap
    assert "\n" not in result.detail and "\x1b" not in result.detail + result.stdout
    assert not any(ln.strip().startswith("::") for ln in result.stdout.splitlines())
