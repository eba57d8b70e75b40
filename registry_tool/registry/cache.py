"""The incremental build cache.

Two levels, both conservative:

* a *stat* fingerprint of every file and folder in a release folder (size, mtime, ctime,
  inode) lets an unchanged release skip even reading its files, like git's index.  A file
  whose mtime is within ``RACY_SECONDS`` of the scan that took its print is never trusted
  by stat (it could have changed again within the clock's granularity).  The index keeps
  the prints taken outside that window (``listings``, with each plugin folder's own print and
  versions): the next scan ``lstat``s their names instead of listing the folders again, like
  git's untracked cache;
* a *content* key, the digest of every file's bytes plus the root, registry.toml,
  publication time and tool version, lets a release whose files were touched but not
  changed (a fresh git checkout) skip validation, signature checks and the smoke run.

The cache also records the plugin documents the last build published into SITE
(``PublicationRecord``): each document's digest, the fingerprint of the releases it was encoded
from, its catalog entry and its file's site print.  A rebuild with ``--previous SITE`` carries a
document over without reading it when its plugin's fingerprint and its file are unchanged, and
decodes the other recorded documents (fetched by pin) without running the verifier's rules again.

An entry stores what the build derived from the release (its plugin-document entry and
per-file digests), so a hit reproduces the same bytes as a full build.  ``lookup`` and
``record`` are the build's two calls.

The file is a header line (format, Python and tool version, a random nonce: see ``_HEADER``),
then records appended by each build: the entries of the releases it verified (each one
``marshal`` blob), then the index (one ``marshal`` blob: content keys, the publication record,
the recorded roots and feature set, where each release's entry is and its CRC-32; or a delta on
the index record before it, ``_MAX_DEPTH`` deep at most), then a fixed trailer locating the index,
with the nonce and a CRC-32 over nonce and index.  A build reads the
trailer and the index,
and each entry only when it asks for that release; saving appends only what is new (under an
exclusive ``flock``), so an unchanged entry is never read, copied or written again.  When the
file holds more than twice what is live, or another build replaced it, it is written anew
(entries copied in the kernel with ``os.copy_file_range``) and renamed over the old one.  The
cache is trusted local state like the tool itself (whoever can write it can make the build skip
checks, so it lives in a folder only the publishing user can write).  A file of another format,
Python or tool version, or whose trailer or index fails its check, is an empty cache (a build that
died while appending leaves such a tail); an entry failing its CRC is a miss.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import marshal
import os
import secrets
import stat
import struct
import sys
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from platformdirs import user_cache_dir

from registry_tool import __version__
from registry_tool.manifest import tree
from registry_tool.registry.document import PublicationRecord
from registry_tool.registry.scan import IndexRelease, RootChain, StatPrint
from registry_tool.registry.verify import PreparedRelease

log = logging.getLogger(__name__)

# 11: an index record may be a delta on the one before it (``_MAX_DEPTH``);
# 10: stat prints name the release's folders, the index holds the listings (``listings``), entries
# date from the scan; 9: stat and site prints packed (bytes); 8: verdicts under the registry default
# feature set and the shared-memory rule (a release a cache of format 7 passed may now be refused);
# 7: an entry blob per release, plugins recorded whole; 6: one marshal blob; 5: JSON.
CACHE_FORMAT = 11
RACY_SECONDS = 2.0
# marshal's format belongs to the Python version, so the header names it; the CRC-32s make a
# torn or corrupted file (or entry) no cache (or a miss).
# The tool version: every record (roots, tree nodes, documents, entries) is this version's verdict.
# The nonce, random per file, is repeated in every trailer and covered by its CRC: bytes an index
# author put into an entry cannot pass for a trailer after a torn append.
_HEADER = "registry-tool build cache {format} {python} {tool} {nonce}\n"
# Where a release's entry is in the file: (offset, length, CRC-32).
_Where = tuple[int, int, int]
# The last bytes of the file: magic, the index's offset, length and CRC-32.
_TRAILER = struct.Struct("<8s8sQQI4x")
_MAGIC = b"RTBCIDX7"
# A file is written anew when it holds more than twice what is live plus this much.
_SLACK = 8 << 20
# Index records a build may append as deltas (what changed since the index it loaded) before it
# writes a whole one: at 10,000 releases the whole index is 4.5 MB, and encoding it was a tenth of
# a one-change rebuild in a fresh process.  A load decodes the whole one and at most this many deltas.
_MAX_DEPTH = 16
_MISSING = object()


def stat_print(files: list[tuple[str, str]]) -> tuple[StatPrint, int]:
    """The stat print of these files, in the given order, and their newest mtime or ctime (ns)."""
    _, stat, newest, _ = tree.stat_print([(rel, path, os.lstat(path)) for rel, path in files])
    return stat, newest


def content_key(release: str, parts: list[tuple[str, str]], context: str) -> str:
    """The content key: sha256 over ``context``, the release and every (relative name, file sha256).

    The release (``name/version``) is part of it: a folder holding a byte copy of another
    release's files is not that release (its name, path and signatures are checked for this
    folder, never borrowed).
    """
    h = hashlib.sha256(f"{context}\0{release}".encode())
    for rel, digest in parts:
        h.update(f"\0{rel}\0{digest}".encode())
    return h.hexdigest()


@dataclass
class CacheEntry:
    """One release's record: its stat print when verified, its content key and derived data."""

    stat: StatPrint
    stat_context: str
    written_at: float
    content_key: str
    data: dict[str, Any]


