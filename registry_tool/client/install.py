"""The plugin directory: resolution, approval, atomic install, lock, lockfile, offline verify.

Layout of a plugin directory::

    registry-tool.lock.json                  the lockfile (version 2, JSON; docs/client.md)
    .registry-tool.lck                       the file lock serialising writers (flock)
    .registry-tool.cleanup.json              present only while a writer runs (or was killed)
    <name>/<version>/plugin.toml (+ sigs)    the signed manifest, as served
    <name>/<version>/<file>.wasm             the verified module

Crash safety: every file is written to a temporary ``.part-*`` file in its own folder, fsynced,
read back (not the lockfile: every reader checks it in full), then renamed into place; the
lockfile is replaced last, and it is the commit point.  Files of a version are immutable, so
until the lockfile is replaced it still names the old, complete files, and after it names the
new, complete ones.  Before the first write a cleanup journal lists the old and the new files;
whoever takes the lock next deletes the listed files the lockfile does not name, so a kill at
any moment leaves nothing behind for good.  No operation follows a symbolic link below the
plugin directory (``plugin_fs``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import operator
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from registry_tool._files import MiB, UnreadableFileError
from registry_tool.client.errors import (
    ApprovalRequiredError,
    InstalledFileTamperedError,
    LockfileError,
    NotInstalledError,
    PermissionEscalationError,
    PluginRequiredError,
    UnsafeNameError,
)
from registry_tool.client.plugin_fs import PART_PREFIX, Folder, PluginDir
from registry_tool.client.trust_state import ManifestFacts, ManifestIdentity
from registry_tool.errors import CheckFailed, Location
from registry_tool.format import (
    PluginDocument,
    Release,
    Requirement,
    check_name,
    choose,
    is_file_name,
    is_plugin_name,
    is_version,
)
from registry_tool.format.errors import DocumentError
from registry_tool.format.rules import KEY_ID_RE, PERMISSION_RE, PLUGIN_NAME_RE, SHA256_RE
from registry_tool.format.strictjson import load_strict
from registry_tool.resolve import Dependency, Installed
from registry_tool.signing.minisign import MAX_SIGNATURE_FILE

LOCKFILE = "registry-tool.lock.json"
LEGACY_LOCKFILE = "registry-tool.lock"  # version 1 (TOML): refused with a "reinstall" message
LOCKFILE_VERSION = 2
LOCK = ".registry-tool.lck"
JOURNAL = ".registry-tool.cleanup.json"
# ``requested`` of an entry installed only because other plugins need it.  Not a range, so it can
# never be a requirement someone typed; ``""`` stays a plain ``NAME`` (any version) as the shared
# lockfile format has always recorded it, so a lockfile from another implementation or an older
# client never marks a plugin the user asked for as removable.
DEPENDENCY_ONLY = "(dependency)"
# About 1 KiB per plugin: room for tens of thousands, and a bound for a hostile file.
MAX_LOCKFILE_SIZE = 64 * MiB
# Every name check here is a fullmatch: with re.match, "$" also matches before a final newline.
_SIG_RE = re.compile(r"plugin\.toml(\.[0-9A-F]{16})?\.minisig")
_RESERVED_RE = re.compile(r"plugin\.toml(\.[0-9A-F]{16})?(\.minisig)?", re.IGNORECASE)


# Names, versions and requirements: one rule, in the format module (re-exported for callers).
is_safe_name = is_plugin_name
is_safe_version = is_version
_is_file_name = is_file_name
__all__ = ["Requirement", "check_name", "is_safe_name", "is_safe_version"]


def resolve(plugin: PluginDocument, req: Requirement, *, host_version: str | None = None) -> Release:
    """The highest release matching ``req``: yanked only when pinned exactly, host-compatible."""
    version = choose(
        req,
        plugin.versions,
        yanked=lambda v: plugin.versions[v].yanked,
        host=lambda v: plugin.versions[v].host,
        host_version=host_version,
    )
    return plugin.versions[version]


# --------------------------------------------------------------------------- approval

Approver = Callable[[Release, frozenset[str]], bool]


def approve_permissions(
    release: Release,
    *,
    allow: Iterable[str] = (),
    already_granted: Iterable[str] = (),
    prompt: Approver | None = None,
    escalation: bool = False,
) -> tuple[str, ...]:
    """The permissions granted to ``release`` (exactly those it declares), or raise.

    A permission is granted when passed in ``allow``, already granted to the installed
    version, or approved through ``prompt`` (a terminal question; hosts may pass their
    own).  Without approval nothing is installed.
    """
    needed = frozenset(release.permissions)
    missing = needed - set(allow) - set(already_granted)
    if missing and not (prompt is not None and prompt(release, frozenset(missing))):
        listed = ",".join(sorted(missing))
        error = PermissionEscalationError if escalation else ApprovalRequiredError
        what = (
            f"{release.name} {release.version} asks for more permissions than were granted: {listed}"
            if escalation
            else f"{release.name} {release.version} needs permission(s) {listed}, which were not approved"
        )
        raise error(what, fix=f"review them, then pass --allow {listed} (or answer the prompt on a terminal)")
    return tuple(sorted(needed))


def approve_plan(
    releases: Sequence[tuple[Release, LockedPlugin | None]],
    *,
    allow: Iterable[str] = (),
    prompt: Approver | None = None,
) -> None:
    """Approve the permissions of every release a plan fetches, asking once for their union.

    A release's permission is granted when passed in ``allow`` or already granted to its installed
    version (the second element); what is left is asked for once through ``prompt`` (given the
    first release that needs something, and the union).  Refused: nothing is installed, and the
    error names which release needs what, so a dependency cannot smuggle in a permission.
    """
    granted = set(allow)
    missing: list[tuple[Release, frozenset[str], bool]] = []
    for release, current in releases:
        already = set(current.permissions) if current is not None else set()
        need = frozenset(release.permissions) - granted - already
        if need:
            missing.append((release, need, current is not None))
    if not missing:
        return
    union = frozenset().union(*(need for _, need, _ in missing))
    if prompt is not None and prompt(missing[0][0], union):
        return
    listed = ",".join(sorted(union))
    escalation = any(upgrade for _, _, upgrade in missing)
    if len(missing) == 1:
        release, need, _ = missing[0]
        what = (
            f"{release.name} {release.version} asks for more permissions than were granted: {listed}"
            if escalation
            else f"{release.name} {release.version} needs permission(s) {listed}, which were not approved"
        )
    else:
        detail = "; ".join(f"{r.name} {r.version} needs {','.join(sorted(n))}" for r, n, _ in missing)
        what = f"the install plan needs permission(s) {listed}, which were not approved ({detail})"
    error = PermissionEscalationError if escalation else ApprovalRequiredError
    raise error(what, fix=f"review them, then pass --allow {listed} (or answer the prompt on a terminal)")


# --------------------------------------------------------------------------- lockfile (version 2)

_ENTRY_FIELDS = frozenset(
    {
        "version", "registry", "requested", "required_by", "dependencies", "abi", "manifest",
        "manifest_sha256", "manifest_size", "wasm", "wasm_sha256", "wasm_size", "signatures",
        "signers", "permissions", "published_at",
    }
)  # fmt: skip


@dataclass(frozen=True)
class LockedPlugin:
    """One lockfile entry: everything needed to re-check the installed files offline."""

    name: str
    version: str
    registry: str
    requested: str
    abi: str
    manifest: str  # path relative to the plugin directory: <name>/<version>/plugin.toml
    manifest_sha256: str
    wasm: str
    wasm_sha256: str
    wasm_size: int
    signers: tuple[str, ...]
    permissions: tuple[str, ...]
    published_at: str = ""  # judges signatures by keys revoked later
    manifest_size: int = 0
    signatures: tuple[str, ...] = ()  # paths of the installed signature files
    dependencies: dict[str, str] = field(default_factory=dict, hash=False)
    required_by: tuple[str, ...] = ()

    @property
    def release_dir(self) -> str:
        """The release's folder, relative to the plugin directory: ``<name>/<version>``."""
        return f"{self.name}/{self.version}"

    @property
    def dependency_only(self) -> bool:
        """Whether the plugin was installed only because other plugins need it (an orphan candidate)."""
        return self.requested == DEPENDENCY_ONLY

    @property
    def spec(self) -> str:
        """The range ``update`` resolves this plugin against ("" for any version)."""
        return "" if self.dependency_only else self.requested

    @property
    def files(self) -> tuple[str, ...]:
        """Every file this entry installed: the only files a removal may delete."""
        return (self.manifest, *self.signatures, self.wasm)

    def lock_json(self) -> dict[str, Any]:
        """The entry as the lockfile stores it (keyed by name)."""
        return {
            "version": self.version,
            "registry": self.registry,
            "requested": self.requested,
            "required_by": sorted(self.required_by),
            "dependencies": dict(sorted(self.dependencies.items())),
            "abi": self.abi,
            "manifest": self.manifest,
            "manifest_sha256": self.manifest_sha256,
            "manifest_size": self.manifest_size,
            "wasm": self.wasm,
            "wasm_sha256": self.wasm_sha256,
            "wasm_size": self.wasm_size,
            "signatures": sorted(self.signatures),
            "signers": sorted(self.signers),
            "permissions": sorted(self.permissions),
            "published_at": self.published_at,
        }

    @cached_property
    def installed(self) -> Installed:
        """The entry as the resolver sees an installed plugin (built once per entry object)."""
        return Installed(self.version, tuple(Dependency(d, r) for d, r in sorted(self.dependencies.items())))

    @cached_property
    def lock_bytes(self) -> bytes:
        """The entry's member of the lockfile's ``plugins`` object, as written.

        Built once per entry object: entries are immutable.
        """
        return f"    {_enc(self.name)}: {_entry_text(self)}".encode()

    def to_json(self) -> dict[str, Any]:
        """The entry with its name, for command output."""
        return {"name": self.name, **self.lock_json()}

    to_toml = to_json  # the name older hosts call


