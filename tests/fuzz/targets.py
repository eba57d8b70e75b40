"""Fuzz targets: one per parser of untrusted input, each with the only exceptions it may raise.

A target feeds one input to one parser.  A parser may refuse the input with its documented
error (a ``RegistryToolError``, or the ``ValueError`` subclass a pure helper documents); any
other exception is a crash the fuzzer reports, shrunk to a minimal input.  Inputs are mutations
of the sample index's own files (the corpus) or arbitrary bytes/text.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from hypothesis import strategies as st

from registry_tool.errors import RegistryToolError

REPO = Path(__file__).resolve().parents[2]
INDEX = REPO / "index"
KEYS = REPO / "samples" / "keys"
URL = "https://plugins.example.invalid/"


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], object]
    seeds: Callable[[], list[bytes]]
    refusals: tuple[type[BaseException], ...] = (RegistryToolError,)


def _files(pattern: str, root: Path = INDEX) -> Callable[[], list[bytes]]:
    return lambda: [p.read_bytes() for p in sorted(root.glob(pattern)) if p.is_file()]


@cache
def _site_documents() -> list[bytes]:
    """registry.json and the metadata documents of the sample index, built (no smoke runs) with
    the demo index key."""
    from registry_tool.registry.build import BuildOptions, build_site
    from registry_tool.signing import SecretKey

    key = SecretKey.load((KEYS / "index.key").read_bytes(), None)
    out = _tmp() / "site"
    build_site(BuildOptions(index=INDEX, out=out, keys=[key], now=datetime.now(UTC), smoke=False, jobs=1))
    documents = [out / "registry.json", *sorted((out / "meta").rglob("*.json"))]
    return [p.read_bytes() for p in documents if p.is_file()]


@cache
def _workdir() -> tempfile.TemporaryDirectory[str]:
    # One folder per process, removed at exit; each example overwrites its file in it.
    return tempfile.TemporaryDirectory(prefix="registry-tool-fuzz-")


def _tmp() -> Path:
    return Path(_workdir().name)


# ----------------------------------------------------------------------------- the parsers


def keys(data: bytes) -> None:
    from registry_tool.signing.minisign import PublicKey, SecretKey

    for parse in (PublicKey.parse, lambda d: SecretKey.load(d, None)):
        with contextlib.suppress(RegistryToolError):
            parse(data)


def signatures(data: bytes) -> None:
    from registry_tool.signing.minisign import Signature

    Signature.parse(data)


def root(data: bytes) -> None:
    from registry_tool.trust.root import Root

    Root.parse(data)


def registry_document(data: bytes) -> None:
    from registry_tool.format import CatalogDocument, NodeDocument, PluginDocument, TopDocument

    parsers: list[Callable[[bytes], object]] = [
        TopDocument.parse,
        PluginDocument.parse,
        CatalogDocument.parse,
        lambda d: NodeDocument.parse(d, expected_prefix=""),
    ]
    for parse in parsers:
        with contextlib.suppress(RegistryToolError):
            parse(data)


def manifest(data: bytes) -> None:
    from registry_tool.manifest.model import parse_manifest

    parse_manifest(Path("plugins/x/1.0.0/plugin.toml"), data, "plugin.toml")


def registry_config(data: bytes) -> None:
    from registry_tool.manifest import load_registry_config

    path = _tmp() / "registry.toml"
    path.write_bytes(data)
    load_registry_config(path)


def lockfile(data: bytes) -> None:
    from registry_tool.client import install

    directory = _tmp()
    (directory / getattr(install, "LOCKFILE", "registry-tool.lock.json")).write_bytes(data)
    install.read_lockfile(directory)


def state(data: bytes) -> None:
    from registry_tool.client.store import StateStore

    store = StateStore(_tmp())
    store.path_for(URL).write_bytes(data)
    store.load(URL)


def requirement(data: bytes) -> None:
    from registry_tool.client.install import Requirement
    from registry_tool.manifest.versions import RangeError, parse_range

    text = data.decode("utf-8", "replace")
    try:
        Requirement.parse(text)
    finally:
        with contextlib.suppress(RangeError):
            parse_range(text.partition("@")[2] or text)


def wasm(data: bytes) -> None:
    from registry_tool.manifest.wasm import inspect_wasm

    inspect_wasm(data)


def _state_seed() -> list[bytes]:
    import json

    root_text = (INDEX / "root" / "2.root.json").read_text(encoding="utf-8")
    doc = {"state_version": 1, "url": URL, "root": root_text, "highest_version": 2}
    return [json.dumps(doc).encode()]


def _lockfile_seed() -> list[bytes]:
    import json

    folder = "adler32/1.0.0"
    entry = {
        "version": "1.0.0", "registry": "https://plugins.example.invalid/", "requested": "^1",
        "required_by": [], "dependencies": {}, "abi": "core", "manifest": f"{folder}/plugin.toml",
        "manifest_sha256": "0" * 64, "manifest_size": 300, "wasm": f"{folder}/adler32.wasm",
        "wasm_sha256": "778d25f99e4d1cc9162e81b16aa102e2c54ea06a6874288e4e157b2c03f0c697",
        "wasm_size": 334, "signatures": [f"{folder}/plugin.toml.minisig"], "signers": [],
        "permissions": [], "published_at": "2026-11-20T00:00:00Z",
    }  # fmt: skip

    def line(doc: object) -> bytes:
        return (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode()

    base = line({"lockfile_version": 3, "plugins": {"adler32": entry}})
    return [
        # version 3: a base, a change line replacing the entry, one removing it, an unfinished tail
        base
        + line({"plugins": {"adler32": {**entry, "requested": "(dependency)"}}})
        + line({"plugins": {"adler32": None}})
        + b'{"plugins":{"adler32":',
        # version 2: one pretty-printed document
        (json.dumps({"lockfile_version": 2, "plugins": {"adler32": entry}}, indent=2) + "\n").encode(),
        b'version = 1\nregistry = "https://plugins.example.invalid/"\n\n[plugins.adler32]\n'
        b'version = "1.0.0"\nrequested = "^1"\nwasm = "adler32/1.0.0/adler32.wasm"\n'
        b'wasm_sha256 = "778d25f99e4d1cc9162e81b16aa102e2c54ea06a6874288e4e157b2c03f0c697"\n'
        b"wasm_size = 334\n",
        b'{"lockfile_version": 1, "registry": "https://plugins.example.invalid/", "plugins": {}}',
    ]


TARGETS = {
    t.name: t
    for t in (
        Target("keys", keys, lambda: _files("*.pub", KEYS)() + _files("*.key", KEYS)()),
        Target("signatures", signatures, _files("**/*.minisig")),
        Target("root", root, _files("root/*.root.json")),
        Target("registry_document", registry_document, _site_documents),
        Target("manifest", manifest, _files("plugins/*/*/plugin.toml")),
        Target("registry_config", registry_config, _files("registry.toml")),
        Target("lockfile", lockfile, _lockfile_seed),
        Target("state", state, _state_seed),
        Target(
            "requirement",
            requirement,
            lambda: [b"validate_email", b"adler32@1.0.0", b"uppercase@^1.2", b"x@>=1.0.0 <2.0.0", b"x@1 - 2"],
        ),
        Target("wasm", wasm, _files("plugins/*/*/*.wasm")),
    )
}


# ----------------------------------------------------------------------------- inputs


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a few byte-level edits: replace, insert, delete, duplicate a slice, or splice in
    an interesting token (deep nesting, long numbers, surrogates, NUL, huge sizes)."""
    data = bytearray(draw(st.sampled_from(seeds)))
    tokens = [
        b"[" * 2000,
        b"{" * 2000,
        b"9" * 5000,
        b"\\ud800",
        b"\x00",
        b"1e308",
        b"-",
        b'"a - b"',
        b"\xff\xfe",
        b"NaN",
        b"\n[[tests]]\n",
    ]
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.integers(0, 4))
        if op == 0 and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == 1:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == 2:
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == 3:
            end = min(len(data), pos + draw(st.integers(1, 64)))
            data[pos:pos] = data[pos:end]
        else:
            data[pos:pos] = draw(st.sampled_from(tokens))
    return bytes(data)


def inputs(target: Target) -> st.SearchStrategy[bytes]:
    seeds = target.seeds()
    assert seeds, f"no corpus for {target.name}"
    return st.one_of(mutated(seeds), st.sampled_from(seeds), st.binary(max_size=512))
