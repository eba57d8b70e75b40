"""File operations below a plugin directory that never follow a symbolic link.

Hosts run the client as a service user over data directories that others may be able to
write.  A link planted at ``P/<name>``, ``P/<name>/<version>``, a file of a release, the
lockfile or the lock file would otherwise make an install write outside P, a removal delete
outside P, or a verification read something else.  So the plugin directory itself is
opened once (it may be a link the host chose), and every component below it is opened
relative to its parent's descriptor with ``O_NOFOLLOW``: a link anywhere below P is refused
with ``UnsafePathError`` before anything is read, written or deleted.

Relative paths here are ``/``-separated and never contain ``.`` or ``..`` (callers check
names first; this module checks again and refuses anything else).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from registry_tool._files import (
    NotRegularFileError,
    UnreadableFileError,
    UnsafePathError,
    read_bounded_if_exists,
)
from registry_tool.errors import UsageError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
PART_PREFIX = ".part-"


def _unsafe(root: Path, rel: str, detail: str) -> UnsafePathError:
    return UnsafePathError(
        f"{rel} in the plugin directory {detail}; registry-tool never follows a link below the plugin "
        "directory",
        where=str(root / rel),
        fix="remove the link or file (someone with write access to the plugin directory may have planted "
        "it), then install again",
    )


def _split(rel: str) -> list[str]:
    parts = rel.split("/")
    if not rel or any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise UsageError(f"internal error: {rel!r} is not a plain relative path", fix="report this bug")
    return parts


class PluginDir:
    """An open plugin directory: every operation resolves below it without following links."""

    def __init__(self, root: Path, *, create: bool = False) -> None:
        """Open the plugin directory ``root`` (created with ``create``; absent: ``exists`` is False)."""
        self.root = root
        if create:
            try:
                root.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                pass  # a file (or a device) by that name: the open below says it is no directory
            except OSError as err:
                raise UsageError(
                    f"the plugin directory {root} cannot be created: {err.strerror or err}",
                    fix="pass --dir with a directory you may write (or whose parent you may write)",
                ) from None
        try:
            # The directory itself may be a link (the host's choice); everything below may not.
            self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            self.fd = -1
        except NotADirectoryError:
            raise UsageError(
                f"the plugin directory {root} is not a directory", fix="pass --dir with a directory"
            ) from None

    @property
    def exists(self) -> bool:
        """Whether the plugin directory exists."""
        return self.fd >= 0

    def close(self) -> None:
        """Close the directory's descriptor."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> PluginDir:
        """The open directory itself."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the directory."""
        self.close()

    # ------------------------------------------------------------------ directories

    def _open_parts(self, parts: list[str], *, create: bool) -> int | None:
        """A descriptor of the directory ``parts`` below the root (None when absent and not created)."""
        if self.fd < 0:
            return None
        fd = os.dup(self.fd)
        done: list[str] = []
        try:
            for part in parts:
                done.append(part)
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    # Made by someone else meanwhile: the open below checks what it is.
                    with suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except OSError as err:
            os.close(fd)
            rel = "/".join(done)
            if err.errno in (errno.ELOOP, errno.ENOTDIR):
                kind = self._kind("/".join(done))
                raise _unsafe(self.root, rel, f"is {kind}, not a directory") from None
            raise UsageError(
                f"cannot open {self.root / rel}: {err.strerror}",
                fix="check the plugin directory's permissions",
            ) from None
        return fd

    def _kind(self, rel: str) -> str:
        try:
            mode = os.lstat(rel, dir_fd=self.fd).st_mode
        except OSError:
            return "not a directory"
        return "a symbolic link" if stat.S_ISLNK(mode) else "not a directory"

    @contextmanager
    def directory(self, rel: str, *, create: bool = False) -> Iterator[int | None]:
        """An open descriptor of directory ``rel`` ("" for the root), or None when absent."""
        fd: int | None
        if self.fd < 0:
            fd = None
        elif not rel:
            fd = os.dup(self.fd)
        else:
            fd = self._open_parts(_split(rel), create=create)
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)

    def check_dir(self, rel: str) -> bool:
        """Whether directory ``rel`` exists; a link or file on the way is ``UnsafePathError``."""
        with self.directory(rel) as fd:
            return fd is not None

    def listdir(self, rel: str = "") -> list[str]:
        """The names in directory ``rel`` ("" for the root), sorted; empty when absent."""
        with self.directory(rel) as fd:
            return sorted(_names(fd)) if fd is not None else []

    def refuse_links(self, rel: str = "") -> None:
        """``UnsafePathError`` for a symbolic link directly in directory ``rel`` ("" for the root).

        Conformance decision 14: no link below the plugin directory.  Checked where an operation
        works: the plugin folders it writes, removes or verifies, and the root for verify (one
        listing each, the types from the directory entries; a walk of every plugin's folder would
        cost each install O(N)).
        """
        with self.directory(rel) as fd:
            if fd is not None:
                _names_refusing_links(fd, self.root, rel)

    def list_child(self, name: str) -> list[str] | None:
        """The names in the root's directory ``name`` (unsorted); None when it is absent, a link or a file.

        One open and one listing (for a pass over every plugin's folder).
        """
        if self.fd < 0 or name in ("", ".", "..") or "/" in name or "\0" in name:
            return None
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=self.fd)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                return None
            raise UsageError(
                f"cannot open {self.root / name}: {err.strerror}",
                fix="check the plugin directory's permissions",
            ) from None
        try:
            return _names(fd)
        finally:
            os.close(fd)

    def lstat(self, rel: str) -> os.stat_result | None:
        """``os.lstat`` of ``rel`` (never follows the last link), None when absent."""
        parts = _split(rel)
        with self.directory("/".join(parts[:-1])) as fd:
            if fd is None:
                return None
            try:
                return os.lstat(parts[-1], dir_fd=fd)
            except FileNotFoundError:
                return None

    # ------------------------------------------------------------------ files

    def read(self, rel: str, cap: int, what: str) -> bytes | None:
        """The regular file ``rel`` (at most ``cap`` bytes), None when absent; never through a link."""
        parts = _split(rel)
        parent = "/".join(parts[:-1])
        with self.directory(parent) as fd:
            return None if fd is None else self._read_at(fd, parent, parts[-1], cap, what)

    def _read_at(self, fd: int, parent: str, name: str, cap: int, what: str) -> bytes | None:
        rel = f"{parent}/{name}" if parent else name
        try:
            return read_bounded_if_exists(name, cap, what, follow_symlinks=False, dir_fd=fd)
        except UnsafePathError:
            raise _unsafe(self.root, rel, "is a symbolic link") from None
        except NotRegularFileError as err:
            # A FIFO, device or folder where the tool put a file: as unsafe as a planted link.
            kind = err.what.split(" is ", 1)[-1].split(", not a regular file")[0]
            raise _unsafe(self.root, rel, f"is {kind}, not a regular file") from None
        except UnreadableFileError as err:  # name the file by its full path, not its last part
            shown = str(self.root / rel)
            raise type(err)(
                err.what.replace(f" {name} ", f" {shown} ", 1), where=shown, fix=err.fix
            ) from None

    @contextmanager
    def folder(self, rel: str) -> Iterator[Folder | None]:
        """Directory ``rel`` opened once (None when absent), to list it and read several of its files."""
        with self.directory(rel) as fd:
            yield None if fd is None else Folder(self, rel, fd)

    def write_atomic(
        self,
        rel: str,
        data: bytes,
        *,
        durable: bool = True,
        read_back: bool = True,
        tmp_name: str | None = None,
    ) -> None:
        """Readers see the old file or the new one, never half: temp file, fsync, rename, fsync dir.

        The temporary file lives in the target's directory (same filesystem, so the rename is
        atomic) and is read back before the rename, so what lands is what was verified.
        ``durable=False`` skips both fsyncs (for files whose loss in a power cut costs nothing).
        ``read_back=False`` skips the read-back, for a file whose every reader checks it in full
        anyway (the lockfile: each command parses it strictly, or compares it byte for byte
        with what this process wrote, before using it).  ``tmp_name`` fixes the temporary file's
        name (a ``.part-`` name; one writer at a time, under the writers' lock): a killed writer's
        leftover is then found by name instead of by listing a folder of every plugin.
        """
        parts = _split(rel)
        with self.directory("/".join(parts[:-1]), create=True) as fd:
            assert fd is not None
            existing = _lstat_at(fd, parts[-1])
            if existing is not None and not stat.S_ISREG(existing.st_mode):
                raise _unsafe(self.root, rel, "is not a regular file")
            if tmp_name is not None:
                if not tmp_name.startswith(PART_PREFIX) or "/" in tmp_name:
                    raise UsageError(f"internal error: {tmp_name!r} is not a temporary name", fix="report it")
                _unlink_at(fd, tmp_name)  # a killed writer's
            tmp = tmp_name or f"{PART_PREFIX}{uuid.uuid4().hex}"
            out = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=fd
            )
            try:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(out, view) :]
                    if durable:
                        os.fsync(out)
                finally:
                    os.close(out)
                back = (
                    read_bounded_if_exists(tmp, len(data), "written file", follow_symlinks=False, dir_fd=fd)
                    if read_back
                    else data
                )
                if back != data:
                    raise UsageError(
                        f"{self.root / rel} does not hold the bytes just written", fix="check the disk"
                    )
                os.rename(tmp, parts[-1], src_dir_fd=fd, dst_dir_fd=fd)
            finally:
                _unlink_at(fd, tmp)
            if durable:
                os.fsync(fd)

    def append_durable(self, rel: str, data: bytes, *, keep: int) -> bool:
        """Append ``data`` to the regular file ``rel`` with one ``write()``, then fsync it (the commit).

        The file is opened with O_WRONLY|O_APPEND|O_NOFOLLOW (never through a link), first cut
        back to ``keep`` bytes when longer (bytes an unfinished write left after the last
        complete record).  A file shorter than ``keep`` changed behind the caller's back: refused.
        A short write is cut back off and refused, so the file never ends in half a record that
        a later append would complete into garbage.  A file with other hard links is not written
        (False): the write would land in every other name of it too (a file outside the plugin
        directory, linked in), so the caller writes a new file instead.
        """
        parts = _split(rel)
        with self.directory("/".join(parts[:-1])) as fd:
            if fd is None:
                raise UsageError(f"{self.root / rel} is gone", fix="run the command again")
            try:
                # O_NONBLOCK: a FIFO planted as the file must not block the writer (which holds the
                # writers' lock); the regular-file check follows the open.
                flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
                out = os.open(parts[-1], flags, dir_fd=fd)
            except OSError as err:
                if err.errno == errno.ELOOP:
                    raise _unsafe(self.root, rel, "is a symbolic link") from None
                raise UsageError(
                    f"cannot open {self.root / rel}: {err.strerror}",
                    fix="check the plugin directory's permissions",
                ) from None
            try:
                info = os.fstat(out)
                if not stat.S_ISREG(info.st_mode):
                    raise _unsafe(self.root, rel, "is not a regular file")
                if info.st_nlink > 1:
                    return False
                if info.st_size < keep:
                    raise UsageError(
                        f"{self.root / rel} became shorter while the writers' lock was held",
                        where=str(self.root / rel),
                        fix="another program changed it; run the command again",
                    )
                if info.st_size > keep:
                    os.ftruncate(out, keep)
                written = os.write(out, data)
                if written != len(data):
                    os.ftruncate(out, keep)
                    raise UsageError(
                        f"{self.root / rel}: only {written} of {len(data)} bytes were written",
                        where=str(self.root / rel),
                        fix="check the free space of the disk",
                    )
                os.fsync(out)
            finally:
                os.close(out)
        return True

    def unlink(self, rel: str) -> bool:
        """Delete the file ``rel`` (a link is removed itself, never its target); False when absent."""
        parts = _split(rel)
        with self.directory("/".join(parts[:-1])) as fd:
            if fd is None:
                return False
            info = _lstat_at(fd, parts[-1])
            if info is None:
                return False
            if stat.S_ISDIR(info.st_mode):
                raise _unsafe(self.root, rel, "is a directory where a file was installed")
            os.unlink(parts[-1], dir_fd=fd)
            return True

    def rmdir_if_empty(self, rel: str) -> bool:
        """Remove directory ``rel`` if it is an empty directory; whether it was removed."""
        parts = _split(rel)
        with self.directory("/".join(parts[:-1])) as fd:
            if fd is None:
                return False
            info = _lstat_at(fd, parts[-1])
            if info is None or not stat.S_ISDIR(info.st_mode):
                return False
            try:
                os.rmdir(parts[-1], dir_fd=fd)
            except OSError as err:
                if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    return False
                raise
            return True

    def remove_parts(self, rel: str = "") -> list[str]:
        """Delete temporary files a killed writer left in directory ``rel``; their relative paths."""
        removed: list[str] = []
        with self.directory(rel) as fd:
            if fd is None:
                return removed
            names = _names(fd)
            # Every writer lists the root: a C-level search first, the per-name loop only on a hit.
            if PART_PREFIX not in "/".join(names):
                return removed
            for name in names:
                if name.startswith(PART_PREFIX):
                    info = _lstat_at(fd, name)
                    if info is not None and not stat.S_ISDIR(info.st_mode):
                        os.unlink(name, dir_fd=fd)
                        removed.append(f"{rel}/{name}" if rel else name)
        return removed

    def find_parts(self, rel: str = "") -> list[str]:
        """Temporary ``.part-*`` files in directory ``rel`` (relative paths, sorted)."""
        with self.directory(rel) as fd:
            if fd is None:
                return []
            return sorted(f"{rel}/{n}" if rel else n for n in _names(fd) if n.startswith(PART_PREFIX))

    # ------------------------------------------------------------------ the writers' lock

    @contextmanager
    def locked(self, name: str, timeout: float) -> Iterator[None]:
        """An exclusive flock on ``name`` in the root, created without following a link.

        (filelock opens its file with O_TRUNC through links: a planted link would let a writer
        truncate any file the service user can write.)
        """
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=self.fd)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise _unsafe(self.root, name, "is a symbolic link") from None
            raise UsageError(
                f"cannot open the lock file {self.root / name}: {err.strerror}",
                fix="check the plugin directory's permissions",
            ) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _unsafe(self.root, name, "is not a regular file")
            end = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= end:
                        raise UsageError(
                            f"another registry-tool process has held the lock on {self.root} for more than "
                            f"{timeout:g} s",
                            where=str(self.root / name),
                            fix="wait for it to finish",
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # releases the flock


class Folder:
    """An open directory below a ``PluginDir``: its files are read without walking the path again."""

    def __init__(self, owner: PluginDir, rel: str, fd: int) -> None:
        """Wrap ``fd``, the open directory ``rel`` of ``owner`` (closed by ``PluginDir.folder``)."""
        self.owner, self.rel, self.fd = owner, rel, fd

    def names(self) -> list[str]:
        """The names in the directory, unsorted."""
        return _names(self.fd)

    def names_refusing_links(self) -> list[str]:
        """``names()``, but ``UnsafePathError`` when one of them is a symbolic link (decision 14)."""
        return _names_refusing_links(self.fd, self.owner.root, self.rel)

    def read(self, name: str, cap: int, what: str) -> bytes | None:
        """The regular file ``name`` of this directory (at most ``cap`` bytes), None when absent."""
        return self.owner._read_at(self.fd, self.rel, name, cap, what)


def _names_refusing_links(fd: int, root: Path, rel: str) -> list[str]:
    """The names in the open directory ``rel`` (types from the entries); a link is ``UnsafePathError``."""
    names: list[str] = []
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_symlink():
                raise _unsafe(root, f"{rel}/{entry.name}" if rel else entry.name, "is a symbolic link")
            names.append(entry.name)
    return names


def _names(fd: int) -> list[str]:
    return os.listdir(fd)  # a descriptor: pathlib cannot list one


def _lstat_at(fd: int, name: str) -> os.stat_result | None:
    try:
        return os.lstat(name, dir_fd=fd)
    except FileNotFoundError:
        return None


def _unlink_at(fd: int, name: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(name, dir_fd=fd)