@dataclass
class Lockfile:
    """The lockfile (version 2): the installed plugins by name."""

    plugins: dict[str, LockedPlugin] = field(default_factory=dict)
    # Whether every entry's ``required_by`` is known to be derived from the entries' dependencies
    # (written by this client in this process).  A lockfile read from disk may come from another
    # implementation, so the first write derives every entry again; later writes only the
    # entries whose edges changed.  Not part of the file.
    derived: bool = field(default=False, compare=False)

    def to_bytes(self) -> bytes:
        r"""Exactly ``json.dumps(doc, indent=2, sort_keys=True) + "\n"`` (the shared format).

        Built from a fixed template with the C string encoder: with ``indent`` set, ``json.dumps``
        runs its pure-Python encoder, which made every install cost ~0.3 s more with 1,000 plugins
        in the directory.  Each entry's text is built once per entry object (``lock_bytes``), so
        rewriting the lockfile after one change costs one join.  A test compares the two byte
        for byte.
        """
        plugins = self.plugins
        # C-level loops (map, attrgetter of the cached text): one join per write, no Python frame per entry.
        entries = b",\n".join(map(_LOCK_BYTES, map(plugins.__getitem__, sorted(plugins))))
        body = b"{\n" + entries + b"\n  }" if entries else b"{}"
        return b'{\n  "lockfile_version": %d,\n  "plugins": %s\n}\n' % (LOCKFILE_VERSION, body)


