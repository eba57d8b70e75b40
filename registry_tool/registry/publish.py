"""Putting a build on disk: a new site in one swap, or the published site updated in place.

A first build (or one that must change bytes a published document pins) fills a staging folder
next to SITE and swaps it in (``site.swap_into_place``).  Every other build updates SITE in
place and writes only what changed, in the order that keeps every published state valid:

1. ``releases``: new release folders are moved in (they were written into the staging folder
   when verified), files a release gained are added;
2. ``root``: new root versions and signatures are added;
3. ``meta``: new metadata documents are written (content-addressed: an existing path already
   holds these bytes, so it is only compared, or not even read when the previous publication's
   pins verified it);
4. ``catalog``: the browser catalog's files that differ are replaced (each by one rename);
5. ``top-ready``: the new top document and its signatures are written into the staging folder
   together with a ready marker (a journal: a build killed after this point is completed by
   the next build or resign, see ``site.recover_interrupted``);
6. ``top-signatures`` / ``top``: the signatures, then ``registry.json`` are renamed into SITE;
7. ``collect``: files neither the new nor the previous publication uses are removed (a client
   that read the previous top document just before still finds what it pins).

Until step 6 nothing a client reads changes (a failure removes what steps 1-5 added); between
the two renames of step 6 a reader may get the new signatures with the old top document (the
same as a reader whose two requests straddle any publication), never a document pinning a file
not yet written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry_tool.errors import CheckFailed, UsageError
from registry_tool.format import REGISTRY_JSON, Metadata, Pin, is_signature_of
from registry_tool.registry import site as site_io
from registry_tool.registry.document import SITE_PRINT, Generation, site_generation
from registry_tool.registry.errors import IndexKeyError
from registry_tool.registry.scan import IndexRelease, open_folder
from registry_tool.registry.verify import PreparedRelease
from registry_tool.signing import SecretKey, sign_bytes
from registry_tool.trust import Root, verify_index_signatures

#: The publishing steps, in order (``checkpoint`` is called after each).
STEPS = ("releases", "root", "meta", "catalog", "top-ready", "top-signatures", "top", "collect")


def checkpoint(step: str) -> None:
    """Called after each publishing step (``STEPS``); tests replace it to inject failures."""


@dataclass
class SiteFiles:
    """What a publication did to SITE's files (facts for the build report).

    Attributes:
        written: Files written (or moved in) by this build.
        kept: Files of the new publication already in place, untouched.
        removed: Files collected (used by neither the new nor the previous publication).
        swapped: The whole site was staged and swapped in (first build, or published bytes changed).
    """

    written: int = 0
    kept: int = 0
    removed: int = 0
    swapped: bool = False

    def as_dict(self) -> dict[str, int | bool]:
        """The counts as report data."""
        return {"written": self.written, "kept": self.kept, "removed": self.removed, "swapped": self.swapped}


@dataclass(frozen=True)
class SiteContent:
    """Everything a publication puts into SITE.

    Attributes:
        releases: Every release folder of the index.
        prepared: What verification (or the cache) derived from each, by (name, version).
        root_files: ``(site path, index path)`` of the root chain's files.
        metadata: The metadata documents.
        catalog: The browser catalog's files by site path.
        top: The top document's bytes.
        signatures: Its signature files by site path.
        verified_meta: Metadata paths of SITE that the previous publication's pins verified this
            build (``--previous`` is SITE itself): trusted without reading.
        previous_meta: Metadata paths the previous publication pins: kept one more generation
            (``verified_meta`` plus its catalog).
        previous_releases: ``name/version`` of the previous publication's releases when it is SITE.
        kept_plugins: The plugins kept whole: their releases are not in ``releases``, their files
            and folders in SITE checked by the caller (the site cannot be staged without them).
    """

    releases: list[IndexRelease]
    prepared: dict[tuple[str, str], PreparedRelease]
    root_files: list[tuple[str, Path]]
    metadata: Metadata
    catalog: dict[str, bytes]
    top: bytes
    signatures: dict[str, str]
    verified_meta: frozenset[str] = frozenset()
    previous_meta: frozenset[str] = frozenset()
    previous_releases: frozenset[str] | None = None
    kept_plugins: frozenset[str] = frozenset()


class NeedsWholeSite(Exception):
    """SITE must be staged whole, and the content leaves out the releases of plugins kept whole."""


class ConcurrentChangeError(CheckFailed):
    """An index file changed between verification and publication."""

    code = "changed-during-build"


# --------------------------------------------------------------------------- signing


def sign_registry(data: bytes, keys: list[SecretKey], root: Root, name: str, version: int) -> dict[str, str]:
    """Signature files for registry.json by every index key; the root's index threshold must be met.

    Returns:
        Site path -> signature file text (``registry.json.minisig`` for the first key, then
        ``registry.json.<KEYID>.minisig``).

    Raises:
        UsageError: No key.
        IndexKeyError: A key is not in the root's index role.
        ThresholdNotMetError: The keys do not meet the index threshold.
    """
    if not keys:
        raise UsageError("no index key given", fix="pass --key INDEX_KEY")
    index_ids = {k.key_id for k in root.role("index").keys}
    out: dict[str, str] = {}
    for i, key in enumerate(keys):
        if key.key_id not in index_ids:
            revoked = next((r for r in root.revoked if r.key.key_id == key.key_id), None)
            raise IndexKeyError(
                f"key {key.key_id} is not an index key of root v{root.version} "
                f"(index keys: {', '.join(sorted(index_ids)) or 'none'})"
                + (f"; it was revoked in root v{revoked.revoked_in_version}" if revoked else ""),
                fix=(
                    "sign with a current index key; a revoked key is never added again: generate a new "
                    "one (`registry-tool key generate`) and add it with `root rotate-keys`"
                    if revoked
                    else "sign with an index key listed in the root, or rotate keys with `root rotate-keys`"
                ),
            )
        comment = f"registry:{name}\tversion:{version}\tfile:{REGISTRY_JSON}"
        text = sign_bytes(
            key, data, trusted_comment=comment, untrusted_comment=f"registry-tool index key {key.key_id}"
        )
        out[f"{REGISTRY_JSON}.minisig" if i == 0 else f"{REGISTRY_JSON}.{key.key_id}.minisig"] = text
    verify_index_signatures(root, data, list(out.values()))
    return out


# --------------------------------------------------------------------------- small file operations


# O_EXCL: a new file, never through a name planted in the staging folder (a link included).
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def _write(path: Path | str, data: bytes) -> None:
    """Write a new file (the folder exists: one mkdir per folder, not per file).

    open, write, close: a full build writes every file of every release, and ``open(path, "xb")``
    adds an fstat, an ioctl, an lseek and a buffered file object to each.
    """
    fd = os.open(path, _NEW_FILE, 0o666)
    try:
        view = memoryview(data)
        while view:  # a write may be short (above 2 GiB on Linux)
            done = os.write(fd, view)
            if done <= 0:
                raise OSError(f"could not write {path}")
            view = view[done:]
    finally:
        os.close(fd)


def _replace(path: Path, data: bytes) -> None:
    """Give ``path`` these bytes in one rename (a reader sees the old file or the new one)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    _write(tmp, data)
    tmp.replace(path)


