"""Signed index trees for tests: keys, a root chain, releases, yanks and a built site.

Everything is made with the project's own signing, trust and build APIs (the calls a registry
owner makes), so a test that uses this world exercises the real verification path.  The ci,
registry and client tests all build their indexes here; they differ only in data (the
registry.toml, a manifest's fields, the clock), never in how a tree is made.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import wasmtime

from registry_tool.format import Pin, PluginDocument, build_metadata, dump_canonical
from registry_tool.registry import BuildOptions, Publication, build_site
from registry_tool.registry.document import read_site_dir
from registry_tool.signing import SecretKey, sign_bytes, sign_release, sign_yank
from registry_tool.trust.editing import (
    add_maintainer,
    edit_root_dir,
    init_root_dir,
    new_root,
    revoke,
    sign_root_dir,
)

# A fixed clock: documents and signatures are reproducible, expiry checks deterministic.
FIXED_NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)

# The maintainers every test registry delegates to: alice owns alpha*, bob owns beta.
MAINTAINERS: tuple[tuple[str, str], ...] = (("alice", "alpha*"), ("bob", "beta"))

# --------------------------------------------------------------------------- keys


def new_key() -> SecretKey:
    """A fresh minisign key pair (the only way tests make keys)."""
    return SecretKey.generate()


@dataclass
class Keys:
    """The key set of a test registry; each role has its own key."""

    root: SecretKey
    index: SecretKey
    alice: SecretKey  # maintainer of alpha*
    bob: SecretKey  # maintainer of beta
    index2: SecretKey  # replaces the index key on rotation; in no role at first
    mallory: SecretKey  # in no role at all

    @classmethod
    def generate(cls) -> Keys:
        """A new key for every role."""
        return cls(*(new_key() for _ in fields(cls)))

    def maintainer(self, name: str) -> SecretKey:
        """The key of maintainer ``name`` (alice, bob)."""
        key: SecretKey = getattr(self, name)
        return key

    def signer_for(self, plugin: str) -> SecretKey:
        """The maintainer delegated for ``plugin`` by the default root chain."""
        return self.bob if plugin == "beta" else self.alice


# --------------------------------------------------------------------------- modules and manifests

ADD_WAT = """(module {imports}
  (memory (export "memory") 1)
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add {extra}))"""

PERMISSION_IMPORTS = {
    "keys": '(import "ferrite:keys" "get" (func (param i32) (result i32)))',
    "network": '(import "ferrite:net" "fetch" (func (param i32) (result i32)))',
}


def wasm(wat: str) -> bytes:
    """A module compiled from WebAssembly text."""
    return bytes(wasmtime.wat2wasm(wat))


def add_module(variant: int = 0, permissions: Sequence[str] = ()) -> bytes:
    """A tiny core module exporting ``add``.

    ``variant`` changes its bytes and nothing that matters; ``permissions`` adds one import per
    permission (``keys``, ``network``).
    """
    imports = "\n".join(PERMISSION_IMPORTS[p] for p in permissions)
    return wasm(ADD_WAT.format(imports=imports, extra=" i32.const 0 i32.add" * variant))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)


def manifest_text(
    name: str,
    version: str,
    *,
    description: str = "adds two numbers",
    license: str = "Apache-2.0",
    keywords: Sequence[str] | None = ("math",),
    host: str = ">=0.2.0, <0.4.0",
    permissions: Mapping[str, bool] | None = None,
    dependencies: Mapping[str, str] | str | None = None,
    limits: Mapping[str, Any] | None = None,
    test: tuple[str, list[int], list[int]] = ("one plus two", [1, 2], [3]),
) -> str:
    """A plugin.toml for an ``add`` module.

    ``permissions=None`` leaves out the ``[permissions]`` table (``{}`` writes an empty one);
    ``dependencies`` is a mapping or the body of a ``[dependencies]`` table (TOML lines).
    """
    lines = [
        "[plugin]",
        f'name = "{name}"',
        f'version = "{version}"',
        f'description = "{description}"',
        'authors = ["tests"]',
        f'license = "{license}"',
        'abi = "core"',
    ]
    if keywords:
        lines.append(f"keywords = {_toml_value(list(keywords))}")
    lines += ["", "[compatibility]", f'host = "{host}"', "", "[artifact]", f'file = "{name}.wasm"']
    lines += ["", "[exports]", 'functions = ["add"]']
    if permissions is not None:
        lines += ["", "[permissions]", *(f"{k} = {_toml_value(v)}" for k, v in permissions.items())]
    if dependencies:
        body = (
            dependencies
            if isinstance(dependencies, str)
            else "\n".join(f'{k} = "{v}"' for k, v in dependencies.items())
        )
        lines += ["", "[dependencies]", body.rstrip("\n")]
    if limits:
        lines += ["", "[limits]", *(f"{k} = {_toml_value(v)}" for k, v in limits.items())]
    test_name, args, expect = test
    lines += [
        "",
        "[[tests]]",
        f'name = "{test_name}"',
        'call = "add"',
        f"args = {args}",
        f"expect = {expect}",
    ]
    return "\n".join(lines) + "\n"


def yank_text(name: str, version: str, reason: str) -> str:
    """A yank.toml for one release."""
    return f'[yank]\nname = "{name}"\nversion = "{version}"\nreason = "{reason}"\n'


# --------------------------------------------------------------------------- registry.toml

_PERMISSIONS = {
    "keys": ("Read and write the host's key-value store", "ferrite:keys"),
    "network": ("Outbound HTTP through the host", "ferrite:net"),
}


def registry_toml(
    name: str,
    *,
    description: str = "Registry used by the tests",
    base_url: str = "http://127.0.0.1/",
    abis: Sequence[str] = ("core",),
    permissions: Sequence[str] = ("keys",),
    allow_backports: bool = False,
    extra: str = "",
) -> str:
    """A registry.toml for host ``ferrite`` (>=0.2.0, <1.0.0); ``extra`` is appended verbatim."""
    perms = "".join(
        f'\n[permissions.{p}]\ndescription = "{_PERMISSIONS[p][0]}"\n'
        f'imports = [{{ module = "{_PERMISSIONS[p][1]}", name = "*" }}]\n'
        for p in permissions
    )
    return f"""\