_LOCK_BYTES = operator.attrgetter("lock_bytes")
_enc = json.encoder.encode_basestring_ascii  # what json.dumps uses for str (ensure_ascii)
_IN = " " * 8  # members of an entry's lists and objects


def _list_text(values: Iterable[str]) -> str:
    items = ",\n".join(_IN + _enc(v) for v in sorted(values))
    return f"[\n{items}\n      ]" if items else "[]"


def _dict_text(values: dict[str, str]) -> str:
    items = ",\n".join(f"{_IN}{_enc(k)}: {_enc(v)}" for k, v in sorted(values.items()))
    return f"{{\n{items}\n      }}" if items else "{}"


def _entry_text(e: LockedPlugin) -> str:
    """``LockedPlugin.lock_json`` as ``json.dumps(indent=2, sort_keys=True)`` writes it at depth 2."""
    return (
        "{\n"
        f'      "abi": {_enc(e.abi)},\n'
        f'      "dependencies": {_dict_text(e.dependencies)},\n'
        f'      "manifest": {_enc(e.manifest)},\n'
        f'      "manifest_sha256": {_enc(e.manifest_sha256)},\n'
        f'      "manifest_size": {int(e.manifest_size)},\n'
        f'      "permissions": {_list_text(e.permissions)},\n'
        f'      "published_at": {_enc(e.published_at)},\n'
        f'      "registry": {_enc(e.registry)},\n'
        f'      "requested": {_enc(e.requested)},\n'
        f'      "required_by": {_list_text(e.required_by)},\n'
        f'      "signatures": {_list_text(e.signatures)},\n'
        f'      "signers": {_list_text(e.signers)},\n'
        f'      "version": {_enc(e.version)},\n'
        f'      "wasm": {_enc(e.wasm)},\n'
        f'      "wasm_sha256": {_enc(e.wasm_sha256)},\n'
        f'      "wasm_size": {int(e.wasm_size)}\n'
        "    }"
    )


def _lock_error(what: str, dir_: Path, field_: str | None = None) -> LockfileError:
    return LockfileError(
        what,
        where=Location(file=str(dir_ / LOCKFILE), field=field_),
        fix="restore the lockfile from version control, or remove the plugin directory's lockfile and "
        "install the plugins again",
    )


def parse_json_strict(data: bytes, where: str = LOCKFILE) -> Any:
    """Parse the format's strict JSON; every refusal is a ValueError here.

    Refused: duplicate members, NaN, integers beyond 2^53, lone surrogates, deep nesting.
    """
    try:
        return load_strict(data, where=where)
    except DocumentError as err:
        raise ValueError(err.what) from None


class _Entry:
    """Typed access to one raw lockfile entry: a wrong type is a named error, never a crash."""

    def __init__(self, raw: dict[str, Any], name: str, dir_: Path) -> None:
        self.raw, self.name, self.dir = raw, name, dir_

    def fail(self, key: str, what: str) -> LockfileError:
        return _lock_error(f"{self.name}: {key} {what}", self.dir, f"plugins.{self.name}.{key}")

    def str_(self, key: str, pattern: re.Pattern[str] | None = None) -> str:
        value = self.raw.get(key)
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, not {type(value).__name__}")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.fail(key, f"{value!r} is not valid"[:200])
        return value

    def int_(self, key: str) -> int:
        value = self.raw.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**53:
            raise self.fail(key, f"must be a non-negative integer, not {value!r}"[:200])
        return value

    def strs(self, key: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
        value = self.raw.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) and pattern.fullmatch(v) for v in value):
            raise self.fail(key, "must be a list of valid strings")
        return tuple(value)

    def path(self, key: str, value: Any, prefix: str) -> str:
        """``value`` must be ``prefix`` (``<name>/<version>/``) followed by a plain file name."""
        if not (isinstance(value, str) and value.startswith(prefix) and _is_file_name(value[len(prefix) :])):
            raise self.fail(key, f"path {value!r} is not {prefix}<file name>"[:300])
        return value