def write_release(staged: str, rel: IndexRelease, data: dict[str, bytes]) -> None:
    """Write the files of a release verified this build into the staging folder (the verified bytes)."""
    folder = f"{staged}/plugins/{rel.name}/{rel.version}"
    Path(folder).mkdir(parents=True)
    for name, content in data.items():
        if "/" in name:
            Path(f"{folder}/{name}").parent.mkdir(parents=True, exist_ok=True)
        _write(f"{folder}/{name}", content)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


SitePrint = bytes  # document.SITE_PRINT packed
_FILE_TYPE = 0o170000


def site_print(path: str) -> SitePrint | None:
    """size, mtime, ctime, inode and type of a regular site file or folder, else None (a link, missing).

    ctime is part of it because a user can set mtime back (``touch -d``, ``os.utime``) after
    changing a file in place, but not ctime: any write or ``utime`` moves it.  A folder's print
    changes when an entry is added, removed or renamed in it (its mtime and ctime move).  Packed
    bytes: the build cache holds one per site file, marshal decodes bytes far faster than tuples
    of numbers, and packing costs a third of writing the numbers out as text.
    """
    return site_prints([path])[0]


def site_prints(paths: Iterable[str], folder: int | None = None) -> list[SitePrint | None]:
    """``site_print`` of each path (one loop: a rebuild at 10,000 releases checks 41,000 paths).

    With ``folder`` (``scan.open_folder``), relative paths are looked up from that folder.
    """
    out: list[SitePrint | None] = []
    append, pack, lstat = out.append, SITE_PRINT.pack, os.lstat
    for path in paths:
        try:
            st = lstat(path, dir_fd=folder)
        except OSError:
            append(None)
            continue
        mode = st.st_mode & _FILE_TYPE  # stat.S_IFMT, without a call per path
        if mode != stat.S_IFREG and mode != stat.S_IFDIR:
            append(None)
            continue
        try:
            append(pack(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, mode))
        except struct.error:  # a time past what 64-bit nanoseconds hold: unknown, so written again
            append(None)
    return out


