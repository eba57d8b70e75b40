"""``registry-tool build``: the index in, a static signed site out.

The build reads the index (registry.toml, the root chain, every release), validates and
verifies everything, checks the result against the previously published registry
(immutability, rollback), writes the site into a staging folder and swaps it into
place.  Nothing is written to SITE unless every check passed.

Per release the work is: list files, validate the manifest and module (the same rules as
``validate``), verify maintainer signatures against the root, run the smoke tests, hash
the files.  The incremental cache (``cache.py``) skips all of it for unchanged releases.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from registry_tool import __version__
from registry_tool.errors import CheckFailed, Location, RegistryToolError, UsageError
from registry_tool.format import (
    MANIFEST,
    REGISTRY_JSON,
    YANK,
    FileRef,
    Limits,
    Metadata,
    PluginDocument,
    RegistryInfo,
    Release,
    SmokeFigure,
    TopDocument,
    build_metadata,
    format_time,
    is_plugin_name,
    is_root_signature,
    is_signature_of,
    is_version,
    parse_time_strict,
    release_from_json,
    release_path,
    root_file_version,
)
from registry_tool.registry import site as site_io
from registry_tool.registry.cache import BuildCache, content_key, stat_print
from registry_tool.registry.catalog import write_catalog
from registry_tool.registry.document import Publication, read_publication
from registry_tool.report import CheckResult, Finding, Report, Severity

ProgressFn = Callable[[int, int, str], None]


def parse_time(text: str) -> datetime:
    """A time the build itself wrote or verified (always the one spelling)."""
    moment = parse_time_strict(text)
    if moment is None:
        raise CheckFailed(f"timestamp {text!r} is not YYYY-MM-DDTHH:MM:SSZ", fix="rebuild the registry")
    return moment


# --------------------------------------------------------------------------- errors


class BuildRefusedError(CheckFailed):
    """The index has problems; carries the full report so every problem is shown at once."""

    code = "build-refused"

    def __init__(self, report: Report) -> None:
        problems = [(r, f) for r, f in report.findings() if f.severity is Severity.error]
        first = problems[0][1] if problems else None
        bad = sum(1 for r in report.results if not r.ok)
        what = f"build refused: {len(problems)} problem(s) in {bad} subject(s)"
        if first:
            what += f"; first: {first.text()}"
        super().__init__(what, where=Location(first.file) if first and first.file else None)
        self.report = report


class RollbackError(CheckFailed):
    """The registry version (or the root version) would not increase over the published one."""

    code = "rollback"


class PublishedReleaseChangedError(CheckFailed):
    code = "published-release-changed"


class PublishedReleaseRemovedError(CheckFailed):
    code = "published-release-removed"


class UnsafeIndexPathError(CheckFailed):
    code = "unsafe-path"


class RootChainError(CheckFailed):
    code = "root-chain"


class UnpinnedConfigError(CheckFailed):
    """registry.toml differs from the digest the root pins (a change that skipped the root threshold)."""

    code = "config-unauthorised"


def _check_config_pin(raw: bytes, path: Path, pinned: str | None) -> None:
    """A root that pins registry.toml is obeyed: the site is never built with other permissions/limits."""
    digest = hashlib.sha256(raw).hexdigest()
    if pinned is not None and digest != pinned:
        raise UnpinnedConfigError(
            f"registry.toml has sha256 {digest}, the root pins {pinned}",
            where=str(path),
            fix="restore the pinned registry.toml, or pin this one in a new root version signed by the "
            "root threshold (`registry-tool root pin-config` then `registry-tool root sign`)",
        )


class IndexKeyError(UsageError):
    """The key given with --key is not an index key of the current root."""

    code = "not-an-index-key"


# --------------------------------------------------------------------------- inputs and results


@dataclass(frozen=True)
class BuildOptions:
    index: Path
    out: Path
    keys: list[Any]  # registry_tool.signing.SecretKey, the index key(s)
    now: datetime  # document clock (SOURCE_DATE_EPOCH when set)
    verify_now: datetime | None = None  # clock for expiry checks; defaults to ``now``
    previous: str | None = None  # folder or URL of the published site
    registry_version: int | None = None
    smoke: bool = True
    cache_path: Path | None = None  # None: no cache
    progress: ProgressFn | None = None
    # Worker processes for releases the cache cannot answer (the CLI's default too); workers only
    # start when each gets at least _MIN_PER_JOB releases, so small builds stay in-process.
    jobs: int = field(default_factory=lambda: min(os.cpu_count() or 1, 8))


@dataclass
class BuildResult:
    site: Path
    document: Publication
    previous_version: int | None
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[Finding] = field(default_factory=list)
    # Metadata documents written this build vs kept (hard-linked) from the previous site.
    meta_files: dict[str, int] = field(default_factory=dict)

    def report(self) -> Report:
        doc = self.document
        result = CheckResult(subject=str(self.site), findings=list(self.warnings), file=REGISTRY_JSON)
        releases = doc.releases()
        result.data = {
            "registry_version": doc.version,
            "previous_version": self.previous_version,
            "root_version": doc.root_version,
            "generated_at": doc.generated_at,
            "expires_at": doc.expires_at,
            "plugins": len(doc.plugins),
            "releases": len(releases),
            "yanked": sum(1 for r in releases if r.is_yanked),
            "counts": dict(sorted(self.counts.items())),
            "meta_files": dict(sorted(self.meta_files.items())),
            "seconds": round(self.seconds, 3),
            "text_lines": [
                f"registry version {doc.version} (previous {self.previous_version}), "
                f"root v{doc.root_version}",
                f"{len(releases)} releases of {len(doc.plugins)} plugins, expires {doc.expires_at}",
                "cache: " + ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())),
                "metadata files: " + ", ".join(f"{k} {v}" for k, v in sorted(self.meta_files.items())),
            ],
        }
        return Report(command="build", results=[result])


@dataclass
class _Release:
    """A release folder found in the index."""

    name: str
    version: str
    path: Path
    files: list[tuple[str, Path]]  # (name relative to the release folder, path), sorted


@dataclass
class _Prepared:
    """What the build derived from one release: its registry.json entry and the files to publish."""

    entry: dict[str, Any]  # Release.to_json() without published_at
    files: dict[str, tuple[str, int]]  # published file name -> (sha256, size)
    data: dict[str, bytes] = field(default_factory=dict)  # file contents read this build (empty: cached)
    cached: dict[str, Any] | None = None  # the cache entry (holds the site files' stat prints)
    written: bool = False  # the files were written into the staging folder right after verification


# --------------------------------------------------------------------------- root chain


@dataclass(frozen=True)
class RootChain:
    root: Any  # registry_tool.trust.Root, the newest verified root
    roots: dict[int, Any]  # version -> verified Root
    files: list[tuple[str, Path]]  # every root file and signature, to copy byte for byte
    digest: str


def load_root_chain(index: Path, now: datetime) -> RootChain:
    """Verify root 1 (self-signed) and every step 1 -> N; the newest root must not be expired."""
    from registry_tool.signing import read_signatures
    from registry_tool.trust import ExpiredRootError, Root, verify_root_step, verify_threshold

    folder = index / "root"
    if not folder.is_dir():
        raise RootChainError(f"{folder} does not exist", where=str(folder), fix="create it with `root init`")
    versions: dict[int, Path] = {}
    files: list[tuple[str, Path]] = []
    for entry in sorted(p.name for p in folder.iterdir()):
        path = folder / entry
        if (number := root_file_version(entry)) is not None:
            versions[number] = path
        elif not is_root_signature(entry):
            continue
        if path.is_symlink() or not path.is_file():
            raise UnsafeIndexPathError(
                f"{path} is not a regular file", where=str(path), fix="replace the symlink"
            )
        files.append((f"root/{entry}", path))
    if not versions or sorted(versions) != list(range(1, len(versions) + 1)):
        raise RootChainError(
            f"root versions {sorted(versions)} in {folder} are not 1..N without gaps",
            where=str(folder),
            fix="keep every root version in root/ so clients can walk the chain",
        )
    digest = hashlib.sha256()
    for relname, path in files:
        digest.update(relname.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    first = versions[1].read_bytes()
    root = Root.parse(first, where=str(versions[1]))
    verify_threshold(
        root.role("root"),
        first,
        read_signatures(versions[1]),
        subject="root version 1",
        where=str(versions[1]),
    )
    roots = {1: root}
    for n in range(2, len(versions) + 1):
        path = versions[n]
        root = verify_root_step(root, path.read_bytes(), read_signatures(path), where=str(path))
        roots[n] = root
    if root.is_expired(now):
        raise ExpiredRootError(
            f"root version {root.version} expired at {format_time(root.expires)}",
            where=str(versions[root.version]),
            fix="publish a new root version before building",
        )
    return RootChain(root=root, roots=roots, files=files, digest=digest.hexdigest())


# --------------------------------------------------------------------------- scanning the index


def scan_releases(index: Path) -> list[_Release]:
    """Every ``plugins/<name>/<version>/`` folder, refusing unsafe names and symlinks."""
    plugins = index / "plugins"
    found: list[_Release] = []
    if not plugins.is_dir():
        return found
    for name, name_dir in _subfolders(plugins, is_plugin_name, "plugin name", "^[a-z][a-z0-9_-]{1,63}$"):
        for version, rel_dir in _subfolders(name_dir, is_version, "version", "strict semver, no '+'"):
            found.append(_Release(name, version, rel_dir, _list_files(rel_dir)))
    return found


def _subfolders(folder: Path, safe: Callable[[str], bool], what: str, rule: str) -> list[tuple[str, Path]]:
    """The folders in ``folder`` by name; plain files (README.md, .gitkeep: never published) skipped,
    anything else that is not a safely named real folder refused.

    ``os.scandir`` answers the type questions from the directory entry (``follow_symlinks=False``:
    the entry itself, as ``lstat``), without a stat per entry.
    """
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    out: list[tuple[str, Path]] = []
    for entry in entries:
        if entry.is_file(follow_symlinks=False):
            continue
        path = folder / entry.name
        if entry.is_symlink():
            raise UnsafeIndexPathError(
                f"{path} is a symlink", where=str(path), fix="replace it with a real folder"
            )
        if not safe(entry.name):
            raise UnsafeIndexPathError(
                f"{what} {entry.name!r} in {folder} is not allowed in a published path",
                where=str(path),
                fix=f"rename the folder ({rule})",
            )
        if not entry.is_dir(follow_symlinks=False):
            raise UnsafeIndexPathError(
                f"{path} is not a folder", where=str(path), fix="remove it from plugins/"
            )
        out.append((entry.name, path))
    return out


def _list_files(folder: Path) -> list[tuple[str, Path]]:
    """Every file under a release folder (tests read input files too), symlinks refused.

    ``os.scandir`` answers the type questions from the directory entry, without a stat per file.
    """
    out: list[tuple[str, Path]] = []
    pending = [("", folder)]
    while pending:
        prefix, current = pending.pop()
        with os.scandir(current) as entries:
            for entry in entries:
                path = current / entry.name
                if entry.is_symlink() or not (entry.is_file() or entry.is_dir()):
                    raise UnsafeIndexPathError(
                        f"{path} is a symlink or special file",
                        where=str(path),
                        fix="replace it with a regular file or folder",
                    )
                if entry.is_dir():
                    pending.append((f"{prefix}{entry.name}/", path))
                else:
                    out.append((f"{prefix}{entry.name}", path))
    out.sort()
    return out


# --------------------------------------------------------------------------- one release


def _published_names(rel: _Release, artifact: str) -> list[str]:
    """Files of the release folder that go to the site: manifest, wasm, yank, all signatures."""
    names = {MANIFEST, artifact}
    for f, _ in rel.files:
        if "/" in f:
            continue
        if is_signature_of(f, MANIFEST) or f == YANK or is_signature_of(f, YANK):
            names.add(f)
    return sorted(names)


def prepare_release(
    rel: _Release, config: Any, chain: RootChain, published_at: datetime, now: datetime, smoke: bool
) -> _Prepared:
    """Validate, verify, smoke and hash one release (the slow path); raises on any problem."""
    from dataclasses import replace

    from registry_tool.manifest.errors import FindingsError
    from registry_tool.manifest.validate import check_release
    from registry_tool.signing.release import ParsedIdentity
    from registry_tool.trust import verify_release_signatures

    checked = check_release(rel.path, config)
    if not checked.result.ok or checked.manifest is None:
        raise FindingsError(f"release {rel.name} {rel.version} is not valid", checked.result.findings)
    manifest = replace(checked.manifest, limits=checked.manifest.effective_limits(config))
    where = str(rel.path / MANIFEST)
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
        n: known[n] if n in known else (rel.path / n).read_bytes()
        for n in _published_names(rel, manifest.artifact.file)
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
    figures = _smoke(manifest, config, where) if smoke else None
    limits = manifest.limits
    entry = Release(
        name=rel.name,
        version=rel.version,
        description=manifest.description,
        license=manifest.license,
        abi=manifest.abi,
        host=manifest.host_range,
        exports=tuple(manifest.exports),
        permissions=tuple(sorted(manifest.permissions)),
        limits=Limits(
            fuel=int(limits.fuel or 0),
            memory=int(limits.memory or 0),
            wall_time_ms=round((limits.wall_time or 0) * 1000),
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
    return _Prepared(entry=entry, files=files, data=data)


def _signatures(data: dict[str, bytes], signed: str) -> list[str]:
    """The signature files of ``signed`` among the bytes read for publication."""
    return [data[n].decode("utf-8", "replace") for n in sorted(data) if is_signature_of(n, signed)]


def _read_yank(
    rel: _Release, data: bytes | None, sigs: list[str], chain: RootChain, now: datetime
) -> str | None:
    """The reason from a maintainer-signed yank.toml, or None; an unsigned yank is refused."""
    from registry_tool.signing import manifest_identity
    from registry_tool.trust import verify_yank_signatures

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
    reason = tomllib.loads(data.decode("utf-8"))["yank"].get("reason", "")
    return str(reason)


def _smoke(manifest: Any, config: Any, where: str) -> tuple[SmokeFigure, ...]:
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


# --------------------------------------------------------------------------- previous registry


def load_previous(spec: str, chain: RootChain) -> Publication:
    """The published registry: its top document's signature checked under the root it names, then
    every document below it fetched by pin (so a modified metadata file is refused, not carried over)."""
    from registry_tool.trust import verify_index_signatures

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
    return read_publication(top, published.read)


def immutability_findings(
    previous: Publication, prepared: dict[tuple[str, str], _Prepared], allow_backports: bool
) -> list[Finding]:
    """Published releases may be yanked, never removed or changed; new versions may not go backwards."""
    from registry_tool.manifest.versions import parse_version

    out: list[Finding] = []
    for old in previous.releases():
        key = (old.name, old.version)
        where = f"plugins/{old.name}/{old.version}"
        new = prepared.get(key)
        if new is None:
            out.append(
                Finding(
                    PublishedReleaseRemovedError.code,
                    f"release {old.name} {old.version} was published in registry v{previous.version} "
                    "and is missing from the index",
                    file=where,
                    fix="restore it; to withdraw a release, add a maintainer-signed yank.toml instead",
                )
            )
            continue
        for kind, ref in (("manifest", old.manifest), ("wasm", old.wasm)):
            got = new.entry[kind]
            if (got["path"], got["sha256"], got["size"]) != (ref.path, ref.sha256, ref.size):
                out.append(
                    Finding(
                        PublishedReleaseChangedError.code,
                        f"{ref.path} changed since it was published (sha256 {ref.sha256[:16]}…, "
                        f"now {got['sha256'][:16]}…)",
                        file=f"{where}/{Path(got['path']).name}",
                        fix="published releases are immutable: restore the bytes and publish a new version",
                    )
                )
    if not allow_backports:
        newest: dict[str, Any] = {}
        for old in previous.releases():
            v = parse_version(old.version)
            newest[old.name] = max(newest.get(old.name, v), v)
        for name, version in sorted(prepared):
            if (
                previous.get(name, version) is None
                and name in newest
                and parse_version(version) < newest[name]
            ):
                out.append(
                    Finding(
                        "version-goes-down",
                        f"new release {name} {version} is older than the published {newest[name]}",
                        file=f"plugins/{name}/{version}",
                        fix="publish a higher version, or set [index] allow_backports = true "
                        "in registry.toml",
                    )
                )
    return out


def next_version(previous: Publication | TopDocument | None, now: datetime, requested: int | None) -> int:
    """Previous + 1, or the UTC timestamp as YYYYMMDDHHMMSS when larger; never <= previous."""
    floor = int(now.strftime("%Y%m%d%H%M%S"))
    if previous is not None:
        floor = max(floor, previous.version + 1)
    version = requested if requested is not None else floor
    if previous is not None and version <= previous.version:
        raise RollbackError(
            f"registry version {version} is not above the published version {previous.version}",
            where=REGISTRY_JSON,
            fix=f"omit --registry-version, or pass one above {previous.version}",
        )
    if version < 1:
        raise UsageError(f"registry version {version} must be positive", fix="pass a positive version")
    return version


# --------------------------------------------------------------------------- signing and writing


def sign_registry(data: bytes, keys: list[Any], root: Any, name: str, version: int) -> dict[str, str]:
    """Signature files for registry.json by every index key; the root's index threshold must be met."""
    from registry_tool.signing import sign_bytes
    from registry_tool.trust import verify_index_signatures

    if not keys:
        raise UsageError("no index key given", fix="pass --key INDEX_KEY")
    index_ids = {k.key_id for k in root.role("index").keys}
    out: dict[str, str] = {}
    for i, key in enumerate(keys):
        if key.key_id not in index_ids:
            raise IndexKeyError(
                f"key {key.key_id} is not an index key of root v{root.version} "
                f"(index keys: {', '.join(sorted(index_ids)) or 'none'})",
                fix="sign with an index key listed in the root, or rotate keys with `root rotate-keys`",
            )
        comment = f"registry:{name}\tversion:{version}\tfile:{REGISTRY_JSON}"
        text = sign_bytes(
            key, data, trusted_comment=comment, untrusted_comment=f"registry-tool index key {key.key_id}"
        )
        out[f"{REGISTRY_JSON}.minisig" if i == 0 else f"{REGISTRY_JSON}.{key.key_id}.minisig"] = text
    verify_index_signatures(root, data, list(out.values()))
    return out


