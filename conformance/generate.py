"""Generate the conformance suite: fixed keys, format-2 site snapshots and cases (README.md).

Run `python conformance/generate.py` from the repository root to rewrite keys/, sites/ and
cases/; tests/conformance/test_reproducible.py checks that the committed files equal this output.
Everything is deterministic: keys come from fixed seeds, Ed25519 signatures are deterministic
(RFC 8032), every time is fixed, and nothing depends on the file system order.

The site writer below is deliberately independent of registry_tool.registry (the builder): it
follows FORMAT2-SPEC.md and conformance/README.md on its own, so a drift between the spec and
the builder shows up as a failing case instead of being copied into the suite.  Only key
handling, minisign signing and root editing are reused from the library.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from semantic_version import Version  # noqa: E402

from registry_tool.client.install import DEPENDENCY_ONLY  # noqa: E402
from registry_tool.manifest.units import milliseconds, parse_duration, parse_size  # noqa: E402
from registry_tool.signing import SecretKey, Signature, sign_bytes, sign_release, sign_yank  # noqa: E402
from registry_tool.trust.editing import (  # noqa: E402
    add_maintainer,
    derive,
    new_root,
    renew,
    revoke,
    rotate_keys,
    set_plugin_threshold,
)
from registry_tool.trust.root import Root  # noqa: E402

Json = dict[str, Any]
Files = dict[str, bytes]

REGISTRY = "conformance-registry"
SAMPLES = HERE.parent / "index" / "plugins"
NOW = "2026-11-27T12:00:00Z"
GENERATED = "2026-11-27T00:00:00Z"
EXPIRES = "2026-12-04T00:00:00Z"
V_BASE = 20261127000000
ROOT_EXPIRES = datetime(2036, 1, 1, tzinfo=UTC)
SIGN_TS = int(datetime(2026, 11, 20, tzinfo=UTC).timestamp())
PUBLISHED = "2026-11-20T00:00:00Z"
DEFAULT_LIMITS = {"fuel": 50_000_000, "memory": 16 * 1024 * 1024, "wall_time_ms": 2000}
LEAF_MAX = 2  # small on purpose: the sites exercise branch nodes (verifiers must not assume 64)
DEADLINE_SLOW = 1500
# A case whose one operation makes hundreds of transfers (dep-chain-150): far from the 10 s default.
DEADLINE_BULK = 50_000

LABELS = (
    "root-a",
    "root-b",
    "root-c",
    "root-d",
    "index",
    "index-b",
    "index-new",
    "alice",
    "bob",
    "carol",
    "mallory",
    "alice-new",
)


def seed_key(label: str) -> SecretKey:
    """seed = SHA-256("registry-tool conformance " + label); keynum = SHA-256(seed)[0:8]."""
    seed = hashlib.sha256(f"registry-tool conformance {label}".encode()).digest()
    return SecretKey.from_seed(seed, hashlib.sha256(seed).digest()[:8])


K = {label: seed_key(label) for label in LABELS}


def canonical(doc: Any) -> bytes:
    return (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pin_of(data: bytes) -> Json:
    return {"sha256": sha(data), "size": len(data)}


def meta_path(data: bytes) -> str:
    digest = sha(data)
    return f"meta/{digest[:2]}/{digest}.json"


def tree_key(name: str) -> str:
    return sha(name.encode())


def leb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tagged(wasm: bytes, tag: str) -> bytes:
    """The module plus a custom section naming ``tag``: a distinct, still valid module per release."""
    name = b"conformance"
    content = leb(len(name)) + name + tag.encode()
    return wasm + b"\x00" + leb(len(content)) + content


# --------------------------------------------------------------------------- root chain


def root_sig(key: SecretKey, data: bytes, version: int, registry: str = REGISTRY) -> bytes:
    comment = f"registry-root\tregistry:{registry}\tversion:{version}"
    return sign_bytes(key, data, trusted_comment=comment, untrusted_comment="conformance root").encode()


@dataclass(frozen=True)
class RootFile:
    data: bytes
    signers: tuple[SecretKey, ...]
    version: int  # the file name's version (a replay/skip attack puts other content under it)


def root_files(chain: list[RootFile]) -> Files:
    files: Files = {}
    for rf in chain:
        files[f"root/{rf.version}.root.json"] = rf.data
        for key in rf.signers:
            files[f"root/{rf.version}.root.json.{key.key_id}.minisig"] = root_sig(key, rf.data, rf.version)
    return files


ROOT_AB = (K["root-a"], K["root-b"])


def _r1(expires: datetime = ROOT_EXPIRES) -> bytes:
    v1 = new_root(
        REGISTRY,
        [K["root-a"].public_key, K["root-b"].public_key, K["root-c"].public_key],
        [K["index"].public_key],
        root_threshold=2,
        expires=expires,
    )
    for edit in (
        add_maintainer(
            "alice", [K["alice"].public_key], ["validate_email", "visit_counter", "twokeys", "sneaky"]
        ),
        add_maintainer("bob", [K["bob"].public_key], ["adler32"]),
        add_maintainer("carol", [K["carol"].public_key], ["semver-lab", "twokeys"]),
        set_plugin_threshold("twokeys", 2),
    ):
        v1 = derive(Root.parse(v1), edit, bump=False)
    return v1


R1 = _r1()
R1_OTHER = _r1(ROOT_EXPIRES + timedelta(days=1))  # another root 1: other bytes, the same keys


def next_root(
    prev: bytes, edit: Callable[[Json], None] | None = None, *, expires: datetime = ROOT_EXPIRES
) -> bytes:
    return derive(Root.parse(prev), edit or renew(), expires=expires)


def raw_root(prev: bytes, edit: Callable[[Json], None]) -> bytes:
    """The next version edited without validation (for chains that must fail a continuity rule)."""
    doc = json.loads(prev)
    doc["version"] += 1
    edit(doc)
    return (json.dumps(doc, indent=2) + "\n").encode()


R2 = next_root(R1)
R3 = next_root(R2)
REVOKED_AT = datetime(2026, 11, 22, tzinfo=UTC)


def revoke_alice(keep: bool) -> Callable[[Json], None]:
    """Revoke alice (twokeys first drops to threshold 1: one delegated key would be left)."""

    def edit(doc: Json) -> None:
        set_plugin_threshold("twokeys", 1)(doc)
        revoke(K["alice"].key_id, now=REVOKED_AT, keep_prior_releases=keep)(doc)

    return edit


R2_REVOKE_KEEP = next_root(R1, revoke_alice(True))
R2_REVOKE_DROP = next_root(R1, revoke_alice(False))


def _resign_alice(doc: Json) -> None:
    """alice revoked without keep_prior_releases, her validate_email delegated to a new key."""
    revoke_alice(False)(doc)
    add_maintainer("alice-new", [K["alice-new"].public_key], ["validate_email"])(doc)


R2_REVOKE_RESIGNED = next_root(R1, _resign_alice)
R2_ROT_INDEX = next_root(
    R1, rotate_keys("index", add=[K["index-new"].public_key], remove=[K["index"].key_id])
)
R2_INDEX2 = next_root(R1, rotate_keys("index", add=[K["index-b"].public_key], threshold=2))
# Steps that add index keys and remove none: the highest seen registry version stays (decision 6).
R2_INDEX_ADD = next_root(R1, rotate_keys("index", add=[K["index-b"].public_key]))
# The index key listed a second time, under another key id (same raw key: one key, nothing added).
INDEX_ALIAS = replace(K["index"].public_key, keynum=hashlib.sha256(b"index alias").digest()[:8])
R2_INDEX_ALIAS = next_root(R1, rotate_keys("index", add=[INDEX_ALIAS]))
# Root 2 adds index-new, root 3 removes the old index key: the walk over both resets it.
R2_INDEX_ADD_NEW = next_root(R1, rotate_keys("index", add=[K["index-new"].public_key]))
R3_INDEX_DROP_OLD = next_root(R2_INDEX_ADD_NEW, rotate_keys("index", remove=[K["index"].key_id]))
R2_ROT_ROOT = next_root(R1, rotate_keys("root", add=[K["root-d"].public_key], remove=[K["root-a"].key_id]))
R2_EXPIRED = next_root(R1, expires=datetime(2026, 11, 1, tzinfo=UTC))
R3_AFTER_EXPIRED = next_root(R2_EXPIRED)


def _rename(doc: Json) -> None:
    doc["registry"] = "other-registry"


def _drop_revocation(doc: Json) -> None:
    doc["revoked"] = []


def _key_newline(doc: Json) -> None:
    key = next(iter(doc["keys"].values()))
    key["public_key"] += "\n"  # a pattern ending in "$" still matches; decision 7 does not


def _spec_version_float(doc: Json) -> None:
    doc["spec_version"] = 1.0


R2_RENAMED = raw_root(R1, _rename)
R2_KEY_NEWLINE = raw_root(R1, _key_newline)
R2_SPEC_FLOAT = raw_root(R1, _spec_version_float)
R3_DROPS_REVOCATION = raw_root(R2_REVOKE_KEEP, _drop_revocation)


# Key ids and revocations across a step (decision 2): a key id names one public key for the whole
# chain, a revocation once made is fixed but for its reason (and keep_prior_releases true -> false),
# and a new one names only plugins the key was delegated and is dated by its version's expiry.
def impostor(label: str) -> SecretKey:
    """Another Ed25519 key under ``label``'s key number: the same key id, another public key."""
    seed = hashlib.sha256(f"registry-tool conformance impostor {label}".encode()).digest()
    return SecretKey.from_seed(seed, K[label].keynum)


def _rebind(label: str) -> Callable[[Json], None]:
    def edit(doc: Json) -> None:
        doc["keys"][K[label].key_id]["public_key"] = impostor(label).public_key.to_base64()

    return edit


def _revocation(key: SecretKey, version: int, plugins: list[str], at: str = "2026-11-22T00:00:00Z") -> Json:
    return {
        "keyid": key.key_id,
        "public_key": key.public_key.to_base64(),
        "revoked_in_version": version,
        "revoked_at": at,
        "keep_prior_releases": False,
        "plugins": plugins,
    }


def _revoked_entry(change: Callable[[Json], None]) -> Callable[[Json], None]:
    def edit(doc: Json) -> None:
        change(doc["revoked"][0])

    return edit


def _set(**fields: Any) -> Callable[[Json], None]:
    return lambda entry: entry.update(fields)


def _revoke_with(
    label: str, *, at: datetime = REVOKED_AT, plugins: list[str] | None = None
) -> Callable[[Json], None]:
    """Revoke ``label`` keeping prior releases (alice: twokeys first drops to threshold 1), then
    replace the revocation's plugins."""

    def edit(doc: Json) -> None:
        if label == "alice":
            set_plugin_threshold("twokeys", 1)(doc)
        revoke(K[label].key_id, now=at, keep_prior_releases=True)(doc)
        if plugins is not None:
            doc["revoked"][-1]["plugins"] = plugins

    return edit


R2_REBIND_ROOT = raw_root(R1, _rebind("root-c"))
R2_REBIND_INDEX = raw_root(R1, _rebind("index"))
R2_REBIND_ALICE = raw_root(R1, _rebind("alice"))
R2_REVOKED_ID_OF_KEPT_KEY = raw_root(
    R1, lambda doc: doc["revoked"].append(_revocation(impostor("alice"), 2, []))
)
R2_REVOKED_ID_TWICE = raw_root(
    R1,
    lambda doc: doc["revoked"].extend(
        [_revocation(K["mallory"], 2, []), _revocation(impostor("mallory"), 2, [])]
    ),
)
R3_REVOCATION_WIDENED = raw_root(
    R2_REVOKE_KEEP, _revoked_entry(lambda e: e.update(plugins=[*e["plugins"], "adler32"]))
)
R3_REVOCATION_NARROWED = raw_root(
    R2_REVOKE_KEEP, _revoked_entry(lambda e: e.update(plugins=[p for p in e["plugins"] if p != "sneaky"]))
)
R3_REVOCATION_BACKDATED = raw_root(R2_REVOKE_KEEP, _revoked_entry(_set(revoked_at="2026-11-01T00:00:00Z")))
ALICE_OTHER_ID = replace(K["alice"].public_key, keynum=hashlib.sha256(b"alice other id").digest()[:8])
R3_REVOCATION_REKEYED = raw_root(
    R2_REVOKE_KEEP,
    _revoked_entry(_set(keyid=ALICE_OTHER_ID.key_id, public_key=ALICE_OTHER_ID.to_base64())),
)
R3_REVOCATION_REASON_KEEP_FALSE = raw_root(
    R2_REVOKE_KEEP,
    _revoked_entry(_set(reason="the key leaked earlier than thought", keep_prior_releases=False)),
)
R2_REVOKE_BOB_UNDELEGATED = raw_root(R1, _revoke_with("bob", plugins=["adler32", "validate_email"]))
R2_REVOKE_BOB_AFTER_EXPIRY = raw_root(R1, _revoke_with("bob", at=datetime(2036, 1, 1, 0, 0, 1, tzinfo=UTC)))
R2_REVOKE_ALICE_SUBSET_AT_EXPIRY = raw_root(
    R1, _revoke_with("alice", at=ROOT_EXPIRES, plugins=["validate_email"])
)
CHAIN1 = [RootFile(R1, ROOT_AB, 1)]


def chain(*roots: bytes, signers: tuple[SecretKey, ...] = ROOT_AB) -> list[RootFile]:
    return [RootFile(R1, ROOT_AB, 1)] + [RootFile(r, signers, n) for n, r in enumerate(roots, start=2)]


# --------------------------------------------------------------------------- releases


@dataclass(frozen=True)
class Rel:
    name: str
    version: str
    files: dict[str, bytes]  # file name in the release folder -> bytes
    wasm_file: str
    entry: Json  # the plugin-document entry

    def path(self, file: str) -> str:
        return f"plugins/{self.name}/{self.version}/{file}"

    @property
    def manifest(self) -> bytes:
        return self.files["plugin.toml"]

    @property
    def wasm(self) -> bytes:
        return self.files[self.wasm_file]


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


@dataclass(frozen=True)
class Spec:
    """What a maintainer writes in plugin.toml (the generator's own manifest writer)."""

    name: str
    version: str
    sample: str  # module bytes from index/plugins/<sample>/1.0.0/<sample>.wasm, tagged per release
    exports: tuple[str, ...]
    description: str = "conformance test plugin"
    abi: str = "core"
    host: str | None = None  # [compatibility] host
    min_host: str | None = None
    permissions: tuple[tuple[str, bool], ...] = ()
    limits: tuple[tuple[str, Any], ...] = ()
    keywords: tuple[str, ...] = ("conformance",)
    signers: tuple[str, ...] = ("alice",)
    published_at: str = PUBLISHED
    yanked: str | None = None
    wasm_override: bytes | None = None
    # [dependencies] name = "range", or name = {version = "range", optional = bool} (the table form)
    dependencies: tuple[tuple[str, Any], ...] = ()


def _dependency_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + " }"


def required_dependencies(spec: Spec) -> Json:
    """What the build publishes: name -> range of every dependency that is not optional."""
    return {
        k: v if isinstance(v, str) else v["version"]
        for k, v in spec.dependencies
        if isinstance(v, str) or v.get("optional") is not True
    }


def _toml_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)


def manifest_text(spec: Spec, wasm_file: str, wasm: bytes) -> bytes:
    lines = [
        "[plugin]",
        f'name = "{spec.name}"',
        f'version = "{spec.version}"',
        f"description = {json.dumps(spec.description)}",
        'authors = ["conformance"]',
        'license = "Apache-2.0"',
        f'abi = "{spec.abi}"',
        f"keywords = {toml_list(list(spec.keywords))}",
    ]
    if spec.min_host:
        lines.append(f'min_host_version = "{spec.min_host}"')
    if spec.host:
        lines += ["", "[compatibility]", f"host = {json.dumps(spec.host)}"]
    lines += ["", "[artifact]", f'file = "{wasm_file}"', f'sha256 = "{sha(wasm)}"', f"size = {len(wasm)}"]
    lines += ["", "[exports]", f"functions = {toml_list(list(spec.exports))}"]
    if spec.permissions:
        lines += ["", "[permissions]"] + [f"{k} = {'true' if v else 'false'}" for k, v in spec.permissions]
    if spec.limits:
        lines += ["", "[limits]"] + [f"{k} = {_toml_value(v)}" for k, v in spec.limits]
    if spec.dependencies:
        lines += ["", "[dependencies]"] + [f"{k} = {_dependency_value(v)}" for k, v in spec.dependencies]
    return ("\n".join(lines) + "\n").encode()


def effective_limits(spec: Spec) -> Json:
    out = dict(DEFAULT_LIMITS)
    for key, value in spec.limits:
        if key == "fuel":
            out["fuel"] = int(value)
        elif key == "memory":
            out["memory"] = parse_size(value)
        elif key == "wall_time":
            out["wall_time_ms"] = milliseconds(parse_duration(value))
    return out


def host_range(spec: Spec) -> str | None:
    if spec.host:
        return spec.host
    return f">={spec.min_host}" if spec.min_host else None