def folder_prints(folder: str, paths: list[str]) -> list[SitePrint | None]:
    """``site_print`` of ``folder``, then of each ``folder/path`` looked up from the open folder.

    The folder's own print is taken by its path, as ``site_print`` takes it; a folder swapped
    after it was opened only makes the prints disagree with what was recorded.
    """
    fd = open_folder(folder)
    if fd is None:
        return site_prints([folder, *[f"{folder}/{path}" for path in paths]])
    try:
        return [site_print(folder), *site_prints(paths, fd)]
    finally:
        os.close(fd)


def release_folders(files: Iterable[str]) -> list[str]:
    """The folders of a release's site files, relative to its folder ("" is the folder itself).

    Their prints say that nothing was added, removed or renamed in them since they were recorded:
    no stray file and no link a full build would remove or refuse.
    """
    folders = {""}
    for name in files:
        parts = name.split("/")[:-1]
        folders.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(folders)


def release_folder_paths(target: str, folders: list[str]) -> list[str]:
    """The paths of ``release_folders`` below the release folder ``target``.

    No trailing slash: ``lstat`` of ``folder/`` would follow a link.
    """
    return [f"{target}/{folder}" if folder else target for folder in folders]


def print_size(print_: object) -> int | None:
    """The file size a recorded site print holds (None for anything but a print)."""
    if not isinstance(print_, bytes) or len(print_) != SITE_PRINT.size:
        return None
    size: int = SITE_PRINT.unpack(print_)[0]
    return size


