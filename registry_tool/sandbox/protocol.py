"""The worker's result records: how a worker reports, and how the parent reads and checks a report.

A worker appends one binary record per event to a results file the parent created and handed it (an
unlinked file on a memory file system when the machine has one): ``compiled`` or ``compile_error``,
then ``test`` per test, in order (a test with ``expect_regex`` writes ``matching`` before its
output is judged: the regex runs under the test's deadline, and a pattern that backtracks without
end must not read as a slow export).  Each record starts with its whole length (u32, little-endian)
and its kind (u8); a number that is absent is -1 (fuel, memory) or NaN (wall time); texts are UTF-8
after the fixed fields.  ``at`` is ``time.monotonic()`` (system-wide) when the record was written,
that is when the next phase started.  After its last record the worker writes ``END`` on its stdout,
the only thing it ever writes there.

Why a file and not the pipe: a line per test over a pipe wakes the parent for every test (a select,
a read, a parse: a third of a small test's cost).  The file costs the worker one ``write`` per test
and wakes nobody; the parent reads it when the worker ends, at a test's deadline, or every
``POLL_S`` while tests run.  What a crash leaves is what was written: the records of finished tests
survive the worker, a torn last record is ignored, and the first test without a record is the one
the worker died in.  Binary, because encoding and decoding a JSON record cost more than the rest of
a small test's transport.

The parent trusts nothing in a record: each is typed here or refused (``ProtocolError``), and its
texts are neutralised by the caller.
"""

from __future__ import annotations

import os
import struct
import time

from registry_tool.sandbox.outcome import Outcome

#: What a worker writes on its stdout once every record is written.
END = b"end\n"
#: A record is a few KiB (outputs are cut to 2000 characters each): anything longer is not our worker.
MAX_RECORD = 1024 * 1024
#: How often the parent reads the results file while tests run, to start each test's deadline.
#: A hung test is killed at most this much after its deadline.
POLL_S = 0.1

#: Outcome classes by their code in a record.
OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)
_CODES = {o: i for i, o in enumerate(OUTCOMES)}
_COMPILED, _COMPILE_ERROR, _TEST, _MATCHING = 1, 2, 3, 4
_LENGTH = struct.Struct("<I")
#: length, kind, ms, at
_COMPILED_HEAD = struct.Struct("<IBdd")
#: length, kind, at; then the detail
_ERROR_HEAD = struct.Struct("<IBd")
#: length, kind, index, at
_MATCHING_HEAD = struct.Struct("<IBId")
#: length, kind, index, outcome, fuel, memory, wall_ms, at, len(stdout), len(stderr); then stdout,
#: stderr and detail
_TEST_HEAD = struct.Struct("<IBIBqqddII")
_NAN = float("nan")


class ProtocolError(Exception):
    """The worker wrote something that is not a well-formed record."""


# --------------------------------------------------------------------------- worker side


def compiled(ms: float, at: float | None = None) -> bytes:
    """The record of a finished compile (``ms``: how long it took), written now (or ``at``)."""
    return _COMPILED_HEAD.pack(_COMPILED_HEAD.size, _COMPILED, ms, time.monotonic() if at is None else at)


def compile_error(detail: str) -> bytes:
    """The record of a module wasmtime refused."""
    text = _utf8(_cut(detail))
    return _ERROR_HEAD.pack(_ERROR_HEAD.size + len(text), _COMPILE_ERROR, time.monotonic()) + text


def matching(index: int) -> bytes:
    """The record of test ``index``'s run having ended: its output is being judged now."""
    return _MATCHING_HEAD.pack(_MATCHING_HEAD.size, _MATCHING, index, time.monotonic())


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
    out, err, why = _utf8(stdout), _utf8(stderr), _utf8(_cut(detail))
    head = _TEST_HEAD.pack(
        _TEST_HEAD.size + len(out) + len(err) + len(why),
        _TEST,
        index,
        _CODES[outcome],
        -1 if fuel is None else fuel,
        -1 if memory is None else memory,
        _NAN if wall_ms is None else wall_ms,
        time.monotonic(),
        len(out),
        len(err),
    )
    return head + out + err + why


#: A detail is one explanation, not a payload: a module's own error text (Extism error_set, a
#: mismatching body) is cut here, so no record grows past the reader's bound.
DETAIL_CHARS = 4096


