"""The plugin directory: resolution, approval, atomic install, lock, lockfile, offline verify.

Layout of a plugin directory::

    registry-tool.lock.json                  the lockfile (version 3, JSON Lines; docs/client.md)
    .registry-tool.lck                       the file lock serialising writers (flock)
    .registry-tool.cleanup.json              present only while a writer runs (or was killed)
    <name>/<version>/plugin.toml (+ sigs)    the signed manifest, as served
    <name>/<version>/<file>.wasm             the verified module

Crash safety: every release file is written to a temporary ``.part-*`` file in its own folder,
fsynced, read back, then renamed into place; the lockfile's change line is appended and fsynced
last (or a new base renamed into place), and that is the commit point.  Files of a version are
immutable, so until the commit the lockfile still names the old, complete files, and after it
the new, complete ones; an unfinished line is ignored by readers and cut off by the next writer.
Before the first write a cleanup journal lists the old and the new files; whoever takes the lock
next deletes the listed files the (folded) lockfile does not name, so a kill at any moment
leaves nothing behind for good.  No operation follows a symbolic link below the plugin directory
(``plugin_fs``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import operator
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from registry_tool._files import FileTooLargeError, MiB, UnreadableFileError, UnsafePathError
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
from registry_tool.client.trust_state import ManifestFacts, ManifestIdentity, lock_facts
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
from registry_tool.format.errors import DocumentError
from registry_tool.format.ranges import RangeSyntaxError, check_range
from registry_tool.format.rules import (
    KEY_ID_RE,
    PERMISSION_RE,
    PLUGIN_NAME_RE,
    SHA256_RE,
    TIME_RE,
    is_reserved_name,
    parse_time_strict,
)
from registry_tool.format.strictjson import load_strict
from registry_tool.resolve import Dependency, Installed
from registry_tool.signing.minisign import MAX_SIGNATURE_FILE

LOCKFILE = "registry-tool.lock.json"
LEGACY_LOCKFILE = "registry-tool.lock"  # version 1 (TOML): refused with a "reinstall" message
LOCKFILE_VERSION = 3  # version 2 (one pretty-printed document) is still read, never appended to
# A new base is written instead of a change line once the file holds max(64, entries) change lines,
# or once its change lines (with the new one) would outweigh max(the base line, 64 KiB): a commit
# touching most entries writes a line as large as a base, so counting lines alone would let the
# file grow to entries x the base (and past its 64 MiB cap).
MIN_CHANGE_LINES = 64
MIN_CHANGE_BYTES = 64 * 1024
LOCK = ".registry-tool.lck"
JOURNAL = ".registry-tool.cleanup.json"
# Fixed names of the root's temporary files (a new base of the lockfile, the journal): a killed
# writer's leftover is removed by name, without listing the root (a folder of every plugin).
_LOCKFILE_TMP = PART_PREFIX + LOCKFILE
_JOURNAL_TMP = PART_PREFIX + JOURNAL
# ``requested`` of an entry installed only because other plugins need it.  Not a range, so it can
# never be a requirement someone typed; ``""`` stays a plain ``NAME`` (any version) as the shared
# lockfile format has always recorded it, so a lockfile from another implementation or an older
# client never marks a plugin the user asked for as removable.
DEPENDENCY_ONLY = "(dependency)"
# About 1 KiB per plugin: room for tens of thousands, and a bound for a hostile file.
MAX_LOCKFILE_SIZE = 64 * MiB
# Every name check here is a fullmatch: with re.match, "$" also matches before a final newline.
_SIG_RE = re.compile(r"plugin\.toml(\.[0-9A-F]{16})?\.minisig")


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
    registry: str | None = None,
) -> None:
    """Approve the permissions of every release a plan fetches, asking once for their union.

    A release's permission is granted when passed in ``allow`` or already granted to its installed
    version (the second element) from the same ``registry`` (a same-named plugin of another
    registry is another publisher's: its grant does not carry over); what is left is asked for once
    through ``prompt`` (given the first release that needs something, and the union).  Refused:
    nothing is installed, and the error names which release needs what, so a dependency cannot
    smuggle in a permission.
    """
    granted = set(allow)
    missing: list[tuple[Release, frozenset[str], bool]] = []
    for release, current in releases:
        same = current is not None and (registry is None or current.registry == registry)
        already = set(current.permissions) if current is not None and same else set()
        need = frozenset(release.permissions) - granted - already
        if need:
            missing.append((release, need, same))
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


# --------------------------------------------------------------------------- lockfile (version 3)

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
    def line_bytes(self) -> bytes:
        """The entry's member of a lockfile line's ``plugins`` object, canonical (``name:ENTRY``).

        Built once per entry object (entries are immutable), so a new base costs one join.
        """
        return f"{_enc(self.name)}:{_dumps(self.lock_json())}".encode()

    def to_json(self) -> dict[str, Any]:
        """The entry with its name, for command output."""
        return {"name": self.name, **self.lock_json()}

    to_toml = to_json  # the name older hosts call


@dataclass
class Lockfile:
    """The lockfile's state (the installed plugins by name) and where its file stands.

    Version 3 (docs/client.md): JSON Lines, a base line with the whole state, then one change
    line per commit with only the entries it added, replaced (``required_by`` included) or
    removed (``null``).  The fields after ``plugins`` describe the file the state was read from
    (or written to); they are not part of the state.
    """

    plugins: dict[str, LockedPlugin] = field(default_factory=dict)
    # Whether every entry's ``required_by`` is known to be derived from the entries' dependencies
    # (written by this client in this process).  A lockfile read from disk may come from another
    # implementation, so the first write derives every entry again; later writes only the
    # entries whose edges changed.  Not part of the file.
    derived: bool = field(default=False, compare=False)
    version: int | None = field(default=None, compare=False)  # of the file: None (absent), 2 or 3
    data: bytes = field(default=b"", compare=False, repr=False)  # the committed bytes (to the last "\n")
    changes: int = field(default=0, compare=False)  # change lines after the base
    tail: int = field(default=0, compare=False)  # bytes of an unfinished write after ``data``
    _users: dict[str, set[str]] | None = field(default=None, compare=False, repr=False)

    def users(self) -> dict[str, set[str]]:
        """Name -> the installed plugins whose recorded dependencies name it (built once, kept up to date)."""
        if self._users is None:
            users: dict[str, set[str]] = {}
            for entry in self.plugins.values():
                for dep in entry.dependencies:
                    users.setdefault(dep, set()).add(entry.name)
            self._users = users
        return self._users

    def apply(self, delta: Mapping[str, LockedPlugin | None]) -> None:
        """Add, replace (an entry) or remove (``None``) the entries of one commit, in place."""
        users, plugins = self._users, self.plugins
        for name, new in delta.items():
            old = plugins.pop(name, None)
            if users is not None:
                for dep in old.dependencies if old is not None else ():
                    owners = users.get(dep)
                    if owners is not None:
                        owners.discard(name)
                        if not owners:
                            del users[dep]
                for dep in new.dependencies if new is not None else ():
                    users.setdefault(dep, set()).add(name)
            if new is not None:
                plugins[name] = new

    def snapshot(self) -> Lockfile:
        """A copy whose ``plugins`` later commits in this process do not change (for readers)."""
        return Lockfile(dict(self.plugins), self.derived, self.version, self.data, self.changes, self.tail)

    def to_bytes(self) -> bytes:
        """The state as a version 3 base line (the canonical form; a test compares it with ``json.dumps``)."""
        plugins = self.plugins
        # C-level loops over each entry's cached text: no Python frame per entry.
        body = b",".join(map(_LINE_BYTES, map(plugins.__getitem__, sorted(plugins))))
        return b'{"lockfile_version":%d,"plugins":{%s}}\n' % (LOCKFILE_VERSION, body)


_LINE_BYTES = operator.attrgetter("line_bytes")
_enc = json.encoder.encode_basestring_ascii  # what json.dumps uses for str (ensure_ascii)
# Exactly json.dumps(obj, sort_keys=True, separators=(",", ":")): the C encoder (no indent).
_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode


def change_line(delta: Mapping[str, LockedPlugin | None]) -> bytes:
    """One commit as a version 3 change line: ``{"plugins": {name: ENTRY or null}}`` (canonical)."""
    body = b",".join(
        delta[n].line_bytes if delta[n] is not None else b"%s:null" % _enc(n).encode()  # type: ignore[union-attr]
        for n in sorted(delta)
    )
    return b'{"plugins":{%s}}\n' % body


def _lock_error(what: str, dir_: Path, field_: str | None = None, line: int | None = None) -> LockfileError:
    return LockfileError(
        what,
        where=Location(file=str(dir_ / LOCKFILE), line=line, field=field_),
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
        if (
            not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2**53
        ):  # decision 7: within ±2^53
            raise self.fail(key, f"must be a non-negative integer, not {value!r}"[:200])
        return value

    def strs(self, key: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
        value = self.raw.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) and pattern.fullmatch(v) for v in value):
            raise self.fail(key, "must be a list of valid strings")
        if len(set(value)) != len(value):
            raise self.fail(key, "lists a string twice")
        return tuple(value)

    def path(self, key: str, value: Any, prefix: str) -> str:
        """``value`` must be ``prefix`` (``<name>/<version>/``) followed by a plain file name."""
        if not (isinstance(value, str) and value.startswith(prefix) and _is_file_name(value[len(prefix) :])):
            raise self.fail(key, f"path {value!r} is not {prefix}<file name>"[:300])
        return value


def _registry(e: _Entry) -> str:
    """The entry's ``registry``: a URL ``normalise_url`` accepts (update, --locked and verify use it)."""
    from registry_tool.client.store import USERINFO_PROBLEM

    url = e.str_("registry")
    problem = _registry_problem(url)
    if problem is not None:
        error = _lock_error(f"{e.name}: {problem}"[:300], e.dir, f"plugins.{e.name}.registry")
        if USERINFO_PROBLEM in problem:  # written by an older client: the lockfile is not damaged
            error.fix = (
                f"set plugins.{e.name}.registry to the URL without `user:password@` (credentials go in "
                "~/.netrc), run `registry-tool client trust` for that URL, and delete the trust state "
                "files in the state directory that still hold the credentials"
            )
        raise error
    return url


@functools.lru_cache(maxsize=64)  # a lockfile names one or a few registries, over every entry
def _registry_problem(url: str) -> str | None:
    from registry_tool.client.store import normalise_url

    try:
        normalise_url(url)
    except UsageError as err:
        return err.what
    return None


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
    if is_reserved_name(wasm.rsplit("/", 1)[1]):
        raise e.fail("wasm", "names the manifest or a signature file")
    sigs = raw["signatures"]
    if not isinstance(sigs, list):
        raise e.fail("signatures", "must be a list of paths")
    signatures = tuple(e.path("signatures", s, base) for s in sigs)
    if len(set(signatures)) != len(signatures):
        # Each listed file is read and checked again: 100,000 copies of one path took 25 s.
        raise e.fail("signatures", "lists a file twice")
    if not all(_SIG_RE.fullmatch(s.rsplit("/", 1)[1]) for s in signatures):
        raise e.fail("signatures", "may only name plugin.toml[.KEYID].minisig files")
    deps = raw["dependencies"]
    if not isinstance(deps, dict) or not all(is_safe_name(k) and isinstance(v, str) for k, v in deps.items()):
        raise e.fail("dependencies", "must map plugin names to version ranges")
    published_at = e.str_("published_at", TIME_RE)
    if parse_time_strict(published_at) is None:  # 2026-02-30, T24:00:00, year 0000 (decision 7)
        raise e.fail("published_at", "is no time in the calendar")
    requested = e.str_("requested")
    if requested not in ("", DEPENDENCY_ONLY):
        # update resolves by it: a bad one was "version range '@@bad' is not valid", naming no file
        try:
            check_range(requested)
        except RangeSyntaxError:
            raise e.fail("requested", "is no version range") from None
    return LockedPlugin(
        name=name,
        version=version,
        registry=_registry(e),
        requested=requested,
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
        published_at=published_at,
        dependencies=dict(deps),
        required_by=e.strs("required_by", PLUGIN_NAME_RE),
    )


def _json_reason(err: ValueError) -> str:
    """The parser's reason alone (it says "not valid JSON: ..." itself)."""
    return str(err).removeprefix("not valid JSON: ")


# The lockfile parsed last per plugin directory in this process, with the exact bytes it was
# folded from.  A later read whose bytes start with exactly those bytes (compared) folds only the
# complete lines after them (a host; install after install), so a command's cost does not grow
# with the plugins installed.  Writers of this process update it after their commit point.  The
# lock guards the shared states against threads of one host.
_PARSED: dict[str, Lockfile] = {}
_PARSED_DIRS = 16
_PARSE_LOCK = threading.Lock()


def _remember(dir_: Path, lock: Lockfile) -> None:
    key = str(dir_)
    _PARSED.pop(key, None)
    if len(_PARSED) >= _PARSED_DIRS:
        _PARSED.pop(next(iter(_PARSED)))
    _PARSED[key] = lock


def forget_parsed() -> None:
    """Drop this process's reused lockfile parses (the next read of each parses the whole file)."""
    with _PARSE_LOCK:
        _PARSED.clear()


def _version_error(version: Any, dir_: Path) -> LockfileError:
    return _lock_error(
        f"lockfile_version {version!r} is not supported (this client reads versions 2 and 3)"[:300],
        dir_,
        "lockfile_version",
    )


def _is_int(value: Any, wanted: int) -> bool:
    return value == wanted and isinstance(value, int) and not isinstance(value, bool)


def _parse_plugins(raw: Any, dir_: Path, line: int | None) -> dict[str, LockedPlugin]:
    if not isinstance(raw, dict):
        raise _lock_error("the lockfile's plugins must be an object", dir_, "plugins", line)
    return {name: _parse_entry(name, entry, dir_) for name, entry in raw.items()}


def _fold_changes(
    data: bytes, start: int, end: int, dir_: Path, state: Mapping[str, LockedPlugin], first_line: int
) -> tuple[dict[str, LockedPlugin | None], int]:
    """The change lines in ``data[start:end]`` (complete lines) folded into one delta over ``state``.

    Every line is checked before anything is applied, so a refusal leaves ``state`` as it was.
    Returns the delta and the number of lines.
    """
    delta: dict[str, LockedPlugin | None] = {}
    count = 0
    for count, line in enumerate(data[start:end].split(b"\n")[:-1], start=1):
        number = first_line + count - 1
        try:
            raw = parse_json_strict(line)
        except ValueError as err:
            what = f"line {number} of the lockfile is not valid JSON: {_json_reason(err)}"[:300]
            raise _lock_error(what, dir_, None, number) from None
        if not isinstance(raw, dict) or set(raw) != {"plugins"}:
            raise _lock_error(
                f"line {number} of the lockfile (a change line) must be an object holding exactly plugins",
                dir_,
                None,
                number,
            )
        changed = raw["plugins"]
        if not isinstance(changed, dict) or not changed:
            raise _lock_error(
                f"line {number} of the lockfile: plugins must be a non-empty object", dir_, "plugins", number
            )
        for name, value in changed.items():
            if value is None:
                present = delta[name] if name in delta else state.get(name)
                if present is None:
                    raise _lock_error(
                        f"line {number} of the lockfile removes {name!r}, which it does not hold"[:300],
                        dir_,
                        f"plugins.{name}"[:200],
                        number,
                    )
                delta[name] = None
            else:
                delta[name] = _parse_entry(name, value, dir_)
    return delta, count


def _parse_full(data: bytes, dir_: Path) -> Lockfile:
    """Parse a whole lockfile: version 3 (folded) or version 2 (one document)."""
    end = data.rfind(b"\n") + 1
    first = data.find(b"\n")
    head: Any = None
    head_error: ValueError | None = None
    if first >= 0:
        try:
            head = parse_json_strict(data[:first])
        except ValueError as err:
            head_error = err
    if (
        first < 0
        or head_error is not None
        or (
            isinstance(head, dict)
            and _is_int(head.get("lockfile_version"), 2)
            and not data[first + 1 :].strip()
        )
    ):
        # One document (version 2, pretty-printed over many lines), or no complete line.
        try:
            doc = parse_json_strict(data)
        except ValueError as err:
            reason = _json_reason(head_error or err)
            raise _lock_error(f"the lockfile is not valid JSON: {reason}"[:300], dir_) from None
        if not isinstance(doc, dict):
            raise _lock_error("the lockfile must be a JSON object", dir_)
        version = doc.get("lockfile_version")
        if not _is_int(version, 2):
            if _is_int(version, LOCKFILE_VERSION):
                raise _lock_error("the lockfile holds no complete line (each ends with a newline)", dir_)
            raise _version_error(version, dir_)
        if set(doc) != {"lockfile_version", "plugins"}:
            raise _lock_error("the lockfile must hold exactly lockfile_version and a plugins object", dir_)
        return Lockfile(_parse_plugins(doc["plugins"], dir_, None), version=2, data=data)
    if not isinstance(head, dict):
        raise _lock_error("line 1 of the lockfile (the base) must be a JSON object", dir_, None, 1)
    if not _is_int(head.get("lockfile_version"), LOCKFILE_VERSION):
        raise _version_error(head.get("lockfile_version"), dir_)
    if set(head) != {"lockfile_version", "plugins"}:
        raise _lock_error("line 1 (the base) must hold exactly lockfile_version and plugins", dir_, line=1)
    lock = Lockfile(_parse_plugins(head["plugins"], dir_, 1), version=LOCKFILE_VERSION)
    delta, count = _fold_changes(data, first + 1, end, dir_, lock.plugins, 2)
    lock.apply(delta)
    lock.data, lock.changes, lock.tail = data[:end], count, len(data) - end
    return lock


def _shared(data: bytes, dir_: Path) -> Lockfile:
    """The state of lockfile bytes ``data``, reusing this process's earlier parse by byte prefix.

    The result is the process's shared state of ``dir_`` (writers update it in place after their
    commit point); call with ``_PARSE_LOCK`` held.
    """
    cached = _PARSED.get(str(dir_))
    if cached is not None and cached.version is not None:
        if cached.version == LOCKFILE_VERSION and data.startswith(cached.data):
            end = data.rfind(b"\n") + 1
            if end > len(cached.data):
                # Lines another writer committed since: fold them (all checked before any applies).
                delta, count = _fold_changes(
                    data, len(cached.data), end, dir_, cached.plugins, cached.changes + 2
                )
                cached.apply(delta)
                cached.data, cached.changes = data[:end], cached.changes + count
                cached.derived = False  # their required_by may come from another implementation
            cached.tail = len(data) - len(cached.data)
            return cached
        if data == cached.data:
            return cached
    lock = _parse_full(data, dir_)
    _remember(dir_, lock)
    return lock


def parse_lockfile(data: bytes, dir_: Path) -> Lockfile:
    """Parse lockfile bytes (version 3, or version 2); every problem is a ``LockfileError``, never a crash.

    Bytes that start with the bytes parsed (or written) last for ``dir_`` in this process are
    not validated again: only the complete lines after them are.  Returns a snapshot.
    """
    with _PARSE_LOCK:
        return _shared(data, dir_).snapshot()


def _read_lock_bytes(pdir: PluginDir, dir_: Path) -> bytes | None:
    try:
        data = pdir.read(LOCKFILE, MAX_LOCKFILE_SIZE, "lockfile")
    except FileTooLargeError as err:
        raise _lock_error(err.what, dir_) from None
    if data is None and pdir.lstat(LEGACY_LOCKFILE) is not None:
        raise LockfileError(
            f"{dir_} holds a version 1 lockfile ({LEGACY_LOCKFILE}), which this client no longer reads",
            where=str(dir_ / LEGACY_LOCKFILE),
            fix=f"reinstall the plugins: note them from {LEGACY_LOCKFILE}, delete it and the plugin folders, "
            "then run `registry-tool client install NAME...` again",
        )
    return data


def read_lockfile(dir_: Path) -> Lockfile:
    """The folded lockfile of ``dir_`` (empty when there is none), as a snapshot."""
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
    data = (json.dumps(doc, sort_keys=True) + "\n").encode("utf-8")
    pdir.write_atomic(JOURNAL, data, durable=False, tmp_name=_JOURNAL_TMP)


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

    The temporary files of the lockfile's new base and of the journal have fixed names, so an
    ordinary session looks them up by name instead of listing a root folder of every plugin.
    With a journal left (a writer was killed mid-commit): the root's other ``.part-*`` files,
    and the files the journal names that the (folded) lockfile does not reference (the old
    version after a committed update, the new one after an interrupted one).  Only paths the
    journal lists are touched.
    """
    leftover = [tmp for tmp in (_LOCKFILE_TMP, _JOURNAL_TMP) if pdir.lstat(tmp) is not None]
    removed = [tmp for tmp in leftover if pdir.unlink(tmp)]
    if pdir.lstat(JOURNAL) is not None:
        removed += pdir.remove_parts()
        paths = _journal_paths(pdir)
        if paths:
            removed += _remove_files(pdir, paths, _referenced(lock, paths))
        pdir.unlink(JOURNAL)
    return removed


@contextmanager
def plugin_dir_lock(dir_: Path, timeout: float = 300.0) -> Iterator[DirSession]:
    """Serialise writers of one plugin directory across processes; read the lockfile once."""
    with PluginDir(dir_, create=True) as pdir, pdir.locked(LOCK, timeout):
        data = _read_lock_bytes(pdir, dir_)
        if data is None:
            lock = Lockfile()
        else:
            with _PARSE_LOCK:
                lock = _shared(data, dir_)
        recover(pdir, dir_, lock)
        yield DirSession(dir_, pdir, lock)


def _commit(session: DirSession, delta: Mapping[str, LockedPlugin | None]) -> None:
    """Record one commit: a change line appended (the usual case) or a new base; then the state.

    ``delta`` holds every entry added or replaced and ``None`` for every entry removed, with
    the ``required_by`` changes already derived.  Entries equal to the current ones are left
    out; nothing left: nothing is written.  The append's fsync (or the new base's rename) is the
    commit point; ``session.lock`` changes only after it, so a failure leaves it as it was.
    """
    lock, pdir = session.lock, session.fs
    key = str(session.path)
    # Reader threads of this process fold lines into ``lock`` in place: everything this commit
    # decides from is taken under their lock, and the whole state is copied only for a new base
    # (an append costs what it changed).
    with _PARSE_LOCK:
        plugins = lock.plugins
        before, changes_before, version_before = lock.data, lock.changes, lock.version
        delta = {n: e for n, e in delta.items() if plugins.get(n) != e}
        if not delta:
            return
        entries = len(plugins) + sum((e is not None) - (n in plugins) for n, e in delta.items())
        base_len = before.find(b"\n") + 1
        line = change_line(delta)
        state = (
            Lockfile(dict(plugins))
            if (
                version_before != LOCKFILE_VERSION
                or changes_before >= max(MIN_CHANGE_LINES, entries)
                or len(before) - base_len + len(line) > max(base_len, MIN_CHANGE_BYTES)
            )
            else None
        )
    try:
        # Also cuts an unfinished tail; a lockfile with other hard links gets a new base instead.
        if state is None and pdir.append_durable(LOCKFILE, line, keep=len(before)):
            data, changes = before + line, changes_before + 1
        else:
            # A new base: the whole state as one line, written atomically as version 2 files were.
            state = state if state is not None else Lockfile(dict(plugins))
            state.apply(delta)
            data = state.to_bytes()
            pdir.write_atomic(LOCKFILE, data, read_back=False, tmp_name=_LOCKFILE_TMP)
            changes = 0
    except BaseException:
        with _PARSE_LOCK:  # the file's state is unknown after a failed write: parse it again next time
            if _PARSED.get(key) is lock:
                del _PARSED[key]
        raise
    with _PARSE_LOCK:
        moved = lock.data is not before  # a reader thread folded lines into ``lock`` meanwhile
        lock.apply(delta)  # idempotent: that reader may have folded this very line already
        if moved and lock.data != data:
            # It folded something this commit did not write (a writer that ignored the lock):
            # this process's parse no longer matches the file; the next read parses it all.
            if _PARSED.get(key) is lock:
                del _PARSED[key]
            lock.derived = True
            return
        lock.version, lock.data, lock.changes, lock.tail = LOCKFILE_VERSION, data, changes, 0
        lock.derived = True
        _remember(session.path, lock)


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
    if not _is_file_name(wasm_name) or is_reserved_name(wasm_name):
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


def _derive(lock: Lockfile, delta: dict[str, LockedPlugin | None]) -> dict[str, LockedPlugin | None]:
    """``delta`` plus every other entry whose ``required_by`` it changes (one rule: derived from the edges).

    ``required_by`` is read from the reverse index of the recorded dependencies (``Lockfile.users``),
    adjusted by the delta, so the cost is O(changed entries), not O(installed plugins).  A lockfile
    not known to be derived (read from disk: another implementation may have written it) is
    derived in full on its first write.
    """
    plugins, users = lock.plugins, lock.users()
    touched: set[str] = set()
    for name, new in delta.items():
        touched.add(name)
        for entry in (plugins.get(name), new):
            if entry is not None:
                touched.update(entry.dependencies)
    if not lock.derived:
        touched.update(plugins)
    out = dict(delta)
    for name in touched:
        entry = delta[name] if name in delta else plugins.get(name)
        if entry is None:
            continue
        owners = {o for o in users.get(name, ()) if o not in delta}
        owners.update(o for o, e in delta.items() if e is not None and name in e.dependencies)
        wanted = tuple(sorted(owners))
        if entry.required_by != wanted:
            out[name] = dataclasses.replace(entry, required_by=wanted)
    return out


def with_required_by(
    plugins: dict[str, LockedPlugin], changed: Iterable[LockedPlugin] | None = None
) -> dict[str, LockedPlugin]:
    """Every entry of ``plugins`` with its ``required_by`` derived from the recorded dependency edges.

    ``changed`` is accepted for older callers and ignored: every entry is derived (commits derive
    only what they touch, through ``Lockfile.users``).
    """
    lock = Lockfile(dict(plugins))
    derived = _derive(lock, {})
    out = dict(plugins)
    out.update({n: e for n, e in derived.items() if e is not None})
    return out


def commit_plan(
    dir_: Path,
    staged: Sequence[Staged],
    *,
    session: DirSession | None = None,
    requested: Mapping[str, str] | None = None,
) -> dict[str, LockedPlugin]:
    """Write every verified release of a plan into ``dir_`` and record them with ONE lockfile commit.

    ``requested`` updates the recorded requirement of entries already installed as planned.
    Order: every name checked and every release folder checked for links, a cleanup journal
    naming the old and the new files, all new files (temp, fsync, rename), the lockfile's change
    line (appended and fsynced: the commit point for the whole set), the old versions' files,
    the journal.  A failure before the commit point removes the new files and leaves the
    lockfile as it was: all or nothing.
    """
    if session is None:
        with plugin_dir_lock(dir_) as own:
            return commit_plan(dir_, staged, session=own, requested=requested)
    pdir, lock = session.fs, session.lock
    entries = [_entry_for(s) for s in staged]  # a refusal here leaves the directory untouched
    old_files: list[str] = []
    # Decision 14: no link in the folders this commit works in, before anything is written (the
    # root is not listed: an ordinary writer never lists a folder of every plugin; no name there
    # is ever followed, and verify lists it).
    for entry in entries:
        pdir.check_dir(entry.name)
        pdir.check_dir(entry.release_dir)
        pdir.refuse_links(entry.name)
        pdir.refuse_links(entry.release_dir)
        previous = lock.plugins.get(entry.name)
        if previous is not None:
            pdir.check_dir(previous.release_dir)
            pdir.refuse_links(previous.release_dir)
            old_files += previous.files
    new_files = [path for entry in entries for path in entry.files]
    delta: dict[str, LockedPlugin | None] = {}
    for name, spec in (requested or {}).items():
        if name in lock.plugins:
            delta[name] = dataclasses.replace(lock.plugins[name], requested=spec)
    for entry in entries:
        previous = lock.plugins.get(entry.name)
        # The recorded required_by of a replaced entry stays (derived below when its edges move).
        delta[entry.name] = (
            entry if previous is None else dataclasses.replace(entry, required_by=previous.required_by)
        )
    delta = _derive(lock, delta)
    _write_journal(pdir, (*old_files, *new_files))
    try:
        for entry, s in zip(entries, staged, strict=True):
            for sig_name, sig in sorted(s.verified.signatures.items()):
                pdir.write_atomic(f"{entry.release_dir}/{sig_name}", sig)
            pdir.write_atomic(entry.manifest, s.verified.manifest_bytes)
            pdir.write_atomic(entry.wasm, s.verified.wasm_bytes)
        _commit(session, delta)  # the commit point
    except BaseException:
        # Nothing committed: the new files the old lockfile does not name go now (the journal
        # would have them removed by the next writer anyway).
        with contextlib.suppress(Exception):
            _remove_files(pdir, new_files, _referenced(lock, new_files))
            pdir.unlink(JOURNAL)
        raise
    # Only what the previous entries listed, and only files the new lockfile no longer names.
    _remove_files(pdir, old_files, _referenced(lock, old_files))
    pdir.unlink(JOURNAL)
    return {entry.name: lock.plugins[entry.name] for entry in entries}


def dependents(lock: Lockfile, name: str) -> list[str]:
    """Installed plugins whose recorded dependencies name ``name`` (from the reverse index)."""
    return sorted(u for u in lock.users().get(name, ()) if u != name)


def orphans(
    lock: Lockfile, removed: Iterable[LockedPlugin] | None = None, *, gone: Iterable[str] = ()
) -> list[str]:
    """Plugins installed only as dependencies (``DEPENDENCY_ONLY``) that nothing in ``lock`` needs.

    Found transitively (an orphan's own dependencies may become orphans), sorted per round.  With
    ``removed``, only what those entries pulled in (transitively) is a candidate, so the cost is
    O(what they pulled in); without it, every dependency-only entry is.  A plugin the user asked
    for by name is never an orphan.

    Args:
        lock: the lockfile.
        removed: the entries being removed, or None for every orphan of ``lock``.
        gone: names of ``lock`` that the removal takes away (they need nothing any more).

    Returns:
        The names of the orphans, in the order they were found.
    """
    plugins, users = lock.plugins, lock.users()
    dropped = set(gone)
    pulled = (
        {n for n, e in plugins.items() if e.dependency_only}
        if removed is None
        else {dep for e in removed for dep in e.dependencies}
    )
    found: list[str] = []
    while True:
        loose = sorted(
            n
            for n in pulled
            if n in plugins
            and n not in dropped
            and plugins[n].dependency_only
            and not users.get(n, set()) - dropped
        )
        if not loose:
            return found
        found += loose
        dropped.update(loose)
        if removed is not None:
            pulled |= {dep for n in loose for dep in plugins[n].dependencies}


def remove_plugins(
    dir_: Path, names: Sequence[str], *, force: bool = False, orphaned: bool = False
) -> list[LockedPlugin]:
    """Delete the files of ``names`` (and, with ``orphaned``, of their orphans); one lockfile commit.

    With ``orphaned`` and no ``names``: every plugin installed only as a dependency that nothing
    installed needs any more.

    Refuses (``PluginRequiredError``) when a plugin that stays depends on one being removed,
    unless ``force``.  Every target is checked (dependents, links, what stands where its files
    were installed) before anything is deleted, so a refusal deletes nothing; the entries go
    only after their files are gone, so a failure while deleting leaves the lockfile naming what
    may still be installed.
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
            targets += orphans(lock, [lock.plugins[n] for n in targets] if targets else None, gone=targets)
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
            pdir.refuse_links(entry.name)
            pdir.refuse_links(entry.release_dir)
            for rel in entry.files:  # a folder planted where a file was installed cannot be unlinked
                info = pdir.lstat(rel)
                if info is not None and stat.S_ISDIR(info.st_mode):
                    raise UnsafePathError(
                        f"{rel} in the plugin directory is a directory where {entry.name} installed a file",
                        where=str(dir_ / rel),
                        fix="remove that directory (someone with write access to the plugin directory may "
                        "have planted it), then remove the plugin again",
                    )
        gone = {entry.name for entry in entries}
        for entry in entries:
            _remove_files(pdir, entry.files, set())
        delta: dict[str, LockedPlugin | None] = dict.fromkeys(gone)
        _commit(session, _derive(lock, delta))
    return entries


def remove_plugin(dir_: Path, name: str, *, force: bool = False) -> LockedPlugin:
    """Remove one plugin (``remove_plugins``)."""
    return remove_plugins(dir_, [name], force=force)[0]


# --------------------------------------------------------------------------- offline verification


def _tampered(entry: LockedPlugin, dir_: Path, what: str, path: str) -> InstalledFileTamperedError:
    return InstalledFileTamperedError(
        f"{entry.name} {entry.version}: {what}",
        where=str(dir_ / path),
        fix=f"reinstall it as the lockfile records it: registry-tool client install {entry.name} --locked",
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
        UnsafePathError: a link below the plugin directory (in the plugin's folders: decision 14).
    """
    pdir.refuse_links(entry.name)
    with pdir.folder(entry.release_dir) as folder:  # opens <name>, then <version>, never via a link
        manifest = _read_installed(folder, dir_, entry, entry.manifest, entry.manifest_size, "plugin.toml")
        wasm = _read_installed(folder, dir_, entry, entry.wasm, entry.wasm_size, "the wasm module")
        texts: list[str] = []
        if signatures and folder is not None:
            for rel in entry.signatures:
                try:
                    data = _read_in(folder, rel.rsplit("/", 1)[1], MAX_SIGNATURE_FILE, "signature file")
                except FileTooLargeError:
                    # Install wrote a signature file within the cap: a longer one was changed since.
                    raise _tampered(entry, dir_, "a signature file is larger than 16 KiB", rel) from None
                if data is None:
                    # Install wrote every signature file its entry lists (conformance decisions 15
                    # and 17): one gone was removed since, as the Go and Rust verifiers answer too.
                    raise _tampered(entry, dir_, "a signature file the lockfile lists is missing", rel)
                texts.append(data.decode("utf-8", errors="surrogateescape"))
        parts = (
            ()
            if folder is None
            else tuple(
                sorted(
                    f"{entry.release_dir}/{n}"
                    for n in folder.names_refusing_links()
                    if n.startswith(PART_PREFIX)
                )
            )
        )
    manifest_digest = hashlib.sha256(manifest).hexdigest()
    if manifest_digest != entry.manifest_sha256 or len(manifest) != entry.manifest_size:
        raise _tampered(entry, dir_, "plugin.toml differs from the lockfile's sha256", entry.manifest)
    digest = hashlib.sha256(wasm).hexdigest()
    if digest != entry.wasm_sha256 or len(wasm) != entry.wasm_size:
        raise _tampered(entry, dir_, "the wasm module differs from the lockfile's sha256/size", entry.wasm)
    facts = lock_facts(entry.abi, entry.permissions, entry.dependencies.items())
    wanted = ManifestIdentity(entry.name, entry.version, digest, facts)
    # Looked up by the digest of the bytes just read, never by the lockfile's: whoever rewrites the
    # folder can rewrite the lockfile.  Only a record agreeing with the entry is taken; anything
    # else (no line, another identity, a line without lock facts) is decided by the parse.
    identity = known.get(manifest_digest) if known is not None else None
    if identity != wanted:
        try:
            identity = ManifestFacts.parse(manifest, where=entry.manifest).identity
        except CheckFailed as err:
            raise _tampered(entry, dir_, err.what, entry.manifest) from None
        if identity[:3] != wanted[:3]:
            raise _tampered(entry, dir_, "plugin.toml does not describe the installed module", entry.manifest)
        if identity != wanted:
            # Hosts read abi, permissions and dependencies from the lockfile, which nobody signs.
            what = "the lockfile's abi, permissions or dependencies differ from plugin.toml"
            raise _tampered(entry, dir_, what, LOCKFILE)
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
