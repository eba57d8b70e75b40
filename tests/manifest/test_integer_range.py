"""An integer outside the 64-bit range: the first one in the file, where it is, with the u64 advice."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry_tool.manifest.source import TomlSyntaxError, parse_toml


def _error(text: str) -> TomlSyntaxError:
    with pytest.raises(TomlSyntaxError) as info:
        parse_toml(Path("plugin.toml"), text.encode())
    return info.value


@pytest.mark.parametrize(
    ("text", "value", "line", "column"),
    [
        ("a = 1\nb = 18446744073709551615\n", "18446744073709551615", 2, 5),
        # several: the first in the document, not the last one a walk of the data meets
        ("x = 1\n[t]\nb = [1, 9223372036854775808]\nc = 99999999999999999999\n", "9223372036854775808", 3, 9),
        (
            "[[tests]]\nargs = [1, -9223372036854775809]\n[[tests]]\nargs = [18446744073709551616]\n",
            "-9223372036854775809",
            2,
            12,
        ),
        # a table extended after a later one: the data's order is not the document's
        (
            "[a]\nx = 1\n[b]\ny = 2_0000000000000000000\n[a.c]\nz = 30000000000000000000\n",
            "20000000000000000000",
            4,
            5,
        ),
        ("n = 0xFFFFFFFFFFFFFFFFF\n", "295147905179352825855", 1, 5),
        # the same digits in a comment or a string are no literal
        (
            '# u64::MAX is 18446744073709551615\ns = "18446744073709551615"\n'
            'm = """\n18446744073709551615"""\nfuel = 18446744073709551615\n',
            "18446744073709551615",
            5,
            8,
        ),
    ],
)
def test_the_first_out_of_range_integer_is_reported_where_it_is(
    text: str, value: str, line: int, column: int
) -> None:
    err = _error(text)
    assert f"integer {value} is outside the 64-bit range" in str(err)
    assert (err.line, err.column) == (line, column)


def test_the_fix_says_how_to_write_a_large_u64() -> None:
    finding = _error("expect = [18446744073709551615]\n").finding(
        "plugin.toml", fix="correct the TOML syntax"
    )
    assert "u64 at or above 2^63" in finding.fix
    assert "-1" in finding.fix and "-9223372036854775808" in finding.fix
    assert finding.line == 1


def test_other_syntax_errors_keep_the_callers_fix() -> None:
    finding = _error("a = \n").finding("plugin.toml", fix="correct the TOML syntax")
    assert finding.fix == "correct the TOML syntax"