[registry]
name = "{name}"
description = "{description}"
base_url = "{base_url}"

[host]
name = "ferrite"
versions = ">=0.2.0, <1.0.0"

[abis]
allowed = {_toml_value(list(abis))}
{perms}
[limits.default]
fuel = 50_000_000
memory = "16MiB"
wall_time = "2s"

[limits.max]
fuel = 1_000_000_000
memory = "256MiB"
wall_time = "10s"
module_size = "32MiB"
table_elements = 100_000
instances = 10
stack = "1MiB"

[features]
simd = true
bulk_memory = true
reference_types = true
multi_value = true
threads = false
multi_memory = false
memory64 = false
tail_call = false
exceptions = false

[index]
validity = "7d"
allow_backports = {_toml_value(allow_backports)}
{extra}"""


# --------------------------------------------------------------------------- root chain


def make_root_chain(
    root_dir: Path,
    registry: str,
    keys: Keys,
    *,
    now: datetime,
    maintainers: Iterable[tuple[str, str]] = MAINTAINERS,
    sign_each: bool = True,
) -> None:
    """Root v1 (root and index keys), then one delegation per maintainer.

    ``sign_each`` signs after every delegation (v1, v2 alice, v3 bob); without it the
    delegations are amended into one version (v1, v2 alice + bob).
    """
    v1 = new_root(
        registry, [keys.root.public_key], [keys.index.public_key], expires=now + timedelta(days=365)
    )
    init_root_dir(root_dir, v1)
    sign_root_dir(root_dir, keys.root)
    for who, pattern in maintainers:
        edit_root_dir(root_dir, add_maintainer(who, [keys.maintainer(who).public_key], [pattern]), now=now)
        if sign_each:
            sign_root_dir(root_dir, keys.root)
    if not sign_each:
        sign_root_dir(root_dir, keys.root)


# --------------------------------------------------------------------------- the index tree


@dataclass
class IndexTree:
    """An index directory (registry.toml, root/, plugins/) and the keys that sign it.

    ``timestamp`` is the signing time of releases and yanks (None: the real clock).
    """

    path: Path
    keys: Keys
    now: datetime = FIXED_NOW
    timestamp: int | None = None
    releases: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        path: Path,
        keys: Keys,
        *,
        registry: str,
        toml: str,
        now: datetime = FIXED_NOW,
        timestamp: int | None = None,
        sign_each: bool = True,
    ) -> IndexTree:
        """A new index at ``path`` with ``toml`` as its registry.toml and the default root chain."""
        path.mkdir(parents=True)
        (path / "registry.toml").write_text(toml, encoding="utf-8")
        make_root_chain(path / "root", registry, keys, now=now, sign_each=sign_each)
        return cls(path, keys, now, timestamp)

    def copy_to(self, target: Path) -> IndexTree:
        """A copy of this tree at ``target`` (a template built once, copied per test)."""
        shutil.copytree(self.path, target, symlinks=True)
        return IndexTree(target, self.keys, self.now, self.timestamp, list(self.releases))

    @property
    def root_dir(self) -> Path:
        """The root chain's directory."""
        return self.path / "root"

    def release_dir(self, name: str, version: str) -> Path:
        """Where release ``name`` ``version`` lives."""
        return self.path / "plugins" / name / version

    def add_release(
        self,
        name: str,
        version: str,
        *,
        manifest: str,
        module: bytes,
        signer: SecretKey | None = None,
    ) -> Path:
        """Write a release (manifest + module), pin the module and sign it; its folder."""
        folder = self.release_dir(name, version)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "plugin.toml").write_text(manifest, encoding="utf-8")
        (folder / f"{name}.wasm").write_bytes(module)
        sign_release(folder, signer or self.keys.signer_for(name), timestamp=self.timestamp)
        self.releases.append((name, version))
        return folder

    def yank(self, name: str, version: str, reason: str, signer: SecretKey | None = None) -> Path:
        """A maintainer-signed yank of one release; the signature's path."""
        folder = self.release_dir(name, version)
        (folder / "yank.toml").write_text(yank_text(name, version, reason), encoding="utf-8")
        return sign_yank(folder, signer or self.keys.signer_for(name), timestamp=self.timestamp)

    def edit_root(self, edit: Callable[[dict[str, Any]], None]) -> None:
        """The next root version with ``edit`` applied, signed by the root key."""
        edit_root_dir(self.root_dir, edit, now=self.now)
        sign_root_dir(self.root_dir, self.keys.root)

    def revoke(self, key: SecretKey, *, keep_prior_releases: bool, at: datetime) -> None:
        """A root version revoking ``key`` as of ``at``."""
        self.edit_root(revoke(key.key_id, now=at, keep_prior_releases=keep_prior_releases))

    def build(
        self,
        out: Path,
        *,
        index_keys: Sequence[SecretKey] = (),
        now: datetime | None = None,
        previous: Path | str | None = None,
    ) -> Publication:
        """Build the signed site into ``out`` (no smoke runs); its top document."""
        result = build_site(
            BuildOptions(
                index=self.path,
                out=out,
                keys=list(index_keys) or [self.keys.index],
                now=now or self.now,
                previous=str(previous) if previous is not None else None,
                smoke=False,
            )
        )
        return result.document


