"""Requirements (``NAME``, ``NAME@RANGE``) and the range grammar, written once for every part.

The grammar (docs/registry-format.md, identical in every implementation)::

    range      := set ( ws* "||" ws* set )*
    set        := comparator ( (ws+ | ws* "," ws*) comparator )*
    comparator := ("=" | ">" | ">=" | "<" | "<=")? partial | "^" partial | "~" partial | "*"
    partial    := major ("." minor ("." patch ("-" prerelease)?)?)?   (minor/patch may be "x" or "*")

Semantics are npm's.  A prerelease version matches a set only if a comparator of that set names
the same major.minor.patch with a prerelease.  The release ``host`` field uses the same grammar.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from registry_tool.errors import UsageError
from registry_tool.format.rules import is_plugin_name, is_version

if TYPE_CHECKING:
    from semantic_version import Version

_WS = "[ \t]"
_OR = re.compile(rf"{_WS}*\|\|{_WS}*")
_AND = re.compile(rf"{_WS}*,{_WS}*|{_WS}+")
_NUM = r"0|[1-9][0-9]*"
_PRE = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*"
_COMPARATOR = re.compile(
    rf"(?P<op>\^|~|>=|<=|>|<|=)?(?P<major>{_NUM})"
    rf"(?:\.(?P<minor>{_NUM}|x|\*)(?:\.(?P<patch>{_NUM}|x|\*)(?:-(?P<pre>{_PRE}))?)?)?"
)


class RangeSyntaxError(UsageError):
    """A requirement or range outside the grammar (class ``bad-requirement``)."""

    code = "bad-requirement"


class UnsafeNameError(UsageError):
    """A plugin name that is not ``^[a-z][a-z0-9_-]{1,63}$``: refused before anything is fetched."""

    code = "unsafe-name"


# A bound: (operator, version, names a prerelease).  Operators: ">=", ">", "<", "<=", "=".
# semantic_version is imported when a range is first built or matched: ``check_range`` (validate)
# reads the grammar alone and never needs it.
Bound = tuple[str, "Version", bool]


def _bad(text: str, why: str) -> RangeSyntaxError:
    return RangeSyntaxError(
        f"version range {text!r} is not valid: {why}",
        fix="use 1.2.3, =1.2.3, ^1.2, ~1.2.0, >=1.0.0 <2.0.0, 1.x or ranges joined by ||",
    )


Token = tuple[str, int, int | None, int | None, tuple[str, ...]]  # op, major, minor, patch, prerelease


def _token(token: str, text: str) -> Token | None:
    """One comparator's parts (None for ``*``), refusing what the grammar does not hold."""
    if token == "*":  # noqa: S105 (a range token, not a password)
        return None
    m = _COMPARATOR.fullmatch(token)
    if m is None:
        raise _bad(text, f"{token!r} is not a comparator")
    op = m.group("op") or "="
    major = int(m.group("major"))
    minor_s, patch_s, pre = m.group("minor"), m.group("patch"), m.group("pre")
    if minor_s in ("x", "*") and patch_s is not None and patch_s not in ("x", "*"):
        raise _bad(text, f"{token!r} has a wildcard minor but a fixed patch")
    minor = None if minor_s in (None, "x", "*") else int(minor_s)
    patch = None if patch_s in (None, "x", "*") else int(patch_s)
    pre_parts = tuple(pre.split(".")) if pre else ()
    full = minor is not None and patch is not None
    if pre_parts and not full:
        raise _bad(text, f"{token!r} has a prerelease after a wildcard")
    return op, major, minor, patch, pre_parts


