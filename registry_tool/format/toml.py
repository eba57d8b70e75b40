"""The TOML parser for signed files on the verifying paths (plugin.toml, yank.toml).

``tomli`` 2.2 is the parser the standard library vendors as ``tomllib`` (TOML 1.0, the same
results and errors), shipped compiled with mypyc: 3-4x faster per manifest, which is most of
what checking a release costs beyond its hashes and signatures.  Kept below 2.3, whose TOML 1.1
would accept manifests the build (``tomllib``) refuses; a test pins that agreement.

Nesting is bounded before any parser runs (``nesting_problem``, the same rule in the Go and Rust
verifiers, conformance decision 11): parsers recurse on nested arrays, inline tables and dotted
keys, and 20,000 levels in 40 KB aborted the Rust verifier and took the Go one 16 GB.
"""

from __future__ import annotations

from typing import Any

from tomli import TOMLDecodeError
from tomli import loads as _loads

__all__ = ["MAX_NESTING", "TOMLDecodeError", "loads", "nesting_problem"]

#: Most ``[``/``{`` open at once, and most key dots on one line (conformance decision 11).
MAX_NESTING = 64
_DIGITS = frozenset("0123456789")


def nesting_problem(text: str) -> str | None:
    """Why ``text`` nests too deep for a parser to be trusted with it, or None.

    Outside strings and comments: more than ``MAX_NESTING`` ``[``/``{`` open at once, or more
    than ``MAX_NESTING`` dots on one line that do not stand between two ASCII digits (the dots of
    a dotted key; ``1.5`` and a time's fraction are numbers).
    """
    # Most files cannot reach either bound: the count of every bracket and dot says so at C speed.
    if text.count("[") + text.count("{") <= MAX_NESTING and text.count(".") <= MAX_NESTING:
        return None
    depth = dots = i = 0
    n = len(text)
    while i < n:
        c = text[i]
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
        if c == "\n":
            dots = 0
        elif c in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return f"more than {MAX_NESTING} arrays or inline tables are open at once"
        elif c in "]}":
            depth = max(0, depth - 1)
        elif c == "." and not (0 < i < n - 1 and text[i - 1] in _DIGITS and text[i + 1] in _DIGITS):
            dots += 1
            if dots > MAX_NESTING:
                return f"a line holds more than {MAX_NESTING} dotted key parts"
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
    """``tomli.loads`` after the nesting bound: a ``TOMLDecodeError`` for a file nested too deep."""
    problem = nesting_problem(text)
    if problem is not None:
        raise TOMLDecodeError(f"{problem} (at most {MAX_NESTING} levels are read)")
    return _loads(text, **kwargs)
