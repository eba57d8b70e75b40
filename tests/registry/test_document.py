"""parse_registry: strict, pure, and safe for the client to trust after the signature check."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from registry_tool.registry import parse_registry
from registry_tool.registry.document import (
    FileRef,
    Limits,
    RegistryDocument,
    RegistryDocumentError,
    RegistryInfo,
    Release,
    SmokeFigure,
    format_time,
)


def sample() -> RegistryDocument:
    rel = Release(
        name="alpha",
        version="1.0.0",
        description="d",
        license="MIT",
        abi="core",
        host=">=0.2.0",
        exports=("add",),
        permissions=("keys",),
        limits=Limits(fuel=10, memory=65536, wall_time_ms=2000),
        manifest=FileRef("plugins/alpha/1.0.0/plugin.toml", "a" * 64, 10),
        wasm=FileRef("plugins/alpha/1.0.0/alpha.wasm", "b" * 64, 20),
        signers=("0123456789ABCDEF",),
        published_at="2026-11-21T12:00:00Z",
        yanked="broken",
        smoke=(SmokeFigure("t", 123, 65536),),
    )
    return RegistryDocument(
        version=7,
        generated_at="2026-11-21T12:00:00Z",
        expires_at="2026-11-28T12:00:00Z",
        root_version=1,
        registry=RegistryInfo("r", "desc", "https://x/", "ferrite", ">=0.2.0"),
        plugins={"alpha": {"1.0.0": rel}},
    )


def raw() -> dict[str, Any]:
    return json.loads(sample().to_bytes())


def test_round_trip_is_canonical() -> None:
    data = sample().to_bytes()
    assert parse_registry(data) == sample()
    assert parse_registry(data).to_bytes() == data
    assert data.endswith(b"}\n") and data.count(b"\n") == 1  # compact, one trailing newline


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-21T12:00:00",
        "2026-11-21 12:00:00Z",
        "2026-11-21T12:00:00.5Z",
        "\uff12\uff10\uff126-11-21T12:00:00Z",
        "2026-11-21T12:00:00Z\n",
    ],
)
def test_parse_time_accepts_one_spelling(text: str) -> None:
    from registry_tool.registry.document import parse_time

    with pytest.raises(RegistryDocumentError):
        parse_time(text)


def test_format_time_rejects_naive_datetimes() -> None:
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, 999, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    with pytest.raises(ValueError, match="naive"):
        format_time(datetime(2026, 1, 2))


def _set(path: str, value: Any) -> dict[str, Any]:
    doc = raw()
    node = doc
    parts = path.split("/")
    for p in parts[:-1]:
        node = node[p]
    node[parts[-1]] = value
    return doc


REL = "plugins/alpha/versions/1.0.0"
BAD: dict[str, dict[str, Any]] = {
    "wasm path traversal": _set(f"{REL}/wasm/path", "plugins/alpha/1.0.0/../../beta/1.0.0/beta.wasm"),
    "wasm path of another release": _set(f"{REL}/wasm/path", "plugins/beta/1.0.0/beta.wasm"),
    "absolute path": _set(f"{REL}/manifest/path", "/etc/passwd"),
    "sub-folder": _set(f"{REL}/wasm/path", "plugins/alpha/1.0.0/sub/alpha.wasm"),
    "bad digest": _set(f"{REL}/wasm/sha256", "B" * 64),
    "negative size": _set(f"{REL}/wasm/size", -1),
    "unknown field": _set("mirror", "http://evil/"),
    "unknown release field": _set(f"{REL}/install_script", "rm -rf /"),
    "wrong format version": _set("format_version", 2),
    "version zero": _set("version", 0),
    "float version": _set("version", 1.5),
    "bad timestamp": _set("generated_at", "2026-11-21 12:00:00"),
    "expiry before generation": _set("expires_at", "2026-11-20T12:00:00Z"),
    "bad plugin name": {**raw(), "plugins": {"../x": raw()["plugins"]["alpha"]}},
    "no signers": _set(f"{REL}/signers", []),
    "lower-case key id": _set(f"{REL}/signers", ["0123456789abcdef"]),
    "build metadata version": {
        **raw(),
        "plugins": {"alpha": {"versions": {"1.0.0+x": raw()["plugins"]["alpha"]["versions"]["1.0.0"]}}},
    },
    "bad abi": _set(f"{REL}/abi", "native"),
    "yanked as bool": _set(f"{REL}/yanked", True),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_rejects(case: str) -> None:
    with pytest.raises(RegistryDocumentError):
        parse_registry(json.dumps(BAD[case]).encode())


@pytest.mark.parametrize(
    "data",
    [
        b'{"version": 1, "version": 2}',
        b"\xff\xfe{}",
        b'{"version": NaN}',
        b"[1, 2",
        b"",
        b"[" * 100_000,  # nesting deep enough to exhaust the recursion limit
    ],
)
def test_rejects_malformed_json(data: bytes) -> None:
    with pytest.raises(RegistryDocumentError):
        parse_registry(data)


def test_duplicate_key_in_a_valid_document_is_refused() -> None:
    text = sample().to_bytes().decode()
    forged = text.replace('"root_version":1,', '"root_version":1,"root_version":2,', 1)
    assert forged != text
    with pytest.raises(RegistryDocumentError, match="duplicate key 'root_version'"):
        parse_registry(forged.encode())


def test_error_names_the_field() -> None:
    with pytest.raises(RegistryDocumentError) as err:
        parse_registry(json.dumps(BAD["bad digest"]).encode())
    assert err.value.where is not None and err.value.where.field == "plugins.alpha.versions.1.0.0.wasm.sha256"


@pytest.mark.parametrize("name", ["alpha\n", "alpha\nbeta", "Alpha", "a", "../x"])
def test_unsafe_plugin_names(name: str) -> None:
    from registry_tool.registry.document import is_safe_name

    assert not is_safe_name(name)


@pytest.mark.parametrize("version", ["1.0.0\n", "1.0", "1.0.0+build", "01.0.0"])
def test_unsafe_versions(version: str) -> None:
    from registry_tool.registry.document import is_safe_version

    assert not is_safe_version(version)
