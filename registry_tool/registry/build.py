"""``registry-tool build``: the index in, a static signed site out.

The steps, each in its own module:

1. ``scan``: the index's release folders, registry.toml, the root chain (verified);
2. ``cache``: releases whose files are unchanged since an earlier build skip verification;
3. ``verify`` / ``workers``: every other release is validated, verified, smoked and hashed
   (in worker processes for large builds), its files written into a staging folder;
4. ``plan``: pure decisions (immutability against ``--previous``, dependencies, the registry
   version, the documents);
5. ``publish``: the top document is signed and the site written: in place when SITE is a
   published site (only what changed), else staged whole and swapped in.

Nothing a client reads changes unless every check passed.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from registry_tool import __version__
from registry_tool.errors import UsageError
from registry_tool.format import REGISTRY_JSON, Metadata, Pin, Release, format_time, meta_path
from registry_tool.manifest import RegistryConfig, load_registry_config
from registry_tool.manifest.cache import library_version
from registry_tool.manifest.wasm import features_verdict
from registry_tool.registry import cache as cache_rules
from registry_tool.registry import site as site_io
from registry_tool.registry.cache import BuildCache, Lookup, lookup, lookup_context, record
from registry_tool.registry.catalog import catalog_files
from registry_tool.registry.document import (
    Fingerprint,
    KnownDocument,
    PluginPrint,
    Publication,
    PublicationRecord,
    catalog_entry,
    catalog_fields,
    index_digest,
    site_digest,
    site_top_version,
)
from registry_tool.registry.errors import (
    BuildRefusedError,
    PublishedReleaseChangedError,
    PublishedReleaseRemovedError,
    RollbackError,
    UnsafeIndexPathError,
)
from registry_tool.registry.plan import CarriedDocument, next_version, plan_publication
from registry_tool.registry.publish import (
    NeedsWholeSite,
    SiteContent,
    checked_print,
    folder_prints,
    publish,
    release_folders,
    sign_registry,
    site_print,
)
from registry_tool.registry.resign import record_built
from registry_tool.registry.scan import (
    IndexRelease,
    RootChain,
    check_config_pin,
    load_root_chain,
    scan_releases,
)
from registry_tool.registry.verify import PreparedRelease, load_previous, published_time
from registry_tool.registry.workers import prepare_all
from registry_tool.report import CheckResult, Finding, Report, Severity
from registry_tool.signing import SecretKey
from registry_tool.trust import Root

log = logging.getLogger(__name__)

#: ``progress(done, total, what)``: called once per release and once before signing.
ProgressFn = Callable[[int, int, str], None]

__all__ = [
    "BuildOptions",
    "BuildRefusedError",
    "BuildResult",
    "PublishedReleaseChangedError",
    "PublishedReleaseRemovedError",
    "RollbackError",
    "UnsafeIndexPathError",
    "build_site",
    "load_root_chain",
    "next_version",
    "scan_releases",
    "sign_registry",
]


@dataclass(frozen=True)
class BuildOptions:
    """What to build, where, and how.

    Attributes:
        index: The index folder.
        out: SITE (a symlinked SITE keeps its link; the folder it points to is updated).
        keys: The index key(s) signing registry.json (k-of-n: one signature file each).
        now: The document clock (``SOURCE_DATE_EPOCH`` when set).
        verify_now: The clock for expiry checks; defaults to ``now``.
        previous: Folder or URL of the published site (immutability, ``published_at``, rollback).
        registry_version: The registry version to publish instead of the computed one.
        smoke: Run every release's smoke tests.
        cache_path: The incremental cache file; None: no cache.
        progress: Progress callback.
        jobs: Processes verifying the releases the cache cannot answer at most, this one included
            (only as many start as get ``workers.MIN_PER_FORKED_JOB`` releases each, or
            ``workers.MIN_PER_JOB`` where workers are spawned: ``workers.start_method``).
    """

    index: Path
    out: Path
    keys: list[SecretKey]
    now: datetime
    verify_now: datetime | None = None
    previous: str | None = None
    registry_version: int | None = None
    smoke: bool = True
    cache_path: Path | None = None
    progress: ProgressFn | None = None
    jobs: int = field(default_factory=lambda: min(os.cpu_count() or 1, 8))


@dataclass
class BuildResult:
    """A published build.

    Attributes:
        site: SITE as given.
        document: The publication (a plugin kept or carried over is read from SITE, by its pin, on
            first use: while SITE still holds that document, i.e. until the next build).
        previous_version: The registry version of ``--previous``, if given.
        counts: Releases ``verified``, ``cached`` (answered by the cache) and ``smoked``.
        seconds: Wall time of the build.
        warnings: Warning findings (``expired-on-arrival``).
        site_files: What the publication did to SITE's files.
    """

    site: Path
    document: Publication
    previous_version: int | None
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[Finding] = field(default_factory=list)
    site_files: dict[str, int | bool] = field(default_factory=dict)
    yanked: int = 0

    def report(self) -> Report:
        """The build's report: one result, the site, with the build's facts as data."""
        doc = self.document
        result = CheckResult(subject=str(self.site), findings=list(self.warnings), file=REGISTRY_JSON)
        result.data = {
            "registry_version": doc.version,
            "previous_version": self.previous_version,
            "root_version": doc.root_version,
            "generated_at": doc.generated_at,
            "expires_at": doc.expires_at,
            "plugins": doc.top.plugin_count,
            "releases": doc.top.release_count,
            "yanked": self.yanked,
            "counts": dict(sorted(self.counts.items())),
            "site_files": dict(self.site_files),
            "seconds": round(self.seconds, 3),
        }
        return Report(command="build", results=[result])


def build_site(opts: BuildOptions) -> BuildResult:
    """Build and publish SITE from the index (see the module docstring).

    Raises:
        BuildRefusedError: The index has problems (every one of them in the report).
        RegistryToolError: Any other refusal (root chain, rollback, keys, unsafe SITE).
    """
    if not opts.index.is_dir():
        raise UsageError(f"{opts.index} is not a folder", where=str(opts.index), fix="pass the index folder")
    out = site_io.real_site(opts.out)
    with site_io.site_lock(out), _fewer_collections():
        try:
            return _build_locked(opts, out, reuse=True)
        except NeedsWholeSite:
            # SITE must be staged whole (a published file holds other bytes, or registry.json is
            # gone): every release and every document is needed, none kept or carried unread.
            return _build_locked(opts, out, reuse=False)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while a build runs; restored afterwards.

    A build holds hundreds of thousands of long-lived objects (the build cache, the plan, the
    previous publication) and makes almost no cyclic garbage, yet with the default thresholds
    the collector walks all of them again each time the heap grows by a quarter: a third of a
    one-change rebuild's CPU at 10,000 releases.  The youngest generation is collected every
    200,000 net allocations, not 700: a rebuild at 10,000 releases makes about 150,000 (its scan
    and the cache's records), and each collection walks all of them (16 ms at 50,000; a full
    build's peak memory is the same, 118 MiB at 10,000 releases).  Nothing is left uncollected
    for good: the collector still runs, less often, and at the old thresholds again after the
    build.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], 200_000), max(old[1], 50), max(old[2], 100))
    try:
        yield
    finally:
        gc.set_threshold(*old)


# Plugin name -> the pin and record of its document in SITE, kept as it is (see ``_carried``).
_Carried = dict[str, tuple[Pin, KnownDocument]]


@dataclass
class _Inputs:
    config: RegistryConfig
    chain: RootChain
    previous: Publication | None
    previous_is_site: bool
    record: PublicationRecord | None


def _read_inputs(opts: BuildOptions, out: Path, verify_now: datetime, cache: BuildCache) -> _Inputs:
    config = load_registry_config(opts.index, cache.proven_features())
    chain = load_root_chain(opts.index, verify_now, cache.checked_roots())
    check_config_pin(config.raw, config.path, chain.root.registry_config_sha256)
    is_site = opts.previous is not None and _same_folder(opts.previous, out)
    record = cache.publication(out) if is_site else None
    previous = load_previous(opts.previous, chain, record) if opts.previous else None
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
    return _Inputs(config, chain, previous, is_site, record)


def _same_folder(spec: str, out: Path) -> bool:
    try:
        return Path(spec).resolve() == out.resolve() if "://" not in spec else False
    except OSError:
        return False


def _build_locked(opts: BuildOptions, out: Path, *, reuse: bool) -> BuildResult:
    cache = BuildCache(opts.cache_path)
    try:
        return _build_with(opts, out, cache, reuse=reuse)
    finally:
        cache.close()


def _build_with(opts: BuildOptions, out: Path, cache: BuildCache, *, reuse: bool) -> BuildResult:
    started = time.perf_counter()
    verify_now = opts.verify_now or opts.now
    site_io.recover_interrupted(out)
    site_io.check_site_target(out)
    inputs = _read_inputs(opts, out, verify_now, cache)
    config, chain, previous = inputs.config, inputs.chain, inputs.previous
    scanned_at = time.time()  # the plugin prints' racy window starts before any file was looked at
    folders: dict[str, tuple[bytes, int]] = {}
    releases = scan_releases(opts.index, cache.listings(), folders)
    # The installed wasmtime decides validation and smoke figures: another one is another context.
    wasmtime_identity = library_version("wasmtime") or ""
    base = f"{__version__}\0{wasmtime_identity}\0{chain.digest}\0{hashlib.sha256(config.raw).hexdigest()}"
    generated_at = format_time(opts.now)
    prepared: dict[tuple[str, str], PreparedRelease] = {}
    refused: list[CheckResult] = []
    counts = {"verified": 0, "cached": 0, "smoked": 0}
    done = [0]

    def tick(what: str) -> None:
        done[0] += 1
        if opts.progress:
            opts.progress(done[0], len(releases), what)

    misses: list[tuple[IndexRelease, datetime, Lookup | None]] = []
    now_published = first_published_at(published_time(generated_at), verify_now, chain.root)

    def published_at(rel: IndexRelease) -> datetime:
        old = previous.get(rel.name, rel.version) if previous else None
        return published_time(old.published_at) if old else now_published

    # The publish time changes a release's cache context only through revocations that keep prior
    # releases; without one, the previous publication's documents are not even decoded for it.
    by_time = any(r.keep_prior_releases for r in chain.root.revoked)
    context = lookup_context(base, chain, now_published)
    groups: dict[str, list[IndexRelease]] = {}
    for rel in releases:
        groups.setdefault(rel.name, []).append(rel)
    kept = (
        _kept_whole(out, previous, inputs.record, groups, context, opts.smoke)
        if reuse and cache.enabled and inputs.previous_is_site and not by_time
        else {}
    )
    if kept:
        counts["cached"] += sum(len(groups[name]) for name in kept)
        done[0] += counts["cached"] - 1
        tick("unchanged plugins")
    for rel in releases:
        if rel.name in kept:
            continue
        published = published_at(rel) if by_time or not cache.enabled else now_published
        look = None
        if cache.enabled:
            ctx = lookup_context(base, chain, published) if by_time else context
            hit, look = lookup(rel, cache, ctx, opts.smoke, scanned_at)
            if hit is not None:
                prepared[(rel.name, rel.version)] = hit
                counts["cached"] += 1
                tick(f"{rel.name} {rel.version}")
                continue
        misses.append((rel, published if by_time or not cache.enabled else published_at(rel), look))
    # Releases verified now are written into the staging folder; anything that fails from here
    # on removes it, so what a client reads only changes in ``publish``.
    staged = site_io.staging_dir(out)
    try:
        outcomes = prepare_all(
            [(r, p) for r, p, _ in misses],
            config=config,
            chain=chain,
            verify_now=verify_now,
            # Resolved once: the scan refuses links below plugins/ (a link *to* plugins/ is followed).
            plugins=Path(os.path.realpath(opts.index / "plugins")),
            smoke=opts.smoke,
            jobs=opts.jobs,
            staged=staged,
            tick=tick,
        )
        for (rel, _, look), outcome in zip(misses, outcomes, strict=True):
            if isinstance(outcome, list):
                refused.append(
                    CheckResult(
                        subject=f"{rel.name} {rel.version}",
                        findings=outcome,
                        data={"plugin": rel.name, "version": rel.version},
                    )
                )
                continue
            prepared[(rel.name, rel.version)] = outcome
            counts["verified"] += 1
            counts["smoked"] += int(opts.smoke)
            if look is not None:
                record(rel, outcome, look, cache)
        if opts.progress:
            opts.progress(len(releases), len(releases), "signing")
        checked = [rel for rel in releases if rel.name not in kept]
        prints = _fingerprints(checked, prepared, opts.smoke) if cache.enabled and not refused else {}
        carried = _carried(out, previous, inputs.record, prints) if reuse else {}
        # What SITE serves now, when it is not --previous: a lower version would be refused as a
        # rollback by every client that fetched it (read, never trusted: only to warn).
        served = None if inputs.previous_is_site else site_top_version(out)
        plan = plan_publication(
            config,
            chain.root.version,
            {key: prep.entry for key, prep in prepared.items()},
            previous,
            opts.now,
            opts.registry_version,
            refused,
            _carried_documents(carried, kept),
            withdrawn=_withdrawn_under(chain.root),
            first_published=format_time(now_published),
        )
        top = plan.document.top.to_bytes()
        content = SiteContent(
            releases=checked,
            prepared=prepared,
            root_files=chain.files,
            metadata=plan.metadata,
            # The browser catalog (outside the trust model: it verifies what it shows) trusts root 1.
            catalog=catalog_files(chain.roots[1].raw, parsed=True),  # verified by load_root_chain
            top=top,
            signatures=sign_registry(top, opts.keys, chain.root, config.name, plan.version),
            verified_meta=_verified_meta(previous, carried | kept)
            if inputs.previous_is_site
            else frozenset(),
            previous_meta=(
                frozenset(meta_path(sha) for sha in previous.documents)
                | {meta_path(previous.top.catalog.sha256)}
                if previous is not None and inputs.previous_is_site
                else frozenset()
            ),
            previous_releases=(
                frozenset(f"{name}/{v}" for name, versions in previous.plugins.items() for v in versions)
                if previous is not None and inputs.previous_is_site
                else None
            ),
            kept_plugins=frozenset(kept),
        )
        files = publish(out, staged, content)
        record_built(out, opts.keys, config.name, plan.version, top)  # what resign may renew here
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    cache.keep_only({rel.key for rel in releases})
    if cache.enabled:
        cache.remember_roots({hashlib.sha256(root.raw).hexdigest() for root in chain.roots.values()})
        cache.remember_features(features_verdict(config.features))  # parsing config checked them
        cache.remember_listings(releases, scanned_at, folders)
        whole_context = None if by_time else context
        cache.remember_publication(
            out,
            _record(out, plan.metadata, prints, carried, kept, groups, prepared, whole_context, scanned_at),
        )
    try:
        cache.save()
    except OSError as err:  # SITE is published: a cache that cannot be written only slows the next build
        log.warning("the build cache %s was not saved: %s", opts.cache_path, err)
    return BuildResult(
        site=opts.out,
        document=plan.document,
        previous_version=previous.version if previous else None,
        counts=counts,
        seconds=time.perf_counter() - started,
        warnings=[*_warnings(plan.document, verify_now, served), *plan.warnings],
        site_files=files.as_dict(),
        yanked=plan.yanked,
    )


def _withdrawn_under(root: Root) -> Callable[[Release], str | None]:
    """Why a published release no longer verifies under ``root``, or None while it does.

    Its signers (the key ids whose signatures counted when it was published) are judged as a
    client judges the release now: only keys of the plugin's role count, with revocations applied
    at its publication time.  A release short of the threshold is one no client installs, so the
    owners may remove it from the index (a release a stolen key signed).
    """

    def why(release: Release) -> str | None:
        role = root.release_role(release.name, release.published())
        counting = {key.key_id for key in role.keys}
        if len({s for s in release.signers if s in counting}) >= role.threshold:
            return None
        refusals = {c.key.key_id: c.refusal for c in role.refused if c.refusal is not None}
        said = [
            f"{signer}: {refusals[signer].what}"
            if signer in refusals
            else f"{signer} is no key of root v{root.version}"
            for signer in release.signers
            if signer not in counting
        ]
        return f"its signatures no longer count under root v{root.version} ({'; '.join(said)})"

    return why


def _verified_meta(previous: Publication | None, carried: _Carried) -> frozenset[str]:
    """The metadata paths whose bytes this build checked: against their pins, or by their site print."""
    if previous is None:
        return frozenset()
    checked = previous.verified_documents() | {pin.sha256 for pin, _ in carried.values()}
    return frozenset(meta_path(sha) for sha in checked)


def _fingerprints(
    releases: list[IndexRelease], prepared: dict[tuple[str, str], PreparedRelease], smoke: bool
) -> dict[str, Fingerprint]:
    """Each plugin's fingerprint: the content keys of its releases (a plugin lacking one has none).

    The content key covers every file of a release and its verification context (root, registry
    configuration, tool version), so two builds with the same fingerprint derive the same entries:
    the same plugin document, published_at aside (carried in the document itself).
    """
    found: dict[str, list[tuple[str, str]]] = {}
    lacking: set[str] = set()
    for rel in releases:
        cached = prepared[(rel.name, rel.version)].cached
        key = cached.get("content_key") if cached is not None else None
        if isinstance(key, str):
            found.setdefault(rel.name, []).append((rel.version, key))
        else:
            lacking.add(rel.name)
    return {name: (smoke, tuple(keys)) for name, keys in found.items() if name not in lacking}


def _carried(
    out: Path,
    previous: Publication | None,
    record: PublicationRecord | None,
    prints: dict[str, Fingerprint],
) -> _Carried:
    """The plugin documents of SITE this build keeps as they are, without reading them.

    A document is carried over when the build cache recorded it as one this tool encoded for the
    same plugin from releases with the same fingerprint (so a full build would encode the same
    bytes), and its file in SITE still has the site print recorded after it was written (size,
    mtime, ctime, inode: a file changed in place, even with its mtime set back, has another).
    Every other document of ``--previous`` is read by its pin when the plan needs it.
    """
    if previous is None or record is None:
        return {}
    carried: _Carried = {}
    site = str(out)
    for name, pin in previous.pins.items():
        known = record.documents.get(pin.sha256)
        if known is None or known.name != name or known.site_print is None:
            continue
        if prints.get(name) != known.fingerprint:
            continue
        if site_print(f"{site}/{pin.path}") != known.site_print:
            continue
        carried[name] = (pin, known)
    return carried


def _kept_whole(
    out: Path,
    previous: Publication | None,
    record: PublicationRecord | None,
    groups: dict[str, list[IndexRelease]],
    context: str,
    smoke: bool,
) -> _Carried:
    """The plugins this build keeps whole: nothing about their releases is looked at again.

    A plugin is kept when the build cache's print of it (``PluginPrint``) still holds: the same
    releases with the same stat prints of their index files (none modified or changed within
    ``cache.RACY_SECONDS`` before the scan that recorded it), the same verification context and
    smoke setting, and every one of its release files and its plugin document in SITE with the
    site print recorded after they were written.  Its document is then exactly what a full build
    would publish.
    """
    if previous is None or record is None:
        return {}
    kept: _Carried = {}
    site = str(out)
    for name, pin in previous.pins.items():
        known = record.documents.get(pin.sha256)
        whole = known.whole if known is not None else None
        rels = groups.get(name)
        if known is None or whole is None or rels is None or known.name != name:
            continue
        smoke_was, releases_were = known.fingerprint
        if smoke_was != smoke or whole.context != context or len(rels) != len(releases_were):
            continue
        if index_digest((rel.version, rel.stat) for rel in rels) != whole.index_digest:
            continue
        if max(rel.newest for rel in rels) / 1e9 >= whole.written_at - cache_rules.RACY_SECONDS:
            continue
        paths = whole.site_paths.split("\0")  # the plugin folder ("") first, see _plugin_print
        if site_digest(folder_prints(f"{site}/plugins/{name}", paths[1:])) != whole.site_digest:
            continue
        if known.site_print is None or site_print(f"{site}/{pin.path}") != known.site_print:
            continue
        kept[name] = (pin, known)
    return kept


def _carried_documents(carried: _Carried, kept: _Carried) -> dict[str, CarriedDocument]:
    """The plan's view of the documents kept as they are (``kept`` ones have no entries)."""
    out = {
        name: CarriedDocument(pin, catalog_entry(known.catalog, pin), len(known.fingerprint[1]))
        for name, (pin, known) in carried.items()
    }
    for name, (pin, known) in kept.items():
        assert known.whole is not None  # checked by _kept_whole
        versions = known.versions
        out[name] = CarriedDocument(
            pin,
            catalog_entry(known.catalog, pin),
            len(versions),
            whole=True,
            versions=versions,
            yanked=known.whole.yanked,
            dependencies=known.whole.dependencies,
        )
    return out


