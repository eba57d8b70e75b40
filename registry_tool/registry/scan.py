"""Reading the index: the release folders under ``plugins/``, the root chain, the config pin.

Nothing here validates a release (that is ``verify``); it finds what there is to build and
refuses names that cannot be published safely (symlinks, special files, unsafe names: the rules
of ``manifest.tree``, which ``validate`` applies too).
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from registry_tool._files import read_bounded
from registry_tool.format import format_time, is_root_signature, root_file_version
from registry_tool.format.rules import MAX_ROOT_BYTES, MAX_SIGNATURE_BYTES
from registry_tool.manifest.tree import FILE_STAT as FILE_STAT
from registry_tool.manifest.tree import FOLDER_MARK as _FOLDER_MARK
from registry_tool.manifest.tree import IS_FILE as _IS_FILE
from registry_tool.manifest.tree import IS_FOLDER as _IS_FOLDER
from registry_tool.manifest.tree import RELEASE_FOLDER as _RELEASE_FOLDER
from registry_tool.manifest.tree import TYPE_BITS as _TYPE_BITS
from registry_tool.manifest.tree import StatPrint as StatPrint
from registry_tool.manifest.tree import has_plugins_folder, plugin_folders, version_folders
from registry_tool.manifest.tree import list_files as _list_files
from registry_tool.registry.errors import RootChainError, UnpinnedConfigError, UnsafeIndexPathError
from registry_tool.signing import read_root_signatures
from registry_tool.trust import ExpiredRootError, Root, verify_root_step, verify_threshold

# Relative lookups from an open folder: an ``lstat`` of "1.0.0/plugin.toml" from a plugin's folder
# does not walk the components above it again.  At a CI checkout's depth that walk is a fifth of
# the call (0.05-0.1 us per component on Linux), and a rebuild at 10,000 releases makes 80,000 of
# them (the index's stat prints and the site's).
_RELATIVE = os.stat in os.supports_dir_fd and hasattr(os, "O_DIRECTORY") and hasattr(os, "O_NOFOLLOW")
_FOLDER_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC


def open_folder(path: str) -> int | None:
    """A descriptor of the real folder ``path``, for ``os.lstat(name, dir_fd=...)``; else None.

    None where the platform has no relative lookups, or where ``path`` is no real folder (a link:
    ``O_NOFOLLOW``; missing; a file): callers then look up full paths, which answer those cases
    as they always did.  The caller closes the descriptor.
    """
    if not _RELATIVE:
        return None
    try:
        return os.open(path, _FOLDER_FLAGS)
    except OSError:
        return None


@dataclass
class IndexRelease:
    """A release folder found in the index.

    Attributes:
        name: The plugin name (the folder under ``plugins/``).
        version: The version (the folder under the plugin's folder).
        folder: The release folder.
        listed: ``files`` as the folder's listing gave them, or None: made from ``stat`` when
            asked for (a rebuild at 10,000 releases keeps most releases without asking).
        stat: The stat print of those files when the scan found them (the build cache's key).
        newest: The newest mtime or ctime (ns) among them: the racy-window test (a file whose mtime
            was set back, as ``rsync -t`` and ``tar x`` do, was still changed at its ctime).
        settled: The newest mtime or ctime (ns) of the files and the folders: the listing's
            racy-window test (``_recorded_files`` trusts a listing recorded only outside it).
        key: ``name/version``: the release's key in the build cache and in site paths (made once:
            a rebuild at 10,000 releases asks for it three times per release).
    """

    name: str
    version: str
    folder: str
    listed: list[tuple[str, str]] | None
    stat: StatPrint = b""
    newest: int = 0
    settled: int = 0
    key: str = ""

    def __post_init__(self) -> None:
        """Make ``key`` when the caller did not pass it."""
        if not self.key:
            self.key = f"{self.name}/{self.version}"

    @property
    def files(self) -> list[tuple[str, str]]:
        """``(name relative to the release folder, path)`` of every file, sorted.

        Paths are strings: with 10,000 releases, pathlib objects cost more than the system calls.
        """
        if self.listed is None:  # only a scan that checked a recorded print leaves it None
            end = self.stat.find(b"\0\0")
            names = self.stat[:end].decode().split("\0") if end > 0 else []
            self.listed = [(rel, f"{self.folder}/{rel}") for rel in names if rel[-1] != _FOLDER_MARK]
        return self.listed

    @property
    def path(self) -> Path:
        """The release folder (made on demand: only releases verified this build need it)."""
        return Path(self.folder)


@dataclass(frozen=True)
class RootChain:
    """The index's verified root chain.

    Attributes:
        root: The newest verified root.
        roots: Every verified root by version.
        files: ``(site path, index path)`` of every root file and signature, copied byte for byte.
        digest: sha256 over the names and digests of ``files`` (part of the build cache's key).
    """

    root: Root
    roots: dict[int, Root]
    files: list[tuple[str, Path]]
    digest: str


def load_root_chain(index: Path, now: datetime, schema_checked: frozenset[str] = frozenset()) -> RootChain:
    """Verify root 1 (self-signed) and every step 1 -> N; the newest root must not be expired.

    Args:
        index: The index folder (or a site: both keep the chain in ``root/``).
        now: The clock for the expiry check.
        schema_checked: sha256 of root documents checked against the schema before (the build
            cache's record): those skip only that step (signatures and rules are checked as ever).

    Returns:
        The verified chain.

    Raises:
        RootChainError: Missing folder or versions with gaps.
        UnsafeIndexPathError: A root file is a symlink or special file.
        ExpiredRootError: The newest root has expired.
    """
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
            kind = "a symbolic link" if path.is_symlink() else "a folder" if path.is_dir() else "special"
            raise UnsafeIndexPathError(
                f"{path} is not a regular file ({kind})",
                where=str(path),
                fix="root metadata files and their signatures are regular files directly in root/: "
                "replace it by the file itself, or remove it",
            )
        files.append((f"root/{entry}", path))
    if not versions or sorted(versions) != list(range(1, len(versions) + 1)):
        raise RootChainError(
            f"root versions {sorted(versions)} in {folder} are not 1..N without gaps",
            where=str(folder),
            fix="keep every root version in root/ so clients can walk the chain",
        )
    digest = hashlib.sha256()
    contents: dict[Path, bytes] = {}
    for relname, path in files:
        # Bounded as every reader of root files (a 3 GB "signature" was read whole first).
        signature = is_root_signature(path.name)
        cap, what = (MAX_SIGNATURE_BYTES, "signature file") if signature else (MAX_ROOT_BYTES, "root file")
        contents[path] = read_bounded(path, cap, what, follow_symlinks=False)
        digest.update(relname.encode() + b"\0" + hashlib.sha256(contents[path]).digest())
    first = contents[versions[1]]
    root = Root.parse(first, where=str(versions[1]), schema_checked=_sha256(first) in schema_checked)
    verify_threshold(
        root.role("root"),
        first,
        read_root_signatures(versions[1]),
        subject="root version 1",
        where=str(versions[1]),
    )
    roots = {1: root}
    for n in range(2, len(versions) + 1):
        path = versions[n]
        raw = contents[path]
        checked = _sha256(raw) in schema_checked
        sigs = read_root_signatures(path)
        root = verify_root_step(root, raw, sigs, where=str(path), schema_checked=checked)
        roots[n] = root
    if root.is_expired(now):
        raise ExpiredRootError(
            f"root version {root.version} expired at {format_time(root.expires)}",
            where=str(versions[root.version]),
            fix="publish a new root version before building",
        )
    return RootChain(root=root, roots=roots, files=files, digest=digest.hexdigest())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_config_pin(raw: bytes, path: Path, pinned: str | None) -> None:
    """A root that pins registry.toml is obeyed: the site is never built with other permissions/limits.

    Raises:
        UnpinnedConfigError: ``raw`` does not have the pinned sha256.
    """
    digest = hashlib.sha256(raw).hexdigest()
    if pinned is not None and digest != pinned:
        raise UnpinnedConfigError(
            f"registry.toml has sha256 {digest}, the root pins {pinned}",
            where=str(path),
            fix="restore the pinned registry.toml, or pin this one in a new root version signed by the "
            "root threshold (`registry-tool root pin-config` then `registry-tool root sign`)",
        )


def scan_releases(
    index: Path,
    recorded: Mapping[str, StatPrint] | None = None,
    folders: dict[str, tuple[StatPrint, int]] | None = None,
) -> list[IndexRelease]:
    """Every ``plugins/<name>/<version>/`` folder, refusing unsafe names and symlinks.

    Args:
        index: The index folder.
        recorded: Stat prints that an earlier scan took outside the racy window (the build
            cache's): by ``name/version`` a release folder's, which is then not listed again while
            it holds (see ``_recorded_files``); by ``name`` a plugin folder's (its version names,
            two NULs, ``_folder_print``), whose versions are then not listed again while it holds.
        folders: Filled with each plugin folder's print in that form and its newest mtime or
            ctime (ns), for the cache to record.

    Raises:
        UnsafeIndexPathError: A symlink, special file or unsafe name under ``plugins/``.
    """
    plugins = index / "plugins"
    found: list[IndexRelease] = []
    if not has_plugins_folder(str(plugins)):
        return found
    known = recorded or {}
    for name, name_dir in plugin_folders(str(plugins)):
        fd = open_folder(name_dir)
        try:
            # Taken before the folder is listed: a version added after it moves the print.
            print_ = _folder_print(os.fstat(fd) if fd is not None else os.lstat(name_dir))
            # Recorded versions stand for a listing only where this process could list the folder
            # (opened for reading): one it may search but not read is listed, and refused, as a
            # build without the cache refuses it.
            usable = fd is not None or not _RELATIVE
            versions = _recorded_versions(known.get(name), print_[0]) if print_ and usable else None
            if versions is None:
                versions = version_folders(name_dir)
            if folders is not None and print_ is not None:
                folders[name] = ("\0".join(versions).encode() + b"\0\0" + print_[0], print_[1])
            for version in versions:
                key = f"{name}/{version}"
                rel_dir = f"{name_dir}/{version}"
                was = known.get(key)
                listed = _recorded_files(rel_dir, was, fd, version) if was is not None else None
                files, stat, newest, settled = listed or _list_files(rel_dir)
                found.append(IndexRelease(name, version, rel_dir, files, stat, newest, settled, key))
        finally:
            if fd is not None:
                os.close(fd)
    return found


def _folder_print(st: os.stat_result) -> tuple[bytes, int] | None:
    """A plugin folder's packed print and newest time (ns); None for times past 64-bit nanoseconds.

    The folder is not published, so such a time only means that its listing is never recorded.
    """
    try:
        return FILE_STAT.pack(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino), max(
            st.st_mtime_ns, st.st_ctime_ns
        )
    except struct.error:
        return None


_RECORDED_VERSIONS = re.compile(r"[0-9][^/\0]*(?:\0[0-9][^/\0]*)*")


def _recorded_versions(recorded: StatPrint | None, print_: bytes) -> list[str] | None:
    """The versions of a plugin folder whose recorded print (``plugin_print``) still holds, else None.

    The folder's mtime and ctime move whenever an entry is added, removed or renamed in it, so
    while its print holds, its entries are the ones an earlier scan listed and checked (names,
    case twins, no link): the recorded version names.  Recorded outside the racy window only.
    """
    if recorded is None or len(recorded) < len(print_) + 2 or not recorded.endswith(print_):
        return None
    names = recorded[: -len(print_)]
    if not names.endswith(b"\0\0"):
        return None
    try:
        text = names[:-2].decode()
    except UnicodeDecodeError:
        return None
    if not text:
        return []
    # The cache's checksum stands for its bytes; one match (not a version test per name) keeps any
    # name read from it a plain name inside the folder.
    return text.split("\0") if _RECORDED_VERSIONS.fullmatch(text) else None


def _recorded_files(
    folder: str, recorded: StatPrint, parent: int | None = None, version: str = ""
) -> tuple[None, StatPrint, int, int] | None:
    """What ``_list_files`` would answer from a recorded stat print that still holds, else None.

    The recorded names are ``lstat``ed instead of listing the folders: while every folder has
    its recorded print (nothing added, removed or renamed in it: its mtime and ctime would have
    moved) and every file its own, the names are all the folder holds and the print is the same
    bytes a listing would give.  The print was recorded outside the racy window, so equal times
    prove that no change within the clock's granularity hid behind them.  One ``lstat`` per entry
    instead of a listing per folder: the largest cost of a one-change rebuild at 10,000 releases.
    With ``parent`` (``open_folder`` of the plugin folder) they are looked up as ``version/name``
    from it.  The files are left to ``IndexRelease.files``, which makes them from the print.
    """
    base = folder if parent is None else version
    end = recorded.find(b"\0\0")
    if end <= 0:
        return None
    packed: list[bytes] = []
    pack, lstat = FILE_STAT.pack, os.lstat
    newest = folders = 0
    try:
        names = recorded[:end].decode().split("\0")
        if _RELEASE_FOLDER not in names:  # a print of files only says nothing about what was added
            return None
        for rel in names:
            if rel[-1] == _FOLDER_MARK:
                st = lstat(base if rel == _RELEASE_FOLDER else f"{base}/{rel[:-1]}", dir_fd=parent)
                if st.st_mode & _TYPE_BITS != _IS_FOLDER:
                    return None
                mtime, ctime = st.st_mtime_ns, st.st_ctime_ns
                folders = mtime if mtime > folders else folders
                folders = ctime if ctime > folders else folders
            else:
                st = lstat(f"{base}/{rel}", dir_fd=parent)
                if st.st_mode & _TYPE_BITS != _IS_FILE:
                    return None
                mtime, ctime = st.st_mtime_ns, st.st_ctime_ns
                newest = mtime if mtime > newest else newest
                newest = ctime if ctime > newest else newest
            packed.append(pack(st.st_size, mtime, ctime, st.st_ino))
    except (OSError, UnicodeDecodeError, IndexError, struct.error):
        return None  # listed again: the listing answers (or refuses) as a first scan does
    if b"".join(packed) != recorded[end + 2 :]:
        return None
    return None, recorded, newest, max(newest, folders)  # the files are the print's (``IndexRelease.files``)