def _has_bytes(path: Path, sha256: str, size: int) -> bool:
    """The regular file ``path`` holds exactly the bytes with this digest and size."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            return False
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest() == sha256
    except OSError:
        return False


def checked_print(path: str, pin: Pin) -> SitePrint | None:
    """The site print of a file holding exactly the pinned bytes (read back), else None.

    A print is what later builds trust instead of reading the file, so it is only recorded for
    bytes checked now, between two prints that agree.
    """
    before = site_print(path)
    if before is None or not _has_bytes(Path(path), pin.sha256, pin.size):
        return None
    return before if site_print(path) == before else None


def _same_file(path: Path, data: bytes) -> bool:
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size != len(data):
            return False
        return path.read_bytes() == data
    except OSError:
        return False


def _index_bytes(rel: IndexRelease, name: str, sha256: str, size: int) -> bytes:
    """A release file read again from the index; it must still be the bytes verified (or cached)."""
    source = rel.path / name
    data = source.read_bytes()
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
        raise ConcurrentChangeError(
            f"{source} changed during the build",
            where=str(source),
            fix="run the build again when nothing is writing to the index",
        )
    return data


def _prints(prep: PreparedRelease) -> dict[str, Any]:
    """The cache record's stat prints of the release's site files (a scratch dict without a cache)."""
    return prep.cached.setdefault("site", {}) if prep.cached is not None else {}


# --------------------------------------------------------------------------- the whole site at once


def publish_staged(
    out: Path, staged: Path, content: SiteContent, current: Generation | None = None
) -> SiteFiles:
    """Fill ``staged`` with the whole site and swap it in (hard links from the old SITE where valid).

    The files of the ``current`` generation (what SITE serves now) that the new one does not use
    are linked in too, so a reader in flight still finds them; the next build collects them.
    """
    counts = SiteFiles(swapped=True)
    old_site = out if out.is_dir() else None
    for rel in content.releases:
        _stage_release(staged, rel, content.prepared[(rel.name, rel.version)], out, counts)
    if old_site is not None and current is not None:
        _keep_generation(old_site, staged, content, current)
    (staged / "root").mkdir()
    for relname, path in content.root_files:
        _write(staged / relname, path.read_bytes())
        counts.written += 1
    stage_metadata(staged, content.metadata, old_site, counts)
    for name, data in content.catalog.items():
        _write(staged / name, data)
        counts.written += 1
    _write(staged / REGISTRY_JSON, content.top)
    for name, text in content.signatures.items():
        _write(staged / name, text.encode("utf-8"))
    counts.written += 1 + len(content.signatures)
    site_io.swap_into_place(staged, out)
    _record_folders(out, content, {(r.name, r.version) for r in content.releases})
    return counts


def _record_folders(out: Path, content: SiteContent, searched: set[tuple[str, str]]) -> None:
    """Record the folder prints of the release folders this build wrote into or searched.

    A folder whose recorded print still held when it was compared is left as recorded: a change
    someone else made to it during the build then still shows at the next build, which searches it.
    """
    site = str(out)
    for key in sorted(searched):
        prep = content.prepared[key]
        folders = release_folders(prep.files)
        target = f"{site}/plugins/{key[0]}/{key[1]}"
        _prints(prep).update(zip(folders, site_prints(release_folder_paths(target, folders)), strict=True))


def _stage_release(
    staged: Path, rel: IndexRelease, prep: PreparedRelease, old_site: Path, counts: SiteFiles
) -> None:
    """Stage a release's files.

    Already written when verified this build; for a cache hit a hard link to the identical old
    site file, else the index file read again.

    An old site file is reused only if it still has the size, mtime and inode recorded when
    this tool wrote it (and the cache says its digest is unchanged); otherwise the index file
    is read again and must still have the digest the build verified.  Plain ``os`` calls on
    strings: with 10,000 releases, pathlib objects cost more than the system calls.
    """
    relpath = f"plugins/{rel.name}/{rel.version}"
    folder = f"{staged}/{relpath}"
    old_folder = f"{old_site}/{relpath}"
    prints = _prints(prep)
    if prep.written:  # verified this build and written right after (``workers.prepare_all``)
        prints.update((name, site_print(f"{folder}/{name}")) for name in prep.files)
        counts.written += len(prep.files)
        return
    Path(folder).mkdir(parents=True)
    for name, (sha, size) in sorted(prep.files.items()):
        dst = f"{folder}/{name}"
        recorded = prints.get(name)
        if print_size(recorded) == size and site_print(f"{old_folder}/{name}") == recorded:
            _link_or_copy(f"{old_folder}/{name}", dst)
            counts.kept += 1
            continue  # same inode: the recorded print still holds
        _write(Path(dst), _index_bytes(rel, name, sha, size))
        counts.written += 1
        prints[name] = site_print(dst)


def _keep_generation(old_site: Path, staged: Path, content: SiteContent, current: Generation) -> None:
    """Link the current generation's files the new publication drops into the staging folder."""
    wanted = {f"{r.name}/{r.version}" for r in content.releases}
    new_meta = content.metadata.paths()
    keep = [m for m in sorted(current.meta) if m not in new_meta]
    for key in sorted(current.releases - wanted):
        folder = old_site / "plugins" / key
        if folder.is_dir() and not folder.is_symlink():
            refuse_links_below(folder)  # a link carried over would be published
            keep.extend(p.relative_to(old_site).as_posix() for p in sorted(folder.rglob("*")) if p.is_file())
    for rel in keep:
        src = old_site / rel
        if not src.is_file() or (staged / rel).exists():
            continue
        (staged / rel).parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(str(src), str(staged / rel))


