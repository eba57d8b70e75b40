"""Verifying what a build publishes: one release of the index, and the previously published site.

``prepare_release`` is the slow path of a build (the incremental cache skips it for unchanged
releases): the ``validate`` rules, maintainer signatures against the root, the yank signature,
the smoke run, and the sha256 of every published file, all on the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from registry_tool._files import read_bounded
from registry_tool.errors import CheckFailed, Location
from registry_tool.format import (
    MANIFEST,
    MAX_YANK_REASON,
    REGISTRY_JSON,
    YANK,
    FileRef,
    Limits,
    Release,
    SmokeFigure,
    TopDocument,
    is_signature_of,
    parse_time_strict,
    release_path,
    toml,
)
from registry_tool.format.rules import MAX_SIGNATURE_BYTES, SIG_SUFFIX
from registry_tool.manifest import RegistryConfig
from registry_tool.manifest import validate as rules
from registry_tool.manifest.errors import FindingsError
from registry_tool.manifest.model import Manifest
from registry_tool.manifest.source import read_plain
from registry_tool.manifest.units import milliseconds
from registry_tool.registry import site as site_io
from registry_tool.registry.document import (
    Publication,
    PublicationRecord,
    read_publication,
)
from registry_tool.registry.errors import RollbackError, UnsafeIndexPathError
from registry_tool.registry.scan import IndexRelease, RootChain
from registry_tool.report import Severity
from registry_tool.signing import manifest_identity
from registry_tool.signing.release import ParsedIdentity, check_signature_name
from registry_tool.trust import verify_index_signatures, verify_release_signatures, verify_yank_signatures

#: A release's entry in its plugin document as JSON (``Release.to_json()``), without ``published_at``.
ReleaseEntry = Mapping[str, Any]


def published_time(text: str) -> datetime:
    """A ``published_at`` the build itself wrote or verified (always the one spelling).

    Raises:
        CheckFailed: ``text`` is not ``YYYY-MM-DDTHH:MM:SSZ``.
    """
    moment = parse_time_strict(text)
    if moment is None:
        raise CheckFailed(f"timestamp {text!r} is not YYYY-MM-DDTHH:MM:SSZ", fix="rebuild the registry")
    return moment


@dataclass
class PreparedRelease:
    """What the build derived from one release.

    Attributes:
        entry: Its plugin-document entry (``Release.to_json()`` without ``published_at``).
        files: Published file name -> (sha256, size).
        data: File contents read this build (empty once written, or for a cache hit).
        cached: The build cache's record of the release (holds the site files' stat prints).
        written: The files were written into the staging folder right after verification.
    """

    entry: ReleaseEntry
    files: dict[str, tuple[str, int]]
    data: dict[str, bytes] = field(default_factory=dict)
    cached: dict[str, Any] | None = None
    written: bool = False


def published_names(rel: IndexRelease, artifact: str) -> list[str]:
    """Files of the release folder that go to the site: manifest, wasm, yank, all signatures."""
    names = {MANIFEST, artifact}
    yanked = any(f == YANK for f, _ in rel.files)
    for f, _ in rel.files:
        if "/" in f:
            continue
        # yank.toml signatures only beside a yank.toml: without one, nothing verifies them.
        if is_signature_of(f, MANIFEST) or (yanked and (f == YANK or is_signature_of(f, YANK))):
            names.add(f)
    return sorted(names)


def prepare_release(
    rel: IndexRelease,
    config: RegistryConfig,
    chain: RootChain,
    published_at: datetime,
    now: datetime,
    smoke: bool,
    *,
    plugins: Path | None = None,
) -> PreparedRelease:
    """Validate, verify, smoke and hash one release (the slow path).

    Args:
        rel: The release folder.
        config: The registry's configuration.
        chain: The verified root chain.
        published_at: When the release was (or is being) first published (revocations keep prior releases).
        now: The clock for expiry checks.
        smoke: Run the ``[[tests]]`` in the sandbox.
        plugins: The index's ``plugins/`` folder with every symbolic link resolved (the scan
            refuses links below it), so the rules need not resolve each release folder.

    Returns:
        The derived entry and the bytes to publish.

    Raises:
        RegistryToolError: Any problem (``FindingsError`` carries every finding of the rules).
    """
    folder = rel.path
    resolved = Path(f"{plugins}/{rel.name}/{rel.version}") if plugins is not None else None
    checked = rules.check_release(folder, config, resolved=resolved)
    if checked.manifest is None or (
        not checked.result.ok
        and any(
            f.severity is Severity.error and f.rule not in rules.NEW_RELEASE_RULES
            for f in checked.result.findings
        )
    ):
        raise FindingsError(f"release {rel.name} {rel.version} is not valid", checked.result.findings)
    manifest = checked.manifest
    where = str(folder / MANIFEST)
    if (manifest.name, manifest.version) != (rel.name, rel.version):
        raise UnsafeIndexPathError(
            f"plugin.toml says {manifest.name} {manifest.version} "
            f"but lives in plugins/{rel.name}/{rel.version}",
            where=Location(file=where, field="plugin.name"),
            fix="move the release to plugins/<name>/<version>/",
        )
    # Every published file is read once: the manifest and module bytes the rules checked are the
    # bytes verified, hashed and written below (no window for a change between check and publish).
    known = {MANIFEST: manifest.raw}
    if checked.wasm is not None:
        known[manifest.artifact.file] = checked.wasm
    data = {
        n: known[n] if n in known else _read(rel.folder, n)
        for n in published_names(rel, manifest.artifact.file)
    }
    # Also checks that a trusted comment naming a plugin/version names this one.  The identity is
    # what the manifest parser read from these very bytes (``data[MANIFEST] is manifest.raw``):
    # the verifier checks that and does not parse them a second time.
    signers = verify_release_signatures(
        chain.root,
        rel.name,
        data[MANIFEST],
        _signatures(data, MANIFEST),
        now,
        published_at=published_at,
        where=where,
        identity=ParsedIdentity(manifest.name, manifest.version, manifest.raw),
    )
    yanked = _read_yank(rel, data.get(YANK), _signatures(data, YANK), chain, now)
    # The module was hashed by the digest rule, from these very bytes: not again.
    hashed = {manifest.artifact.file: checked.wasm_sha256} if checked.wasm is not None else {}
    files = {n: (hashed.get(n) or hashlib.sha256(b).hexdigest(), len(b)) for n, b in data.items()}
    wasm_sha, wasm_size = files[manifest.artifact.file]
    if (wasm_sha, wasm_size) != (manifest.artifact.sha256, manifest.artifact.size):
        raise CheckFailed(
            f"{manifest.artifact.file} does not match the sha256/size pinned in plugin.toml",
            where=Location(file=where, field="artifact.sha256"),
            fix="restore the wasm file or re-sign the release",
        )
    limits = checked.limits or manifest.effective_limits(config)
    figures = _smoke(replace(manifest, limits=limits), config, where) if smoke else None
    entry = Release(
        name=rel.name,
        version=rel.version,
        description=manifest.description,
        license=manifest.license,
        abi=manifest.abi,
        host=manifest.host_range,
        exports=tuple(manifest.exports),
        permissions=tuple(sorted(manifest.permissions)),
        # Only required dependencies are published: the client never resolves optional ones.
        dependencies={d.name: d.range for d in manifest.dependencies if not d.optional},
        limits=Limits(
            fuel=int(limits.fuel or 0),
            memory=int(limits.memory or 0),
            wall_time_ms=milliseconds(limits.wall_time or 0),
        ),
        manifest=FileRef(release_path(rel.name, rel.version, MANIFEST), *files[MANIFEST]),
        wasm=FileRef(release_path(rel.name, rel.version, manifest.artifact.file), wasm_sha, wasm_size),
        signers=tuple(sorted(signers)),
        published_at="",
        yanked=yanked,
        smoke=figures,
        authors=tuple(manifest.authors),
        keywords=tuple(manifest.keywords),
        homepage=manifest.homepage,
        repository=manifest.repository,
    ).to_json()
    del entry["published_at"]
    return PreparedRelease(entry=entry, files=files, data=data)


#: What a signature file or a yank.toml may hold (the client and ci check read no more): a 2 GiB
#: sparse "signature" in the index was read whole, held in memory and published.
_YANK_CAP = 64 * 1024


def _read(folder: str, name: str) -> bytes:
    """A release file's bytes: a regular file in one open, fstat and read; signatures bounded."""
    cap = MAX_SIGNATURE_BYTES if name.endswith(SIG_SUFFIX) else _YANK_CAP if name == YANK else None
    quick = read_plain(f"{folder}/{name}", cap)
    if quick is not None and quick[1] is not None:
        return quick[1]
    if cap is None:
        return Path(folder, name).read_bytes()
    what = "signature file" if cap == MAX_SIGNATURE_BYTES else YANK
    return read_bounded(Path(folder, name), cap, what, follow_symlinks=False)


