"""The host-facing API: open a registry, resolve, install, verify, load verified bytes.

Example::

    from registry_tool.client import Registry, load_plugin_bytes

    reg = Registry.open("https://example.org/plugins/", state_dir=state)
    reg.install("validate_email@^1.0", plugins_dir, allow={"keys"})
    wasm = load_plugin_bytes(plugins_dir, "validate_email")   # re-verified against the lockfile

``Registry.open`` runs the session checks (root walk, the top document's signatures, expiry,
rollback).  ``install``/``info``/``update`` then walk the plugin tree to one plugin document
(``registry_tool.format``), ``search`` reads the catalog; every metadata document is fetched by
its pin (at most its signed size, then its sha256) and kept in a verified cache keyed by digest
under the state directory, so an update with nothing changed downloads only the top document and
its signatures.  Each public operation persists the advanced trust state only when it succeeds.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat
import uuid
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import platformdirs
from semantic_version import Version

from registry_tool._files import MiB, private_dir, read_bounded_if_exists
from registry_tool.client.errors import (
    DigestMismatchError,
    DroppedReleaseError,
    FetchError,
    InstalledFileTamperedError,
    LockfileMismatchError,
    MalformedRegistryError,
    NoMatchingVersionError,
    NotFoundError,
    NotInstalledError,
    PluginNotFoundError,
    RepublishedReleaseError,
    RootNotPinnedError,
    WithdrawnReleaseError,
)
from registry_tool.client.fetch import (
    Fetcher,
    FetchPolicy,
    HttpFetcher,
    Sources,
    join_url,
)
from registry_tool.client.install import (
    DEPENDENCY_ONLY,
    LOCKFILE,
    Approver,
    DirSession,
    InstalledRelease,
    LockedPlugin,
    Lockfile,
    Staged,
    VerifiedRelease,
    approve_plan,
    check_installed,
    commit_plan,
    leftovers,
    locked_entry,
    plugin_dir_lock,
    read_lockfile,
    remove_plugins,
    resolve,
)
from registry_tool.client.plugin_fs import PluginDir
from registry_tool.client.release_check import check_entry, check_module
from registry_tool.client.store import StateStore, normalise_url
from registry_tool.client.trust_state import (
    MAX_ROOT_STEPS,
    ManifestFacts,
    ManifestIdentity,
    TrustState,
    check_fingerprint,
    identity_record_header,
    identity_record_lines,
    parse_identity_record,
    pin_root,
    refuse_disagreeing_entry,
    refuse_other_module,
    verify_manifest,
    verify_registry,
    verify_wasm,
    walk_root,
)
from registry_tool.errors import CheckFailed, RegistryToolError, UsageError
from registry_tool.format import (
    MAX_ROOT_BYTES,
    MAX_TOP_BYTES,
    REGISTRY_JSON,
    CatalogDocument,
    CatalogEntry,
    NodeDocument,
    Pin,
    PluginDocument,
    Release,
    Requirement,
    TopDocument,
    parse_time_strict,
    plugin_key,
)
from registry_tool.format.ranges import RangeSyntaxError, host_compatible, parse_range
from registry_tool.manifest.config import Permission
from registry_tool.manifest.model import parse_manifest
from registry_tool.report import CheckResult, Finding, Report, Severity
from registry_tool.resolve import Candidate, Dependency, Installed, Need, Plan, UnknownPluginError
from registry_tool.resolve import resolve as resolve_graph
from registry_tool.signing.release import ParsedIdentity
from registry_tool.trust import RevokedKeyError, Root, verify_release_signatures
from registry_tool.trust.root import BadRootVersionError, authenticate_root_candidate, verify_root_step

Clock = Callable[[], datetime]
# The earliest time a second can be taken from (a root may name year 1 as its expiry).
_FIRST_SECOND = datetime.min.replace(tzinfo=UTC) + timedelta(seconds=1)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def default_plugin_dir() -> Path:
    """The default plugin directory: ``platformdirs.user_data_dir("registry-tool")/plugins``."""
    return Path(platformdirs.user_data_dir("registry-tool")) / "plugins"


def default_state_dir() -> Path:
    """The default trust state directory: ``platformdirs.user_state_dir("registry-tool")/trust``."""
    return Path(platformdirs.user_state_dir("registry-tool")) / "trust"


def _decode(sigs: dict[str, bytes]) -> list[str]:
    return [data.decode("utf-8", errors="surrogateescape") for _, data in sorted(sigs.items())]


# --------------------------------------------------------------------------- sessions


def _fetch_root_chain(sources: Sources, base: str, trusted: Root) -> list[tuple[bytes, list[str]]]:
    """Root N+1, N+2, ... as served at ``base`` until a 404, each verified before the next is fetched.

    As in the TUF client workflow, a candidate is authenticated by the signatures of the root it
    follows before it is parsed, and fully verified before the walk goes on, so a server holding no
    root key costs one root download, not ``MAX_ROOT_STEPS``.  ``walk_root`` then re-checks the
    whole chain (pure) and decides the new state.
    """
    steps: list[tuple[bytes, list[str]]] = []
    previous = trusted
    for version in range(trusted.version + 1, trusted.version + 2 + MAX_ROOT_STEPS):
        rel = f"root/{version}.root.json"
        try:
            raw = sources.get(join_url(base, rel), max_size=MAX_ROOT_BYTES)
        except NotFoundError:
            break
        if len(steps) == MAX_ROOT_STEPS:
            # Still going after the bound: refused, never taken as the end of the chain (a root
            # the walk stopped at may be expired, or a key rotated further on would go unseen).
            raise BadRootVersionError(
                f"more than {MAX_ROOT_STEPS} new root versions after version {trusted.version}",
                where=join_url(base, rel),
                fix="pin a recent root version: registry-tool client trust URL --root FILE --replace",
            )
        old_ids = {k.key_id for k in previous.role("root").keys}
        sigs = sources.root_signatures(base, rel, old_ids)
        try:
            authenticate_root_candidate(previous, raw, _decode(sigs), where=rel)
            # Signed by a key of the trusted root: now worth parsing, to learn the new root keys.
            new_ids = {k.key_id for k in Root.parse(raw, where=rel).role("root").keys} - old_ids
            if new_ids:
                sigs.update(sources.root_signatures(base, rel, new_ids))
            decoded = _decode(sigs)
            previous = verify_root_step(previous, raw, decoded, where=rel)
        except CheckFailed as err:
            # The trust rules' fix speaks to the root's owners (collect signatures, ...); whoever
            # installs meets a root version the trusted one does not authorize.
            err.fix = (
                f"do not use this registry or mirror until it serves a valid {rel}: a root version the "
                f"trusted root does not authorize is an attack or a broken publication; tell the "
                f"registry's owners ({err.fix or 'the root chain does not verify'})"
            )
            raise
        steps.append((raw, decoded))
    return steps


def _session(sources: Sources, base: str, state: TrustState, now: datetime) -> tuple[TopDocument, TrustState]:
    """The per-session checks against one source: walk the root chain, then verify the top document."""
    state = walk_root(state, _fetch_root_chain(sources, base, state.root), now)
    data = sources.get(join_url(base, REGISTRY_JSON), max_size=MAX_TOP_BYTES)
    index_ids = {k.key_id for k in state.root.role("index").keys}
    sigs = sources.signatures(base, REGISTRY_JSON, index_ids)
    return verify_registry(state, data, _decode(sigs), now)


class MetaCache:
    """Verified metadata documents by digest (``<state>/cache/<sha256>``), re-hashed on every use.

    Anything in the cache is only a candidate: a file that no longer hashes to its name (disk
    corruption, another user) is deleted and fetched again, so the cache can save downloads but
    never change what is trusted.
    """

    def __init__(self, directory: Path | None) -> None:
        """Cache verified documents under ``directory`` (None: no cache)."""
        self.directory = directory

    def get(self, pin: Pin) -> bytes | None:
        """The cached bytes of ``pin`` if they still match it, else None (a mismatching file is deleted)."""
        if self.directory is None:
            return None
        path = self.directory / pin.sha256
        try:
            # A regular file of at most the pinned size; never through a link, never waiting on a
            # FIFO planted in the state folder (anything else is dropped like a mismatch).
            data = read_bounded_if_exists(path, pin.size, "cached document", follow_symlinks=False)
        except RegistryToolError:
            data = b""
        if data is None:
            return None
        if pin.matches(data):
            return data
        with contextlib.suppress(OSError):
            path.unlink()
        return None

    def put(self, pin: Pin, data: bytes) -> None:
        """Keep ``data`` (already verified against ``pin``); a cache that cannot be written is ignored."""
        if self.directory is None:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.directory / f".{pin.sha256}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "xb") as fh:
                fh.write(data)
            tmp.replace(self.directory / pin.sha256)
        except OSError:
            pass  # a cache that cannot be written only costs downloads


@dataclass(frozen=True)
class SearchHit:
    """One plugin found by ``Registry.search``: its catalog entry (the newest non-yanked release)."""

    name: str
    version: str
    entry: CatalogEntry

    @property
    def description(self) -> str:
        """The plugin's description, from the catalog."""
        return self.entry.description

    def to_json(self) -> dict[str, Any]:
        """The catalog entry as JSON (command output)."""
        return self.entry.to_json()


