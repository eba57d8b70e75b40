"""The index's folder tree as the build reads it: what ``plugins/`` may hold, and stat prints.

One contract for the build's scan (``registry.scan``) and for ``validate``: below ``plugins/`` only
real folders and regular files (no link, no FIFO, no device), plugin and version folders with
safe names, no two versions that differ only in case, file names in UTF-8, and times that a stat
print holds (the years 1678-2261).  What a release folder holds is published as it is, so
``validate`` refuses what the build would refuse, with the same words.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from registry_tool.manifest.errors import UnsafeIndexPathError

# The stat print of a release folder: the relative names of its folders and files (NUL-separated,
# then two NULs: a name holds no NUL and is never empty, so the first pair ends the names; a folder's
# name ends with "/", the release folder itself is "./"), then size, mtime_ns, ctime_ns and inode of
# each in that order, packed.  One bytes object per release: the build cache holds 10,000 of them,
# marshal decodes bytes far faster than tuples of numbers, and packing four numbers costs a third
# of writing them out as text (40,000 entries per rebuild at 10,000 releases).
#
# The folders are in it because a folder's mtime and ctime move whenever an entry is added,
# removed or renamed in it: while every folder's print holds, the names are still all there is,
# and a rebuild ``lstat``s the recorded names instead of listing the folders (``registry.scan``).
StatPrint = bytes
FILE_STAT = struct.Struct("<qqqQ")
FOLDER_MARK = "/"
RELEASE_FOLDER = "./"
TYPE_BITS = 0o170000  # stat.S_IFMT, without a call per entry
IS_FILE = 0o100000  # stat.S_IFREG
IS_FOLDER = 0o040000  # stat.S_IFDIR


def stat_print(
    rows: list[tuple[str, str, os.stat_result]],
) -> tuple[list[tuple[str, str]], StatPrint, int, int]:
    """(relative name, path) of the file rows, the stat print of all rows, their newest times.

    ``rows`` are (relative name, path, ``lstat``) of files and of folders (names ending in "/").
    The newest times are the newest mtime or ctime (ns) of the files, then of every row: the
    racy-window tests of the files' bytes and of the listing.  One loop: it runs for 40,000
    entries in a rebuild at 10,000 releases.
    """
    files: list[tuple[str, str]] = []
    packed: list[bytes] = []
    pack = FILE_STAT.pack
    newest = folders = 0
    for rel, path, st in rows:
        mtime, ctime = st.st_mtime_ns, st.st_ctime_ns
        if rel[-1] == FOLDER_MARK:
            folders = mtime if mtime > folders else folders
            folders = ctime if ctime > folders else folders
        else:
            newest = mtime if mtime > newest else newest
            newest = ctime if ctime > newest else newest
            files.append((rel, path))
        packed.append(pack(st.st_size, mtime, ctime, st.st_ino))
    names = "\0".join([rel for rel, _, _ in rows]).encode()  # list_files refuses names not UTF-8
    return files, names + b"\0\0" + b"".join(packed), newest, max(newest, folders)


VERSION_RULE = "strict semver, no '+'"


def has_plugins_folder(plugins: str) -> bool:
    """``plugins/`` is a folder (a link to one counts); False when there is none (no plugin yet).

    Raises:
        UnsafeIndexPathError: something else is there: a file or a dangling link would publish a
            registry without any plugin.
    """
    if os.path.isdir(plugins):  # noqa: PTH112 (strings: the scan works on str paths)
        return True
    if os.path.lexists(plugins):
        raise UnsafeIndexPathError(
            f"{plugins} is not a folder",
            where=plugins,
            fix="plugins/ holds one folder per plugin: replace it by a folder",
        )
    return False  # git keeps no empty folder


def plugin_folders(plugins: str) -> list[tuple[str, str]]:
    """(name, path) of every plugin folder in ``plugins/``, refusing what cannot be published."""
    # Imported here: validate of one release never imports the format package.
    from registry_tool.format.rules import PLUGIN_NAME_RE, is_plugin_name

    return subfolders(plugins, is_plugin_name, "plugin name", f"^{PLUGIN_NAME_RE.pattern}$")


def version_folders(plugin: str) -> list[str]:
    """The version folders of a plugin's folder, refusing unsafe entries and versions twinned by case."""
    from registry_tool.format.rules import is_version

    versions = [version for version, _ in subfolders(plugin, is_version, "version", VERSION_RULE)]
    refuse_case_twins(plugin, versions)
    return versions