def _signatures(data: dict[str, bytes], signed: str) -> list[str]:
    """The signature files of ``signed`` among the bytes read for publication.

    Raises:
        SignatureNameError: a keyed signature file holds another key's signature.
    """
    texts = []
    for name in sorted(data):
        if is_signature_of(name, signed):
            texts.append(data[name].decode("utf-8", "surrogateescape"))
            check_signature_name(name, signed, texts[-1])
    return texts


def _read_yank(
    rel: IndexRelease, data: bytes | None, sigs: list[str], chain: RootChain, now: datetime
) -> str | None:
    """The reason from a maintainer-signed yank.toml, or None; an unsigned yank is refused."""
    if data is None:
        return None
    path = rel.path / YANK
    where = str(path)
    if manifest_identity(data, where=where, table="yank") != (rel.name, rel.version):
        raise CheckFailed(
            f"yank.toml names another release than {rel.name} {rel.version}",
            where=Location(file=where, field="yank.name"),
            fix="write the release's own name and version in [yank]",
        )
    verify_yank_signatures(chain.root, rel.name, data, sigs, now, where=where)
    reason = str(toml.loads(data.decode("utf-8"))["yank"].get("reason", ""))
    if len(reason) > MAX_YANK_REASON:  # the plugin document's schema caps it (ci check refuses it too)
        raise CheckFailed(
            f"yank.reason is {len(reason)} characters, above the {MAX_YANK_REASON} the plugin document "
            "allows",
            where=Location(file=where, field="yank.reason"),
            fix="say it shorter in a new signed yank.toml: link to an advisory for the details",
        )
    return reason