# --------------------------------------------------------------------------- forging a built site


def forge_top(site: Path, mutate: Callable[[dict[str, Any]], None], key: SecretKey) -> bytes:
    """Rewrite registry.json and sign it with ``key``: what a stolen index key allows."""
    raw = json.loads((site / "registry.json").read_bytes())
    mutate(raw)
    data = (json.dumps(raw, sort_keys=True, indent=2) + "\n").encode()
    (site / "registry.json").write_bytes(data)
    (site / "registry.json.minisig").write_text(sign_bytes(key, data, trusted_comment="forged"))
    return data


def write_meta(site: Path, documents: Iterable[bytes]) -> list[Pin]:
    """Store documents at their content address in ``site``; their pins."""
    pins = []
    for data in documents:
        pin = Pin.of(data)
        path = site / pin.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        pins.append(pin)
    return pins


def forge_plugin_document(
    site: Path, name: str, mutate: Callable[[dict[str, Any]], None], key: SecretKey
) -> bytes:
    """Rewrite a plugin document, re-derive tree and catalog, re-sign the top document with
    ``key``: what a stolen index key allows below the top.  Returns the forged document."""
    pub = read_site_dir(site)
    docs = [PluginDocument(n, versions) for n, versions in sorted(pub.plugins.items())]
    raw = PluginDocument(name, pub.plugins[name]).to_json()
    mutate(raw)
    forged = dump_canonical(raw)
    meta = build_metadata(docs, encoded={name: forged})
    write_meta(site, meta.files.values())
    forge_top(site, lambda top: top.update(tree=meta.tree.to_json(), catalog=meta.catalog.to_json()), key)
    return forged
