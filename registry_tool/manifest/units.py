"""Human-friendly sizes (``"16MiB"``) and durations (``"2s"``, ``"7d"``), shared by every part."""

from __future__ import annotations

import math
import re

from registry_tool.format.strictjson import MAX_SAFE_INTEGER

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
# At most 18 integer digits: every accepted value fits a 64-bit integer, and a 400-digit string
# cannot overflow float conversion.
# ASCII: \d and \s would also take other scripts' digits and spaces (which int() reads as numbers).
_NUMBER_UNIT = re.compile(r"^\s*(\d{1,18}(?:\.\d{1,9})?)\s*([A-Za-z]*)\s*$", re.ASCII)


MAX_SECONDS = 10 * 365 * 86400.0  # ten years: beyond any timeout or validity we accept


class UnitError(ValueError):
    """A size or duration string that cannot be parsed; the message says what is accepted."""


def parse_size(value: int | str) -> int:
    """Bytes from an integer or a string like ``"16MiB"``, ``"512KiB"``, ``"1GB"``, ``"4096"``."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        # A TOML float such as 1e308 is refused here, not turned into a huge byte count.
        raise UnitError(f"expected a size such as '16MiB' or an integer byte count, got {value!r}")
    if isinstance(value, int):
        size = value
    else:
        match = _NUMBER_UNIT.match(value)
        unit = match.group(2).lower() if match else None
        if not match or unit not in _SIZE_UNITS:
            raise UnitError(
                f"invalid size {value!r}: use an integer byte count or a number with B, KiB, MiB, GiB"
            )
        size = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if size < 0:
        raise UnitError(f"size must not be negative, got {value}")
    if size > MAX_SAFE_INTEGER:  # the registry's documents hold integers up to 2**53
        raise UnitError(f"size {value!r} is out of range (at most 2**53 bytes)")
    return size


def milliseconds(seconds: float) -> int:
    """A duration in whole milliseconds, a half rounded away from zero.

    As Go's ``math.Round`` and Rust's ``f64::round`` do: the published ``wall_time_ms`` and every
    verifier's comparison with it (``round`` would take 12.5 to 12, the others to 13).
    """
    ms = abs(seconds) * 1000
    whole = math.floor(ms)  # floor(ms + 0.5) is one too many above 2^52, where ms + 0.5 rounds up
    return (whole + (ms - whole >= 0.5)) * (1 if seconds >= 0 else -1)


def parse_duration(value: int | float | str) -> float:
    """Seconds from a number (seconds) or a string like ``"500ms"``, ``"2s"``, ``"12h"``, ``"7d"``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UnitError(f"expected a duration such as '2s', got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > MAX_SECONDS:
            raise UnitError(
                f"duration {value!r} is out of range (at most {MAX_SECONDS:g} seconds: ten years)"
            )
        if value < 0:
            raise UnitError(f"duration must not be negative, got {value}")
        return float(value)
    match = _NUMBER_UNIT.match(value)
    unit = match.group(2).lower() if match else None
    if not match or unit not in _DURATION_UNITS:
        raise UnitError(
            f"invalid duration {value!r}: use a number with ms, s, m, h, d or w (e.g. '2s', '7d')"
        )
    seconds = float(match.group(1)) * _DURATION_UNITS[unit]
    if seconds > MAX_SECONDS:
        raise UnitError(f"duration {value!r} is out of range (at most {MAX_SECONDS:g} seconds: ten years)")
    return seconds


def format_size(n: int) -> str:
    """The shortest exact binary-unit spelling of ``n`` bytes (for messages)."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}B"
