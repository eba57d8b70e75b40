"""The compiled schemas (fastjsonschema) may only ever accept what jsonschema accepts.

``schema_findings`` trusts an accepting verdict of the compiled validator and asks jsonschema
otherwise; if the compiled one were more lenient anywhere, a manifest or registry.toml would
pass the build that jsonschema would refuse.  The root's schema takes the same fast path in
``Root.parse`` (jsonschema's 2020-12 validator decides what the compiled one refuses).  These
tests mutate every value of every example manifest, registry.toml and root into values of the
wrong type, shape and format and compare the two verdicts.  The validator is the code the
package ships (``manifest/_schemas``, written by scripts/gen_schema_validators.py), which must be
what the generator writes from the current schema, and give the verdicts of
``fastjsonschema.compile``.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import importlib
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from registry_tool.manifest import source
from registry_tool.manifest.config import CONFIG_SCHEMA
from registry_tool.manifest.model import PLUGIN_SCHEMA, parse_manifest
from registry_tool.manifest.source import load_schema, schema_accepts
from registry_tool.trust.root import ROOT_SCHEMA, Root, RootFormatError

REPO = Path(__file__).resolve().parents[2]


def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else tomllib.loads(text)


def _parses(path: Path) -> bool:
    try:
        _load(path)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError):
        return False  # the syntax-error examples: nothing to mutate
    return True


def _examples(name: str, *folders: str) -> list[Path]:
    found = [p for folder in folders or ("tests/examples", "index") for p in (REPO / folder).rglob(name)]
    return sorted(p for p in found if p.is_file() and _parses(p))


MANIFESTS = _examples("plugin.toml")
CONFIGS = _examples("registry.toml")


def _distinct(paths: list[Path]) -> list[Path]:
    """The first of each set of files with the same bytes (the conformance sites share roots)."""
    seen: dict[str, Path] = {}
    for path in paths:
        seen.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), path)
    return sorted(seen.values())


# Genuine roots: the sample index's, the trust test vectors' and the conformance sites' (between
# them: maintainers, per-plugin thresholds and revocations; some are refused by the rules after
# the schema, which the mutations start from anyway).
ROOTS = _distinct(_examples("*.root.json", "index", "tests/trust/vectors", "conformance/sites"))
DOCUMENTS = {PLUGIN_SCHEMA: MANIFESTS, CONFIG_SCHEMA: CONFIGS, ROOT_SCHEMA: ROOTS}
# The validator each schema's own code path asks (``schema_findings``: draft 7; ``Root.parse``: 2020-12).
REFERENCE = {
    PLUGIN_SCHEMA: jsonschema.Draft7Validator,
    CONFIG_SCHEMA: jsonschema.Draft7Validator,
    ROOT_SCHEMA: jsonschema.Draft202012Validator,
}
VALUES: list[Any] = [
    True,
    0,
    -1,
    1.0,
    2.5,
    float("nan"),
    2**70,
    "",
    "a\n",
    "MIT\n",
    "1.0.0\n",
    "10MiB\n",
    "1s\n",
    "A" * 70,
    "0" * 64 + "\n",
    [],
    [True],
    ["a", "a"],
    {},
    {"unknown": 1},
    datetime.datetime(2020, 1, 1),
    datetime.date(2020, 1, 1),
]


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    for key, value in items:
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))


def _mutations(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for path in list(_paths(doc)):
        for value in VALUES:
            mutated = copy.deepcopy(doc)
            node = mutated
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
            yield mutated
        if isinstance(path[-1], str):  # an unknown key next to every known one
            mutated = copy.deepcopy(doc)
            node = mutated
            for key in path[:-1]:
                node = node[key]
            if isinstance(node, dict):
                node[path[-1] + "_x"] = 1
                yield mutated


def test_there_are_documents_to_mutate() -> None:
    assert len(MANIFESTS) >= 10
    assert len(CONFIGS) >= 5
    assert len(ROOTS) >= 10


def _check_never_more_lenient(document: Path, schema_name: str) -> None:
    doc = _load(document)
    reference = REFERENCE[schema_name](load_schema(schema_name))
    # The example itself gets the same verdict, but for one known difference: fastjsonschema reads
    # a pattern's "$" as the end of the string, jsonschema also before a final newline (a root key
    # "RW...\n" passes jsonschema; the strict field check refuses it), so there only the safe
    # direction is required.
    final_newline = any(
        isinstance(key, dict) and str(key.get("public_key", "")).endswith("\n")
        for key in (doc.get("keys") or {}).values()
    )
    if final_newline:
        assert not schema_accepts(doc, schema_name)
    else:
        assert schema_accepts(doc, schema_name) == reference.is_valid(doc)
    refused = 0
    for mutated in _mutations(doc):
        valid = reference.is_valid(mutated)
        refused += not valid
        if schema_accepts(mutated, schema_name):
            assert valid, f"compiled schema accepts a document jsonschema refuses: {mutated!r}"
    assert refused > 0  # the mutations do produce invalid documents


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.parent.relative_to(REPO).as_posix())
def test_compiled_schema_never_accepts_what_jsonschema_refuses(manifest: Path) -> None:
    _check_never_more_lenient(manifest, PLUGIN_SCHEMA)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.parent.relative_to(REPO).as_posix())
def test_compiled_config_schema_never_accepts_what_jsonschema_refuses(config: Path) -> None:
    _check_never_more_lenient(config, CONFIG_SCHEMA)


@pytest.mark.parametrize("root", ROOTS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_compiled_root_schema_never_accepts_what_jsonschema_refuses(root: Path) -> None:
    _check_never_more_lenient(root, ROOT_SCHEMA)


def test_a_root_the_compiled_schema_refuses_gets_jsonschemas_finding() -> None:
    """The fast path only ever accepts: a refused root still gets jsonschema's message and field."""
    doc = json.loads((REPO / "index" / "root" / "1.root.json").read_text(encoding="utf-8"))
    doc["version"] = "1"
    with pytest.raises(RootFormatError, match=r"does not match schemas/root\.schema\.json") as err:
        Root.parse(json.dumps(doc).encode(), where="1.root.json")
    assert err.value.where is not None and err.value.where.field == "version"