def _write(path: Path, data: bytes) -> None:
    """Write a new site file (the folder exists: one mkdir per folder, not per file)."""
    with open(path, "xb") as fh:
        fh.write(data)


def _write_release(staged: str, rel: _Release, data: dict[str, bytes]) -> None:
    """Write the files of a release verified this build (the bytes that were verified)."""
    folder = f"{staged}/plugins/{rel.name}/{rel.version}"
    Path(folder).mkdir(parents=True)
    for name, content in data.items():
        if "/" in name:
            Path(f"{folder}/{name}").parent.mkdir(parents=True, exist_ok=True)
        _write(Path(f"{folder}/{name}"), content)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _site_print(path: str) -> list[int] | None:
    """(size, mtime, inode) of a regular site file, None for anything else (symlink, missing)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino] if stat.S_ISREG(st.st_mode) else None


def _stage_release(staged: Path, rel: _Release, prep: _Prepared, old_site: Path) -> None:
    """Stage a release's files: already written when verified this build; for a cache hit a hard
    link to the identical old site file, else the index file read again.

    An old site file is reused only if it still has the size, mtime and inode recorded when
    this tool wrote it (and the cache says its digest is unchanged); otherwise the index file
    is read again and must still have the digest the build verified.  Plain ``os`` calls on
    strings: with 10,000 releases, pathlib objects cost more than the system calls.
    """
    relpath = f"plugins/{rel.name}/{rel.version}"
    folder = f"{staged}/{relpath}"
    old_folder = f"{old_site}/{relpath}"
    prints: dict[str, Any] = prep.cached.setdefault("site", {}) if prep.cached is not None else {}
    if prep.written:  # verified this build and written right after (``_prepare_all``)
        if prep.cached is not None:
            prints.update((name, _site_print(f"{folder}/{name}")) for name in prep.files)
        return
    Path(folder).mkdir(parents=True)
    for name, (sha, size) in sorted(prep.files.items()):
        dst = f"{folder}/{name}"
        recorded = prints.get(name)
        if recorded is not None and recorded[0] == size and _site_print(f"{old_folder}/{name}") == recorded:
            _link_or_copy(f"{old_folder}/{name}", dst)
            continue  # same inode: the recorded print still holds
        else:
            source = rel.path / name
            data = source.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha or len(data) != size:
                raise CheckFailed(
                    f"{source} changed during the build",
                    where=str(source),
                    fix="run the build again when nothing is writing to the index",
                )
            _write(Path(dst), data)
        if prep.cached is not None:
            prints[name] = _site_print(dst)


# --------------------------------------------------------------------------- the build


def build_site(opts: BuildOptions) -> BuildResult:
    """Build and atomically publish SITE from the index (see module docstring)."""
    if not opts.index.is_dir():
        raise UsageError(f"{opts.index} is not a folder", where=str(opts.index), fix="pass the index folder")
    out = site_io.real_site(opts.out)
    with site_io.site_lock(out):
        return _build_locked(opts, out)


def _build_locked(opts: BuildOptions, out: Path) -> BuildResult:
    from registry_tool.manifest import load_registry_config

    started = time.perf_counter()
    verify_now = opts.verify_now or opts.now
    index = opts.index
    site_io.recover_interrupted(out)
    site_io.check_site_target(out)
    config = load_registry_config(index)
    chain = load_root_chain(index, verify_now)
    _check_config_pin(config.raw, config.path, chain.root.registry_config_sha256)
    previous = load_previous(opts.previous, chain) if opts.previous else None
    if previous is not None and previous.registry.name != config.name:
        raise RollbackError(
            f"--previous is registry '{previous.registry.name}', this index builds '{config.name}'",
            where=opts.previous,
            fix="point --previous at this registry's published site",
        )
    if previous is not None and previous.root_version > chain.root.version:
        raise RollbackError(
            f"the published registry uses root v{previous.root_version}, newer than the index's root "
            f"v{chain.root.version}",
            fix="build from an up-to-date checkout of the index",
        )
    releases = scan_releases(index)
    cache = BuildCache(opts.cache_path)
    context = f"{__version__}\0{chain.digest}\0{hashlib.sha256(config.raw).hexdigest()}"
    generated_at = format_time(opts.now)
    prepared: dict[tuple[str, str], _Prepared] = {}
    report = Report(command="build")
    counts = {"verified": 0, "cached": 0, "smoked": 0}
    done = [0]

    def tick(what: str) -> None:
        done[0] += 1
        if opts.progress:
            opts.progress(done[0], len(releases), what)

    misses: list[tuple[_Release, datetime, _Lookup | None]] = []
    for rel in releases:
        old = previous.get(rel.name, rel.version) if previous else None
        published = old.published_at if old else generated_at
        look = None
        if cache.enabled:
            hit, look = _from_cache(rel, cache, _cache_context(chain, context, published), opts.smoke)
            if hit is not None:
                prepared[(rel.name, rel.version)] = hit
                counts["cached"] += 1
                tick(f"{rel.name} {rel.version}")
                continue
        misses.append((rel, parse_time(published), look))
    # Workers write the files of the releases they verify straight into the staging folder;
    # anything that fails from here on removes it, so SITE only ever changes by the swap.
    staged = site_io.staging_dir(out)
    try:
        outcomes = _prepare_all([(r, p) for r, p, _ in misses], opts, config, chain, verify_now, tick, staged)
        for (rel, _, look), outcome in zip(misses, outcomes, strict=True):
            if isinstance(outcome, list):
                report.results.append(CheckResult(subject=f"{rel.name} {rel.version}", findings=outcome))
                continue
            prepared[(rel.name, rel.version)] = outcome
            counts["verified"] += 1
            counts["smoked"] += int(opts.smoke)
            if look is not None:
                _to_cache(rel, outcome, look, cache)
        if opts.progress:
            opts.progress(len(releases), len(releases), "signing")
        if previous is not None:
            problems = immutability_findings(previous, prepared, config.allow_backports)
            if problems:
                report.results.append(CheckResult(subject="previous registry", findings=problems))
        if report.results:
            raise BuildRefusedError(report)
        version = next_version(previous, opts.now, opts.registry_version)
        document, meta = _publication(config, chain, prepared, previous, version, opts.now, generated_at)
        data = document.top.to_bytes()
        signatures = sign_registry(data, opts.keys, chain.root, config.name, version)
        # Leaves first, the top document last (the order an object-store upload must keep too).
        for rel in releases:
            _stage_release(staged, rel, prepared[(rel.name, rel.version)], out)
        (staged / "root").mkdir()
        for relname, path in chain.files:
            _write(staged / relname, path.read_bytes())
        written, kept = stage_metadata(staged, meta, out if out.is_dir() else None)
        # The browser catalog (outside the trust model: it verifies what it shows) trusts root 1.
        write_catalog(staged, chain.roots[1].raw)
        _write(staged / REGISTRY_JSON, data)
        for name, text in signatures.items():
            _write(staged / name, text.encode("utf-8"))
        site_io.swap_into_place(staged, out)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    cache.keep_only({f"{r.name}/{r.version}" for r in releases})
    cache.save()
    warnings = []
    if document.expires() <= verify_now:
        warnings.append(
            Finding(
                "expired-on-arrival",
                f"registry.json expires at {document.expires_at}, which is already past",
                severity=Severity.warning,
                file=REGISTRY_JSON,
                fix="unset SOURCE_DATE_EPOCH or run `registry-tool resign`",
            )
        )
    return BuildResult(
        site=opts.out,
        document=document,
        previous_version=previous.version if previous else None,
        counts=counts,
        seconds=time.perf_counter() - started,
        warnings=warnings,
        meta_files={"written": written, "kept": kept},
    )


@dataclass
class _Lookup:
    """A release's cache keys, computed once per build."""

    key: str
    stat: Any
    context: str
    digests: dict[str, str] | None = None  # every file's sha256 when the content path hashed them