def _parse_entry(name: str, raw: Any, dir_: Path) -> LockedPlugin:
    if not is_safe_name(name):
        raise _lock_error(f"plugin name {name!r} is not a valid plugin name"[:200], dir_, "plugins")
    if not isinstance(raw, dict):
        raise _lock_error(f"{name}: the entry must be an object", dir_, f"plugins.{name}")
    unknown = sorted(set(raw) - _ENTRY_FIELDS)
    missing = sorted(_ENTRY_FIELDS - set(raw))
    if unknown or missing:
        detail = "; ".join(
            x for x in (f"unknown {unknown}" if unknown else "", f"missing {missing}" if missing else "") if x
        )
        raise _lock_error(f"{name}: the entry's fields are wrong ({detail})"[:300], dir_, f"plugins.{name}")
    e = _Entry(raw, name, dir_)
    version = e.str_("version")
    if not is_safe_version(version):
        raise e.fail("version", f"{version!r} is not strict semver"[:200])
    base = f"{name}/{version}/"
    manifest = e.path("manifest", raw["manifest"], base)
    if not manifest.endswith("/plugin.toml"):
        raise e.fail("manifest", "must name plugin.toml")
    wasm = e.path("wasm", raw["wasm"], base)
    if _RESERVED_RE.fullmatch(wasm.rsplit("/", 1)[1]):
        raise e.fail("wasm", "names the manifest or a signature file")
    sigs = raw["signatures"]
    if not isinstance(sigs, list):
        raise e.fail("signatures", "must be a list of paths")
    signatures = tuple(e.path("signatures", s, base) for s in sigs)
    if not all(_SIG_RE.fullmatch(s.rsplit("/", 1)[1]) for s in signatures):
        raise e.fail("signatures", "may only name plugin.toml[.KEYID].minisig files")
    deps = raw["dependencies"]
    if not isinstance(deps, dict) or not all(is_safe_name(k) and isinstance(v, str) for k, v in deps.items()):
        raise e.fail("dependencies", "must map plugin names to version ranges")
    return LockedPlugin(
        name=name,
        version=version,
        registry=e.str_("registry"),
        requested=e.str_("requested"),
        abi=e.str_("abi"),
        manifest=manifest,
        manifest_sha256=e.str_("manifest_sha256", SHA256_RE),
        manifest_size=e.int_("manifest_size"),
        wasm=wasm,
        wasm_sha256=e.str_("wasm_sha256", SHA256_RE),
        wasm_size=e.int_("wasm_size"),
        signatures=signatures,
        signers=e.strs("signers", KEY_ID_RE),
        permissions=e.strs("permissions", PERMISSION_RE),
        published_at=e.str_("published_at"),
        dependencies=dict(deps),
        required_by=e.strs("required_by", PLUGIN_NAME_RE),
    )


# The last lockfile parsed or written per plugin directory, with its exact bytes: a process that
# reads an unchanged lockfile again (a host; install after install) reuses the parse instead of
# validating every entry again, so its per-command cost does not grow with the plugins installed.
# Keyed by the exact bytes (compared in full), so a changed file is always parsed again.
_PARSED: dict[str, tuple[bytes, dict[str, LockedPlugin], bool]] = {}
_PARSED_DIRS = 16


def _remember(dir_: Path, data: bytes, plugins: dict[str, LockedPlugin], *, derived: bool = False) -> None:
    key = str(dir_)
    _PARSED.pop(key, None)
    if len(_PARSED) >= _PARSED_DIRS:
        _PARSED.pop(next(iter(_PARSED)))
    _PARSED[key] = (data, dict(plugins), derived)


def parse_lockfile(data: bytes, dir_: Path) -> Lockfile:
    """Parse lockfile bytes (pure); every problem is a ``LockfileError``, never a crash.

    The same bytes parsed (or written) last for ``dir_`` in this process are not validated
    again: their entries are reused (they are immutable).
    """
    cached = _PARSED.get(str(dir_))
    if cached is not None and cached[0] == data:
        return Lockfile(dict(cached[1]), derived=cached[2])
    lock = _parse_lockfile(data, dir_)
    _remember(dir_, data, lock.plugins)
    return lock


def _parse_lockfile(data: bytes, dir_: Path) -> Lockfile:
    try:
        raw = parse_json_strict(data)
    except ValueError as err:
        raise _lock_error(f"the lockfile is not valid JSON: {err}"[:300], dir_) from None
    if not isinstance(raw, dict):
        raise _lock_error("the lockfile must be a JSON object", dir_)
    version = raw.get("lockfile_version")
    if version != LOCKFILE_VERSION or isinstance(version, bool):
        raise _lock_error(
            f"lockfile_version {version!r} is not supported (this client reads version {LOCKFILE_VERSION})"[
                :300
            ],
            dir_,
            "lockfile_version",
        )
    if set(raw) != {"lockfile_version", "plugins"} or not isinstance(raw["plugins"], dict):
        raise _lock_error("the lockfile must hold exactly lockfile_version and a plugins object", dir_)
    return Lockfile({name: _parse_entry(name, entry, dir_) for name, entry in raw["plugins"].items()})


def _read_lock_bytes(pdir: PluginDir, dir_: Path) -> bytes | None:
    data = pdir.read(LOCKFILE, MAX_LOCKFILE_SIZE, "lockfile")
    if data is None and pdir.lstat(LEGACY_LOCKFILE) is not None:
        raise LockfileError(
            f"{dir_} holds a version 1 lockfile ({LEGACY_LOCKFILE}), which this client no longer reads",
            where=str(dir_ / LEGACY_LOCKFILE),
            fix=f"reinstall the plugins: note them from {LEGACY_LOCKFILE}, delete it and the plugin folders, "
            "then run `registry-tool client install NAME...` again",
        )
    return data


def read_lockfile(dir_: Path) -> Lockfile:
    with PluginDir(dir_) as pdir:
        data = _read_lock_bytes(pdir, dir_) if pdir.exists else None
    return Lockfile() if data is None else parse_lockfile(data, dir_)


# --------------------------------------------------------------------------- the writers' session


@dataclass
class DirSession:
    """A plugin directory opened under its writers' lock, with its lockfile read once."""

    path: Path
    fs: PluginDir
    lock: Lockfile


def _journal_paths(pdir: PluginDir) -> list[str]:
    """The release files a killed writer was adding or removing.

    An unreadable journal (cut short
    by a power loss: it is not fsynced) is ignored: it only ever widens what may be deleted, so
    ignoring it deletes less, and `client verify` still reports what is left.
    """
    try:
        data = pdir.read(JOURNAL, MAX_LOCKFILE_SIZE, "cleanup journal")
        raw = parse_json_strict(data, JOURNAL) if data is not None else None
    except (ValueError, UnreadableFileError):
        return []
    paths = raw.get("remove") if isinstance(raw, dict) else None
    if not isinstance(paths, list):
        return []
    return [p for p in paths if isinstance(p, str) and p.count("/") == 2 and _is_release_path(p)]


