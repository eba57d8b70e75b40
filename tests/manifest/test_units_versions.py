"""Sizes, durations, semver and host ranges: the helpers every part imports."""

from __future__ import annotations

import pytest

from registry_tool.manifest import (
    UnitError,
    format_size,
    is_newer,
    is_version,
    parse_duration,
    parse_range,
    parse_size,
    ranges_overlap,
    sort_versions,
)
from registry_tool.manifest.versions import RangeError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16MiB", 16 * 1024**2),
        ("512KiB", 512 * 1024),
        ("1GiB", 1024**3),
        ("1GB", 10**9),
        ("10kb", 10_000),
        ("4096", 4096),
        ("4096B", 4096),
        ("1.5MiB", 1572864),
        (" 2 MiB ", 2 * 1024**2),
        (0, 0),
        (65536, 65536),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "MiB",
        "16 MeB",
        "-1",
        "16MiBs",
        "1e6",
        -5,
        True,
        "0x10",
        "1\u0666MiB",
        "\u0661\u0666",
        "16\u2003MiB",
    ],
)
def test_parse_size_rejects(bad: str | int) -> None:
    with pytest.raises(UnitError):
        parse_size(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2s", 2.0),
        ("500ms", 0.5),
        ("7d", 604800.0),
        ("12h", 43200.0),
        ("1m", 60.0),
        ("1w", 604800.0),
        (3, 3.0),
        (0.25, 0.25),
    ],
)
def test_parse_duration(text: str | float, expected: float) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["2", "2 sec", "s", "-2s", "2y", -1, False, "1h30m", "\u0662s", "2\u00a0s"])
def test_parse_duration_rejects(bad: str | float) -> None:
    with pytest.raises(UnitError):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("n", "text"), [(16 * 1024**2, "16MiB"), (1024, "1KiB"), (1000, "1000B"), (3 * 1024**3, "3GiB")]
)
def test_format_size_round_trips(n: int, text: str) -> None:
    assert format_size(n) == text
    assert parse_size(text) == n


@pytest.mark.parametrize(
    "good", ["1.0.0", "0.0.1", "10.20.30", "1.0.0-rc.1", "1.0.0-alpha+build.7", "1.0.0+20260101"]
)
def test_strict_semver_accepts(good: str) -> None:
    assert is_version(good)


@pytest.mark.parametrize(
    "bad", ["1.0", "1", "v1.0.0", "01.0.0", "1.0.0.0", "1.0.0-", "1.0.0-01", "", "latest", " 1.0.0"]
)
def test_strict_semver_rejects(bad: str) -> None:
    assert not is_version(bad)


def test_sort_versions_uses_semver_precedence() -> None:
    assert sort_versions(["1.10.0", "1.2.0", "1.2.0-rc.1", "0.9.9", "1.2.0-alpha"]) == [
        "0.9.9",
        "1.2.0-alpha",
        "1.2.0-rc.1",
        "1.2.0",
        "1.10.0",
    ]


@pytest.mark.parametrize(
    ("candidate", "existing", "newer"),
    [
        ("1.1.0", ["1.0.0", "1.0.5"], True),
        ("1.0.1", ["1.0.0", "1.1.0"], False),
        ("1.0.0", ["1.0.0"], False),
        ("1.0.0", [], True),
        ("2.0.0-rc.1", ["1.9.9"], True),
        ("1.0.0-rc.1", ["1.0.0"], False),
    ],
)
def test_is_newer(candidate: str, existing: list[str], newer: bool) -> None:
    assert is_newer(candidate, existing) is newer


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        (">=0.2.0", ">=0.2.0, <1.0.0", True),
        (">=1.0.0", ">=0.2.0, <1.0.0", False),
        ("^0.3", ">=0.2.0, <1.0.0", True),
        ("^1.2", ">=0.2.0, <1.0.0", False),
        (">=0.2.0, <0.2.5", ">=0.2.4", True),
        ("<0.2.0", ">=0.2.0", False),
        ("~0.9.1", ">=0.2.0, <1.0.0", True),
        (">=0.1.0 <0.2.0", ">=0.2.0, <1.0.0", False),
        ("0.5.0", ">=0.2.0, <1.0.0", True),
    ],
)
def test_ranges_overlap(a: str, b: str, overlap: bool) -> None:
    assert ranges_overlap(a, b) is overlap
    assert ranges_overlap(b, a) is overlap


@pytest.mark.parametrize("bad", ["banana", ">=", ">=1.0.0,,<2", "=>1.0.0"])
def test_parse_range_rejects(bad: str) -> None:
    with pytest.raises(RangeError):
        parse_range(bad)
