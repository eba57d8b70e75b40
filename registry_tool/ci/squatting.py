"""Look-alike plugin names: ``validate-email`` or ``validate_emai1`` next to ``validate_email``.

A new plugin name is too close to an existing one when, after folding ``-`` and ``_`` together,
it has the same confusable skeleton (UTS #39: characters mapped to the prototype they are
confusable with, e.g. ``1``/``I`` -> ``l``, ``0`` -> ``o``, ``rn`` -> ``m``; the mappings come from
Unicode's confusables.txt as shipped by ``confusable_homoglyphs``, restricted to the name
alphabet ``[a-z0-9_-]``), or is within edit distance 1 (an insertion, deletion, substitution or
swap of neighbours) of it.  Names of four characters or fewer are compared by skeleton only:
a one-letter change of a short name is usually just another name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from rapidfuzz.distance import OSA

# Plugin names are [a-z][a-z0-9_-]{1,63} (schemas); confusables are looked up in that alphabet.
_NAME_CHARS = re.compile(r"[A-Za-z0-9_-]+")
MIN_LENGTH_FOR_EDIT_DISTANCE = 5


@cache
def _prototypes() -> tuple[tuple[str, str], ...]:
    """(sequence, prototype) pairs among name characters, longest sequence first."""
    from confusable_homoglyphs.confusables import confusables_data

    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for key, entries in confusables_data.items():
        if not _NAME_CHARS.fullmatch(key):
            continue
        for entry in entries:
            a, b = _in_name_case(key, entry["c"])
            if a and b:
                a, b = find(a), find(b)
                if a != b:
                    # The single letter is the class's prototype ("rn" reads as "m", not the reverse).
                    keep, drop = sorted((a, b), key=lambda s: (len(s), not s.isalpha(), s))
                    parent[drop] = keep
    pairs = {(member, find(member)) for member in list(parent) if find(member) != member}
    return tuple(sorted(pairs, key=lambda p: (-len(p[0]), p[0])))


def _in_name_case(a: str, b: str) -> tuple[str | None, str | None]:
    """A confusable pair as it can occur in a lower-case name.

    A digit confusable with an upper-case letter stands for the lower-case one too (0/O reads as
    0/o in a name); a pair that still needs an upper-case letter (I/l) cannot occur.
    """
    if a.isdigit() and b.isalpha():
        b = b.lower()
    elif b.isdigit() and a.isalpha():
        a = a.lower()
    ok = _NAME_CHARS.fullmatch(a) and _NAME_CHARS.fullmatch(b) and a == a.lower() and b == b.lower()
    return (a, b) if ok else (None, None)


def skeleton(name: str) -> str:
    """The name as it reads: lower case, ``-`` and ``_`` one character, confusables at their prototype."""
    text = name.lower().replace("-", "_")
    for sequence, prototype in _prototypes():
        text = text.replace(sequence, prototype)
    return text


def look_alike(new: str, existing: str) -> str | None:
    """Why ``new`` could be mistaken for ``existing`` (None when it could not)."""
    if new == existing:
        return None
    if new.replace("-", "_") == existing.replace("-", "_"):
        return "differs only in '-' versus '_'"
    if skeleton(new) == skeleton(existing):
        return f"has the same confusable skeleton '{skeleton(new)}' (e.g. 1/l, 0/o, rn/m)"
    if (
        min(len(new), len(existing)) >= MIN_LENGTH_FOR_EDIT_DISTANCE
        and OSA.distance(skeleton(new), skeleton(existing), score_cutoff=1) <= 1
    ):
        return "is one edit (insert, delete, replace or swap) away"
    return None


def look_alikes(new: str, existing: Iterable[str]) -> list[tuple[str, str]]:
    """(existing name, reason) for every existing name ``new`` could be mistaken for."""
    found = []
    for name in sorted(set(existing)):
        reason = look_alike(new, name)
        if reason:
            found.append((name, reason))
    return found
