"""The TOML parser for every plugin.toml, yank.toml and registry.toml this tool reads, with its bound.

``tomli`` 2.2 is the parser the standard library vendors as ``tomllib`` (TOML 1.0, the same
results and errors), shipped compiled with mypyc: 3-4x faster per manifest, which is most of
what checking a release costs beyond its hashes and signatures.  Kept below 2.3, whose TOML 1.1
would accept manifests the build (``tomllib``) refuses; a test pins that agreement.

The nesting bound (conformance decision 11, step 1; the same scan in the Go and Rust verifiers):
parsers recurse on nested arrays, inline tables and dotted keys, and 20,000 levels in 40 KB
aborted the Rust verifier and took the Go one 16 GB.  They scan before parsing; here tomli (which
fails cleanly) parses first and the scan runs only for a document nested deeper than the bound
could allow, so a file the scan would refuse is refused and the common manifest pays one depth
walk.  This module sits outside ``registry_tool.format`` so ``validate`` does not import that
package's documents and ranges at start.
"""

from __future__ import annotations

from typing import Any

from tomli import TOMLDecodeError
from tomli import loads as _loads

__all__ = ["MAX_NESTING", "TOMLDecodeError", "loads", "nesting_depth", "nesting_problem"]

#: Most ``[``/``{`` open at once, and most counted dots in one dotted key (decision 11).
MAX_NESTING = 64
_DIGITS = frozenset("0123456789")
_RESETS = frozenset("\n=,{[")  # where one key's dots stop counting


def nesting_depth(value: object) -> int:
    """Nesting depth of parsed TOML data (the top table is 1), computed level by level, no recursion."""
    level, frontier = 0, [value]
    while True:
        children: list[object] = []
        for item in frontier:
            if isinstance(item, dict):
                children.extend(item.values())
            elif isinstance(item, list):
                children.extend(item)
        if not children:
            return level
        level += 1
        frontier = [c for c in children if isinstance(c, (dict, list))]
        if not frontier:
            return level


def nesting_problem(text: str) -> tuple[str, int] | None:
    """Why ``text`` nests too deep for a parser to be trusted with it, and where; or None.

    Outside strings and comments: more than ``MAX_NESTING`` ``[``/``{`` open at once, or more
    than ``MAX_NESTING`` counted dots in one dotted key (the count restarts at a newline, ``=``,
    ``,``, ``{`` and ``[``).  A dot counts unless it stands between two ASCII digits and is the
    first such dot of its unbroken run of digits and dots (``1.5``, a time's fraction; ``1.1.1``
    as a key still counts).
    """
    depth = dots = 0
    free_taken = False  # the current run of digits and dots has had its one uncounted dot
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c not in _DIGITS and c != ".":
            free_taken = False
        if c == "#":
            i = text.find("\n", i)
            if i < 0:
                return None
            continue
        if c == '"' or c == "'":
            i = _string_end(text, i)
            if i < 0:
                return None  # unterminated: the parser says where
            continue
        if c in _RESETS:
            dots = 0
            if c in "[{":
                depth += 1
                if depth > MAX_NESTING:
                    return f"more than {MAX_NESTING} arrays or inline tables are open at once", i
        elif c in "]}":
            depth = max(0, depth - 1)
        elif c == ".":
            numeric = 0 < i < n - 1 and text[i - 1] in _DIGITS and text[i + 1] in _DIGITS
            if numeric and not free_taken:
                free_taken = True
            else:
                dots += 1
                if dots > MAX_NESTING:
                    return f"a dotted key has more than {MAX_NESTING} parts", i
        i += 1
    return None


def _string_end(text: str, i: int) -> int:
    """The index after the string starting at ``i`` (a quote), or -1 when it never ends."""
    quote = text[i]
    multi = text.startswith(quote * 3, i)
    close = quote * 3 if multi else quote
    j = i + (3 if multi else 1)
    while True:
        k = text.find(close, j)
        if k < 0:
            return -1
        if quote == '"':
            # A backslash escapes the next character: count the backslashes right before the quote.
            slashes = 0
            while text[k - 1 - slashes] == "\\":
                slashes += 1
            if slashes % 2:
                j = k + 1
                continue
        if not multi and "\n" in text[j:k]:
            return -1  # a one-line string does not span lines: the parser reports it
        end = k + len(close)
        while multi and text.startswith(quote, end) and end - k < 5:
            end += 1  # up to two more quotes belong to a multi-line string's content
        return end


def loads(text: str, **kwargs: Any) -> dict[str, Any]:
    """``tomli.loads``, refusing a document the nesting scan refuses (``TOMLDecodeError``).

    A document tomli parses within ``MAX_NESTING`` levels passes the scan (each open bracket and
    each counted dot of a key is a level of the result), so only deeper ones are scanned.
    """
    try:
        data = _loads(text, **kwargs)
    except RecursionError:
        data = None
    if data is not None and nesting_depth(data) <= MAX_NESTING:
        return data
    problem = nesting_problem(text)
    if problem is not None:
        what, pos = problem
        raise TOMLDecodeError(f"{what} (at most {MAX_NESTING} levels are read)", text, pos)
    if data is None:
        raise TOMLDecodeError("arrays or inline tables are nested too deeply", text, 0)
    return data