def test_parsing_a_valid_root_does_not_import_jsonschema() -> None:
    probe = (
        "import sys\n"
        "from registry_tool.trust.root import Root\n"
        "Root.parse(open('index/root/1.root.json', 'rb').read())\n"
        "print('jsonschema' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip() == "False"


SHIPPED = (PLUGIN_SCHEMA, CONFIG_SCHEMA, ROOT_SCHEMA)


def _shipped_module(schema_name: str) -> Any:
    return importlib.import_module(
        "registry_tool.manifest._schemas." + source.shipped_validator_path(schema_name).stem
    )


@pytest.mark.parametrize("schema_name", SHIPPED)
def test_the_shipped_validator_is_what_the_generator_writes_from_the_schema(schema_name: str) -> None:
    """Fails when a schema changed and scripts/gen_schema_validators.py was not run (or on a hand edit).

    The digest of the schema is always compared; the whole text when the installed fastjsonschema is
    the one the code was generated with (another version may generate other code with the same
    verdicts, which the differential tests below check).
    """
    import fastjsonschema

    shipped = source.shipped_validator_path(schema_name)
    fix = f"{shipped.name} is stale; fix: run scripts/gen_schema_validators.py"
    raw = source.schema_path(schema_name).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == _shipped_module(schema_name).SCHEMA_SHA256, fix
    if _shipped_module(schema_name).VERSION == fastjsonschema.VERSION:
        assert shipped.read_text(encoding="utf-8") == source.generate_validator_module(schema_name), fix


@pytest.mark.parametrize("schema_name", SHIPPED)
def test_a_run_uses_the_shipped_validator_and_never_imports_fastjsonschema(schema_name: str) -> None:
    probe = (
        "import sys\n"
        "from registry_tool.manifest import source\n"
        f"validate = source.compiled_schema({schema_name!r})\n"
        "assert validate.__module__.startswith('registry_tool.manifest._schemas.'), validate.__module__\n"
        "print(any(m.partition('.')[0] == 'fastjsonschema' for m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip() == "False"


@pytest.mark.parametrize("schema_name", SHIPPED)
def test_a_stale_or_missing_shipped_validator_is_not_used(
    schema_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another schema next to the shipped code (an edited checkout): the code is generated instead."""
    edited = json.loads(source.schema_path(schema_name).read_text(encoding="utf-8"))
    edited["properties"]["added_by_the_test"] = {"type": "string"}
    edited["required"] = [*edited.get("required", []), "added_by_the_test"]
    (tmp_path / schema_name).write_text(json.dumps(edited), encoding="utf-8")
    monkeypatch.setattr(source, "schema_path", lambda name: tmp_path / name)
    doc = _load(DOCUMENTS[schema_name][0])
    source.compiled_schema.cache_clear()
    try:
        assert not source.schema_accepts(doc, schema_name)  # the edited schema decides
        assert source.compiled_schema(schema_name).__module__ is None  # generated in memory
        monkeypatch.setattr(source, "_module_name", lambda name: "no_such_module")
        (tmp_path / schema_name).write_bytes(source.schema_path(schema_name).read_bytes())
        source.compiled_schema.cache_clear()
        assert source.compiled_schema(schema_name).__module__ is None
    finally:
        source.compiled_schema.cache_clear()


@pytest.mark.parametrize("schema_name", SHIPPED)
def test_the_shipped_validator_gives_the_verdicts_of_fastjsonschema_compile(schema_name: str) -> None:
    import fastjsonschema

    shipped = _shipped_module(schema_name).validate
    assert source.compiled_schema(schema_name) is shipped  # what schema_accepts runs
    fresh = fastjsonschema.compile(load_schema(schema_name))
    for document in DOCUMENTS[schema_name]:
        for mutated in _mutations(_load(document)):
            assert _verdict(shipped, mutated) == _verdict(fresh, mutated)


def _verdict(validator: Any, data: Any) -> bool:
    try:
        validator(data)
    except Exception:
        return False
    return True


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (("plugin", "name"), "brandnew\n"),  # passed validate, then sign refused an unrelated comment
        (("plugin", "keywords"), ["kv\n"]),
        (("artifact", "sha256"), "0" * 64 + "\n"),
        (("limits", "memory"), "10MiB\n"),
        (("dependencies",), {"other\n": "^1"}),  # propertyNames
    ],
)
def test_a_final_newline_never_matches_a_patterns_end(
    tmp_path: Path, field: tuple[str, ...], value: Any
) -> None:
    """A schema pattern is ECMA-262: "$" is the end of the text (Python's "$" also matches before a
    final newline, which jsonschema, deciding what the compiled schema refuses, used to accept)."""
    text = (REPO / "tests" / "examples" / "valid" / "core-numeric" / "plugin.toml").read_text()
    doc = tomllib.loads(text)
    node = doc
    for key in field[:-1]:
        node = node.setdefault(key, {})
    node[field[-1]] = value
    assert not schema_accepts(doc, PLUGIN_SCHEMA)
    assert jsonschema.Draft7Validator(load_schema(PLUGIN_SCHEMA)).is_valid(doc)  # Python's "$"
    import tomlkit

    raw = tomlkit.dumps(doc).encode()
    _manifest, findings = parse_manifest(tmp_path / "plugin.toml", raw, "plugin.toml")
    assert any(f.rule == "schema" and (f.field or "").startswith(".".join(field)) for f in findings), findings


def test_a_root_key_with_a_final_newline_is_refused_by_the_schema() -> None:
    doc = _load(ROOTS[0])
    key = next(iter(doc["keys"].values()))
    key["public_key"] += "\n"
    with pytest.raises(RootFormatError, match="does not match"):
        source_check = importlib.import_module("registry_tool.trust.root")._schema_check
        source_check(doc, "root.json")


def test_fast_path_and_full_path_agree_on_findings(tmp_path: Path) -> None:
    """A schema violation still produces the jsonschema finding with its line."""
    path = tmp_path / "plugin.toml"
    text = (REPO / "tests" / "examples" / "valid" / "core-numeric" / "plugin.toml").read_text()
    raw = text.replace('abi = "core"', 'abi = "core"\nbogus = 1').encode()
    manifest, findings = parse_manifest(path, raw, "plugin.toml")
    assert manifest is None
    assert [f.rule for f in findings] == ["unknown-key"]
    assert findings[0].field == "plugin.bogus"


def test_the_root_schema_is_read_alike_by_both_drafts() -> None:
    assert source.portability_problems(load_schema(ROOT_SCHEMA)) == []


_2020 = "https://json-schema.org/draft/2020-12/schema"


# Each schema is read more leniently by fastjsonschema (draft 7) than by jsonschema's 2020-12
# validator: the document passes the first and not the second.
@pytest.mark.parametrize(
    ("schema", "doc"),
    [
        ({"dependentRequired": {"a": ["b"]}}, {"a": 1}),
        ({"prefixItems": [{"type": "string"}]}, [1]),
        ({"properties": {"a": {}}, "unevaluatedProperties": False}, {"a": 1, "b": 2}),
        (
            {"$defs": {"s": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/s", "maxLength": 1}}},
            {"a": "xyz"},
        ),
        (
            {"properties": {"a": {"properties": {"b": {"minContains": 2, "contains": {"const": 1}}}}}},
            {"a": {"b": [1]}},
        ),
    ],
    ids=["dependentRequired", "prefixItems", "unevaluatedProperties", "ref-sibling", "nested-minContains"],
)
def test_a_2020_12_schema_draft_7_reads_otherwise_never_takes_the_fast_path(
    schema: dict[str, Any], doc: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fastjsonschema

    schema = {"$schema": _2020, **schema}
    fastjsonschema.compile(schema)(doc)  # draft 7 accepts: no exception
    assert not jsonschema.Draft202012Validator(schema).is_valid(doc)
    assert source.portability_problems(schema)
    (tmp_path / ROOT_SCHEMA).write_text(json.dumps(schema), encoding="utf-8")
    monkeypatch.setattr(source, "schema_path", lambda name: tmp_path / name)
    source.compiled_schema.cache_clear()
    try:
        assert not schema_accepts(doc, ROOT_SCHEMA)  # so jsonschema decides
        with pytest.raises(RuntimeError, match="cannot take the compiled fast path"):
            source.generate_validator_module(ROOT_SCHEMA)  # and the generator refuses to write it
    finally:
        source.compiled_schema.cache_clear()
