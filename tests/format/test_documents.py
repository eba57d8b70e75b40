"""Format-2 documents: strict parsing, canonical bytes, the tree, pins and paths."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from registry_tool.format import (
    LEAF_MAX,
    CatalogDocument,
    DocumentError,
    FileRef,
    Limits,
    NodeDocument,
    PathTraversalError,
    Pin,
    PluginDocument,
    RegistryInfo,
    Release,
    TopDocument,
    TreeMismatchError,
    UnsupportedFormatError,
    WrongDocumentError,
    build_metadata,
    build_tree,
    dump_canonical,
    load_strict,
    meta_path,
    plugin_key,
)

SHA = "ab" * 32


def release(name: str = "alpha", version: str = "1.0.0", **kw: Any) -> Release:
    base: dict[str, Any] = dict(
        name=name,
        version=version,
        description="adds",
        license="MIT",
        abi="core",
        host=">=0.2.0",
        exports=("add",),
        permissions=(),
        limits=Limits(1, 2, 3),
        manifest=FileRef(f"plugins/{name}/{version}/plugin.toml", SHA, 10),
        wasm=FileRef(f"plugins/{name}/{version}/{name}.wasm", SHA, 20),
        signers=("0123456789ABCDEF",),
        published_at="2026-11-21T12:00:00Z",
    )
    base.update(kw)
    return Release(**base)


def plugin(name: str = "alpha", *versions: str) -> PluginDocument:
    return PluginDocument(name, {v: release(name, v) for v in versions or ("1.0.0",)})


def top(**kw: Any) -> TopDocument:
    base: dict[str, Any] = dict(
        version=5,
        generated_at="2026-11-27T12:00:00Z",
        expires_at="2026-12-04T12:00:00Z",
        root_version=2,
        registry=RegistryInfo("reg", "d", "https://x/", "ferrite", ">=0.2.0"),
        tree=Pin(SHA, 10),
        catalog=Pin(SHA, 20),
        plugin_count=1,
        release_count=1,
    )
    base.update(kw)
    return TopDocument(**base)


def mutate(data: bytes, change: Any) -> bytes:
    raw = json.loads(data)
    change(raw)
    return json.dumps(raw).encode()


def test_round_trips_are_canonical() -> None:
    doc = plugin("alpha", "1.0.0", "1.1.0")
    data = doc.to_bytes()
    assert data.endswith(b"}\n") and b" " not in data.replace(b"adds", b"")
    assert PluginDocument.parse(data, expected_name="alpha") == doc
    assert TopDocument.parse(top().to_bytes()) == top()
    assert dump_canonical({"b": 1, "a": "é"}) == '{"a":"é","b":1}\n'.encode()


def test_top_document_stays_small() -> None:
    assert len(top(registry=RegistryInfo("r" * 64, "d" * 200, "https://x/" * 10, "h", "*")).to_bytes()) < 1024


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1,"a":2}',
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b'{"a":9007199254740993}',
        b'{"a":"\\ud800"}',
        b'{"\\udc00":1}',
        b"\xef\xbb\xbf{}",
        b'{"a":"\xff"}',
        b"[" * 100000,
    ],
)
def test_strict_json_refusals(data: bytes) -> None:
    with pytest.raises(DocumentError) as err:
        load_strict(data, where="x")
    assert err.value.code == "malformed"


def test_strict_json_accepts_paired_surrogates_and_limits() -> None:
    assert load_strict(b'{"a":"\\ud83d\\ude00","b":9007199254740992}', where="x") == {
        "a": "\U0001f600",
        "b": 2**53,
    }


def test_unsupported_format_version_names_both_versions() -> None:
    for doc, parse in (
        (top().to_bytes(), TopDocument.parse),
        (plugin().to_bytes(), lambda d: PluginDocument.parse(d)),
    ):
        with pytest.raises(UnsupportedFormatError, match=r"format_version 1; .* format_version 2"):
            parse(mutate(doc, lambda raw: raw.update(format_version=1)))


@pytest.mark.parametrize(
    "change",
    [
        lambda raw: raw.update(extra=1),
        lambda raw: raw.pop("catalog"),
        lambda raw: raw.update(version=True),
        lambda raw: raw.update(version=0),
        lambda raw: raw.update(generated_at="2026-1-5T1:2:3Z"),
        lambda raw: raw.update(expires_at="2026-11-27T12:00:00Z"),
        lambda raw: raw["tree"].update(sha256="AB" * 32),
        lambda raw: raw["tree"].update(size=0),
        lambda raw: raw["registry"]["host"].update(x=1),
    ],
)
def test_top_document_schema(change: Any) -> None:
    with pytest.raises(DocumentError) as err:
        TopDocument.parse(mutate(top().to_bytes(), change))
    assert err.value.code == "malformed"


def test_top_document_cap() -> None:
    with pytest.raises(DocumentError, match="cap"):
        TopDocument.parse(top().to_bytes() + b" " * 65536)


@pytest.mark.parametrize(
    "change, error",
    [
        (lambda v: v["manifest"].update(path="plugins/alpha/1.0.0/../../x/plugin.toml"), PathTraversalError),
        (lambda v: v["manifest"].update(path="plugins/alpha/1.0.0/other.toml"), PathTraversalError),
        (lambda v: v["wasm"].update(path="plugins/beta/1.0.0/alpha.wasm"), PathTraversalError),
        (lambda v: v["wasm"].update(path="plugins/alpha/1.0.0/sub/alpha.wasm"), PathTraversalError),
        (lambda v: v["wasm"].update(path="plugins/alpha/1.0.0/.."), PathTraversalError),
        (lambda v: v.update(signers=["0123456789abcdef"]), DocumentError),
        (lambda v: v.update(permissions=["Keys"]), DocumentError),
        (lambda v: v.update(dependencies={"beta": "latest"}), DocumentError),
        (lambda v: v.update(yanked={"reason": "x", "by": "y"}), DocumentError),
        (lambda v: v.update(published_at="2026-11-21 12:00:00Z"), DocumentError),
        (lambda v: v.pop("dependencies"), DocumentError),
    ],
)
def test_plugin_document_entry_rules(change: Any, error: type[Exception]) -> None:
    data = mutate(plugin().to_bytes(), lambda raw: change(raw["versions"]["1.0.0"]))
    with pytest.raises(error):
        PluginDocument.parse(data, expected_name="alpha")


def test_plugin_document_naming_another_plugin_is_wrong_software() -> None:
    with pytest.raises(WrongDocumentError) as err:
        PluginDocument.parse(plugin("beta").to_bytes(), expected_name="alpha")
    assert err.value.code == "wrong-software"


def test_plugin_document_version_keys_are_strict() -> None:
    for key in ("1.0.0+b", "1.0", "1.0.0\n"):
        data = mutate(
            plugin().to_bytes(), lambda raw, k=key: raw["versions"].update({k: raw["versions"]["1.0.0"]})
        )
        with pytest.raises(DocumentError):
            PluginDocument.parse(data)


def names(n: int) -> dict[str, Pin]:
    return {f"plugin{i:05d}": Pin(hashlib.sha256(str(i).encode()).hexdigest(), 100 + i) for i in range(n)}


def walk(root: Pin, nodes: dict[str, bytes], name: str) -> Pin | None:
    pin, prefix = root, ""
    while True:
        node = NodeDocument.parse(nodes[pin.sha256], expected_prefix=prefix)
        step = node.step(name)
        if step is None:
            return None
        kind, pin = step
        if kind == "plugin":
            return pin
        prefix = prefix + plugin_key(name)[len(prefix)]


def test_tree_finds_every_plugin_and_splits_above_leaf_max() -> None:
    _, small = build_tree(names(LEAF_MAX))
    assert len(small) == 1
    pins = names(1000)
    root, nodes = build_tree(pins)
    assert len(nodes) > 16
    for name, pin in list(pins.items())[::37]:
        assert walk(root, nodes, name) == pin
    assert walk(root, nodes, "absent-plugin") is None
    for data in nodes.values():
        raw = json.loads(data)
        assert len(raw.get("plugins", {})) <= LEAF_MAX


def test_tree_is_a_pure_function_and_one_change_touches_one_path() -> None:
    pins = names(1000)
    root, nodes = build_tree(pins)
    assert build_tree(dict(reversed(list(pins.items())))) == (root, nodes)
    changed = dict(pins, plugin00007=Pin("cd" * 32, 5))
    root2, nodes2 = build_tree(changed)
    new = set(nodes2) - set(nodes)
    assert root2 != root and 1 <= len(new) <= 3  # the leaf and its ancestors only


def test_node_at_the_wrong_position_is_mix_and_match() -> None:
    root, nodes = build_tree(names(1000))
    data = nodes[root.sha256]
    with pytest.raises(TreeMismatchError) as err:
        NodeDocument.parse(data, expected_prefix="a")
    assert err.value.code == "mix-and-match"


def test_leaf_holding_a_name_outside_its_prefix_is_mix_and_match() -> None:
    name = "alpha"
    wrong = "0" if plugin_key(name)[0] != "0" else "1"
    leaf = NodeDocument(wrong, plugins={name: Pin(SHA, 1)}).to_bytes()
    with pytest.raises(TreeMismatchError):
        NodeDocument.parse(leaf, expected_prefix=wrong)
    bad_name = NodeDocument("", plugins={"Alpha": Pin(SHA, 1)}).to_bytes()
    with pytest.raises(TreeMismatchError):
        NodeDocument.parse(bad_name, expected_prefix="")


@pytest.mark.parametrize(
    "body",
    [
        {"prefix": "", "children": {}, "plugins": {}},
        {"prefix": "", "children": {"A": {"sha256": SHA, "size": 1}}},
        {"prefix": "", "children": {"00": {"sha256": SHA, "size": 1}}},
        {"prefix": ""},
        {"prefix": "", "plugins": {}, "extra": 1},
    ],
)
def test_node_schema(body: dict[str, Any]) -> None:
    data = json.dumps({"_type": "registry-node", "format_version": 2, **body}).encode()
    with pytest.raises(DocumentError):
        NodeDocument.parse(data, expected_prefix="")


def test_catalog_latest_skips_yanked_and_pins_the_documents() -> None:
    doc = PluginDocument(
        "alpha",
        {
            "1.0.0": release(description="old"),
            "1.10.0": release(version="1.10.0", description="new"),
            "2.0.0": release(version="2.0.0", yanked="bad", description="yanked"),
        },
    )
    meta = build_metadata([doc, plugin("beta")])
    catalog = CatalogDocument.parse(meta.files[meta.catalog.sha256])
    entry = catalog.plugins["alpha"]
    assert (entry.latest, entry.versions, entry.description) == ("1.10.0", 3, "new")
    assert entry.document == meta.plugin_pins["alpha"]
    assert meta.paths()[meta_path(meta.catalog.sha256)] == meta.files[meta.catalog.sha256]
    all_yanked = PluginDocument("gamma", {"1.0.0": release("gamma", yanked="x")})
    assert (
        CatalogDocument.parse(build_metadata([all_yanked]).files[build_metadata([all_yanked]).catalog.sha256])
        .plugins["gamma"]
        .latest
        is None
    )


def test_meta_path_is_derived_from_the_digest() -> None:
    assert meta_path(SHA) == f"meta/ab/{SHA}.json"
