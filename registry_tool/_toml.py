"""The TOML parser for every plugin.toml, yank.toml and registry.toml this tool reads, with its bound.

``tomli`` 2.2 is the parser the standard library vendors as ``tomllib`` (TOML 1.0, the same
results and errors), shipped compiled with mypyc: 3-4x faster per manifest, which is most of
what checking a release costs beyond its hashes and signatures.  Kept below 2.3, whose TOML 1.1
would accept manifests the build (``tomllib``) refuses; a test pins that agreement.

The nesting bound (conformance decision 11, step 1; the same scan in the Go and Rust verifiers):
parsers recurse on nested arrays, inline tables and dotted keys, and 20,000 levels in 40 KB
aborted the Rust verifier and took the Go one 16 GB; tomli's own cost on a 100,000-part dotted
key is quadratic.  Every verifier scans before it parses; a manifest whose bracket and dot counts
cannot reach the bound skips the scan.  This module sits outside ``registry_tool.format`` so
``validate`` does not import that package's documents and ranges at start.
"""

from __future__ import annotations

import math
import re
from typing import Any

from tomli import TOMLDecodeError
from tomli import loads as _loads

__all__ = ["MAX_NESTING", "TOMLDecodeError", "loads", "nesting_depth", "nesting_problem"]

#: Most ``[``/``{`` open at once, and most dots in one dotted key (decision 11).
MAX_NESTING = 64
_RESETS = frozenset("\n=,{[")  # where one key's dot count restarts


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
    """Why ``text`` nests too deep for a parser to be trusted with it, and on which line; or None.

    Outside strings and comments: more than ``MAX_NESTING`` ``[``/``{`` open at once, or more
    than ``MAX_NESTING`` dots in one segment (the count restarts at a newline, ``=``, ``,``, ``{``
    and ``[``: a dotted key's dots, or the one dot of a float or a time's fraction).  Linear, and
    run before any parser: a parser's own cost on a 20,000-part key was quadratic.
    """
    if text.count("[") + text.count("{") <= MAX_NESTING and text.count(".") <= MAX_NESTING:
        return None  # neither bound can be reached: the common manifest stops here
    # The whole text, as Go and Rust scan it (deleting what the scan skips changed its verdict:
    # "a\tb" became "a\b", whose backslash then escaped the closing quote).
    depth = dots = 0
    i, n = 0, len(text)
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
        if c in _RESETS:
            dots = 0
            if c in "[{":
                depth += 1
                if depth > MAX_NESTING:
                    what = f"more than {MAX_NESTING} arrays or inline tables are open at once"
                    return what, text.count("\n", 0, i) + 1
        elif c in "]}":
            depth = max(0, depth - 1)
        elif c == ".":
            dots += 1
            if dots > MAX_NESTING:
                return f"a dotted key has more than {MAX_NESTING} parts", text.count("\n", 0, i) + 1
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


#: The fix of a document starting with a byte order mark (Windows editors write one).
BOM_FIX = "save the file as UTF-8 without a byte order mark (BOM)"
BOM_MESSAGE = "the file starts with a byte order mark (U+FEFF), which TOML does not allow"


def loads(text: str, **kwargs: Any) -> dict[str, Any]:
    """``tomli.loads`` of a document the nesting scan accepts (else a ``TOMLDecodeError``)."""
    if text.startswith("\ufeff"):  # tomli says only "Invalid statement (at line 1, column 1)"
        err = TOMLDecodeError(BOM_MESSAGE, text, 0)
        err.fix = BOM_FIX  # type: ignore[attr-defined]
        raise err
    problem = nesting_problem(text)
    if problem is not None:
        what, line = problem
        pos = 0
        for _ in range(line - 1):  # the offset of that line, for the error's line and column
            pos = text.index("\n", pos) + 1
        raise TOMLDecodeError(f"{what} (at most {MAX_NESTING} levels are read)", text, pos)
    try:
        data = _loads(text, parse_float=lambda s: _float(s, text), **kwargs)
    except RecursionError:  # the scan bounds nesting: kept so no input can crash a caller
        raise TOMLDecodeError("arrays or inline tables are nested too deeply", text, 0) from None
    _check_integers(data, text)
    return data


# TOML 1.0: "If an integer cannot be represented losslessly, an error must be thrown", and floats
# are IEEE 754 binary64.  tomli keeps Python's unbounded int and reads 1e400 as inf; the Go and
# Rust verifiers' parsers refuse both, so every verifier refuses them.
_INT64 = range(-(2**63), 2**63)


def _float(literal: str, text: str) -> float:
    value = float(literal.replace("_", ""))
    if math.isinf(value) and literal.lstrip("+-") != "inf":
        raise TOMLDecodeError(
            f"float {literal} is too large for a 64-bit float", text, max(0, text.find(literal))
        )
    return value


#: The fix of an integer outside the 64-bit range (``TOMLDecodeError.fix``; ``manifest.source`` reads it).
INTEGER_RANGE_FIX = (
    "write an integer between -9223372036854775808 and 9223372036854775807; a u64 at or above 2^63 "
    "is written in its signed form, the same 64 bits read as i64 (u64::MAX as -1, 2^63 as "
    "-9223372036854775808): registry-tool reads i64/u64 args and expect values either way"
)
# A TOML integer literal (decimal, hex, octal, binary), not part of a float, date, time or bare key;
# strings and comments are matched first and skipped (digits inside them are no literal).
_INTEGER = re.compile(
    r'''"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|#[^\n]*'''
    r"|(?P<int>(?<![\w.:+-])[+-]?(?:0x[0-9A-Fa-f_]+|0o[0-7_]+|0b[01_]+|[0-9][0-9_]*)(?![\w.:-]))"
)


def _check_integers(data: dict[str, Any], text: str) -> None:
    """Refuse an integer outside the signed 64-bit range: the first one in the text, where it is.

    The parsed data is walked iteratively (nesting is bounded anyway) for the offending values;
    their literals are then looked up in the text in document order (a table's keys are not in
    document order when tables are split or extended later).
    """
    stack: list[Any] = [data]
    offenders: list[int] = []
    while stack:
        item = stack.pop()
        for value in item.values() if isinstance(item, dict) else item:
            if type(value) is int and value not in _INT64:
                offenders.append(value)
            if isinstance(value, (dict, list)):
                stack.append(value)
    if not offenders:
        return
    wanted = set(offenders)
    value, pos = offenders[0], 0  # should no literal be found
    for match in _INTEGER.finditer(text):
        if match.group("int") is None:
            continue  # a string or a comment
        literal = match.group("int").replace("_", "")
        sign = -1 if literal.startswith("-") else 1
        digits = literal.lstrip("+-")
        try:
            number = sign * int(digits, 0) if digits[1:2] in ("x", "o", "b") else sign * int(digits)
        except ValueError:  # a literal Python does not read (too many digits): not one of ours
            continue
        if number in wanted:
            value, pos = number, match.start()
            break
    err = TOMLDecodeError(f"integer {value} is outside the 64-bit range TOML allows", text, pos)
    err.fix = INTEGER_RANGE_FIX  # type: ignore[attr-defined]  # tomli's error class cannot be subclassed
    raise err