def trust(
    url: str,
    *,
    root_bytes: bytes | None = None,
    root_signatures: Sequence[str] | None = None,
    fingerprint: str | None = None,
    state_dir: Path | None = None,
    replace: bool = False,
    fetcher: Fetcher | None = None,
    policy: FetchPolicy | None = None,
    clock: Clock = _utcnow,
) -> TrustState:
    """Pin a registry's root on first use, then run one session so a wrong URL fails now.

    Give ``root_bytes`` (a root file obtained out of band; its signatures are fetched from the
    registry unless given) or ``fingerprint`` (the sha256 of ``root/1.root.json``, which is
    then fetched).  The state is saved only when the session succeeds.
    """
    url = normalise_url(url)
    store = StateStore(state_dir or default_state_dir())
    sources = Sources(url, fetcher or HttpFetcher(policy))
    given = root_bytes is not None
    if root_bytes is None:
        if fingerprint is None:
            raise UsageError(
                "give a root file or a root fingerprint", fix="pass --root or --root-fingerprint"
            )
        root_bytes = sources.fetch("root/1.root.json", max_size=MAX_ROOT_BYTES)
    if fingerprint is not None:
        # The served root is unauthenticated until its sha256 matches: check before parsing it.
        check_fingerprint(url, root_bytes, fingerprint, given=given)
    root = Root.parse(root_bytes, where="root")
    if root_signatures is None:
        rel = f"root/{root.version}.root.json"
        root_signatures = _decode(
            sources.root_signatures(url, rel, {k.key_id for k in root.role("root").keys})
        )
    state = pin_root(url, root_bytes, root_signatures, expected_fingerprint=fingerprint)
    existing = store.load(url)
    if existing is not None and not replace:
        if existing.root.registry != root.registry:
            raise UsageError(
                f"this client trusts {url} as registry {existing.root.registry!r}, but this root is for "
                f"{root.registry!r}",
                fix="check the URL; to discard the trusted state and pin this root instead, pass --replace",
            )
        # Already trusted: keep the state, which may be further along the chain than this root;
        # moving to another root goes through the chain walk, never around it.
        state = existing
    _, state = _session(sources, url, state, clock())
    if existing is not None and not replace:
        _refuse_other_root(sources, url, root, root_bytes, state)
    return store.save(state, replace=replace)


def _refuse_other_root(
    sources: Sources, url: str, given: Root, given_bytes: bytes, trusted: TrustState
) -> None:
    """Refuse a root that does not lead to the trusted one.

    A root given for an already-trusted registry must lead to the trusted root by signed root
    steps (an older version of the chain) or be it.  Otherwise the user believes they pinned a
    root that is in fact ignored: refuse, and name --replace.
    """
    if given_bytes == trusted.root_bytes:
        return
    if given.version < trusted.root_version:
        try:
            steps = _fetch_root_chain(sources, url, given)
        except CheckFailed:
            steps = []
        if any(raw == trusted.root_bytes for raw, _ in steps):
            return
    raise UsageError(
        f"{url} is already trusted with root version {trusted.root_version}; the root given (version "
        f"{given.version}) does not lead to it and was not pinned",
        fix="to discard the trusted state and pin this root instead, pass --replace (only after checking the "
        "root with the registry's owners)",
    )