def _plugin_print(
    site: str,
    rels: list[IndexRelease],
    prepared: dict[tuple[str, str], PreparedRelease],
    context: str,
    scanned_at: float,
) -> PluginPrint | None:
    """The print of a plugin whose every release the cache holds, after publishing (else None).

    Its site paths are the plugin folder (""), then per release its folders and files: a folder's
    print moves when anything is added, removed or renamed in it (a stray file, a link).
    """
    plugin_folder = site_print(f"{site}/plugins/{rels[0].name}") if rels else None
    if plugin_folder is None:
        return None
    paths: list[str] = [""]
    prints: list[bytes] = [plugin_folder]
    yanked: list[str] = []
    dependencies: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for rel in rels:
        prep = prepared[(rel.name, rel.version)]
        recorded = prep.cached.get("site") if prep.cached is not None else None
        if not isinstance(recorded, dict) or not rel.stat:
            return None
        for name in [*release_folders(prep.files), *sorted(prep.files)]:  # "" is the release folder
            recorded_print = recorded.get(name)
            if not isinstance(recorded_print, bytes):
                return None
            paths.append(f"{rel.version}/{name}" if name else rel.version)
            prints.append(recorded_print)
        if prep.entry["yanked"] is not None:
            yanked.append(rel.version)
        if prep.entry["dependencies"]:
            dependencies.append((rel.version, tuple(sorted(prep.entry["dependencies"].items()))))
    return PluginPrint(
        context,
        scanned_at,
        index_digest((rel.version, rel.stat) for rel in rels),
        "\0".join(paths),
        site_digest(prints),
        tuple(yanked),
        tuple(dependencies),
    )


