"""Strict JSON in, canonical JSON out (RFC 8259 with the format's extra refusals).

Refused: bytes that are not UTF-8 (or start with a BOM), duplicate member names (parsers disagree on
which one wins), ``NaN``/``Infinity``, integers beyond +-2**53 (other languages' parsers lose
precision), lone surrogates (not representable in UTF-8), nesting too deep to parse.  Pure.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from registry_tool.errors import Location
from registry_tool.format.errors import DocumentError

MAX_SAFE_INTEGER = 2**53
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # a (high or low) surrogate written as an escape


def _no_duplicates(where: str) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise DocumentError(f"duplicate member name {key!r}", where=where, fix=_FIX)
            out[key] = value
        return out

    return hook


_FIX = "rebuild the registry with registry-tool build"


def _int(where: str) -> Any:
    def parse(text: str) -> int:
        # 17 digits are always beyond 2**53; checked before int(), which raises a bare ValueError
        # past Python's 4300-digit conversion limit.
        if len(text.lstrip("-")) > len(str(MAX_SAFE_INTEGER)):
            raise DocumentError(f"integer {text[:32]}... is beyond +-2**53", where=where, fix=_FIX)
        value = int(text)
        if abs(value) > MAX_SAFE_INTEGER:
            raise DocumentError(f"integer {text[:32]} is beyond +-2**53", where=where, fix=_FIX)
        return value

    return parse


def _float(where: str) -> Any:
    def parse(text: str) -> float:
        value = float(text)
        if math.isinf(value):  # 1e999: Python reads infinity, which no document can hold
            raise DocumentError(f"number {text[:32]} is out of range", where=where, fix=_FIX)
        return value

    return parse


def _constant(where: str) -> Any:
    def parse(token: str) -> Any:
        raise DocumentError(f"non-standard JSON constant {token}", where=where, fix=_FIX)

    return parse


def _check_surrogates(value: Any, where: str) -> None:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            texts = [item]
        elif isinstance(item, dict):
            texts = list(item)
            pending.extend(item.values())
            texts = [t for t in texts if isinstance(t, str)]
        elif isinstance(item, list):
            pending.extend(item)
            continue
        else:
            continue
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise DocumentError("a string holds a lone surrogate", where=where, fix=_FIX) from None


def load_strict(data: bytes, *, where: str, cap: int | None = None) -> Any:
    """Decode one JSON document under the refusals above (``cap``: refuse more bytes before decoding)."""
    if cap is not None and len(data) > cap:
        raise DocumentError(f"{len(data)} bytes, above the {cap} byte cap", where=where, fix=_FIX)
    if data.startswith(b"\xef\xbb\xbf"):
        raise DocumentError("starts with a UTF-8 byte order mark", where=where, fix=_FIX)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DocumentError(f"not UTF-8 ({err.reason})", where=where, fix=_FIX) from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates(where),
            parse_constant=_constant(where),
            parse_int=_int(where),
            parse_float=_float(where),
        )
    except json.JSONDecodeError as err:
        raise DocumentError(
            f"not valid JSON: {err.msg}", where=Location(file=where, line=err.lineno, column=err.colno)
        ) from None
    except RecursionError:
        raise DocumentError("nested too deeply", where=where, fix=_FIX) from None
    if _SURROGATE_ESCAPE.search(text):
        _check_surrogates(value, where)
    return value


def dump_canonical(value: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8, one trailing newline: the bytes the build writes.

    Compact separators keep Python's C encoder in use (``indent`` falls back to the pure-Python
    one, about 10x slower).  Verifiers never re-serialise: digests and signatures cover bytes.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")
