"""The plugin directory: resolution, approval, atomic install, lock, lockfile, offline verify.

Layout of a plugin directory::

    registry-tool.lock                       the lockfile (generated, sorted TOML)
    .registry-tool.lck                       the file lock serialising writers
    <name>/<version>/plugin.toml (+ sigs)    the signed manifest, as served
    <name>/<version>/<file>.wasm             the verified module

Crash safety: every file is written to a temporary ``.part-*`` file in the plugin
directory, fsynced, re-hashed from disk, then renamed into place; the lockfile is
replaced last, and it is the commit point.  Files of a version are immutable, so until
the lockfile is replaced it still names the old, complete files, and after it names the
new, complete ones.  Old versions are deleted only after the commit.  Stale ``.part-*``
files of a killed process are removed by the next writer.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tomllib
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from filelock import FileLock, Timeout

from registry_tool.client.errors import (
    ApprovalRequiredError,
    InstalledFileTamperedError,
    LockfileError,
    NotInstalledError,
    PermissionEscalationError,
    UnsafeNameError,
)
from registry_tool.client.trust_state import ManifestFacts
from registry_tool.errors import CheckFailed, Location, UsageError
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

LOCKFILE = "registry-tool.lock"
LOCKFILE_VERSION = 1
LOCK = ".registry-tool.lck"
PART_PREFIX = ".part-"
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


# --------------------------------------------------------------------------- lockfile


@dataclass(frozen=True)
class LockedPlugin:
    """One lockfile entry: everything needed to re-check the installed files offline."""

    name: str
    version: str
    registry: str
    requested: str
    abi: str
    manifest: str  # path relative to the plugin directory
    manifest_sha256: str
    wasm: str
    wasm_sha256: str
    wasm_size: int
    signers: tuple[str, ...]
    permissions: tuple[str, ...]
    published_at: str = ""  # from registry.json; judges signatures by keys revoked later

    @property
    def release_dir(self) -> str:
        return f"{self.name}/{self.version}"

    def to_toml(self) -> dict[str, Any]:
        # Fixed key order, one key per line: diffs show exactly what changed.
        return {
            "name": self.name,
            "version": self.version,
            "requested": self.requested,
            "registry": self.registry,
            "abi": self.abi,
            "manifest": self.manifest,
            "manifest_sha256": self.manifest_sha256,
            "wasm": self.wasm,
            "wasm_sha256": self.wasm_sha256,
            "wasm_size": self.wasm_size,
            "signers": sorted(self.signers),
            "permissions": sorted(self.permissions),
            "published_at": self.published_at,
        }


@dataclass
class Lockfile:
    plugins: dict[str, LockedPlugin] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        doc = tomlkit.document()
        doc.add(tomlkit.comment("This file is generated by registry-tool; do not edit it by hand."))
        doc.add(
            tomlkit.comment("It pins each installed plugin to the exact signed bytes that were verified.")
        )
        doc.add("version", LOCKFILE_VERSION)
        entries = tomlkit.aot()
        for name in sorted(self.plugins):
            entries.append(tomlkit.item(self.plugins[name].to_toml()))
        if self.plugins:
            doc.add("plugin", entries)
        return tomlkit.dumps(doc).encode("utf-8")


def _lock_error(what: str, dir_: Path, field_: str | None = None) -> LockfileError:
    return LockfileError(
        what,
        where=Location(file=str(dir_ / LOCKFILE), field=field_),
        fix="restore the lockfile from version control, or remove the plugin and install it again",
    )


def _safe_relpath(value: Any, dir_: Path, field_: str, name: str) -> str:
    """Lockfile paths must stay inside ``<name>/<version>/``: the lockfile is not trusted blindly."""
    parts = value.split("/") if isinstance(value, str) else []
    if len(parts) != 3 or not _is_file_name(parts[2]):
        raise _lock_error(f"{name}: {field_} path {value!r} is not <name>/<version>/<file>", dir_, field_)
    return str(value)


def read_lockfile(dir_: Path) -> Lockfile:
    path = dir_ / LOCKFILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Lockfile()
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise _lock_error(f"lockfile is not valid TOML: {err}", dir_) from None
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise _lock_error("lockfile is not valid TOML: nested too deeply", dir_) from None
    if raw.get("version") != LOCKFILE_VERSION:
        raise _lock_error(f"lockfile version {raw.get('version')!r} is not supported", dir_, "version")
    plugins: dict[str, LockedPlugin] = {}
    for i, item in enumerate(raw.get("plugin", [])):
        try:
            entry = LockedPlugin(
                name=check_name(str(item["name"])),
                version=str(item["version"]),
                registry=str(item["registry"]),
                requested=str(item.get("requested", "")),
                abi=str(item["abi"]),
                manifest=str(item["manifest"]),
                manifest_sha256=str(item["manifest_sha256"]),
                wasm=str(item["wasm"]),
                wasm_sha256=str(item["wasm_sha256"]),
                wasm_size=int(item["wasm_size"]),
                signers=tuple(str(s) for s in item["signers"]),
                permissions=tuple(str(p) for p in item["permissions"]),
                published_at=str(item.get("published_at", "")),
            )
        except (KeyError, TypeError, ValueError, UsageError) as err:
            raise _lock_error(
                f"plugin entry {i + 1} is incomplete or invalid: {err}", dir_, "plugin"
            ) from None
        if not is_safe_version(entry.version):
            raise _lock_error(f"{entry.name}: version {entry.version!r} is not semver", dir_, "version")
        for field_ in ("manifest", "wasm"):
            rel = _safe_relpath(getattr(entry, field_), dir_, field_, entry.name)
            if not rel.startswith(entry.release_dir + "/"):
                raise _lock_error(f"{entry.name}: {field_} is outside {entry.release_dir}/", dir_, field_)
        if entry.name in plugins:
            raise _lock_error(f"{entry.name} is listed twice", dir_, "plugin")
        plugins[entry.name] = entry
    return Lockfile(plugins)


# --------------------------------------------------------------------------- atomic files


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(dir_: Path, relpath: str, data: bytes) -> Path:
    """Write ``data`` to ``dir_/relpath`` so readers see the old file or the new one, never half.

    The temporary file lives in ``dir_`` (same filesystem, so the rename is atomic); its bytes
    are read back and compared before the rename, so what lands is what was verified.
    """
    target = dir_ / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = dir_ / f"{PART_PREFIX}{uuid.uuid4().hex}"
    try:
        with tmp.open("xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if tmp.read_bytes() != data:
            raise InstalledFileTamperedError(
                f"{tmp} does not hold the bytes just written", fix="check the disk and retry"
            )
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(target.parent)
    return target


def remove_stale_parts(dir_: Path) -> list[Path]:
    """Delete temporary files left by a killed install (call with the lock held)."""
    stale = sorted(dir_.glob(f"{PART_PREFIX}*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


@contextmanager
def plugin_dir_lock(dir_: Path, timeout: float = 300.0) -> Iterator[None]:
    """Serialise writers of one plugin directory across processes."""
    dir_.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(dir_ / LOCK), timeout=timeout)
    try:
        with lock:
            remove_stale_parts(dir_)
            yield
    except Timeout:
        raise UsageError(
            f"another registry-tool process has held the lock on {dir_} for more than {timeout:g} s",
            where=str(dir_ / LOCK),
            fix="wait for it to finish; if no such process exists, delete the lock file",
        ) from None


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


def commit_install(
    dir_: Path,
    verified: VerifiedRelease,
    *,
    requested: str,
    permissions: tuple[str, ...],
) -> LockedPlugin:
    """Write a verified release into ``dir_`` and record it in the lockfile (caller holds the lock)."""
    release = verified.release
    check_name(release.name)
    if not is_safe_version(release.version):
        raise UnsafeNameError(f"version {release.version!r} is not strict semver", fix="report this registry")
    base = f"{release.name}/{release.version}"
    # Every name is checked before anything is written: a refusal leaves the directory untouched.
    wasm_name = verified.wasm_filename
    # Compared case-insensitively: on macOS/Windows "Plugin.toml" is the manifest's file.
    if not _is_file_name(wasm_name) or _RESERVED_RE.fullmatch(wasm_name):
        raise UnsafeNameError(f"artifact file name {wasm_name!r} is not allowed", fix="report this registry")
    for sig_name in verified.signatures:
        if not _SIG_RE.fullmatch(sig_name):
            raise UnsafeNameError(f"unexpected signature file name {sig_name!r}", fix="report this bug")
    for sig_name, sig in sorted(verified.signatures.items()):
        atomic_write(dir_, f"{base}/{sig_name}", sig)
    atomic_write(dir_, f"{base}/plugin.toml", verified.manifest_bytes)
    atomic_write(dir_, f"{base}/{verified.wasm_filename}", verified.wasm_bytes)
    entry = LockedPlugin(
        name=release.name,
        version=release.version,
        registry=verified.registry_url,
        requested=requested,
        abi=release.abi,
        manifest=f"{base}/plugin.toml",
        manifest_sha256=hashlib.sha256(verified.manifest_bytes).hexdigest(),
        wasm=f"{base}/{verified.wasm_filename}",
        wasm_sha256=hashlib.sha256(verified.wasm_bytes).hexdigest(),
        wasm_size=len(verified.wasm_bytes),
        signers=tuple(sorted(verified.signers)),
        permissions=permissions,
        published_at=release.published_at,
    )
    lock = read_lockfile(dir_)
    previous = lock.plugins.get(release.name)
    lock.plugins[release.name] = entry
    atomic_write(dir_, LOCKFILE, lock.to_bytes())  # the commit point
    if previous is not None and previous.version != entry.version:
        _remove_release_dir(dir_, previous)
    return entry


def _remove_release_dir(dir_: Path, entry: LockedPlugin) -> None:
    shutil.rmtree(dir_ / entry.name / entry.version, ignore_errors=True)
    plugin_dir = dir_ / entry.name
    if plugin_dir.is_dir() and not any(plugin_dir.iterdir()):
        plugin_dir.rmdir()


def remove_plugin(dir_: Path, name: str) -> LockedPlugin:
    """Drop ``name`` from the lockfile (the commit point), then delete its files."""
    check_name(name)
    with plugin_dir_lock(dir_):
        lock = read_lockfile(dir_)
        entry = lock.plugins.pop(name, None)
        if entry is None:
            raise NotInstalledError(
                f"{name} is not installed in {dir_}", fix="see `registry-tool client list`"
            )
        atomic_write(dir_, LOCKFILE, lock.to_bytes())
        _remove_release_dir(dir_, entry)
    return entry


# --------------------------------------------------------------------------- offline verification


def _tampered(entry: LockedPlugin, dir_: Path, what: str, path: str) -> InstalledFileTamperedError:
    return InstalledFileTamperedError(
        f"{entry.name} {entry.version}: {what}",
        where=str(dir_ / path),
        fix=f"reinstall it: registry-tool client install {entry.name}@{entry.version} --locked",
    )


def verify_entry(dir_: Path, entry: LockedPlugin) -> bytes:
    """Re-check one installed plugin against its lockfile entry; return the verified wasm bytes."""
    return verify_entry_files(dir_, entry)[1]


def verify_entry_files(dir_: Path, entry: LockedPlugin) -> tuple[bytes, bytes, ManifestFacts]:
    """``verify_entry``, returning (manifest bytes, wasm bytes, the manifest's parsed facts)."""
    try:
        manifest = (dir_ / entry.manifest).read_bytes()
        wasm = (dir_ / entry.wasm).read_bytes()
    except FileNotFoundError as err:
        raise _tampered(entry, dir_, "an installed file is missing", str(err.filename)) from None
    if hashlib.sha256(manifest).hexdigest() != entry.manifest_sha256:
        raise _tampered(entry, dir_, "plugin.toml differs from the lockfile's sha256", entry.manifest)
    digest = hashlib.sha256(wasm).hexdigest()
    if digest != entry.wasm_sha256 or len(wasm) != entry.wasm_size:
        raise _tampered(entry, dir_, "the wasm module differs from the lockfile's sha256/size", entry.wasm)
    try:
        facts = ManifestFacts.parse(manifest, where=entry.manifest)
    except CheckFailed as err:
        raise _tampered(entry, dir_, err.what, entry.manifest) from None
    if (facts.name, facts.version, facts.artifact_sha256) != (entry.name, entry.version, digest):
        raise _tampered(entry, dir_, "plugin.toml does not describe the installed module", entry.manifest)
    return manifest, wasm, facts


def installed_signatures(dir_: Path, entry: LockedPlugin) -> list[str]:
    folder = dir_ / entry.release_dir
    # What glob("plugin.toml*.minisig") matches, from one listing (pathlib's glob cost a quarter of
    # `client verify`).
    with os.scandir(folder) as entries:
        names = sorted(
            e.name for e in entries if e.name.startswith("plugin.toml") and e.name.endswith(".minisig")
        )
    return [(folder / n).read_text(encoding="utf-8", errors="replace") for n in names]


def locked_entry(dir_: Path, name: str) -> LockedPlugin:
    check_name(name)
    entry = read_lockfile(dir_).plugins.get(name)
    if entry is None:
        raise NotInstalledError(
            f"{name} is not installed in {dir_}", fix=f"install it: registry-tool client install {name}"
        )
    return entry