class BuildCache:
    """A file of entries keyed by release (``name/version``) and by content key.

    Each release's entry is its own ``marshal`` blob inside the file, decoded only when the build
    asks for that release: a rebuild that carries a whole plugin over (``publish.KeptPlugin``)
    never decodes the entries of its releases, and writes their blobs back as they were.
    """

    def __init__(self, path: Path | None) -> None:
        """Load the cache's index at ``path`` (None: a disabled cache that answers nothing)."""
        self.path = path
        self._by_release: dict[str, CacheEntry | _Where] = {}
        self._by_content: dict[str, str] = {}  # content key -> release
        self._listings: dict[str, StatPrint] = {}  # release -> its stat print, when the scan may trust it
        # SITE -> what the last build published there (parsed only when asked for).
        self._publication: tuple[str, Any] | None = None
        self._roots: list[str] = []  # sha256 of root documents a build parsed, schema included
        self._features: list[str] = []  # feature sets wasmtime accepted (``wasm.features_verdict``)
        self._file: BinaryIO | None = None  # the loaded file, open for the entries not read yet
        self._size = 0  # its size when loaded
        self._nonce = b""  # its nonce (see _HEADER)
        self._body = 0  # the size of its index records (the whole one and the deltas on it)
        self._index_at: _Where | None = None  # the newest index record: where, length, CRC-32
        self._depth = 0  # deltas between the newest index record and the whole one
        self._saved: dict[str, Any] = {}  # the parts as the newest index record has them
        if path is not None:
            self._load(path)

    @property
    def enabled(self) -> bool:
        """A cache file is in use."""
        return self.path is not None

    def __len__(self) -> int:
        """The number of releases the cache holds."""
        return len(self._by_release)

    def _load(self, path: Path) -> None:
        try:
            # Non-blocking, and a regular file only: a FIFO in its place held the build (and the
            # site's lock) forever at the open.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return  # a missing cache is an empty cache
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return  # no cache: the save replaces it with one
        fh = open(fd, "rb", buffering=0, closefd=True)  # noqa: SIM115 (kept open for the entries, see _entry)
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH)  # not while a build appends
            try:
                head = fh.readline(200)
                nonce = bytes.fromhex(head.rsplit(b" ", 1)[-1].decode())
                if head != _header(nonce) or len(nonce) != 8:
                    raise ValueError("another format, Python or tool version")
                size = os.fstat(fh.fileno()).st_size
                magic, tag, offset, length, crc = _TRAILER.unpack(
                    os.pread(fh.fileno(), _TRAILER.size, size - _TRAILER.size)
                )
                if (
                    magic != _MAGIC
                    or tag != nonce
                    or offset < len(head)
                    or offset + length + _TRAILER.size != size
                ):
                    raise ValueError("a torn or corrupted file")
                chain = _read_chain(fh.fileno(), nonce, (offset, length, crc), len(head))
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            payload = _fold(chain)
            by_release, by_content = payload["releases"], payload["content"]
            if not (isinstance(by_release, dict) and isinstance(by_content, dict)):
                raise TypeError("malformed cache")
            pub, roots = payload.get("publication"), payload.get("roots")
            features = payload.get("features")
            listings = payload.get("listings")
        except (OSError, ValueError, EOFError, TypeError, KeyError, IndexError, AttributeError, struct.error):
            fh.close()
            return
        # Entries outside the records before the index (a damaged index) are gone, not errors later.
        start, end = len(head), offset
        self._by_release = {
            key: where
            for key, where in by_release.items()
            if type(where) is tuple
            and len(where) == 3
            and type(where[0]) is int
            and type(where[1]) is int
            and start <= where[0] <= end - where[1]
        }
        self._by_content = by_content
        if isinstance(listings, dict):
            self._listings = {
                key: was for key, was in listings.items() if isinstance(key, str) and isinstance(was, bytes)
            }
        if isinstance(pub, tuple) and len(pub) == 2 and isinstance(pub[0], str):
            self._publication = pub
        if isinstance(roots, list) and all(isinstance(r, str) for r in roots):
            self._roots = roots
        if isinstance(features, list) and all(isinstance(f, str) for f in features):
            self._features = features
        self._file, self._size, self._nonce = fh, size, nonce
        self._body = sum(where[1] for where, _ in chain)
        self._index_at, self._depth = (offset, length, crc), len(chain) - 1
        self._saved = self._parts(cast("dict[str, _Where]", self._by_release))  # only wheres after a load

    def _read(self, where: _Where) -> bytes | None:
        """An entry's bytes from the loaded file, None when unreadable or failing its CRC."""
        offset, length, crc = where
        if self._file is None:
            return None
        try:
            blob = os.pread(self._file.fileno(), length, offset)
        except (OSError, ValueError, OverflowError, TypeError):
            return None
        return blob if len(blob) == length and zlib.crc32(blob) == crc else None

    def _entry(self, release: str) -> CacheEntry | None:
        """A release's entry, read and decoded on first use (a malformed one is no entry)."""
        entry = self._by_release.get(release)
        if entry is None or isinstance(entry, CacheEntry):
            return entry
        blob = self._read(entry)
        try:
            if blob is None:
                raise ValueError("unreadable cache entry")
            stat, context, written_at, ckey, data = marshal.loads(blob)  # noqa: S302 (see the docstring)
            if not (isinstance(stat, bytes) and isinstance(context, str) and isinstance(ckey, str)):
                raise TypeError("malformed cache entry")
            if not isinstance(data, dict):
                raise TypeError("malformed cache entry")
            decoded = CacheEntry(stat, context, float(written_at), ckey, data)
        except (ValueError, EOFError, TypeError):
            del self._by_release[release]
            return None
        self._by_release[release] = decoded
        return decoded

    def by_stat(self, release: str, stat: StatPrint, stat_context: str, newest: int) -> dict[str, Any] | None:
        """The release's data when its files have the recorded stat print (and are not racy).

        ``newest`` is the newest mtime or ctime (ns) of the files the print describes.
        """
        entry = self._entry(release)
        if entry is None or entry.stat != stat or entry.stat_context != stat_context:
            return None
        if newest / 1e9 >= entry.written_at - RACY_SECONDS:
            return None
        log.debug("build cache hit (unchanged files): %s", release)
        return entry.data

    def knows(self, release: str) -> bool:
        """The cache has an entry for ``name/version`` (whatever its files)."""
        return release in self._by_release

    def by_content(self, key: str) -> dict[str, Any] | None:
        """The data stored under a content key."""
        release = self._by_content.get(key)
        entry = self._entry(release) if release is not None else None
        if entry is None or entry.content_key != key:
            return None
        log.debug("build cache hit (same content): %s", key)
        return entry.data

    def put(self, look: Lookup, key: str, data: dict[str, Any]) -> None:
        """Record a release's stat print, content key and data (written at the next ``save``).

        The entry dates from the scan that took the print (``Lookup.seen_at``), not from now: a
        file changed after its ``lstat`` within the clock's granularity keeps its times, and only
        a window measured from before the ``lstat`` covers that.
        """
        old = self._entry(look.key)
        if old is not None and self._by_content.get(old.content_key) == look.key:
            del self._by_content[old.content_key]  # the content index never outgrows the releases
        self._by_release[look.key] = CacheEntry(look.stat, look.context, look.seen_at, key, data)
        self._by_content[key] = look.key

    def listings(self) -> Mapping[str, StatPrint]:
        """Stat prints by release that the next scan may check instead of listing the folders."""
        return self._listings

    def remember_listings(
        self,
        releases: list[IndexRelease],
        scanned_at: float,
        folders: Mapping[str, tuple[StatPrint, int]] | None = None,
    ) -> None:
        """Record the stat prints of this scan that the next one may trust (written at ``save``).

        Only prints whose every file and folder was last changed before the racy window of the
        scan that took them: equal times then prove an unchanged listing (``scan._recorded_files``).
        A print is about the folder's names alone, so every scanned release's counts, whatever
        the cache holds for it; one whose window has not passed keeps no listing.  ``folders``
        are the plugin folders' prints and newest times (``scan_releases``), kept by plugin name.
        """
        trusted = (scanned_at - RACY_SECONDS) * 1e9
        listings = self._listings
        for rel in releases:
            if rel.stat and rel.settled < trusted:
                listings[rel.key] = rel.stat
            else:
                listings.pop(rel.key, None)
        for name, (print_, settled) in (folders or {}).items():
            if settled < trusted:
                listings[name] = print_
            else:
                listings.pop(name, None)

    def keep_only(self, releases: set[str]) -> None:
        """Forget releases (and plugin folders) no longer in the index so the file does not grow forever."""
        if not self._by_release.keys() <= releases:  # one set test when nothing was removed
            self._by_release = {k: v for k, v in self._by_release.items() if k in releases}
        gone = self._listings.keys() - releases  # plugin folders, and releases removed
        if gone:
            names = {key.partition("/")[0] for key in releases}
            for key in gone:
                if "/" in key or key not in names:
                    del self._listings[key]

    def checked_roots(self) -> frozenset[str]:
        """sha256 of the root documents an earlier build checked against the schema."""
        return frozenset(self._roots)

    def remember_roots(self, digests: set[str]) -> None:
        """Record the root documents this build parsed (written at the next ``save``)."""
        self._roots = sorted(digests)

    def proven_features(self) -> frozenset[str]:
        """Feature sets the installed wasmtime accepted in an earlier build (``wasm.features_verdict``)."""
        return frozenset(self._features)

    def remember_features(self, verdict: str | None) -> None:
        """Record the feature set this build's wasmtime accepted (written at the next ``save``)."""
        self._features = [verdict] if verdict is not None else []

    def publication(self, site: Path) -> PublicationRecord | None:
        """What the last build that used this cache published into ``site``, or None."""
        if self._publication is None or self._publication[0] != str(site):
            return None
        try:
            return PublicationRecord.from_data(self._publication[1])
        except (KeyError, TypeError, ValueError):
            return None  # a corrupt record is no record: --previous is read in full

    def remember_publication(self, site: Path, record: PublicationRecord) -> None:
        """Record what this build published into ``site`` (written at the next ``save``)."""
        self._publication = (str(site), record.to_data())

    def save(self) -> None:
        """Append what is new to the loaded file, or write the file anew (see the module docstring)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._file is not None and self._append():
            return
        self._rewrite()

    def _append(self) -> bool:
        """Append the new entries, the index and the trailer; False when the file must be rewritten."""
        assert self._file is not None and self.path is not None
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # builds sharing the cache append one at a time
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != _identity(self._file) or st.st_size < self._size:
                return False  # replaced or cut since it was loaded: the offsets no longer hold
            pos, out = st.st_size, bytearray()
            index: dict[str, Any] = dict(self._by_release)  # then every entry made a _Where
            for key, entry in index.items():  # offsets are explicit: any order reads back
                if isinstance(entry, CacheEntry):
                    blob = _encode(entry)
                    index[key] = (pos + len(out), len(blob), zlib.crc32(blob))
                    out += blob
            live = sum([where[1] for where in index.values()])
            # Mostly dead records: write it anew.  Tested first with the loaded index's size, so
            # that the index is not encoded twice when the file is written anew.
            if st.st_size + len(out) + self._body > 2 * (live + self._body) + _SLACK:
                return False
            parts = self._parts(index)
            delta = self._index_at is not None and self._depth < _MAX_DEPTH
            body = self._delta(parts) if delta else marshal.dumps(parts)
            chain = (self._body if delta else 0) + len(body)
            if st.st_size + len(out) + len(body) > 2 * (live + chain) + _SLACK:
                return False
            out += body
            nonce = self._nonce
            at = (pos + len(out) - len(body), len(body), zlib.crc32(nonce + body))
            out += _TRAILER.pack(_MAGIC, nonce, *at)
            _write_all(fd, bytes(out))
        finally:
            os.close(fd)  # and the lock with it
        self._size, self._body = pos + len(out), chain  # entries not read stay where they were
        self._index_at, self._depth, self._saved = at, self._depth + 1 if delta else 0, parts
        return True

    def _rewrite(self) -> None:
        """Write the file anew and rename it over the old one (unchanged entries copied in the kernel)."""
        assert self.path is not None
        nonce = secrets.token_bytes(8)
        head = _header(nonce)
        index: dict[str, _Where] = {}
        pieces: list[bytes | tuple[int, int]] = []  # new bytes, or (offset, length) in the loaded file
        pos = len(head)
        for key, entry in sorted(self._by_release.items()):
            if isinstance(entry, CacheEntry):
                blob = _encode(entry)
                index[key] = (pos, len(blob), zlib.crc32(blob))
                pieces.append(blob)
                pos += len(blob)
                continue
            offset, length, crc = entry
            index[key] = (pos, length, crc)
            last = pieces[-1] if pieces else None
            if isinstance(last, tuple) and last[0] + last[1] == offset:
                pieces[-1] = (last[0], last[1] + length)  # one copy for a run of unchanged entries
            else:
                pieces.append((offset, length))
            pos += length
        parts = self._parts(index)
        body = marshal.dumps(parts)
        fd, tmp = tempfile.mkstemp(prefix=".cache-", dir=self.path.parent)
        try:
            _write_all(fd, head)
            for piece in pieces:
                if isinstance(piece, bytes):
                    _write_all(fd, piece)
                else:
                    self._copy(piece, fd)
            _write_all(fd, body + _TRAILER.pack(_MAGIC, nonce, pos, len(body), zlib.crc32(nonce + body)))
            saved = open(fd, "rb", buffering=0, closefd=True)  # noqa: SIM115 (becomes the loaded file)
        except BaseException:
            os.close(fd)
            Path(tmp).unlink(missing_ok=True)
            raise
        Path(tmp).replace(self.path)
        self.close()
        self._file, self._nonce, self._body = saved, nonce, len(body)
        self._index_at, self._depth, self._saved = (pos, len(body), zlib.crc32(nonce + body)), 0, parts
        self._settle(index)

    def _parts(self, index: dict[str, _Where]) -> dict[str, Any]:
        """The index as a whole record holds it (copies: later changes do not reach them)."""
        # Only the content keys of releases still kept.
        content = {ckey: k for ckey, k in self._by_content.items() if k in index}
        return {
            "releases": dict(index),
            "content": content,
            "publication": self._publication,
            "roots": list(self._roots),
            "features": list(self._features),
            "listings": dict(self._listings),  # keep_only drops those of releases gone from the index
        }

    def _delta(self, parts: dict[str, Any]) -> bytes:
        """An index record holding what changed since the newest one (``_fold`` reads it back)."""
        was = self._saved
        record: dict[str, Any] = {"base": self._index_at}
        record["roots"], record["features"] = parts["roots"], parts["features"]
        for name in ("releases", "content", "listings"):
            record[name] = _changes(was[name], parts[name])
        pub, old = parts["publication"], was["publication"]
        if pub is not None and old is not None and pub[0] == old[0]:
            # The same SITE: its documents by digest as changes, its few tree nodes whole.
            record["documents"] = _changes(old[1]["documents"], pub[1]["documents"])
            record["nodes"] = pub[1]["nodes"]
        else:
            record["publication"] = pub
        return marshal.dumps(record)

    def _settle(self, index: dict[str, _Where]) -> None:
        """After saving: entries not read stay where the saved file has them."""
        assert self._file is not None
        self._size = os.fstat(self._file.fileno()).st_size
        self._by_release = {
            k: e if isinstance(e, CacheEntry) else index[k] for k, e in self._by_release.items()
        }

    def _copy(self, piece: tuple[int, int], fd: int) -> None:
        """Copy ``(offset, length)`` of the loaded file to the end of ``fd``."""
        assert self._file is not None  # an undecoded entry came from the loaded file
        src, (offset, length) = self._file.fileno(), piece
        while length > 0:
            try:
                done = os.copy_file_range(src, fd, length, offset)
            except OSError:  # another file system, or a kernel without it: through user space
                done = os.write(fd, os.pread(src, min(length, 1 << 20), offset))
            if done <= 0:  # cannot happen for a range checked at load: records are only appended
                raise OSError(f"the build cache {self.path} shrank while it was saved")
            offset += done
            length -= done

    def close(self) -> None:
        """Close the loaded file (entries not read by then read as misses)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _header(nonce: bytes) -> bytes:
    return _HEADER.format(
        format=CACHE_FORMAT, python=sys.implementation.cache_tag, tool=__version__, nonce=nonce.hex()
    ).encode()