def stage_metadata(staged: Path, meta: Metadata, old_site: Path | None, counts: SiteFiles) -> None:
    """Put every metadata document into the staging folder.

    Documents are content-addressed, so a file of the old site at the same path holds the same
    bytes unless someone modified it: it is kept (hard-linked) when its bytes are those, else
    written.
    """
    folders: set[str] = set()
    for rel, data in sorted(meta.paths().items()):
        folder = rel.rsplit("/", 1)[0]
        if folder not in folders:
            (staged / folder).mkdir(parents=True, exist_ok=True)
            folders.add(folder)
        if old_site is not None and _same_file(old_site / rel, data):
            _link_or_copy(str(old_site / rel), str(staged / rel))
            counts.kept += 1
        else:
            _write(staged / rel, data)
            counts.written += 1


# --------------------------------------------------------------------------- in place


class _NeedsSwap(Exception):
    """SITE holds other bytes at a path the new publication needs: only a whole-site swap is atomic."""


@dataclass
class _Changes:
    """What an in-place publication does, decided before anything is written."""

    move_folders: list[tuple[Path, Path]] = field(default_factory=list)  # staged release folder -> SITE
    add_files: list[tuple[Path, bytes | Path]] = field(
        default_factory=list
    )  # SITE path <- bytes or staged file
    root_files: list[tuple[Path, bytes]] = field(default_factory=list)
    meta: list[tuple[Path, bytes, bool]] = field(
        default_factory=list
    )  # path, bytes, replace an existing file
    catalog: list[tuple[Path, bytes]] = field(default_factory=list)
    extra_files: list[Path] = field(default_factory=list)  # files and folders release folders do not publish
    # Prints to record: (release, file name, path, the print its bytes were checked under, or None
    # for a file this build writes).
    recorded: list[tuple[PreparedRelease, str, str, SitePrint | None]] = field(default_factory=list)
    searched: set[tuple[str, str]] = field(default_factory=set)  # release folders written or searched
    kept: int = 0


def publish(out: Path, staged: Path, content: SiteContent) -> SiteFiles:
    """Publish ``content`` into SITE: in place when SITE is a published site, else by a swap.

    Args:
        out: SITE (a real folder path, locked by the caller).
        staged: The build's staging folder next to SITE (release files verified this build are in it).
        content: What to publish.

    Returns:
        What happened to SITE's files.
    """
    # The folders of plugins kept whole are neither written nor collected by this build; a build
    # that writes into one walks it (the link at plugins/<name> itself is refused either way).
    refuse_links(out, skip_plugins=content.kept_plugins)
    partial = bool(content.kept_plugins or content.metadata.carried)
    if not (out / REGISTRY_JSON).is_file():
        if partial:  # the content leaves out what SITE held: staging it alone would lose it
            raise NeedsWholeSite
        return publish_staged(out, staged, content)
    # What SITE serves now stays one more build, for readers that fetched its top document just
    # before this publication: known already when --previous is SITE, else read from SITE.
    current = (
        Generation(content.previous_meta, content.previous_releases)
        if content.previous_releases is not None
        else site_generation(out)
    )
    if current is None:
        # registry.json there is no top document: not a site a build wrote (a project folder with a
        # registry.json of its own, a planted copy).  Neither updated in place (foreign files would
        # stay served) nor replaced (a typo must not delete someone's work).
        raise site_io.UnsafeSiteError(
            f"{out}/{REGISTRY_JSON} is not a {REGISTRY_JSON} a build wrote; refusing to update or replace "
            f"{out}",
            where=str(out / REGISTRY_JSON),
            fix="pass an empty or new folder, or a folder a previous build wrote",
        )
    try:
        changes = _diff(out, staged, content)
    except _NeedsSwap:
        if partial:
            raise NeedsWholeSite from None
        return publish_staged(out, staged, content, current)
    return _apply(out, staged, content, changes, current)


