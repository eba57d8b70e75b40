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

from registry_tool.manifest import tree as tree_mod
from registry_tool.registry import build as build_mod
from registry_tool.registry import cache as cache_mod
from registry_tool.registry import publish as publish_mod
from registry_tool.registry import scan as scan_mod
from registry_tool.registry.errors import UnsafeIndexPathError
from registry_tool.registry.scan import IndexRelease, scan_releases

from .rebuilds import build_at
from .site_check import assert_valid_site

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


def test_a_print_without_the_folders_rows_is_never_trusted_as_a_listing(tmp_path: Path) -> None:
    """Only folder prints say nothing was added: a print of the files alone proves no listing."""
    index, folder = _release(tmp_path)
    files_only = cache_mod.stat_print(_scan(index).files)[0]
    (folder / "plugin.toml.minisig").write_text("sig\n")
    assert _answer(_scan(index, {KEY: files_only})) == _answer(_scan(index))


def test_a_site_file_time_past_2261_is_written_again_not_a_crash(index: Index, tmp_path: Path) -> None:
    site, cache = tmp_path / "site", tmp_path / "cache"
    build_at(index, site, 0, cache)
    published = site / "plugins" / "alpha" / "1.0.0" / "alpha.wasm"
    far = 2**63 + 10**9
    try:
        os.utime(published, ns=(far, far))
    except (OSError, OverflowError):
        pytest.skip("this file system cannot hold such a time")
    build_at(index, site, 1, cache)
    assert published.stat().st_mtime_ns < far
    assert_valid_site(site, index)


@pytest.mark.parametrize("damage", [b"", b"\0\0", b"x", b"./\0\0" + b"\0" * 3, b"../x\0\0" + b"\0" * 32])
def test_a_malformed_recorded_print_is_only_a_listing_again(tmp_path: Path, damage: bytes) -> None:
    index, _ = _release(tmp_path)
    assert _answer(_scan(index, {KEY: damage})) == _answer(_scan(index))


# --------------------------------------------------------------------------- what the cache records


def _scanned(settled_ago: float, scanned_at: float, stat: bytes = b"./\0\0print") -> IndexRelease:
    settled = int((scanned_at - settled_ago) * 1e9)
    return IndexRelease("alpha", "1.0.0", "folder", [], stat, settled, settled)


def test_a_listing_is_recorded_only_outside_the_racy_window_of_its_scan(tmp_path: Path) -> None:
    """A folder changed within the clock's granularity of its ``lstat`` may hide a later change."""
    cache = cache_mod.BuildCache(tmp_path / "cache")
    now = time.time()
    cache.remember_listings([_scanned(cache_mod.RACY_SECONDS + 1, now)], now)
    assert cache.listings() == {KEY: b"./\0\0print"}
    cache.remember_listings([_scanned(cache_mod.RACY_SECONDS - 1, now)], now)  # changed just before
    assert cache.listings() == {}
    cache.remember_listings([_scanned(60, now, stat=b"")], now)  # no print taken (a worker's view)
    assert cache.listings() == {}


def test_listings_are_saved_and_forgotten_with_their_releases(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    cache = cache_mod.BuildCache(path)
    cache.remember_listings([_scanned(60, time.time())], time.time())
    cache.save()
    cache.close()
    loaded = cache_mod.BuildCache(path)
    assert loaded.listings() == {KEY: b"./\0\0print"}
    loaded.keep_only(set())
    assert loaded.listings() == {}
    loaded.close()


def test_a_release_racy_when_last_looked_up_gets_its_listing_from_a_later_build(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing is about names only: recorded by whichever build first sees it outside the window.

    The first build is inside an hour-wide window (nothing trusted, no listing); the second, with
    the window closed, hits every release by its stat print or keeps its plugin whole (none is
    verified or recorded again) and still records every listing.
    """
    cache, site = tmp_path / "cache", tmp_path / "site"
    monkeypatch.setattr(cache_mod, "RACY_SECONDS", 3600.0)
    build_at(index, site, 0, cache)
    loaded = cache_mod.BuildCache(cache)
    assert loaded.listings() == {}
    loaded.close()
    monkeypatch.setattr(cache_mod, "RACY_SECONDS", 0.0)
    assert build_at(index, site, 1, cache).counts["verified"] == 0
    loaded = cache_mod.BuildCache(cache)
    assert set(loaded.listings()) == {f"{name}/{version}" for name, version in index.releases} | {
        name for name, _ in index.releases
    }
    loaded.close()


@pytest.mark.parametrize("where", ["lookup", "record"])
def test_a_file_the_build_cannot_read_fails_as_it_does_without_the_cache(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """The cache hashes every file of a release, the build only those it publishes.

    A test input nobody can read (root reads everything, so the read fails by injection): the
    build without cache publishes the release, so the cached one must too, whether the file is
    hashed for the content lookup (a fresh checkout) or for the record.
    """
    folder = index.release_dir("alpha", "1.0.0")
    (folder / "tests").mkdir()
    (folder / "tests" / "input.bin").write_bytes(b"input")
    cache = tmp_path / "cache"
    if where == "lookup":
        build_at(index, tmp_path / "warm", 0, cache)
        for path in folder.rglob("*"):
            path.write_bytes(path.read_bytes()) if path.is_file() else None  # new prints, same bytes
    real = cache_mod._sha256_file

    def unreadable(path: str) -> str:
        if path.endswith("input.bin"):
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(cache_mod, "_sha256_file", unreadable)
    cached = build_at(index, tmp_path / "cached", 1, cache)
    plain = build_at(index, tmp_path / "plain", 1, None)
    assert cached.document.top.to_bytes() == plain.document.top.to_bytes()


def test_a_file_time_past_2261_is_refused_with_a_fix_not_a_crash(tmp_path: Path) -> None:
    index, folder = _release(tmp_path)
    far = 2**63 + 10**9  # ns: past what a signed 64-bit time holds (the year 2262)
    try:
        os.utime(folder / "alpha.wasm", ns=(far, far))
    except (OSError, OverflowError):
        pytest.skip("this file system cannot hold such a time")
    with pytest.raises(UnsafeIndexPathError, match=r"alpha\.wasm") as err:
        _scan(index)
    assert "touch" in (err.value.fix or "")


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


# --------------------------------------------------------------------------- plugin folders


def _plugin_scan(
    index: Path, recorded: dict[str, bytes] | None = None
) -> tuple[list[tuple[Any, ...]], dict[str, tuple[bytes, int]]]:
    folders: dict[str, tuple[bytes, int]] = {}
    found = scan_releases(index, recorded, folders)
    return [(rel.key, *_answer(rel)) for rel in found], folders


def _two_versions(tmp_path: Path) -> tuple[Path, Path]:
    """An index with releases alpha 1.0.0 and 1.1.0: (index, alpha's folder)."""
    index, _ = _release(tmp_path)
    other = index / "plugins" / "alpha" / "1.1.0"
    other.mkdir()
    (other / "plugin.toml").write_text("manifest 2\n")
    return index, other.parent


def test_a_recorded_plugin_folder_that_holds_is_not_listed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index, plugin = _two_versions(tmp_path)
    first, folders = _plugin_scan(index)
    assert [key for key, *_ in first] == ["alpha/1.0.0", "alpha/1.1.0"]
    assert folders["alpha"][0].startswith(b"1.0.0\x001.1.0\0\0")
    real = tree_mod.subfolders

    def plugins_only(folder: str, *args: Any) -> Any:
        assert folder != str(plugin), "the plugin folder was listed again"
        return real(folder, *args)

    monkeypatch.setattr(tree_mod, "subfolders", plugins_only)
    assert _plugin_scan(index, {"alpha": folders["alpha"][0]}) == (first, folders)


PLUGIN_CHANGES: list[tuple[str, Callable[[Path], None]]] = [
    ("a version added", lambda p: (p / "1.2.0").mkdir()),
    ("a version removed", lambda p: (p / "1.1.0" / "plugin.toml").unlink() or (p / "1.1.0").rmdir()),
    ("a version renamed", lambda p: (p / "1.1.0").rename(p / "1.1.1")),
    ("a readme added", lambda p: (p / "README.md").write_text("notes\n")),
    ("a case twin added", lambda p: ((p / "1.0.0-rc1").mkdir(), (p / "1.0.0-RC1").mkdir())),
    (
        "a version replaced by a link",
        lambda p: (p / "1.1.0").rename(p / "x") or (p / "1.1.0").symlink_to("x"),
    ),
    ("an unsafe name added", lambda p: (p / "latest").mkdir()),
]


@pytest.mark.parametrize("change", [c for _, c in PLUGIN_CHANGES], ids=[what for what, _ in PLUGIN_CHANGES])
def test_a_change_to_a_plugin_folder_is_answered_as_a_fresh_listing_answers_it(
    tmp_path: Path, change: Callable[[Path], None]
) -> None:
    index, plugin = _two_versions(tmp_path)
    _, folders = _plugin_scan(index)
    change(plugin)
    answers: list[Any] = []
    for recorded in (None, {"alpha": folders["alpha"][0]}):
        try:
            answers.append(_plugin_scan(index, recorded))
        except UnsafeIndexPathError as err:
            answers.append(str(err))
    assert answers[0] == answers[1]


@pytest.mark.parametrize(
    "names",
    [
        b"",
        b"\0",
        b"1.0.0",
        b"../x\0\0",
        b"1.0.0\0\0\0",
        b"\x001.0.0\0\0",
        b"1.0.0/x\0\0",
        b"\xff\0\0",
        b"1.0.0\0.\0\0",
    ],
)
def test_a_malformed_recorded_plugin_folder_is_only_a_listing_again(tmp_path: Path, names: bytes) -> None:
    """Names that are not plain version names (a damaged cache) never stand for the folder's listing."""
    index, _ = _two_versions(tmp_path)
    first, folders = _plugin_scan(index)
    folder_print = folders["alpha"][0].split(b"\0\0", 1)[1]
    assert _plugin_scan(index, {"alpha": names + folder_print}) == (first, folders)


def test_a_plugin_folder_is_recorded_only_outside_the_racy_window(tmp_path: Path) -> None:
    cache = cache_mod.BuildCache(tmp_path / "cache")
    now = time.time()
    settled = int((now - cache_mod.RACY_SECONDS - 1) * 1e9)
    cache.remember_listings([], now, {"alpha": (b"1.0.0\0\0print", settled)})
    assert cache.listings() == {"alpha": b"1.0.0\0\0print"}
    racy = int((now - cache_mod.RACY_SECONDS + 1) * 1e9)
    cache.remember_listings([], now, {"alpha": (b"1.0.0\0\0print", racy)})
    assert cache.listings() == {}
    cache.remember_listings([], now, {"alpha": (b"1.0.0\0\0print", settled)})
    cache.keep_only({"beta/1.0.0"})  # alpha is gone from the index
    assert cache.listings() == {}


def test_lookups_from_the_open_plugin_folder_answer_as_full_paths_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relative lookups (``open_folder``) are only faster: the same prints, with or without them."""
    index, plugin = _two_versions(tmp_path)
    _, folders = _plugin_scan(index)
    recorded = {"alpha": folders["alpha"][0], **{rel.key: rel.stat for rel in scan_releases(index)}}
    relative = _plugin_scan(index, recorded)
    site_relative = publish_mod.folder_prints(str(plugin), ["1.0.0", "1.0.0/plugin.toml", "missing"])
    monkeypatch.setattr(scan_mod, "_RELATIVE", False)
    assert scan_mod.open_folder(str(plugin)) is None
    assert _plugin_scan(index, recorded) == relative
    assert publish_mod.folder_prints(str(plugin), ["1.0.0", "1.0.0/plugin.toml", "missing"]) == site_relative
    assert site_relative[0] is not None and site_relative[-1] is None


def test_a_plugin_folder_time_past_2261_is_listed_every_time_not_a_crash(
    index: Index, tmp_path: Path
) -> None:
    """The folder is not published: a time its print cannot hold only means it is never recorded."""
    cache = tmp_path / "cache"
    build_at(index, tmp_path / "site", 0, cache)
    folder = index.path / "plugins" / "alpha"
    far = 2**63 + 10**9
    try:
        os.utime(folder, ns=(far, far))
    except (OSError, OverflowError):
        pytest.skip("this file system cannot hold such a time")
    with_cache = build_at(index, tmp_path / "site", 1, cache)
    without = build_at(index, tmp_path / "fresh", 1, None)
    assert with_cache.document.top.to_bytes() != b""
    assert sorted(with_cache.document.plugins) == sorted(without.document.plugins)
    assert "alpha" not in cache_mod.BuildCache(cache).listings()


def test_a_plugin_folder_this_process_cannot_read_is_listed_as_without_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Searchable but not readable (a group lost since the record): listed, and refused, as a fresh scan is.

    The process runs as root here, so the folder that cannot be opened is simulated.
    """
    index, plugin = _two_versions(tmp_path)
    first, folders = _plugin_scan(index)
    listed: list[str] = []
    real = tree_mod.subfolders

    def record(folder: str, *args: Any) -> Any:
        listed.append(folder)
        return real(folder, *args)

    monkeypatch.setattr(tree_mod, "subfolders", record)
    monkeypatch.setattr(scan_mod, "open_folder", lambda path: None)
    assert _plugin_scan(index, {"alpha": folders["alpha"][0]})[0] == first
    assert str(plugin) in listed