def _record(
    out: Path,
    metadata: Metadata,
    prints: dict[str, Fingerprint],
    carried: _Carried,
    kept: _Carried,
    groups: dict[str, list[IndexRelease]],
    prepared: dict[tuple[str, str], PreparedRelease],
    context: str | None,
    scanned_at: float,
) -> PublicationRecord:
    """What this build published into SITE, for the next build's ``_kept_whole`` and ``_carried``."""
    documents: dict[str, KnownDocument] = {}
    site = str(out)
    for name, pin in metadata.plugin_pins.items():
        if name in kept:
            documents[pin.sha256] = kept[name][1]
            continue
        fingerprint = prints.get(name)
        if fingerprint is None:
            continue  # not derived from cached releases only: the next build reads it by its pin
        documents[pin.sha256] = KnownDocument(
            name,
            fingerprint,
            catalog_fields(metadata.entries[name]),
            carried[name][1].site_print if name in carried else checked_print(f"{site}/{pin.path}", pin),
            _plugin_print(site, groups[name], prepared, context, scanned_at) if context is not None else None,
        )
    # Every tree node of the publication is in ``files`` (the tree is built whole each time).
    documents_and_catalog = {pin.sha256 for pin in metadata.plugin_pins.values()} | {metadata.catalog.sha256}
    return PublicationRecord(documents, frozenset(metadata.files) - documents_and_catalog)


