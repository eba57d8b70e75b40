"""TOML sources with line numbers, and JSON-Schema checking that reports the TOML line.

The parser is ``tomli`` 2.2 compiled (what ``registry_tool.format.toml`` names: the standard
library's ``tomllib``, the same results and errors, 2x faster per manifest, the largest cost of
checking a release).  It gives values but no positions, so a small scanner maps every key and table
header to its line; schema errors, unknown keys and rule findings then point at the line
a maintainer has to edit.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry_tool import _toml as toml
from registry_tool._toml import nesting_depth
from registry_tool.report import Finding

if TYPE_CHECKING:
    import jsonschema

_TOML_ERR_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def dotted(path: Iterable[str | int]) -> str:
    """``['tests', 0, 'call']`` -> ``'tests[0].call'`` (the field spelling used in messages)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _split_key(key: str) -> list[str]:
    parts: list[str] = []
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([^.\s"\']+)', key):
        parts.append(next(g for g in m.groups() if g is not None))
    return parts


def _scan_value(text: str, depth: int) -> tuple[int, str | None]:
    """Bracket depth after ``text`` and an unterminated multi-line string delimiter, if any."""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "#":
            break
        if text.startswith('"""', i) or text.startswith("'''", i):
            delim = text[i : i + 3]
            end = text.find(delim, i + 3)
            if end < 0:
                return depth, delim
            i = end + 3
            continue
        if ch in "\"'":
            i += 1
            while i < len(text) and text[i] != ch:
                i += 2 if ch == '"' and text[i] == "\\" else 1
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        i += 1
    return depth, None


def line_map(text: str) -> dict[str, int]:
    """Map dotted field paths (``plugin.name``, ``tests[1].call``) to 1-based line numbers."""
    lines: dict[str, int] = {}
    table: list[str | int] = []
    array_counts: dict[str, int] = {}
    depth, in_string = 0, None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if in_string:
            if in_string in raw:
                in_string = None
            continue
        if depth > 0:
            depth, in_string = _scan_value(raw, depth)
            continue
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[["):
            name = line[2 : line.find("]]")].strip()
            index = array_counts.get(name, 0)
            array_counts[name] = index + 1
            table = [*_split_key(name), index]
            lines.setdefault(dotted(table[:-1]), lineno)
            lines[dotted(table)] = lineno
        elif line.startswith("["):
            table = list(_split_key(line[1 : line.find("]")]))
            lines[dotted(table)] = lineno
        elif "=" in line:
            key, _, value = line.partition("=")
            path = [*table, *_split_key(key)]
            for i in range(len(table) + 1, len(path)):
                lines.setdefault(dotted(path[:i]), lineno)
            lines.setdefault(dotted(path), lineno)
            depth, in_string = _scan_value(value, 0)
    return lines


@dataclass(frozen=True)
class TomlSource:
    """A parsed TOML file: its path, raw bytes, data and where each key is."""

    path: Path
    raw: bytes  # valid UTF-8 (``parse_toml`` refuses anything else)
    data: dict[str, Any]

    @cached_property
    def lines(self) -> dict[str, int]:
        """``line_map`` of the file, built on the first line asked for.

        A file nobody reports on (a valid manifest in a build) never pays for the scan.
        """
        return line_map(self.raw.decode("utf-8"))

    def line_of(self, field: str) -> int | None:
        """Line of ``field`` (dotted), falling back to its nearest enclosing key or table."""
        while field:
            if field in self.lines:
                return self.lines[field]
            cut = max(field.rfind("."), field.rfind("["))
            field = field[:cut] if cut > 0 else ""
        return None


class TomlSyntaxError(ValueError):
    """A TOML file that does not parse, with the 1-based line and column when known."""

    def __init__(self, message: str, line: int | None, column: int | None, fix: str | None = None) -> None:
        """The parser's ``message``, where it stopped, and a fix of its own when the error has one."""
        super().__init__(message)
        self.line = line
        self.column = column
        self.fix = fix

    def finding(self, file: str, fix: str = "correct the TOML syntax at that position") -> Finding:
        """The ``toml-syntax`` finding for ``file``, pointing at where the parser stopped.

        ``fix`` is the caller's general advice; an error that knows a specific one (an integer out
        of range) gives that instead.
        """
        return Finding(
            "toml-syntax",
            f"invalid TOML: {self}",
            file=file,
            line=self.line,
            column=self.column,
            fix=self.fix or fix,
        )


# O_NONBLOCK: opening a FIFO does not wait for a writer; it changes nothing for a regular file.
_PLAIN_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def read_plain(path: str, cap: int | None = None) -> tuple[int, bytes | None] | None:
    """``(size, bytes)`` of ``path`` when it is a regular file itself (not a link to one).

    One open, fstat and read (``Path.read_bytes`` makes nine system calls, ``lstat`` first makes
    ten): the size and the bytes come from the same open file.  Bytes are None when the size is
    over ``cap`` (nothing read).  None for anything else (a link, a folder, a FIFO, a missing or
    unreadable file): the caller then takes its general path, which decides and explains it
    exactly as before.
    """
    try:
        fd = os.open(path, _PLAIN_READ)
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        size = info.st_size
        if cap is not None and size > cap:
            return size, None
        data = os.read(fd, size + 1)
        if len(data) != size:  # grew, shrank or a partial read: on to the end, as read_bytes reads
            chunks, total = [data], len(data)
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
                total += len(chunk)
                if cap is not None and total > cap:  # grew past the cap while read
                    return total, None
            data = b"".join(chunks)
        return size, data
    except OSError:
        return None
    finally:
        os.close(fd)


def parse_toml(path: Path, raw: bytes) -> TomlSource:
    """Parse ``raw`` (the bytes of ``path``); raises ``TomlSyntaxError`` with the position."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TomlSyntaxError(f"file is not valid UTF-8 (byte {err.start})", None, None) from None
    try:
        data = toml.loads(text)
    except RecursionError:
        # tomli recurses per nesting level: a hostile file must not crash the checker.
        raise TomlSyntaxError("arrays or inline tables are nested too deeply", None, None) from None
    except toml.TOMLDecodeError as err:
        msg = str(err)
        pos = _TOML_ERR_POS.search(msg)
        line = int(pos.group(1)) if pos else None
        col = int(pos.group(2)) if pos else None
        fix = getattr(err, "fix", None)  # registry_tool._toml's own errors may carry one
        raise TomlSyntaxError(_TOML_ERR_POS.sub("", msg).strip(), line, col, fix) from None
    except ValueError:
        # Python refuses to convert an integer literal of more than 4300 digits (int max_str_digits).
        raise TomlSyntaxError("an integer literal is too long", None, None) from None
    return TomlSource(path=path, raw=raw, data=data)


# --------------------------------------------------------------------------- schemas


def schema_path(name: str) -> Path:
    """Schemas ship inside the wheel (``registry_tool/schemas``) and live at the repo root in a checkout."""
    packaged = Path(__file__).resolve().parents[1] / "schemas" / name
    return packaged if packaged.exists() else Path(__file__).resolve().parents[2] / "schemas" / name


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema ``name`` (a file in ``schemas/``), parsed once per process."""
    schema: dict[str, Any] = json.loads(schema_path(name).read_text(encoding="utf-8"))
    return schema


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word`` (a likely misspelling of it), or None."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def _subschema(schema: dict[str, Any], path: Sequence[str | int]) -> dict[str, Any]:
    """The schema node describing the instance at ``path`` (enough for our own schemas)."""
    node = schema
    for part in path:
        if isinstance(part, int):
            node = node.get("items", {})
        else:
            props = node.get("properties", {})
            node = props.get(part, node.get("additionalProperties", {}))
        node = _resolve(schema, node)
    return node


def _resolve(schema: dict[str, Any], node: Any) -> dict[str, Any]:
    """Follow ``$ref`` and merge ``allOf`` properties (the constructs our schemas use)."""
    if not isinstance(node, dict):
        return {}
    if "$ref" in node:
        node = schema.get("definitions", {}).get(node["$ref"].split("/")[-1], {})
    if "allOf" in node:
        merged: dict[str, Any] = {"properties": {}}
        for part in node["allOf"]:
            merged["properties"].update(_resolve(schema, part).get("properties", {}))
        return merged
    return dict(node)


# --------------------------------------------------------------------------- compiled schemas


def schema_accepts(data: Any, schema_name: str) -> bool:
    """Fast path: does the schema, compiled to Python by fastjsonschema, accept ``data``?

    Only an accepting verdict is used; whatever it refuses goes to ``schema_findings``
    (jsonschema, its patterns read as ECMA-262 does: see ``ecma_validator``), which decides and
    explains.  fastjsonschema is never more lenient on our schemas; differential tests in
    tests/manifest/test_schema_fast_path.py check that on mutated documents.
    """
    if nesting_depth(data) > MAX_DEPTH:
        return False
    try:
        compiled_schema(schema_name)(data)
    except Exception:  # a refusal (or anything unexpected): jsonschema decides
        return False
    return True


# The one line of fastjsonschema's generated code that imports from it, and what ships instead.
_FASTJSONSCHEMA_IMPORT = "from fastjsonschema import JsonSchemaValueException, JsonSchemaValuesException\n"
_SHIPPED_IMPORT = (
    "from registry_tool.manifest._schemas import JsonSchemaValueException, JsonSchemaValuesException\n"
)
_SHIPPED_HEADER = """\
# Generated by scripts/gen_schema_validators.py from schemas/{schema} with fastjsonschema {version}.
# Do not edit: change the schema and run the script again.
# ruff: noqa
# mypy: ignore-errors
# fmt: off
\"\"\"fastjsonschema's validator of {schema}, generated ahead of time.\"\"\"

SCHEMA_SHA256 = "{digest}"
"""


def _schema_digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def shipped_validator_path(schema_name: str) -> Path:
    """Where the generated validator of ``schema_name`` ships: ``manifest/_schemas/MODULE.py``."""
    return Path(__file__).resolve().parent / "_schemas" / f"{_module_name(schema_name)}.py"


def _module_name(schema_name: str) -> str:
    """``registry-config.schema.json`` -> ``registry_config_schema``."""
    return schema_name.removesuffix(".json").replace("-", "_").replace(".", "_")


# fastjsonschema knows drafts 4, 6 and 7: it reads a 2020-12 schema as draft 7, ignoring what
# it does not know (prefixItems, dependentRequired, unevaluatedProperties, ...) and whatever
# stands next to a $ref, and it inserts `default`s into the document.  Its accepting verdict
# stands in for jsonschema's 2020-12 one only for a schema written with keywords both drafts read
# alike.  (`enum` is left out: fastjsonschema compares with ==, so True would match 1.)
_PORTABLE_KEYWORDS = frozenset(
    {
        "$schema", "$id", "$defs", "$ref", "title", "description", "type", "properties",
        "additionalProperties", "required", "items", "minItems", "maxItems", "uniqueItems",
        "pattern", "minLength", "maxLength", "minimum", "maximum", "const", "propertyNames",
    }
)  # fmt: skip
_SCHEMA_MAPS = ("properties", "$defs")  # keyword -> {name: schema}
_SCHEMA_VALUES = ("additionalProperties", "items", "propertyNames")  # keyword -> schema


def portability_problems(schema: Any, path: str = "#") -> list[str]:
    """Why fastjsonschema's reading of this 2020-12 ``schema`` may differ from jsonschema's, if it may."""
    if isinstance(schema, bool):
        return []
    if not isinstance(schema, dict):
        return [f"{path} is not a schema"]
    problems = [
        f"{path}/{k}: keyword not read alike by draft 7" for k in schema if k not in _PORTABLE_KEYWORDS
    ]
    if "$ref" in schema and set(schema) - {"$ref", "title", "description"}:
        problems.append(f"{path}: keywords next to $ref are ignored by draft 7")
    for keyword in _SCHEMA_MAPS:
        for name, sub in (schema.get(keyword) or {}).items():
            problems.extend(portability_problems(sub, f"{path}/{keyword}/{name}"))
    for keyword in _SCHEMA_VALUES:
        if keyword in schema:
            problems.extend(portability_problems(schema[keyword], f"{path}/{keyword}"))
    return problems


def _validator_source(schema_name: str, raw: bytes) -> str:
    """The code fastjsonschema generates for the schema ``raw``, ending with ``validate = <its entry point>``.

    Exactly what ``fastjsonschema.compile`` builds and runs in memory, but for where its two
    exception classes come from (``_schemas/__init__.py``): the generated code raises and
    catches only those, so the verdicts are the same and a run need not import fastjsonschema.
    """
    import fastjsonschema
    from fastjsonschema.ref_resolver import RefResolver

    schema = json.loads(raw)
    if "2020-12" in str(schema.get("$schema", "")):
        problems = portability_problems(schema)
        if problems:  # compiled_schema's callers then refuse the fast path: jsonschema decides
            raise RuntimeError(f"{schema_name} cannot take the compiled fast path: " + "; ".join(problems))
    code = fastjsonschema.compile_to_code(schema)
    if code.count(_FASTJSONSCHEMA_IMPORT) != 1:  # a fastjsonschema that generates other imports
        raise RuntimeError(f"fastjsonschema {fastjsonschema.VERSION} no longer imports as expected")
    # The entry point is named after the schema's scope, as fastjsonschema.compile finds it.
    entry = RefResolver.from_schema(schema, handlers={}, store={}).get_scope_name()
    return code.replace(_FASTJSONSCHEMA_IMPORT, _SHIPPED_IMPORT) + f"\n\nvalidate = {entry}\n"


def generate_validator_module(schema_name: str) -> str:
    """The text of the module that ships the validator of ``schema_name`` (from ``schemas/``)."""
    import fastjsonschema

    raw = schema_path(schema_name).read_bytes()
    header = _SHIPPED_HEADER.format(
        schema=schema_name, version=fastjsonschema.VERSION, digest=_schema_digest(raw)
    )
    return header + _validator_source(schema_name, raw)


@cache
def compiled_schema(schema_name: str) -> Callable[[Any], Any]:
    """The validator fastjsonschema generates for ``schema_name``: the shipped one when current.

    The package ships the generated code (``_schemas/``, see ``generate_validator_module``), so
    a run imports a module instead of generating ~150 ms of code.  The module records the digest
    of the schema it was generated from; when it is missing or another schema is installed next
    to it (an edited checkout), the code is generated and run in memory instead: slower, never
    wrong.
    """
    import importlib

    raw = schema_path(schema_name).read_bytes()
    try:
        module = importlib.import_module(f"registry_tool.manifest._schemas.{_module_name(schema_name)}")
    except ImportError:
        module = None
    if module is not None and getattr(module, "SCHEMA_SHA256", None) == _schema_digest(raw):
        shipped: Callable[[Any], Any] = module.validate
        return shipped
    namespace: dict[str, Any] = {}
    code = compile(_validator_source(schema_name, raw), f"<fastjsonschema {schema_name}>", "exec")
    exec(code, namespace)  # noqa: S102 (code generated from our own schema)
    generated: Callable[[Any], Any] = namespace["validate"]
    return generated


# A schema's "pattern" is an ECMA-262 regular expression, whose "$" (no multiline flag) is the end
# of the text.  Python's "$" also matches before a final newline, and jsonschema searches with it:
# "name\n" passed "^[a-z][a-z0-9_-]{1,63}$" (fastjsonschema, the Go and Rust verifiers refuse it).
# Only "$" is read so here: "." still matches a CR or U+2028, as in the compiled schema and the Go
# and Rust verifiers, where ECMA-262's "." would not.
_ECMA_END = re.compile(r"(?<!\\)\$")


@cache
def _ecma_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(_ECMA_END.sub(r"\\Z", pattern))


def ecma_validator(schema: dict[str, Any], *, draft: int) -> Any:
    """The jsonschema validator of ``schema`` (draft 7 or 2020-12), its "pattern" read as ECMA-262 does."""
    import jsonschema  # lazy: a document the compiled schema accepts never needs it (start-up time)
    from jsonschema import ValidationError, validators

    def pattern(validator: Any, patrn: str, instance: Any, _schema: Any) -> Any:
        if validator.is_type(instance, "string") and not _ecma_pattern(patrn).search(instance):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    base = jsonschema.Draft7Validator if draft == 7 else jsonschema.Draft202012Validator
    return validators.extend(base, {"pattern": pattern})(schema)  # type: ignore[no-untyped-call]


# Our documents nest 4 levels; the cap keeps the (recursive) schema validator safe.
MAX_DEPTH = 16


def schema_findings(src: TomlSource, schema_name: str, relfile: str) -> list[Finding]:
    """Every schema violation of ``src`` as a Finding at the TOML line of the offending key."""
    if schema_accepts(src.data, schema_name):
        return []
    if nesting_depth(src.data) > MAX_DEPTH:
        return [
            Finding(
                "schema",
                f"values are nested more than {MAX_DEPTH} levels deep",
                file=relfile,
                fix="flatten the arrays and inline tables",
            )
        ]
    schema = load_schema(schema_name)
    validator = ecma_validator(schema, draft=7)
    findings: list[Finding] = []
    for err in sorted(validator.iter_errors(src.data), key=lambda e: [str(p) for p in e.absolute_path]):
        path = list(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            known = set(_subschema(schema, path).get("properties", {}))
            for key in sorted(set(err.instance) - known):
                field = dotted([*path, key])
                hint = did_you_mean(key, known)
                fix = (
                    f"did you mean '{hint}'? Rename it to '{hint}'"
                    if hint
                    else f"remove it; allowed keys: {', '.join(sorted(known))}"
                )
                findings.append(
                    Finding(
                        rule="unknown-key",
                        message=f"unknown key '{field}'",
                        file=relfile,
                        line=src.line_of(field),
                        field=field,
                        fix=fix,
                    )
                )
            continue
        if "propertyNames" in err.schema_path and isinstance(err.instance, str):
            # The key itself, spelled as the TOML line map spells a quoted key's escapes.
            path.append(err.instance.encode("unicode_escape").decode())
        field = dotted(path)
        findings.append(
            Finding(
                rule="schema",
                message=f"{field or 'document'}: {_schema_message(err)}",
                file=relfile,
                line=src.line_of(field) if field else None,
                field=field or None,
                fix=_schema_fix(err, field),
            )
        )
    return findings


def _schema_fix(err: jsonschema.ValidationError, field: str) -> str | None:
    """How to fix it: a missing key is added (with its own description), else the schema's words."""
    schema = err.schema if isinstance(err.schema, dict) else {}
    if err.validator == "required" and isinstance(err.validator_value, list):
        missing = [k for k in err.validator_value if isinstance(err.instance, dict) and k not in err.instance]
        if missing:
            key = missing[0]
            where = f"[{field}] {key}" if field else f"[{key}]"
            prop = schema.get("properties", {}).get(key, {})
            about = prop.get("description") if isinstance(prop, dict) else None
            return f"add {where}" + (f" ({about})" if about else "") + " (docs/manifest.md shows every key)"
    description = schema.get("description")
    about = f" ({description})" if isinstance(description, str) else ""
    name = field or "it"
    bound: Any = err.validator_value
    if err.validator == "type":
        wanted = bound if isinstance(bound, str) else " or ".join(str(w) for w in bound)
        return f"write {name} as {_TOML_TYPES.get(wanted, wanted)}{about}"
    if err.validator in ("minimum", "exclusiveMinimum"):
        return f"use a value {'of at least' if err.validator == 'minimum' else 'above'} {bound}{about}"
    if err.validator in ("maximum", "exclusiveMaximum"):
        return f"use a value {'of at most' if err.validator == 'maximum' else 'below'} {bound}{about}"
    if err.validator == "enum" and isinstance(bound, list):
        return f"use one of {', '.join(repr(v) for v in bound)}"
    return description if isinstance(description, str) else None


def _schema_message(err: jsonschema.ValidationError) -> str:
    if err.validator == "type":
        wanted: Any = err.validator_value
        expected = wanted if isinstance(wanted, str) else " or ".join(str(w) for w in wanted)
        return (
            f"expected {_TOML_TYPES.get(expected, expected)}, got {_toml_type(err.instance)} {err.instance!r}"
        )
    if err.validator == "required":
        return err.message.replace("is a required property", "is required")
    if err.validator == "pattern":
        if isinstance(err.instance, str) and err.instance.endswith("\n"):
            return f"{err.instance!r} holds a line break (it must match {err.validator_value})"
        return f"{err.instance!r} does not match the required pattern {err.validator_value}"
    return err.message


# JSON-Schema type names as TOML users know them.
_TOML_TYPES = {
    "object": "a table",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true/false)",
}


def _toml_type(value: object) -> str:
    for kind, name in (
        (bool, "boolean"),
        (int, "integer"),
        (float, "float"),
        (str, "string"),
        (list, "array"),
        (dict, "table"),
    ):
        if isinstance(value, kind):
            return name
    return type(value).__name__  # datetime, date, time
