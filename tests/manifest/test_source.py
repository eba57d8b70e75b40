"""TOML line numbers: the scanner must agree with tomllib about where every key is."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry_tool.manifest.source import TomlSyntaxError, line_map, parse_toml

TRICKY = '''# leading comment
[plugin]
name = "x"   # trailing comment with = sign
description = """
multi-line = not a key
[not.a.table]
"""
"quoted.key" = 1
authors = [
  "a",   # comment ]
  "b=c",
]
inline = { a = 1, b = [1, 2] }
dotted.sub.key = true

[artifact]
file = 'lit[eral].wasm'

[[tests]]
call = "one"

[[tests]]
call = "two"
args = [1,
  2]
expect = [3]

[limits.max]
fuel = 1
'''


@pytest.mark.parametrize(
    ("field", "line"),
    [
        ("plugin", 2),
        ("plugin.name", 3),
        ("plugin.description", 4),
        ("plugin.quoted.key", 8),
        ("plugin.authors", 9),
        ("plugin.inline", 13),
        ("plugin.dotted", 14),
        ("plugin.dotted.sub.key", 14),
        ("artifact", 16),
        ("artifact.file", 17),
        ("tests", 19),
        ("tests[0]", 19),
        ("tests[0].call", 20),
        ("tests[1]", 22),
        ("tests[1].call", 23),
        ("tests[1].args", 24),
        ("tests[1].expect", 26),
        ("limits.max", 28),
        ("limits.max.fuel", 29),
    ],
)
def test_line_map(field: str, line: int) -> None:
    assert line_map(TRICKY)[field] == line


def test_no_phantom_keys_from_strings_or_arrays() -> None:
    lines = line_map(TRICKY)
    assert "plugin.multi-line" not in lines
    assert "not.a.table" not in lines
    assert "plugin.b" not in lines  # inside an inline table / array


def test_line_of_falls_back_to_the_enclosing_key() -> None:
    src = parse_toml(Path("x.toml"), TRICKY.encode())
    assert src.line_of("tests[1].expect[0]") == 26
    assert src.line_of("plugin.missing") == 2
    assert src.line_of("nowhere") is None


@pytest.mark.parametrize(
    ("text", "line"),
    [('a = "unterminated\n', 1), ("[t]\nx = 1\nx = 2\n", 3), ("ok = 1\n[bad\n", 2), ("a = \n", 1)],
)
def test_syntax_errors_carry_the_line(text: str, line: int) -> None:
    with pytest.raises(TomlSyntaxError) as info:
        parse_toml(Path("x.toml"), text.encode())
    assert info.value.line == line
    assert "at line" not in str(info.value)  # position lives in .line/.column, not the text


def test_non_utf8_is_a_syntax_error() -> None:
    with pytest.raises(TomlSyntaxError, match="UTF-8"):
        parse_toml(Path("x.toml"), b'name = "\xff"\n')


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("[" * 5000 + "]" * 5000, "at most 64 levels"),
        ("{a=" * 3000 + "1" + "}" * 3000, "at most 64 levels"),
        ("[" * 40 + "]" * 40, "nested more than 16 levels"),
    ],
    ids=["deep-array", "deep-inline-table", "deep-but-parseable"],
)
def test_hostile_nesting_is_a_finding_not_a_crash(tmp_path: Path, value: str, fragment: str) -> None:
    from registry_tool.manifest import load_registry_config, validate_release

    (tmp_path / "plugin.toml").write_text(f"[plugin]\nname = {value}\n")
    result = validate_release(tmp_path, load_registry_config(Path(__file__).parents[2] / "index"))
    assert not result.ok
    assert any(fragment in f.message for f in result.findings), result.findings


def test_line_map_is_built_on_the_first_line_asked_for() -> None:
    """A file nobody reports on never pays for the scan; once asked, the lines are line_map's."""
    src = parse_toml(Path("x.toml"), TRICKY.encode())
    assert "lines" not in vars(src)  # not scanned by parsing
    assert src.line_of("tests[1].call") == 23
    assert src.lines == line_map(TRICKY)
    assert src.lines is src.lines  # scanned once


def test_a_valid_manifest_parse_builds_no_line_map() -> None:
    from registry_tool.manifest.model import parse_manifest

    text = (
        '[plugin]\nname = "pp"\nversion = "1.0.0"\ndescription = "d"\nauthors = ["a"]\nlicense = "MIT"\n'
        'abi = "core"\nmin_host_version = "0.2.0"\n\n[artifact]\nfile = "p.wasm"\n\n'
        '[exports]\nfunctions = ["run"]\n\n[[tests]]\ncall = "run"\nargs = [1]\nexpect = [2]\n'
    )
    manifest, findings = parse_manifest(Path("plugin.toml"), text.encode(), "plugin.toml")
    assert manifest is not None and manifest.source is not None, findings
    assert "lines" not in vars(manifest.source)
    # Line numbers are still there on demand, the same as the eager scan gave.
    assert manifest.tests[0].line == line_map(text)["tests[0]"] == 16
    assert manifest.line_of("exports.functions") == 14
