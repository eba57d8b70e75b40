"""A small registry-format-2 site for the catalog's browser tests.

Plugin documents are parsed and the tree and catalog built by registry_tool.format (the same code
as `registry-tool build`), signatures made with registry_tool.signing and roots with
registry_tool.trust.editing, so the page is checked against documents the Python verifier
accepts.  Deterministic keys (fixed seeds); times follow the real clock, because the page checks
expiry against the browser's clock.  Variants for the failure states: a registry signed by a key
outside the index role, an expired registry, a tampered catalog document.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from registry_tool.format import PluginDocument, TopDocument, build_metadata
from registry_tool.format.strictjson import dump_canonical
from registry_tool.registry.catalog import write_catalog
from registry_tool.signing import SecretKey, release_trusted_comment, sign_bytes
from registry_tool.trust.editing import add_maintainer, derive, new_root, rotate_keys
from registry_tool.trust.root import Root, format_time

REGISTRY = "ferrite-plugins"


def seed_key(label: str) -> SecretKey:
    seed = hashlib.sha256(f"registry-tool catalog fixture {label}".encode()).digest()
    return SecretKey.from_seed(seed, hashlib.sha256(seed).digest()[:8])


KEYS = {
    n: seed_key(n) for n in ("root-a", "root-b", "root-c", "index", "ferritelabs", "community", "mallory")
}


def pin(data: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


@dataclass
class Release:
    version: str
    description: str
    license: str = "Apache-2.0"
    abi: str = "core"
    host: str | None = ">=0.2.0, <0.4.0"
    permissions: list[str] = field(default_factory=list)
    exports: list[str] = field(default_factory=list)
    smoke: list[tuple[str, int | None, int | None]] | None = None
    yanked: str | None = None
    keywords: list[str] = field(default_factory=list)


@dataclass
class Plugin:
    name: str
    maintainer: str
    releases: list[Release]


def sample_plugins() -> list[Plugin]:
    return [
        Plugin(
            "validate_email",
            "ferritelabs",
            [
                Release(
                    "1.0.0",
                    "RFC 5322 email address validation",
                    exports=["validate_email"],
                    smoke=[
                        ("accepts a plain address", 5123, 131072),
                        ("rejects a missing domain", 4870, 131072),
                    ],
                    keywords=["email", "validation"],
                ),
                Release(
                    "1.1.0",
                    "RFC 5322 email address validation (faster)",
                    exports=["validate_email"],
                    smoke=[("accepts a plain address", 4011, 131072)],
                    yanked="rejects addresses with a plus sign",
                    keywords=["email", "validation"],
                ),
            ],
        ),
        Plugin(
            "visit_counter",
            "ferritelabs",
            [
                Release(
                    "0.3.0",
                    "Counts visits per key in the host's store",
                    permissions=["keys"],
                    exports=["count"],
                    smoke=[("counts twice", 20211, 196608)],
                    keywords=["counter"],
                )
            ],
        ),
        Plugin(
            "uppercase",
            "community",
            [
                Release(
                    "2.1.0",
                    "Upper-cases a string",
                    license="MIT",
                    abi="extism",
                    host=">=0.3.0",
                    exports=["run"],
                    smoke=[("upper-cases", 1204, None)],  # a figure the run could not take: null
                )
            ],
        ),
        Plugin(
            "healthcheck",
            "community",
            [
                Release(
                    "0.1.0",
                    "Probes an HTTP endpoint through the host",
                    license="MIT OR Apache-2.0",
                    abi="wasi-command",
                    host=None,
                    permissions=["network"],
                    exports=["_start"],
                    smoke=[],
                )
            ],
        ),
    ]


def synthetic_plugins(count: int) -> list[Plugin]:
    """Many small plugins (for the 10k search measurement)."""
    words = ["json", "csv", "email", "geo", "hash", "text", "time", "url", "xml", "yaml", "math", "crypto"]
    out = []
    for i in range(count):
        w = words[i % len(words)]
        out.append(
            Plugin(
                f"{w}_tool_{i:05d}",
                "community",
                [
                    Release(
                        f"1.{i % 7}.0",
                        f"Synthetic {w} helper number {i} for the catalog load test",
                        license=["MIT", "Apache-2.0", "BSD-3-Clause"][i % 3],
                        abi=["core", "extism", "wasi-command"][i % 3],
                        host=[">=0.2.0, <0.4.0", ">=0.3.0", "^0.2"][i % 3],
                        permissions=[[], ["keys"], ["network"]][i % 3],
                        exports=["run"],
                        keywords=[w],
                    )
                ],
            )
        )
    return out


@dataclass
class Site:
    path: Path
    root1: bytes
    top: dict[str, Any]
    catalog_path: Path
    plugin_doc_paths: dict[str, Path]


def _sig_comment(name: str, version: int) -> str:
    return f"registry:{name}\tversion:{version}\tfile:registry.json"


def build_site(
    out: Path,
    *,
    plugins: list[Plugin] | None = None,
    now: datetime | None = None,
    expired: bool = False,
    index_key: SecretKey | None = None,
    base_url: str = "https://plugins.example.org/ferrite/",
    write_page: bool = True,
    rotation_signers: tuple[str, ...] | None = None,
) -> Site:
    """Write a signed format-2 site into ``out`` (created) and the catalog page into it.

    ``rotation_signers`` adds root version 3, which replaces root-b by root-c in the root role,
    signed by the named keys (a proper rotation needs root-a, root-b and root-c: two of the old
    role and two of the new).
    """
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    plugins = sample_plugins() if plugins is None else plugins
    out.mkdir(parents=True, exist_ok=True)

    # Root chain: v1 (2-of-2 root keys, one index key), v2 delegates plugins to two maintainers.
    root_keys = [KEYS["root-a"], KEYS["root-b"]]
    v1 = new_root(
        REGISTRY,
        [k.public_key for k in root_keys],
        [KEYS["index"].public_key],
        root_threshold=2,
        expires=now + timedelta(days=365),
    )
    v2 = derive(
        Root.parse(v1),
        add_maintainer("ferritelabs", [KEYS["ferritelabs"].public_key], ["validate_email", "visit_*"]),
    )
    v2 = derive(
        Root.parse(v2), add_maintainer("community", [KEYS["community"].public_key], ["*"]), bump=False
    )
    chain = [(1, v1, root_keys), (2, v2, root_keys)]
    if rotation_signers is not None:
        rotate = rotate_keys("root", add=[KEYS["root-c"].public_key], remove=[KEYS["root-b"].key_id])
        v3 = derive(Root.parse(v2), rotate)
        chain.append((3, v3, [KEYS[label] for label in rotation_signers]))
    (out / "root").mkdir(exist_ok=True)
    for n, data, signers in chain:
        (out / "root" / f"{n}.root.json").write_bytes(data)
        for k in signers:
            (out / "root" / f"{n}.root.json.{k.key_id}.minisig").write_text(
                sign_bytes(k, data, trusted_comment=f"registry-root\tregistry:{REGISTRY}\tversion:{n}")
            )

    generated = now - timedelta(days=10) if expired else now - timedelta(hours=1)
    expires = generated + timedelta(days=7)
    published = format_time(generated - timedelta(days=3))
    documents: list[PluginDocument] = []
    real_files = len(plugins) <= 50
    for plugin in plugins:
        maint = KEYS[plugin.maintainer]
        versions: dict[str, Any] = {}
        for rel in plugin.releases:
            rel_dir = f"plugins/{plugin.name}/{rel.version}"
            wasm = b"\x00asm\x01\x00\x00\x00" + plugin.name.encode() + rel.version.encode()
            manifest = (
                f'[plugin]\nname = "{plugin.name}"\nversion = "{rel.version}"\n'
                f'description = "{rel.description}"\nlicense = "{rel.license}"\n\n'
                f'[artifact]\nfile = "{plugin.name}.wasm"\nsha256 = "{hashlib.sha256(wasm).hexdigest()}"\n'
                f"size = {len(wasm)}\n"
            ).encode()
            if real_files:
                (out / rel_dir).mkdir(parents=True, exist_ok=True)
                (out / rel_dir / "plugin.toml").write_bytes(manifest)
                (out / rel_dir / f"{plugin.name}.wasm").write_bytes(wasm)
                (out / rel_dir / "plugin.toml.minisig").write_text(
                    sign_bytes(
                        maint, manifest, trusted_comment=release_trusted_comment(plugin.name, rel.version, 0)
                    )
                )
            versions[rel.version] = {
                "description": rel.description,
                "license": rel.license,
                "abi": rel.abi,
                "host": rel.host,
                "exports": rel.exports,
                "permissions": rel.permissions,
                "limits": {"fuel": 50_000_000, "memory": 16 << 20, "wall_time_ms": 2000},
                "dependencies": {},
                "manifest": {"path": f"{rel_dir}/plugin.toml", **pin(manifest)},
                "wasm": {"path": f"{rel_dir}/{plugin.name}.wasm", **pin(wasm)},
                "signers": [maint.key_id],
                "published_at": published,
                "yanked": {"reason": rel.yanked} if rel.yanked else None,
                "smoke": None
                if rel.smoke is None
                else [{"name": n, "fuel": f, "peak_memory": m} for n, f, m in rel.smoke],
                "authors": [plugin.maintainer],
                "keywords": rel.keywords,
                "homepage": None,
                "repository": f"https://example.org/{plugin.maintainer}/{plugin.name}",
            }
        doc = {"_type": "registry-plugin", "format_version": 2, "name": plugin.name, "versions": versions}
        documents.append(PluginDocument.parse(dump_canonical(doc), expected_name=plugin.name))
    meta = build_metadata(documents)
    for sha, data in meta.files.items():
        path = out / "meta" / sha[:2] / f"{sha}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    version = int(generated.strftime("%Y%m%d%H%M%S"))
    top = {
        "format_version": 2,
        "version": version,
        "generated_at": format_time(generated),
        "expires_at": format_time(expires),
        "root_version": len(chain),
        "registry": {
            "name": REGISTRY,
            "description": "UDF plugins for the Ferrite key-value database",
            "base_url": base_url,
            "host": {"name": "ferrite", "versions": ">=0.2.0, <1.0.0"},
        },
        "tree": {"sha256": meta.tree.sha256, "size": meta.tree.size},
        "catalog": {"sha256": meta.catalog.sha256, "size": meta.catalog.size},
        "counts": {"plugins": len(plugins), "releases": meta.releases},
    }
    top_bytes = dump_canonical(top)
    TopDocument.parse(top_bytes)  # the same rules as the Python client
    (out / "registry.json").write_bytes(top_bytes)
    signer = index_key or KEYS["index"]
    (out / "registry.json.minisig").write_text(
        sign_bytes(signer, top_bytes, trusted_comment=_sig_comment(REGISTRY, version))
    )
    if write_page:
        write_catalog(out, v1)
    catalog_path = out / "meta" / meta.catalog.sha256[:2] / f"{meta.catalog.sha256}.json"
    doc_paths = {n: out / "meta" / p.sha256[:2] / f"{p.sha256}.json" for n, p in meta.plugin_pins.items()}
    return Site(out, v1, top, catalog_path, doc_paths)


def tamper(path: Path, old: bytes, new: bytes) -> None:
    """Change bytes of a document in place (same length, same file name: only the digest can tell)."""
    data = path.read_bytes()
    assert old in data and len(old) == len(new)
    path.write_bytes(data.replace(old, new, 1))
