"""A small registry-format-2 site for the catalog's browser tests (FORMAT2-SPEC.md sections 1-5).

Signed with registry_tool.signing and roots made with registry_tool.trust.editing, so the page is
checked against the same signatures the Python verifier accepts.  Deterministic keys (fixed seeds);
times are relative to the real clock because the page checks expiry against the browser's clock.
Variants for the failure states: a registry signed by a key outside the index role, an expired
registry, a tampered catalog document.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from registry_tool.registry.catalog import write_catalog
from registry_tool.signing import SecretKey, release_trusted_comment, sign_bytes
from registry_tool.trust.editing import add_maintainer, derive, new_root
from registry_tool.trust.root import Root, format_time

REGISTRY = "ferrite-plugins"
LEAF_MAX = 64


def seed_key(label: str) -> SecretKey:
    seed = hashlib.sha256(f"registry-tool catalog fixture {label}".encode()).digest()
    return SecretKey.from_seed(seed, hashlib.sha256(seed).digest()[:8])


KEYS = {n: seed_key(n) for n in ("root-a", "root-b", "index", "ferritelabs", "community", "mallory")}


def canonical(doc: Any) -> bytes:
    return (json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


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
    smoke: list[tuple[str, int, int]] | None = None
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


def _tree(entries: dict[str, dict[str, Any]], prefix: str, write: Any) -> dict[str, Any]:
    """Hashed-prefix trie (FORMAT2-SPEC 3); returns the pin of the node for ``prefix``."""
    if len(entries) <= LEAF_MAX or len(prefix) >= 64:
        node = {"_type": "registry-node", "format_version": 2, "prefix": prefix, "plugins": entries}
    else:
        groups: dict[str, dict[str, dict[str, Any]]] = {}
        for name, p in entries.items():
            digit = hashlib.sha256(name.encode()).hexdigest()[len(prefix)]
            groups.setdefault(digit, {})[name] = p
        children = {d: _tree(g, prefix + d, write) for d, g in sorted(groups.items())}
        node = {"_type": "registry-node", "format_version": 2, "prefix": prefix, "children": children}
    return write(canonical(node))


def build_site(
    out: Path,
    *,
    plugins: list[Plugin] | None = None,
    now: datetime | None = None,
    expired: bool = False,
    index_key: SecretKey | None = None,
    base_url: str = "https://plugins.example.org/ferrite/",
    write_page: bool = True,
) -> Site:
    """Write a signed format-2 site into ``out`` (created) and the catalog page into it."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    plugins = sample_plugins() if plugins is None else plugins
    out.mkdir(parents=True, exist_ok=True)

    def write(data: bytes) -> dict[str, Any]:
        p = pin(data)
        path = out / "meta" / p["sha256"][:2] / f"{p['sha256']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return p

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
    (out / "root").mkdir(exist_ok=True)
    for n, data in ((1, v1), (2, v2)):
        (out / "root" / f"{n}.root.json").write_bytes(data)
        for k in root_keys:
            (out / "root" / f"{n}.root.json.{k.key_id}.minisig").write_text(
                sign_bytes(k, data, trusted_comment=f"registry-root\tregistry:{REGISTRY}\tversion:{n}")
            )

    generated = now - timedelta(days=10) if expired else now - timedelta(hours=1)
    expires = generated + timedelta(days=7)
    published = format_time(generated - timedelta(days=3))
    catalog: dict[str, Any] = {}
    leaves: dict[str, dict[str, Any]] = {}
    doc_paths: dict[str, Path] = {}
    releases_total = 0
    real_files = len(plugins) <= 50
    for plugin in plugins:
        maint = KEYS[plugin.maintainer]
        versions: dict[str, Any] = {}
        for rel in plugin.releases:
            releases_total += 1
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
        doc_pin = write(
            canonical(
                {"_type": "registry-plugin", "format_version": 2, "name": plugin.name, "versions": versions}
            )
        )
        doc_paths[plugin.name] = out / "meta" / doc_pin["sha256"][:2] / f"{doc_pin['sha256']}.json"
        leaves[plugin.name] = doc_pin
        live = [r for r in plugin.releases if not r.yanked]
        latest = live[-1] if live else plugin.releases[-1]
        catalog[plugin.name] = {
            "description": latest.description,
            "keywords": latest.keywords,
            "license": latest.license,
            "abi": latest.abi,
            "latest": latest.version if live else None,
            "versions": len(plugin.releases),
            "permissions": latest.permissions,
            "host": latest.host,
            "authors": [plugin.maintainer],
            "document": doc_pin,
        }
    tree_pin = _tree(leaves, "", write)
    catalog_pin = write(canonical({"_type": "registry-catalog", "format_version": 2, "plugins": catalog}))
    version = int(generated.strftime("%Y%m%d%H%M%S"))
    top = {
        "format_version": 2,
        "version": version,
        "generated_at": format_time(generated),
        "expires_at": format_time(expires),
        "root_version": 2,
        "registry": {
            "name": REGISTRY,
            "description": "UDF plugins for the Ferrite key-value database",
            "base_url": base_url,
            "host": {"name": "ferrite", "versions": ">=0.2.0, <1.0.0"},
        },
        "tree": tree_pin,
        "catalog": catalog_pin,
        "counts": {"plugins": len(plugins), "releases": releases_total},
    }
    top_bytes = canonical(top)
    (out / "registry.json").write_bytes(top_bytes)
    signer = index_key or KEYS["index"]
    (out / "registry.json.minisig").write_text(
        sign_bytes(signer, top_bytes, trusted_comment=_sig_comment(REGISTRY, version))
    )
    if write_page:
        write_catalog(out, v1)
    catalog_path = out / "meta" / catalog_pin["sha256"][:2] / f"{catalog_pin['sha256']}.json"
    return Site(out, v1, top, catalog_path, doc_paths)


def tamper(path: Path, old: bytes, new: bytes) -> None:
    """Change bytes of a document in place (same length, same file name: only the digest can tell)."""
    data = path.read_bytes()
    assert old in data and len(old) == len(new)
    path.write_bytes(data.replace(old, new, 1))
