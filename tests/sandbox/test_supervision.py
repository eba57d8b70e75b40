"""The parent's supervision of workers, driven by fake workers that crash, hang or lie."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from registry_tool.sandbox import (
    Case,
    EngineSpec,
    ImportPolicy,
    Job,
    Limits,
    Outcome,
    TestOutcome,
    harness,
    run_job,
)

FAKE = """
import json, os, signal, sys, time
request = json.loads(sys.stdin.read())
start = request["start"]
cases = request["job"]["cases"]
mode = os.environ["FAKE_MODE"]
def emit(event):
    sys.stdout.write(json.dumps(event) + "\\n"); sys.stdout.flush()
emit({"event": "compiled", "ms": 1})
for i in range(start, len(cases)):
    name = cases[i]["name"]
    if mode == "segv" and name == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if mode == "abort-oom" and name == "crash":
        sys.stderr.write("memory allocation of 4294967296 bytes failed\\n"); sys.stderr.flush()
        os.abort()
    if mode == "garbage":
        sys.stdout.write("this is not json\\n"); sys.stdout.flush(); time.sleep(5)
    if mode == "wrong-name":
        name = "someone else"
    if mode == "hang":
        time.sleep(60)
    emit({"event": "test", "outcome": {"name": name, "outcome": "passed"}})
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[TestOutcome]]:
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE)
    monkeypatch.setattr(harness, "WORKER_COMMAND", [sys.executable, str(script)])
    monkeypatch.setattr(harness, "_ALLOWED_ENV", (*harness._ALLOWED_ENV, "FAKE_MODE"))
    wasm = tmp_path / "m.wasm"
    wasm.write_bytes(b"")

    def go(mode: str, names: list[str], **limits: float) -> list[TestOutcome]:
        monkeypatch.setenv("FAKE_MODE", mode)
        job = Job(
            str(wasm), "core", [Case(n, "f") for n in names], Limits(**limits), EngineSpec(), ImportPolicy()
        )
        return run_job(job)

    return go


def test_crash_fails_one_test_and_the_rest_continue_in_a_new_worker(fake) -> None:
    results = fake("segv", ["a", "crash", "b", "c"])
    assert [r.outcome for r in results] == [
        Outcome.passed,
        Outcome.worker_crashed,
        Outcome.passed,
        Outcome.passed,
    ]
    assert "SIGSEGV" in results[1].detail


def test_allocation_failure_abort_is_memory_limit(fake) -> None:
    results = fake("abort-oom", ["crash", "b"])
    assert [r.outcome for r in results] == [Outcome.memory_limit, Outcome.passed]
    assert "SIGABRT" in results[0].detail


@pytest.mark.parametrize("mode", ["garbage", "wrong-name"])
def test_a_lying_worker_fails_closed(fake, mode: str) -> None:
    results = fake(mode, ["a"])
    assert [r.outcome for r in results] == [Outcome.worker_crashed]
    assert "protocol" in results[0].detail


def test_a_hanging_worker_is_killed_at_its_deadline(fake) -> None:
    results = fake("hang", ["a"], wall_time=0.3, kill_margin=0.3)
    assert [r.outcome for r in results] == [Outcome.timeout]
    # Killed at its deadline, not before; and killed, not waited out (the hang sleeps 60 s).  No
    # tighter upper bound: on a loaded machine the kill can come seconds late.
    assert results[0].wall_ms is not None and 550 < results[0].wall_ms < 30_000