def refuse_links(out: Path, *, skip_plugins: frozenset[str] = frozenset()) -> None:
    """Refuse a SITE holding a symbolic link in any folder the build writes, deletes or copies in.

    The in-place update writes, renames and collects files inside SITE's folders; through a link
    planted in SITE (``meta -> /elsewhere``) it would write and delete outside SITE with the
    builder's permissions.  A build never writes a link, so one is refused, never followed.

    Every folder is searched except the inside of release folders (``plugins/<name>/<version>/``,
    which are checked themselves): at 10,000 releases their contents are most of SITE, and the
    build only reads an unchanged release's files by ``lstat`` (a link is not a file it wrote);
    nor the folders of plugins kept whole (``skip_plugins``: nothing is written or collected
    there; a link at ``plugins/<name>`` itself is still refused).
    The release folders it writes into, collects from or carries over are searched in full
    (``refuse_links_below``) before anything is written.

    Raises:
        UnsafeSiteError: A link was found (named in the message).
    """
    if out.is_dir():
        _walk_refusing_links(str(out), skip_release_contents=True, skip_plugins=skip_plugins)


def refuse_links_below(folder: Path) -> None:
    """Refuse a symbolic link anywhere below ``folder`` (a release folder the build touches)."""
    if folder.is_dir():
        _walk_refusing_links(str(folder), skip_release_contents=False)


def _walk_refusing_links(
    top: str, *, skip_release_contents: bool, skip_plugins: frozenset[str] = frozenset()
) -> None:
    """Walk ``top`` (SITE, or a release folder) without following links, refusing any.

    ``skip_plugins``: plugin folders (``plugins/<name>``, SITE only) not descended into.
    """
    todo = [(top, 0)]
    while todo:
        folder, depth = todo.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_symlink():
                    raise site_io.UnsafeSiteError(
                        f"{entry.path} is a symbolic link; the builder never writes or deletes through links",
                        where=entry.path,
                        fix="remove the link, or build into a new --out",
                    )
                if not entry.is_dir(follow_symlinks=False):
                    continue
                # SITE/plugins/<name>/<version> is at depth 3 below SITE.
                if skip_release_contents and depth == 2 and folder.startswith(f"{top}/plugins/"):
                    continue
                if depth == 1 and entry.name in skip_plugins and folder == f"{top}/plugins":
                    continue
                todo.append((entry.path, depth + 1))


