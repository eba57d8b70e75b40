"""Durations in whole milliseconds, as every verifier reads a published wall_time_ms."""

from __future__ import annotations

import pytest

from registry_tool.manifest.units import milliseconds


@pytest.mark.parametrize(
    ("seconds", "ms"), [(0.0125, 13), (0.0025, 3), (0.0124999, 12), (0.5, 500), (1.0005, 1001), (0.0, 0)]
)
def test_milliseconds_round_a_half_away_from_zero_as_go_and_rust_do(seconds: float, ms: int) -> None:
    # Python's round() takes 12.5 to 12 (half to even); Go's math.Round and Rust's f64::round to 13.
    assert milliseconds(seconds) == ms
    assert milliseconds(-seconds) == -ms


def test_milliseconds_of_huge_durations_are_exact() -> None:
    assert milliseconds((2**52 + 1) / 1000) == round((2**52 + 1) / 1000 * 1000)