def first_published_at(document_clock: datetime, verify_now: datetime, root: Root) -> datetime:
    """The ``published_at`` of a release this build publishes first: judged by and recorded.

    The document clock (``SOURCE_DATE_EPOCH``: reproducible), unless a revocation that keeps
    prior releases falls between it and the real clock: then the later of the two.  A commit's
    date is set by whoever made the commit; it must not date a release before a revocation its
    signer's key is under, neither for this build's check nor, recorded, for every later build
    and client.
    """
    real = verify_now.replace(microsecond=0)
    low, high = min(document_clock, real), max(document_clock, real)
    if any(r.keep_prior_releases and low < r.revoked_at <= high for r in root.revoked):
        return high
    return document_clock


def _warnings(document: Publication, verify_now: datetime, served: int | None = None) -> list[Finding]:
    found = []
    if document.expires() <= verify_now:
        found.append(
            Finding(
                "expired-on-arrival",
                f"registry.json expires at {document.expires_at}, which is already past",
                severity=Severity.warning,
                file=REGISTRY_JSON,
                fix="unset SOURCE_DATE_EPOCH or run `registry-tool resign`",
            )
        )
    if served is not None and document.version < served:
        found.append(
            Finding(
                "version-below-site",
                f"registry version {document.version} is below version {served}, which the output "
                "folder served: every client that fetched that one refuses this one as a rollback",
                severity=Severity.warning,
                file=REGISTRY_JSON,
                fix=f"build again with --previous (the published site) or --registry-version above {served}",
            )
        )
    return found
