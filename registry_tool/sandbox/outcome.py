"""What a smoke run ends in: one named outcome class, its figures, and output made safe to show.

``TestOutcome.to_json`` is the stable per-test record that the registry build stores next to each
release and that ``ci check`` compares between versions (documented in docs/sandbox.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

#: How many characters of captured output a report shows (the comparison uses everything captured).
SHOWN_OUTPUT_CHARS = 2000


class Outcome(StrEnum):
    """Every run ends in exactly one of these."""

    passed = "passed"
    wrong_output = "wrong_output"
    exit_code = "exit_code"
    out_of_fuel = "out_of_fuel"
    timeout = "timeout"
    memory_limit = "memory_limit"
    stack_overflow = "stack_overflow"
    trap = "trap"
    missing_export = "missing_export"
    link_error = "link_error"
    compile_error = "compile_error"
    compile_timeout = "compile_timeout"
    worker_crashed = "worker_crashed"
    output_limit = "output_limit"


OUTCOME_NAMES = frozenset(o.value for o in Outcome)

#: What a Proxy-Wasm filter's start-up says when main ran to its end and exited, and its fix.
COMMAND_BUILD_SAID = "a command build exits when main returns"
COMMAND_BUILD_FIX = (
    "build the filter as a reactor: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared, or tinygo "
    "build -buildmode=c-shared"
)


@dataclass
class TestOutcome:
    """The verdict and figures of one ``[[tests]]`` entry."""

    __test__ = False  # not a pytest class

    name: str
    outcome: Outcome
    expected: str = Outcome.passed.value  # the class the test asked for (``expect_trap`` or "passed")
    fuel_consumed: int | None = None
    peak_memory_bytes: int | None = None
    wall_ms: float | None = None
    stdout: str = ""
    stderr: str = ""
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether the test ended as it expected (``outcome == expected``)."""
        return self.outcome.value == self.expected

    def to_json(self) -> dict[str, Any]:
        """The stable per-test JSON (docs/sandbox.md)."""
        return {
            "name": self.name,
            "outcome": self.outcome.value,
            "expected": self.expected,
            "passed": self.passed,
            "fuel_consumed": self.fuel_consumed,
            "peak_memory_bytes": self.peak_memory_bytes,
            "wall_ms": None if self.wall_ms is None else round(self.wall_ms, 3),
            "stdout": self.stdout,
            "stderr": self.stderr,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TestOutcome:
        """Read a record back; raises TypeError/ValueError/KeyError for anything ill-typed.

        The parent reads these from a worker that runs untrusted code: a figure it formats must be a
        number, a text a string, or the record is refused (the test then fails closed).
        """
        return cls(
            name=_typed(data["name"], str),
            outcome=Outcome(data["outcome"]),
            expected=_typed(data.get("expected", Outcome.passed.value), str),
            fuel_consumed=_typed(data.get("fuel_consumed"), int, optional=True),
            peak_memory_bytes=_typed(data.get("peak_memory_bytes"), int, optional=True),
            wall_ms=_typed(data.get("wall_ms"), (int, float), optional=True),
            stdout=_typed(data.get("stdout", ""), str),
            stderr=_typed(data.get("stderr", ""), str),
            detail=_typed(data.get("detail", ""), str),
        )


def _typed(value: Any, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    if (value is None and optional) or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    raise TypeError(f"expected {kind}, got {type(value).__name__}")


# Terminal control sequences: CSI (ESC [ ... final, or the 8-bit CSI U+009B), OSC (ESC ] ... BEL/ST),
# DCS/SOS/PM/APC strings (ESC P/X/^/_ ... ST) and any other two-byte ESC sequence.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x9d\x98\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -~]?"
)
# Controls that are not newline/tab, DEL, C1, and the bidi overrides of "Trojan Source".
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


_COMMAND_START = re.compile(r"^([^\S\n]*)::", re.M)
# Anything ``neutralise`` could change: text without any of it is returned as it is (most output).
_ANY_UNSAFE = re.compile(f"{_CONTROL.pattern}|::")


def _visible(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def neutralise(data: bytes | str) -> str:
    r"""Text that is safe to print on a terminal, in a log or in a GitHub annotation.

    Escape sequences are shown, not interpreted: every control character except newline and
    tab becomes a visible ``\\xNN`` so a hostile module can neither recolour nor retitle the
    terminal, hide text, rewrite earlier lines or smuggle workflow commands.
    """
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    if not _ANY_UNSAFE.search(text):
        return text
    text = _ESCAPE_SEQUENCE.sub(
        lambda m: "".join(_visible(c) if _CONTROL.match(c) else c for c in m[0]), text
    )
    text = _CONTROL.sub(lambda m: _visible(m[0]), text)
    # A line starting with "::" would be read as a GitHub workflow command, and the runner trims the
    # line first (any Unicode whitespace): break it visibly wherever it starts.
    return _COMMAND_START.sub("\\1:\u200b:", text)


def shown(data: bytes, limit: int = SHOWN_OUTPUT_CHARS) -> str:
    """Neutralised output cut to ``limit`` characters, saying how much was cut."""
    if not data:
        return ""
    if len(data) > 4 * limit:
        # Only the head is shown, so only the head is neutralised (12 MB of NULs took 13 s, past
        # the test's deadline): 4 bytes per character cover any UTF-8 text.
        head = neutralise(data[: 4 * limit])
        return head[:limit] + f"… [cut: {len(data)} bytes in all]"
    text = neutralise(data)
    if len(text) <= limit:
        return text
    return text[:limit] + f"… [{len(text) - limit} more characters]"


def shown_tail(data: bytes, limit: int = SHOWN_OUTPUT_CHARS) -> str:
    """``shown``, keeping the end rather than the head.

    A log's last lines say why a module failed (a Go runtime's panic, a FATAL line after a
    hundred debug ones), and the report quotes its last line.
    """
    if not data:
        return ""
    if len(data) > 4 * limit:
        tail = neutralise(data[-4 * limit :])
        return f"[cut: {len(data)} bytes in all] …" + tail[-limit:]
    text = neutralise(data)
    if len(text) <= limit:
        return text
    return f"[{len(text) - limit} earlier characters] …" + text[-limit:]