def _is_release_path(rel: str) -> bool:
    name, version, file = rel.split("/")
    return is_safe_name(name) and is_safe_version(version) and _is_file_name(file)


def _write_journal(pdir: PluginDir, paths: Iterable[str]) -> None:
    doc = {"remove": sorted(set(paths))}
    # Not fsynced: losing it in a power cut only leaves files that `client verify` reports.
    pdir.write_atomic(JOURNAL, (json.dumps(doc, sort_keys=True) + "\n").encode("utf-8"), durable=False)


def _referenced(lock: Lockfile, paths: Iterable[str]) -> set[str]:
    """Those of ``paths`` that an entry of ``lock`` still names.

    A path ``<name>/<version>/<file>``
    can only be named by the entry of ``<name>`` (the lockfile's path rule), so this costs
    O(paths), not O(installed plugins).
    """
    out: set[str] = set()
    for path in paths:
        entry = lock.plugins.get(path.split("/", 1)[0])
        if entry is not None and path in entry.files:
            out.add(path)
    return out


def _remove_files(pdir: PluginDir, paths: Iterable[str], keep: set[str]) -> list[str]:
    """Delete ``paths`` not in ``keep`` (files only, never through a link), then their empty folders."""
    removed: list[str] = []
    folders: set[str] = set()
    for rel in sorted(set(paths) - keep):
        if pdir.unlink(rel):
            removed.append(rel)
        folders.add(rel.rsplit("/", 1)[0])
    for folder in sorted(folders):
        pdir.remove_parts(folder)
        if pdir.rmdir_if_empty(folder):
            pdir.rmdir_if_empty(folder.split("/", 1)[0])
    return removed


def recover(pdir: PluginDir, dir_: Path, lock: Lockfile) -> list[str]:
    """Finish what a killed writer left.

    Deletes the files named in the journal that the lockfile does not reference (the old version
    after a committed update, the new one after an interrupted one) and temporary files.  Only
    paths the journal lists are touched.
    """
    removed = pdir.remove_parts()
    paths = _journal_paths(pdir)
    if paths:
        removed += _remove_files(pdir, paths, _referenced(lock, paths))
    if pdir.lstat(JOURNAL) is not None:
        pdir.unlink(JOURNAL)
    return removed


@contextmanager
def plugin_dir_lock(dir_: Path, timeout: float = 300.0) -> Iterator[DirSession]:
    """Serialise writers of one plugin directory across processes; read the lockfile once."""
    with PluginDir(dir_, create=True) as pdir, pdir.locked(LOCK, timeout):
        data = _read_lock_bytes(pdir, dir_)
        lock = Lockfile() if data is None else parse_lockfile(data, dir_)
        recover(pdir, dir_, lock)
        yield DirSession(dir_, pdir, lock)


def atomic_write(dir_: Path, relpath: str, data: bytes) -> Path:
    """Write ``data`` to ``dir_/relpath`` atomically, never following a link below ``dir_``."""
    with PluginDir(dir_, create=True) as pdir:
        pdir.write_atomic(relpath, data)
    return dir_ / relpath


# --------------------------------------------------------------------------- install / remove


@dataclass(frozen=True)
class VerifiedRelease:
    """A release whose manifest signature, names and digests were all checked."""

    release: Release
    registry_url: str
    manifest_bytes: bytes
    signatures: dict[str, bytes]  # file name (plugin.toml[.KEYID].minisig) -> bytes
    wasm_bytes: bytes
    wasm_filename: str
    signers: tuple[str, ...]
    dependencies: dict[str, str] = field(default_factory=dict)  # from the signed manifest
    abi: str = ""  # from the signed manifest (release_check); the index entry's when not given


@dataclass(frozen=True)
class Staged:
    """One verified release of a plan, with what the lockfile records about the request."""

    verified: VerifiedRelease
    requested: str
    permissions: tuple[str, ...]


def commit_install(
    dir_: Path,
    verified: VerifiedRelease,
    *,
    requested: str,
    permissions: tuple[str, ...],
    session: DirSession | None = None,
) -> LockedPlugin:
    """Write one verified release into ``dir_`` and record it in the lockfile (``commit_plan``)."""
    entries = commit_plan(dir_, [Staged(verified, requested, permissions)], session=session)
    return entries[verified.release.name]


def _entry_for(staged: Staged) -> LockedPlugin:
    """The lockfile entry of a staged release, every name checked before anything is written."""
    verified = staged.verified
    release = verified.release
    check_name(release.name)
    if not is_safe_version(release.version):
        raise UnsafeNameError(f"version {release.version!r} is not strict semver", fix="report this registry")
    base = f"{release.name}/{release.version}"
    wasm_name = verified.wasm_filename
    # Compared case-insensitively: on macOS/Windows "Plugin.toml" is the manifest's file.
    if not _is_file_name(wasm_name) or _RESERVED_RE.fullmatch(wasm_name):
        raise UnsafeNameError(f"artifact file name {wasm_name!r} is not allowed", fix="report this registry")
    for sig_name in verified.signatures:
        if not _SIG_RE.fullmatch(sig_name):
            raise UnsafeNameError(f"unexpected signature file name {sig_name!r}", fix="report this bug")
    return LockedPlugin(
        name=release.name,
        version=release.version,
        registry=verified.registry_url,
        requested=staged.requested,
        abi=verified.abi or release.abi,
        manifest=f"{base}/plugin.toml",
        manifest_sha256=hashlib.sha256(verified.manifest_bytes).hexdigest(),
        manifest_size=len(verified.manifest_bytes),
        wasm=f"{base}/{wasm_name}",
        wasm_sha256=hashlib.sha256(verified.wasm_bytes).hexdigest(),
        wasm_size=len(verified.wasm_bytes),
        signatures=tuple(sorted(f"{base}/{s}" for s in verified.signatures)),
        signers=tuple(sorted(verified.signers)),
        permissions=staged.permissions,
        published_at=release.published_at,
        dependencies=dict(verified.dependencies),
    )