class _InstalledView(Mapping[str, Installed]):
    """The entries of one registry in a lockfile, as the resolver sees them, without a copy."""

    def __init__(self, lock: Lockfile, url: str, leave_out: Container[str]) -> None:
        self._plugins, self._url, self._leave_out = lock.plugins, url, leave_out

    def __getitem__(self, name: str) -> Installed:
        entry = self._plugins.get(name)
        if entry is None or entry.registry != self._url or name in self._leave_out:
            raise KeyError(name)
        return entry.installed

    def __iter__(self) -> Iterator[str]:
        return (n for n, e in self._plugins.items() if e.registry == self._url and n not in self._leave_out)

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass
class Registry:
    """A verified view of one registry; build it with ``Registry.open``."""

    url: str
    top: TopDocument
    sources: Sources
    store: StateStore | None  # None: a one-off session that persists nothing (``verify_site``)
    clock: Clock
    _state: TrustState
    cache: MetaCache = field(default_factory=lambda: MetaCache(None))
    _plugins: dict[str, PluginDocument] = field(default_factory=dict)
    # Documents fetched this operation: cached only when the operation succeeds, like the state.
    _fetched: dict[Pin, bytes] = field(default_factory=dict)
    # The registry's permission vocabulary (registry.toml [permissions]) for the exact import check.
    vocabulary: Mapping[str, Permission] | None = None
    # What an operation did that the caller should tell the user (a downgrade, a vanished version).
    notices: list[str] = field(default_factory=list)
    # Identities of the manifests this operation verified and installed: recorded (like the state)
    # only when it succeeds, so that ``client verify`` need not parse them again.
    _identities: dict[str, ManifestIdentity] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        state_dir: Path | None = None,
        mirrors: Sequence[str] = (),
        fetcher: Fetcher | None = None,
        policy: FetchPolicy | None = None,
        clock: Clock = _utcnow,
    ) -> Registry:
        """Fetch and verify the registry (root chain, top document); requires a pinned root."""
        url = normalise_url(url)
        directory = state_dir or default_state_dir()
        store = StateStore(directory)
        state = store.require(url)
        sources = Sources(url, fetcher or HttpFetcher(policy), [normalise_url(m) for m in mirrors])
        now = clock()
        loaded = state
        top, state = sources.first(lambda base: _session(sources, base, state, now))
        if (state.root_bytes, state.highest_version) != (loaded.root_bytes, loaded.highest_version):
            # The session's checks passed: the root it reached and the registry version it saw
            # hold whatever the operation does next.  An install that then fails (its release's
            # signer was revoked in that root) must not leave the offline checks (``verify``,
            # ``load_plugin_bytes``) judging by the root before the revocation.
            store.save(state)
        return cls(url, top, sources, store, clock, state, MetaCache(directory / "cache"))

    @property
    def root(self) -> Root:
        """The trusted root this session reached (parsed once per state)."""
        return self._state.root

    def _commit(self) -> None:
        if self.store is not None:
            self.store.save(self._state)
            if self._identities:
                record_manifest_identities(self.store.directory, self.url, self._identities.items())
        self._identities.clear()
        for pin, data in self._fetched.items():
            self.cache.put(pin, data)
        self._fetched.clear()

    # ------------------------------------------------------------------ metadata by pin

    def _meta(self, pin: Pin, what: str) -> bytes:
        """A metadata document: from the verified cache, else from the first source whose bytes match."""
        cached = self._fetched.get(pin) or self.cache.get(pin)
        if cached is not None:
            return cached

        def check(data: bytes) -> bytes:
            if not pin.matches(data):
                raise DigestMismatchError(
                    f"tampered {what}: {pin.path} ({len(data)} bytes, sha256 "
                    f"{hashlib.sha256(data).hexdigest()[:16]}…) is not the document its signed pin names",
                    where=pin.path,
                    fix="the server or a mirror modified the file; nothing was installed. "
                    "Report it to the registry's owners",
                )
            return data

        data = self.sources.fetch_verified(pin.path, max_size=pin.size, verify=check)
        self._fetched[pin] = data
        return data

    def plugin(self, name: str) -> PluginDocument:
        """``name``'s plugin document, found by walking the tree from the top document's pin."""
        req = Requirement.parse(name)  # the name rule, before anything is fetched
        if req.name in self._plugins:
            return self._plugins[req.name]
        key = plugin_key(req.name)
        pin, prefix = self.top.tree, ""
        while True:
            node = NodeDocument.parse(self._meta(pin, "tree node"), expected_prefix=prefix, where=pin.path)
            step = node.step(req.name)
            if step is None:
                raise PluginNotFoundError(
                    f"plugin {req.name!r} is not in registry {self.top.registry.name!r}",
                    fix=self._suggest(req.name),
                )
            kind, pin = step
            if kind == "plugin":
                break
            prefix += key[len(prefix)]
        doc = PluginDocument.parse(self._meta(pin, "plugin document"), expected_name=req.name, where=pin.path)
        self._plugins[req.name] = doc
        return doc

    def walk_tree(self) -> list[PluginDocument]:
        """Every plugin document of the registry, found by walking the whole tree from the top pin.

        Each node must sit at the prefix its position requires and each leaf name inside its
        prefix (``NodeDocument.parse``); each plugin document must name the plugin its leaf pins.
        """
        docs: list[PluginDocument] = []
        pending: list[tuple[Pin, str]] = [(self.top.tree, "")]
        while pending:
            pin, prefix = pending.pop()
            node = NodeDocument.parse(self._meta(pin, "tree node"), expected_prefix=prefix, where=pin.path)
            for digit, child in sorted((node.children or {}).items(), reverse=True):
                pending.append((child, prefix + digit))
            for name, leaf in sorted((node.plugins or {}).items()):
                if name not in self._plugins:
                    data = self._meta(leaf, "plugin document")
                    self._plugins[name] = PluginDocument.parse(data, expected_name=name, where=leaf.path)
                docs.append(self._plugins[name])
        return docs

    def _suggest(self, name: str) -> str:
        """A close name from the catalog (one more download, only when a name was not found)."""
        import difflib

        try:
            names = list(self.catalog().plugins)
        except CheckFailed:
            names = []
        close = difflib.get_close_matches(name, names, n=1)
        if close:
            return f"check the name: the registry has {close[0]!r}"
        return "search with `registry-tool client search`"

    def catalog(self) -> CatalogDocument:
        """The verified catalog document (every plugin's newest release, for search)."""
        return CatalogDocument.parse(self._meta(self.top.catalog, "catalog"), where=self.top.catalog.path)

    # ------------------------------------------------------------------ reading

    def search(self, query: str = "", *, include_yanked: bool = False) -> list[SearchHit]:
        """Each plugin whose name, description or keywords contain every word of ``query`` (the catalog).

        A plugin whose every version is yanked is listed only with ``include_yanked``.
        """
        words = query.lower().split()
        found: list[SearchHit] = []
        for name, entry in sorted(self.catalog().plugins.items()):
            version = entry.latest
            if version is None:
                if not include_yanked:
                    continue
                try:
                    version = self.plugin(name).releases()[-1].version
                except PluginNotFoundError:
                    # Both documents are signed: a catalog entry the tree does not hold is the
                    # registry's fault (a broken or forged publication), not a typo of the user's.
                    raise MalformedRegistryError(
                        f"the signed catalog lists plugin {name!r}, but the registry's tree has no such "
                        "plugin: its documents disagree",
                        where="catalog",
                        fix="do not use this registry or mirror until its owners publish it again; tell them",
                    ) from None
            text = " ".join([name, entry.description, *entry.keywords]).lower()
            if all(w in text for w in words):
                found.append(SearchHit(name, version, entry))
        self._commit()
        return found

    def info(self, name: str) -> list[Release]:
        """Every release of ``name``, oldest first."""
        releases = self.plugin(name).releases()
        self._commit()
        return releases

    def resolve(self, spec: str, *, host_version: str | None = None) -> Release:
        """The release of ``spec`` (``name``, ``name@1.2.3``, ``name@^1.2``) alone, without dependencies."""
        req = Requirement.parse(spec)
        return resolve(self.plugin(req.name), req, host_version=host_version)

    # ------------------------------------------------------------------ downloading

    def _fetch_manifest(
        self, release: Release
    ) -> tuple[ManifestFacts, frozenset[str], bytes, dict[str, bytes]]:
        now = self.clock()

        def attempt(base: str) -> tuple[ManifestFacts, frozenset[str], bytes, dict[str, bytes]]:
            data = self.sources.get(join_url(base, release.manifest.path), max_size=release.manifest.size)
            sigs = self.sources.signatures(base, release.manifest.path, release.signers)
            facts, signers = verify_manifest(self.root, release, data, _decode(sigs), now)
            return facts, signers, data, sigs

        return self.sources.first(attempt)

    def _fetch_wasm(self, release: Release, facts: ManifestFacts) -> bytes:
        def check(data: bytes) -> bytes:
            # The document was fetched before its release could be (``plugin`` looks it up again).
            verify_wasm(self._plugins.get(release.name) or self.plugin(release.name), release, facts, data)
            return data

        return self.sources.fetch_verified(release.wasm.path, max_size=release.wasm.size, verify=check)

    def download(self, release: Release) -> VerifiedRelease:
        """Fetch and verify a release's manifest, signatures and wasm (nothing is written)."""
        facts, signers, manifest, sigs = self._fetch_manifest(release)
        return self._verified(release, facts, signers, manifest, sigs, self._fetch_wasm(release, facts))

    def _verified(
        self,
        release: Release,
        facts: ManifestFacts,
        signers: frozenset[str],
        manifest: bytes,
        sigs: dict[str, bytes],
        wasm: bytes,
    ) -> VerifiedRelease:
        return VerifiedRelease(
            release=release,
            registry_url=self.url,
            manifest_bytes=manifest,
            signatures={PurePosixPath(k).name: v for k, v in sigs.items()},
            wasm_bytes=wasm,
            wasm_filename=facts.artifact_file,
            signers=tuple(sorted(signers)),
        )

    # ------------------------------------------------------------------ installing

    # ------------------------------------------------------------------ plans (dependency resolution)

    def _installed(self, lock: Lockfile, leave_out: Container[str] = ()) -> Mapping[str, Installed]:
        """This registry's installed plugins, with the dependency edges the lockfile recorded.

        A view over the lockfile's entries, looked up by name: a resolution touches the plugins
        around its plan, so its cost does not grow with the plugins installed.
        """
        return _InstalledView(lock, self.url, leave_out)

    def _resolve(
        self,
        needs: Sequence[Need],
        lock: Lockfile,
        *,
        host_version: str | None,
        prefer_installed: bool = True,
        locked: Mapping[str, str] | None = None,
    ) -> Plan:
        # A plugin the user names gets the newest release its range allows (as without
        # dependencies); only the plugins around it prefer their installed versions.
        asked = {n.name for n in needs} if prefer_installed and not locked else set()
        users = lock.users()
        plan = resolve_graph(
            needs,
            _DocumentIndex(self, host_version),
            _range_matches,
            installed=self._installed(lock, leave_out=asked),
            prefer_installed=prefer_installed,
            locked=locked,
            dependents=lambda name: users.get(name, ()),
        )
        if asked:
            plan = _diffed(plan, self._installed(lock))
        return plan

    def _apply(
        self,
        dest: Path,
        plan: Plan,
        session: DirSession,
        *,
        requested: Mapping[str, str],
        allow: Iterable[str],
        prompt: Approver | None,
        named: Mapping[str, str] | None = None,
        host_version: str | None = None,
    ) -> dict[str, LockedPlugin]:
        """Approve, fetch and verify the releases of ``plan`` not installed as planned; commit them.

        One lockfile write for them all; nothing is written before everything is verified.
        ``named``: the plugins the command names, with the requirement each is resolved by (the
        typed one, or for ``update`` the recorded one), whose move down is judged by it.
        """
        lock = session.lock
        todo: list[tuple[Release, LockedPlugin | None]] = []
        kept: dict[str, LockedPlugin] = {}
        for name in plan.order():
            release = self.plugin(name).versions[plan.selected[name].version]
            current = lock.plugins.get(name)
            if (
                current is not None
                and current.version == release.version
                and current.registry == self.url  # else reinstalled: the entry names this registry
                and _same_bytes(current, release)
                and self._still_signed(dest, current, release)
            ):
                kept[name] = current
                continue
            if (
                current is not None
                and current.version == release.version
                and current.registry == self.url
                and not _same_bytes(current, release)
            ):
                # A published version is immutable (the build refuses to change one): other bytes
                # under an installed version mean a registry rebuilt without its history, or both
                # a maintainer key and the index key in other hands.  Never swapped in silently.
                raise _republished(current, release)
            if current is not None and Version(release.version) < Version(current.version):
                spec = (named if named is not None else requested).get(name)
                self._refuse_rollback(
                    dest, current, release, spec, named is not None and name in named, host_version
                )
                self.notices.append(f"downgrading {name} from {current.version} to {release.version}")
            todo.append((release, current))
        # Each signed manifest first (decision 11: the entry is compared with it before any permission
        # is asked for), then the approval, then the modules.
        manifests = []
        for release, _ in todo:
            fetched = self._fetch_manifest(release)
            manifests.append((fetched, check_entry(release, fetched[2])))
        approve_plan(todo, allow=allow, prompt=prompt, registry=self.url)
        staged = []
        identities: dict[str, ManifestIdentity] = {}
        for (release, current), ((facts, signers, manifest, sigs), signed) in zip(
            todo, manifests, strict=True
        ):
            wasm = self._fetch_wasm(release, facts)
            permissions = tuple(sorted(release.permissions))
            # Limits, module kind and imports: from the signed manifest and the module, within the grant.
            checked = check_module(release, signed, wasm, granted=permissions, vocabulary=self.vocabulary)
            verified = replace(
                self._verified(release, facts, signers, manifest, sigs, wasm),
                dependencies=checked.dependencies,
                abi=checked.abi,
            )
            # Named by the user: what they typed; else what was recorded; a new one: a dependency.
            spec = requested.get(release.name, current.requested if current is not None else DEPENDENCY_ONLY)
            staged.append(Staged(verified, spec, permissions))
            identities[release.manifest.sha256] = facts.identity  # verify_manifest matched this pin
        relabel = {n: requested[n] for n in kept if n in requested and kept[n].requested != requested[n]}
        commit_plan(dest, staged, session=session, requested=relabel)
        self._identities.update(identities)
        return {name: session.lock.plugins[name] for name in plan.order()}

    def _refuse_rollback(
        self,
        dest: Path,
        current: LockedPlugin,
        release: Release,
        spec: str | None,
        named: bool,
        host_version: str | None,
    ) -> None:
        """Refuse to move ``current`` down to ``release`` for what only the index says.

        A build never removes a published release whose signatures still count (only one a
        revoked key signed is withdrawn), and a yank or an entry's other fields are the index
        key's word alone: an installed version whose stored signatures still verify under the
        session's root is not moved down because the plugin document no longer lists it, nor,
        for a plugin the command names, while it still meets the requirement and the host
        version it is resolved by (a yank, an entry made unresolvable).  The user's own
        requirement (an exact pin, a range that leaves it out, the host version) may move it.
        """
        if current.registry != self.url or (spec is not None and Requirement(current.name, spec).is_exact):
            return
        listed = self.plugin(current.name).versions.get(current.version)
        if listed is not None and not named:
            # A dependency: moved down by the graph's requirements, or by an entry of the installed
            # version that disagrees with the manifest its maintainer signed (other dependencies, a
            # host range), which only the index key can have written.
            stored = self._stored_copy(dest, current)
            if stored is not None:
                if not _same_bytes(current, listed):
                    raise _republished(current, listed)
                facts = ManifestFacts.parse(stored.manifest, where=listed.manifest.path)
                refuse_other_module(listed, facts)  # its path and size too, as Go and Rust compare
                refuse_disagreeing_entry(listed, facts)
            return
        if listed is not None and not Requirement(current.name, spec or "").matches(current.version):
            return
        checked = self._stored_copy(dest, current)
        if checked is None:
            return  # withdrawn (its signer revoked) or damaged: another release may take its place
        if listed is not None:
            # The host range its maintainer signed, not the entry's (the index's word).
            manifest, _ = parse_manifest(Path(current.manifest), checked.manifest, current.manifest)
            if manifest is None or not host_compatible(manifest.host_range, host_version):
                return
        why = (
            f"moving it down to {release.version}"
            if listed is None
            else f"it still meets {spec or 'the requirement'} and the host, yet the plan moves it down to "
            f"{release.version}: the plugin document yanks it or makes it unresolvable"
        )
        raise _dropped(current, why, f"@{release.version}", listed is None)

    def _stored_signatures_count(self, dest: Path, current: LockedPlugin) -> bool:
        """Whether the installed copy's stored signatures still verify under the session's root."""
        return self._stored_copy(dest, current) is not None

    def _stored_copy(self, dest: Path, current: LockedPlugin) -> InstalledRelease | None:
        """The installed copy when its stored signatures still verify under the session's root."""
        try:
            with PluginDir(dest) as pdir:
                checked = check_installed(pdir, dest, current, signatures=True)
            _verify_installed_signatures(dest, checked, self.root, self.clock())
        except CheckFailed:
            return None
        return checked

    def _still_signed(self, dest: Path, current: LockedPlugin, release: Release) -> bool:
        """Whether the installed bytes of ``release`` pass what a fresh install of it would check.

        The same bytes are not the same verdict: since the install the root may have revoked the
        signing key, removed the delegation or raised the plugin's threshold, and the registry's
        entry may now disagree with the signed manifest (a dependency or permission added by the
        index key).  When this is False the release is fetched and verified again like a new one
        (and refused if it no longer verifies; damaged files are replaced by the verified bytes).
        """
        try:
            with PluginDir(dest) as pdir:
                checked = check_installed(pdir, dest, current, signatures=True)
        except CheckFailed as err:
            # Damaged or tampered on disk: replaced by verified bytes, and said (never silently).
            self.notices.append(
                f"{current.name} {current.version}: the installed files did not verify ({err.what}); "
                "they are fetched and verified again"
            )
            return False
        try:
            verify_manifest(self.root, release, checked.manifest, list(checked.signatures), self.clock())
            check_entry(release, checked.manifest)
        except CheckFailed:
            return False
        return True

    def install_plan(
        self,
        specs: Sequence[str],
        dest: Path,
        *,
        allow: Iterable[str] = (),
        prompt: Approver | None = None,
        host_version: str | None = None,
    ) -> InstallResult:
        """Resolve ``specs`` with their dependency graph, then install the whole set atomically.

        The graph is resolved against what is installed.  The permissions of every release
        fetched are approved once.
        """
        reqs = [Requirement.parse(spec) for spec in specs]
        for req in reqs:
            # Fetched before the lock (reads only); a range that matches nothing on its own is
            # named as such, before the graph is searched.
            resolve(self.plugin(req.name), req, host_version=host_version)
        with plugin_dir_lock(dest) as session:
            needs = [Need(r.name, r.spec, exact=r.is_exact, highest=True) for r in reqs]
            plan = self._resolve(needs, session.lock, host_version=host_version)
            requested = {r.name: r.spec for r in reqs}
            entries = self._apply(
                dest,
                plan,
                session,
                requested=requested,
                allow=allow,
                prompt=prompt,
                named=requested,
                host_version=host_version,
            )
        self._commit()
        return InstallResult(plan, entries)

    def install(
        self,
        spec: str,
        dest: Path,
        *,
        allow: Iterable[str] = (),
        prompt: Approver | None = None,
        host_version: str | None = None,
    ) -> LockedPlugin:
        """Resolve ``spec`` (``name``, ``name@1.2.3``, ``name@^1.2``) and install it with its dependencies."""
        result = self.install_plan([spec], dest, allow=allow, prompt=prompt, host_version=host_version)
        return result.entries[Requirement.parse(spec).name]

    def update(
        self,
        dest: Path,
        names: Sequence[str] = (),
        *,
        allow: Iterable[str] = (),
        prompt: Approver | None = None,
        host_version: str | None = None,
    ) -> list[tuple[LockedPlugin, LockedPlugin]]:
        """Resolve the whole graph again, preferring the newest releases each recorded requirement allows.

        Without ``names``: every installed plugin of this registry.
        A new version asking for permissions beyond those granted stops with
        ``PermissionEscalationError`` unless approved again (``allow`` or ``prompt``).
        """
        with plugin_dir_lock(dest) as session:
            lock = session.lock
            targets = list(names) or sorted(n for n, e in lock.plugins.items() if e.registry == self.url)
            needs: list[Need] = []
            for name in targets:
                current = lock.plugins.get(name) or locked_entry(dest, name, lock)
                try:
                    plugin = self.plugin(name)
                except PluginNotFoundError as err:
                    self.notices.append(f"{name} {current.version} kept: {err.what}")
                    continue
                if current.version not in plugin.versions:
                    self.notices.append(
                        f"{name} {current.version} (installed) is no longer in registry {self.url}: "
                        "it was removed from the index"
                    )
                spec = current.spec
                try:
                    resolve(plugin, Requirement(name, spec), host_version=host_version)
                except NoMatchingVersionError as err:
                    if current.version not in plugin.versions and self._stored_signatures_count(
                        dest, current
                    ):
                        raise _dropped(
                            current, "no other release matches its requirement", "@VERSION"
                        ) from None
                    if current.version not in plugin.versions:
                        # Withdrawn (a release a stolen key signed): keeping it is no update.
                        raise WithdrawnReleaseError(
                            f"{name} {current.version} (installed) is no longer published by {self.url}, "
                            f"and the requirement it was installed with ({spec}) matches no release: "
                            f"{err.what}",
                            where=f"{name} {current.version}",
                            fix=f"install another version (`registry-tool client install {name}` takes the "
                            f"newest that verifies) or remove it (`registry-tool client remove {name}`)",
                        ) from None
                    self.notices.append(f"{name} {current.version} kept: {err.what}")
                    continue
                needs.append(Need(name, spec))
            before = dict(lock.plugins)
            changes: list[tuple[LockedPlugin, LockedPlugin]] = []
            if needs:
                plan = self._resolve(needs, lock, host_version=host_version, prefer_installed=False)
                entries = self._apply(
                    dest,
                    plan,
                    session,
                    requested={},
                    allow=allow,
                    prompt=prompt,
                    named={n.name: n.range for n in needs},
                    host_version=host_version,
                )
                changes = [
                    (before[n], entries[n])
                    for n in sorted(entries)
                    if n in before and before[n].version != entries[n].version
                ]
                for n in sorted(set(entries) - set(before)):  # a new dependency: never silent either
                    self.notices.append(f"installed {n} {entries[n].version} (a dependency the plan needs)")
                for need in needs:  # kept although yanked: said, never silent
                    kept = session.lock.plugins.get(need.name)
                    listed = self.plugin(need.name).versions.get(kept.version) if kept else None
                    if kept is not None and listed is not None and listed.yanked is not None:
                        self.notices.append(
                            f"{need.name} {kept.version} (installed) is yanked ({listed.yanked}) and kept: "
                            "update never moves an installed release down for a yank; install another "
                            f"version exactly (`client install {need.name}@VERSION`) to leave it"
                        )
        self._commit()
        return changes

    def install_locked(self, dest: Path, names: Sequence[str] = ()) -> list[LockedPlugin]:
        """Install exactly what the lockfile records: same versions, same bytes, same permissions."""
        with plugin_dir_lock(dest) as session:
            lock = session.lock
            if not lock.plugins:
                raise NotInstalledError(
                    f"the lockfile in {dest} lists no plugins", fix="install without --locked first"
                )
            entries = [
                lock.plugins.get(n) or locked_entry(dest, n, lock)
                for n in list(names) or sorted(lock.plugins)
            ]
            for entry in entries:
                try:
                    release = self.plugin(entry.name).versions.get(entry.version)
                except PluginNotFoundError:
                    release = None
                if release is None or not _same_bytes(entry, release):
                    raise LockfileMismatchError(
                        f"{entry.name} {entry.version} as locked is not what {self.url} serves "
                        + ("(the version is gone)" if release is None else "(its digests differ)"),
                        where=str(dest / LOCKFILE),
                        fix="review the change, then run `registry-tool client update` to re-lock",
                    )
                if not set(release.permissions) <= set(entry.permissions):
                    raise LockfileMismatchError(
                        f"{entry.name} {entry.version} now declares permissions beyond those locked",
                        fix="review the change, then install without --locked",
                    )
            # Every locked version exactly (dependencies included): the resolver only checks that
            # the locked set is coherent, it chooses nothing.
            locked = {n: e.version for n, e in lock.plugins.items() if e.registry == self.url}
            needs = [Need(e.name, e.version, exact=True) for e in entries]
            plan = self._resolve(needs, lock, host_version=None, locked=locked)
            outside = sorted(set(plan.selected) - set(lock.plugins))
            if outside:
                raise LockfileMismatchError(
                    f"the locked plugins need {', '.join(outside)}, which the lockfile does not record",
                    where=str(dest / LOCKFILE),
                    fix="install without --locked to resolve the dependencies, then commit the lockfile",
                )
            # Every release of the plan, dependencies included, is held to its own entry: a
            # dependency republished with other bytes or permissions is no more "as locked" than a
            # named plugin.  Each keeps only the permissions its own entry records (approve_plan).
            for name in sorted(plan.selected):
                entry = lock.plugins[name]
                release = self.plugin(name).versions[plan.selected[name].version]
                if (
                    entry.registry != self.url
                    or entry.version != release.version
                    or not _same_bytes(entry, release)
                    or not set(release.permissions) <= set(entry.permissions)
                ):
                    raise LockfileMismatchError(
                        f"{name} {release.version}, which the locked plugins need, is not what the "
                        f"lockfile records ({entry.version} from {entry.registry}, with its digests "
                        "and permissions)",
                        where=str(dest / LOCKFILE),
                        fix="review the change, then run `registry-tool client update` to re-lock",
                    )
            done = self._apply(
                dest,
                plan,
                session,
                requested={n: lock.plugins[n].requested for n in plan.selected},
                allow=(),
                prompt=None,
            )
        self._commit()
        return [done[n] for n in sorted(done)]