def _smoke(manifest: Manifest, config: RegistryConfig, where: str) -> tuple[SmokeFigure, ...]:
    # Lazy: the sandbox (wasmtime's engine, the Extism kernel) loads only when a build runs smoke
    # tests; `--no-smoke` builds and the verifying client never import it.
    from registry_tool.sandbox import smoke_release

    outcomes = smoke_release(manifest, config, cache=True)
    failed = [o for o in outcomes if not o.passed]
    if failed:
        o = failed[0]
        raise CheckFailed(
            f"smoke test {o.name!r} ended in {o.outcome.value}, expected {o.expected}"
            + (f" ({o.detail})" if o.detail else "")
            + (f"; {len(failed) - 1} more failed" if len(failed) > 1 else ""),
            where=Location(file=where, field="tests"),
            fix="run `registry-tool smoke` on the release and fix the plugin or its [[tests]]",
        )
    return tuple(SmokeFigure(o.name, o.fuel_consumed, o.peak_memory_bytes) for o in outcomes)


def load_previous(spec: str, chain: RootChain, record: PublicationRecord | None = None) -> Publication:
    """The published registry at ``spec`` (a site folder or URL), verified.

    Its top document's signature is checked under the root it names, then every document below
    it is fetched by pin (so a modified metadata file is refused, not carried over).  Plugin
    documents whose digest the build cache's ``record`` lists are decoded without the verifier's
    rules (see ``read_publication``).

    Raises:
        RollbackError: The published registry names a root the index does not have.
        RegistryToolError: An unreadable site, a bad signature or a document not matching its pin.
    """
    index_ids = sorted({k.key_id for r in chain.roots.values() for k in r.role("index").keys})
    published = site_io.read_site(spec, index_ids)
    top = TopDocument.parse(published.data, where=f"{published.source}/{REGISTRY_JSON}")
    root = chain.roots.get(top.root_version)
    if root is None:
        raise RollbackError(
            f"the published registry was built under root v{top.root_version}, "
            f"but the index has root versions 1..{chain.root.version}",
            where=published.source,
            fix="build from an up-to-date checkout of the index",
        )
    verify_index_signatures(root, published.data, published.signatures, where=published.source)
    if record is None:
        return read_publication(top, published.read)
    return read_publication(top, published.read, record.documents, record.nodes)