def _comparator(token: str, text: str) -> list[Bound]:
    parts = _token(token, text)
    if parts is None:
        return []
    op, major, minor, patch, pre_parts = parts
    full = minor is not None and patch is not None
    from semantic_version import Version

    def v(a: int, b: int, c: int, p: tuple[str, ...] = ()) -> Version:
        return Version(major=a, minor=b, patch=c, prerelease=p)

    low = v(major, minor or 0, patch or 0, pre_parts)
    has_pre = bool(pre_parts)
    # The first version above the partial (exclusive upper bound of "1" or "1.2").
    if minor is None:
        above = v(major + 1, 0, 0)
    elif patch is None:
        above = v(major, minor + 1, 0)
    else:
        above = v(major, minor, patch + 1)
    if op == "^":
        if major > 0 or minor is None:
            top = v(major + 1, 0, 0)
        elif minor > 0 or patch is None:
            top = v(0, minor + 1, 0)
        else:
            top = v(0, 0, patch + 1)
        return [(">=", low, has_pre), ("<", top, False)]
    if op == "~":
        top = v(major + 1, 0, 0) if minor is None else v(major, minor + 1, 0)
        return [(">=", low, has_pre), ("<", top, False)]
    if op == "=":
        return [("=", low, has_pre)] if full else [(">=", low, False), ("<", above, False)]
    if op == ">":
        return [(">", low, has_pre)] if full else [(">=", above, False)]
    if op == ">=":
        return [(">=", low, has_pre)]
    if op == "<":
        return [("<", low, has_pre)]
    return [("<=", low, has_pre)] if full else [("<", above, False)]  # "<="


@dataclass(frozen=True)
class Range:
    """A parsed range: a list of comparator sets, any of which may match."""

    text: str
    sets: tuple[tuple[Bound, ...], ...]

    @property
    def exact(self) -> str | None:
        """The version of an exact pin (``1.2.3`` or ``=1.2.3`` as the whole range), else None."""
        body = self.text[1:] if self.text.startswith("=") else self.text
        return body if is_version(body) else None

    def matches(self, version: str | Version) -> bool:
        """Whether ``version`` satisfies one of the range's ``||`` alternatives."""
        ver = _parsed_version(version) if isinstance(version, str) else version
        return any(_set_matches(bounds, ver) for bounds in self.sets)


@lru_cache(maxsize=65536)  # a resolution matches a few versions against many ranges
def _parsed_version(text: str) -> Version:
    from semantic_version import Version

    return Version(text)