def _cache_context(chain: RootChain, context: str, published_at: str) -> str:
    # Publish time matters to verification only through revocations that keep prior releases:
    # which side of each such revocation the release is on is part of the key, not the time itself
    # (so a release first built as new and later carried over from --previous still hits).
    published = parse_time(published_at)
    sides = "".join(
        "<" if published < r.revoked_at else ">" for r in chain.root.revoked if r.keep_prior_releases
    )
    return f"{context}\0{sides}"


def _from_cache(
    rel: _Release, cache: BuildCache, context: str, smoke: bool
) -> tuple[_Prepared | None, _Lookup]:
    """The release's entry from the cache when its files are unchanged, else None."""
    look = _Lookup(f"{rel.name}/{rel.version}", stat_print(rel.files), context)
    hit = cache.by_stat(look.key, look.stat, context)
    if hit is None and cache.knows(look.key):
        # Touched files (a fresh checkout): look up by content.  Unknown releases skip this
        # hashing; the full path hashes what it reads anyway.
        look.digests = {n: _sha256_file(p) for n, p in rel.files}
        hit = cache.by_content(content_key(sorted(look.digests.items()), context))
    if hit is None or (smoke and hit["entry"]["smoke"] is None):
        return None, look
    entry = dict(hit["entry"])
    if not smoke:
        entry["smoke"] = None  # --no-smoke records null whatever the cache holds: reproducible
    cache.put(look.key, look.stat, context, hit["content_key"], hit)
    return _Prepared(entry=entry, files={k: (v[0], v[1]) for k, v in hit["files"].items()}, cached=hit), look