def with_required_by(
    plugins: dict[str, LockedPlugin], changed: Iterable[LockedPlugin] | None = None
) -> dict[str, LockedPlugin]:
    """Every entry's ``required_by``, derived from the recorded dependency edges.

    One rule, so the lockfile never disagrees with itself after an install or a removal.

    Args:
        plugins: the entries as they will be written.
        changed: the old and the new entries of every name added, replaced or removed, when
            every other entry's ``required_by`` is already derived (``Lockfile.derived``): only
            the entries those edges touch are derived again, instead of every entry.  None:
            every entry.
    """
    if changed is not None:
        touched: set[str] = set()
        for entry in changed:
            touched.add(entry.name)
            touched.update(entry.dependencies)
        updated = dict(plugins)
        for name in touched:
            current = plugins.get(name)
            if current is None:
                continue
            wanted = tuple(sorted(p.name for p in plugins.values() if name in p.dependencies))
            if current.required_by != wanted:
                updated[name] = dataclasses.replace(current, required_by=wanted)
        return updated
    parents: dict[str, list[str]] = {}
    for entry in plugins.values():
        for dep in entry.dependencies:
            if dep in plugins:
                parents.setdefault(dep, []).append(entry.name)
    out: dict[str, LockedPlugin] = {}
    for name, entry in plugins.items():
        wanted = tuple(sorted(parents[name])) if name in parents else ()
        out[name] = entry if entry.required_by == wanted else dataclasses.replace(entry, required_by=wanted)
    return out


def commit_plan(
    dir_: Path,
    staged: Sequence[Staged],
    *,
    session: DirSession | None = None,
    requested: Mapping[str, str] | None = None,
) -> dict[str, LockedPlugin]:
    """Write every verified release of a plan into ``dir_`` and record them with ONE lockfile write.

    ``requested`` updates the recorded requirement of entries already installed as planned.
    Order: every name checked and every release folder checked for links, a cleanup journal
    naming the old and the new files, all new files (temp, fsync, rename), the lockfile (the
    commit point for the whole set), the old versions' files, the journal.  A failure before the
    lockfile write removes the new files and leaves the lockfile as it was: all or nothing.
    """
    if session is None:
        with plugin_dir_lock(dir_) as own:
            return commit_plan(dir_, staged, session=own, requested=requested)
    pdir, lock = session.fs, session.lock
    entries = [_entry_for(s) for s in staged]  # a refusal here leaves the directory untouched
    old_files: list[str] = []
    for entry in entries:
        pdir.check_dir(entry.name)
        pdir.check_dir(entry.release_dir)
        previous = lock.plugins.get(entry.name)
        if previous is not None:
            pdir.check_dir(previous.release_dir)
            old_files += previous.files
    new_files = [path for entry in entries for path in entry.files]
    plugins = dict(lock.plugins)
    for name, spec in (requested or {}).items():
        if name in plugins:
            plugins[name] = dataclasses.replace(plugins[name], requested=spec)
    plugins.update({entry.name: entry for entry in entries})
    replaced = [lock.plugins[e.name] for e in entries if e.name in lock.plugins]
    plugins = with_required_by(plugins, [*entries, *replaced] if lock.derived else None)
    _write_journal(pdir, (*old_files, *new_files))
    try:
        for entry, s in zip(entries, staged, strict=True):
            for sig_name, sig in sorted(s.verified.signatures.items()):
                pdir.write_atomic(f"{entry.release_dir}/{sig_name}", sig)
            pdir.write_atomic(entry.manifest, s.verified.manifest_bytes)
            pdir.write_atomic(entry.wasm, s.verified.wasm_bytes)
        text = Lockfile(plugins).to_bytes()
        pdir.write_atomic(LOCKFILE, text, read_back=False)  # the commit point
    except BaseException:
        # Nothing committed: the new files the old lockfile does not name go now (the journal
        # would have them removed by the next writer anyway).
        with contextlib.suppress(Exception):
            _remove_files(pdir, new_files, _referenced(lock, new_files))
            pdir.unlink(JOURNAL)
        raise
    lock.plugins, lock.derived = plugins, True
    _remember(dir_, text, plugins, derived=True)
    # Only what the previous entries listed, and only files the new lockfile no longer names.
    _remove_files(pdir, old_files, _referenced(lock, old_files))
    pdir.unlink(JOURNAL)
    return {entry.name: plugins[entry.name] for entry in entries}


def dependents(lock: Lockfile, name: str) -> list[str]:
    """Installed plugins whose recorded dependencies name ``name``."""
    return sorted(e.name for e in lock.plugins.values() if name in e.dependencies and e.name != name)


