"""Pure parts: escaping of captured output, the outcome record, and the verdict logic."""

from __future__ import annotations

import json

import pytest

from registry_tool.sandbox import Case, Limits, Outcome, TestOutcome, neutralise
from registry_tool.sandbox.abis import Produced
from registry_tool.sandbox.outcome import shown
from registry_tool.sandbox.worker import _Run, compare, judge

from .conftest import OUTCOME_FIELDS


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"plain text\n\tindented", "plain text\n\tindented"),
        (b"\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        (b"\x1b]0;title\x07after", "\\x1b]0;title\\x07after"),
        (b"\x1b]8;;http://evil\x1b\\link", "\\x1b]8;;http://evil\\x1b\\link"),
        ("\x9b2J csi8".encode(), "\\x9b2J csi8"),
        (b"over\rwrite", "over\\x0dwrite"),
        (b"bell\x07 nul\x00 del\x7f", "bell\\x07 nul\\x00 del\\x7f"),
        ("rtl \u202eevil".encode(), "rtl \\u202eevil"),
        (b"::error::forged\n::warning file=x::y", ":\u200b:error::forged\n:\u200b:warning file=x::y"),
        (b"bad utf8 \xff\xfe", "bad utf8 \ufffd\ufffd"),
    ],
    ids=["plain", "csi", "osc-bel", "osc-st", "c1-csi", "cr", "c0", "bidi", "workflow-cmd", "utf8"],
)
def test_neutralise(raw: bytes, expected: str) -> None:
    assert neutralise(raw) == expected


@pytest.mark.parametrize("byte", [*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F])
def test_no_control_character_survives(byte: int) -> None:
    assert all(ch in "\n\t" or ord(ch) >= 0x20 for ch in neutralise(bytes([byte, 0x41])))


def test_shown_cuts_long_output_and_says_so() -> None:
    text = shown(b"a" * 5000, limit=100)
    assert text.startswith("a" * 100)
    assert "cut: 5000 bytes in all" in text
    text = shown(b"\x1b" * 300, limit=100)  # under 4x the limit in bytes: counted in characters
    assert text.startswith("\\x1b" * 25) and "1100 more characters" in text


def test_outcome_json_is_stable_and_round_trips() -> None:
    outcome = TestOutcome("t", Outcome.out_of_fuel, expected="out_of_fuel", fuel_consumed=5, wall_ms=1.23456)
    data = outcome.to_json()
    assert list(data) == list(OUTCOME_FIELDS)
    assert data["passed"] is True and data["wall_ms"] == 1.235
    assert TestOutcome.from_json(json.loads(json.dumps(data))).to_json() == data


LIMITS = Limits(memory=1024 * 1024, table_elements=1000, output=100)


@pytest.mark.parametrize(
    ("case", "produced", "stdout", "outcome"),
    [
        (Case("a", expect_kind="text", expect="hi"), Produced(exit_code=0), b"hi", Outcome.passed),
        (Case("a", expect_kind="text", expect="hi"), Produced(exit_code=0), b"hi\n", Outcome.wrong_output),
        (Case("a", expect_kind="regex", expect="^h"), Produced(exit_code=0), b"hi", Outcome.passed),
        (Case("a", expect_kind="bytes", expect=b"\xff"), Produced(output=b"\xff"), b"", Outcome.passed),
        (Case("a", expect_kind="none"), Produced(exit_code=2), b"", Outcome.exit_code),
        (Case("a", exit_code=2), Produced(exit_code=2), b"", Outcome.passed),
        (Case("a", expect_kind="values", expect=[1.5]), Produced(values=[1.5]), b"", Outcome.passed),
        (Case("a", expect_kind="values", expect=[1]), Produced(values=[1, 2]), b"", Outcome.wrong_output),
    ],
)
def test_compare(case: Case, produced: Produced, stdout: bytes, outcome: Outcome) -> None:
    assert compare(case, produced, stdout)[0] is outcome


def test_an_exit_code_test_expecting_the_class_is_not_told_it_expected_zero() -> None:
    """``expect_trap = "exit_code"`` asks for any nonzero code: its detail names the code only."""
    expecting = compare(Case("a", expect_trap="exit_code"), Produced(exit_code=7), b"")
    assert expecting == (Outcome.exit_code, "exit code 7")
    plain = compare(Case("a", exit_code=3), Produced(exit_code=7), b"")
    assert plain == (Outcome.exit_code, "exit code 7, expected 3")


def test_output_over_the_cap_wins_over_everything() -> None:
    run = _Run(produced=Produced(exit_code=0))
    assert judge(Case("a"), run, b"x" * 101, b"", LIMITS, None, None)[0] is Outcome.output_limit
    assert judge(Case("a"), run, b"", b"x" * 101, LIMITS, None, None)[0] is Outcome.output_limit
    assert judge(Case("a"), run, b"x" * 100, b"", LIMITS, None, None)[0] is Outcome.passed


@pytest.mark.parametrize(
    ("memory", "table", "outcome"),
    [
        (1024 * 1024, None, Outcome.memory_limit),
        (1024 * 1024 * 15 // 16, None, Outcome.memory_limit),
        (1024 * 1024 // 2, None, Outcome.wrong_output),
        (None, 1000, Outcome.memory_limit),
        (None, 10, Outcome.wrong_output),
    ],
)
def test_failure_at_the_memory_or_table_cap_is_memory_limit(
    memory: int | None, table: int | None, outcome: Outcome
) -> None:
    run = _Run(produced=Produced(output=b"no"))
    case = Case("a", expect_kind="text", expect="yes")
    assert judge(case, run, b"", b"", LIMITS, memory, table)[0] is outcome


def test_a_failure_of_a_module_that_started_at_its_cap_is_its_own() -> None:
    """Initial memory at the cap, then an unrelated failure: it was memory_limit, "use less memory"."""
    run = _Run(produced=Produced(output=b"no"))
    case = Case("a", expect_kind="text", expect="yes")
    assert judge(case, run, b"", b"", LIMITS, 1024 * 1024, None, 1024 * 1024)[0] is Outcome.wrong_output
    assert judge(case, run, b"", b"", LIMITS, 1024 * 1024, None, 64 * 1024)[0] is Outcome.memory_limit


def test_passing_run_at_the_cap_still_passes() -> None:
    run = _Run(produced=Produced(output=b"yes"))
    case = Case("a", expect_kind="text", expect="yes")
    assert judge(case, run, b"", b"", LIMITS, 1024 * 1024, None)[0] is Outcome.passed
