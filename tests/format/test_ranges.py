"""The range grammar of docs/registry-format.md: npm semantics, strict syntax, one implementation."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Callable

import pytest

from registry_tool.format import RangeSyntaxError, Requirement, UnsafeNameError, choose, parse_range
from registry_tool.format.ranges import check_range


@pytest.mark.parametrize(
    "text, version, expected",
    [
        ("^1.2", "1.9.0", True),
        ("^1.2", "2.0.0", False),
        ("^1.2", "1.1.9", False),
        ("^0.2.3", "0.2.9", True),
        ("^0.2.3", "0.3.0", False),
        ("^0.0.3", "0.0.3", True),
        ("^0.0.3", "0.0.4", False),
        ("^0", "0.9.9", True),
        ("~1.2", "1.2.9", True),
        ("~1.2", "1.3.0", False),
        ("~1", "1.9.0", True),
        ("1.2", "1.2.5", True),
        ("1.2", "1.3.0", False),
        ("1", "1.99.0", True),
        ("1.x", "1.5.0", True),
        ("1.2.*", "1.2.7", True),
        ("1.2.3", "1.2.3", True),
        ("1.2.3", "1.2.4", False),
        ("=1.2.3", "1.2.3", True),
        (">1.2", "1.2.9", False),
        (">1.2", "1.3.0", True),
        (">1.2.3", "1.2.4", True),
        ("<=1.2", "1.2.9", True),
        ("<=1.2", "1.3.0", False),
        ("<1.2", "1.1.9", True),
        ("<1.2", "1.2.0", False),
        (">=0.2.0, <1.0.0", "0.3.1", True),
        (">=0.2.0,<1.0.0", "1.0.0", False),
        (">=1.0.0 <2", "1.5.0", True),
        ("1.x || >=3 <4", "3.1.0", True),
        ("1.x || >=3 <4", "2.1.0", False),
        ("*", "4.0.0", True),
    ],
)
def test_npm_semantics(text: str, version: str, expected: bool) -> None:
    assert parse_range(text).matches(version) is expected


@pytest.mark.parametrize(
    "text, version, expected",
    [
        ("*", "1.0.0-rc.1", False),
        (">=1.0.0 <2", "2.0.0-rc.1", False),  # the upper bound names no prerelease
        ("^1.2.3-beta.2", "1.2.3-beta.3", True),
        ("^1.2.3-beta.2", "1.2.4-beta.1", False),  # another major.minor.patch
        (">=2.0.0-rc.1", "2.0.0-rc.2", True),
        (">=2.0.0-rc.1", "2.0.0", True),
    ],
)
def test_prerelease_matches_only_a_set_naming_its_triple(text: str, version: str, expected: bool) -> None:
    assert parse_range(text).matches(version) is expected


@pytest.mark.parametrize(
    "text",
    ["", " 1", "1 ", "1.2.3 - 2.0.0", "x", "v1", "^", "1.x.3", ">= 1", "1 ||", "|| 1", "1.2.3+build",
     "01.2", "1.2.x-rc", "1,,2", "latest", "1.2.3\n", "\u0661.2.3"],
)  # fmt: skip
def test_outside_the_grammar_is_bad_requirement(text: str) -> None:
    with pytest.raises(RangeSyntaxError) as err:
        parse_range(text)
    assert err.value.code == "bad-requirement" and err.value.exit_code == 2


def test_exact_pin_is_only_a_whole_version() -> None:
    assert parse_range("1.2.3").exact == "1.2.3" and parse_range("=1.2.3").exact == "1.2.3"
    assert parse_range(">=1.2.3").exact is None and parse_range("1.2").exact is None


def test_requirement_names_are_checked_first() -> None:
    assert Requirement.parse("alpha@^1.2") == Requirement("alpha", "^1.2")
    for bad in ("../evil@1.0.0", "Alpha", "alpha\n", "a"):
        with pytest.raises(UnsafeNameError):
            Requirement.parse(bad)
    with pytest.raises(RangeSyntaxError):
        Requirement.parse("alpha@")


def test_choose_skips_yanked_unless_pinned_and_respects_host() -> None:
    versions = {"1.0.0": None, "1.1.0": "broken", "1.2.0-rc.1": None, "2.0.0": None}
    hosts = {"1.0.0": ">=0.2.0", "1.1.0": None, "1.2.0-rc.1": None, "2.0.0": ">=0.5.0"}

    def pick(spec: str, host: str | None = None) -> str:
        return choose(
            Requirement.parse(spec), versions, yanked=versions.get, host=hosts.get, host_version=host
        )

    assert pick("alpha") == "2.0.0"
    assert pick("alpha", "0.3.0") == "1.0.0"
    assert pick("alpha@^1") == "1.0.0"
    assert pick("alpha@1.1.0") == "1.1.0"  # exact pin selects a yanked version
    assert pick("alpha@=1.1.0") == "1.1.0"
    assert pick("alpha@>=1.2.0-rc.1 <2") == "1.2.0-rc.1"
    with pytest.raises(Exception, match=r"skipped 1\.1\.0 \(yanked: broken\)"):
        pick("alpha@~1.1")


def _accepts(check: Callable[[str], object], text: str) -> bool:
    try:
        check(text)
    except RangeSyntaxError:
        return False
    return True


def test_check_range_accepts_exactly_what_parse_range_accepts() -> None:
    """``check_range`` (validate's grammar check, no versions built) and ``parse_range`` agree.

    On the grammar's pieces joined at random: comparators, wildcards, prereleases, separators.
    """
    pieces = ["1", "0", "01", "1.2", "1.2.3", "1.x", "1.*", "x", "*", "^", "~", ">=", "<", "=", ">", "<=",
              "!=", "-rc.1", "-", "+b", ".", " ", "  ", ",", ", ", "||", " || ", "\t", "v", "1.2.3-alpha",
              "1.x.3"]  # fmt: skip
    rng = random.Random(17)
    texts = {"".join(rng.choice(pieces) for _ in range(rng.randint(1, 7))) for _ in range(6000)}
    accepted = 0
    for text in sorted(texts):
        parsed = _accepts(parse_range, text)
        assert _accepts(check_range, text) == parsed, text
        accepted += parsed
    assert 50 < accepted < len(texts) - 50  # both sides of the grammar are exercised


def test_check_range_needs_no_semantic_version() -> None:
    """validate of one release reads the grammar without importing semantic_version (slow to import)."""
    code = (
        "import sys; from registry_tool.format.ranges import check_range;"
        "check_range('>=0.2.0, <1.0.0 || ^2');"
        "assert 'semantic_version' not in sys.modules and 'registry_tool.format.documents' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
