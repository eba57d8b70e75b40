"""The one strict JSON reader for every signed or hostile JSON document (root, registry.json).

Python's ``json`` accepts more than RFC 8259 and than our documents can survive: duplicate keys
(two parsers keep different ones), ``NaN``/``Infinity``, a byte order mark, lone surrogates
(``"\\ud800"``: fine to parse, a ``UnicodeEncodeError`` when the value is written again),
integers past Python's 4300-digit conversion limit (a ``ValueError`` from deep inside the
parser) and nesting deep enough to raise ``RecursionError``.  ``loads_strict`` refuses all of
them with one exception type carrying the position, so each caller turns it into its own
``RegistryToolError`` in one ``except`` clause.
"""

from __future__ import annotations

import json
from typing import Any

# No number in our documents needs more digits than a 64-bit size; far below Python's limit.
MAX_INT_DIGITS = 64
MAX_DEPTH = 64


class StrictJSONError(ValueError):
    """Not strict JSON; ``reason`` says why, ``line``/``column`` where when the parser knows."""

    def __init__(self, reason: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.column = column


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise StrictJSONError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _constant(name: str) -> Any:
    raise StrictJSONError(f"non-standard JSON constant {name}")


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise StrictJSONError(f"an integer has {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise StrictJSONError(f"the number {text[:20]} is out of range")
    return value


def _check_tree(value: Any) -> None:
    """Depth and string checks without recursion (the parser already recursed safely)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise StrictJSONError(f"values are nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_string(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def _check_string(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise StrictJSONError("a string holds a lone UTF-16 surrogate (e.g. \\ud800)") from None


def loads_strict(data: bytes, *, max_bytes: int | None = None) -> Any:
    """RFC 8259 JSON from UTF-8 ``data`` (no BOM); raises ``StrictJSONError`` and nothing else."""
    if max_bytes is not None and len(data) > max_bytes:
        raise StrictJSONError(f"{len(data)} bytes, above the {max_bytes} byte cap")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise StrictJSONError(f"not UTF-8 ({err.reason} at byte {err.start})") from None
    if text.startswith("\ufeff"):
        raise StrictJSONError("starts with a byte order mark")
    try:
        value = json.loads(
            text, object_pairs_hook=_object, parse_constant=_constant, parse_int=_integer, parse_float=_float
        )
    except StrictJSONError:
        raise
    except json.JSONDecodeError as err:
        raise StrictJSONError(err.msg, err.lineno, err.colno) from None
    except RecursionError:
        raise StrictJSONError("values are nested too deeply") from None
    except ValueError as err:  # anything else the decoder raises on hostile input
        raise StrictJSONError(str(err)) from None
    _check_tree(value)
    return value