_COMPARE: dict[str, Callable[[Version, Version], bool]] = {
    "=": operator.eq,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def _set_matches(bounds: tuple[Bound, ...], ver: Version) -> bool:
    if ver.prerelease and not any(
        has_pre and (b.major, b.minor, b.patch) == (ver.major, ver.minor, ver.patch)
        for _, b, has_pre in bounds
    ):
        return False
    return all(_COMPARE[op](ver, bound) for op, bound, _ in bounds)


def _sets(text: str) -> list[list[str]]:
    """The comparator tokens of each ``||`` alternative of ``text``."""
    if not text or text != text.strip(" \t") or len(text) > 256:
        raise _bad(text, "empty, surrounded by spaces or too long")
    sets = []
    for part in _OR.split(text):
        if not part:
            raise _bad(text, "an empty alternative around '||'")
        tokens = _AND.split(part)
        if any(not t for t in tokens):
            raise _bad(text, "an empty comparator")
        sets.append(tokens)
    return sets


@lru_cache(maxsize=4096)  # a Range is immutable; a graph repeats a few ranges
def parse_range(text: str) -> Range:
    """Parse a range of the grammar above (``RangeSyntaxError`` otherwise)."""
    sets = []
    for tokens in _sets(text):
        bounds: list[Bound] = []
        for token in tokens:
            bounds.extend(_comparator(token, text))
        sets.append(tuple(bounds))
    return Range(text, tuple(sets))


@lru_cache(maxsize=4096)  # a build checks each release's host range: an index repeats a few
def check_range(text: str) -> None:
    """Refuse a range outside the grammar above (``RangeSyntaxError``), as ``parse_range`` does.

    The grammar alone: no version is built, so ``semantic_version`` is not imported (validate of
    one release does not load it).
    """
    for tokens in _sets(text):
        for token in tokens:
            _token(token, text)


def check_name(name: str) -> str:
    """Refuse names that could escape a folder before anything touches the disk or the network."""
    if not is_plugin_name(name):
        shown = name.replace("\0", "\\0")
        raise UnsafeNameError(
            f"plugin name {shown!r} is not a valid plugin name",
            fix="plugin names match ^[a-z][a-z0-9_-]{1,63}$ (no '/', '..' or control characters)",
        )
    return name


@dataclass(frozen=True)
class Requirement:
    """``name`` (highest non-yanked), ``name@1.2.3`` (exact pin, may select a yanked one), ``name@RANGE``."""

    name: str
    spec: str = ""

    @classmethod
    def parse(cls, text: str) -> Requirement:
        """Parse ``name``, ``name@VERSION`` or ``name@RANGE``; raises a usage error naming the fault."""
        name, at, spec = text.partition("@")
        check_name(name)
        if at and not spec:
            raise _bad(spec, "nothing after '@'")
        if spec:
            parse_range(spec)
        return cls(name, spec)

    @property
    def range(self) -> Range:
        """The requirement's range (``*`` when none was given)."""
        return parse_range(self.spec or "*")

    @property
    def is_exact(self) -> bool:
        """Whether the requirement pins one exact version."""
        return bool(self.spec) and self.range.exact is not None

    def matches(self, version: str) -> bool:
        """Whether ``version`` satisfies the requirement's range."""
        return self.range.matches(version)

    def __str__(self) -> str:
        """The requirement as the user writes it."""
        return f"{self.name}@{self.spec}" if self.spec else self.name


def host_compatible(host: str | None, host_version: str | None) -> bool:
    """A release's ``host`` range admits ``host_version`` (null host: every version).

    An unparseable range is not a promise of compatibility.
    """
    if host_version is None or host is None:
        return True
    try:
        return parse_range(host).matches(host_version)
    except (RangeSyntaxError, ValueError):
        return False


class NoMatchingVersionError(UsageError):
    """No published version satisfies the requirement (or every match is yanked)."""

    code = "no-matching-version"


def choose(
    req: Requirement,
    versions: Iterable[str],
    *,
    yanked: Callable[[str], str | None],
    host: Callable[[str], str | None],
    host_version: str | None = None,
) -> str:
    """The highest version matching ``req``: yanked only when pinned exactly, host-compatible.

    Raises:
        RangeSyntaxError: ``host_version`` is not a strict semver version (``0.5``, ``v0.5.0``).
    """
    if host_version is not None and not is_version(host_version):
        raise RangeSyntaxError(
            f"host version {host_version!r} is not a strict semver version",
            fix="give the host's version as MAJOR.MINOR.PATCH, e.g. 0.5.0",
        )
    from semantic_version import Version

    skipped: list[str] = []
    candidates: list[Version] = []
    rng = req.range
    all_versions = list(versions)
    for text in all_versions:
        if not rng.matches(text):
            continue
        reason = yanked(text)
        if reason is not None and rng.exact is None:
            skipped.append(f"{text} (yanked: {reason})")
        elif not host_compatible(host(text), host_version):
            skipped.append(f"{text} (needs host {host(text)})")
        else:
            candidates.append(Version(text))
    if not candidates:
        why = f"; skipped {', '.join(sorted(skipped))}" if skipped else ""
        # Only what an install could take: a version the host cannot run is no way out.
        fitting = [t for t in all_versions if host_compatible(host(t), host_version)]
        usable = sorted(Version(t) for t in fitting if yanked(t) is None)
        if usable:
            fix = f"available: {', '.join(str(v) for v in usable)}"
        elif fitting:
            fix = "every release the host can run is yanked"
        else:
            fix = (
                f"no release supports host {host_version}: run a newer host, or ask the maintainers "
                "for a release that supports it"
            )
        raise NoMatchingVersionError(
            f"no release of {req.name} matches {req.spec or 'any version'}"
            f"{f' for host {host_version}' if host_version else ''}{why}",
            fix=fix + ("; pin a yanked version exactly if you really need it" if "(yanked: " in why else ""),
        )
    return str(max(candidates))