@dataclass(frozen=True)
class InstallResult:
    """What ``install_plan`` decided (``plan``) and the lockfile entries of every planned plugin."""

    plan: Plan
    entries: dict[str, LockedPlugin]

    def plan_json(self) -> dict[str, Any]:
        """The plan as JSON: added, upgraded, downgraded, kept, load order, permissions."""
        return {
            "added": list(self.plan.added),
            "upgraded": [{"name": n, "from": a, "to": b} for n, a, b in self.plan.upgraded],
            "downgraded": [{"name": n, "from": a, "to": b} for n, a, b in self.plan.downgraded],
            "kept": list(self.plan.kept),
            "order": self.plan.order(),
            "permissions": sorted(self.plan.permissions),
        }

    def plan_lines(self) -> list[str]:
        """The plan as text lines (``added NAME VERSION``, ...)."""
        lines = [f"added {n} {self.plan.selected[n].version}" for n in self.plan.added]
        lines += [f"upgraded {n} {a} -> {b}" for n, a, b in self.plan.upgraded]
        lines += [f"downgraded {n} {a} -> {b}" for n, a, b in self.plan.downgraded]
        lines += [f"kept {n} {self.plan.selected[n].version}" for n in self.plan.kept]
        return lines


class _DocumentIndex:
    """The resolver's view of a registry: releases from verified plugin documents (fetched by pin)."""

    def __init__(self, registry: Registry, host_version: str | None) -> None:
        self.registry = registry
        self.host_version = host_version

    def releases(self, name: str) -> Sequence[Candidate]:
        try:
            doc = self.registry.plugin(name)
        except PluginNotFoundError as err:
            raise UnknownPluginError(err.what, fix=err.fix) from None
        return [
            Candidate(
                r.name,
                r.version,
                tuple(Dependency(d, spec) for d, spec in sorted(r.dependencies.items())),
                yanked=r.yanked is not None,
                host_ok=host_compatible(r.host, self.host_version),
                permissions=tuple(r.permissions),
            )
            for r in doc.releases()
        ]