def refuse_case_twins(name_dir: str, versions: list[str]) -> None:
    """Refuse two versions that differ only in case (1.1.0-RC1, 1.1.0-rc1).

    Distinct to semver, one folder on macOS and Windows, where a checkout or a mirror of the site
    merges their files.
    """
    every = "\0".join(versions)
    if every == every.lower():  # no version with an upper-case letter: one call, not one per version
        return
    seen: dict[str, str] = {}
    for version in versions:
        twin = seen.setdefault(version.lower(), version)
        if twin != version:
            raise UnsafeIndexPathError(
                f"versions {twin} and {version} in {name_dir} differ only in case: a case-insensitive "
                "file system (macOS, Windows) merges their folders",
                where=f"{name_dir}/{version}",
                fix="remove one of them (ci check refuses such a pair as rule version-case)",
            )


def subfolders(folder: str, safe: Callable[[str], bool], what: str, rule: str) -> list[tuple[str, str]]:
    """The folders in ``folder`` by name.

    Plain files (README.md, .gitkeep: never published) are skipped, anything else that is not a
    safely named real folder is refused.

    ``os.scandir`` answers the type questions from the directory entry (``follow_symlinks=False``:
    the entry itself, as ``lstat``), without a stat per entry.
    """
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    out: list[tuple[str, str]] = []
    for entry in entries:
        # The common case first, in one test: a safely named real folder.
        if entry.is_dir(follow_symlinks=False) and safe(entry.name):
            out.append((entry.name, entry.path))
            continue
        if entry.is_file(follow_symlinks=False):
            continue
        path = entry.path  # strings: with 10,000 releases, pathlib objects cost more than the system calls
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
        raise UnsafeIndexPathError(f"{path} is not a folder", where=str(path), fix="remove it from plugins/")
    return out


def list_files(folder: str) -> tuple[list[tuple[str, str]], StatPrint, int, int]:
    """Every file under a release folder (tests read input files too), symlinks refused; its stat print.

    ``os.scandir`` answers the type questions from the directory entry; one ``lstat`` per file
    and per folder gives the stat print the build cache compares.  A folder's ``lstat`` is taken
    before it is listed: an entry added after that moves its print for the next scan.
    """
    rows: list[tuple[str, str, os.stat_result]] = [(RELEASE_FOLDER, folder, os.lstat(folder))]
    pending = [("", folder)]
    while pending:
        prefix, current = pending.pop()
        with os.scandir(current) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    rows.append((prefix + entry.name, entry.path, entry.stat(follow_symlinks=False)))
                elif entry.is_dir(follow_symlinks=False):
                    sub = f"{prefix}{entry.name}/"
                    rows.append((sub, entry.path, entry.stat(follow_symlinks=False)))
                    pending.append((sub, entry.path))
                else:
                    raise UnsafeIndexPathError(
                        f"{entry.path} is a symlink or special file",
                        where=entry.path,
                        fix="replace it with a regular file or folder",
                    )
    rows.sort()  # by name: names in one folder tree are unique, so no other field is compared
    try:
        return stat_print(rows)
    except struct.error:
        bad = next(path for _, path, st in rows if not _printable(st))
        raise UnsafeIndexPathError(
            f"{bad} has a modification or change time outside the years 1678-2261",
            where=bad,
            fix=f"give it a real time (`touch {bad}`)",
        ) from None
    except UnicodeEncodeError:
        bad = next(path for rel, path, _ in rows if not _is_utf8(rel))
        shown = bad.encode(errors="surrogateescape").decode(errors="backslashreplace")
        raise UnsafeIndexPathError(
            f"the file name {shown} is not UTF-8",
            where=shown,
            fix="rename or remove it: paths in the index and the site are UTF-8",
        ) from None


def _printable(st: os.stat_result) -> bool:
    """The entry's numbers fit its stat print (times are signed 64-bit nanoseconds)."""
    try:
        FILE_STAT.pack(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    except struct.error:
        return False
    return True


def _is_utf8(name: str) -> bool:
    """The file system gave this name as UTF-8 (else its bytes come back as lone surrogates)."""
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True