def _identity(fh: BinaryIO) -> tuple[int, int]:
    st = os.fstat(fh.fileno())
    return st.st_dev, st.st_ino


def _changes(was: dict[Any, Any], now: dict[Any, Any]) -> tuple[dict[Any, Any], list[Any]]:
    """(the keys added or changed with their values, the keys removed) from ``was`` to ``now``."""
    changed = {k: v for k, v in now.items() if was.get(k, _MISSING) != v}
    return changed, [k for k in was if k not in now]


def _read_chain(fd: int, nonce: bytes, newest: _Where, start: int) -> list[tuple[_Where, dict[str, Any]]]:
    """The index records from the newest back to the whole one, each checked by its CRC-32.

    Each delta names the record before it (``base``), which lies before it in the file.
    """
    chain: list[tuple[_Where, dict[str, Any]]] = []
    where: Any = newest
    end = newest[0] + newest[1]
    while where is not None:
        if len(chain) > _MAX_DEPTH or not (type(where) is tuple and len(where) == 3):
            raise ValueError("a malformed chain of index records")
        offset, length, crc = where
        if not (type(offset) is int and type(length) is int and start <= offset and offset + length <= end):
            raise ValueError("an index record outside the file")
        body = os.pread(fd, length, offset)
        if len(body) != length or zlib.crc32(nonce + body) != crc:
            raise ValueError("a torn or corrupted index")
        record = marshal.loads(body)  # noqa: S302 (trusted local state, see the module docstring)
        if not isinstance(record, dict):
            raise TypeError("malformed cache")
        chain.append(((offset, length, crc), record))
        where, end = record.get("base"), offset
    return chain