def _to_cache(rel: _Release, prep: _Prepared, look: _Lookup, cache: BuildCache) -> None:
    """Store a freshly verified release under the digests of the very bytes that were verified."""
    digests = dict(look.digests or {})
    for name, path in rel.files:
        if name in prep.files:
            digests[name] = prep.files[name][0]
        elif name not in digests:
            digests[name] = _sha256_file(path)
    ckey = content_key(sorted(digests.items()), look.context)
    prep.cached = {
        "entry": prep.entry,
        "files": {k: list(v) for k, v in prep.files.items()},
        "content_key": ckey,
        "site": {},
    }
    cache.put(look.key, look.stat, look.context, ckey, prep.cached)


# --------------------------------------------------------------------------- parallel verification

_WORKER: dict[str, Any] = {}


def _worker_init(index: Path, verify_now: datetime) -> None:
    from registry_tool.manifest import load_registry_config

    _WORKER["config"] = load_registry_config(index)
    _WORKER["chain"] = load_root_chain(index, verify_now)
    _WORKER["now"] = verify_now


def _worker_prepare(
    chunk: list[tuple[_Release, datetime]], smoke: bool, staged: str
) -> list[_Prepared | list[Finding]]:
    """Prepare a chunk of releases in a worker process and write their files into the staging folder.

    Writing here, not in the parent, keeps the file bytes out of the result pipe (1 GiB for
    1,000 releases of 1 MiB).  Errors come back as findings (exceptions may not pickle).
    """
    out: list[_Prepared | list[Finding]] = []
    for rel, published in chunk:
        try:
            prep = prepare_release(rel, _WORKER["config"], _WORKER["chain"], published, _WORKER["now"], smoke)
        except RegistryToolError as err:
            out.append(_findings(err))
            continue
        _write_release(staged, rel, prep.data)
        prep.data, prep.written = {}, True
        out.append(prep)
    return out