def _diff(out: Path, staged: Path, content: SiteContent) -> _Changes:
    """Compare SITE with the publication (reads and stats only)."""
    changes = _Changes()
    site = str(out)
    for rel in content.releases:
        prep = content.prepared[(rel.name, rel.version)]
        relpath = f"plugins/{rel.name}/{rel.version}"
        target = f"{site}/{relpath}"
        for folder in (f"{site}/plugins/{rel.name}", target):
            # A file where the site has a folder: nothing can be written into it in place (a link
            # there is refused by refuse_links); the whole site is staged again instead.
            if os.path.lexists(folder) and not os.path.isdir(folder):  # noqa: PTH112 (strings)
                raise _NeedsSwap(folder)
        if prep.written and not os.path.lexists(target):
            changes.move_folders.append((staged / relpath, Path(target)))
            changes.recorded.extend((prep, name, f"{target}/{name}", None) for name in prep.files)
            changes.searched.add((rel.name, rel.version))
            continue
        prints = _prints(prep)
        checked = False
        folders = release_folders(prep.files)
        if not prep.written and any(
            now != prints.get(folder)
            for folder, now in zip(folders, site_prints(release_folder_paths(target, folders)), strict=True)
        ):
            # Something was added, removed or renamed in the release folder since this tool recorded
            # it (or nothing was recorded): search it for links and stray files, as a full build does.
            refuse_links_below(Path(target))
            checked = True
            changes.extra_files.extend(_extra_files(target, prep))
            changes.searched.add((rel.name, rel.version))
        for name, (sha, size) in sorted(prep.files.items()):
            file_path = f"{target}/{name}"
            now = site_print(file_path)
            if now is not None and not prep.written and now == prints.get(name):
                changes.kept += 1  # this tool wrote it and nothing touched it since
                continue
            if not checked:  # the build will write into this release folder, or compare its bytes
                refuse_links_below(Path(target))
                checked = True
                changes.searched.add((rel.name, rel.version))
            if now is None:
                source: bytes | Path = (
                    staged / relpath / name if prep.written else _index_bytes(rel, name, sha, size)
                )
                changes.add_files.append((Path(file_path), source))
                changes.recorded.append((prep, name, file_path, None))
            elif _has_bytes(Path(file_path), sha, size):
                changes.kept += 1
                changes.recorded.append((prep, name, file_path, now))  # the print it was read under
            else:
                raise _NeedsSwap(file_path)
        # Changed this build: files it no longer publishes (os.path on strings: see IndexRelease).
        if prep.written and os.path.isdir(target):  # noqa: PTH112
            refuse_links_below(Path(target))
            changes.extra_files.extend(_extra_files(target, prep))
            changes.searched.add((rel.name, rel.version))
    for relname, path in content.root_files:
        data = path.read_bytes()
        if not (out / relname).exists():
            changes.root_files.append((out / relname, data))
        elif _same_file(out / relname, data):
            changes.kept += 1
        else:
            raise _NeedsSwap(out / relname)
    for relname, data in sorted(content.metadata.paths().items()):
        path = out / relname
        if relname in content.verified_meta:
            changes.kept += 1
        elif not path.exists():
            changes.meta.append((path, data, False))
        elif _same_file(path, data):
            changes.kept += 1
        else:  # not the bytes its name says (torn or tampered): nothing trusted pins it yet
            changes.meta.append((path, data, True))
    for name, data in content.catalog.items():
        if _same_file(out / name, data):
            changes.kept += 1
        else:
            changes.catalog.append((out / name, data))
    return changes


def _extra_files(target: str, prep: PreparedRelease) -> list[Path]:
    """Files and folders in a release folder the release does not publish (links were refused before).

    A stray folder is listed whole (removed with what it holds), never left behind: the release
    folder's print recorded after this build would otherwise vouch for whatever lands in it later.
    """
    if not os.path.isdir(target):  # noqa: PTH112 (strings: see IndexRelease)
        return []
    folders = set(release_folders(prep.files))
    extra: list[Path] = []
    for root, dirs, files in os.walk(target):  # links are not followed (and were refused)
        rel = os.path.relpath(root, target).replace(os.sep, "/")
        prefix = "" if rel == "." else f"{rel}/"
        for name in list(dirs):
            if f"{prefix}{name}" not in folders:
                extra.append(Path(root, name))
                dirs.remove(name)
        extra.extend(Path(root, name) for name in files if f"{prefix}{name}" not in prep.files)
    return extra


