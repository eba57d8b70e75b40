"""The compiled schemas (fastjsonschema) may only ever accept what jsonschema accepts.

``schema_findings`` trusts an accepting verdict of the compiled validator and asks jsonschema
otherwise; if the compiled one were more lenient anywhere, a manifest or registry.toml would
pass the build that jsonschema would refuse.  These tests mutate every value of every example
manifest and registry.toml into values of the wrong type, shape and format and compare the two
verdicts.  The validator is the code the package ships (``manifest/_schemas``, written by
scripts/gen_schema_validators.py), which must be what the generator writes from the current
schema, and give the verdicts of ``fastjsonschema.compile``.
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

REPO = Path(__file__).resolve().parents[2]


def _parses(path: Path) -> bool:
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False  # the toml-syntax examples: nothing to mutate
    return True


def _examples(name: str) -> list[Path]:
    found = [*(REPO / "tests" / "examples").rglob(name), *(REPO / "index").rglob(name)]
    return sorted(p for p in found if p.is_file() and _parses(p))


MANIFESTS = _examples("plugin.toml")
CONFIGS = _examples("registry.toml")
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


def _check_never_more_lenient(document: Path, schema_name: str) -> None:
    doc = tomllib.loads(document.read_text(encoding="utf-8"))
    reference = jsonschema.Draft7Validator(load_schema(schema_name))
    assert schema_accepts(doc, schema_name) == reference.is_valid(doc)  # the example itself
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


SHIPPED = (PLUGIN_SCHEMA, CONFIG_SCHEMA)


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
    doc = tomllib.loads(
        _examples("plugin.toml" if schema_name == PLUGIN_SCHEMA else "registry.toml")[0].read_text()
    )
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
    documents = MANIFESTS if schema_name == PLUGIN_SCHEMA else CONFIGS
    for document in documents:
        for mutated in _mutations(tomllib.loads(document.read_text(encoding="utf-8"))):
            assert _verdict(shipped, mutated) == _verdict(fresh, mutated)


def _verdict(validator: Any, data: Any) -> bool:
    try:
        validator(data)
    except Exception:
        return False
    return True


def test_jsonschema_decides_what_the_compiled_schema_refuses() -> None:
    """'$' matches before a final newline in jsonschema's re.search, not in fastjsonschema: the
    compiled schema refuses, jsonschema decides (as before the fast path existed)."""
    text = (REPO / "tests" / "examples" / "valid" / "core-numeric" / "plugin.toml").read_text()
    doc = tomllib.loads(text)
    doc.setdefault("limits", {})["memory"] = "10MiB\n"
    assert not schema_accepts(doc, PLUGIN_SCHEMA)
    assert jsonschema.Draft7Validator(load_schema(PLUGIN_SCHEMA)).is_valid(doc)


def test_fast_path_and_full_path_agree_on_findings(tmp_path: Path) -> None:
    """A schema violation still produces the jsonschema finding with its line."""
    path = tmp_path / "plugin.toml"
    text = (REPO / "tests" / "examples" / "valid" / "core-numeric" / "plugin.toml").read_text()
    raw = text.replace('abi = "core"', 'abi = "core"\nbogus = 1').encode()
    manifest, findings = parse_manifest(path, raw, "plugin.toml")
    assert manifest is None
    assert [f.rule for f in findings] == ["unknown-key"]
    assert findings[0].field == "plugin.bogus"
