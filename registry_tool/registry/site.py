"""The site on disk: the lock, staging, the atomic swap, the top document's journal, reading a site.

A build that replaces SITE whole fills a staging folder next to SITE (same file system) and
then exchanges the two in one ``renameat2(RENAME_EXCHANGE)`` call, so a static server sees
either the old site or the new one, never a mix.  Where the kernel lacks that call, two
renames are used and the short gap is repaired by the next build (``recover_interrupted``).
A build that updates SITE in place (``publish``) renames the top document and its signatures
in from a journal in the staging folder, which the next build completes after a crash.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from registry_tool._files import read_bounded
from registry_tool.errors import CheckFailed, RegistryToolError, UsageError
from registry_tool.format import MAX_SIGNATURE_BYTES, MAX_TOP_BYTES, REGISTRY_JSON, SIG_SUFFIX
from registry_tool.registry.document import Reader
from registry_tool.signing import read_signatures

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class UnsafeSiteError(UsageError):
    """SITE is a folder that does not look like a registry site, so it will not be replaced."""

    code = "unsafe-site"


class PreviousRegistryError(CheckFailed):
    """The --previous registry cannot be read.

    Exit 1 when what was read is bad; 2 (usage or environment, as the README's table says) when
    nothing could be read: no site there, or the network failed.
    """

    code = "previous-registry"

    def __init__(self, what: str, *, where: str, fix: str, exit_code: int = 1) -> None:
        """``what`` went wrong ``where``; ``exit_code`` 2 when it is the environment's."""
        super().__init__(what, where=where, fix=fix)
        self.exit_code = exit_code


# --------------------------------------------------------------------------- staging and swap


def real_site(site: Path) -> Path:
    """SITE itself, or the folder it links to: a symlinked web root keeps pointing at the new site."""
    return site.resolve() if site.is_symlink() else site


def site_lock(site: Path) -> FileLock:
    """One writer per SITE: a second build or resign waits (the OS drops the lock of a killed one)."""
    site.parent.mkdir(parents=True, exist_ok=True)
    path = site.parent / f".{site.name}.lock"
    # filelock retries a lock file it cannot create forever (as if another writer held it): a
    # folder where none can be made (/proc) hung the build silently.  Made here first, or refused.
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
    except OSError as err:
        raise UnsafeSiteError(
            f"cannot create the lock file {path} beside {site}: {err.strerror or err}",
            where=str(path),
            fix="give --out a folder in a place you may write",
        ) from None
    return FileLock(path)


def check_site_target(site: Path) -> None:
    """Refuse to replace a folder that is not a previous site: a typo must not delete a home dir."""
    if not site.exists():
        return
    if not site.is_dir():
        raise UnsafeSiteError(
            f"{site} exists and is not a folder", where=str(site), fix="choose another --out"
        )
    if any(site.iterdir()) and not (site / REGISTRY_JSON).is_file():
        raise UnsafeSiteError(
            f"{site} is a non-empty folder without {REGISTRY_JSON}; refusing to replace it",
            where=str(site),
            fix="pass an empty or new folder, or a folder a previous build wrote",
        )


#: The file inside every staging folder the build made, naming the site it stages for: recovery
#: touches only folders holding it, never a user's folder that happens to match the name pattern.
STAGING_MARKER = ".registry-tool-staging"
_STAGING_INFIX = ".build-"
_STAGING_SUFFIX = re.compile(r"[a-z0-9_]{8}")  # tempfile.mkdtemp's random part


def _marker_text(site: Path) -> str:
    return f"registry-tool staging folder of {site.name}\n"


def staging_dir(site: Path) -> Path:
    """A new empty staging folder next to SITE (same file system: renames into SITE are atomic).

    Its name is ``.SITE.build-XXXXXXXX`` (8 random characters) and it holds ``STAGING_MARKER``
    naming SITE, so ``staging_folders`` finds only folders a build of this very SITE made.
    """
    site.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{site.name}{_STAGING_INFIX}", dir=site.parent))
    # mkdtemp makes the folder private (0700); a site is for serving, so use the usual mode.
    umask = os.umask(0)
    os.umask(umask)
    staged.chmod(0o777 & ~umask)
    (staged / STAGING_MARKER).write_text(_marker_text(site), encoding="utf-8")
    return staged


def staging_folders(site: Path) -> list[Path]:
    """The staging folders builds of SITE left next to it, by exact name and marker.

    A sibling that merely resembles one (``.SITE.build-x``, or the staging folder of a site named
    ``SITE.build-x``) has another name shape or no marker naming SITE, and is never touched.
    """
    prefix = f".{site.name}{_STAGING_INFIX}"
    out: list[Path] = []
    try:
        entries = sorted(os.scandir(site.parent), key=lambda e: e.name)
    except OSError:
        return out
    for entry in entries:
        if not entry.name.startswith(prefix) or not _STAGING_SUFFIX.fullmatch(entry.name[len(prefix) :]):
            continue
        if entry.is_symlink() or not entry.is_dir():
            continue
        try:
            marker = Path(entry.path, STAGING_MARKER).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if marker == _marker_text(site):
            out.append(Path(entry.path))
    return out


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux renameat2); False when unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    func = getattr(libc, "renameat2", None)
    if func is None:
        return False
    res = func(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if res == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: file system or kernel cannot
        return False
    raise OSError(errno, os.strerror(errno), str(b))


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (renames into it) to disk; ignored where unsupported."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_OLD_SITE = "previous-site"  # inside a staging folder: SITE moved aside by the two-rename fallback


def swap_into_place(staged: Path, site: Path) -> None:
    """Make ``staged`` the new SITE in one step and delete the old site."""
    fsync_dir(staged)
    if not site.exists() and not site.is_symlink():
        staged.rename(site)
    elif _exchange(staged, site):
        shutil.rmtree(staged, ignore_errors=True)  # `staged` now holds the old site
    else:
        # The old site goes into a marked holder folder, so a crash between the two renames is
        # repaired by ``recover_interrupted`` and nothing else is ever taken for it.
        holder = staging_dir(site)
        site.rename(holder / _OLD_SITE)
        staged.rename(site)
        shutil.rmtree(holder, ignore_errors=True)
    # The marker stays until the swap, so a staging folder a crash leaves is always recognised.
    (site / STAGING_MARKER).unlink(missing_ok=True)
    fsync_dir(site)
    fsync_dir(site.parent)


def recover_interrupted(site: Path) -> None:
    """Repair what a killed build left behind (only in staging folders this tool made for SITE).

    A site moved aside by the two-rename fallback is moved back; a ready top-document journal
    (everything it pins was already in SITE) is completed; stale staging folders are removed.
    """
    if not site.parent.is_dir():
        return
    stale = staging_folders(site)
    for folder in stale:
        if (folder / _OLD_SITE).is_dir() and not site.exists() and not site.is_symlink():
            (folder / _OLD_SITE).rename(site)  # the two-rename fallback was interrupted between its renames
    for folder in stale:
        journal = folder / _JOURNAL
        if (journal / _READY).is_file() and (site / REGISTRY_JSON).is_file():
            complete_journal(journal, site)
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- the top document's journal

_JOURNAL = "top"
_READY = ".ready"


def write_journal(staged: Path, top: bytes, signatures: dict[str, str]) -> Path:
    """Write the new top document and its signatures, then a ready marker, into the staging folder.

    Once the marker is on disk everything the top document pins is in SITE, so completing the
    journal (now, or in the next build after a crash) is always safe.

    Returns:
        The journal folder.
    """
    journal = staged / _JOURNAL
    journal.mkdir()
    for name, data in [*((n, t.encode("utf-8")) for n, t in signatures.items()), (REGISTRY_JSON, top)]:
        with open(journal / name, "xb") as fh:
            fh.write(data)
            os.fsync(fh.fileno())
    with open(journal / _READY, "xb") as fh:
        os.fsync(fh.fileno())
    fsync_dir(journal)
    return journal


def discard_journal(journal: Path) -> None:
    """Withdraw a ready journal before its pinned files are undone (the marker goes first, durably).

    Without this, a build failing after ``write_journal`` and then killed while undoing would leave
    a ready journal that the next build completes over metadata the undo already removed.
    """
    (journal / _READY).unlink(missing_ok=True)
    fsync_dir(journal)


def complete_journal(journal: Path, site: Path, between: Callable[[str], None] | None = None) -> None:
    """Rename a ready journal's signatures, then its top document, into SITE (idempotent).

    Args:
        journal: The folder ``write_journal`` returned.
        site: SITE.
        between: Called with ``"top-signatures"`` between the two renames (tests inject failures).
    """
    for entry in sorted(os.scandir(journal), key=lambda e: e.name):
        if entry.name not in (_READY, REGISTRY_JSON):
            Path(entry.path).replace(site / entry.name)
    if between is not None:
        between("top-signatures")
    if (journal / REGISTRY_JSON).exists():
        (journal / REGISTRY_JSON).replace(site / REGISTRY_JSON)
    fsync_dir(site)


# --------------------------------------------------------------------------- previous site


@dataclass(frozen=True)
class PublishedRegistry:
    """The top document of a published site plus its signatures (unverified), and a reader for the rest."""

    source: str
    data: bytes
    signatures: list[str]
    read: Reader


def _is_url(spec: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(spec)
        scheme = parts.scheme
        _ = parts.port  # "http://h:99999/": a port out of range raises here, not deep in a fetch
    except ValueError:  # "http://[x/": an unbalanced IPv6 bracket
        raise UsageError(
            f"--previous {spec!r} is not a valid URL"[:300],
            fix="pass the published site's http(s):// or file:// URL, or its folder",
        ) from None
    return scheme in {"http", "https", "file"}


def read_site(spec: str, index_key_ids: list[str]) -> PublishedRegistry:
    """registry.json and its signatures from a folder or an http(s)/file URL; metadata by ``read``."""
    if _is_url(spec) and urllib.parse.urlsplit(spec).scheme != "file":
        base = spec if spec.endswith("/") else spec + "/"
        fetcher = _fetcher()

        def read_url(rel: str, cap: int) -> bytes:
            data = _fetch(fetcher, base + rel, required=True, cap=cap)
            assert data is not None
            return data

        data = read_url(REGISTRY_JSON, MAX_TOP_BYTES)
        names = [REGISTRY_JSON + SIG_SUFFIX] + [f"{REGISTRY_JSON}.{k}{SIG_SUFFIX}" for k in index_key_ids]
        sigs = [_fetch(fetcher, base + n, required=False, cap=MAX_SIGNATURE_BYTES) for n in names]
        texts = [s.decode("utf-8", "surrogateescape") for s in sigs if s is not None]
        return PublishedRegistry(spec, data, texts, read_url)
    folder = Path(urllib.parse.unquote(urllib.parse.urlsplit(spec).path)) if _is_url(spec) else Path(spec)
    path = folder / REGISTRY_JSON
    if not path.is_file():
        raise PreviousRegistryError(
            f"no {REGISTRY_JSON} in the previous site {spec}",
            where=str(path),
            fix="point --previous at the published site folder or URL (or omit it for a first build)",
            exit_code=2,
        )

    def read_dir(rel: str, cap: int) -> bytes:
        target = folder / rel
        try:
            # Bounded, never blocking on a FIFO, a regular file only.
            return read_bounded(target, cap, "file of the previous site")
        except RegistryToolError as err:
            raise PreviousRegistryError(
                f"cannot read {target} of the previous site: {err.what}",
                where=str(target),
                fix="point --previous at a complete site written by `registry-tool build`",
                exit_code=err.exit_code,
            ) from None

    return PublishedRegistry(spec, read_dir(REGISTRY_JSON, MAX_TOP_BYTES), read_signatures(path), read_dir)


#: One file of a --previous site (the top document and its signatures, then tree nodes by pin), and
#: every file of one build together: a server sending a byte every few seconds never trips a
#: socket timeout, and held the build for days.
_PREVIOUS_DEADLINE_S = 60.0
_PREVIOUS_TOTAL_S = 600.0


def _fetcher() -> Any:
    # The client's fetcher: size caps, per-file and total deadlines (the response head included),
    # identity encoding only, same-origin redirects.  Lazy: requests loads only for an http(s) --previous.
    from registry_tool.client.fetch import FetchPolicy, HttpFetcher

    return HttpFetcher(FetchPolicy(deadline=_PREVIOUS_DEADLINE_S, total_deadline=_PREVIOUS_TOTAL_S))


def _fetch(fetcher: Any, url: str, *, required: bool, cap: int) -> bytes | None:
    try:
        data = fetcher.fetch(url, max_size=cap) if required else fetcher.fetch_if_exists(url, max_size=cap)
    except RegistryToolError as err:
        raise PreviousRegistryError(
            f"cannot fetch {url} of the previous site: {err.what}",
            where=url,
            fix="check the network and the --previous URL (a complete site written by `registry-tool build`)",
            exit_code=err.exit_code,
        ) from None
    return data if data is None else bytes(data)
