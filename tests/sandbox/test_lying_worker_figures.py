"""Attack: a subverted worker writes records with impossible figures, broken texts or hostile text.

The reporters format the figures (``f"{fuel:,}"``, ``memory // 1024``): a record the parent cannot
type must fail the one test closed, never crash the smoke command.  Text fields are neutralised by
the parent.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from registry_tool.sandbox import (
    Case,
    EngineSpec,
    ImportPolicy,
    Job,
    Limits,
    Outcome,
    harness,
    run_job,
)

# Writes one record per case: the protocol's encoder with the hostile texts of argv[2], or, when
# argv[1] names a malformation, a record edited by hand (offsets from protocol._TEST_HEAD).
FAKE = """
import json, os, struct, sys
from registry_tool.sandbox import protocol
from registry_tool.sandbox.outcome import Outcome
request = json.loads(sys.stdin.read())
fd = request["results_fd"]
how, text = sys.argv[1], sys.argv[2]
os.write(fd, protocol.compiled(1.0))
for index in range(request["start"], len(request["job"]["cases"])):
    outcome = Outcome.trap if text else Outcome.passed
    if how.startswith("matching"):  # "the run ended, judging": only before a regex test's record
        os.write(fd, protocol.matching(index + (how == "matching-other-test")))
    record = bytearray(protocol.test_record(index, outcome, 1, None, 0.1, text, "", text))
    if how == "outcome-code":
        record[9] = 200
    elif how == "negative-fuel":
        struct.pack_into("<q", record, 10, -5)
    elif how == "texts-overrun":
        struct.pack_into("<I", record, 42, 10**6)
    elif how == "not-utf8":
        record += b"\\xff\\xfe"
        struct.pack_into("<I", record, 0, len(record))
    elif how == "short":
        record = record[:12]
        struct.pack_into("<I", record, 0, len(record))
    os.write(fd, bytes(record))
os.write(1, protocol.END)
"""


def _run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, text: str = ""
) -> list[harness.TestOutcome]:
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE)
    monkeypatch.setattr(harness, "WORKER_COMMAND", [sys.executable, str(script), how, text])
    wasm = tmp_path / "m.wasm"
    wasm.write_bytes(b"")
    job = Job(str(wasm), "core", [Case("a", "f")], Limits(), EngineSpec(), ImportPolicy())
    return run_job(job)


@pytest.mark.parametrize(
    "how",
    [
        "outcome-code",
        "negative-fuel",
        "texts-overrun",
        "not-utf8",
        "short",
        "matching-no-regex",
        "matching-other-test",
    ],
)
def test_malformed_records_fail_the_test_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    [result] = _run(tmp_path, monkeypatch, how)
    assert result.outcome is Outcome.worker_crashed and "protocol" in result.detail
    # What the reporters format (``f"{fuel:,}"``, ``memory // 1024``) has the documented types.
    assert result.fuel_consumed is None or type(result.fuel_consumed) is int
    assert result.peak_memory_bytes is None or type(result.peak_memory_bytes) is int
    assert result.wall_ms is None or type(result.wall_ms) in (int, float)
    assert isinstance(result.stdout, str) and isinstance(result.stderr, str)


def test_an_honest_record_is_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control for the malformations above: the same fake, record unedited."""
    [result] = _run(tmp_path, monkeypatch, "none")
    assert result.outcome is Outcome.passed and result.fuel_consumed == 1 and result.wall_ms == 0.1


def test_hostile_text_from_a_worker_is_neutralised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "x\n  ::error::forged\x1b[31m"
    [result] = _run(tmp_path, monkeypatch, "none", text)
    assert result.outcome is Outcome.trap
    assert "\n" not in result.detail and "\x1b" not in result.detail + result.stdout
    assert not any(ln.strip().startswith("::") for ln in result.stdout.splitlines())


# Every test's record, then one more in the same write: the parent read it with the last test's.
TRAILING = """
import json, os, sys
from registry_tool.sandbox import protocol
from registry_tool.sandbox.outcome import Outcome
request = json.loads(sys.stdin.read())
fd, last = request["results_fd"], len(request["job"]["cases"]) - 1
extra = protocol.matching(last) if sys.argv[1] == "matching" else protocol.compiled(1.0)
record = protocol.test_record(last, Outcome.passed, 1, None, 0.1, "", "", "")
os.write(fd, protocol.compiled(1.0) + record + extra)
os.write(1, protocol.END)
"""


@pytest.mark.parametrize("extra", ["matching", "compiled"])
def test_a_record_after_the_last_test_fails_it_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str
) -> None:
    """The parent crashed (IndexError, exit 3) failing the test after the last one closed."""
    script = tmp_path / "fake_worker.py"
    script.write_text(TRAILING)
    monkeypatch.setattr(harness, "WORKER_COMMAND", [sys.executable, str(script), extra])
    wasm = tmp_path / "m.wasm"
    wasm.write_bytes(b"")
    case = Case("a", "f", expect_kind="regex", expect="x")
    [result] = run_job(Job(str(wasm), "core", [case], Limits(), EngineSpec(), ImportPolicy()))
    assert result.outcome is Outcome.worker_crashed and "protocol" in result.detail