def _fold(chain: list[tuple[_Where, dict[str, Any]]]) -> dict[str, Any]:
    """The index the chain describes: the whole record with every delta applied, oldest first."""
    whole = chain[-1][1]
    for _, record in reversed(chain[:-1]):
        for name in ("releases", "content", "listings"):
            changed, removed = record[name]
            part = whole[name]
            part.update(changed)
            for key in removed:
                part.pop(key, None)
        if "documents" in record:
            site, data = whole["publication"]
            changed, removed = record["documents"]
            data["documents"].update(changed)
            for key in removed:
                data["documents"].pop(key, None)
            whole["publication"] = (site, {**data, "nodes": record["nodes"]})
        else:
            whole["publication"] = record["publication"]
        whole["roots"], whole["features"] = record["roots"], record["features"]
    return whole


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _encode(entry: CacheEntry) -> bytes:
    return marshal.dumps((entry.stat, entry.stat_context, entry.written_at, entry.content_key, entry.data))


def default_cache_path(index: Path) -> Path:
    """One cache file per index folder, in the platform cache dir."""
    tag = hashlib.sha256(str(index.resolve()).encode()).hexdigest()[:16]
    return Path(user_cache_dir("registry-tool")) / "build" / f"{tag}.cache"


@dataclass
class Lookup:
    """A release's cache keys, computed once per build.

    Attributes:
        key: ``name/version``.
        stat: The stat print of its files.
        context: What else verification depended on (see ``lookup_context``).
        seen_at: When the scan that took the print started (the entry's time, see ``BuildCache.put``).
        digests: Every file's sha256 when the content path hashed them.
    """

    key: str
    stat: StatPrint
    context: str
    seen_at: float
    digests: dict[str, str] | None = None


