"""The versions and host ranges nearly every manifest uses, accepted without ``semantic_version``.

Importing ``semantic_version`` reads its own package metadata through ``importlib.metadata``,
which costs a cold ``registry-tool validate`` more than every other version check together.
The forms plugins and registries write are a small subset of what it parses: a strict semver
``X.Y.Z[-pre][+build]`` version, and ranges made of ``>=``, ``>``, ``<=``, ``<`` comparators on
full ``X.Y.Z`` versions (``">=0.2.0, <1.0.0"``, ``">=0.2.0"``, ``">=0.2.0 <1.0.0"``).  For
those, ``versions`` asks this module first; it answers True only where ``semantic_version``
(through ``versions``' own rules) accepts, and None for anything else, which then goes to
``semantic_version`` as before (every refusal, and every explanation, stays its).
``tests/manifest/test_semver_subset.py`` checks both against each other.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_NUM = r"(?:0|[1-9][0-9]*)"
_PRE_ID = rf"(?:{_NUM}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID = r"[0-9A-Za-z-]+"
#: semver.org's grammar (ASCII only): a subset of what ``semantic_version.Version`` accepts.
STRICT_VERSION = re.compile(
    rf"{_NUM}\.{_NUM}\.{_NUM}(?:-{_PRE_ID}(?:\.{_PRE_ID})*)?(?:\+{_BUILD_ID}(?:\.{_BUILD_ID})*)?"
)
_CLAUSE = re.compile(rf"(>=|>|<=|<)({_NUM})\.({_NUM})\.({_NUM})")

Release = tuple[int, int, int]
_COMPARE: dict[str, Callable[[Release, Release], bool]] = {
    ">=": lambda v, t: v >= t,
    ">": lambda v, t: v > t,
    "<=": lambda v, t: v <= t,
    "<": lambda v, t: v < t,
}


def is_version(text: str) -> bool | None:
    """True when ``text`` is a semver.org version (``semantic_version`` accepts it); else None."""
    return True if STRICT_VERSION.fullmatch(text) else None


def _clauses(text: str) -> list[tuple[str, Release]] | None:
    """The comparators of a range in the subset, or None.

    Mirrors ``versions.parse_range``: a comma means the comma form (each part stripped), else
    the npm form (the whole stripped, comparators separated by one space).
    """
    parts = [p.strip() for p in text.split(",")] if "," in text else text.strip().split(" ")
    clauses = []
    for part in parts:
        m = _CLAUSE.fullmatch(part)
        # A number over 20 digits is no release number here; int() of one over 4,300 digits raises
        # ValueError.  None hands the text to semantic_version, which refuses it with a finding.
        if m is None or max(len(m.group(2)), len(m.group(3)), len(m.group(4))) > 20:
            return None
        clauses.append((m.group(1), (int(m.group(2)), int(m.group(3)), int(m.group(4)))))
    return clauses


def check_range(text: str) -> bool | None:
    """True when ``text`` is a range of the subset (``versions.parse_range`` accepts it); else None."""
    return True if _clauses(text) else None


def ranges_overlap(a: str, b: str) -> bool | None:
    """True when two ranges of the subset share a version; None otherwise (not in it, or disjoint).

    The same probes as ``versions.ranges_overlap`` (every bound and its next patch, minor and
    major), all releases, which the comparators order as tuples.
    """
    clauses_a, clauses_b = _clauses(a), _clauses(b)
    if not clauses_a or not clauses_b:
        return None
    probes: set[Release] = set()
    for _, (major, minor, patch) in clauses_a + clauses_b:
        probes |= {(major, minor, patch), (major, minor, patch + 1), (major, minor + 1, 0), (major + 1, 0, 0)}
    for v in probes:
        if all(_COMPARE[op](v, t) for op, t in clauses_a) and all(_COMPARE[op](v, t) for op, t in clauses_b):
            return True
    return None