def _diffed(plan: Plan, installed: Mapping[str, Installed]) -> Plan:
    """``plan`` with added/upgraded/downgraded/kept computed against everything installed."""
    out = Plan(plan.selected, plan.required_by)
    for name in sorted(plan.selected):
        new, old = plan.selected[name].version, installed.get(name)
        if old is None:
            out.added.append(name)
        elif old.version == new:
            out.kept.append(name)
        elif Version(new) > Version(old.version):
            out.upgraded.append((name, old.version, new))
        else:
            out.downgraded.append((name, old.version, new))
    return out


def _range_matches(spec: str, version: str) -> bool:
    """The format's range grammar (plugin documents were parsed with it: every range is valid)."""
    try:
        return parse_range(spec).matches(version)
    except RangeSyntaxError:
        return False


def _same_bytes(entry: LockedPlugin, release: Release) -> bool:
    return entry.wasm_sha256 == release.wasm.sha256 and entry.manifest_sha256 == release.manifest.sha256


# --------------------------------------------------------------------------- the manifest identity record

# About 170 bytes a line: ~24,000 manifests.  Past it the record starts again with the newest
# lines (older installs are then parsed by ``client verify``, as without a record).
MAX_IDENTITY_RECORD = 4 * MiB


def identity_record_path(state_dir: Path, url: str) -> Path:
    """The manifest identity record of registry ``url``: beside its trust state file."""
    return StateStore(state_dir).path_for(url).with_suffix(".manifests")