def _apply(
    out: Path, staged: Path, content: SiteContent, changes: _Changes, current: Generation
) -> SiteFiles:
    """Write the changes in the order of ``STEPS``; undo steps 1-5 on failure."""
    counts = SiteFiles(kept=changes.kept)
    added: list[Path] = []  # files and folders this build created in SITE, for the undo
    journal: Path | None = None
    try:
        for src, dst in changes.move_folders:
            if not dst.parent.is_dir():
                dst.parent.mkdir(parents=True)
                added.append(dst.parent)
            src.rename(dst)
            added.append(dst)
            counts.written += sum(1 for p in dst.rglob("*") if p.is_file())
        for path, source in changes.add_files:
            if not path.parent.is_dir():
                path.parent.mkdir(parents=True)
                added.append(path.parent)
            if isinstance(source, Path):
                source.rename(path)
            else:
                _replace(path, source)
            added.append(path)
            counts.written += 1
        for prep, name, recorded_path, read_under in changes.recorded:
            printed = site_print(recorded_path)
            if read_under is None or printed == read_under:
                _prints(prep)[name] = printed
            else:  # changed by someone else since its bytes were read: the next build reads it again
                _prints(prep).pop(name, None)
        checkpoint("releases")
        for path, data in changes.root_files:
            _replace(path, data)
            added.append(path)
            counts.written += 1
        checkpoint("root")
        for path, data, existing in changes.meta:
            if existing:
                _replace(path, data)
            else:
                if not path.parent.is_dir():
                    path.parent.mkdir(parents=True)
                    added.append(path.parent)
                _write(path, data)
                added.append(path)
            counts.written += 1
        checkpoint("meta")
        for path, data in changes.catalog:
            _replace(path, data)
            counts.written += 1
        checkpoint("catalog")
        journal = site_io.write_journal(staged, content.top, content.signatures)
        checkpoint("top-ready")
    except BaseException:
        if journal is not None:
            site_io.discard_journal(journal)
        for path in reversed(added):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise
    try:
        site_io.complete_journal(journal, out, between=checkpoint)
    except BaseException:
        site_io.complete_journal(journal, out)  # the signatures may be in: finish, never leave a mixed pair
        raise
    counts.written += 1 + len(content.signatures)
    checkpoint("top")
    counts.removed = _collect(out, content, changes, current)
    checkpoint("collect")
    _record_folders(out, content, changes.searched)
    return counts


# --------------------------------------------------------------------------- the top document


def publish_top(out: Path, staged: Path, top: bytes, signatures: dict[str, str]) -> None:
    """Replace only the top document and its signatures (``resign``), stale signature files removed."""
    journal = site_io.write_journal(staged, top, signatures)
    try:
        site_io.complete_journal(journal, out)
    except BaseException:
        site_io.complete_journal(journal, out)
        raise
    _remove_stale_signatures(out, signatures)


def _remove_stale_signatures(out: Path, signatures: dict[str, str]) -> int:
    removed = 0
    for entry in os.scandir(out):
        if is_signature_of(entry.name, REGISTRY_JSON) and entry.name not in signatures:
            Path(entry.path).unlink()
            removed += 1
    return removed


# --------------------------------------------------------------------------- collecting


def _collect(out: Path, content: SiteContent, changes: _Changes, current: Generation) -> int:
    """Remove what neither this publication nor the one it replaced (``current``) uses."""
    removed = _remove_stale_signatures(out, content.signatures)
    for path in changes.extra_files:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)  # never follows a link inside (and links were refused)
        else:
            path.unlink(missing_ok=True)
        removed += 1
    plugins = out / "plugins"
    # With --previous SITE every release it published is in this build too (immutability), and
    # its generation was collected by the build that published it: nothing to look for.
    gone: list[str] = []
    if content.previous_releases is None:
        keep_releases = {f"{r.name}/{r.version}" for r in content.releases} | current.releases
        gone = [
            f"{p.name}/{v.name}"
            for p in _folders(plugins)
            if p.name not in content.kept_plugins
            for v in _folders(plugins / p.name)
            if f"{p.name}/{v.name}" not in keep_releases
        ]
    for key in sorted(gone):
        release_folder = plugins / key
        removed += sum(1 for p in release_folder.rglob("*") if p.is_file())
        shutil.rmtree(release_folder, ignore_errors=True)
        if not any(release_folder.parent.iterdir()):
            release_folder.parent.rmdir()
    root_files = {relname for relname, _ in content.root_files}
    for entry in _files(out / "root"):
        if f"root/{entry.name}" not in root_files:
            Path(entry.path).unlink()
            removed += 1
    keep = set(content.metadata.paths()) | content.verified_meta | current.meta
    for folder in _folders(out / "meta"):
        for entry in _files(Path(folder.path)):
            if f"meta/{folder.name}/{entry.name}" not in keep:
                Path(entry.path).unlink()
                removed += 1
    return removed


def _folders(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return [e for e in it if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _files(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return [e for e in it if not e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []
