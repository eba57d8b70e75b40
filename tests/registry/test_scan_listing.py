"""The scan checks a recorded listing instead of listing release folders again, and never trusts a stale one.

A rebuild ``lstat``s the names of a release's recorded stat print (``scan._recorded_files``): its
folders' prints say nothing was added, removed or renamed in them.  Each change below is made after
the print was recorded; the scan given that print must answer exactly what a scan without it
answers (the same files, the same print, the same refusal).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from registry_tool.registry import build as build_mod
from registry_tool.registry import cache as cache_mod
from registry_tool.registry import scan as scan_mod
from registry_tool.registry.errors import UnsafeIndexPathError
from registry_tool.registry.scan import IndexRelease, scan_releases

from .rebuilds import build_at

Index = Any  # conftest.Index
KEY = "alpha/1.0.0"


def _release(tmp_path: Path) -> tuple[Path, Path]:
    """An index with one release folder holding two files and a subfolder with one: (index, folder)."""
    folder = tmp_path / "index" / "plugins" / "alpha" / "1.0.0"
    (folder / "tests").mkdir(parents=True)
    (folder / "plugin.toml").write_text("manifest\n")
    (folder / "alpha.wasm").write_bytes(b"\0asm\1\0\0\0")
    (folder / "tests" / "input.bin").write_bytes(b"input")
    return tmp_path / "index", folder


def _scan(index: Path, recorded: dict[str, bytes] | None = None) -> IndexRelease:
    (found,) = scan_releases(index, recorded)
    return found


def _answer(rel: IndexRelease) -> tuple[Any, ...]:
    return rel.files, rel.stat, rel.newest, rel.settled


def test_a_recorded_listing_that_holds_is_answered_without_listing_the_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index, _ = _release(tmp_path)
    first = _scan(index)
    assert [rel for rel, _ in first.files] == ["alpha.wasm", "plugin.toml", "tests/input.bin"]

    def no_listing(folder: str) -> Any:
        raise AssertionError(f"{folder} listed again")

    monkeypatch.setattr(scan_mod, "_list_files", no_listing)
    assert _answer(_scan(index, {KEY: first.stat})) == _answer(first)


def _replace_by_link(folder: Path) -> None:
    (folder / "alpha.wasm").unlink()
    (folder / "alpha.wasm").symlink_to(folder / "plugin.toml")


def _rewrite_in_place(folder: Path) -> None:
    path = folder / "plugin.toml"
    st = path.stat()
    path.write_text("manifesT\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # the same size and mtime: only ctime moved


def _replace_subfolder_by_file(folder: Path) -> None:
    (folder / "tests" / "input.bin").unlink()
    (folder / "tests").rmdir()
    (folder / "tests").write_bytes(b"now a file")


CHANGES: list[tuple[str, Callable[[Path], None]]] = [
    ("a signature added beside the files", lambda f: (f / "plugin.toml.minisig").write_text("sig\n")),
    ("a file added to a subfolder", lambda f: (f / "tests" / "more.bin").write_bytes(b"more")),
    ("a subfolder added", lambda f: (f / "data").mkdir()),
    ("a file removed", lambda f: (f / "tests" / "input.bin").unlink()),
    ("a file renamed", lambda f: (f / "alpha.wasm").rename(f / "beta.wasm")),
    ("a file changed in place, its mtime set back", _rewrite_in_place),
    ("a subfolder replaced by a file", _replace_subfolder_by_file),
    ("a file replaced by a link", _replace_by_link),
    ("a link added", lambda f: (f / "tests" / "link").symlink_to("/etc/passwd")),
]


@pytest.mark.parametrize("change", [c for _, c in CHANGES], ids=[what for what, _ in CHANGES])
def test_a_change_after_the_record_is_answered_as_a_fresh_listing_answers_it(
    tmp_path: Path, change: Callable[[Path], None]
) -> None:
    index, folder = _release(tmp_path)
    recorded = _scan(index).stat
    change(folder)
    try:
        fresh: tuple[Any, ...] | str = _answer(_scan(index))
    except UnsafeIndexPathError as err:
        fresh = str(err)
    try:
        answered: tuple[Any, ...] | str = _answer(_scan(index, {KEY: recorded}))
    except UnsafeIndexPathError as err:
        answered = str(err)
    assert answered == fresh
    assert isinstance(answered, str) or answered[1] != recorded  # the change is in the print


@pytest.mark.parametrize("damage", [b"", b"\0\0", b"x", b"./\0\0" + b"\0" * 3, b"../x\0\0" + b"\0" * 32])
def test_a_malformed_recorded_print_is_only_a_listing_again(tmp_path: Path, damage: bytes) -> None:
    index, _ = _release(tmp_path)
    assert _answer(_scan(index, {KEY: damage})) == _answer(_scan(index))


# --------------------------------------------------------------------------- what the cache records


def _look(settled_ago: float, seen_at: float) -> cache_mod.Lookup:
    settled = int((seen_at - settled_ago) * 1e9)
    return cache_mod.Lookup(KEY, b"print", "context", seen_at, settled)


def test_a_listing_is_recorded_only_outside_the_racy_window_of_its_scan(tmp_path: Path) -> None:
    """A folder changed within the clock's granularity of its ``lstat`` may hide a later change."""
    cache = cache_mod.BuildCache(tmp_path / "cache")
    now = time.time()
    cache.put(_look(cache_mod.RACY_SECONDS + 1, now), "k1", {})
    assert cache.listings() == {KEY: b"print"}
    cache.put(_look(cache_mod.RACY_SECONDS - 1, now), "k2", {})  # changed again, just before the scan
    assert cache.listings() == {}


def test_listings_are_saved_and_forgotten_with_their_releases(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    cache = cache_mod.BuildCache(path)
    cache.put(_look(60, time.time()), "k1", {})
    cache.save()
    cache.close()
    loaded = cache_mod.BuildCache(path)
    assert loaded.listings() == {KEY: b"print"}
    loaded.keep_only(set())
    assert loaded.listings() == {}
    loaded.close()


def test_entries_date_from_before_the_scan_took_their_prints(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file changed right after its ``lstat``, within the clock's granularity, keeps its times.

    The racy window must be measured from before the ``lstat``: an entry dated when it was
    written (after verification, which can take minutes with smoke runs) would trust such a file.
    """
    cache, scans = tmp_path / "cache", []
    real = build_mod.scan_releases

    def timed(*args: Any) -> Any:
        scans.append(time.time())
        return real(*args)

    monkeypatch.setattr(build_mod, "scan_releases", timed)
    build_at(index, tmp_path / "site", 0, cache)
    loaded = cache_mod.BuildCache(cache)
    entries = [loaded._entry(f"{name}/{version}") for name, version in index.releases]
    loaded.close()
    assert entries and all(e is not None and e.written_at <= scans[0] for e in entries)