def lookup_context(base: str, chain: RootChain, published: datetime) -> str:
    """The verification context of one release: ``base`` plus its side of each revocation.

    Publish time matters to verification only through revocations that keep prior releases:
    which side of each such revocation the release is on is part of the key, not the time itself
    (so a release first built as new and later carried over from --previous still hits).
    """
    sides = "".join(
        "<" if published < r.revoked_at else ">" for r in chain.root.revoked if r.keep_prior_releases
    )
    # Interned: one string object per distinct context, which marshal writes once, not per release.
    return sys.intern(f"{base}\0{sides}")


def lookup(
    rel: IndexRelease, cache: BuildCache, context: str, smoke: bool, seen_at: float
) -> tuple[PreparedRelease | None, Lookup]:
    """The release as prepared by an earlier build when its files are unchanged, else None.

    A stat hit costs the scan's ``lstat`` per file; files with a new stat print but known to the cache
    (a fresh checkout) are hashed and looked up by content.  ``seen_at`` is when the scan started.
    """
    stat, newest = (rel.stat, rel.newest) if rel.stat else stat_print(rel.files)
    look = Lookup(rel.key, stat, context, seen_at)
    hit = cache.by_stat(look.key, look.stat, context, newest)
    if hit is None and cache.knows(look.key):
        # Unknown releases skip this hashing; the full path hashes what it reads anyway.
        try:
            look.digests = {n: _sha256_file(p) for n, p in rel.files}
        except OSError:
            return None, look  # a file it cannot read: the full path reports what a build without cache does
        hit = cache.by_content(content_key(look.key, sorted(look.digests.items()), look.context))
        if hit is not None:
            cache.put(look, hit["content_key"], hit)
    try:
        if hit is None or (smoke and not hit["smoked"]):
            return None, look
        # --no-smoke records null whatever the cache holds: reproducible.
        entry = CachedEntry(hit["entry"], hit["yanked"], hit["dependencies"], strip_smoke=not smoke)
        files = hit["files"]  # name -> (sha256, size), tuples as recorded
    except (KeyError, TypeError):
        return None, look  # a malformed entry is a miss
    return PreparedRelease(entry=entry, files=files, cached=hit), look


