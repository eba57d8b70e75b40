"""The compiled plugin schema (fastjsonschema) may only ever accept what jsonschema accepts.

``parse_manifest`` trusts an accepting verdict of the compiled validator and asks jsonschema
otherwise; if the compiled one were more lenient anywhere, a manifest would pass the build
that ``validate`` would refuse.  These tests mutate every value of every example manifest
into values of the wrong type, shape and format and compare the two verdicts.
"""

from __future__ import annotations

import copy
import datetime
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from registry_tool.manifest.model import PLUGIN_SCHEMA, _schema_accepts, parse_manifest
from registry_tool.manifest.source import load_schema

REPO = Path(__file__).resolve().parents[2]


def _parses(path: Path) -> bool:
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False  # the toml-syntax examples: nothing to mutate
    return True


MANIFESTS = sorted(
    p
    for p in [*(REPO / "tests" / "examples").rglob("plugin.toml"), *(REPO / "index").rglob("plugin.toml")]
    if p.is_file() and _parses(p)
)
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


def test_there_are_manifests_to_mutate() -> None:
    assert len(MANIFESTS) >= 10


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.parent.relative_to(REPO).as_posix())
def test_compiled_schema_never_accepts_what_jsonschema_refuses(manifest: Path) -> None:
    doc = tomllib.loads(manifest.read_text(encoding="utf-8"))
    reference = jsonschema.Draft7Validator(load_schema(PLUGIN_SCHEMA))
    refused = 0
    for mutated in _mutations(doc):
        valid = reference.is_valid(mutated)
        refused += not valid
        if _schema_accepts(mutated):
            assert valid, f"compiled schema accepts a manifest jsonschema refuses: {mutated!r}"
    assert refused > 0  # the mutations do produce invalid manifests


def test_jsonschema_decides_what_the_compiled_schema_refuses() -> None:
    """'$' matches before a final newline in jsonschema's re.search, not in fastjsonschema: the
    compiled schema refuses, jsonschema decides (as before the fast path existed)."""
    text = (REPO / "tests" / "examples" / "valid" / "core-numeric" / "plugin.toml").read_text()
    doc = tomllib.loads(text)
    doc.setdefault("limits", {})["memory"] = "10MiB\n"
    assert not _schema_accepts(doc)
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
