"""The parent's supervision of workers, driven by fake workers that crash, hang or lie."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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

# A fake worker: well-formed records from the protocol's own encoder, malformed ones by hand.
FAKE = """
import json, os, signal, struct, sys, time
from registry_tool.sandbox import protocol
from registry_tool.sandbox.outcome import Outcome
request = json.loads(sys.stdin.read())
start, fd = request["start"], request["results_fd"]
cases = request["job"]["cases"]
mode = os.environ["FAKE_MODE"]
def test(i):
    os.write(fd, protocol.test_record(i, Outcome.passed, 1, None, 0.1, "", "", ""))
if mode.startswith("forged-"):  # a deadline pushed into the future, or made no deadline at all
    at = time.monotonic() + 10**6 if mode == "forged-future" else float("nan")
    os.write(fd, protocol.compiled(1.0, at=at))
    time.sleep(60)
os.write(fd, protocol.compiled(1.0))
for i in range(start, len(cases)):
    name = cases[i]["name"]
    if mode == "segv" and name == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if mode == "abort-oom" and name == "crash":
        sys.stderr.write("memory allocation of 4294967296 bytes failed\\n"); sys.stderr.flush()
        os.abort()
    if mode == "torn-then-kill" and name == "crash":
        record = protocol.test_record(i, Outcome.passed, 1, None, 0.1, "", "", "")
        os.write(fd, record[: len(record) // 2])  # dies mid-record
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "garbage":
        os.write(fd, b"this is not a record"); time.sleep(5)
    if mode == "wrong-index":
        os.write(fd, protocol.test_record(i + 1, Outcome.passed, 1, None, 0.1, "", "", "")); continue
    if mode == "duplicate":
        test(i)
    if mode == "end-early":
        os.write(1, protocol.END); time.sleep(60)
    if mode == "huge-record":
        os.write(fd, struct.pack("<I", 2 * 1024 * 1024) + b"x" * 100); time.sleep(60)
    if mode == "hang" or (mode == "hang-later" and name == "hang"):
        time.sleep(60)
    test(i)
os.write(1, protocol.END)
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


@pytest.mark.parametrize("mode", ["garbage", "wrong-index", "end-early", "huge-record"])
def test_a_lying_worker_fails_closed(fake, mode: str) -> None:
    results = fake(mode, ["a"])
    assert [r.outcome for r in results] == [Outcome.worker_crashed]
    assert "protocol" in results[0].detail


def test_a_record_for_a_test_that_already_has_one_fails_closed(fake) -> None:
    results = fake("duplicate", ["a", "b"])
    assert [r.outcome for r in results] == [Outcome.passed, Outcome.worker_crashed]
    assert "protocol" in results[1].detail


def test_results_written_before_a_crash_survive_it(fake) -> None:
    """The records of finished tests are in the results file, not in the dead worker's buffers."""
    names = [f"t{i}" for i in range(40)]
    results = fake("torn-then-kill", [*names, "crash", "after"])
    assert [r.outcome for r in results] == [Outcome.passed] * 40 + [Outcome.worker_crashed, Outcome.passed]
    assert [r.name for r in results] == [*names, "crash", "after"]
    assert "SIGKILL" in results[40].detail  # the torn record is not read as a result


def test_a_hanging_worker_is_killed_at_its_deadline(fake) -> None:
    results = fake("hang", ["a"], wall_time=0.3, kill_margin=0.3)
    assert [r.outcome for r in results] == [Outcome.timeout]
    # Killed at its deadline, not before; and killed, not waited out (the hang sleeps 60 s).  No
    # tighter upper bound: on a loaded machine the kill can come seconds late.
    assert results[0].wall_ms is not None and 550 < results[0].wall_ms < 30_000


def test_a_test_hanging_after_others_is_killed_at_its_own_deadline(fake) -> None:
    """Each test's deadline runs from the record before it, not from the worker's start."""
    results = fake("hang-later", ["a", "b", "hang", "c"], wall_time=0.3, kill_margin=0.3)
    assert [r.outcome for r in results] == [Outcome.passed, Outcome.passed, Outcome.timeout, Outcome.passed]
    assert results[2].wall_ms is not None and 550 < results[2].wall_ms < 30_000


def test_a_record_time_in_the_future_does_not_extend_a_deadline(fake) -> None:
    """A deadline starts no later than when the parent read the record, whatever time it names."""
    results = fake("forged-future", ["a"], wall_time=0.3, kill_margin=0.3)
    assert [r.outcome for r in results] == [Outcome.timeout]
    assert results[0].wall_ms is not None and results[0].wall_ms < 30_000


def test_a_record_time_that_is_not_a_number_fails_closed(fake) -> None:
    """NaN compares false with every time: as a record's time it would mean no deadline at all."""
    results = fake("forged-nan", ["a"], wall_time=0.3, kill_margin=0.3)
    assert [r.outcome for r in results] == [Outcome.worker_crashed]
    assert "protocol" in results[0].detail


def test_the_release_setup_ends_before_the_compiled_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first test's deadline starts at the ``compiled`` record: the release's setup (linking
    100,000 stubs took 4.6 s) ran after it, so every test of such a release timed out."""
    import time

    import wasmtime

    from registry_tool.sandbox import protocol, worker
    from registry_tool.sandbox.abis import DEFAULT_ABI_RULES

    ends: list[float] = []
    real = worker.Release

    def release(*args: Any) -> Any:
        made = real(*args)
        ends.append(time.monotonic())
        return made

    monkeypatch.setattr(worker, "Release", release)
    path = tmp_path / "m.wasm"
    path.write_bytes(bytes(wasmtime.wat2wasm('(module (func (export "one") (result i32) i32.const 1))')))
    job = Job(
        wasm_path=str(path),
        abi="core",
        cases=[Case("one", "one", expect_kind="values", expect=[1])],
        limits=Limits(),
        engine=EngineSpec(),
        policy=ImportPolicy(DEFAULT_ABI_RULES["core"], [], []),
        cache_dir=None,
    )
    with (tmp_path / "results").open("w+b") as fh:
        worker.run_job(job, results=fh.fileno())
        records = protocol.ResultsFile(fh.fileno()).read()
    assert [r.kind for r in records] == ["compiled", "test"]
    assert len(ends) == 1 and records[0].at >= ends[0]
