"""Core tests write i32/i64 values signed or unsigned: the same bits, never wrapped silently.

The module is C built with clang (``uint32_t``/``uint64_t`` exports): wasmtime gives results in
their signed reading, so a test that expected the C value 2654435761 failed against -1640531535,
and an argument of 2**33 was silently passed as 0.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from registry_tool.sandbox.abis import Case
from registry_tool.sandbox.outcome import Outcome

from .conftest import Runner


@pytest.mark.parametrize(
    ("call", "args", "expect", "passes"),
    [
        ("hash32", [1], [2654435761], True),  # the C (unsigned) value
        ("hash32", [1], [-1640531535], True),  # the signed reading of the same bits
        ("hash32", [1], [2654435760], False),
        ("hash32", [4294967295], [1640531535], True),  # an unsigned argument
        ("hash32", [-1], [1640531535], True),  # the same argument, signed
        ("flip64", [0], [18446744073709551615], True),
        ("flip64", [0], [-1], True),
        ("flip64", [18446744073709551615], [0], True),
    ],
)
def test_signed_or_unsigned_readings(
    run: Runner, build_c: Callable[..., bytes], call: str, args: list[int], expect: list[int], passes: bool
) -> None:
    [result] = run(build_c("unsigned", "unknown"), Case("t", call, args, expect_kind="values", expect=expect))
    assert (result.outcome is Outcome.passed) is passes, result.detail


@pytest.mark.parametrize(("call", "arg"), [("hash32", 2**33), ("hash32", 2**32), ("hash32", -(2**31) - 1)])
def test_an_argument_no_integer_of_its_type_holds_is_refused(
    run: Runner, build_c: Callable[..., bytes], call: str, arg: int
) -> None:
    [result] = run(build_c("unsigned", "unknown"), Case("t", call, [arg], expect_kind="values", expect=[0]))
    assert (
        result.outcome is not Outcome.passed
        and "does not suit the export's i32 parameter: not within" in result.detail
    )


ADD = """(module (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))"""


@pytest.mark.parametrize(
    ("args", "said"),
    [([2, 3, 4], "give the test's args exactly as many values"), ([2.7, 3], "of its parameter's type")],
)
def test_args_that_do_not_suit_the_export_get_the_tests_fix(
    run: Runner, args: list[float], said: str
) -> None:
    # They were told "export the function the test calls": the export is there, the test is wrong.
    from registry_tool.sandbox.harness import _fix_for

    from .conftest import wat

    [result] = run(wat(ADD), Case("t", "add", args, expect_kind="values", expect=[5]))
    assert result.outcome is Outcome.missing_export
    assert said in (_fix_for(result) or ""), (result.detail, _fix_for(result))