class CachedEntry(Mapping[str, Any]):
    """A release's plugin-document entry from the build cache, decoded on first use.

    Every build reads ``yanked`` and ``dependencies`` of every release (dependencies are checked
    on each build); those are kept beside the ``marshal`` blob of the whole entry, which is
    decoded only for releases whose plugin document is encoded again.  A one-change rebuild at
    10,000 releases decodes a handful instead of all of them.
    """

    __slots__ = ("_blob", "_decoded", "_dependencies", "_strip_smoke", "_yanked")

    def __init__(self, blob: bytes, yanked: Any, dependencies: Any, *, strip_smoke: bool) -> None:
        """The entry in ``blob`` (``marshal``), with its ``yanked`` and ``dependencies`` as recorded."""
        if not isinstance(blob, bytes):
            raise TypeError("malformed cache entry")
        self._blob = blob
        self._yanked = yanked
        self._dependencies = dependencies
        self._strip_smoke = strip_smoke
        self._decoded: dict[str, Any] | None = None

    def _entry(self) -> dict[str, Any]:
        if self._decoded is None:
            entry = marshal.loads(self._blob)  # noqa: S302 (trusted local state, see the module docstring)
            if not isinstance(entry, dict):
                raise TypeError("malformed cache entry")
            if self._strip_smoke:
                entry["smoke"] = None
            self._decoded = entry
        return self._decoded

    def __getitem__(self, key: str) -> Any:
        """One field (``yanked`` and ``dependencies`` without decoding the entry)."""
        if key == "yanked":
            return self._yanked
        if key == "dependencies":
            return self._dependencies
        return self._entry()[key]

    def __iter__(self) -> Iterator[str]:
        """The entry's fields."""
        return iter(self._entry())

    def __len__(self) -> int:
        """The number of fields."""
        return len(self._entry())


def record(rel: IndexRelease, prep: PreparedRelease, look: Lookup, cache: BuildCache) -> None:
    """Store a freshly verified release under the digests of the very bytes that were verified."""
    digests = dict(look.digests or {})
    for name, path in rel.files:
        if name in prep.files:
            digests[name] = prep.files[name][0]
        elif name not in digests:
            try:
                digests[name] = _sha256_file(path)
            except OSError:
                return  # a file the build does not publish and cannot read: no content key, no record
    ckey = content_key(look.key, sorted(digests.items()), look.context)
    entry = dict(prep.entry)
    prep.cached = {
        "entry": marshal.dumps(entry),
        "yanked": entry["yanked"],
        "dependencies": entry["dependencies"],
        "smoked": entry["smoke"] is not None,
        "files": {k: (v[0], v[1]) for k, v in prep.files.items()},
        "content_key": ckey,
        "site": {},
    }
    cache.put(look, ckey, prep.cached)


def _sha256_file(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