def orphans(lock: Lockfile, removed: Iterable[LockedPlugin] | None = None) -> list[str]:
    """Plugins installed only as dependencies (``DEPENDENCY_ONLY``) that nothing in ``lock`` needs.

    Found transitively (an orphan's own dependencies may become orphans), sorted per round.  With
    ``removed``, only what those entries pulled in (transitively) is a candidate; without it, every
    dependency-only entry is.  A plugin the user asked for by name is never an orphan.

    Args:
        lock: the lockfile as it will be after the removal.
        removed: the entries being removed, or None for every orphan of ``lock``.

    Returns:
        The names of the orphans, in the order they were found.
    """
    plugins = dict(lock.plugins)
    pulled = None if removed is None else {dep for e in removed for dep in e.dependencies}
    found: list[str] = []
    while True:
        needed = {dep for e in plugins.values() for dep in e.dependencies}
        loose = sorted(
            n
            for n, e in plugins.items()
            if e.dependency_only and n not in needed and (pulled is None or n in pulled)
        )
        if not loose:
            return found
        found += loose
        for n in loose:
            dropped = plugins.pop(n)
            if pulled is not None:
                pulled |= set(dropped.dependencies)


def remove_plugins(
    dir_: Path, names: Sequence[str], *, force: bool = False, orphaned: bool = False
) -> list[LockedPlugin]:
    """Delete the files of ``names`` (and, with ``orphaned``, of their orphans); one lockfile write.

    The lockfile is written once, without them.

    With ``orphaned`` and no ``names``: every plugin installed only as a dependency that nothing
    installed needs any more.

    Refuses (``PluginRequiredError``) when a plugin that stays depends on one being removed,
    unless ``force``.  The entries go only after their files are gone: a refusal (a link planted
    in the release folder) leaves the lockfile naming what is still installed.
    """
    for name in names:
        check_name(name)
    with plugin_dir_lock(dir_) as session:
        pdir, lock = session.fs, session.lock
        for name in names:
            if name not in lock.plugins:
                raise NotInstalledError(
                    f"{name} is not installed in {dir_}", fix="see `registry-tool client list`"
                )
        targets = list(dict.fromkeys(names))
        if orphaned:
            rest = Lockfile({n: e for n, e in lock.plugins.items() if n not in targets})
            targets += orphans(rest, [lock.plugins[n] for n in targets] if targets else None)
        if not targets:
            return []
        if not force:
            for name in targets:
                users = [u for u in dependents(lock, name) if u not in targets]
                if users:
                    raise PluginRequiredError(
                        f"{name} is required by installed plugin(s) {', '.join(users)}",
                        where=str(dir_ / LOCKFILE),
                        fix=f"remove {', '.join(users)} too, or pass --force to remove {name} anyway "
                        "(they will fail to load)",
                    )
        entries = [lock.plugins[n] for n in targets]
        for entry in entries:
            pdir.check_dir(entry.name)
            pdir.check_dir(entry.release_dir)
        for entry in entries:
            del lock.plugins[entry.name]
            _remove_files(pdir, entry.files, _referenced(lock, entry.files))
        lock.plugins = with_required_by(lock.plugins, entries if lock.derived else None)
        lock.derived = True
        text = lock.to_bytes()
        pdir.write_atomic(LOCKFILE, text, read_back=False)
        _remember(dir_, text, lock.plugins, derived=True)
    return entries


def remove_plugin(dir_: Path, name: str, *, force: bool = False) -> LockedPlugin:
    """Remove one plugin (``remove_plugins``)."""
    return remove_plugins(dir_, [name], force=force)[0]


# --------------------------------------------------------------------------- offline verification


def _tampered(entry: LockedPlugin, dir_: Path, what: str, path: str) -> InstalledFileTamperedError:
    return InstalledFileTamperedError(
        f"{entry.name} {entry.version}: {what}",
        where=str(dir_ / path),
        fix=f"reinstall it: registry-tool client install {entry.name}@{entry.version} --locked",
    )


_QUICK_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _read_in(folder: Folder, name: str, cap: int, what: str) -> bytes | None:
    """``folder.read`` in one open, fstat and read for what verify meets every time.

    That is a regular file within ``cap`` (never through a link), read whole by its one read.
    Anything else (a link, a FIFO, a file over the cap or one that grew) goes to ``folder.read``,
    which refuses it by name.
    """
    try:
        fd = os.open(name, _QUICK_READ, dir_fd=folder.fd)
    except FileNotFoundError:
        return None
    except OSError:
        return folder.read(name, cap, what)
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_size <= cap:
            data = os.read(fd, info.st_size + 1)
            if len(data) <= info.st_size:
                return data
    finally:
        os.close(fd)
    return folder.read(name, cap, what)


def _read_installed(
    folder: Folder | None, dir_: Path, entry: LockedPlugin, rel: str, cap: int, label: str
) -> bytes:
    # One byte over the recorded size is read so that a longer file fails the digest check below.
    try:
        data = None if folder is None else _read_in(folder, rel.rsplit("/", 1)[1], cap + 1, "installed file")
    except UnreadableFileError as err:
        raise _tampered(
            entry, dir_, f"{label} differs from the lockfile's sha256/size ({err.what})", rel
        ) from None
    if data is None:
        raise _tampered(entry, dir_, "an installed file is missing", rel)
    return data


@dataclass(frozen=True)
class InstalledRelease:
    """One installed release, re-read and checked against its lockfile entry."""

    entry: LockedPlugin
    manifest: bytes
    wasm: bytes
    # The stored manifest's name, version and module digest: parsed once, or taken from the
    # identity record for these exact bytes (``known``).
    identity: ManifestIdentity
    signatures: tuple[str, ...] = ()  # the texts of the signature files found (when asked for)
    parts: tuple[str, ...] = ()  # temporary files a killed writer left in the release folder


