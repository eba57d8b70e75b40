"""Every parser of untrusted input, fuzzed: it refuses bad input with its own error, never crashes.

Bounded so ``make test`` stays fast and deterministic: FUZZ_EXAMPLES inputs per target with a
fixed seed (default 100).  ``make fuzz`` sets FUZZ_SECONDS instead: random inputs, batch after
batch, until that many seconds have passed per target.
"""

from __future__ import annotations

import contextlib
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings

from .targets import TARGETS, Target, inputs

pytestmark = pytest.mark.fuzz

SECONDS = float(os.environ.get("FUZZ_SECONDS", "0") or 0)
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))


def _campaign(target: Target) -> None:
    strategy = inputs(target)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=SECONDS == 0,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def one(data: bytes) -> None:
        with contextlib.suppress(target.refusals):
            target.run(data)

    one()
    end = time.monotonic() + SECONDS
    while time.monotonic() < end:
        one()


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_parser_never_crashes(name: str) -> None:
    _campaign(TARGETS[name])


def test_the_harness_reports_a_crash() -> None:
    """The campaign must be able to fail: a parser that crashes on some input is caught."""

    def fragile(data: bytes) -> None:
        if len(data) > 3:
            raise IndexError("crash")

    with pytest.raises(IndexError):
        _campaign(Target("fragile", fragile, lambda: [b"seed input"]))