def _cut(detail: str) -> str:
    if len(detail) <= DETAIL_CHARS:
        return detail
    return f"{detail[:DETAIL_CHARS]}… [cut: {len(detail)} characters]"


def _utf8(text: str) -> bytes:
    # "replace": a lone surrogate in an error message must not make the record unreadable.
    return text.encode("utf-8", "replace") if text else b""


# --------------------------------------------------------------------------- parent side


class Record:
    """One checked record: ``kind`` and its fields (only those of its kind are set)."""

    __slots__ = (
        "at", "detail", "fuel", "index", "kind", "memory", "ms", "outcome", "stderr", "stdout", "wall_ms",
    )  # fmt: skip

    def __init__(self, kind: str, at: float) -> None:
        """A record of ``kind`` written at ``at`` (the worker's monotonic clock)."""
        if at != at:  # NaN compares false with every time: it would mean no deadline at all
            raise ProtocolError("a record whose time is not a number")
        self.kind, self.at = kind, at
        self.ms: float = 0.0
        self.index = 0
        self.outcome = Outcome.passed
        self.fuel: int | None = None
        self.memory: int | None = None
        self.wall_ms: float | None = None
        self.stdout = self.stderr = self.detail = ""


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8") if data else ""
    except UnicodeDecodeError:
        raise ProtocolError("a text that is not UTF-8") from None


def parse(body: bytes) -> Record:
    """Check one whole record (its length field included); raises ``ProtocolError`` if malformed."""
    kind = body[4] if len(body) > 4 else 0
    try:
        if kind == _TEST:
            _, _, index, code, fuel, memory, wall, at, n_out, n_err = _TEST_HEAD.unpack_from(body)
            record = Record("test", at)
            if code >= len(OUTCOMES):
                raise ProtocolError("a test record without a valid outcome")
            if fuel < -1 or memory < -1:
                raise ProtocolError("a negative figure")
            start = _TEST_HEAD.size
            if n_out + n_err > len(body) - start:
                raise ProtocolError("a test record whose texts overrun it")
            record.index, record.outcome = index, OUTCOMES[code]
            record.fuel = None if fuel == -1 else fuel
            record.memory = None if memory == -1 else memory
            record.wall_ms = None if wall != wall else wall
            record.stdout = _text(body[start : start + n_out])
            record.stderr = _text(body[start + n_out : start + n_out + n_err])
            record.detail = _text(body[start + n_out + n_err :])
            if (record.fuel is not None and record.fuel < 0) or (
                record.memory is not None and record.memory < 0
            ):
                raise ProtocolError("a negative figure")
            return record
        if kind == _COMPILED and len(body) == _COMPILED_HEAD.size:
            _, _, ms, at = _COMPILED_HEAD.unpack_from(body)
            record = Record("compiled", at)
            record.ms = ms
            return record
        if kind == _MATCHING and len(body) == _MATCHING_HEAD.size:
            _, _, index, at = _MATCHING_HEAD.unpack_from(body)
            record = Record("matching", at)
            record.index = index
            return record
        if kind == _COMPILE_ERROR:
            _, _, at = _ERROR_HEAD.unpack_from(body)
            record = Record("compile_error", at)
            record.detail = _text(body[_ERROR_HEAD.size :])
            return record
    except struct.error:
        raise ProtocolError("a record shorter than its kind's fields") from None
    raise ProtocolError("a record of no known kind")


class ResultsFile:
    """The parent's reader of a worker's results file: new complete records since the last read."""

    def __init__(self, fd: int) -> None:
        """Read the file open as ``fd`` (positioned reads; the worker's offset is untouched)."""
        self.fd = fd
        self._offset = 0
        self._partial = b""
        self.more = False

    def read(self) -> list[Record]:
        """The complete records written since the previous call; a torn last one waits.

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
        records, pos, end = [], 0, len(data)
        while end - pos >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(data, pos)
            if not _LENGTH.size < length <= MAX_RECORD:
                raise ProtocolError(f"a record of {length} bytes (at most {MAX_RECORD})")
            if end - pos < length:
                break
            records.append(parse(data[pos : pos + length]))
            pos += length
        self._partial = data[pos:]
        return records


_CHUNK = 1 << 18
_BUDGET = 4 * MAX_RECORD