def check_installed(
    pdir: PluginDir,
    dir_: Path,
    entry: LockedPlugin,
    *,
    signatures: bool = False,
    known: Mapping[str, ManifestIdentity] | None = None,
) -> InstalledRelease:
    """Re-check one installed release against its lockfile entry, opening its folder once.

    The manifest and the module must have the recorded sizes and digests, and the manifest must
    name the entry's plugin, version and module digest.  Reads are bounded by the recorded sizes
    and never follow a link below ``dir_``.

    Args:
        pdir: the open plugin directory.
        dir_: its path (for messages).
        entry: the lockfile entry.
        signatures: also read the signature files the entry lists (missing ones are skipped:
            the threshold decides).
        known: manifest identities by the sha256 of the manifest's bytes, from the client's
            identity record (trusted like the trusted root).  A manifest whose computed digest
            it holds, with exactly the entry's identity, is not parsed; any other is.

    Returns:
        The verified bytes, the parsed manifest, and what else the folder holds.

    Raises:
        InstalledFileTamperedError: a file is missing, longer, or differs from the lockfile.
        UnsafePathError: a link below the plugin directory.
    """
    with pdir.folder(entry.release_dir) as folder:  # opens <name>, then <version>, never via a link
        manifest = _read_installed(folder, dir_, entry, entry.manifest, entry.manifest_size, "plugin.toml")
        wasm = _read_installed(folder, dir_, entry, entry.wasm, entry.wasm_size, "the wasm module")
        texts: list[str] = []
        if signatures and folder is not None:
            for rel in entry.signatures:
                data = _read_in(folder, rel.rsplit("/", 1)[1], MAX_SIGNATURE_FILE, "signature file")
                if data is not None:
                    texts.append(data.decode("utf-8", errors="replace"))
        parts = (
            ()
            if folder is None
            else tuple(
                sorted(f"{entry.release_dir}/{n}" for n in folder.names() if n.startswith(PART_PREFIX))
            )
        )
    manifest_digest = hashlib.sha256(manifest).hexdigest()
    if manifest_digest != entry.manifest_sha256 or len(manifest) != entry.manifest_size:
        raise _tampered(entry, dir_, "plugin.toml differs from the lockfile's sha256", entry.manifest)
    digest = hashlib.sha256(wasm).hexdigest()
    if digest != entry.wasm_sha256 or len(wasm) != entry.wasm_size:
        raise _tampered(entry, dir_, "the wasm module differs from the lockfile's sha256/size", entry.wasm)
    wanted = ManifestIdentity(entry.name, entry.version, digest)
    # Looked up by the digest of the bytes just read, never by the lockfile's: whoever rewrites the
    # folder can rewrite the lockfile.  Only a record agreeing with the entry is taken; anything
    # else (no line, another identity) is decided by the parse.
    identity = known.get(manifest_digest) if known is not None else None
    if identity != wanted:
        try:
            identity = ManifestFacts.parse(manifest, where=entry.manifest).identity
        except CheckFailed as err:
            raise _tampered(entry, dir_, err.what, entry.manifest) from None
        if identity != wanted:
            raise _tampered(entry, dir_, "plugin.toml does not describe the installed module", entry.manifest)
    return InstalledRelease(entry, manifest, wasm, identity, tuple(texts), parts)


def verify_entry(dir_: Path, entry: LockedPlugin) -> bytes:
    """Re-check one installed plugin against its lockfile entry; return the verified wasm bytes.

    Reads are bounded by the sizes the lockfile records and never follow a link below ``dir_``.
    """
    with PluginDir(dir_) as pdir:
        return check_installed(pdir, dir_, entry).wasm


def leftovers(
    dir_: Path, lock: Lockfile | None = None, listed: Mapping[str, Sequence[str]] | None = None
) -> list[str]:
    """Files and folders a killed writer left behind.

    Temporary files, a cleanup journal, release folders the lockfile does not name.
    ``client verify`` reports them; the next writer removes
    what the journal lists.

    ``listed`` maps release folders already listed by the caller to the temporary files found
    there (``InstalledRelease.parts``), so no folder is listed twice.
    """
    found: list[str] = []
    listed = listed or {}
    with PluginDir(dir_) as pdir:
        if not pdir.exists:
            return found
        if lock is None:
            data = _read_lock_bytes(pdir, dir_)
            lock = Lockfile() if data is None else parse_lockfile(data, dir_)
        found += pdir.find_parts()
        if pdir.lstat(JOURNAL) is not None:
            found.append(JOURNAL)
        installed = {entry.release_dir for entry in lock.plugins.values()}
        for name in pdir.listdir():
            if not is_safe_name(name):
                continue
            versions = pdir.list_child(name)  # None: not a directory (a link is never followed)
            if versions is None:
                continue
            for version in sorted(versions):
                rel = f"{name}/{version}"
                if rel not in installed:
                    found.append(rel + "/")
                elif rel in listed:
                    found += listed[rel]
                elif (sub := pdir.lstat(rel)) is not None and stat.S_ISDIR(sub.st_mode):
                    found += pdir.find_parts(rel)
    return found


def locked_entry(dir_: Path, name: str, lock: Lockfile | None = None) -> LockedPlugin:
    check_name(name)
    entry = (lock if lock is not None else read_lockfile(dir_)).plugins.get(name)
    if entry is None:
        raise NotInstalledError(
            f"{name} is not installed in {dir_}", fix=f"install it: registry-tool client install {name}"
        )
    return entry