def record_manifest_identities(
    state_dir: Path, url: str, identities: Iterable[tuple[str, ManifestIdentity]]
) -> None:
    """Append (manifest sha256, identity) lines to the record of ``url`` in the trust state directory.

    Called after an install verified and committed these manifests.  One append under a file
    lock, so the cost does not grow with the plugins installed; a record that cannot be written
    is skipped (``client verify`` then parses those manifests).  Never follows a link.
    """
    url = normalise_url(url)
    lines = identity_record_lines(identities)
    if not lines:
        return
    path = identity_record_path(state_dir, url)
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = _locked_record(path, flags)
    except OSError:
        return
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return
        # A writer killed while restarting the record left its temporary file; this lock is ours now.
        for stale in state_dir.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        size = info.st_size
        body = lines.encode("ascii")
        if size == 0 or size + len(body) > MAX_IDENTITY_RECORD:
            _restart_identity_record(path, identity_record_header(url).encode("utf-8") + body)
            return
        # A torn earlier append (a crash) must not run into this one's first line.
        if os.pread(fd, 1, size - 1) != b"\n":
            body = b"\n" + body
        os.write(fd, body)
    except OSError:
        pass
    finally:
        os.close(fd)


def _locked_record(path: Path, flags: int) -> int:
    """Open the record and take its lock, on the file that is at ``path`` once the lock is held.

    A writer restarting the record renames a new file over it while it holds the lock on the
    old one: a writer that waited on the old file's lock would append to (or restart from) a
    file nobody reads any more, losing its lines or the other writer's.  So: lock, check that
    ``path`` is still that file, else open again.
    """
    while True:
        fd = os.open(path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held, current = os.fstat(fd), path.lstat()
        except BaseException:
            os.close(fd)
            raise
        if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
            return fd
        os.close(fd)


def _restart_identity_record(path: Path, data: bytes) -> None:
    """Replace the record by ``data`` (temporary file, rename), under the caller's lock on it."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        tmp.replace(path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def load_manifest_identities(state_dir: Path, url: str) -> dict[str, ManifestIdentity]:
    """The identity record of registry ``url``: manifest sha256 -> identity.

    Empty (so every manifest is parsed) unless the state directory and the record are this user's
    and nobody else can write them (like the caches whose entries are trusted on sight), the
    record is a regular file reached without a link, within its size cap, and its header names
    ``url``.
    """
    if not private_dir(state_dir):
        return {}
    try:
        fd = os.open(
            identity_record_path(state_dir, url), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        )
    except OSError:
        return {}
    try:
        info = os.fstat(fd)
        if (
            not stat.S_ISREG(info.st_mode)
            or info.st_uid != os.getuid()
            or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            or info.st_size > MAX_IDENTITY_RECORD
        ):
            return {}
        data = os.read(fd, info.st_size + 1)  # a short read only loses whole lines
    except OSError:
        return {}
    finally:
        os.close(fd)
    return parse_identity_record(data, normalise_url(url))


# --------------------------------------------------------------------------- installed plugins (offline)


def list_installed(dest: Path) -> list[LockedPlugin]:
    """The installed plugins, as the lockfile records them, sorted by name."""
    plugins = read_lockfile(dest).plugins
    return [plugins[n] for n in sorted(plugins)]


def _lockfile_print(dest: Path) -> tuple[int, int, int] | None:
    """Which lockfile ``dest`` holds now: a commit replaces or appends to it (inode, size, mtime)."""
    try:
        info = (dest / LOCKFILE).lstat()
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


_T = TypeVar("_T")


def _once_more_if_committed(dest: Path, check: Callable[[], _T], failed: Callable[[_T], bool]) -> _T:
    """``check()``, run once more, whole, when it failed while another process committed an install.

    No reader takes the lock: the old release folder goes once the lockfile names the new one, so
    a check that read the old lockfile finds it missing.  A failure (raised, or ``failed``) whose
    lockfile changed meanwhile is checked again on the new one; a stable directory keeps its verdict.
    """
    before = _lockfile_print(dest)
    try:
        result = check()
    except RegistryToolError:
        if _lockfile_print(dest) == before:
            raise
        return check()
    return check() if failed(result) and _lockfile_print(dest) != before else result


def verify_installed(
    dest: Path, names: Sequence[str] = (), *, state_dir: Path | None = None, clock: Clock = _utcnow
) -> Report:
    """Re-check installed plugins offline; one result per plugin.

    Always: the files against the lockfile's digests, and the stored manifest against the
    module.  With ``state_dir`` (the client's trust state): also the stored maintainer
    signatures against the last trusted root, so a plugin directory rewritten together with
    its lockfile is caught.  Freshness is a property of sessions, not of installed files, so
    an expired trusted root still judges signatures here.

    The lockfile is read once, each registry's trusted root parsed once, each release folder
    opened and listed once and each stored manifest parsed once.

    Args:
        dest: the plugin directory.
        names: the plugins to check (default: every installed plugin).
        state_dir: the client's trust state directory (None: digests only).
        clock: the current time (tests inject it).

    Returns:
        One result per plugin, and a ``plugin directory`` result for leftover files.
    """
    return _once_more_if_committed(
        dest, lambda: _verify_installed(dest, names, state_dir, clock), lambda report: not report.ok
    )


def _verify_installed(dest: Path, names: Sequence[str], state_dir: Path | None, clock: Clock) -> Report:
    report = Report(command="client verify")
    lock = read_lockfile(dest)
    store = StateStore(state_dir) if state_dir is not None else None
    # One load per registry: its trusted root (parsed once) and its manifest identity record.
    roots: dict[str, Root | None] = {}
    known: dict[str, dict[str, ManifestIdentity]] = {}
    listed: dict[str, Sequence[str]] = {}
    now = clock()
    lockfile = str(dest / LOCKFILE)
    with PluginDir(dest) as pdir:
        pdir.refuse_links()  # decision 14 (a link in a plugin's folders is that plugin's finding)
        for name in list(names) or sorted(lock.plugins):
            entry = lock.plugins.get(name)
            result = CheckResult(subject=name, file=lockfile)
            try:
                if entry is None:
                    locked_entry(dest, name, lock)
                elif store is None:
                    result.subject = f"{entry.name} {entry.version}"
                    result.data = entry.to_json()
                    listed[entry.release_dir] = check_installed(pdir, dest, entry).parts
                    # Said, so a caller can tell: a directory rewritten with its lockfile passes this.
                    result.findings.append(
                        Finding(
                            rule="no-trusted-root",
                            message="no trust state given: only the digests were checked, not the "
                            "maintainer signatures",
                            severity=Severity.notice,
                            fix="pass state_dir (the client's trust state) to check the signatures too",
                        )
                    )
                else:
                    result.subject = f"{entry.name} {entry.version}"
                    result.data = entry.to_json()
                    registry = entry.registry
                    if registry not in roots:
                        state = store.load(registry)
                        roots[registry] = None if state is None else state.root
                    if registry not in known:  # _root_that_signed fills roots of other registries
                        known[registry] = load_manifest_identities(store.directory, registry)
                    checked = check_installed(pdir, dest, entry, signatures=True, known=known[registry])
                    listed[entry.release_dir] = checked.parts
                    root = roots[registry]
                    if root is None:
                        root = _root_that_signed(store, roots, dest, checked, now, result)
                    _verify_installed_signatures(dest, checked, root, now)
            except RegistryToolError as err:
                result.findings.append(Finding.from_error(err))
                if isinstance(err, UsageError):
                    # The machine, not the plugin (a trust state that cannot be read, no wasmtime
                    # for a component): every plugin is still reported, and the exit code is 2.
                    report.error_exit_code = err.exit_code
            report.results.append(result)
    _report_leftovers(dest, lock, report, store, listed)
    return report


def _report_leftovers(
    dest: Path, lock: Lockfile, report: Report, store: StateStore | None, listed: Mapping[str, Sequence[str]]
) -> None:
    """Files a killed writer left behind (the next install or remove deletes what it started)."""
    found = leftovers(dest, lock, listed) + [str(p) for p in (store.leftovers() if store is not None else [])]
    if found:
        result = CheckResult(subject="plugin directory", file=str(dest))
        result.findings.append(
            Finding(
                rule="leftover-files",
                message=f"files not named by the lockfile: {', '.join(found[:10])}"
                + (f" and {len(found) - 10} more" if len(found) > 10 else ""),
                severity=Severity.warning,
                fix="a writer was interrupted; the next `registry-tool client install` or `remove` cleans up "
                "what it started, anything else was not installed by registry-tool",
            )
        )
        report.results.append(result)


def _root_that_signed(
    store: StateStore,
    roots: dict[str, Root | None],
    dest: Path,
    checked: InstalledRelease,
    now: datetime,
    result: CheckResult,
) -> Root | None:
    """For an entry whose registry has no trusted root: another trusted root its signatures meet.

    A single-registry verifier (Go, Rust) judges every entry by its one pinned root; so does this
    one when the entry's own registry is not trusted here, and none of them lets a rewritten
    ``registry`` field turn the check off.
    """
    tried = []
    for url in store.trusted_urls():
        if url not in roots:
            state = store.load(url)
            roots[url] = None if state is None else state.root
        root = roots[url]
        if root is None:
            continue
        tried.append(url)
        try:
            _verify_installed_signatures(dest, checked, root, now)
        except RegistryToolError:
            continue
        result.findings.append(
            Finding(
                rule="other-trusted-root",
                message=f"no trusted root for {checked.entry.registry}, the lockfile's registry; the stored "
                f"signatures verify under the trusted root of {url}",
                severity=Severity.notice,
                fix=f"pin {checked.entry.registry}'s root, or reinstall the plugin from {url}",
            )
        )
        return root
    if tried:
        entry = checked.entry
        raise InstalledFileTamperedError(
            f"{entry.name} {entry.version}: the stored maintainer signatures verify under no trusted root "
            f"(the lockfile names {entry.registry}, which has none; tried {', '.join(tried)})",
            where=f"{dest}/{entry.manifest}",
            fix=f"reinstall it from the registry you trust: registry-tool client install {entry.name}",
        )
    return None  # nothing is trusted here at all: refused by _verify_installed_signatures


def _republished(current: LockedPlugin, release: Release) -> RepublishedReleaseError:
    name = current.name
    return RepublishedReleaseError(
        f"{name} {release.version} is installed with module sha256 {current.wasm_sha256[:16]}… "
        f"and manifest sha256 {current.manifest_sha256[:16]}…, but the registry now publishes "
        f"other bytes under the same version (module {release.wasm.sha256[:16]}…, manifest "
        f"{release.manifest.sha256[:16]}…): a republished release",
        where=f"{name} {release.version}",
        fix=f"ask the registry's owners why; to take the new bytes anyway, remove {name} "
        "(`registry-tool client remove`) and install it again",
    )


def _dropped(current: LockedPlugin, what: str, pin: str, gone: bool = True) -> DroppedReleaseError:
    said = "the registry no longer lists it" if gone else "the registry lists it but the plan passes it over"
    return DroppedReleaseError(
        f"{current.name} {current.version} is installed and its signatures still count, but {said} "
        f"({what}): installed releases are never moved down for what the registry's documents say "
        "alone (a stolen index key could say it), that would be a rollback",
        where=f"{current.name} {current.version}",
        fix="ask the registry's owners why it was removed; to go down anyway, install a version "
        f"exactly (`registry-tool client install {current.name}{pin}`)",
    )


def _verify_installed_signatures(
    dest: Path, checked: InstalledRelease, root: Root | None, now: datetime
) -> None:
    entry = checked.entry
    if root is None:
        # The state directory trusts no root at all (an entry naming an untrusted registry is
        # judged by the trusted roots there).  Refused, as by the Go and Rust verifiers: a state
        # directory given by a wrong path, or deleted by whoever rewrote the plugin directory and
        # its lockfile, must not quietly turn the signature checks off.
        raise RootNotPinnedError(
            f"the state directory trusts no root (the lockfile names {entry.registry}): the stored "
            "maintainer signatures cannot be checked",
            where=f"{dest}/{entry.manifest}",
            fix="check the state directory's path, or pin the root: "
            f"registry-tool client trust {entry.registry} --root ROOT_FILE",
        )
    # The publication time judges only signatures by revoked keys: not parsed for a root that has none.
    published = parse_time_strict(entry.published_at) if entry.published_at and root.revoked else None
    where = f"{dest}/{entry.manifest}"  # not a Path: built for every installed plugin
    # The clock inside the stored root's validity (an expired root still vouches for what it
    # signed while valid); an expiry in year 1's first second has no second before it.
    clock = min(now, root.expires - timedelta(seconds=1)) if root.expires > _FIRST_SECOND else root.expires
    try:
        verify_release_signatures(
            root,
            entry.name,
            checked.manifest,
            checked.signatures,
            clock,
            published_at=published,
            where=where,
            # Read once (check_installed) from exactly these bytes, or recorded for their digest.
            identity=ParsedIdentity(checked.identity.name, checked.identity.version, checked.manifest),
        )
    except RevokedKeyError as err:  # the root revoked its signer since the install
        raise InstalledFileTamperedError(
            f"{entry.name} {entry.version}: the stored maintainer signature no longer counts ({err.what})",
            where=where,
            fix=f"install another release (`registry-tool client install {entry.name}` takes the newest "
            f"that verifies) or remove it (`registry-tool client remove {entry.name}`)",
        ) from None
    except CheckFailed as err:  # the installed manifest or signatures were rewritten
        raise InstalledFileTamperedError(
            f"{entry.name} {entry.version}: the stored maintainer signature does not verify ({err.what})",
            where=where,
            fix=f"reinstall it as the lockfile records it: registry-tool client install {entry.name} "
            "--locked",
        ) from None


def verify_site(
    site: str | Path,
    *,
    root_bytes: bytes,
    root_signatures: Sequence[str] | None = None,
    fetcher: Fetcher | None = None,
    policy: FetchPolicy | None = None,
    clock: Clock = _utcnow,
) -> Report:
    """Verify every release a registry serves exactly as ``install`` verifies one, in one session.

    The root given is pinned for this call only (nothing is written): the root chain is walked
    once and the top document verified once, then the whole plugin tree is walked and, for each
    release of each plugin document, the manifest (size and sha256 pinned by the document,
    maintainer signatures by delegated, unrevoked keys, identity, the entry's fields against
    the signed manifest) and the module (its pins in both) are checked.  The root is parsed
    once per command, not per release.

    Args:
        site: a registry URL (http(s)://, file://) or the folder of a built site.
        root_bytes: a root file obtained out of band (e.g. ``root/1.root.json`` of the index).
        root_signatures: its signature texts (default: fetched from the site).
        fetcher: the transport (default ``HttpFetcher(policy)``).
        policy: time limits for the default transport.
        clock: the current time (tests inject it).

    Returns:
        One result per release (``name version``); a failure of the session or of the tree is one
        result with its finding.

    Raises:
        RegistryToolError: a usage or environment error (an unreadable root file, a transport
            failure that is not a verdict on the registry), which no result can describe.
    """
    url = normalise_url(str(site) if "://" in str(site) else Path(site).resolve().as_uri())
    report = Report(command="client verify-site")
    sources = Sources(url, fetcher or HttpFetcher(policy))
    session = CheckResult(subject=url, file=url)
    try:
        root = Root.parse(root_bytes, where="root")
        if root_signatures is None:
            rel = f"root/{root.version}.root.json"
            root_signatures = _decode(
                sources.root_signatures(url, rel, {k.key_id for k in root.role("root").keys})
            )
        state = pin_root(url, root_bytes, root_signatures)
        top, state = _session(sources, url, state, clock())
        reg = Registry(url, top, sources, None, clock, state)
        documents = reg.walk_tree()
    except CheckFailed as err:  # usage and environment errors (a bad root file, no network) propagate
        session.findings.append(Finding.from_error(err))
        report.results.append(session)
        return report
    for doc in documents:
        for release in doc.releases():
            result = CheckResult(subject=f"{release.name} {release.version}", file=release.manifest.path)
            try:
                facts, signers, _, _ = reg._fetch_manifest(release)
                reg._fetch_wasm(release, facts)
                result.data.update(
                    plugin=release.name,
                    version=release.version,
                    signers=sorted(signers),
                    yanked=release.is_yanked,
                )
            except CheckFailed as err:
                result.findings.append(Finding.from_error(err))
            report.results.append(result)
    return report


@dataclass(frozen=True)
class LoadedPlugin:
    """An installed plugin, re-verified as one read: what a host runs and what it was signed as.

    ``manifest`` is the plugin.toml its maintainers signed (its limits, permissions and exports
    for the host to apply), read in the same pass as ``wasm``: never read it from disk again.
    """

    entry: LockedPlugin
    manifest: bytes
    wasm: bytes


def load_plugin(
    dest: Path, name: str, *, state_dir: Path | None = None, clock: Clock = _utcnow
) -> LoadedPlugin:
    """The installed release of ``name``, re-verified before it is returned.

    Always against the lockfile's digests.  With ``state_dir`` (the client's trust state) also the
    stored maintainer signatures against the trusted root, as ``verify_installed`` checks them, on
    the very bytes returned (no window between a check and the read); a state directory trusting
    no root is refused (``RootNotPinnedError``).
    """
    return _once_more_if_committed(dest, lambda: _load_plugin(dest, name, state_dir, clock), lambda _: False)


def load_plugin_bytes(
    dest: Path, name: str, *, state_dir: Path | None = None, clock: Clock = _utcnow
) -> bytes:
    """The installed wasm of ``name``, re-verified before it is returned (``load_plugin``)."""
    return load_plugin(dest, name, state_dir=state_dir, clock=clock).wasm


def _load_plugin(dest: Path, name: str, state_dir: Path | None, clock: Clock) -> LoadedPlugin:
    entry = locked_entry(dest, name)
    if state_dir is None:
        with PluginDir(dest) as pdir:
            plain = check_installed(pdir, dest, entry)
        return LoadedPlugin(entry, plain.manifest, plain.wasm)
    store = StateStore(state_dir)
    known = load_manifest_identities(store.directory, entry.registry)
    with PluginDir(dest) as pdir:
        checked = check_installed(pdir, dest, entry, signatures=True, known=known)
    now = clock()
    state = store.load(entry.registry)
    roots: dict[str, Root | None] = {entry.registry: None if state is None else state.root}
    result = CheckResult(subject=f"{entry.name} {entry.version}")
    root = roots[entry.registry] or _root_that_signed(store, roots, dest, checked, now, result)
    _verify_installed_signatures(dest, checked, root, now)
    return LoadedPlugin(entry, checked.manifest, checked.wasm)


def remove(dest: Path, name: str, *, force: bool = False) -> LockedPlugin:
    """Remove ``name``; refused while installed plugins depend on it, unless ``force``."""
    return remove_plugins(dest, [name], force=force)[0]


def remove_many(
    dest: Path, names: Sequence[str] = (), *, force: bool = False, orphans: bool = False
) -> list[LockedPlugin]:
    """Remove ``names`` and, with ``orphans``, the dependencies nothing needs any more; one lockfile write.

    Without ``names``, ``orphans`` removes every plugin installed only as a dependency that no
    installed plugin needs.
    """
    return remove_plugins(dest, names, force=force, orphaned=orphans)


__all__ = [
    "FetchError",
    "InstallResult",
    "LoadedPlugin",
    "MetaCache",
    "Registry",
    "SearchHit",
    "default_plugin_dir",
    "default_state_dir",
    "list_installed",
    "load_plugin",
    "load_plugin_bytes",
    "remove",
    "remove_many",
    "trust",
    "verify_installed",
    "verify_site",
]
