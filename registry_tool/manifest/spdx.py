"""Accepting the common SPDX license expressions without building license_expression's index.

``license_expression`` decides every expression ``validate`` checks, but building its SPDX
``Licensing`` object parses a ~1 MB JSON index and compiles a matcher over ~2,700 keys: most
of a cold ``registry-tool validate``'s license check (the expressions plugins declare are
almost always one id, or a few ids joined by ``AND``/``OR``, perhaps ``WITH`` an exception).

``accepts`` decides that subset from the same JSON file license_expression ships, reading only
the entries whose keys the expression names, and answers True only where license_expression
accepts (``tests/manifest/test_spdx.py`` checks every SPDX id and a corpus of tricky
expressions against it).  Anything else -- other whitespace, parentheses, ``+``, an unknown
id, an exception outside ``WITH``, a file it cannot read as expected -- is None: the caller
asks license_expression, which also explains every refusal.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

#: license_expression's vendored index, relative to its package folder.
INDEX_FILE = Path("data") / "scancode-licensedb-index.json"

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
_OPERATORS = frozenset({"AND", "OR"})


@cache
def _index_bytes() -> tuple[bytes, bytes] | None:
    """The index file (as shipped, and ASCII-lowercased: same offsets), or None if it is not found."""
    from importlib.util import find_spec  # no import of license_expression itself

    try:
        spec = find_spec("license_expression")
        origin = spec.origin if spec is not None else None
        if origin is None:
            return None
        data = (Path(origin).parent / INDEX_FILE).read_bytes()
    except (ImportError, ValueError, OSError):
        return None
    if not data.lstrip().startswith(b"["):
        return None
    return data, data.lower()


@cache
def is_exception(identifier: str) -> bool | None:
    """Is ``identifier`` (any case) an SPDX license exception (True) or license (False)?

    None when it is not a key or alias license_expression's SPDX index knows, when entries
    disagree, or when the index does not read as flat JSON objects.
    """
    found = _index_bytes()
    if found is None:
        return None
    data, lowered = found
    needle = b'"' + identifier.lower().encode("ascii") + b'"'
    kinds: set[bool] = set()
    at = lowered.find(needle)
    while at != -1:
        # The entries are flat objects (no braces inside): the one holding the match.
        start, end = data.rfind(b"{", 0, at), data.find(b"}", at)
        if start == -1 or end == -1 or data.find(b"}", start, at) != -1:
            return None
        try:
            entry = json.loads(data[start : end + 1])
        except ValueError:
            return None
        if not isinstance(entry, dict):
            return None
        key = entry.get("spdx_license_key")
        aliases = entry.get("other_spdx_license_keys") or []
        if isinstance(key, str) and key and isinstance(aliases, list):
            # license_expression keeps an entry only if it has an SPDX key; its aliases match too.
            names = {key.lower(), *(a.lower() for a in aliases if isinstance(a, str))}
            if identifier.lower() in names:
                flag = entry.get("is_exception", False)
                if not isinstance(flag, bool):
                    return None
                kinds.add(flag)
        at = lowered.find(needle, end)
    return kinds.pop() if len(kinds) == 1 else None


def accepts(expr: str) -> bool | None:
    """True when ``expr`` is in the common subset and license_expression accepts it; else None.

    The subset: ``TERM (OP TERM)*`` separated by single spaces, ``OP`` being ``AND`` or ``OR``
    and ``TERM`` a license id, optionally followed by ``WITH`` and an exception id (ids and
    operators in any case, as license_expression reads them).
    """
    words = expr.split(" ")
    i = 0
    while True:
        if i >= len(words) or not _ID.fullmatch(words[i]) or is_exception(words[i]) is not False:
            return None
        i += 1
        if i < len(words) and words[i].upper() == "WITH":
            if (
                i + 1 >= len(words)
                or not _ID.fullmatch(words[i + 1])
                or is_exception(words[i + 1]) is not True
            ):
                return None
            i += 2
        if i == len(words):
            return True
        if words[i].upper() not in _OPERATORS:
            return None
        i += 1
