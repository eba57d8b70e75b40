"""The incremental build cache.

Two levels, both conservative:

* a *stat* fingerprint of every file in a release folder (size, mtime, ctime, inode)
  lets an unchanged release skip even reading its files, like git's index.  A file
  whose mtime is within ``RACY_SECONDS`` of the moment the entry was written is never
  trusted by stat (it could have changed again within the clock's granularity);
* a *content* key, the digest of every file's bytes plus the root, registry.toml,
  publication time and tool version, lets a release whose files were touched but not
  changed (a fresh git checkout) skip validation, signature checks and the smoke run.

An entry stores what the build derived from the release (its registry.json entry and
per-file digests), so a hit reproduces the same bytes as a full build.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CACHE_FORMAT = 4  # 4: "dependencies" filled from the manifest's required dependencies
RACY_SECONDS = 2.0
StatPrint = list[list[Any]]


def stat_print(files: list[tuple[str, Path]]) -> StatPrint:
    """(relative name, size, mtime_ns, ctime_ns, inode) of every file, in the given order."""
    out: StatPrint = []
    for rel, path in files:
        st = path.lstat()
        out.append([rel, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
    return out


def content_key(parts: list[tuple[str, str]], context: str) -> str:
    h = hashlib.sha256(context.encode())
    for rel, digest in parts:
        h.update(f"\0{rel}\0{digest}".encode())
    return h.hexdigest()


@dataclass
class CacheEntry:
    stat: StatPrint
    stat_context: str
    written_at: float
    content_key: str
    data: dict[str, Any]


class BuildCache:
    """A JSON file of entries keyed by release (``name/version``) and by content key."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._by_release: dict[str, CacheEntry] = {}
        self._by_content: dict[str, dict[str, Any]] = {}
        self.hits_stat = 0
        self.hits_content = 0
        self.misses = 0
        if path is not None:
            self._load(path)

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def _load(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return  # a missing or corrupt cache is an empty cache
        if not isinstance(raw, dict) or raw.get("format") != CACHE_FORMAT:
            return
        with contextlib.suppress(KeyError, TypeError, ValueError):
            for key, e in raw["releases"].items():
                entry = CacheEntry(
                    e["stat"], e["stat_context"], float(e["written_at"]), e["content_key"], e["data"]
                )
                self._by_release[key] = entry
                self._by_content[entry.content_key] = entry.data

    def by_stat(self, release: str, stat: StatPrint, stat_context: str) -> dict[str, Any] | None:
        entry = self._by_release.get(release)
        if entry is None or entry.stat != stat or entry.stat_context != stat_context:
            return None
        newest = max((row[2] for row in stat), default=0) / 1e9
        if newest >= entry.written_at - RACY_SECONDS:
            return None
        self.hits_stat += 1
        log.debug("build cache hit (unchanged files): %s", release)
        return entry.data

    def knows(self, release: str) -> bool:
        return release in self._by_release

    def by_content(self, key: str) -> dict[str, Any] | None:
        data = self._by_content.get(key)
        if data is not None:
            self.hits_content += 1
            log.debug("build cache hit (same content): %s", key)
        return data

    def put(self, release: str, stat: StatPrint, stat_context: str, key: str, data: dict[str, Any]) -> None:
        entry = CacheEntry(stat, stat_context, time.time(), key, data)
        self._by_release[release] = entry
        self._by_content[key] = data

    def keep_only(self, releases: set[str]) -> None:
        """Forget releases no longer in the index so the file does not grow forever."""
        self._by_release = {k: v for k, v in self._by_release.items() if k in releases}

    def save(self) -> None:
        if self.path is None:
            return
        payload = {
            "format": CACHE_FORMAT,
            "releases": {
                k: {
                    "stat": e.stat,
                    "stat_context": e.stat_context,
                    "written_at": e.written_at,
                    "content_key": e.content_key,
                    "data": e.data,
                }
                for k, e in sorted(self._by_release.items())
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".cache-", dir=self.path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(payload, separators=(",", ":")))  # dumps() uses the C encoder, dump() not
        Path(tmp).replace(self.path)


def default_cache_path(index: Path) -> Path:
    """One cache file per index folder, in the platform cache dir."""
    from platformdirs import user_cache_dir

    tag = hashlib.sha256(str(index.resolve()).encode()).hexdigest()[:16]
    return Path(user_cache_dir("registry-tool")) / "build" / f"{tag}.json"
