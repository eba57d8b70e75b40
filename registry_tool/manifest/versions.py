"""Strict semver 2.0 versions and host version ranges (thin helpers over ``semantic_version``).

``semantic_version`` is imported on first use: its import reads its own package metadata
(``importlib.metadata``), which costs more than a whole check.  ``is_version``, ``check_range``
and ``ranges_overlap`` also use validate's remembered verdicts (``cache.py``) when the process
asks for them, so a repeated ``registry-tool validate`` need not import it at all, and first
ask ``semver_subset``, which accepts the common forms without it (a cold run need not either).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from registry_tool.manifest import cache as disk_cache
from registry_tool.manifest import semver_subset

if TYPE_CHECKING:
    from semantic_version import Version

SEMVER_HINT = "use strict semver MAJOR.MINOR.PATCH, e.g. '1.0.0' or '1.2.0-rc.1'"


class VersionError(ValueError):
    """Not a strict semver 2.0 version."""


class RangeError(ValueError):
    """Not a version range the host range grammar accepts."""


def parse_version(text: str) -> Version:
    """A strict semver 2.0 version (no 'v' prefix, no leading zeros, all three parts)."""
    from semantic_version import Version

    try:
        return Version(text)
    except ValueError:
        raise VersionError(f"{text!r} is not a strict semver 2.0 version") from None


@lru_cache(maxsize=1024)  # an index repeats the same few versions (1.0.0, min_host_version)
def is_version(text: str) -> bool:
    """Is ``text`` a strict semver 2.0 version?"""
    if semver_subset.is_version(text) or _remembered("semver", text):
        return True
    try:
        parse_version(text)
    except VersionError:
        return False
    _remember("semver", text)
    return True


def _remembered(kind: str, *parts: str) -> bool:
    return disk_cache.verdicts_on() and disk_cache.proved(kind, "semantic_version", *parts)


def _remember(kind: str, *parts: str) -> None:
    if disk_cache.verdicts_on():
        disk_cache.remember(kind, "semantic_version", *parts)


def sort_versions(versions: Iterable[str]) -> list[str]:
    """Versions in semver precedence order (pre-releases before their release)."""
    return sorted(versions, key=parse_version)


def is_newer(candidate: str, existing: Iterable[str]) -> bool:
    """True when ``candidate`` is above every version in ``existing`` (no backport)."""
    new = parse_version(candidate)
    return all(new > parse_version(v) for v in existing)


Spec = Any  # semantic_version ships no type hints: SimpleSpec | NpmSpec

# semantic_version raises AttributeError (not ValueError) for a hyphen range of non-versions
# such as "a - b", and TypeError/RecursionError are no better; all of them mean "not a range".
_SPEC_ERRORS = (ValueError, AttributeError, TypeError, IndexError)


def parse_range(text: str) -> Spec:
    """A host version range: comma form ``">=0.2.0, <1.0.0"`` or npm form ``"^0.2"``, ``">=0.2 <1"``."""
    from semantic_version import NpmSpec, SimpleSpec

    try:
        if "," in text:
            spec: Spec = SimpleSpec(",".join(part.strip() for part in text.split(",")))
        else:
            spec = NpmSpec(text.strip())
    except _SPEC_ERRORS:
        raise RangeError(
            f"{text!r} is not a valid version range (use '>=0.2.0, <1.0.0', '^0.2' or '>=0.2.0')"
        ) from None
    return spec


def check_range(text: str) -> None:
    """Raise ``RangeError`` unless ``text`` is a host version range ``parse_range`` accepts."""
    if semver_subset.check_range(text) or _remembered("range", text):
        return
    parse_range(text)
    _remember("range", text)


def _probe_versions(*texts: str) -> set[Version]:
    """Boundary versions mentioned in range texts, and their neighbours."""
    from semantic_version import Version

    probes: set[Version] = set()
    for text in texts:
        for m in re.finditer(r"[0-9]+(?:\.[0-9]+){0,2}(?:-[0-9A-Za-z.-]+)?", text):
            try:
                v = Version.coerce(m.group(0))
            except ValueError:
                continue
            probes |= {v, v.next_patch(), v.next_minor(), v.next_major()}
    return probes


def ranges_overlap(a: str, b: str) -> bool:
    """Is there a version both ranges accept?

    Exact for the interval ranges hosts use: any non-empty intersection of two
    intervals contains one of their bounds or a neighbour of one.
    """
    if semver_subset.ranges_overlap(a, b) or _remembered("overlap", a, b):
        return True
    spec_a, spec_b = parse_range(a), parse_range(b)
    overlap = any(spec_a.match(v) and spec_b.match(v) for v in _probe_versions(a, b))
    if overlap:
        _remember("overlap", a, b)
    return overlap
