"""The worker's result records: how a worker reports, and how the parent reads and checks a report.

A worker appends one JSON line per event to a results file the parent created and handed it (an
unlinked file on a memory file system when the machine has one): ``["compiled", ms, at]`` or
``["compile_error", detail, at]``, then ``["test", index, outcome, fuel, memory, wall_ms, stdout,
stderr, detail, at]`` per test, in order.  ``at`` is ``time.monotonic()`` (system-wide) when the
record was written, that is when the next test started.  After its last record it writes ``END`` on
its stdout, the only thing it ever writes there.

Why a file and not the pipe: a line per test over the pipe woke the parent for every test (a
select, a read, a parse: the parent's share was a third of a test's cost).  The file costs the
worker one ``write`` per test and wakes nobody; the parent reads it when the worker ends, at a test's
deadline, or every ``POLL_S`` while tests run.  What a crash leaves is what was written: the
records of finished tests survive the worker, a torn last line is ignored, and the first test
without a record is the one the worker died in.

The parent trusts nothing in a record: each is typed here or refused (``ProtocolError``), and its
texts are neutralised by the caller.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from registry_tool.sandbox.outcome import Outcome

#: What a worker writes on its stdout once every record is written.
END = b"end\n"
#: A record is a few KiB (outputs are cut to 2000 characters each): anything longer is not our worker.
MAX_RECORD = 1024 * 1024
#: How often the parent reads the results file while tests run, to start each test's deadline.
#: A hung test is killed at most this much after its deadline.
POLL_S = 0.1

_OUTCOMES: dict[Any, Outcome] = {o.value: o for o in Outcome}
_dumps = json.JSONEncoder(ensure_ascii=True, check_circular=False, separators=(",", ":")).encode


class ProtocolError(Exception):
    """The worker wrote something that is not a well-formed record."""


# --------------------------------------------------------------------------- worker side


def compiled(ms: float) -> bytes:
    """The record of a finished compile (``ms``: how long it took)."""
    return (_dumps(["compiled", ms, time.monotonic()]) + "\n").encode()


def compile_error(detail: str) -> bytes:
    """The record of a module wasmtime refused."""
    return (_dumps(["compile_error", detail, time.monotonic()]) + "\n").encode()


def test_record(
    index: int,
    outcome: Outcome,
    fuel: int | None,
    memory: int | None,
    wall_ms: float | None,
    stdout: str,
    stderr: str,
    detail: str,
) -> bytes:
    """The record of test ``index`` (of the whole job, not of this worker's share)."""
    wall = None if wall_ms is None else round(wall_ms, 3)
    record = ["test", index, outcome.value, fuel, memory, wall, stdout, stderr, detail, time.monotonic()]
    return (_dumps(record) + "\n").encode()


# --------------------------------------------------------------------------- parent side


class Record:
    """One checked record: ``kind`` and its fields (only those of its kind are set)."""

    __slots__ = (
        "at", "detail", "fuel", "index", "kind", "memory", "ms", "outcome", "stderr", "stdout", "wall_ms",
    )  # fmt: skip

    def __init__(self, kind: str, at: float) -> None:
        """A record of ``kind`` written at ``at`` (the worker's monotonic clock)."""
        self.kind, self.at = kind, at
        self.ms: float = 0.0
        self.index = 0
        self.outcome = Outcome.passed
        self.fuel: int | None = None
        self.memory: int | None = None
        self.wall_ms: float | None = None
        self.stdout = self.stderr = self.detail = ""


def _number(value: Any, kind: type | tuple[type, ...]) -> Any:
    if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    raise ProtocolError(f"a figure of type {type(value).__name__}")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ProtocolError(f"a text of type {type(value).__name__}")


def parse(line: bytes) -> Record:
    """Check one record line; raises ``ProtocolError`` for anything but a well-typed record."""
    try:
        fields = json.loads(line)
    except ValueError:
        raise ProtocolError("a line that is not JSON") from None
    if not isinstance(fields, list) or not fields:
        raise ProtocolError("a JSON line that is not a record")
    kind, at = fields[0], fields[-1]
    if not isinstance(at, (int, float)) or isinstance(at, bool) or at != at:  # NaN: no deadline
        raise ProtocolError("a record without its time")
    if kind == "test" and len(fields) == 10:
        record = Record(kind, at)
        index = fields[1]
        if not isinstance(index, int) or isinstance(index, bool):
            raise ProtocolError("a test record without its index")
        record.index = index
        outcome = _OUTCOMES.get(fields[2]) if isinstance(fields[2], str) else None
        if outcome is None:
            raise ProtocolError("a test record without a valid outcome")
        record.outcome = outcome
        record.fuel = _number(fields[3], int)
        record.memory = _number(fields[4], int)
        record.wall_ms = _number(fields[5], (int, float))
        record.stdout, record.stderr, record.detail = _text(fields[6]), _text(fields[7]), _text(fields[8])
        return record
    if kind == "compiled" and len(fields) == 3:
        record = Record(kind, at)
        record.ms = _number(fields[1], (int, float)) or 0.0
        return record
    if kind == "compile_error" and len(fields) == 3:
        record = Record(kind, at)
        record.detail = _text(fields[1])
        return record
    raise ProtocolError("an unknown or malformed record")


class ResultsFile:
    """The parent's reader of a worker's results file: new complete records since the last read."""

    def __init__(self, fd: int) -> None:
        """Read the file open as ``fd`` (positioned reads; the worker's offset is untouched)."""
        self.fd = fd
        self._offset = 0
        self._partial = b""
        self.more = False

    def read(self) -> list[Record]:
        """The complete records written since the previous call; a torn last line waits.

        At most ``_BUDGET`` bytes per call (a hostile worker could write gigabytes): ``more`` says
        whether the file holds more to read right away.
        """
        data = self._partial
        self.more = False
        while True:
            if len(data) >= _BUDGET:
                self.more = True
                break
            chunk = os.pread(self.fd, _CHUNK, self._offset)
            if not chunk:
                break
            self._offset += len(chunk)
            data += chunk
        end = data.rfind(b"\n") + 1
        self._partial = data[end:]
        if len(self._partial) > MAX_RECORD:
            raise ProtocolError(f"a record longer than {MAX_RECORD} bytes")
        if not end:
            return []
        return [parse(line) for line in data[: end - 1].split(b"\n")]


_CHUNK = 1 << 18
_BUDGET = 4 * MAX_RECORD