def _findings(err: RegistryToolError) -> list[Finding]:
    found = getattr(err, "findings", None)
    return list(found) if found else [Finding.from_error(err)]


def _prepare_all(
    todo: list[tuple[_Release, datetime]],
    opts: BuildOptions,
    config: Any,
    chain: RootChain,
    verify_now: datetime,
    tick: Callable[[str], None],
    staged: Path,
) -> list[_Prepared | list[Finding]]:
    """prepare_release for every cache miss: in this process, or in ``opts.jobs`` worker processes."""
    if opts.jobs <= 1 or len(todo) < _MIN_PER_JOB * opts.jobs:
        out: list[_Prepared | list[Finding]] = []
        for rel, published in todo:
            try:
                prep = prepare_release(rel, config, chain, published, verify_now, opts.smoke)
            except RegistryToolError as err:
                out.append(_findings(err))
            else:
                # Written now, not kept: 10,000 releases of 1 MiB would otherwise sit in memory.
                _write_release(str(staged), rel, prep.data)
                prep.data, prep.written = {}, True
                out.append(prep)
            tick(f"{rel.name} {rel.version}")
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # A few large tasks, not one per release: each task costs a round trip and pickling.
    size = -(-len(todo) // (opts.jobs * _CHUNKS_PER_JOB))
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    # spawn, not fork: the parent may run threads (progress bar, sandbox pools).
    with ProcessPoolExecutor(
        max_workers=opts.jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(opts.index, verify_now),
    ) as pool:
        futures = [pool.submit(_worker_prepare, chunk, opts.smoke, str(staged)) for chunk in chunks]
        results: list[_Prepared | list[Finding]] = []
        for chunk, future in zip(chunks, futures, strict=True):
            results.extend(future.result())
            for rel, _ in chunk:
                tick(f"{rel.name} {rel.version}")
        return results


_CHUNKS_PER_JOB = 4  # enough for an even spread when releases differ in cost
# Below this many cache misses per worker, starting worker processes (spawn: a fresh interpreter
# importing wasmtime and verifying the root chain) costs more than it saves.
_MIN_PER_JOB = 64


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _publication(
    config: Any,
    chain: RootChain,
    prepared: dict[tuple[str, str], _Prepared],
    previous: Publication | None,
    version: int,
    now: datetime,
    generated_at: str,
) -> tuple[Publication, Metadata]:
    """The plugin documents, tree, catalog and top document of this build (not yet signed)."""
    grouped: dict[str, dict[str, Release]] = {}
    for (name, ver), prep in sorted(prepared.items()):
        old = previous.get(name, ver) if previous else None
        entry = dict(prep.entry, published_at=old.published_at if old else generated_at)
        # Read back with the verifier's rules: the build never publishes what a client would refuse.
        grouped.setdefault(name, {})[ver] = release_from_json(name, ver, entry, where=f"plugins/{name}/{ver}")
    meta = build_metadata(PluginDocument(name, versions) for name, versions in grouped.items())
    top = TopDocument(
        version=version,
        generated_at=generated_at,
        expires_at=format_time(now + timedelta(seconds=config.index_validity)),
        root_version=chain.root.version,
        registry=RegistryInfo(
            config.name, config.description, config.base_url, config.host_name, config.host_versions
        ),
        tree=meta.tree,
        catalog=meta.catalog,
        plugin_count=len(grouped),
        release_count=meta.releases,
    )
    TopDocument.parse(top.to_bytes())  # and never signs a top document a client would refuse
    return Publication(top, grouped), meta


def stage_metadata(staged: Path, meta: Metadata, old_site: Path | None) -> tuple[int, int]:
    """Put every metadata document into the staging folder: (files written, files kept).

    Documents are content-addressed, so a file of the old site at the same path holds the same
    bytes unless someone modified it: it is kept (hard-linked) when its bytes are those, else
    written.  A one-plugin change therefore writes that plugin's document, the nodes on its path,
    the catalog and the top document, whatever the registry's size.
    """
    written = kept = 0
    folders: set[str] = set()
    for rel, data in sorted(meta.paths().items()):
        folder = rel.rsplit("/", 1)[0]
        if folder not in folders:
            (staged / folder).mkdir(parents=True, exist_ok=True)
            folders.add(folder)
        if old_site is not None and _same_file(old_site / rel, data):
            _link_or_copy(str(old_site / rel), str(staged / rel))
            kept += 1
        else:
            _write(staged / rel, data)
            written += 1
    return written, kept


def _same_file(path: Path, data: bytes) -> bool:
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size != len(data):
            return False
        return path.read_bytes() == data
    except OSError:
        return False