def make_release(spec: Spec) -> Rel:
    wasm_file = f"{spec.name.replace('-', '_')}.wasm"
    base = (SAMPLES / spec.sample / "1.0.0" / f"{spec.sample}.wasm").read_bytes()
    wasm = spec.wasm_override or tagged(base, f"{spec.name} {spec.version}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / wasm_file).write_bytes(wasm)
        (folder / "plugin.toml").write_bytes(manifest_text(spec, wasm_file, wasm))
        for signer in spec.signers:
            sign_release(folder, K[signer], timestamp=SIGN_TS)
        if spec.yanked is not None:
            reason = json.dumps(spec.yanked)
            yank = f'[yank]\nname = "{spec.name}"\nversion = "{spec.version}"\nreason = {reason}\n'
            (folder / "yank.toml").write_text(yank)
            sign_yank(folder, K[spec.signers[0]], timestamp=SIGN_TS)
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
    manifest = files["plugin.toml"]
    entry: Json = {
        "description": spec.description,
        "license": "Apache-2.0",
        "abi": spec.abi,
        "host": host_range(spec),
        "exports": list(spec.exports),
        "permissions": sorted(k for k, v in spec.permissions if v),
        "limits": effective_limits(spec),
        "dependencies": required_dependencies(spec),
        "manifest": {"path": f"plugins/{spec.name}/{spec.version}/plugin.toml", **pin_of(manifest)},
        "wasm": {"path": f"plugins/{spec.name}/{spec.version}/{wasm_file}", **pin_of(wasm)},
        "signers": sorted(K[s].key_id for s in spec.signers),
        "published_at": spec.published_at,
        "yanked": None if spec.yanked is None else {"reason": spec.yanked},
        "smoke": None,
        "authors": ["conformance"],
        "keywords": list(spec.keywords),
        "homepage": None,
        "repository": None,
    }
    return Rel(spec.name, spec.version, files, wasm_file, entry)


def email(version: str, **kw: Any) -> Spec:
    return Spec(
        "validate_email",
        version,
        "validate_email",
        ("validate_email",),
        description="RFC 5322 email address validation",
        min_host="0.2.0",
        permissions=(("keys", False), ("network", False)),
        limits=(("fuel", 50_000_000), ("memory", "16MiB")),
        keywords=("email", "validation"),
        **kw,
    )


def lab(version: str, **kw: Any) -> Spec:
    return Spec("semver-lab", version, "adler32", ("adler32", "add_mod"), signers=("carol",), **kw)


SPECS: dict[str, Spec] = {
    "validate_email 1.0.0": email("1.0.0"),
    "validate_email 1.1.0": email("1.1.0"),
    "visit_counter 1.0.0": Spec(
        "visit_counter",
        "1.0.0",
        "visit_counter",
        ("next_visit",),
        description="Next value of a visit counter kept in the host's key-value store",
        min_host="0.2.0",
        permissions=(("keys", True), ("network", False)),
        limits=(("fuel", 5_000_000), ("memory", "1MiB"), ("wall_time", "500ms")),
        keywords=("counter", "keys"),
    ),
    "adler32 1.0.0": Spec(
        "adler32",
        "1.0.0",
        "adler32",
        ("adler32", "add_mod"),
        description="Adler-32 checksum of a byte string",
        host=">=0.2.0, <0.9.0",
        limits=(("fuel", 10_000_000), ("memory", "1MiB")),
        signers=("bob",),
    ),
    "twokeys 1.0.0": Spec("twokeys", "1.0.0", "adler32", ("adler32", "add_mod"), signers=("alice", "carol")),
}
for _v, _kw in [
    ("0.1.0", {}),
    ("0.1.5", {}),
    ("0.2.0", {}),
    ("0.2.3", {}),
    ("0.3.0-alpha.1", {}),
    ("1.0.0", {}),
    ("1.2.0", {}),
    ("1.2.5", {"host": ">=0.5.0"}),
    ("1.3.0-beta.1", {}),
    ("1.3.0", {"yanked": "wrong checksum for empty input"}),
    ("1.4.0", {"host": ">=0.9.0"}),
    ("2.0.0-rc.1", {}),
]:
    SPECS[f"semver-lab {_v}"] = lab(_v, **_kw)

RELS: dict[str, Rel] = {key: make_release(spec) for key, spec in SPECS.items()}
BASE_RELEASES = list(RELS.values())


def rel(key: str) -> Rel:
    return RELS[key]


# --------------------------------------------------------------------------- the site writer


@dataclass
class Rendered:
    files: Files
    top: Json
    nodes: dict[str, str]  # prefix -> meta path
    docs: dict[str, str]  # plugin name -> meta path


@dataclass
class Site:
    """A format-2 site: everything a publication serves, with hooks that make it hostile."""

    roots: list[RootFile] = field(default_factory=lambda: list(CHAIN1))
    releases: list[Rel] = field(default_factory=lambda: list(BASE_RELEASES))
    version: int = V_BASE
    generated_at: str = GENERATED
    expires_at: str = EXPIRES
    root_version: int | None = None
    name: str = REGISTRY
    index_keys: tuple[SecretKey, ...] = (K["index"],)
    doc_edit: Callable[[str, Json], None] | None = None  # plugin documents, before serialising
    docs_edit: Callable[[dict[str, bytes]], None] | None = None  # serialised documents by name
    node_edit: Callable[[str, Json], None] | None = None  # tree nodes by prefix
    top_edit: Callable[[Json], None] | None = None
    top_bytes: Callable[[bytes], bytes] | None = None  # the signed bytes
    post: Callable[[Rendered], None] | None = None  # what the server changes after signing


def plugin_documents(site: Site) -> dict[str, Json]:
    docs: dict[str, Json] = {}
    for r in site.releases:
        doc = docs.setdefault(
            r.name, {"_type": "registry-plugin", "format_version": 2, "name": r.name, "versions": {}}
        )
        doc["versions"][r.version] = copy.deepcopy(r.entry)
    return docs


def catalog(docs: dict[str, Json], pins: dict[str, Json]) -> Json:
    plugins: Json = {}
    for name, doc in docs.items():
        versions = sorted(doc["versions"], key=Version)
        live = [v for v in versions if doc["versions"][v]["yanked"] is None]
        shown = doc["versions"][live[-1] if live else versions[-1]]
        plugins[name] = {
            "description": shown["description"],
            "keywords": shown["keywords"],
            "license": shown["license"],
            "abi": shown["abi"],
            "latest": live[-1] if live else None,
            "versions": len(versions),
            "permissions": shown["permissions"],
            "host": shown["host"],
            "authors": shown["authors"],
            "document": pins[name],
        }
    return {"_type": "registry-catalog", "format_version": 2, "plugins": plugins}


def render(site: Site) -> Rendered:
    files: Files = root_files(site.roots)
    for r in site.releases:
        for file, data in r.files.items():
            files[r.path(file)] = data
    docs = plugin_documents(site)
    if site.doc_edit:
        for name, doc in docs.items():
            site.doc_edit(name, doc)
    doc_bytes = {name: canonical(doc) for name, doc in docs.items()}
    catalog_pins = {name: pin_of(data) for name, data in doc_bytes.items()}
    if site.docs_edit:
        site.docs_edit(doc_bytes)
    meta: Files = {}
    doc_paths: dict[str, str] = {}
    for name, data in doc_bytes.items():
        doc_paths[name] = meta_path(data)
        meta[doc_paths[name]] = data
    nodes: dict[str, str] = {}

    def node(prefix: str, names: list[str]) -> Json:
        if len(names) <= LEAF_MAX or len(prefix) == 64:
            body: Json = {
                "_type": "registry-node",
                "format_version": 2,
                "prefix": prefix,
                "plugins": {n: pin_of(doc_bytes[n]) for n in names},
            }
        else:
            children: Json = {}
            for digit in "0123456789abcdef":
                group = [n for n in names if tree_key(n)[len(prefix)] == digit]
                if group:
                    children[digit] = node(prefix + digit, group)
            body = {"_type": "registry-node", "format_version": 2, "prefix": prefix, "children": children}
        if site.node_edit:
            site.node_edit(prefix, body)
        data = canonical(body)
        nodes[prefix] = meta_path(data)
        meta[nodes[prefix]] = data
        return pin_of(data)

    tree_pin = node("", sorted(doc_bytes))
    cat = canonical(catalog(docs, catalog_pins))
    meta[meta_path(cat)] = cat
    top: Json = {
        "format_version": 2,
        "version": site.version,
        "generated_at": site.generated_at,
        "expires_at": site.expires_at,
        "root_version": site.root_version or len(site.roots),
        "registry": {
            "name": site.name,
            "description": "conformance suite registry",
            "base_url": "http://127.0.0.1/",
            "host": {"name": "ferrite", "versions": ">=0.1.0, <2.0.0"},
        },
        "tree": tree_pin,
        "catalog": pin_of(cat),
        "counts": {"plugins": len(docs), "releases": len(site.releases)},
    }
    if site.top_edit:
        site.top_edit(top)
    data = canonical(top)
    if site.top_bytes:
        data = site.top_bytes(data)
    files.update(meta)
    files["registry.json"] = data
    for i, key in enumerate(site.index_keys):
        comment = f"registry:{site.name}\tversion:{site.version}\tfile:registry.json"
        name = "registry.json.minisig" if i == 0 else f"registry.json.{key.key_id}.minisig"
        files[name] = sign_bytes(
            key, data, trusted_comment=comment, untrusted_comment="conformance index"
        ).encode()
    out = Rendered(files, top, nodes, doc_paths)
    if site.post:
        site.post(out)
    return out


# --------------------------------------------------------------------------- sites and cases

SITES: dict[str, Rendered] = {}
CASES: list[Json] = []


def site(site_id: str, spec: Site | None = None) -> str:
    if site_id not in SITES:
        SITES[site_id] = render(spec or Site())
    return f"sites/{site_id}"


def OK(**kw: Any) -> Json:
    return {"ok": True, **kw}


def ERR(cls: str) -> Json:
    return {"ok": False, "error": cls}


def pin(s: str, expect: Json | None = None, root: str = "root/1.root.json", now: str = NOW) -> Json:
    return {"op": "pin", "site": s, "root": f"{s}/{root}", "now": now, "expect": expect or OK(root_version=1)}


def refresh(s: str, expect: Json, now: str = NOW, **kw: Any) -> Json:
    return {"op": "refresh", "site": s, "now": now, **kw, "expect": expect}


def install(s: str, spec: str, expect: Json, now: str = NOW, **kw: Any) -> Json:
    return {"op": "install", "site": s, "spec": spec, "now": now, **kw, "expect": expect}


def verify(expect: Json, now: str = NOW) -> Json:
    return {"op": "verify", "now": now, "expect": expect}


def installed(key: str, site_id: str = "base", version: int = V_BASE) -> Json:
    r = rel(key) if isinstance(key, str) else key
    return OK(
        registry_version=version,
        name=r.name,
        version=r.version,
        manifest_sha256=sha(r.manifest),
        wasm_sha256=sha(r.wasm),
    )


def case(
    case_id: str, threat: str, description: str, steps: list[Json], requires: tuple[str, ...] = ()
) -> None:
    assert all(c["id"] != case_id for c in CASES), case_id
    CASES.append(
        {
            "id": case_id,
            "description": description,
            "threat": threat,
            "requires": list(requires),
            "steps": steps,
        }
    )


def attack(
    case_id: str,
    threat: str,
    description: str,
    site_id: str,
    spec: Site,
    expect: str,
    op: str = "refresh",
    **kw: Any,
) -> None:
    """One hostile site, a fresh client pinned to root 1, one operation that must be refused."""
    s = site(site_id, spec)
    step = refresh(s, ERR(expect), **kw) if op == "refresh" else install(s, op, ERR(expect), **kw)
    case(case_id, threat, description, [pin(s), step])


def with_releases(*replacements: Rel, drop: tuple[str, ...] = ()) -> list[Rel]:
    """The base releases with some replaced (same name and version) or dropped."""
    out = []
    for r in BASE_RELEASES:
        key = f"{r.name} {r.version}"
        if key in drop:
            continue
        out.append(next((x for x in replacements if (x.name, x.version) == (r.name, r.version)), r))
    for x in replacements:
        if all((x.name, x.version) != (r.name, r.version) for r in out):
            out.append(x)
    return out


def variant(
    key: str | Rel,
    files: dict[str, bytes | None] | None = None,
    entry: Json | None = None,
    repin: bool = False,
) -> Rel:
    """A copy of a release with files replaced/removed and entry fields replaced; ``repin`` makes
    the entry pin the new manifest/wasm bytes (an attacker holding the index key)."""
    r = rel(key) if isinstance(key, str) else key
    new_files = dict(r.files)
    for name, data in (files or {}).items():
        if data is None:
            new_files.pop(name, None)
        else:
            new_files[name] = data
    e = copy.deepcopy(r.entry)
    e.update(copy.deepcopy(entry or {}))
    out = replace(r, files=new_files, entry=e)
    if repin:
        e["manifest"] = {**e["manifest"], **pin_of(out.files["plugin.toml"])}
        e["wasm"] = {**e["wasm"], **pin_of(out.files[out.wasm_file])}
    return out


def unsigned(r: Rel) -> dict[str, bytes | None]:
    return {n: None for n in r.files if n.startswith("plugin.toml.") and n.endswith(".minisig")}


def signed_by(key: str | Rel, *signers: tuple[SecretKey, str]) -> Rel:
    """The release with its manifest signatures replaced by (key, trusted comment) pairs."""
    r = rel(key) if isinstance(key, str) else key
    files: dict[str, bytes | None] = unsigned(r)
    for i, (k, comment) in enumerate(signers):
        name = "plugin.toml.minisig" if i == 0 else f"plugin.toml.{k.key_id}.minisig"
        files[name] = sign_bytes(k, r.manifest, trusted_comment=comment).encode()
    return variant(r, files, {"signers": sorted({k.key_id for k, _ in signers})})


def comment(name: str, version: str) -> str:
    return f"timestamp:{SIGN_TS}\tfile:plugin.toml\tplugin:{name}\tversion:{version}"


def legacy_sig(key: SecretKey, data: bytes, text: str) -> bytes:
    raw = key.sign_raw(data)
    return (
        Signature(b"Ed", key.keynum, raw, text, key.sign_raw(raw + text.encode()), "legacy")
        .to_text()
        .encode()
    )


def edit_entry(name: str, version: str, change: Callable[[Json], None]) -> Callable[[str, Json], None]:
    def edit(doc_name: str, doc: Json) -> None:
        if doc_name == name:
            change(doc["versions"][version])

    return edit


def set_fields(**fields: Any) -> Callable[[Json], None]:
    def change(entry: Json) -> None:
        for key, value in fields.items():
            if isinstance(value, dict) and isinstance(entry.get(key), dict):
                entry[key] = {**entry[key], **value}
            else:
                entry[key] = value

    return change


def post_file(path: str, change: Callable[[bytes], bytes | None]) -> Callable[[Rendered], None]:
    def post(out: Rendered) -> None:
        data = change(out.files[path])
        if data is None:
            del out.files[path]
        else:
            out.files[path] = data

    return post


def sub(old: bytes, new: bytes, count: int = 1) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        assert old in data, (old, data[:200])
        return data.replace(old, new, count)

    return change


E10, E11 = "validate_email 1.0.0", "validate_email 1.1.0"
EMAIL_INSTALLED = installed(E11)


# ---------------------------------------------------------------- root chain


def root_cases() -> None:
    s = site("chain-1-2-3", Site(roots=chain(R2, R3)))
    case(
        "root-chain-walk",
        "root-chain",
        "the client walks root 1 -> 2 -> 3, each step signed by both thresholds",
        [pin(s), refresh(s, OK(registry_version=V_BASE, root_version=3))],
    )
    attack(
        "root-version-skip",
        "root-chain",
        "root/2.root.json holds version 3 (a skipped version)",
        "root-skip",
        Site(roots=[*CHAIN1, RootFile(R3, ROOT_AB, 2)]),
        "root-chain",
    )
    attack(
        "root-version-replay",
        "root-chain",
        "root/2.root.json replays version 1",
        "root-replay",
        Site(roots=[*CHAIN1, RootFile(R1, ROOT_AB, 2)]),
        "root-chain",
    )
    attack(
        "root-continuity-renamed",
        "root-chain",
        "root 2 renames the registry",
        "root-renamed",
        Site(roots=chain(R2_RENAMED)),
        "root-chain",
    )
    attack(
        "root-public-key-newline",
        "root-chain",
        "root 2 holds a public key with a trailing newline (signed by the root threshold)",
        "root-key-newline",
        Site(roots=chain(R2_KEY_NEWLINE)),
        "root-chain",
    )
    attack(
        "root-spec-version-float",
        "root-chain",
        "root 2's spec_version is 1.0, not the integer 1",
        "root-spec-float",
        Site(roots=chain(R2_SPEC_FLOAT)),
        "root-chain",
    )
    attack(
        "root-continuity-revocation-dropped",
        "root-chain",
        "root 3 silently drops the revocation root 2 made (a revoked key would come back)",
        "root-drops-revocation",
        Site(roots=chain(R2_REVOKE_KEEP, R3_DROPS_REVOCATION)),
        "root-chain",
    )
    root_step_rule_cases()
    attack(
        "root-tampered",
        "root-chain",
        "root 2 changed after it was signed (expiry moved)",
        "root-tampered",
        Site(roots=chain(R2), post=post_file("root/2.root.json", sub(b"2036-01-01", b"2037-01-01"))),
        "root-chain",
    )
    attack(
        "root-one-of-two-signatures",
        "root-chain",
        "root 2 signed by one key of a 2-of-3 root role",
        "root-one-sig",
        Site(roots=chain(R2, signers=(K["root-a"],))),
        "root-chain",
    )
    attack(
        "root-unsigned",
        "root-chain",
        "root 2 without any signature",
        "root-unsigned",
        Site(roots=chain(R2, signers=())),
        "root-chain",
    )
    attack(
        "root-signed-by-outsiders",
        "root-chain",
        "root 2 signed by the index key and an unknown key",
        "root-outsiders",
        Site(roots=chain(R2, signers=(K["index"], K["mallory"]))),
        "root-chain",
    )
    attack(
        "root-signature-unkeyed-name",
        "root-chain",
        "root 2 is signed by root-a (keyed name) and root-b, whose valid signature is served only as "
        "root/2.root.json.minisig: root versions use only the keyed name (trust.md section 4), so 1 of 2",
        "root-unkeyed-sig",
        Site(roots=chain(R2), post=_unkeyed_root_sig),
        "root-chain",
    )
    attack(
        "root-duplicate-signature",
        "root-chain",
        "root 2 carries two signature files by the same root key (counts once: 1 of 2)",
        "root-dup-sig",
        Site(roots=chain(R2, signers=(K["root-a"],)), post=_dup_root_sig),
        "root-chain",
    )
    s = site("root-rotate-ok", Site(roots=chain(R2_ROT_ROOT, signers=(K["root-b"], K["root-c"]))))
    case(
        "root-rotation-both-thresholds",
        "root-chain",
        "root 2 replaces root key a by d; signed by b and c it meets the old and the new root role",
        [pin(s), refresh(s, OK(registry_version=V_BASE, root_version=2))],
    )
    attack(
        "root-rotation-new-keys-only",
        "root-chain",
        "root 2 (root role b, c, d) signed by c and d: the old role (a, b, c) has only one signature",
        "root-rotate-new-only",
        Site(roots=chain(R2_ROT_ROOT, signers=(K["root-c"], K["root-d"]))),
        "root-chain",
    )
    attack(
        "root-rotation-old-keys-only",
        "root-chain",
        "root 2 (root role b, c, d) signed by a and b: the new role has only one signature",
        "root-rotate-old-only",
        Site(roots=chain(R2_ROT_ROOT, signers=ROOT_AB)),
        "root-chain",
    )
    attack(
        "root-expired-final",
        "root-expired",
        "the newest root (2) expired before now",
        "root-expired",
        Site(roots=chain(R2_EXPIRED)),
        "root-expired",
    )
    s = site("root-expired-middle", Site(roots=chain(R2_EXPIRED, R3_AFTER_EXPIRED)))
    case(
        "root-expired-intermediate-ok",
        "root-chain",
        "an expired intermediate root does not stop the walk",
        [pin(s), refresh(s, OK(registry_version=V_BASE, root_version=3))],
    )
    s = site("base")
    case(
        "root-expired-pinned",
        "root-expired",
        "the pinned root 1 is the newest and has expired (now = 2036)",
        [pin(s, now="2036-06-01T00:00:00Z"), refresh(s, ERR("root-expired"), now="2036-06-01T00:00:00Z")],
    )
    s = site("chain-1-2", Site(roots=chain(R2)))
    case(
        "root-next-500-is-not-the-end",
        "transport",
        "root/2.root.json answers 500: a network error, never the end of the chain",
        [pin(s), refresh(s, ERR("network"), serve={"root/2.root.json": "500"})],
    )
    case(
        "root-next-endless",
        "endless-data",
        "root/2.root.json streams without end (cap 1 MiB)",
        [pin(s), refresh(s, ERR("endless-data"), serve={"root/2.root.json": "endless"})],
    )
    bad = b'{"_type": "registry-root", "version": 2,'
    attack(
        "root-malformed-json",
        "root-chain",
        "root 2 is signed but not JSON",
        "root-malformed",
        Site(roots=[*CHAIN1, RootFile(bad, ROOT_AB, 2)]),
        "root-chain",
    )
    dup = R2.replace(b"{\n", b'{\n  "registry": "conformance-registry",\n', 1)
    attack(
        "root-duplicate-member",
        "root-chain",
        "root 2 is signed but has a duplicate member name",
        "root-dup-member",
        Site(roots=[*CHAIN1, RootFile(dup, ROOT_AB, 2)]),
        "root-chain",
    )
    s = site("root-self-one-sig", Site(roots=[RootFile(R1, (K["root-a"],), 1)]))
    case(
        "pin-root-self-threshold",
        "root-chain",
        "pinning root 1 needs a threshold of its own root role; the site has one of two signatures",
        [pin(s, ERR("root-chain"))],
    )
    s = site("root-garbage", Site(roots=[RootFile(b"not a root\n", ROOT_AB, 1)]))
    case(
        "pin-root-malformed",
        "root-chain",
        "the root file given to pin is not root metadata",
        [pin(s, ERR("root-chain"))],
    )
    s = site("base")
    s2 = site("chain-1-2")
    case(
        "pin-root-2-directly",
        "root-chain",
        "a client may pin a later root version (here 2) and walk from it",
        [
            pin(s2, OK(root_version=2), root="root/2.root.json"),
            refresh(s2, OK(registry_version=V_BASE, root_version=2)),
        ],
    )

    # index key rotation and fast-forward recovery
    lower = dict(
        version=20261120000000, generated_at="2026-11-26T00:00:00Z", expires_at="2026-12-03T00:00:00Z"
    )
    rot = site("rot-index", Site(roots=chain(R2_ROT_INDEX), index_keys=(K["index-new"],), **lower))
    case(
        "index-rotation-fast-forward",
        "rollback",
        "root 2 rotates the index key; the new key's first registry.json has a lower version: the "
        "highest seen version is reset (fast-forward recovery) and it is accepted",
        [
            pin(s),
            refresh(s, OK(registry_version=V_BASE, root_version=1)),
            refresh(rot, OK(registry_version=20261120000000, root_version=2)),
        ],
    )
    old = site("rot-index-old-key", Site(roots=chain(R2_ROT_INDEX), **lower))
    case(
        "index-rotation-old-key-refused",
        "signature",
        "after root 2 rotated the index key, a registry.json signed by the removed key is refused",
        [pin(old), refresh(old, ERR("bad-signature"))],
    )
    # a step that only adds index keys keeps the highest seen version (decision 6)
    added = site("index-add-lower", Site(roots=chain(R2_INDEX_ADD), **lower))
    case(
        "index-key-added-rollback",
        "rollback",
        "root 2 adds a second index key and keeps the old one; a mirror serves root 2 with an older, "
        "unexpired registry.json signed by the old key: still a rollback (no key was removed, so the "
        "highest seen version is not reset), on refresh and on install",
        [
            pin(s),
            refresh(s, OK(registry_version=V_BASE, root_version=1)),
            refresh(added, ERR("rollback")),
            install(added, "validate_email", ERR("rollback")),
        ],
    )
    both = site("index2-lower", Site(roots=chain(R2_INDEX2), index_keys=(K["index"], K["index-b"]), **lower))
    case(
        "index-key-added-threshold-raised-rollback",
        "rollback",
        "root 2 adds a second index key and raises the index threshold to 2; an older registry.json "
        "signed by both keys is still a rollback (a threshold change resets nothing)",
        [
            pin(s),
            refresh(s, OK(registry_version=V_BASE, root_version=1)),
            refresh(both, ERR("rollback")),
        ],
    )
    alias = site("index-alias-lower", Site(roots=chain(R2_INDEX_ALIAS), **lower))
    case(
        "index-key-listed-twice-rollback",
        "rollback",
        "root 2 lists the index key a second time under another key id (the same raw key): the "
        "index role's keys are unchanged, so an older registry.json is a rollback",
        [
            pin(s),
            refresh(s, OK(registry_version=V_BASE, root_version=1)),
            refresh(alias, ERR("rollback")),
            install(alias, "validate_email", ERR("rollback")),
        ],
    )
    two_steps = site(
        "index-add-then-drop-lower",
        Site(roots=chain(R2_INDEX_ADD_NEW, R3_INDEX_DROP_OLD), index_keys=(K["index-new"],), **lower),
    )
    case(
        "index-rotation-two-steps-fast-forward",
        "rollback",
        "root 2 adds index-new, root 3 removes the old index key: the walk over both removed a key, "
        "so the highest seen version is reset and the new key's lower registry.json is accepted",
        [
            pin(s),
            refresh(s, OK(registry_version=V_BASE, root_version=1)),
            refresh(two_steps, OK(registry_version=20261120000000, root_version=3)),
        ],
    )
    low = site("base-lower", Site(**lower))
    case(
        "rollback-without-rotation",
        "rollback",
        "the same lower version without an index key rotation is a rollback",
        [pin(s), refresh(s, OK(registry_version=V_BASE, root_version=1)), refresh(low, ERR("rollback"))],
    )
    frozen = site(
        "rot-index-expired",
        Site(
            roots=chain(R2_ROT_INDEX),
            index_keys=(K["index-new"],),
            version=V_BASE + 1,
            expires_at="2026-11-27T06:00:00Z",
        ),
    )
    case(
        "root-persisted-only-on-success",
        "root-chain",
        "a refresh that walks to root 2 but then fails (freeze) keeps root 1 trusted",
        [pin(s), refresh(frozen, ERR("freeze")), refresh(s, OK(registry_version=V_BASE, root_version=1))],
    )
    ahead = site("pin-again-ahead", Site(roots=chain(R2_REVOKE_DROP), version=V_BASE + 1))
    case(
        "pin-again-keeps-state",
        "rollback",
        "a host pins root 1 again after a refresh reached root 2 (which revokes alice) and registry "
        "version V+1: root 2 and the rollback floor stay (decision 1), so the old publication (root "
        "1 only, version V) is then a rollback",
        [
            pin(s),
            refresh(ahead, OK(registry_version=V_BASE + 1, root_version=2)),
            pin(s, OK(root_version=2)),
            refresh(s, ERR("rollback")),
        ],
    )
    other = site("pin-other-root", Site(roots=[RootFile(R1_OTHER, ROOT_AB, 1)]))
    case(
        "pin-another-root-replaces-state",
        "root-chain",
        "after a refresh reached root 2 and registry version V+1, a host pins another root 1 (other "
        "bytes: a recovery root after a compromise): the state is replaced (decision 1), root 1 and "
        "a floor of 0, so the publication of version V verifies under it",
        [
            pin(s),
            refresh(ahead, OK(registry_version=V_BASE + 1, root_version=2)),
            pin(other, OK(root_version=1)),
            refresh(other, OK(registry_version=V_BASE, root_version=1)),
        ],
    )
    attack(
        "top-root-version-ahead",
        "malformed",
        "registry.json names root version 2 but the chain ends at 1",
        "top-root-ahead",
        Site(root_version=2),
        "malformed",
    )
    s = site("top-root-behind", Site(roots=chain(R2), root_version=1))
    case(
        "top-root-version-behind-ok",
        "root-chain",
        "registry.json signed under root 1 while the chain is at 2 (same index key) is accepted",
        [pin(s), refresh(s, OK(registry_version=V_BASE, root_version=2))],
    )


def root_step_rule_cases() -> None:
    """Decision 2's key id and revocation rules of a chain step (docs/trust.md 5.1 rule 7, 5.5 step 4)."""
    attack(
        "root-key-id-rebound-root-role",
        "root-chain",
        "root 2 (signed by root-a and root-b) keeps root-c's key id in the root role but binds it to "
        "another public key: a trusted key swapped under an unchanged id",
        "root-rebind-root",
        Site(roots=chain(R2_REBIND_ROOT)),
        "root-chain",
    )
    attack(
        "root-key-id-rebound-index-role",
        "root-chain",
        "root 2 binds the index key's id to another public key, which signs registry.json: every "
        "id-based view of the step shows no change",
        "root-rebind-index",
        Site(roots=chain(R2_REBIND_INDEX), index_keys=(impostor("index"),)),
        "root-chain",
    )
    alice_impostor = impostor("alice")
    attack(
        "root-key-id-rebound-maintainer",
        "root-chain",
        "root 2 binds maintainer alice's key id to another public key, which signs validate_email "
        "1.1.0; installing it is refused at the root step",
        "root-rebind-maintainer",
        Site(
            roots=chain(R2_REBIND_ALICE),
            releases=with_releases(signed_by(E11, (alice_impostor, comment("validate_email", "1.1.0")))),
        ),
        "root-chain",
        op="validate_email",
    )
    attack(
        "root-revoked-key-id-of-kept-key",
        "root-chain",
        "root 2 revokes a key whose key id is that of alice's key, which it keeps (another public "
        "key under a trusted id: within one root a key id names one public key)",
        "root-revoked-id-kept",
        Site(roots=chain(R2_REVOKED_ID_OF_KEPT_KEY)),
        "root-chain",
    )
    attack(
        "root-revoked-key-id-twice",
        "root-chain",
        "root 2 revokes two different public keys under one key id",
        "root-revoked-id-twice",
        Site(roots=chain(R2_REVOKED_ID_TWICE)),
        "root-chain",
    )
    for case_id, site_id, root3, what in (
        (
            "root-continuity-revocation-widened",
            "root-revocation-widened",
            R3_REVOCATION_WIDENED,
            "adds adler32 to the plugins of alice's revocation (with keep_prior_releases her old "
            "signatures would count for bob's plugin)",
        ),
        (
            "root-continuity-revocation-plugin-dropped",
            "root-revocation-narrowed",
            R3_REVOCATION_NARROWED,
            "drops sneaky from the plugins of alice's revocation (the set of plugins is fixed)",
        ),
        (
            "root-continuity-revocation-backdated",
            "root-revocation-backdated",
            R3_REVOCATION_BACKDATED,
            "moves revoked_at of alice's revocation from 2026-11-22 to 2026-11-01",
        ),
        (
            "root-continuity-revocation-key-id-changed",
            "root-revocation-rekeyed",
            R3_REVOCATION_REKEYED,
            "keeps alice's revocation (same public key) under another key id",
        ),
    ):
        attack(
            case_id,
            "root-chain",
            f"root 2 revokes alice; root 3 {what}",
            site_id,
            Site(roots=chain(R2_REVOKE_KEEP, root3)),
            "root-chain",
        )
    attack(
        "root-revocation-new-undelegated-plugin",
        "root-chain",
        "root 2 revokes bob (delegated adler32) keeping prior releases for adler32 and validate_email: "
        "a revocation would delegate a plugin the key never had",
        "root-revocation-undelegated",
        Site(roots=chain(R2_REVOKE_BOB_UNDELEGATED)),
        "root-chain",
    )
    attack(
        "root-revocation-new-after-expiry",
        "root-chain",
        "root 2 (expires 2036-01-01T00:00:00Z) revokes bob as of 2036-01-01T00:00:01Z: a revocation "
        "dated after its version's expiry (bob would still sign until then)",
        "root-revocation-after-expiry",
        Site(roots=chain(R2_REVOKE_BOB_AFTER_EXPIRY)),
        "root-chain",
    )
    s = site(
        "root-revocation-reason-keep", Site(roots=chain(R2_REVOKE_KEEP, R3_REVOCATION_REASON_KEEP_FALSE))
    )
    case(
        "root-revocation-reason-and-keep-prior-changed-ok",
        "root-chain",
        "root 2 revokes alice keeping prior releases; root 3 gives the revocation a reason and sets "
        "keep_prior_releases from true to false (the only changes allowed)",
        [pin(s), refresh(s, OK(registry_version=V_BASE, root_version=3))],
    )
    s = site("root-revocation-subset-at-expiry", Site(roots=chain(R2_REVOKE_ALICE_SUBSET_AT_EXPIRY)))
    case(
        "root-revocation-new-subset-at-expiry-ok",
        "root-chain",
        "root 2 revokes alice for validate_email only (one of her plugins) as of exactly its own "
        "expiry, 2036-01-01T00:00:00Z",
        [pin(s), refresh(s, OK(registry_version=V_BASE, root_version=2))],
    )


def _unkeyed_root_sig(out: Rendered) -> None:
    """root-b's signature of root 2 moved to the unkeyed name."""
    out.files["root/2.root.json.minisig"] = out.files.pop(f"root/2.root.json.{K['root-b'].key_id}.minisig")


def _dup_root_sig(out: Rendered) -> None:
    key = K["root-a"]
    out.files[f"root/2.root.json.{K['root-b'].key_id}.minisig"] = out.files[
        f"root/2.root.json.{key.key_id}.minisig"
    ]


# ---------------------------------------------------------------- the top document


def _top_bytes(change: Callable[[bytes], bytes]) -> Site:
    return Site(top_bytes=change)


def top_cases() -> None:
    s = site("base")
    case(
        "top-fresh-ok",
        "success",
        "a fresh, correctly signed registry.json",
        [pin(s), refresh(s, OK(registry_version=V_BASE, root_version=1))],
    )
    attack(
        "top-tampered",
        "signature",
        "registry.json changed after signing",
        "top-tampered",
        Site(post=post_file("registry.json", sub(b"conformance suite", b"Conformance suite"))),
        "bad-signature",
    )
    attack(
        "top-wrong-key",
        "signature",
        "registry.json signed by an unknown key",
        "top-mallory",
        Site(index_keys=(K["mallory"],)),
        "bad-signature",
    )
    attack(
        "top-root-key",
        "signature",
        "registry.json signed by a root key (not in the index role)",
        "top-root-key",
        Site(index_keys=(K["root-a"],)),
        "bad-signature",
    )
    attack(
        "top-maintainer-key",
        "signature",
        "registry.json signed by a maintainer key",
        "top-alice",
        Site(index_keys=(K["alice"],)),
        "bad-signature",
    )
    attack(
        "top-unsigned",
        "signature",
        "registry.json without signature files",
        "top-unsigned",
        Site(post=post_file("registry.json.minisig", lambda d: None)),
        "bad-signature",
    )
    attack(
        "top-signature-garbage",
        "signature",
        "registry.json.minisig is not a minisign signature",
        "top-sig-garbage",
        Site(post=post_file("registry.json.minisig", lambda d: b"garbage\n")),
        "bad-signature",
    )
    attack(
        "top-signature-legacy",
        "signature",
        "registry.json signed with the legacy (non-prehashed) Ed algorithm",
        "top-sig-legacy",
        Site(
            post=lambda o: o.files.update(
                {"registry.json.minisig": legacy_sig(K["index"], o.files["registry.json"], "legacy")}
            )
        ),
        "bad-signature",
    )
    attack(
        "top-signature-oversize",
        "endless-data",
        "registry.json.minisig larger than the 16 KiB signature cap",
        "top-sig-oversize",
        Site(post=post_file("registry.json.minisig", lambda d: d + b"#" * 17000)),
        "endless-data",
    )
    i2 = site("index2-ok", Site(roots=chain(R2_INDEX2), index_keys=(K["index"], K["index-b"])))
    case(
        "top-index-threshold-met",
        "signature",
        "root 2 requires 2 index keys; both signed",
        [pin(i2), refresh(i2, OK(registry_version=V_BASE, root_version=2))],
    )
    attack(
        "top-index-threshold-not-met",
        "signature",
        "root 2 requires 2 index keys; one signed",
        "index2-one",
        Site(roots=chain(R2_INDEX2)),
        "bad-signature",
    )
    attack(
        "top-index-threshold-same-key-twice",
        "signature",
        "root 2 requires 2 index keys; the same key signed twice (two files) and counts once",
        "index2-dup",
        Site(roots=chain(R2_INDEX2), index_keys=(K["index"], K["index"])),
        "bad-signature",
    )
    # freeze and rollback
    case(
        "top-expired",
        "freeze",
        "registry.json expired a day before now",
        [pin(s), refresh(s, ERR("freeze"), now="2026-12-05T00:00:00Z")],
    )
    case(
        "top-expires-now",
        "freeze",
        "now equals expires_at: expired (now >= expires_at)",
        [pin(s), refresh(s, ERR("freeze"), now=EXPIRES)],
    )
    case(
        "top-expires-in-one-second",
        "freeze",
        "one second before expires_at: still valid",
        [pin(s), refresh(s, OK(registry_version=V_BASE), now="2026-12-03T23:59:59Z")],
    )
    old = site(
        "base-old",
        Site(version=20261126000000, generated_at="2026-11-26T00:00:00Z", expires_at="2026-12-03T00:00:00Z"),
    )
    case(
        "top-rollback",
        "rollback",
        "after version 20261127000000, the server serves 20261126000000",
        [pin(s), refresh(s, OK(registry_version=V_BASE)), refresh(old, ERR("rollback"))],
    )
    case(
        "top-equal-version-ok",
        "rollback",
        "the same version again is not a rollback",
        [pin(s), refresh(s, OK(registry_version=V_BASE)), refresh(s, OK(registry_version=V_BASE))],
    )
    case(
        "top-rollback-after-install",
        "rollback",
        "install records the highest version too",
        [pin(s), install(s, "validate_email", EMAIL_INSTALLED), refresh(old, ERR("rollback"))],
    )
    case(
        "top-older-first-then-newer",
        "success",
        "moving forward from an older publication is fine",
        [pin(s), refresh(old, OK(registry_version=20261126000000)), refresh(s, OK(registry_version=V_BASE))],
    )

    # format
    def fv(value: Any) -> Callable[[Json], None]:
        def edit(top: Json) -> None:
            top["format_version"] = value

        return edit

    def format1(top: Json) -> None:
        for k in ("tree", "catalog", "counts"):
            del top[k]
        top["format_version"] = 1
        top["plugins"] = {}

    attack(
        "top-format-1",
        "format",
        "a format-1 registry.json (plugins inline, no tree)",
        "top-format-1",
        Site(top_edit=format1),
        "unsupported-format",
    )
    for slug, value in (("float", 2.0), ("exponent", 2e0)):
        attack(
            f"top-format-version-{slug}",
            "format",
            f"format_version written as {value!r} (JSON integers have no fraction or exponent)",
            f"top-format-version-{slug}",
            Site(top_edit=fv(value)),
            "malformed",
        )
    attack(
        "top-format-version-negative-zero",
        "format",
        "format_version written -0: the JSON integer 0 (not a float), so unsupported-format",
        "top-format-version-negative-zero",
        _top_bytes(sub(b'"format_version":2', b'"format_version":-0')),
        "unsupported-format",
    )
    attack(
        "top-format-3",
        "format",
        "format_version 3",
        "top-format-3",
        Site(top_edit=fv(3)),
        "unsupported-format",
    )
    attack(
        "top-wrong-registry",
        "wrong-registry",
        "registry.json of another registry signed by this index key",
        "top-other-registry",
        Site(name="other-registry"),
        "wrong-registry",
    )
    huge = Site(top_edit=lambda t: t["registry"].update(description="x" * 70000))
    attack(
        "top-oversize",
        "endless-data",
        "a signed registry.json of 70 KB (cap 64 KiB)",
        "top-oversize",
        huge,
        "endless-data",
    )
    case(
        "top-endless",
        "endless-data",
        "registry.json streams without end",
        [pin(s), refresh(s, ERR("endless-data"), serve={"registry.json": "endless"})],
    )
    malformed: list[tuple[str, str, Callable[[bytes], bytes]]] = [
        (
            "duplicate-member",
            "a duplicate member name (version twice)",
            sub(b'{"catalog"', b'{"version":1,"catalog"'),
        ),
        ("nan", "NaN as a count", sub(b'"plugins":5', b'"plugins":NaN')),
        ("infinity", "Infinity as a count", sub(b'"plugins":5', b'"plugins":Infinity')),
        (
            "huge-int",
            "an integer beyond 2^53",
            sub(b'"version":20261127000000', b'"version":9007199254740993'),
        ),
        (
            "float-version",
            "version written with a fraction",
            sub(b'"version":20261127000000', b'"version":20261127000000.0'),
        ),
        (
            "exponent-version",
            "version written with an exponent",
            sub(b'"version":20261127000000', b'"version":2.0261127e13'),
        ),
        (
            "string-version",
            "version as a string",
            sub(b'"version":20261127000000', b'"version":"20261127000000"'),
        ),
        ("unknown-member", "an unknown member", sub(b'{"catalog"', b'{"mirror":"http://evil/","catalog"')),
        (
            "missing-tree",
            "no tree pin",
            lambda d: canonical({k: v for k, v in json.loads(d).items() if k != "tree"}),
        ),
        (
            "bad-time",
            "expires_at not in YYYY-MM-DDTHH:MM:SSZ",
            sub(b'"expires_at":"2026-12-04T00:00:00Z"', b'"expires_at":"2026-12-4T0:0:0Z"'),
        ),
        (
            "time-offset",
            "expires_at with an offset instead of Z",
            sub(b'"expires_at":"2026-12-04T00:00:00Z"', b'"expires_at":"2026-12-04T00:00:00+00:00"'),
        ),
        ("bom", "a UTF-8 byte order mark", lambda d: b"\xef\xbb\xbf" + d),
        (
            "invalid-utf8",
            "an invalid UTF-8 byte in a string",
            sub(b"conformance suite", b"conformance \xff suite"),
        ),
        (
            "lone-surrogate",
            "a lone surrogate escape",
            sub(b"conformance suite", b"conformance \\ud800 suite"),
        ),
        ("not-object", "a JSON array", lambda d: b"[" + d.rstrip(b"\n") + b"]\n"),
        ("trailing-data", "data after the JSON value", lambda d: d + b"{}\n"),
        (
            "pin-upper-hex",
            "the tree pin's sha256 in upper case",
            lambda d: _pin_edit(d, "tree", lambda p: p.update(sha256=p["sha256"].upper())),
        ),
        (
            "pin-size-zero",
            "the tree pin's size 0",
            lambda d: _pin_edit(d, "tree", lambda p: p.update(size=0)),
        ),
        (
            "pin-short-digest",
            "the tree pin's sha256 of 63 digits",
            lambda d: _pin_edit(d, "tree", lambda p: p.update(sha256=p["sha256"][:63])),
        ),
    ]
    for slug, what, change in malformed:
        attack(
            f"top-malformed-{slug}",
            "malformed",
            f"registry.json, correctly signed, with {what}",
            f"top-malformed-{slug}",
            _top_bytes(change),
            "malformed",
        )


def _pin_edit(data: bytes, member: str, change: Callable[[Json], None]) -> bytes:
    doc = json.loads(data)
    change(doc[member])
    return canonical(doc)


# ---------------------------------------------------------------- the tree


def _path_to(name: str) -> list[str]:
    """Prefixes of the nodes a lookup of ``name`` visits in the base site."""
    base = SITES["base"]
    out, prefix = [], ""
    while True:
        out.append(prefix)
        body = json.loads(base.files[base.nodes[prefix]])
        if "plugins" in body:
            return out
        digit = tree_key(name)[len(prefix)]
        if digit not in body["children"]:
            return out
        prefix += digit


def _absent_names() -> tuple[str, str]:
    """A name whose lookup ends at a missing child, and one that ends at a leaf without it."""
    base = SITES["base"]
    missing_child = leaf_without = ""
    for i in range(1000):
        name = f"absent-{i}"
        last = _path_to(name)[-1]
        body = json.loads(base.files[base.nodes[last]])
        if "children" in body and not missing_child:
            missing_child = name
        if "plugins" in body and not leaf_without:
            leaf_without = name
        if missing_child and leaf_without:
            return missing_child, leaf_without
    raise AssertionError("no absent names found")


def tree_cases() -> None:
    s = site("base")
    path = _path_to("validate_email")
    assert len(path) >= 2, path
    root_node, leaf = SITES["base"].nodes[""], SITES["base"].nodes[path[-1]]
    first = path[1]

    def tamper_meta(meta: str, change: Callable[[bytes], bytes]) -> Callable[[Rendered], None]:
        return post_file(meta, change)

    attack(
        "tree-root-node-tampered",
        "tree",
        "the root node's bytes differ from the top document's pin",
        "tree-root-tampered",
        Site(post=tamper_meta(root_node, sub(b"registry-node", b"registry-nodf"))),
        "digest-mismatch",
        op="validate_email",
    )
    attack(
        "tree-leaf-tampered",
        "tree",
        "the leaf holding validate_email differs from its parent's pin",
        "tree-leaf-tampered",
        Site(post=tamper_meta(leaf, sub(b"registry-node", b"registry-nodf"))),
        "digest-mismatch",
        op="validate_email",
    )
    attack(
        "tree-node-too-large",
        "endless-data",
        "the leaf is served with one byte more than its pinned size (the pinned bytes plus a space)",
        "tree-leaf-longer",
        Site(post=tamper_meta(leaf, lambda d: d + b" ")),
        "endless-data",
        op="validate_email",
    )
    case(
        "tree-node-endless",
        "endless-data",
        "the root node streams without end",
        [pin(s), install(s, "validate_email", ERR("endless-data"), serve={root_node: "endless"})],
    )
    case(
        "tree-node-404",
        "transport",
        "a pinned tree node is missing on the server (404): a network error",
        [pin(s), install(s, "validate_email", ERR("network"), serve={leaf: "404"})],
    )

    def at(prefix: str, change: Callable[[Json], None]) -> Callable[[str, Json], None]:
        def edit(p: str, body: Json) -> None:
            if p == prefix:
                change(body)

        return edit

    def wrong_prefix(body: Json) -> None:
        body["prefix"] = "f" if body["prefix"] != "f" else "e"

    attack(
        "tree-prefix-mismatch",
        "mix-and-match",
        "the node under the root's child says another prefix",
        "tree-wrong-prefix",
        Site(node_edit=at(first, wrong_prefix)),
        "mix-and-match",
        op="validate_email",
    )
    foreign = next(f"foreign-{i}" for i in range(1000) if not tree_key(f"foreign-{i}").startswith(path[-1]))
    attack(
        "tree-leaf-foreign-name",
        "mix-and-match",
        f"the leaf of validate_email also lists '{foreign}', whose key is outside the leaf's prefix",
        "tree-leaf-foreign",
        Site(
            node_edit=at(path[-1], lambda b: b["plugins"].update({foreign: b["plugins"]["validate_email"]}))
        ),
        "mix-and-match",
        op="validate_email",
    )
    attack(
        "tree-leaf-invalid-name",
        "mix-and-match",
        "the leaf lists a name that is not a plugin name",
        "tree-leaf-bad-name",
        Site(
            node_edit=at(
                path[-1], lambda b: b["plugins"].update({"Validate_Email": b["plugins"]["validate_email"]})
            )
        ),
        "mix-and-match",
        op="validate_email",
    )

    def both(body: Json) -> None:
        body["plugins"] = {}

    attack(
        "tree-node-children-and-plugins",
        "malformed",
        "the root node has both children and plugins",
        "tree-both",
        Site(node_edit=at("", both)),
        "malformed",
        op="validate_email",
    )

    def upper_child(body: Json) -> None:
        body["children"] = {k.upper(): v for k, v in body["children"].items()}

    attack(
        "tree-child-key-not-hex-digit",
        "malformed",
        "children keys upper-case (not one lower-case hex digit)",
        "tree-upper-child",
        Site(node_edit=at("", upper_child)),
        "malformed",
        op="validate_email",
    )
    attack(
        "tree-node-wrong-type",
        "malformed",
        "a node whose _type is registry-plugin",
        "tree-wrong-type",
        Site(node_edit=at(path[-1], lambda b: b.update(_type="registry-plugin"))),
        "malformed",
        op="validate_email",
    )
    missing_child, leaf_without = _absent_names()
    case(
        "tree-missing-child-not-found",
        "not-found",
        f"'{missing_child}' ends at a branch without its child",
        [pin(s), install(s, missing_child, ERR("not-found"))],
    )
    case(
        "tree-leaf-without-name-not-found",
        "not-found",
        f"'{leaf_without}' ends at a leaf that does not list it",
        [pin(s), install(s, leaf_without, ERR("not-found"))],
    )


# ---------------------------------------------------------------- plugin documents


def document_cases() -> None:
    s = site("base")
    doc = SITES["base"].docs["validate_email"]
    attack(
        "doc-tampered",
        "digest",
        "the plugin document differs from the leaf's pin",
        "doc-tampered",
        Site(post=post_file(doc, sub(b"RFC 5322", b"RFC 5321"))),
        "digest-mismatch",
        op="validate_email",
    )
    attack(
        "doc-too-large",
        "endless-data",
        "the plugin document has one byte more than its pinned size",
        "doc-longer",
        Site(post=post_file(doc, lambda d: d + b"\n")),
        "endless-data",
        op="validate_email",
    )
    case(
        "doc-endless",
        "endless-data",
        "the plugin document streams without end",
        [pin(s), install(s, "validate_email", ERR("endless-data"), serve={doc: "endless"})],
    )
    case(
        "doc-slow",
        "slow-retrieval",
        "the plugin document trickles one byte and stalls",
        [
            pin(s),
            install(
                s, "validate_email", ERR("slow-retrieval"), serve={doc: "slow"}, deadline_ms=DEADLINE_SLOW
            ),
        ],
    )

    def swap(docs: dict[str, bytes]) -> None:
        docs["validate_email"] = docs["visit_counter"]

    attack(
        "doc-names-another-plugin",
        "wrong-software",
        "the tree pins visit_counter's (genuine) document under the name validate_email",
        "doc-swapped",
        Site(docs_edit=swap),
        "wrong-software",
        op="validate_email",
    )
    traversal = {
        "manifest-dotdot": ("manifest", "plugins/validate_email/1.1.0/../1.0.0/plugin.toml"),
        "manifest-subdir": ("manifest", "plugins/validate_email/1.1.0/sub/plugin.toml"),
        "manifest-other-name": ("manifest", "plugins/validate_email/1.1.0/manifest.toml"),
        "wasm-other-release": ("wasm", "plugins/visit_counter/1.0.0/visit_counter.wasm"),
        "wasm-absolute": ("wasm", "/etc/passwd"),
        "wasm-dotdot": ("wasm", "plugins/validate_email/1.1.0/../../visit_counter/1.0.0/visit_counter.wasm"),
        "wasm-backslash": ("wasm", "plugins/validate_email/1.1.0/..\\validate_email.wasm"),
        "wasm-percent": ("wasm", "plugins/validate_email/1.1.0/%2e%2e"),
        "wasm-dot-file": ("wasm", "plugins/validate_email/1.1.0/.."),
        "wasm-url": ("wasm", "http://127.0.0.1:1/validate_email.wasm"),
    }
    for slug, (member, value) in traversal.items():
        attack(
            f"doc-path-{slug}",
            "path-traversal",
            f"the entry's {member}.path is {value!r}",
            f"doc-path-{slug}",
            Site(doc_edit=edit_entry("validate_email", "1.1.0", set_fields(**{member: {"path": value}}))),
            "path-traversal",
            op="validate_email@1.1.0",
        )

    def rename_version(name: str, doc: Json) -> None:
        if name == "validate_email":
            doc["versions"]["1.1.0+build.1"] = doc["versions"].pop("1.1.0")

    attack(
        "doc-version-with-build",
        "malformed",
        "a version key with +build metadata",
        "doc-build-version",
        Site(doc_edit=rename_version),
        "malformed",
        op="validate_email",
    )

    def other_digits(name: str, doc: Json) -> None:
        # "1.1.1" and ARABIC-INDIC DIGIT ZERO: 1.1.10 to a Unicode-aware \d
        if name == "validate_email":
            doc["versions"]["1.1.1\u0660"] = doc["versions"].pop("1.1.0")

    attack(
        "doc-version-other-digits",
        "malformed",
        "a version key with another script's digit (U+0660), which Unicode-aware \\d matches",
        "doc-other-digits-version",
        Site(doc_edit=other_digits),
        "malformed",
        op="validate_email",
    )

    def above_u64(doc_name: str, doc: Json) -> None:
        if doc_name == "validate_email":
            doc["versions"]["1.18446744073709551616.0"] = doc["versions"].pop("1.1.0")

    attack(
        "doc-version-above-u64",
        "malformed",
        "a version key whose MINOR is 2^64: version numbers are unsigned 64-bit integers",
        "doc-version-above-u64",
        Site(doc_edit=above_u64),
        "malformed",
        op="validate_email",
    )
    attack(
        "doc-yanked-not-object",
        "malformed",
        "yanked is a string",
        "doc-yanked-string",
        Site(doc_edit=edit_entry("validate_email", "1.1.0", set_fields(yanked="yes"))),
        "malformed",
        op="validate_email",
    )
    attack(
        "doc-unknown-member",
        "malformed",
        "an entry with an unknown member",
        "doc-unknown-member",
        Site(doc_edit=edit_entry("validate_email", "1.1.0", set_fields(mirror="http://evil/"))),
        "malformed",
        op="validate_email",
    )
    attack(
        "doc-wrong-type",
        "malformed",
        "the plugin document's _type is registry-node",
        "doc-wrong-type",
        Site(doc_edit=lambda n, d: d.update(_type="registry-node") if n == "validate_email" else None),
        "malformed",
        op="validate_email",
    )


# ---------------------------------------------------------------- releases


def release_cases() -> None:
    r11, r10 = rel(E11), rel(E10)
    m, w = "plugin.toml", r11.wasm_file
    spec = "validate_email@1.1.0"

    def rel_attack(
        case_id: str,
        threat: str,
        description: str,
        releases: list[Rel],
        expect: str,
        doc_edit: Callable[[str, Json], None] | None = None,
        **kw: Any,
    ) -> None:
        attack(
            case_id,
            threat,
            description,
            case_id,
            Site(releases=releases, doc_edit=doc_edit),
            expect,
            op=spec,
            **kw,
        )

    # Nesting past the bound every verifier reads before its TOML parser (decision 11, step 1),
    # in a manifest the maintainer signed and the index pins: parsers recurse per level.
    for slug, body in (
        ("array", b"y = " + b"[" * 65 + b"]" * 65),
        ("inline-table", b"y = " + b"{a=" * 65 + b"1" + b"}" * 65),
        ("dotted-key", b"[" + b".".join([b"a"] * 66) + b"]"),
        # 20,000 levels in 40 KB: a recursive parser runs out of stack (it aborted a verifier).
        ("array-20000", b"y = " + b"[" * 20000 + b"]" * 20000),
        ("dotted-key-20000", b"[" + b".".join([b"a"] * 20000) + b"]"),
        ("dotted-digits-20000", b"[" + b".".join([b"1"] * 20000) + b"]"),  # every dot counts
    ):
        deep = variant(r11, {"plugin.toml": r11.manifest + b"\n[x]\n" + body + b"\n"}, repin=True)
        rel_attack(
            f"manifest-toml-deep-{slug}",
            "malformed",
            f"a signed plugin.toml nesting {slug.replace('-', ' ')} levels deep (65 unless named)",
            with_releases(signed_by(deep, (K["alice"], comment("validate_email", "1.1.0")))),
            "malformed",
        )
    manifest_strictness_cases(r11, rel_attack)
    # Installed, such a module would be taken for the manifest's own signature (and a lockfile naming
    # it as both is refused by verify): refused before anything is written, as ci check refuses it.
    for slug, reserved in (("plain-signature", "plugin.toml.minisig"), ("yank", "YANK.toml")):
        manifest = r11.manifest.replace(f'file = "{r11.wasm_file}"'.encode(), f'file = "{reserved}"'.encode())
        renamed = replace(
            r11,
            files={n: d for n, d in r11.files.items() if n != r11.wasm_file} | {reserved: r11.wasm},
            wasm_file=reserved,
        )
        renamed = variant(renamed, {"plugin.toml": manifest}, repin=True)
        renamed.entry["wasm"]["path"] = f"plugins/validate_email/1.1.0/{reserved}"
        moved = signed_by(renamed, (K["alice"], comment("validate_email", "1.1.0")))
        sig = moved.files.pop("plugin.toml.minisig") if reserved == "plugin.toml.minisig" else None
        if sig is not None:  # the module holds the plain name: alice's signature takes the keyed one
            moved.files[reserved] = r11.wasm
            moved.files[f"plugin.toml.{K['alice'].key_id}.minisig"] = sig
        rel_attack(
            f"release-artifact-reserved-{slug}",
            "malformed",
            f"the signed manifest names its module {reserved}, a name reserved for the release's "
            "metadata (plugin.toml, yank.toml and their signatures, in any case)",
            with_releases(moved),
            "malformed",
        )
    rel_attack(
        "release-manifest-tampered",
        "digest",
        "the server changes plugin.toml (index untouched)",
        with_releases(variant(r11, {m: r11.manifest.replace(b"RFC 5322", b"RFC 5321")})),
        "digest-mismatch",
    )
    rel_attack(
        "release-manifest-tampered-repinned",
        "maintainer-signature",
        "plugin.toml changed and re-pinned by the index key: the maintainer signature fails",
        with_releases(variant(r11, {m: r11.manifest.replace(b"RFC 5322", b"RFC 5321")}, repin=True)),
        "maintainer-signature",
    )
    rel_attack(
        "release-wasm-tampered",
        "digest",
        "the server changes the wasm's last byte (same size; index untouched)",
        with_releases(variant(r11, {w: r11.wasm[:-1] + bytes([r11.wasm[-1] ^ 0xFF])})),
        "digest-mismatch",
    )
    rel_attack(
        "release-wasm-truncated",
        "digest",
        "the server serves the wasm without its last byte (shorter than the pinned size)",
        with_releases(variant(r11, {w: r11.wasm[:-1]})),
        "digest-mismatch",
    )
    rel_attack(
        "release-wasm-tampered-repinned",
        "mix-and-match",
        "wasm changed and re-pinned by the index key: it disagrees with the signed manifest's [artifact]",
        with_releases(variant(r11, {w: r11.wasm + b"\x00"}, repin=True)),
        "mix-and-match",
    )
    rel_attack(
        "release-wasm-of-other-release",
        "mix-and-match",
        "the server serves 1.0.0's (signed, same size) wasm as 1.1.0's (index untouched): the bytes are "
        "another release's of the same plugin document",
        with_releases(variant(r11, {w: r10.wasm})),
        "mix-and-match",
    )
    rel_attack(
        "release-wasm-of-other-release-repinned",
        "mix-and-match",
        "the index pins 1.0.0's (signed) wasm for 1.1.0",
        with_releases(variant(r11, {w: r10.wasm}, repin=True)),
        "mix-and-match",
    )
    r10_files = {n: d for n, d in r10.files.items() if n.startswith("plugin.toml")}
    rel_attack(
        "release-manifest-of-other-version",
        "wrong-software",
        "the index pins 1.0.0's signed plugin.toml (and signature) for 1.1.0",
        with_releases(variant(r11, {**unsigned(r11), **r10_files}, repin=True)),
        "wrong-software",
    )
    vc = rel("visit_counter 1.0.0")
    vc_files = {n: d for n, d in vc.files.items() if n.startswith("plugin.toml")}
    rel_attack(
        "release-manifest-of-other-plugin",
        "wrong-software",
        "the index pins visit_counter's plugin.toml (signed by the same maintainer) for validate_email",
        with_releases(variant(r11, {**unsigned(r11), **vc_files}, repin=True)),
        "wrong-software",
    )
    rel_attack(
        "release-signature-missing",
        "maintainer-signature",
        "plugin.toml without any signature",
        with_releases(variant(r11, unsigned(r11))),
        "maintainer-signature",
    )
    rel_attack(
        "release-signer-not-delegated",
        "maintainer-signature",
        "signed by bob, a maintainer not delegated for validate_email",
        with_releases(signed_by(r11, (K["bob"], comment("validate_email", "1.1.0")))),
        "maintainer-signature",
    )
    rel_attack(
        "release-signed-by-index-key",
        "maintainer-signature",
        "signed by the index key",
        with_releases(signed_by(r11, (K["index"], comment("validate_email", "1.1.0")))),
        "maintainer-signature",
    )
    rel_attack(
        "release-signed-by-unknown-key",
        "maintainer-signature",
        "signed by a key the root does not know",
        with_releases(signed_by(r11, (K["mallory"], comment("validate_email", "1.1.0")))),
        "maintainer-signature",
    )
    rel_attack(
        "release-signature-of-other-bytes",
        "maintainer-signature",
        "plugin.toml.minisig is alice's signature of 1.0.0's manifest",
        with_releases(variant(r11, {"plugin.toml.minisig": r10.files["plugin.toml.minisig"]})),
        "maintainer-signature",
    )
    rel_attack(
        "release-signature-legacy",
        "maintainer-signature",
        "signed with the legacy Ed algorithm",
        with_releases(
            variant(
                r11,
                {
                    "plugin.toml.minisig": legacy_sig(
                        K["alice"], r11.manifest, comment("validate_email", "1.1.0")
                    )
                },
            )
        ),
        "maintainer-signature",
    )
    rel_attack(
        "release-trusted-comment-other-version",
        "maintainer-signature",
        "alice's valid signature whose trusted comment names version 1.0.0",
        with_releases(signed_by(r11, (K["alice"], comment("validate_email", "1.0.0")))),
        "maintainer-signature",
    )
    ka = K["alice"].key_id
    good = sign_bytes(K["alice"], r11.manifest, trusted_comment=comment("validate_email", "1.1.0")).encode()
    other = sign_bytes(K["alice"], r11.manifest, trusted_comment=comment("validate_email", "1.0.0")).encode()
    for plain_sig, keyed_sig, which in ((other, good, "plain"), (good, other, "keyed")):
        rel_attack(
            f"release-trusted-comment-other-version-{which}-file",
            "maintainer-signature",
            f"two valid signatures by alice, the {which} file's trusted comment naming version 1.0.0: "
            "every signature that verifies is judged, not the first of each key",
            with_releases(
                variant(
                    r11,
                    {"plugin.toml.minisig": plain_sig, f"plugin.toml.{ka}.minisig": keyed_sig},
                    {"signers": [ka]},
                )
            ),
            "maintainer-signature",
        )
    rel_attack(
        "release-trusted-comment-other-plugin",
        "maintainer-signature",
        "alice's valid signature whose trusted comment names visit_counter",
        with_releases(signed_by(r11, (K["alice"], comment("visit_counter", "1.1.0")))),
        "maintainer-signature",
    )
    plain = with_releases(signed_by(r11, (K["alice"], f"timestamp:{SIGN_TS}\tfile:plugin.toml\thashed")))
    s = site("release-plain-minisign-comment", Site(releases=plain))
    case(
        "release-plain-minisign-comment",
        "maintainer-signature",
        "a plain `minisign -S` trusted comment (no plugin/version fields) is accepted",
        [
            pin(s),
            install(
                s,
                spec,
                installed(next(r for r in plain if r.version == "1.1.0" and r.name == "validate_email")),
            ),
        ],
    )
    listed_bob = with_releases(variant(r11, entry={"signers": sorted([K["bob"].key_id, K["alice"].key_id])}))
    s = site("release-signers-hint", Site(releases=listed_bob))
    case(
        "release-signers-is-only-a-hint",
        "maintainer-signature",
        "the entry's signers also lists bob (no such signature file): the signatures found decide",
        [pin(s), install(s, spec, EMAIL_INSTALLED)],
    )
    # thresholds
    tk = rel("twokeys 1.0.0")
    s = site("base")
    case(
        "release-threshold-two-keys-ok",
        "maintainer-signature",
        "twokeys needs 2 maintainer keys; alice and carol signed",
        [pin(s), install(s, "twokeys", installed("twokeys 1.0.0"))],
    )
    attack(
        "release-threshold-one-key",
        "maintainer-signature",
        "twokeys needs 2 maintainer keys; only alice signed",
        "release-threshold-one",
        Site(releases=with_releases(signed_by(tk, (K["alice"], comment("twokeys", "1.0.0"))))),
        "maintainer-signature",
        op="twokeys",
    )
    dup = signed_by(tk, (K["alice"], comment("twokeys", "1.0.0")))
    dup = variant(dup, {f"plugin.toml.{K['alice'].key_id}.minisig": dup.files["plugin.toml.minisig"]})
    attack(
        "release-threshold-same-key-twice",
        "maintainer-signature",
        "twokeys needs 2 keys; alice's signature in two files counts once",
        "release-threshold-dup",
        Site(releases=with_releases(dup)),
        "maintainer-signature",
        op="twokeys",
    )
    # revocation
    revoked_at = "2026-11-22T00:00:00Z"
    keep = chain(R2_REVOKE_KEEP)
    before = variant(r10, entry={"published_at": "2026-11-21T23:59:59Z"})
    at_time = variant(r11, entry={"published_at": revoked_at})
    s = site("revoked-keep", Site(roots=keep, releases=with_releases(before, at_time)))
    case(
        "revoked-keep-prior-before",
        "revocation",
        "alice revoked at 2026-11-22 keeping prior releases; 1.0.0 published a second before counts",
        [pin(s), install(s, "validate_email@1.0.0", installed(before))],
    )
    case(
        "revoked-keep-prior-at-revocation",
        "revocation",
        "1.1.0 published exactly at revoked_at (not strictly before): refused",
        [pin(s), install(s, "validate_email@1.1.0", ERR("maintainer-signature"))],
    )
    after = variant(r11, entry={"published_at": "2026-11-24T00:00:00Z"})
    attack(
        "revoked-keep-prior-after",
        "revocation",
        "1.1.0 published after alice's revocation: refused",
        "revoked-keep-after",
        Site(roots=keep, releases=with_releases(after)),
        "maintainer-signature",
        op=spec,
    )
    attack(
        "revoked-no-keep-before",
        "revocation",
        "alice revoked without keep_prior_releases: even a release published before is refused",
        "revoked-drop",
        Site(roots=chain(R2_REVOKE_DROP), releases=with_releases(before)),
        "maintainer-signature",
        op="validate_email@1.0.0",
    )
    attack(
        "revoked-keep-prior-other-plugin",
        "revocation",
        "alice's revocation kept prior releases only for her delegated plugins; semver-lab was never hers",
        "revoked-other-plugin",
        Site(
            roots=keep,
            releases=with_releases(
                signed_by(rel("semver-lab 1.2.0"), (K["alice"], comment("semver-lab", "1.2.0")))
            ),
        ),
        "maintainer-signature",
        op="semver-lab@1.2.0",
    )
    # index-only fields that disagree with the signed manifest
    mismatches: dict[str, Json] = {
        "permissions": {"permissions": ["keys"]},
        "abi": {"abi": "extism"},
        "host": {"host": ">=0.1.0"},
        "host-null": {"host": None},
        "exports": {"exports": ["validate_email", "backdoor"]},
        "limits-fuel": {"limits": {"fuel": 999_999_999}},
        "limits-memory": {"limits": {"memory": 268435456}},
        "dependencies": {"dependencies": {"visit_counter": "^1.0"}},
    }
    for slug, fields in mismatches.items():
        attack(
            f"index-field-{slug}",
            "mix-and-match",
            f"the plugin document's {slug.split('-')[0]} disagrees with the maintainer-signed manifest",
            f"index-field-{slug}",
            Site(doc_edit=edit_entry("validate_email", "1.1.0", set_fields(**fields))),
            "mix-and-match",
            op=spec,
            allow="keys",
        )
    attack(
        "index-field-permissions-not-allowed",
        "mix-and-match",
        "the entry adds a permission the signed manifest never declares, and nothing is allowed: "
        "the entry is compared with the manifest before any permission is asked for",
        "index-field-permissions-not-allowed",
        Site(doc_edit=edit_entry("validate_email", "1.1.0", set_fields(permissions=["keys"]))),
        "mix-and-match",
        op=spec,
    )
    vc_entry = rel("visit_counter 1.0.0")
    attack(
        "index-field-permissions-hidden",
        "mix-and-match",
        "visit_counter's entry hides the keys permission its signed manifest declares",
        "index-field-permissions-hidden",
        Site(doc_edit=edit_entry("visit_counter", "1.0.0", set_fields(permissions=[]))),
        "mix-and-match",
        op="visit_counter",
        allow="keys",
    )
    assert vc_entry.entry["limits"]["wall_time_ms"] == 500
    attack(
        "index-field-limits-wall-time",
        "mix-and-match",
        "visit_counter declares wall_time 500ms; the entry says 10000 ms",
        "index-field-limits-wall-time",
        Site(doc_edit=edit_entry("visit_counter", "1.0.0", set_fields(limits={"wall_time_ms": 10000}))),
        "mix-and-match",
        op="visit_counter",
        allow="keys",
    )
    renamed = variant(
        r11,
        {w: None, "other.wasm": r11.wasm},
        {"wasm": {**r11.entry["wasm"], "path": "plugins/validate_email/1.1.0/other.wasm"}},
    )
    rel_attack(
        "index-field-wasm-file-name",
        "mix-and-match",
        "the entry names other.wasm (same bytes) while the manifest's [artifact] file is validate_email.wasm",
        with_releases(renamed),
        "mix-and-match",
    )
    # permissions
    s = site("base")
    vc_ok = installed("visit_counter 1.0.0")
    case(
        "permission-required",
        "permissions",
        "visit_counter declares keys; nothing allowed",
        [pin(s), install(s, "visit_counter", ERR("permission-required"))],
    )
    case(
        "permission-other-allowed",
        "permissions",
        "visit_counter declares keys; only network allowed",
        [pin(s), install(s, "visit_counter", ERR("permission-required"), allow="network")],
    )
    case(
        "permission-allowed",
        "permissions",
        "visit_counter declares keys; keys allowed",
        [pin(s), install(s, "visit_counter", vc_ok, allow="keys")],
    )
    case(
        "permission-allowed-superset",
        "permissions",
        "more permissions allowed than declared is fine",
        [pin(s), install(s, "visit_counter", vc_ok, allow="keys,network")],
    )
    case(
        "permission-none-needed",
        "permissions",
        "validate_email declares no permission; none allowed",
        [pin(s), install(s, "validate_email", EMAIL_INSTALLED)],
    )
    sneaky = make_release(
        Spec("sneaky", "1.0.0", "visit_counter", ("next_visit",), permissions=(("keys", False),))
    )
    s = site("sneaky", Site(releases=[*BASE_RELEASES, sneaky]))
    case(
        "permission-undeclared-import",
        "permissions",
        "sneaky's module imports ferrite:keys but its signed manifest declares no permission",
        [pin(s), install(s, "sneaky", ERR("undeclared-import"), allow="keys")],
        requires=("import-check",),
    )
    wasm_import_cases()
    # host versions
    s = site("base")
    case(
        "host-version-compatible",
        "resolution",
        "adler32 needs host >=0.2.0, <0.9.0; host 0.8.9",
        [pin(s), install(s, "adler32", installed("adler32 1.0.0"), host_version="0.8.9")],
    )
    case(
        "host-version-too-new",
        "resolution",
        "adler32 needs host >=0.2.0, <0.9.0; host 0.9.0",
        [pin(s), install(s, "adler32", ERR("no-matching-version"), host_version="0.9.0")],
    )
    for slug, value in (("partial", "0.5"), ("prefixed", "v0.5.0"), ("leading-zero", "00.5.0")):
        case(
            f"host-version-not-semver-{slug}",
            "resolution",
            f"--host-version {value}: not a strict semver version",
            [pin(s), install(s, "adler32", ERR("bad-requirement"), host_version=value)],
        )
    case(
        "host-version-too-old",
        "resolution",
        "validate_email needs host >=0.2.0; host 0.1.9",
        [pin(s), install(s, "validate_email", ERR("no-matching-version"), host_version="0.1.9")],
    )
    case(
        "host-version-not-given",
        "resolution",
        "without --host-version host ranges are not applied",
        [pin(s), install(s, "adler32", installed("adler32 1.0.0"))],
    )
    case(
        "host-version-prerelease-host",
        "resolution",
        "host 0.5.0-rc.1 is below >=0.5.0 (semver precedence)",
        [pin(s), install(s, "semver-lab@^1.2", installed("semver-lab 1.2.0"), host_version="0.5.0-rc.1")],
    )


def manifest_strictness_cases(r11: Rel, rel_attack: Callable[..., None]) -> None:
    """The signed plugin.toml as the Python client reads it (decision 11, steps 1 and 4).

    Step 1 reads the facts it compares (a limit that is no size or duration, a byte order mark:
    ``malformed`` before anything else); after the entry agreed with them (step 4), the whole
    manifest must follow schemas/plugin.schema.json (``malformed``), before any permission is
    asked for. Each manifest is signed by its maintainer and pinned by the entry."""

    def signed(key: str | Rel, edit: Callable[[bytes], bytes], entry: Json | None = None) -> Rel:
        r = rel(key) if isinstance(key, str) else key
        v = variant(r, {"plugin.toml": edit(r.manifest)}, entry, repin=True)
        return signed_by(v, (K["alice"], comment(r.name, r.version)))

    def add(text: bytes) -> Callable[[bytes], bytes]:
        return lambda data: data + text

    refused: list[tuple[str, str, Callable[[bytes], bytes], Json | None, str]] = [
        (
            "memory-lower-case",
            'limits.memory "16mib": the schema\'s units are case-sensitive (KiB, MiB, GiB, KB, MB, GB, B)',
            sub(b'memory = "16MiB"', b'memory = "16mib"'),
            None,
            "malformed",
        ),
        (
            "memory-unit-upper-case",
            'limits.memory "16MIB"',
            sub(b'memory = "16MiB"', b'memory = "16MIB"'),
            None,
            "malformed",
        ),
        (
            "memory-trailing-newline",
            'limits.memory "16MiB\\n": a pattern\'s $ is the end of the text (ECMA-262), not before a '
            "final newline as in Python's re",
            sub(b'memory = "16MiB"', b'memory = "16MiB\\n"'),
            None,
            "malformed",
        ),
        (
            "keyword-trailing-newline",
            'a keyword "email\\n" (the pattern\'s $ is the end of the text)',
            sub(b'keywords = ["', b'keywords = ["email\\n", "'),
            None,
            "malformed",
        ),
        (
            "wall-time-trailing-newline",
            'limits.wall_time "500ms\\n", the entry saying 500 ms',
            add(b'wall_time = "500ms\\n"\n'),
            {"limits": {**r11.entry["limits"], "wall_time_ms": 500}},
            "malformed",
        ),
        (
            "wall-time-unit-upper-case",
            'limits.wall_time "500MS"',
            add(b'wall_time = "500MS"\n'),
            {"limits": {**r11.entry["limits"], "wall_time_ms": 500}},
            "malformed",
        ),
        (
            "permissions-inline-in-plugin",
            "an inline permissions table inside [plugin] (plugin.permissions is no key)",
            sub(b'abi = "core"', b'abi = "core"\npermissions = { keys = false }'),
            None,
            "malformed",
        ),
        ("unknown-table", "an unknown table [x]", add(b"\n[x]\ny = 1\n"), None, "malformed"),
        (
            "unknown-key",
            "an unknown key in [artifact]",
            sub(b"size = ", b'kind = "module"\nsize = '),
            None,
            "malformed",
        ),
        (
            "unknown-limit",
            "limits.compile_time (not a manifest limit)",
            add(b'compile_time = "1s"\n'),
            None,
            "malformed",
        ),
        (
            "sha256-upper-case",
            "[artifact] sha256 in upper case (the comparison lower-cases it, the schema does not)",
            lambda d: d.replace(sha(r11.wasm).encode(), sha(r11.wasm).upper().encode()),
            None,
            "malformed",
        ),
        (
            "fuel-zero",
            "limits.fuel 0 (the schema's minimum is 1), the entry agreeing",
            sub(b"fuel = 50000000", b"fuel = 0"),
            {"limits": {**r11.entry["limits"], "fuel": 0}},
            "malformed",
        ),
        (
            "exports-duplicate",
            "exports.functions names validate_email twice, the entry agreeing",
            sub(b'functions = ["validate_email"]', b'functions = ["validate_email", "validate_email"]'),
            {"exports": ["validate_email", "validate_email"]},
            "malformed",
        ),
        (
            "missing-license",
            "[plugin] without license",
            sub(b'license = "Apache-2.0"\n', b""),
            None,
            "malformed",
        ),
        (
            "too-large",
            "a plugin.toml of more than 256 KiB (a comment pads it)",
            add(b"#" + b"x" * (256 * 1024) + b"\n"),
            None,
            "malformed",
        ),
        (
            "memory-19-digits",
            "limits.memory with 19 digits: not a size (step 1, before the entry is compared)",
            sub(b'memory = "16MiB"', b'memory = "1234567890123456789"'),
            None,
            "malformed",
        ),
        (
            "wall-time-over-ten-years",
            "limits.wall_time 315360001 seconds: beyond ten years (step 1)",
            add(b"wall_time = 315360001\n"),
            None,
            "malformed",
        ),
        (
            "wall-time-string-over-ten-years",
            'limits.wall_time "522w" (the entry holds its milliseconds): a duration string beyond ten '
            "years is as out of range as the number (step 1)",
            add(b'wall_time = "522w"\n'),
            {"limits": {**r11.entry["limits"], "wall_time_ms": 522 * 604800 * 1000}},
            "malformed",
        ),
        (
            "memory-over-2p53",
            "limits.memory 2**53 + 1 bytes (the entry holds 2**53, the most a document may): no size "
            "(step 1, before the entry is compared)",
            sub(b'memory = "16MiB"', b"memory = 9007199254740993"),
            {"limits": {**r11.entry["limits"], "memory": 2**53}},
            "malformed",
        ),
        (
            "memory-string-over-2p53",
            'limits.memory "8796093022209KiB" (2**53 + 1024 bytes; the entry holds 2**53): no size (step 1)',
            sub(b'memory = "16MiB"', b'memory = "8796093022209KiB"'),
            {"limits": {**r11.entry["limits"], "memory": 2**53}},
            "malformed",
        ),
        (
            "byte-order-mark",
            "plugin.toml starting with a byte order mark (not TOML)",
            lambda d: b"\xef\xbb\xbf" + d,
            None,
            "malformed",
        ),
        (
            "exports-absent",
            "no [exports] table while the entry lists no exports: the absent list differs from []",
            sub(b'[exports]\nfunctions = ["validate_email"]\n', b""),
            {"exports": []},
            "mix-and-match",
        ),
        (
            "unknown-key-and-entry-permissions",
            "an unknown key, and the entry lists a permission the manifest does not "
            "declare: the entry is compared first",
            add(b"\n[x]\ny = 1\n"),
            {"permissions": ["keys"]},
            "mix-and-match",
        ),
    ]
    for slug, description, edit, entry, expect in refused:
        rel_attack(
            f"manifest-strict-{slug}",
            "malformed" if expect == "malformed" else "mix-and-match",
            f"a maintainer-signed plugin.toml: {description}",
            with_releases(signed(r11, edit, entry)),
            expect,
            allow="keys",
        )
    # Not TOML 1.0 as tomli 2.2 (the Python client's parser) reads it: malformed at step 1. The
    # entry lists a permission the manifest does not declare, so a verifier whose parser took the
    # text would compare the entry first and answer mix-and-match (as unknown-key-and-entry-
    # permissions does) instead.
    not_toml: list[tuple[str, str, bytes]] = [
        ("escape-e", "the escape \\e (TOML 1.1)", b'\n[[tests]]\ninput = "\\e"\n'),
        ("escape-x", "the escape \\x41 (TOML 1.1)", b'\n[[tests]]\ninput = "\\x41"\n'),
        (
            "inline-trailing-comma",
            "an inline table with a trailing comma (TOML 1.1)",
            b'\n[[tests]]\nenv = {a = "b",}\n',
        ),
        (
            "inline-newline",
            "an inline table over several lines (TOML 1.1)",
            b'\n[[tests]]\nenv = {\na = "b"\n}\n',
        ),
        ("time-without-seconds", "a local time 07:32 without seconds (TOML 1.1)", b"\n[x]\nt = 07:32\n"),
        (
            "dotted-then-header",
            "a table made by a dotted key and then opened again by a [header]",
            b'\n[[tests]]\nenv.a = "1"\n[tests.env]\nb = "2"\n',
        ),
        (
            "dotted-then-header-top",
            "a top-level table made by a dotted key and then opened again by a [header]",
            b"\n[x]\na.b = 1\n[x.a]\nc = 2\n",
        ),
        (
            "inline-extended",
            "an inline table extended by a dotted key",
            b'\n[[tests]]\nenv = {a = "1"}\nenv.b = "2"\n',
        ),
        ("del-in-comment", "a DEL (0x7f) in a comment", b"# \x7f\n"),
        ("year-zero", "the date 0000-01-01 (no year 0)", b"\n[x]\nd = 0000-01-01\n"),
        (
            "year-zero-offset",
            "the date-time 0000-01-01T00:00:00Z (no year 0)",
            b"\n[x]\nd = 0000-01-01T00:00:00Z\n",
        ),
        ("february-29", "the date 1979-02-29 (not a leap year)", b"\n[x]\nd = 1979-02-29\n"),
        ("hour-24", "the date-time 1979-05-27T24:00:00Z", b"\n[x]\nd = 1979-05-27T24:00:00Z\n"),
        ("second-60", "the local time 07:32:60 (no leap second)", b"\n[x]\nt = 07:32:60\n"),
        ("offset-24h", "the offset +24:00", b"\n[x]\nd = 1979-05-27T00:00:00+24:00\n"),
        (
            "integer-above-int64",
            "the integer 2^63 (beyond signed 64 bits)",
            b"\n[x]\nn = 9223372036854775808\n",
        ),
        (
            "integer-below-int64",
            "the integer -2^63-1 (beyond signed 64 bits)",
            b"\n[x]\nn = -9223372036854775809\n",
        ),
        (
            "integer-limit-above-int64",
            "limits.table_elements = 2^63",
            b"table_elements = 9223372036854775808\n",
        ),
        ("float-overflow", "the float 1e400 (overflows to inf)", b"\n[x]\nf = 1e400\n"),
        ("float-overflow-negative", "the float -1e400 (overflows to -inf)", b"\n[x]\nf = -1e400\n"),
    ]
    for slug, description, text in not_toml:
        rel_attack(
            f"manifest-toml-{slug}",
            "malformed",
            f"a maintainer-signed plugin.toml that is not TOML 1.0: {description}; the entry lists a "
            "permission the manifest does not declare (a parser that took the text answers mix-and-match)",
            with_releases(signed(r11, add(text), {"permissions": ["keys"]})),
            "malformed",
            allow="keys",
        )
    vc = rel("visit_counter 1.0.0")
    s = site(
        "manifest-strict-before-permissions", Site(releases=with_releases(signed(vc, add(b"\n[x]\ny = 1\n"))))
    )
    case(
        "manifest-strict-before-permissions",
        "malformed",
        "visit_counter's signed plugin.toml has an unknown table and nothing is allowed: the schema is "
        "checked before any permission is asked for",
        [pin(s), install(s, "visit_counter", ERR("malformed"))],
    )
    accepted: list[tuple[str, str, Callable[[bytes], bytes], Json | None]] = [
        (
            "size-integral-float",
            "[artifact] size written 1100.0 (draft 7 takes an integral float as an integer)",
            lambda d: d.replace(f"size = {len(r11.wasm)}\n".encode(), f"size = {len(r11.wasm)}.0\n".encode()),
            None,
        ),
        (
            "memory-space-before-unit",
            'limits.memory "16 MiB"',
            sub(b'memory = "16MiB"', b'memory = "16 MiB"'),
            None,
        ),
        (
            "permission-any-name",
            'a permission named "Weird Name!" set to false (names are not restricted)',
            sub(b"network = false", b'network = false\n"Weird Name!" = false'),
            None,
        ),
        (
            "toml-dotted-then-subtable",
            "tests.expect_local_response made by a dotted key, then a [header] for a table inside it "
            "(TOML 1.0 allows a sub-table of a dotted-key table)",
            add(
                b"\n[[tests]]\nexpect_local_response.status = 200\n"
                b'[tests.expect_local_response.headers]\na = "b"\n'
            ),
            None,
        ),
        (
            "toml-integer-int64-min",
            "[[tests]] args = [-2^63] (the lowest signed 64-bit integer)",
            add(b"\n[[tests]]\nargs = [-9223372036854775808]\n"),
            None,
        ),
        (
            "toml-float-negative-infinity",
            "[[tests]] args = [-inf] (the literal, not an overflow)",
            add(b"\n[[tests]]\nargs = [-inf]\n"),
            None,
        ),
    ]
    for slug, description, edit, entry in accepted:
        good = signed(r11, edit, entry)
        s = site(f"manifest-strict-{slug}", Site(releases=with_releases(good)))
        case(
            f"manifest-strict-{slug}",
            "success",
            f"a maintainer-signed plugin.toml the schema accepts: {description}",
            [pin(s), install(s, "validate_email@1.1.0", installed(good))],
        )
    core = signed(r11, sub(b'abi = "core"', b'abi = "component"'), {"abi": "component"})
    rel_attack(
        "module-kind-not-component",
        "mix-and-match",
        "the signed manifest and the entry say abi component, but the module is a core module",
        with_releases(core),
        "mix-and-match",
    )


def _wasm_name(text: bytes) -> bytes:
    return leb(len(text)) + text


def _wasm_section(section_id: int, body: bytes, size: int | None = None) -> bytes:
    return bytes([section_id]) + leb(len(body) if size is None else size) + body


_WASM_CORE = b"\0asm\x01\0\0\0"
_WASM_TYPES = _wasm_section(1, b"\x01\x60\x00\x00")  # one function type [] -> []
_WASM_KEYS = _wasm_name(b"ferrite:keys") + _wasm_name(b"get") + b"\x00\x00"  # func import, type 0
_WASM_BENIGN = _wasm_name(b"env") + _wasm_name(b"f") + b"\x00\x00"


def _then_keys(kind_and_type: bytes) -> bytes:
    """A core module importing env.x (``kind_and_type``: its import kind and type), then ferrite:keys.get."""
    first = _wasm_name(b"env") + _wasm_name(b"x") + kind_and_type
    return _WASM_CORE + _WASM_TYPES + _wasm_section(2, b"\x02" + first + _WASM_KEYS)


# (slug, description, module bytes, expected class): the import reader of decision 11.7 against
# the wasm binary encoding. A well-formed module importing ferrite:keys is undeclared-import
# whatever proposal its other imports use (the check does not judge features); bytes that are
# not a module the reader can walk exactly are malformed.
WASM_IMPORT_CASES: list[tuple[str, str, bytes, str]] = [
    (
        "global-typed-ref",
        "a global import of type (ref null func) (0x63 and a heap type), then ferrite:keys.get",
        _then_keys(b"\x03\x63\x70\x00"),
        "undeclared-import",
    ),
    (
        "table-typed-ref",
        "a table import of type (ref func) (0x64 and a heap type), then ferrite:keys.get",
        _then_keys(b"\x01\x64\x70\x00\x01"),
        "undeclared-import",
    ),
    (
        "global-type-index-ref",
        "130 function types; a global import of type (ref null 129) (a 2-byte type index), then ferrite:keys",
        _WASM_CORE
        + _wasm_section(1, leb(130) + b"\x60\x00\x00" * 130)
        + _wasm_section(
            2, b"\x02" + _wasm_name(b"env") + _wasm_name(b"x") + b"\x03\x63\x81\x01\x00" + _WASM_KEYS
        ),
        "undeclared-import",
    ),
    (
        "memory-page-size",
        "a memory import with custom-page-sizes limits (flags 0x08, page size 2^0), then ferrite:keys.get",
        _then_keys(b"\x02\x08\x01\x00"),
        "undeclared-import",
    ),
    (
        "memory64-long-minimum",
        "a memory64 import (flags 0x04) whose minimum 2^42 takes 7 LEB128 bytes, then ferrite:keys.get",
        _then_keys(b"\x02\x04" + leb(2**42)),
        "undeclared-import",
    ),
    (
        "limits-flags-unknown",
        "a memory import with limits flags 0x10 (no such flag), then ferrite:keys.get",
        _then_keys(b"\x02\x10\x01"),
        "malformed",
    ),
    (
        "leb-u32-overflow",
        "the import count 2^32 + 1 in five LEB128 bytes (a u32 overflows; cut: 1), then ferrite:keys.get",
        _WASM_CORE + _WASM_TYPES + _wasm_section(2, b"\x81\x80\x80\x80\x10" + _WASM_KEYS),
        "malformed",
    ),
    (
        "leb-u32-too-long",
        "the import count 1 in six LEB128 bytes (a u32 takes at most five), then ferrite:keys.get",
        _WASM_CORE + _WASM_TYPES + _wasm_section(2, b"\x81\x80\x80\x80\x80\x00" + _WASM_KEYS),
        "malformed",
    ),
    (
        "header-version-2",
        "the header says version 2 (neither a core module, version 1, nor a component); imports ferrite:keys",
        b"\0asm\x02\0\0\0" + _WASM_TYPES + _wasm_section(2, b"\x01" + _WASM_KEYS),
        "malformed",
    ),
    (
        "header-version-d-layer-0",
        "the header says version 0x0d layer 0 (a component is layer 1), then imports ferrite:keys",
        b"\0asm\x0d\0\0\0" + _WASM_TYPES + _wasm_section(2, b"\x01" + _WASM_KEYS),
        "malformed",
    ),
    (
        "name-not-utf8",
        "an import whose module name is the bytes 65 6e ff (not UTF-8), then ferrite:keys.get",
        _WASM_CORE
        + _WASM_TYPES
        + _wasm_section(2, b"\x02" + _wasm_name(b"en\xff") + _wasm_name(b"f") + b"\x00\x00" + _WASM_KEYS),
        "malformed",
    ),
    (
        "import-section-duplicate",
        "two import sections: env.f in the first, ferrite:keys.get in the second",
        _WASM_CORE
        + _WASM_TYPES
        + _wasm_section(2, b"\x01" + _WASM_BENIGN)
        + _wasm_section(2, b"\x01" + _WASM_KEYS),
        "malformed",
    ),
    (
        "import-section-trailing-bytes",
        "the import section counts one import (env.f) and holds a second (ferrite:keys.get) before its end",
        _WASM_CORE + _WASM_TYPES + _wasm_section(2, b"\x01" + _WASM_BENIGN + _WASM_KEYS),
        "malformed",
    ),
    (
        "section-out-of-order",
        "the import section (id 2) comes after the function section (id 3)",
        _WASM_CORE + _WASM_TYPES + _wasm_section(3, b"\x00") + _wasm_section(2, b"\x01" + _WASM_KEYS),
        "malformed",
    ),
    (
        "custom-section-overruns-end",
        "a custom section whose size runs 10 bytes past the module's end covers the import of ferrite:keys",
        _WASM_CORE
        + _WASM_TYPES
        + _wasm_section(
            0,
            _wasm_name(b"cc") + _wasm_section(2, b"\x01" + _WASM_KEYS),
            size=len(_wasm_name(b"cc") + _wasm_section(2, b"\x01" + _WASM_KEYS)) + 10,
        ),
        "malformed",
    ),
    (
        "import-section-overruns-end",
        "the import section (ferrite:keys.get) declares 5 bytes more than the module has",
        _WASM_CORE + _WASM_TYPES + _wasm_section(2, b"\x01" + _WASM_KEYS, size=len(b"\x01" + _WASM_KEYS) + 5),
        "malformed",
    ),
]


def wasm_import_cases() -> None:
    """sneaky 1.0.0 (no permission declared; keys allowed) with a crafted module each."""
    for slug, description, module, expect in WASM_IMPORT_CASES:
        spec = Spec(
            "sneaky",
            "1.0.0",
            "visit_counter",
            ("next_visit",),
            permissions=(("keys", False),),
            wasm_override=module,
        )
        s = site(f"wasm-{slug}", Site(releases=[*BASE_RELEASES, make_release(spec)]))
        case(
            f"wasm-{slug}",
            "permissions" if expect == "undeclared-import" else "malformed",
            f"sneaky declares no permission; its module: {description}",
            [pin(s), install(s, "sneaky", ERR(expect), allow="keys")],
            requires=("import-check",),
        )


def _extism_import(name: bytes) -> bytes:
    """A core module importing extism:host/env.``name`` (a function of type 0)."""
    entry = _wasm_name(b"extism:host/env") + _wasm_name(name) + b"\x00\x00"
    return _WASM_CORE + _WASM_TYPES + _wasm_section(2, b"\x01" + entry)


# (slug, description, imported extism:host/env function, network declared, expected class or None)
EXTISM_IMPORT_CASES: list[tuple[str, str, bytes, bool, str | None]] = [
    (
        "http-undeclared",
        "imports extism:host/env.http_request and declares no permission",
        b"http_request",
        False,
        "undeclared-import",
    ),
    (
        "http-declared",
        "imports extism:host/env.http_request and declares network (allowed)",
        b"http_request",
        True,
        None,
    ),
    (
        "config-get",
        "imports extism:host/env.config_get and declares no permission (ungated)",
        b"config_get",
        False,
        None,
    ),
]


def extism_import_cases() -> None:
    """Decision 11.7: the Extism host's HTTP functions (extism:host/env http_*) need network."""
    for slug, description, name, network, expect in EXTISM_IMPORT_CASES:
        spec = Spec(
            "sneaky",
            "1.0.0",
            "visit_counter",
            ("run",),
            abi="extism",
            permissions=(("network", network),),
            wasm_override=_extism_import(name),
        )
        r = make_release(spec)
        s = site(f"wasm-extism-{slug}", Site(releases=[*BASE_RELEASES, r]))
        case(
            f"wasm-extism-{slug}",
            "permissions",
            f"sneaky 1.0.0 (abi extism) {description}: " + (expect if expect else "installed"),
            [pin(s), install(s, "sneaky", ERR(expect) if expect else installed(r), allow="network")],
            requires=("import-check",),
        )


# ---------------------------------------------------------------- ranges


RANGE_CASES: list[tuple[str, str, str | None, str | None]] = [
    # slug, requirement, host version, expected version (None = no-matching-version)
    ("bare-name", "semver-lab", None, "1.4.0"),
    ("star", "semver-lab@*", None, "1.4.0"),
    ("caret-major", "semver-lab@^1.2", None, "1.4.0"),
    ("caret-zero-minor", "semver-lab@^0.2", None, "0.2.3"),
    ("caret-zero-patch", "semver-lab@^0.1.0", None, "0.1.5"),
    ("caret-zero-zero", "semver-lab@^0.0.3", None, None),
    ("tilde", "semver-lab@~0.1", None, "0.1.5"),
    ("partial-minor", "semver-lab@0.2", None, "0.2.3"),
    ("partial-major", "semver-lab@1", None, "1.4.0"),
    ("x-patch", "semver-lab@1.2.x", None, "1.2.5"),
    ("star-minor", "semver-lab@1.*", None, "1.4.0"),
    ("less-than", "semver-lab@<1.0.0", None, "0.2.3"),
    ("comma-set", "semver-lab@>=0.2.0, <1.2.0", None, "1.0.0"),
    ("space-set", "semver-lab@>=0.2.0 <1.2.0", None, "1.0.0"),
    ("or", "semver-lab@1.0.0 || ^0.1", None, "1.0.0"),
    ("or-no-spaces", "semver-lab@^0.1||^0.2", None, "0.2.3"),
    ("exclusive-none", "semver-lab@>1.2.0 <1.2.5", None, None),
    ("exact", "semver-lab@1.2.0", None, "1.2.0"),
    ("exact-equals", "semver-lab@=1.0.0", None, "1.0.0"),
    ("yanked-exact-pin", "semver-lab@1.3.0", None, "1.3.0"),
    ("yanked-exact-equals", "semver-lab@=1.3.0", None, "1.3.0"),
    ("yanked-not-by-tilde", "semver-lab@~1.3", None, None),
    ("yanked-not-by-partial", "semver-lab@1.3", None, None),
    ("yanked-not-by-range", "semver-lab@>=1.3.0 <1.4.0", None, None),
    ("prerelease-excluded", "semver-lab@2", None, None),
    ("prerelease-exact", "semver-lab@2.0.0-rc.1", None, "2.0.0-rc.1"),
    ("prerelease-opt-in", "semver-lab@>=1.3.0-beta.1 <1.3.1", None, "1.3.0-beta.1"),
    ("prerelease-caret", "semver-lab@^1.3.0-beta.1", None, "1.4.0"),
    ("prerelease-other-tuple", "semver-lab@>=0.2.0-alpha.0 <0.4.0", None, "0.2.3"),
    ("host-filters-range", "semver-lab@^1.2", "0.3.0", "1.2.0"),
    ("host-mid", "semver-lab@^1.2", "0.6.0", "1.2.5"),
    ("host-new", "semver-lab@^1.2", "0.9.1", "1.4.0"),
    ("host-filters-exact-pin", "semver-lab@1.4.0", "0.3.0", None),
]

BAD_REQUIREMENTS: list[tuple[str, str]] = [
    ("empty", ""),
    ("empty-range", "semver-lab@"),
    ("hyphen-range", "semver-lab@1.0.0 - 2.0.0"),
    ("build-metadata", "semver-lab@1.0.0+build"),
    ("tilde-arrow", "semver-lab@~>1.0"),
    ("four-parts", "semver-lab@1.2.3.4"),
    ("bare-caret", "semver-lab@^"),
    ("v-prefix", "semver-lab@v1.0.0"),
    ("leading-zero", "semver-lab@>=01.0.0"),
    ("trailing-or", "semver-lab@1.0.0 ||"),
    ("x-major", "semver-lab@x"),
    ("space-after-operator", "semver-lab@>= 1.0.0"),
    ("double-at", "semver-lab@@1"),
    ("bad-name", "Semver-Lab@1.0.0"),
    ("name-newline", "semver-lab\n"),
    ("range-newline", "semver-lab@1.0.0\n"),
]


def range_cases() -> None:
    s = site("base")
    for slug, req, host, version in RANGE_CASES:
        expect = installed(f"semver-lab {version}") if version else ERR("no-matching-version")
        kw = {"host_version": host} if host else {}
        what = f"{req!r}" + (f" on host {host}" if host else "")
        result = f"selects {version}" if version else "matches nothing"
        case(f"range-{slug}", "resolution", f"{what} {result}", [pin(s), install(s, req, expect, **kw)])
    for slug, req in BAD_REQUIREMENTS:
        case(
            f"requirement-{slug}",
            "resolution",
            f"{req!r} is not a valid requirement",
            [pin(s), install(s, req, ERR("bad-requirement"))],
        )


# ---------------------------------------------------------------- transport


def transport_cases() -> None:
    s = site("base")
    r = rel(E11)
    wasm, manifest = r.entry["wasm"]["path"], r.entry["manifest"]["path"]
    for target, label in (("registry.json", "registry.json"), (wasm, "the wasm")):
        slug = "top" if target == "registry.json" else "wasm"
        op = (
            refresh(s, ERR("slow-retrieval"), serve={target: "slow"}, deadline_ms=DEADLINE_SLOW)
            if slug == "top"
            else install(
                s, "validate_email", ERR("slow-retrieval"), serve={target: "slow"}, deadline_ms=DEADLINE_SLOW
            )
        )
        case(
            f"transport-slow-{slug}",
            "slow-retrieval",
            f"{label} trickles one byte and stalls past the deadline",
            [pin(s), op],
        )
    case(
        "transport-slow-signature",
        "slow-retrieval",
        "registry.json.minisig trickles one byte and stalls",
        [
            pin(s),
            refresh(
                s, ERR("slow-retrieval"), serve={"registry.json.minisig": "slow"}, deadline_ms=DEADLINE_SLOW
            ),
        ],
    )
    case(
        "transport-endless-wasm",
        "endless-data",
        "the wasm streams without end",
        [pin(s), install(s, "validate_email", ERR("endless-data"), serve={wasm: "endless"})],
    )
    case(
        "transport-endless-manifest",
        "endless-data",
        "plugin.toml streams without end",
        [pin(s), install(s, "validate_email", ERR("endless-data"), serve={manifest: "endless"})],
    )
    case(
        "transport-endless-signature",
        "endless-data",
        "plugin.toml.minisig streams without end (cap 16 KiB)",
        [pin(s), install(s, "validate_email", ERR("endless-data"), serve={manifest + ".minisig": "endless"})],
    )
    case(
        "transport-404-top",
        "transport",
        "registry.json is missing",
        [pin(s), refresh(s, ERR("network"), serve={"registry.json": "404"})],
    )
    case(
        "transport-404-wasm",
        "transport",
        "the pinned wasm is missing (404): a network error, not not-found",
        [pin(s), install(s, "validate_email", ERR("network"), serve={wasm: "404"})],
    )
    case(
        "transport-404-manifest",
        "transport",
        "the pinned plugin.toml is missing",
        [pin(s), install(s, "validate_email", ERR("network"), serve={manifest: "404"})],
    )
    case(
        "transport-404-plugin-document",
        "transport",
        "the pinned plugin document is missing",
        [
            pin(s),
            install(s, "validate_email", ERR("network"), serve={SITES["base"].docs["validate_email"]: "404"}),
        ],
    )
    case(
        "transport-500-top",
        "transport",
        "registry.json answers 500",
        [pin(s), refresh(s, ERR("network"), serve={"registry.json": "500"})],
    )
    case(
        "transport-500-top-signature",
        "transport",
        "registry.json.minisig answers 500 (only 404 means absent)",
        [pin(s), refresh(s, ERR("network"), serve={"registry.json.minisig": "500"})],
    )
    case(
        "transport-500-wasm",
        "transport",
        "the wasm answers 500",
        [pin(s), install(s, "validate_email", ERR("network"), serve={wasm: "500"})],
    )
    case(
        "transport-404-keyed-signature-ok",
        "transport",
        "registry.json.<KEYID>.minisig is absent (404) while registry.json.minisig is there: fine",
        [pin(s), refresh(s, OK(registry_version=V_BASE))],
    )
    case(
        "transport-connection-reset-top",
        "transport",
        "the server closes the connection without answering for registry.json",
        [pin(s), refresh(s, ERR("network"), serve={"registry.json": "reset"})],
    )


# ---------------------------------------------------------------- installed state


LOCK = "registry-tool.lock.json"
TOP_ONLY = [
    r"registry\.json",
    r"registry\.json(\.[0-9A-F]{16})?\.minisig",
    r"root/[0-9]+\.root\.json(\.[0-9A-F]{16}\.minisig)?",
]


def installed_cases() -> None:
    s = site("base")
    r = rel(E11)
    wasm = f"validate_email/1.1.0/{r.wasm_file}"
    manifest = "validate_email/1.1.0/plugin.toml"
    first = [pin(s), install(s, "validate_email", EMAIL_INSTALLED)]

    def tamper(path: str, action: str, **kw: Any) -> Json:
        return {"op": "tamper", "path": path, "action": action, **kw}

    cases: list[tuple[str, str, str, list[Json], str]] = [
        (
            "installed-wasm-appended",
            "installed-state",
            "a byte appended to the installed wasm",
            [tamper(wasm, "append")],
            "installed-tampered",
        ),
        (
            "installed-wasm-replaced",
            "installed-state",
            "the installed wasm replaced by other bytes of the same size",
            [tamper(wasm, "flip")],
            "installed-tampered",
        ),
        (
            "installed-wasm-deleted",
            "installed-state",
            "the installed wasm deleted",
            [tamper(wasm, "delete")],
            "installed-tampered",
        ),
        (
            "installed-manifest-appended",
            "installed-state",
            "a byte appended to the installed plugin.toml",
            [tamper(manifest, "append")],
            "installed-tampered",
        ),
        (
            "installed-wasm-relocked",
            "installed-state",
            "the wasm changed and the lockfile updated to match: "
            "the stored signed manifest pins the old digest",
            [tamper(wasm, "append", relock=True)],
            "installed-tampered",
        ),
        (
            "installed-manifest-relocked",
            "installed-state",
            "plugin.toml changed and the lockfile updated to match: the stored maintainer signature fails",
            [
                tamper(
                    manifest,
                    "write",
                    content=r.manifest.decode().replace("RFC 5322", "RFC 5321"),
                    relock=True,
                )
            ],
            "installed-tampered",
        ),
        (
            "installed-wasm-symlink",
            "installed-state",
            "the wasm replaced by a symlink to an identical file outside the plugin directory",
            [{"op": "symlink", "path": wasm, "target": "outside"}],
            "unsafe-path",
        ),
        (
            "installed-version-dir-symlink",
            "installed-state",
            "the release folder replaced by a symlink to an identical copy outside the plugin directory",
            [{"op": "symlink", "path": "validate_email/1.1.0", "target": "outside"}],
            "unsafe-path",
        ),
        (
            "lockfile-garbage",
            "lockfile",
            "the lockfile is not JSON",
            [tamper(LOCK, "write", content="{not json")],
            "lockfile",
        ),
        (
            "lockfile-unknown-version",
            "lockfile",
            "lockfile_version 4 on the base line",
            [tamper(LOCK, "json-set", pointer=["lockfile_version"], value=4)],
            "lockfile",
        ),
        (
            "lockfile-version-1",
            "lockfile",
            "lockfile_version 1 (format 1 clients)",
            [tamper(LOCK, "json-set", pointer=["lockfile_version"], value=1)],
            "lockfile",
        ),
        (
            "lockfile-wrong-type",
            "lockfile",
            "an entry's version is a number",
            [tamper(LOCK, "json-set", pointer=["plugins", "validate_email", "version"], value=1)],
            "lockfile",
        ),
        (
            "lockfile-path-outside",
            "lockfile",
            "an entry's wasm path leaves <name>/<version>/",
            [
                tamper(
                    LOCK, "json-set", pointer=["plugins", "validate_email", "wasm"], value="../outside.wasm"
                )
            ],
            "lockfile",
        ),
        (
            "lockfile-path-other-plugin",
            "lockfile",
            "an entry's manifest path is under another plugin",
            [
                tamper(
                    LOCK,
                    "json-set",
                    pointer=["plugins", "validate_email", "manifest"],
                    value="visit_counter/1.0.0/plugin.toml",
                )
            ],
            "lockfile",
        ),
        (
            "lockfile-digest-not-hex",
            "lockfile",
            "an entry's wasm_sha256 is not 64 lower-case hex digits",
            [tamper(LOCK, "json-set", pointer=["plugins", "validate_email", "wasm_sha256"], value="XYZ")],
            "lockfile",
        ),
        (
            "lockfile-change-line-wrong-type",
            "lockfile",
            "a change line replaces validate_email with an entry whose version is a number",
            [
                tamper(
                    LOCK, "json-set", pointer=["plugins", "validate_email", "version"], value=1, change=True
                )
            ],
            "lockfile",
        ),
        (
            "lockfile-change-line-path-outside",
            "lockfile",
            "a change line replaces validate_email with an entry whose wasm path leaves <name>/<version>/",
            [
                tamper(
                    LOCK,
                    "json-set",
                    pointer=["plugins", "validate_email", "wasm"],
                    value="../outside.wasm",
                    change=True,
                )
            ],
            "lockfile",
        ),
        (
            "lockfile-change-line-removes-absent",
            "lockfile",
            "a change line removes (null) adler32, which the lockfile does not hold",
            [tamper(LOCK, "append-text", content='{"plugins":{"adler32":null}}\n')],
            "lockfile",
        ),
        (
            "lockfile-change-line-plugins-empty",
            "lockfile",
            "a change line with an empty plugins object",
            [tamper(LOCK, "append-text", content='{"plugins":{}}\n')],
            "lockfile",
        ),
        (
            "lockfile-change-line-plugins-not-object",
            "lockfile",
            "a change line whose plugins is a list",
            [tamper(LOCK, "append-text", content='{"plugins":[]}\n')],
            "lockfile",
        ),
        (
            "lockfile-change-line-extra-member",
            "lockfile",
            "a change line holding lockfile_version too (only the base line has it)",
            [
                tamper(
                    LOCK, "append-text", content='{"lockfile_version":3,"plugins":{"validate_email":null}}\n'
                )
            ],
            "lockfile",
        ),
        (
            "lockfile-change-line-duplicate-member",
            "lockfile",
            "a change line naming validate_email twice",
            [
                tamper(
                    LOCK, "append-text", content='{"plugins":{"validate_email":null,"validate_email":null}}\n'
                )
            ],
            "lockfile",
        ),
        (
            "lockfile-change-line-not-json",
            "lockfile",
            "a complete change line that is not JSON",
            [tamper(LOCK, "append-text", content="{not json\n")],
            "lockfile",
        ),
        (
            "lockfile-no-complete-line",
            "lockfile",
            "a version 3 base without its newline: the file holds no complete line",
            [tamper(LOCK, "write", content='{"lockfile_version":3,"plugins":{}}')],
            "lockfile",
        ),
        (
            "lockfile-registry-ftp",
            "lockfile",
            "an entry's registry is an ftp:// URL: the trust state is looked up by the entry's "
            "registry, and only http://, https:// and file:// URLs name one, so reading the lockfile "
            "refuses it (decision 15)",
            [
                tamper(
                    LOCK,
                    "json-set",
                    pointer=["plugins", "validate_email", "registry"],
                    value="ftp://127.0.0.1/",
                )
            ],
            "lockfile",
        ),
        (
            "lockfile-registry-change-line-gopher",
            "lockfile",
            "a change line replaces validate_email with an entry whose registry is a gopher:// URL",
            [
                tamper(
                    LOCK,
                    "json-set",
                    pointer=["plugins", "validate_email", "registry"],
                    value="gopher://127.0.0.1/",
                    change=True,
                )
            ],
            "lockfile",
        ),
        (
            "lockfile-registry-no-host",
            "lockfile",
            "an entry's registry is http:/// (an http URL naming no host)",
            [tamper(LOCK, "json-set", pointer=["plugins", "validate_email", "registry"], value="http:///")],
            "lockfile",
        ),
        (
            "lockfile-registry-port-out-of-range",
            "lockfile",
            "an entry's registry names port 99999",
            [
                tamper(
                    LOCK,
                    "json-set",
                    pointer=["plugins", "validate_email", "registry"],
                    value="http://127.0.0.1:99999/",
                )
            ],
            "lockfile",
        ),
        (
            "lockfile-wasm-size-negative-zero",
            "installed-state",
            "a change line records validate_email's wasm_size as -0: the integer 0 (as every JSON reader of "
            "the suite reads it), which the installed module's size differs from",
            [tamper(LOCK, "append-text", content=_negative_zero_change_line())],
            "installed-tampered",
        ),
        (
            "lockfile-version-2-base-line-with-changes",
            "lockfile",
            "a base line with lockfile_version 2 followed by a change line (neither version 2 nor 3)",
            [
                tamper(
                    LOCK, "write", content='{"lockfile_version":2,"plugins":{}}\n{"plugins":{"x":null}}\n'
                ),
            ],
            "lockfile",
        ),
    ]
    for case_id, threat, description, steps, expect in cases:
        case(case_id, threat, description, [*first, *steps, verify(ERR(expect))])
    lockfile_v3_cases(s, first)
    lock_facts_cases(s, first)
    for case_id, spec, value, change in (
        ("lockfile-registry-ftp-install", "validate_email", "ftp://127.0.0.1/", False),
        ("lockfile-registry-change-line-gopher-install", "validate_email@1.1.0", "gopher://127.0.0.1/", True),
        ("lockfile-registry-port-out-of-range-install-other", "adler32", "http://127.0.0.1:99999/", False),
    ):
        case(
            case_id,
            "lockfile",
            f"an entry's registry is {value}: install reads the lockfile and refuses it (decision 15), "
            f"nothing is written; here installing {spec}",
            [
                *first,
                tamper(
                    LOCK,
                    "json-set",
                    pointer=["plugins", "validate_email", "registry"],
                    value=value,
                    **({"change": True} if change else {}),
                ),
                install(s, spec, ERR("lockfile")),
            ],
        )
    case(
        "lockfile-registry-other-file-url",
        "lockfile",
        "an entry's registry is a file:// URL no root is pinned for: a registry URL verify accepts",
        [
            *first,
            tamper(
                LOCK,
                "json-set",
                pointer=["plugins", "validate_email", "registry"],
                value="file:///nonexistent/",
            ),
            verify(OK(plugins=["validate_email"])),
        ],
    )
    # urlsplit's own refusals and acceptances (decision 15): a netloc holding a character whose
    # NFKC form holds / ? # @ or : (_checknetloc), a bracketed zone holding % (ipaddress), and an
    # IPvFuture whose part after "v<hex>." is any characters at all.
    refused_urls = (
        ("nfkc-solidus", "http://h\uff0fx/", "a host holding U+FF0F FULLWIDTH SOLIDUS (NFKC: /)"),
        ("nfkc-account-of", "http://a\u2100b/", "a host holding U+2100 ACCOUNT OF (NFKC: a/c)"),
        ("nfkc-colon-after-bracket", "http://[::1]\uff1a/", "U+FF1A FULLWIDTH COLON after [::1] (NFKC: :)"),
        ("zone-percent", "http://[::1%1%2]/", "the bracketed host ::1%1%2 (a zone holding %)"),
        ("zone-only-percent", "http://[fe80::1%%]/", "the bracketed host fe80::1%% (the zone is %)"),
    )
    # A user name or password (decision 15): the URL is written into the lockfile, the trust state
    # and messages, so the Python client's normalise_url refuses it.
    credentials = "the Python client's normalise_url refuses it (credentials in the URL would leak)"
    for slug, value, description, who in (
        *[
            (slug, value, description, "Python's urlsplit refuses it")
            for slug, value, description in refused_urls
        ],
        (
            "userinfo",
            "http://user:s3cret@127.0.0.1/",
            "a user name and password before the host",
            credentials,
        ),
        ("userinfo-empty", "http://@127.0.0.1/", "an empty user name before the host", credentials),
    ):
        set_registry = tamper(
            LOCK, "json-set", pointer=["plugins", "validate_email", "registry"], value=value
        )
        case(
            f"lockfile-registry-{slug}",
            "lockfile",
            f"an entry's registry is {value!r}, {description}: {who}, so reading the lockfile refuses it "
            "(decision 15)",
            [*first, set_registry, verify(ERR("lockfile"))],
        )
        case(
            f"lockfile-registry-{slug}-install",
            "lockfile",
            f"an entry's registry is {value!r}, {description}: install reads the lockfile and refuses "
            "it (decision 15), nothing is written; here installing adler32",
            [*first, set_registry, install(s, "adler32", ERR("lockfile"))],
        )
    accepted_urls = (
        ("ipvfuture-space", "http://[v1.a b]/", "an IPvFuture host holding a space"),
        ("ipvfuture-non-ascii", "http://[v1.\u00e9]/", "an IPvFuture host holding U+00E9"),
        ("zone-non-ascii", "http://[fe80::1%\u00e9]/", "an IPv6 host whose zone is U+00E9"),
        ("nfkc-solidus-in-path", "http://h/\uff0f/", "U+FF0F FULLWIDTH SOLIDUS in the path, not the host"),
        ("at-in-path", "http://127.0.0.1/a@b/", "an @ in the path, not before the host"),
        ("at-in-query", "http://127.0.0.1/?x@y", "an @ in the query, not before the host"),
    )
    for slug, value, description in accepted_urls:
        set_registry = tamper(
            LOCK, "json-set", pointer=["plugins", "validate_email", "registry"], value=value
        )
        case(
            f"lockfile-registry-{slug}",
            "lockfile",
            f"an entry's registry is {value!r}, {description}: a URL Python's urlsplit and normalise_url "
            "accept (no root is pinned for it), so verify accepts the lockfile (decision 15)",
            [*first, set_registry, verify(OK(plugins=["validate_email"]))],
        )
        case(
            f"lockfile-registry-{slug}-install",
            "lockfile",
            f"an entry's registry is {value!r}, {description}: install accepts the lockfile and installs "
            "adler32 beside it",
            [*first, set_registry, install(s, "adler32", installed("adler32 1.0.0"))],
        )
    case(
        "install-into-symlinked-plugin-folder",
        "installed-state",
        "the plugin folder validate_email is a symlink to a folder outside: "
        "install refuses to write through it",
        [
            pin(s),
            {"op": "mkdir", "path": "validate_email"},
            {"op": "symlink", "path": "validate_email", "target": "outside"},
            install(s, "validate_email", ERR("unsafe-path")),
        ],
    )
    revoked = site("revoked-drop-republished", Site(roots=chain(R2_REVOKE_DROP)))
    case(
        "revoked-since-install-reinstall",
        "revocation",
        "validate_email 1.1.0 (signed by alice) is installed; root 2 then revokes alice without "
        "keep_prior_releases and the registry is republished unchanged: installing validate_email "
        "again must not keep the installed release (its stored signatures no longer count)",
        [*first, install(revoked, "validate_email", ERR("maintainer-signature"))],
    )
    case(
        "revoked-since-install-failed-install-persists-root",
        "revocation",
        "as revoked-since-install-reinstall: the install that fails has walked to root 2 and verified "
        "registry.json, so root 2 is kept (decision 3): verify then refuses the installed copy's "
        "stored signatures, as root 2 revoked their key",
        [
            *first,
            install(revoked, "validate_email", ERR("maintainer-signature")),
            verify(ERR("installed-tampered")),
        ],
    )
    case(
        "revoked-since-install-exact-pin",
        "revocation",
        "as revoked-since-install-reinstall, with the exact pin validate_email@1.1.0 (the version "
        "installed): refused, not kept",
        [*first, install(revoked, "validate_email@1.1.0", ERR("maintainer-signature"))],
    )
    resigned = site(
        "revoked-drop-resigned",
        Site(
            roots=chain(R2_REVOKE_RESIGNED),
            releases=with_releases(
                signed_by(
                    E11,
                    (K["alice"], comment("validate_email", "1.1.0")),
                    (K["alice-new"], comment("validate_email", "1.1.0")),
                )
            ),
        ),
    )
    case(
        "revoked-since-install-resigned",
        "revocation",
        "validate_email 1.1.0 (signed by alice) is installed; root 2 revokes alice without "
        "keep_prior_releases and the owners re-sign the release with a current key (docs/trust.md 5.3): "
        "installing it again takes the registry's signatures, the installed copy's no longer counting",
        [
            *first,
            install(resigned, "validate_email", EMAIL_INSTALLED),
            verify(OK(plugins=["validate_email"])),
        ],
    )
    case(
        "revoked-since-install-other-plugin",
        "revocation",
        "after alice's revocation, installing adler32 (bob's) succeeds: it does not judge the "
        "installed validate_email; verify then refuses validate_email's stored signatures",
        [
            *first,
            install(revoked, "adler32", installed("adler32 1.0.0")),
            verify(ERR("installed-tampered")),
        ],
    )
    dropped = site(
        "installed-release-dropped",
        Site(version=V_BASE + 1, releases=with_releases(drop=(E11,))),
    )
    case(
        "installed-release-dropped-install",
        "rollback",
        "validate_email 1.1.0 is installed; the index key then publishes a registry that no longer "
        "lists it, though its signatures still count (a build never drops such a release): "
        "installing validate_email must not move it down to 1.0.0 (decision 18)",
        [*first, install(dropped, "validate_email", ERR("rollback")), verify(OK(plugins=["validate_email"]))],
    )
    case(
        "installed-release-dropped-exact-pin",
        "rollback",
        "as installed-release-dropped-install, with the exact pin validate_email@1.0.0: the user "
        "asks for that version, so it is installed (decision 18)",
        [*first, install(dropped, "validate_email@1.0.0", installed(E10, version=V_BASE + 1))],
    )
    index_yanked = site(
        "installed-release-yanked-by-index",
        Site(
            version=V_BASE + 1,
            doc_edit=edit_entry("validate_email", "1.1.0", set_fields(yanked={"reason": "the index's word"})),
        ),
    )
    case(
        "installed-release-yanked-install",
        "rollback",
        "validate_email 1.1.0 is installed; the registry then marks it yanked (the plugin document, "
        "the index key's word): installing validate_email, whose range the installed version still "
        "meets, must not move it down to 1.0.0 (decision 18)",
        [*first, install(index_yanked, "validate_email", ERR("rollback"))],
    )
    case(
        "installed-release-yanked-range-excludes-it",
        "rollback",
        "as installed-release-yanked-install, with validate_email@~1.0.0: the user's range leaves "
        "1.1.0 out, so 1.0.0 is installed (decision 18)",
        [*first, install(index_yanked, "validate_email@~1.0.0", installed(E10, version=V_BASE + 1))],
    )
    host_edited = site(
        "installed-release-host-edited-by-index",
        Site(version=V_BASE + 1, doc_edit=edit_entry("validate_email", "1.1.0", set_fields(host=">=99.0.0"))),
    )
    case(
        "installed-release-host-edited-install",
        "rollback",
        "validate_email 1.1.0 is installed for host 1.0.0; the registry then gives its entry the host "
        "range >=99.0.0 (its signed manifest still says >=0.2.0): the installed copy's signed host "
        "range decides, so installing validate_email for host 1.0.0 must not move it down (decision 18)",
        [
            pin(s),
            install(s, "validate_email", EMAIL_INSTALLED, host_version="1.0.0"),
            install(host_edited, "validate_email", ERR("rollback"), host_version="1.0.0"),
        ],
    )
    withdrawn = site(
        "installed-release-withdrawn",
        Site(roots=chain(R2_REVOKE_DROP), version=V_BASE + 1, releases=with_releases(drop=(E11,))),
    )
    case(
        "installed-release-withdrawn-install",
        "revocation",
        "validate_email 1.1.0 (alice's) is installed; root 2 revokes alice without "
        "keep_prior_releases and the registry drops 1.1.0: its signatures no longer count, so it "
        "was withdrawn and installing validate_email takes the newest release that verifies",
        [*first, install(withdrawn, "validate_email", ERR("maintainer-signature"))],
    )
    kept_dep = site(
        "kept-entry-dependency-added",
        Site(
            version=V_BASE + 1,
            doc_edit=edit_entry("validate_email", "1.1.0", set_fields(dependencies={"adler32": "^1.0"})),
        ),
    )
    case(
        "kept-entry-dependency-added",
        "mix-and-match",
        "validate_email 1.1.0 is installed; the index key then adds adler32 ^1.0 to its entry (the "
        "signed manifest has no dependency) and the same bytes are served: installing validate_email "
        "again must not keep the installed release under an entry that disagrees with its manifest",
        [
            *first,
            install(kept_dep, "validate_email", ERR("mix-and-match")),
            {"op": "absent", "path": "adler32"},
        ],
    )
    case(
        "revoked-since-install-verify",
        "revocation",
        "after a refresh walks to root 2 (alice revoked without keep_prior_releases), verify refuses "
        "the installed validate_email: its stored signatures no longer verify against the trusted root",
        [
            *first,
            refresh(revoked, OK(registry_version=V_BASE, root_version=2)),
            verify(ERR("installed-tampered")),
        ],
    )
    case(
        "verify-empty-plugin-folder",
        "installed-state",
        "nothing installed: verify reports no plugins",
        [pin(s), verify(OK(plugins=[]))],
    )


def lock_facts_cases(s: str, first: list[Json]) -> None:
    """Decision 15: an entry's abi, permissions and dependencies are the signed manifest's.

    Hosts read them from the lockfile, which nobody signs: an edit there is ``installed-tampered``
    even though every installed file still matches its digest.  The dependency cases are in
    ``lock_dependency_cases`` (they need the sites of dependency_cases).
    """

    def set_email(field: str, value: Any, **kw: Any) -> Json:
        pointer = ["plugins", "validate_email", field]
        return {"op": "tamper", "path": LOCK, "action": "json-set", "pointer": pointer, "value": value, **kw}

    refused = ERR("installed-tampered")
    case(
        "installed-lockfile-permission-added",
        "installed-state",
        "the lockfile entry of validate_email (whose signed manifest grants nothing) lists the permission "
        '"network": every file still matches, but a host reads permissions from the unsigned lockfile',
        [*first, set_email("permissions", ["network"]), verify(refused)],
    )
    case(
        "installed-lockfile-permission-added-change-line",
        "installed-state",
        "as installed-lockfile-permission-added, the edit appended as a change line "
        "(the folded state decides)",
        [*first, set_email("permissions", ["network"], change=True), verify(refused)],
    )
    case(
        "installed-lockfile-permission-removed",
        "installed-state",
        "visit_counter 1.0.0 (signed manifest: keys) installed with keys allowed; its lockfile entry then "
        "lists no permission: the permissions are the signed manifest's set, whichever way they differ",
        [
            pin(s),
            install(s, "visit_counter", installed("visit_counter 1.0.0"), allow="keys"),
            {
                "op": "tamper",
                "path": LOCK,
                "action": "json-set",
                "pointer": ["plugins", "visit_counter", "permissions"],
                "value": [],
            },
            verify(refused),
        ],
    )
    case(
        "installed-lockfile-abi-changed",
        "installed-state",
        'the lockfile entry of validate_email says abi "component"; its signed manifest says "core"',
        [*first, set_email("abi", "component"), verify(refused)],
    )
    case(
        "installed-lockfile-dependency-added",
        "installed-state",
        "the lockfile entry of validate_email lists a dependency adler32 ^1.0 its signed manifest does not "
        "declare",
        [*first, set_email("dependencies", {"adler32": "^1.0"}), verify(refused)],
    )
    case(
        "installed-lockfile-signature-file-missing",
        "installed-state",
        "the lockfile entry of validate_email lists a keyed signature file that is not in its folder "
        "(the plain one still verifies): install wrote every file an entry lists, so one gone is a "
        "tampered install",
        [
            *first,
            set_email(
                "signatures",
                [
                    "validate_email/1.1.0/plugin.toml.minisig",
                    "validate_email/1.1.0/plugin.toml.0000000000000000.minisig",
                ],
            ),
            verify(refused),
        ],
    )
    case(
        "installed-lockfile-dependency-name-unsafe",
        "lockfile",
        'the lockfile entry of validate_email lists a dependency named "Bad" (no plugin name): the '
        "lockfile is refused before anything else is installed",
        [*first, set_email("dependencies", {"Bad": "^1"}), install(s, "adler32", ERR("lockfile"))],
    )
    for slug, field_, value, why in (
        (
            "signature-names-module",
            "signatures",
            ["validate_email/1.1.0/plugin.toml.minisig", "validate_email/1.1.0/validate_email.wasm"],
            "lists the module among its signature files",
        ),
        (
            "signature-names-manifest",
            "signatures",
            ["validate_email/1.1.0/plugin.toml"],
            "lists plugin.toml among its signature files",
        ),
        (
            "module-names-signature",
            "wasm",
            "validate_email/1.1.0/plugin.toml.minisig",
            "names a signature as its module",
        ),
    ):
        case(
            f"installed-lockfile-{slug}",
            "lockfile",
            f"the lockfile entry of validate_email {why}: signatures are plugin.toml[.KEYID].minisig "
            "files and the module is none of the release's metadata files (decision 17): the lockfile is "
            "refused",
            [*first, set_email(field_, value), verify(ERR("lockfile"))],
        )
    case(
        "installed-lockfile-requested-changed",
        "installed-state",
        'the lockfile entry of validate_email records requested "^1.0" instead of "": a field the signed '
        "manifest does not hold (what the user typed), so verify still accepts it",
        [*first, set_email("requested", "^1.0"), verify(OK(plugins=["validate_email"]))],
    )


def lock_dependency_cases(deps: str, table_site: str, adler: Rel, tabled: Rel) -> None:
    """Decision 15 for dependencies: an entry's are the signed manifest's required ones, name -> range."""

    def set_adler(value: Json) -> Json:
        pointer = ["plugins", "adler32", "dependencies"]
        return {"op": "tamper", "path": LOCK, "action": "json-set", "pointer": pointer, "value": value}

    first = [pin(deps), install(deps, "adler32@2.0.0", with_graph(adler, lab_spec("1.4.0")))]
    refused = ERR("installed-tampered")
    case(
        "installed-lockfile-dependency-range-changed",
        "installed-state",
        "adler32 2.0.0 (signed: semver-lab ^1.0) installed; its lockfile entry then says semver-lab ^1.4",
        [*first, set_adler({"semver-lab": "^1.4"}), verify(refused)],
    )
    case(
        "installed-lockfile-dependency-removed",
        "installed-state",
        "adler32 2.0.0 (signed: semver-lab ^1.0) installed; its lockfile entry then lists no dependency",
        [*first, set_adler({}), verify(refused)],
    )
    case(
        "installed-lockfile-optional-dependency-listed",
        "installed-state",
        "adler32 2.0.1 (signed: semver-lab ^1.0 and an optional visit_counter ^9.0) installed and verified; "
        "its lockfile entry then lists visit_counter ^9.0 too: an entry's dependencies are the required "
        "ones only",
        [
            pin(table_site),
            install(table_site, "adler32@2.0.1", with_graph(tabled, lab_spec("1.4.0"))),
            verify(OK(plugins=["adler32", "semver-lab"])),
            set_adler({"semver-lab": "^1.0", "visit_counter": "^9.0"}),
            verify(refused),
        ],
    )


def _negative_zero_change_line() -> str:
    """One change line replacing validate_email 1.1.0's entry by one whose wasm_size is written -0."""
    entry = {**lock_entry(E11, ""), "registry": "http://127.0.0.1/", "wasm_size": 123456789}
    line = json.dumps({"plugins": {"validate_email": entry}}, sort_keys=True, separators=(",", ":"))
    return line.replace('"wasm_size":123456789', '"wasm_size":-0') + "\n"


def lockfile_v3_cases(s: str, first: list[Json]) -> None:
    """Version 3 reading and writing: the uncommitted tail, version 2 conversion, one line per commit."""

    def lock(lines: int, **plugins: Json) -> Json:
        return {"op": "lockfile", "expect": {"lockfile_version": 3, "plugins": plugins}, "lines": lines}

    adler = installed("adler32 1.0.0")
    case(
        "lockfile-one-change-line-per-commit",
        "lockfile",
        "a first install writes a base line; the next install appends one change line holding only "
        "what it added",
        [
            *first,
            lock(1, validate_email=lock_entry(E11, "")),
            install(s, "adler32", adler),
            lock(2, validate_email=lock_entry(E11, ""), adler32=lock_entry("adler32 1.0.0", "")),
            verify(OK(plugins=["adler32", "validate_email"])),
        ],
    )
    case(
        "lockfile-nothing-changed-nothing-written",
        "lockfile",
        "installing the installed release again changes no entry: no line is written",
        [*first, install(s, "validate_email", EMAIL_INSTALLED), lock(1, validate_email=lock_entry(E11, ""))],
    )
    case(
        "lockfile-uncommitted-tail-ignored",
        "lockfile",
        "bytes after the last newline (an unfinished write removing validate_email) are ignored by "
        "verify, and cut off by the next install before it appends its line",
        [
            *first,
            {
                "op": "tamper",
                "path": LOCK,
                "action": "append-text",
                "content": '{"plugins":{"validate_email":null}}',
            },
            verify(OK(plugins=["validate_email"])),
            install(s, "adler32", adler),
            lock(2, validate_email=lock_entry(E11, ""), adler32=lock_entry("adler32 1.0.0", "")),
            verify(OK(plugins=["adler32", "validate_email"])),
        ],
    )
    case(
        "lockfile-change-line-removal-folded",
        "lockfile",
        "a change line removing validate_email: the next install of it sees it absent, installs it and "
        "appends its entry again",
        [
            *first,
            {
                "op": "tamper",
                "path": LOCK,
                "action": "append-text",
                "content": '{"plugins":{"validate_email":null}}\n',
            },
            install(s, "validate_email", EMAIL_INSTALLED),
            lock(3, validate_email=lock_entry(E11, "")),
            verify(OK(plugins=["validate_email"])),
        ],
    )
    case(
        "lockfile-version-2-read-and-converted",
        "lockfile",
        "a version 2 lockfile (one pretty-printed document) is read; the next install writes a version 3 "
        "base holding the whole state instead of appending",
        [
            *first,
            {"op": "tamper", "path": LOCK, "action": "as-version-2"},
            verify(OK(plugins=["validate_email"])),
            install(s, "adler32", adler),
            lock(1, validate_email=lock_entry(E11, ""), adler32=lock_entry("adler32 1.0.0", "")),
            verify(OK(plugins=["adler32", "validate_email"])),
        ],
    )


# ---------------------------------------------------------------- success paths


def lock_entry(key: str, requested: str, permissions: list[str] | None = None) -> Json:
    r = rel(key)
    folder = f"{r.name}/{r.version}"
    return {
        "version": r.version,
        "requested": requested,
        "required_by": [],
        "dependencies": {},
        "abi": r.entry["abi"],
        "manifest": f"{folder}/plugin.toml",
        "manifest_sha256": sha(r.manifest),
        "manifest_size": len(r.manifest),
        "wasm": f"{folder}/{r.wasm_file}",
        "wasm_sha256": sha(r.wasm),
        "wasm_size": len(r.wasm),
        "signatures": sorted(
            f"{folder}/{n}" for n in r.files if n.startswith("plugin.toml.") and n.endswith(".minisig")
        ),
        "signers": r.entry["signers"],
        "permissions": permissions or [],
        "published_at": r.entry["published_at"],
    }


def success_cases() -> None:
    s = site("base")
    case(
        "install-verify",
        "success",
        "install validate_email (highest: 1.1.0), then verify",
        [
            pin(s),
            install(s, "validate_email", EMAIL_INSTALLED),
            verify(OK(plugins=["validate_email"])),
            {
                "op": "lockfile",
                "expect": {"lockfile_version": 3, "plugins": {"validate_email": lock_entry(E11, "")}},
            },
        ],
    )
    case(
        "install-lockfile-contents",
        "success",
        "the lockfile written after installing validate_email@^1.0 and visit_counter (keys allowed)",
        [
            pin(s),
            install(s, "validate_email@^1.0", EMAIL_INSTALLED),
            install(s, "visit_counter", installed("visit_counter 1.0.0"), allow="keys"),
            {
                "op": "lockfile",
                "expect": {
                    "lockfile_version": 3,
                    "plugins": {
                        "validate_email": lock_entry(E11, "^1.0"),
                        "visit_counter": lock_entry("visit_counter 1.0.0", "", ["keys"]),
                    },
                },
            },
            verify(OK(plugins=["validate_email", "visit_counter"])),
        ],
    )
    case(
        "install-two-signatures",
        "success",
        "twokeys: both signature files installed and listed",
        [
            pin(s),
            install(s, "twokeys", installed("twokeys 1.0.0")),
            {
                "op": "lockfile",
                "expect": {"lockfile_version": 3, "plugins": {"twokeys": lock_entry("twokeys 1.0.0", "")}},
            },
            verify(OK(plugins=["twokeys"])),
        ],
    )
    case(
        "update-nothing-changed",
        "success",
        "refresh and install again from the same publication",
        [
            pin(s),
            install(s, "validate_email", EMAIL_INSTALLED),
            refresh(s, OK(registry_version=V_BASE, root_version=1)),
            install(s, "validate_email", EMAIL_INSTALLED),
            verify(OK(plugins=["validate_email"])),
        ],
    )
    case(
        "refresh-nothing-changed-fetches-only-top",
        "success",
        "a second refresh of the same publication fetches only registry.json, its signatures, the next root",
        [
            pin(s),
            refresh(s, OK(registry_version=V_BASE)),
            refresh(s, OK(registry_version=V_BASE), may_fetch=TOP_ONLY),
        ],
    )
    case(
        "update-nothing-changed-fetches-only-top",
        "success",
        "installing the installed release again from the same publication fetches only registry.json, "
        "its signatures and the next root (metadata comes from the verified cache)",
        [
            pin(s),
            install(s, "validate_email", EMAIL_INSTALLED),
            install(s, "validate_email", EMAIL_INSTALLED, may_fetch=TOP_ONLY),
            verify(OK(plugins=["validate_email"])),
        ],
        requires=("cache",),
    )
    v12 = make_release(email("1.2.0", published_at="2026-11-27T06:00:00Z"))
    nxt = site(
        "base-next",
        Site(
            releases=[*BASE_RELEASES, v12],
            version=20261127060000,
            generated_at="2026-11-27T06:00:00Z",
            expires_at="2026-12-04T06:00:00Z",
        ),
    )
    case(
        "update-new-publication",
        "success",
        "a new publication adds validate_email 1.2.0; install updates to it",
        [
            pin(s),
            install(s, "validate_email@^1.0", EMAIL_INSTALLED),
            install(nxt, "validate_email@^1.0", installed(v12, version=20261127060000)),
            verify(OK(plugins=["validate_email"])),
            {
                "op": "lockfile",
                "expect": {"lockfile_version": 3, "plugins": {"validate_email": {"version": "1.2.0"}}},
            },
            {"op": "absent", "path": "validate_email/1.1.0"},
        ],
    )
    case(
        "install-downgrade-by-exact-pin",
        "success",
        "installing an exact older version replaces the newer one",
        [
            pin(s),
            install(s, "validate_email", EMAIL_INSTALLED),
            install(s, "validate_email@1.0.0", installed(E10)),
            verify(OK(plugins=["validate_email"])),
        ],
    )
    case(
        "install-multiple-verify",
        "success",
        "three plugins installed; verify lists them sorted",
        [
            pin(s),
            install(s, "validate_email", EMAIL_INSTALLED),
            install(s, "adler32", installed("adler32 1.0.0")),
            install(s, "semver-lab", installed("semver-lab 1.4.0")),
            verify(OK(plugins=["adler32", "semver-lab", "validate_email"])),
        ],
    )
    case(
        "install-without-refresh",
        "success",
        "install right after pin does the refresh itself",
        [pin(s), install(s, "validate_email@1.0.0", installed(E10))],
    )
    case("not-pinned", "usage", "refresh before any root is pinned", [refresh(s, ERR("not-pinned"))])
    case(
        "not-found-plugin",
        "not-found",
        "a plugin the registry does not list",
        [pin(s), install(s, "no-such-plugin", ERR("not-found"))],
    )


# ---------------------------------------------------------------- dependency resolution


def resolved(*keys: str | Rel) -> Json:
    """The ``resolved`` member of an install answer: every plugin of the graph, version and digests."""
    out: Json = {}
    for key in keys:
        r = rel(key) if isinstance(key, str) else key
        out[r.name] = {"version": r.version, "manifest_sha256": sha(r.manifest), "wasm_sha256": sha(r.wasm)}
    return out


def with_graph(top: Rel, *deps: str | Rel) -> Json:
    return {**installed(top), "resolved": resolved(top, *deps)}


def lab_spec(version: str) -> str:
    return f"semver-lab {version}"


# The dependency graph of sites/deps (added to the base releases):
#   visit_counter 2.0.0 -> adler32 ^2.0, validate_email ^2.0   (no permission, no keys import)
#   adler32 2.0.0        -> semver-lab ^1.0                     (highest: 1.4.0, host >=0.9.0)
#   validate_email 2.0.0 -> semver-lab >=1.2.0, <1.4.0          (1.3.0 is yanked: 1.2.5)
DEP_ADLER = Spec(
    "adler32",
    "2.0.0",
    "adler32",
    ("adler32", "add_mod"),
    signers=("bob",),
    dependencies=(("semver-lab", "^1.0"),),
)
DEP_EMAIL = email("2.0.0", dependencies=(("semver-lab", ">=1.2.0, <1.4.0"),))
DEP_TOP = Spec(
    "visit_counter",
    "2.0.0",
    "adler32",
    ("adler32", "add_mod"),
    dependencies=(("adler32", "^2.0"), ("validate_email", "^2.0")),
)


def dependency_cases() -> None:
    adler, mail, top = make_release(DEP_ADLER), make_release(DEP_EMAIL), make_release(DEP_TOP)
    deps = [*BASE_RELEASES, adler, mail, top]
    s = site("deps", Site(releases=deps))
    # The documented table form: {version = ...} is the range, an optional dependency is left out.
    tabled = make_release(
        replace(
            DEP_ADLER,
            version="2.0.1",
            dependencies=(
                ("semver-lab", {"version": "^1.0"}),
                ("visit_counter", {"version": "^9.0", "optional": True}),
            ),
        )
    )
    table_site = site("deps-table-form", Site(releases=[*deps, tabled]))
    case(
        "dep-table-form",
        "dependencies",
        'adler32 2.0.1 writes semver-lab = {version = "^1.0"} and an optional visit_counter ^9.0: '
        "the range is the table's version, the optional one is not required",
        [pin(table_site), install(table_site, "adler32@2.0.1", with_graph(tabled, lab_spec("1.4.0")))],
    )
    lock_dependency_cases(s, table_site, adler, tabled)

    def lock(**plugins: Json) -> Json:
        return {"op": "lockfile", "expect": {"lockfile_version": 3, "plugins": plugins}}

    case(
        "dep-simple",
        "dependencies",
        "adler32 2.0.0 needs semver-lab ^1.0: both are installed, semver-lab at its highest (1.4.0)",
        [
            pin(s),
            install(s, "adler32@2.0.0", with_graph(adler, lab_spec("1.4.0"))),
            lock(
                adler32={
                    "version": "2.0.0",
                    "requested": "2.0.0",
                    "required_by": [],
                    "dependencies": {"semver-lab": "^1.0"},
                },
                **{
                    "semver-lab": {
                        "version": "1.4.0",
                        "requested": DEPENDENCY_ONLY,
                        "required_by": ["adler32"],
                        "dependencies": {},
                    }
                },
            ),
            verify(OK(plugins=["adler32", "semver-lab"])),
        ],
    )
    case(
        "dep-host-incompatible-skipped",
        "dependencies",
        "on host 0.5.0 adler32's dependency skips semver-lab 1.4.0 (host >=0.9.0) and 1.3.0 (yanked): 1.2.5",
        [pin(s), install(s, "adler32@2.0.0", with_graph(adler, lab_spec("1.2.5")), host_version="0.5.0")],
    )
    case(
        "dep-yanked-skipped",
        "dependencies",
        "validate_email 2.0.0 needs semver-lab >=1.2.0, <1.4.0: "
        "the yanked 1.3.0 is never chosen by a range (1.2.5)",
        [pin(s), install(s, "validate_email@2.0.0", with_graph(mail, lab_spec("1.2.5")))],
    )
    case(
        "dep-diamond",
        "dependencies",
        "visit_counter 2.0.0 needs adler32 (semver-lab ^1.0) and "
        "validate_email (semver-lab >=1.2.0, <1.4.0): "
        "one semver-lab, the highest both accept (1.2.5, not 1.4.0)",
        [
            pin(s),
            install(s, "visit_counter@2.0.0", with_graph(top, adler, mail, lab_spec("1.2.5"))),
            lock(
                visit_counter={"version": "2.0.0", "requested": "2.0.0", "required_by": []},
                adler32={"version": "2.0.0", "requested": DEPENDENCY_ONLY, "required_by": ["visit_counter"]},
                validate_email={
                    "version": "2.0.0",
                    "requested": DEPENDENCY_ONLY,
                    "required_by": ["visit_counter"],
                },
                **{
                    "semver-lab": {
                        "version": "1.2.5",
                        "requested": DEPENDENCY_ONLY,
                        "required_by": ["adler32", "validate_email"],
                    }
                },
            ),
            verify(OK(plugins=["adler32", "semver-lab", "validate_email", "visit_counter"])),
        ],
    )
    case(
        "dep-installed-kept",
        "dependencies",
        "semver-lab 1.0.0 is installed and satisfies adler32's ^1.0: it is kept, not upgraded to 1.4.0",
        [
            pin(s),
            install(s, "semver-lab@1.0.0", installed(lab_spec("1.0.0"))),
            install(s, "adler32@2.0.0", with_graph(adler, lab_spec("1.0.0"))),
            lock(
                adler32={"version": "2.0.0", "requested": "2.0.0"},
                **{"semver-lab": {"version": "1.0.0", "requested": "1.0.0", "required_by": ["adler32"]}},
            ),
            verify(OK(plugins=["adler32", "semver-lab"])),
        ],
    )
    for key, value, host in (("dependencies", {"zzghost": "^1.0"}, None), ("host", ">=99.0.0", "1.0.0")):
        forged = site(
            f"deps-installed-entry-{key}-forged",
            Site(
                releases=deps,
                version=V_BASE + 1,
                doc_edit=edit_entry("semver-lab", "1.4.0", set_fields(**{key: value})),
            ),
        )
        extra = {} if host is None else {"host_version": host}
        case(
            f"dep-installed-entry-{key}-forged",
            "rollback",
            f"semver-lab 1.4.0 is installed as adler32's dependency; the index key then gives its entry "
            f"{key} {value} (its signed manifest, which the client holds, says otherwise), so that "
            "installing adler32 again would move it down to 1.2.5: refused, the entry disagrees with the "
            "installed copy's signed manifest (decision 18)",
            [
                pin(s),
                install(s, "adler32@2.0.0", with_graph(adler, lab_spec("1.4.0")), **extra),
                install(forged, "adler32@2.0.0", ERR("mix-and-match"), **extra),
                verify(OK(plugins=["adler32", "semver-lab"])),
            ],
        )
    size_forged = site(
        "deps-installed-entry-wasm-size-forged",
        Site(
            releases=deps,
            version=V_BASE + 1,
            doc_edit=edit_entry("semver-lab", "1.4.0", set_fields(wasm={"size": 1})),
        ),
    )
    case(
        "dep-installed-entry-wasm-size-forged",
        "mix-and-match",
        "as dep-installed-moved-down-by-a-dependent, but the index key also gave semver-lab 1.4.0's entry "
        "(installed) another module size: the entry disagrees with the installed copy's signed manifest, "
        "so the move down is refused (decision 18)",
        [
            pin(s),
            install(s, "adler32@2.0.0", with_graph(adler, lab_spec("1.4.0"))),
            install(size_forged, "validate_email@2.0.0", ERR("mix-and-match")),
        ],
    )
    case(
        "dep-installed-moved-down-by-a-dependent",
        "dependencies",
        "semver-lab 1.4.0 is installed as adler32's dependency; validate_email 2.0.0 needs "
        "semver-lab >=1.2.0, <1.4.0, so installing it moves semver-lab down to 1.2.5 (the entries "
        "agree with the signed manifests: the graph's own requirement, no rollback)",
        [
            pin(s),
            install(s, "adler32@2.0.0", with_graph(adler, lab_spec("1.4.0"))),
            install(s, "validate_email@2.0.0", with_graph(mail, lab_spec("1.2.5"))),
        ],
    )
    case(
        "dep-installed-yanked-kept",
        "dependencies",
        "semver-lab 1.3.0 (yanked) was installed by its exact pin and meets validate_email's "
        ">=1.2.0, <1.4.0: it stays (a yank keeps ranges from choosing it anew, not from keeping it)",
        [
            pin(s),
            install(s, "semver-lab@1.3.0", installed(lab_spec("1.3.0"))),
            install(s, "validate_email@2.0.0", with_graph(mail, lab_spec("1.3.0"))),
            lock(
                validate_email={"version": "2.0.0", "requested": "2.0.0"},
                **{
                    "semver-lab": {
                        "version": "1.3.0",
                        "requested": "1.3.0",
                        "required_by": ["validate_email"],
                    }
                },
            ),
            verify(OK(plugins=["semver-lab", "validate_email"])),
        ],
    )
    case(
        "dep-installed-dependent-yanked-exact-pin",
        "dependencies",
        "adler32 2.0.0 (semver-lab ^1.0) is installed; an exact pin of the yanked semver-lab 1.3.0, "
        "which ^1.0 admits, installs it (decision 16.1: the exact pin is how a yanked release is asked for)",
        [
            pin(s),
            install(s, "adler32@2.0.0", with_graph(adler, lab_spec("1.4.0"))),
            install(s, "semver-lab@1.3.0", with_graph(rel(lab_spec("1.3.0")))),
            lock(
                adler32={"version": "2.0.0", "requested": "2.0.0"},
                **{
                    "semver-lab": {
                        "version": "1.3.0",
                        "requested": "1.3.0",
                        "required_by": ["adler32"],
                    }
                },
            ),
            verify(OK(plugins=["adler32", "semver-lab"])),
        ],
    )
    case(
        "dep-installed-dependent-kept-whole",
        "dependencies",
        "adler32 2.0.0 is installed and needs semver-lab ^1.0; installing semver-lab@0.2.3 would "
        "break it: dependency-conflict naming adler32's requirement, nothing changes",
        [
            pin(s),
            install(s, "adler32@2.0.0", with_graph(adler, lab_spec("1.4.0"))),
            install(s, "semver-lab@0.2.3", ERR("dependency-conflict")),
            {"op": "absent", "path": "semver-lab/0.2.3"},
            verify(OK(plugins=["adler32", "semver-lab"])),
        ],
    )
    case(
        "dep-installed-dependent-range-kept",
        "dependencies",
        "validate_email 2.0.0 is installed and needs semver-lab >=1.2.0, <1.4.0 (1.2.5); a bare "
        "install of semver-lab takes the highest release that range also allows (1.2.5, not 1.4.0)",
        [
            pin(s),
            install(s, "validate_email@2.0.0", with_graph(mail, lab_spec("1.2.5"))),
            install(s, "semver-lab", installed(lab_spec("1.2.5"))),
            lock(**{"semver-lab": {"version": "1.2.5", "requested": "", "required_by": ["validate_email"]}}),
            verify(OK(plugins=["semver-lab", "validate_email"])),
        ],
    )
    case(
        "dep-promoted-by-install",
        "dependencies",
        "semver-lab 1.4.0 came in as adler32's dependency; installing semver-lab by name promotes it: "
        'its requested becomes what was typed ("" for a bare name), same version, still required by adler32',
        [
            pin(s),
            install(s, "adler32@2.0.0", with_graph(adler, lab_spec("1.4.0"))),
            lock(
                **{
                    "semver-lab": {
                        "version": "1.4.0",
                        "requested": DEPENDENCY_ONLY,
                        "required_by": ["adler32"],
                    }
                }
            ),
            install(s, "semver-lab", installed(lab_spec("1.4.0"))),
            lock(
                adler32={"version": "2.0.0", "requested": "2.0.0", "required_by": []},
                **{"semver-lab": {"version": "1.4.0", "requested": "", "required_by": ["adler32"]}},
            ),
            verify(OK(plugins=["adler32", "semver-lab"])),
        ],
    )
    case(
        "dep-installed-upgraded",
        "dependencies",
        "semver-lab 0.2.3 is installed but adler32 needs ^1.0: it is upgraded to 1.4.0, 0.2.3 removed",
        [
            pin(s),
            install(s, "semver-lab@0.2.3", installed(lab_spec("0.2.3"))),
            install(s, "adler32@2.0.0", with_graph(adler, lab_spec("1.4.0"))),
            {"op": "absent", "path": "semver-lab/0.2.3"},
            verify(OK(plugins=["adler32", "semver-lab"])),
        ],
    )

    def refused(
        case_id: str,
        description: str,
        site_id: str,
        releases: list[Rel],
        spec: str,
        error: str,
        post: Callable[[Rendered], None] | None = None,
        **kw: Any,
    ) -> None:
        hostile = site(site_id, Site(releases=releases, post=post))
        first = install(hostile, "validate_email@1.1.0", installed(E11))
        gone = [{"op": "absent", "path": p} for p in sorted({spec.split("@")[0], "semver-lab"})]
        case(
            case_id,
            "dependencies",
            description + "; nothing of the graph is installed, the installed validate_email 1.1.0 stays",
            [
                pin(hostile),
                first,
                install(hostile, spec, ERR(error), **kw),
                *gone,
                verify(OK(plugins=["validate_email"])),
            ],
        )

    def replaced(spec: Spec) -> list[Rel]:
        new = make_release(spec)
        return [new if (r.name, r.version) == (new.name, new.version) else r for r in deps]

    refused(
        "dep-unsatisfiable",
        "adler32 2.0.0 needs semver-lab ^3.0, which no release matches",
        "deps-unsatisfiable",
        replaced(replace(DEP_ADLER, dependencies=(("semver-lab", "^3.0"),))),
        "adler32@2.0.0",
        "dependency-conflict",
    )
    refused(
        "dep-conflict",
        "visit_counter 2.0.0 needs adler32 (semver-lab ^1.0) and validate_email (semver-lab ^0.2): "
        "no semver-lab satisfies both",
        "deps-conflict",
        replaced(replace(DEP_EMAIL, dependencies=(("semver-lab", "^0.2"),))),
        "visit_counter@2.0.0",
        "dependency-conflict",
    )
    refused(
        "dep-unknown",
        "adler32 2.0.0 also needs no-such-plugin ^1.0, which the registry does not list",
        "deps-unknown",
        replaced(replace(DEP_ADLER, dependencies=(("no-such-plugin", "^1.0"), ("semver-lab", "^1.0")))),
        "adler32@2.0.0",
        "dependency-conflict",
    )
    # Decision 16.3: a dependency's highest release that cannot be part of any plan is passed over
    # for the next one (backtracking), whether its own dependency matches nothing, names a plugin
    # the registry does not list, or clashes with a range another chosen release declares.
    for case_id, why, needs in (
        (
            "dep-backtrack-dead-end",
            "needs semver-lab ^3.0, which no release matches",
            (("semver-lab", "^3.0"),),
        ),
        (
            "dep-backtrack-unknown",
            "needs no-such-plugin ^1.0, which the registry does not list",
            (("no-such-plugin", "^1.0"), ("semver-lab", "^1.0")),
        ),
        (
            "dep-backtrack-clash",
            "needs semver-lab >=1.4.0, which validate_email 2.0.0's <1.4.0 excludes",
            (("semver-lab", ">=1.4.0"),),
        ),
    ):
        newer = make_release(replace(DEP_ADLER, version="2.1.0", dependencies=needs))
        back = site(case_id.removeprefix("dep-"), Site(releases=[*deps, newer]))
        case(
            case_id,
            "dependencies",
            f"visit_counter 2.0.0 needs adler32 ^2.0, whose highest release 2.1.0 {why}: "
            "adler32 2.0.0 is chosen instead, with semver-lab 1.2.5 as in dep-diamond",
            [
                pin(back),
                install(back, "visit_counter@2.0.0", with_graph(top, adler, mail, lab_spec("1.2.5"))),
            ],
        )
    cyc_a = make_release(
        Spec("sneaky", "1.0.0", "adler32", ("adler32", "add_mod"), dependencies=(("twokeys", "^2.0"),))
    )
    cyc_b = make_release(
        Spec(
            "twokeys",
            "2.0.0",
            "adler32",
            ("adler32", "add_mod"),
            signers=("alice", "carol"),
            dependencies=(("sneaky", "^1.0"),),
        )
    )
    refused(
        "dep-cycle",
        "sneaky 1.0.0 needs twokeys ^2.0, whose 2.0.0 needs sneaky ^1.0: a cycle",
        "deps-cycle",
        [*deps, cyc_a, cyc_b],
        "sneaky",
        "dependency-cycle",
    )
    lab14 = rel(lab_spec("1.4.0"))
    refused(
        "dep-bad-signature",
        "semver-lab 1.4.0, which adler32 2.0.0 pulls in, is signed by mallory instead of carol",
        "deps-bad-signature",
        [signed_by(lab14, (K["mallory"], comment("semver-lab", "1.4.0"))) if r is lab14 else r for r in deps],
        "adler32@2.0.0",
        "maintainer-signature",
    )
    refused(
        "dep-digest-mismatch",
        "the server flips the last byte of semver-lab 1.4.0's module, which adler32 2.0.0 pulls in",
        "deps-digest-mismatch",
        deps,
        "adler32@2.0.0",
        "digest-mismatch",
        post=post_file(lab14.path(lab14.wasm_file), lambda b: b[:-1] + bytes([b[-1] ^ 0xFF])),
    )
    needs_keys = make_release(
        replace(DEP_ADLER, dependencies=(("semver-lab", "^1.0"), ("visit_counter", "^1.0")))
    )
    refused(
        "dep-permission-required",
        "adler32 2.0.0 needs visit_counter ^1.0, which declares keys; keys is not allowed",
        "deps-permission",
        replaced(replace(DEP_ADLER, dependencies=(("semver-lab", "^1.0"), ("visit_counter", "^1.0")))),
        "adler32@2.0.0",
        "permission-required",
    )
    s = site("deps-permission")
    case(
        "dep-permission-allowed",
        "dependencies",
        "adler32 2.0.0 needs visit_counter ^1.0 (keys); keys allowed: the three are installed",
        [
            pin(s),
            install(
                s,
                "adler32@2.0.0",
                with_graph(needs_keys, lab_spec("1.4.0"), "visit_counter 1.0.0"),
                allow="keys",
            ),
            verify(OK(plugins=["adler32", "semver-lab", "visit_counter"])),
        ],
    )


# ---------------------------------------------------------------- a long dependency chain

CHAIN_LENGTH = 150
# Root 2 delegates chain-* to alice (root 1 names every plugin it delegates).
R2_CHAIN = next_root(R1, add_maintainer("alice", [K["alice"].public_key], ["chain-*"]))


def chain_cases() -> None:
    """Decision 16.3: a valid acyclic chain is resolved however long it is, up to the Python
    client's bound (2000 rounds, one per release chosen); 150 plugins, each needing the next."""
    names = [f"chain-{i:03d}" for i in range(CHAIN_LENGTH)]
    links = [
        make_release(
            Spec(
                name,
                "1.0.0",
                "adler32",
                ("run",),
                wasm_override=tagged(_WASM_CORE, f"{name} 1.0.0"),  # a module without imports
                dependencies=((names[i + 1], "^1"),) if i + 1 < len(names) else (),
            )
        )
        for i, name in enumerate(names)
    ]
    s = site("chain-150", Site(roots=chain(R2_CHAIN), releases=[*BASE_RELEASES, *links]))
    case(
        "dep-chain-150",
        "dependencies",
        f"chain-000 1.0.0 needs chain-001 ^1, which needs chain-002 ^1, ... up to "
        f"chain-{CHAIN_LENGTH - 1:03d} (root 2 delegates chain-* to alice): all {CHAIN_LENGTH} are installed",
        [
            pin(s),
            # every verifier walks to root 2 (an interop run verifies with another one's state)
            refresh(s, OK(registry_version=V_BASE, root_version=2)),
            # 600 transfers in one operation: the default 10 s deadline is timing luck on a loaded
            # machine; the step limit (60 s) still bounds it.
            install(
                s,
                names[0],
                {**installed(links[0]), "root_version": 2, "resolved": resolved(*links)},
                deadline_ms=DEADLINE_BULK,
            ),
            verify(OK(plugins=names)),
        ],
    )


def backjump_cases() -> None:
    """Decision 16.3: a graph with one solution that chronological search meets last. suite needs
    chain-ext-a, -b and -c and chain-legacy; chain-ext-X 1.j.0 (j = 0..19) needs chain-core >=1.j.0,
    chain-legacy needs chain-core <1.1.0: only 1.0.0 of each fits (20 x 20 x 20 combinations for a
    search deciding every plugin in name order; Python, deciding the most constrained first, meets it
    at once). Root 2 delegates chain-* to alice."""

    def rel(name: str, version: str, deps: tuple[tuple[str, Any], ...] = ()) -> Rel:
        return make_release(
            Spec(
                name,
                version,
                "adler32",
                ("run",),
                wasm_override=tagged(_WASM_CORE, f"{name} {version}"),
                dependencies=deps,
            )
        )

    core = [rel("chain-core", f"1.{j}.0") for j in range(20)]
    exts = [
        rel(f"chain-ext-{x}", f"1.{j}.0", (("chain-core", f">=1.{j}.0"),)) for x in "abc" for j in range(20)
    ]
    legacy = rel("chain-legacy", "1.0.0", (("chain-core", "<1.1.0"),))
    needs = (("chain-ext-a", "*"), ("chain-ext-b", "*"), ("chain-ext-c", "*"), ("chain-legacy", "*"))
    suite = rel("chain-suite", "1.0.0", needs)
    releases = [*BASE_RELEASES, *core, *exts, legacy, suite]
    s = site("deps-one-solution-found-last", Site(roots=chain(R2_CHAIN), releases=releases))
    firsts = [r for r in exts if r.version == "1.0.0"]
    case(
        "dep-one-solution-found-last",
        "dependencies",
        "chain-suite needs three extensions whose newer releases need a newer chain-core than "
        "chain-legacy allows: the one solution (every plugin at 1.0.0) is installed, within the round bound",
        [
            pin(s),
            refresh(s, OK(registry_version=V_BASE, root_version=2)),
            install(
                s,
                "chain-suite",
                {
                    **installed(suite),
                    "root_version": 2,
                    "resolved": resolved(suite, *firsts, legacy, core[0]),
                },
            ),
        ],
    )


# ---------------------------------------------------------------- republished releases

V_REPUBLISHED = 20261127010000
# Only metadata: a republished release is refused before its manifest or module is fetched.
DOCUMENTS_ONLY = [*TOP_ONLY, r"meta/[0-9a-f]{2}/[0-9a-f]{64}\.json"]


def republished_cases() -> None:
    """Decision 14: a version is one set of bytes. An installed version (name, version, registry)
    that a newer publication pins with another module or manifest is ``republished``: refused
    right after the plan is decided, nothing fetched beyond the documents, nothing written."""
    base = site("base")
    newer = {"version": V_REPUBLISHED, "generated_at": "2026-11-27T01:00:00Z"}
    other = make_release(
        replace(
            SPECS[E11],
            description="RFC 5322 email address validation, republished",
            wasm_override=tagged(
                (SAMPLES / "validate_email" / "1.0.0" / "validate_email.wasm").read_bytes(),
                "validate_email 1.1.0 republished",
            ),
        )
    )
    hostile = site("republished-email", Site(releases=with_releases(other), **newer))
    kept = {"validate_email": lock_entry(E11, "")}
    unchanged = [
        {"op": "lockfile", "expect": {"lockfile_version": 3, "plugins": kept}, "lines": 1},
        verify(OK(plugins=["validate_email"])),
    ]
    for slug, spec, how in [
        ("update", "validate_email", "installing it again by name (an update)"),
        ("exact", "validate_email@1.1.0", "installing validate_email@1.1.0"),
    ]:
        case(
            f"republished-{slug}",
            "republished",
            "validate_email 1.1.0 is installed; a newer publication (index key and alice's key in other "
            f"hands) pins another module and manifest under 1.1.0: {how} is refused before the release's "
            "files are fetched, the installed files and the lockfile stay",
            [
                pin(base),
                install(base, "validate_email", EMAIL_INSTALLED),
                install(hostile, spec, ERR("republished"), may_fetch=DOCUMENTS_ONLY),
                *unchanged,
            ],
        )
    same = site("republished-same-bytes", Site(**newer))
    case(
        "republished-same-bytes",
        "republished",
        "validate_email 1.1.0 is installed; a newer publication pins the same bytes under 1.1.0: "
        "installing it again by name succeeds and keeps the installed release (nothing written)",
        [
            pin(base),
            install(base, "validate_email", EMAIL_INSTALLED),
            install(same, "validate_email", installed(E11, version=V_REPUBLISHED)),
            *unchanged[:1],
            verify(OK(plugins=["validate_email"])),
        ],
    )
    # A dependency: semver-lab 1.4.0 came in with adler32 2.0.0; the newer publication changes
    # only its manifest (the module is the same).
    adler = make_release(DEP_ADLER)
    deps = [*BASE_RELEASES, adler, make_release(DEP_EMAIL), make_release(DEP_TOP)]
    first = site("deps")
    lab14 = SPECS[lab_spec("1.4.0")]
    relab = make_release(replace(lab14, description="conformance test plugin, republished"))
    assert relab.wasm == rel(lab_spec("1.4.0")).wasm and relab.manifest != rel(lab_spec("1.4.0")).manifest
    swapped = [relab if (r.name, r.version) == ("semver-lab", "1.4.0") else r for r in deps]
    later = site("republished-dependency", Site(releases=swapped, **newer))
    case(
        "republished-dependency",
        "republished",
        "adler32 2.0.0 and its dependency semver-lab 1.4.0 are installed; a newer publication pins "
        "another manifest (same module) under semver-lab 1.4.0: installing adler32 again is refused, "
        "nothing written",
        [
            pin(first),
            install(first, "adler32@2.0.0", with_graph(adler, lab_spec("1.4.0"))),
            install(later, "adler32@2.0.0", ERR("republished"), may_fetch=DOCUMENTS_ONLY),
            {
                "op": "lockfile",
                "expect": {
                    "lockfile_version": 3,
                    "plugins": {
                        "semver-lab": {
                            "version": "1.4.0",
                            "manifest_sha256": sha(rel(lab_spec("1.4.0")).manifest),
                            "wasm_sha256": sha(rel(lab_spec("1.4.0")).wasm),
                        }
                    },
                },
                "lines": 1,
            },
            verify(OK(plugins=["adler32", "semver-lab"])),
        ],
    )


# ---------------------------------------------------------------- writing


def build() -> dict[str, bytes]:
    SITES.clear()
    CASES.clear()
    site("base")
    root_cases()
    top_cases()
    tree_cases()
    document_cases()
    release_cases()
    range_cases()
    transport_cases()
    installed_cases()
    success_cases()
    dependency_cases()
    republished_cases()
    chain_cases()
    backjump_cases()
    extism_import_cases()
    out: dict[str, bytes] = {}
    for label, key in K.items():
        out[f"keys/{label}.pub"] = key.public_key.to_text().encode()
        out[f"keys/{label}.key"] = key.dump(None, comment="conformance secret key (unencrypted, public seed)")
    base = SITES["base"].files
    for site_id, rendered in SITES.items():
        # Every site but base is stored as an overlay of base (README.md, "Sites"): only the files
        # that differ, plus _site.json naming the base and the base files this site does not have.
        files = rendered.files
        if site_id != "base":
            files = {p: d for p, d in files.items() if base.get(p) != d}
            overlay = {"base": "base", "deleted": sorted(p for p in base if p not in rendered.files)}
            out[f"sites/{site_id}/{OVERLAY}"] = (json.dumps(overlay, indent=2) + "\n").encode()
        for path, data in files.items():
            out[f"sites/{site_id}/{path}"] = data
    for c in CASES:
        out[f"cases/{c['id']}.json"] = (json.dumps(c, indent=2, ensure_ascii=True) + "\n").encode()
    return out


GENERATED_DIRS = ("keys", "sites", "cases")
OVERLAY = "_site.json"


def write(target: Path) -> int:
    files = build()
    for folder in GENERATED_DIRS:
        shutil.rmtree(target / folder, ignore_errors=True)
    for rel_path, data in sorted(files.items()):
        path = target / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return len(CASES)


if __name__ == "__main__":
    count = write(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
    print(f"{count} cases, {len(SITES)} sites")
