"""Bounded reads of local files that are given to the tool or kept by it.

Keys, roots, lockfiles, state files and installed modules are small.  A path naming
``/dev/zero``, a FIFO nobody writes to, or a 600 MiB file must be refused before a byte is
read, never read whole or waited on.  So every such read goes through ``read_bounded``:
the file is opened non-blocking (a FIFO open does not wait for a writer), ``fstat`` on the
open descriptor must say "regular file" (no race between check and read) and a size
within the cap, and then at most ``cap + 1`` bytes are read (a file growing meanwhile is
refused too).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from registry_tool.errors import CheckFailed, UsageError

KiB = 1024
MiB = 1024 * KiB


class UnreadableFileError(UsageError):
    """A local file is not a regular file, too large, or cannot be opened."""

    code = "unreadable-file"


class NotRegularFileError(UnreadableFileError):
    """A FIFO, device, socket or directory where a regular file is read."""


class FileTooLargeError(UnreadableFileError):
    """A regular file larger than the cap its kind has."""


class UnsafePathError(CheckFailed):
    """A symbolic link (or another non-directory) where the tool never follows one."""

    code = "unsafe-path"


def private_dir(path: Path) -> bool:
    """Is ``path`` a directory of the current user that nobody else can write to?

    Caches whose entries are trusted on sight (remembered verdicts, compiled modules whose
    deserialisation runs native code) are only consulted when this holds.
    """
    try:
        info = path.stat()
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        return False
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return False
    return not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _describe(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a regular file"


# Why a path that cannot be stat'ed cannot be, by errno: "does not exist" is only ENOENT (a link
# loop, a file where a folder is named or a folder without search permission read so too).
_UNREACHABLE = {
    errno.ELOOP: "is a symbolic link loop (or too many links)",
    errno.ENOTDIR: "does not exist (a part of it is a file, not a folder)",
    errno.EACCES: "cannot be reached (permission denied)",
    errno.ENAMETOOLONG: "is too long a name",
}


def unreachable(path: Path | str) -> str | None:
    """Why ``path`` cannot be stat'ed (links followed), for a message; None when it can."""
    try:
        Path(path).stat()
    except ValueError:  # a NUL in the name
        return "is no valid path (it holds a NUL character)"
    except OSError as err:
        return _UNREACHABLE.get(err.errno or 0, "does not exist")
    return None


def no_regular_file(path: Path | str, what: str) -> str:
    """Why ``path`` is no regular file, for a message: "does not exist", "is a directory", ..."""
    why = unreachable(path)
    if why is not None:
        return f"{what} {path} {why}"
    return f"{what} {path} is {_describe(Path(path).stat().st_mode)}, not a regular file"


def _size(n: int) -> str:
    return (
        f"{n // MiB} MiB"
        if n >= MiB and n % MiB == 0
        else f"{n // KiB} KiB"
        if n % KiB == 0
        else f"{n} bytes"
    )


def read_bounded(
    path: Path | str, cap: int, what: str, *, follow_symlinks: bool = True, dir_fd: int | None = None
) -> bytes:
    """The bytes of the regular file ``path`` if it holds at most ``cap`` bytes; else a named error.

    ``what`` names the file for the message ("public key", "lockfile").  With
    ``follow_symlinks=False`` the last component must not be a link (``UnsafePathError``);
    ``dir_fd`` resolves a relative ``path`` against an open directory.
    """
    data = _read(path, cap, what, follow_symlinks=follow_symlinks, dir_fd=dir_fd, missing_ok=False)
    assert data is not None
    return data


def read_bounded_if_exists(
    path: Path | str, cap: int, what: str, *, follow_symlinks: bool = True, dir_fd: int | None = None
) -> bytes | None:
    """``read_bounded``, but ``None`` when the file does not exist."""
    return _read(path, cap, what, follow_symlinks=follow_symlinks, dir_fd=dir_fd, missing_ok=True)


def _read(
    path: Path | str, cap: int, what: str, *, follow_symlinks: bool, dir_fd: int | None, missing_ok: bool
) -> bytes | None:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    shown = str(path)
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise UnreadableFileError(
            f"{what} {shown} does not exist", where=shown, fix=f"check the path of the {what}"
        ) from None
    except OSError as err:
        if err.errno == errno.ELOOP and not follow_symlinks:
            raise UnsafePathError(
                f"{what} {shown} is a symbolic link, which is never followed here",
                where=shown,
                fix="replace the link by the file itself (someone with write access may have planted it)",
            ) from None
        raise UnreadableFileError(
            f"cannot open {what} {shown}: {err.strerror}",
            where=shown,
            fix="check the path and its permissions",
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFileError(
                f"{what} {shown} is {_describe(info.st_mode)}, not a regular file",
                where=shown,
                fix=f"pass the {what} as a regular file",
            )
        if info.st_size > cap:
            raise FileTooLargeError(
                f"{what} {shown} is {info.st_size} bytes, more than the {_size(cap)} a {what} may have",
                where=shown,
                fix=f"check that this is really the {what}",
            )
        # Regular files never block; clear O_NONBLOCK anyway so a read is a plain read.
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        left = cap + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 * MiB))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as err:
        raise UnreadableFileError(
            f"cannot read {what} {shown}: {err.strerror}", where=shown, fix="check the file"
        ) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > cap:
        raise UnreadableFileError(
            f"{what} {shown} grew past {_size(cap)} while it was read", where=shown, fix="retry"
        )
    return data


def write_replacing(path: Path, data: bytes) -> None:
    """Write ``data`` as the file ``path``: a new file in the same folder, then renamed over ``path``.

    Never through a link: a link planted at ``path`` (a signature's name in a pull request's
    folder, pointing at ~/.bashrc) is replaced, not followed, and a reader never sees half a file.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644
    )
    try:
        with os.fdopen(fd, "wb") as fh:
            try:
                old = os.lstat(path)
            except OSError:
                old = None
            if old is not None and stat.S_ISREG(old.st_mode):
                os.fchmod(fh.fileno(), stat.S_IMODE(old.st_mode))  # a 0600 file stays 0600
            fh.write(data)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
