"""The build cache file: entry blobs appended by each build, then the index and a trailer.

Damage is never trusted: a torn tail or a corrupted index is no cache, an entry failing its CRC
is a miss for that release only; saving appends only what is new and never rereads the rest.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from registry_tool.registry.cache import BuildCache

from .rebuilds import build_at

Index = Any  # conftest.Index


def _age(index: Index) -> None:
    old = time.time() - 3600
    for path in (index.path / "plugins").rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))


def _first_entry(cache: Path) -> int:
    """Where the first entry starts: right after the header line (a new file: entries in key order)."""
    return cache.read_bytes().index(b"\n") + 1


def test_an_entry_failing_its_crc_is_a_miss_for_that_release_only(index: Index, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _age(index)
    build_at(index, tmp_path / "a", 0, cache)
    data = bytearray(cache.read_bytes())
    data[_first_entry(cache) + 5] ^= 0xFF  # inside the first entry (sorted: alpha/1.0.0)
    cache.write_bytes(bytes(data))
    result = build_at(index, tmp_path / "b", 0, cache)
    assert result.counts == {"verified": 1, "cached": 3, "smoked": 0}


def test_a_torn_tail_is_no_cache(index: Index, tmp_path: Path) -> None:
    """What a build killed while appending leaves: no trailer at the end, so no index is trusted."""
    cache = tmp_path / "cache"
    _age(index)
    build_at(index, tmp_path / "a", 0, cache)
    cache.write_bytes(cache.read_bytes()[:-10])
    assert len(BuildCache(cache)) == 0
    assert build_at(index, tmp_path / "b", 0, cache).counts["verified"] == 4


def test_a_fifo_in_place_of_the_cache_is_no_cache_and_is_replaced(index: Index, tmp_path: Path) -> None:
    """The build opened it blocking and waited forever for a writer, holding the site's lock."""
    import threading

    cache = tmp_path / "cache"
    os.mkfifo(cache)
    done: list[Any] = []
    worker = threading.Thread(
        target=lambda: done.append(build_at(index, tmp_path / "a", 0, cache)), daemon=True
    )
    worker.start()
    worker.join(120)
    if not done:
        with open(cache, "wb"):  # a writer releases the blocked open, so the test process can end
            pass
        worker.join(30)
        pytest.fail("the build waited on the FIFO")
    assert done[0].counts["verified"] == 4
    assert cache.is_file() and len(BuildCache(cache)) == 4  # the FIFO was replaced by a cache


def test_a_corrupted_index_is_no_cache(index: Index, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _age(index)
    build_at(index, tmp_path / "a", 0, cache)
    data = bytearray(cache.read_bytes())
    data[-41] ^= 0xFF  # the index's last byte, before the 40-byte trailer: its CRC no longer matches
    cache.write_bytes(bytes(data))
    assert len(BuildCache(cache)) == 0


def test_saving_appends_only_what_is_new(index: Index, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _age(index)
    build_at(index, tmp_path / "a", 0, cache)
    before = cache.read_bytes()
    index.add_release("beta", "2.1.0", variant=7)
    _age(index)
    build_at(index, tmp_path / "b", 0, cache)
    assert cache.read_bytes().startswith(before)  # appended: no earlier byte rewritten
    loaded = BuildCache(cache)
    assert len(loaded) == 5
    loaded.close()


def test_a_cache_replaced_since_it_was_loaded_is_written_anew_not_appended_to(
    index: Index, tmp_path: Path
) -> None:
    """Another build renamed its cache over ours: our offsets mean nothing in that file."""
    cache = tmp_path / "cache"
    _age(index)
    build_at(index, tmp_path / "a", 0, cache)
    loaded = BuildCache(cache)
    other = tmp_path / "other"
    index.add_release("beta", "2.1.0", variant=7)
    _age(index)
    build_at(index, tmp_path / "b", 0, other)
    other.replace(cache)  # what another build's rewrite does
    loaded.save()
    loaded.close()
    again = BuildCache(cache)
    assert len(again) == 4
    assert all(again._read(where) is not None for where in again._by_release.values())  # type: ignore[arg-type]
    again.close()


def test_a_file_mostly_dead_is_written_anew(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry_tool.registry import cache as cache_mod

    monkeypatch.setattr(cache_mod, "_SLACK", 0)
    cache = tmp_path / "cache"
    _age(index)
    build_at(index, tmp_path / "a", 0, cache)
    sizes = []
    for _ in range(4):  # every save appends an index as large as the live one: soon mostly dead
        loaded = BuildCache(cache)
        loaded.save()
        loaded.close()
        sizes.append(cache.stat().st_size)
    assert min(sizes[1:]) < max(sizes)  # it shrank: written anew
    assert build_at(index, tmp_path / "b", 0, cache).counts == {"verified": 0, "cached": 4, "smoked": 0}


def test_entries_never_read_are_saved_byte_for_byte_and_still_hit(index: Index, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _age(index)
    build_at(index, tmp_path / "a", 0, cache)
    loaded = BuildCache(cache)
    before = {key: loaded._read(where) for key, where in loaded._by_release.items()}  # type: ignore[arg-type]
    loaded.save()  # nothing read: every entry copied
    loaded.save()  # and again, from the file it just wrote
    again = BuildCache(cache)
    after = {key: again._read(where) for key, where in again._by_release.items()}  # type: ignore[arg-type]
    assert after == before and None not in after.values()
    assert build_at(index, tmp_path / "b", 0, cache).counts == {"verified": 0, "cached": 4, "smoked": 0}


def test_a_cache_file_cut_short_costs_misses_never_a_failed_build(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A torn file is no cache: the builds verify again and save a sound file, never trip over it."""
    from registry_tool.registry import cache as cache_mod

    monkeypatch.setattr(cache_mod, "RACY_SECONDS", 0.0)  # the files were aged a moment ago
    site, cache = tmp_path / "site", tmp_path / "cache"
    _age(index)
    build_at(index, site, 0, cache)
    build_at(index, site, 1, cache)  # plugins kept whole: their entries only copied
    cache.write_bytes(cache.read_bytes()[:-10])  # a torn tail: no cache at all
    for at in (2, 3):
        build_at(index, site, at, cache)  # published, and the cache saved: no OSError
    loaded = BuildCache(cache)
    assert len(loaded) == 4
    loaded.close()


def test_no_cache_file_is_left_open_by_a_refused_build(index: Index, tmp_path: Path) -> None:
    import gc
    import warnings

    from registry_tool.registry.build import BuildRefusedError

    cache = tmp_path / "cache"
    build_at(index, tmp_path / "site", 0, cache)
    (index.release_dir("alpha", "1.0.0") / "plugin.toml.minisig").write_text("garbage")
    gc.collect()  # what earlier tests left for the collector is not this build's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(BuildRefusedError):
            build_at(index, tmp_path / "site2", 0, cache)
        gc.collect()
    assert not [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_roots_checked_by_an_earlier_build_skip_only_the_schema_step(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The schema check of an unchanged root is not run again; a new root version's is."""
    from registry_tool.trust import root as root_mod

    cache = tmp_path / "cache"
    build_at(index, tmp_path / "a", 0, cache)
    checked: list[object] = []
    real = root_mod._schema_check

    def spy(doc: object, where: object) -> None:
        checked.append(where)
        real(doc, where)  # type: ignore[arg-type]

    monkeypatch.setattr(root_mod, "_schema_check", spy)
    build_at(index, tmp_path / "b", 0, cache)
    assert checked == []
    index.edit_root(lambda raw: raw.update(expires=raw["expires"]))  # a new root version, signed
    checked.clear()  # editing and signing parse roots too
    build_at(index, tmp_path / "c", 0, cache)
    assert len(checked) == 1 and str(checked[0]).endswith(".root.json")
    without = tmp_path / "other-cache"
    checked.clear()
    build_at(index, tmp_path / "d", 0, without)  # no record: every root is checked
    assert len(checked) == len(list((index.path / "root").glob("*.root.json")))


def test_a_feature_set_wasmtime_accepted_is_not_checked_again_by_the_same_wasmtime(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild that verifies nothing need not start wasmtime; another wasmtime checks again."""
    from registry_tool.manifest import cache as disk_cache
    from registry_tool.manifest import wasm

    cache = tmp_path / "cache"
    _age(index)
    build_at(index, tmp_path / "a", 0, cache)
    engines: list[object] = []
    real = wasm.make_engine

    def spy(features: Any = None) -> Any:
        engines.append(features)
        return real(features)

    monkeypatch.setattr(wasm, "make_engine", spy)
    again = build_at(index, tmp_path / "a", 1, cache)
    assert engines == [] and again.counts["verified"] == 0
    other = f"{disk_cache.library_version('wasmtime')}-upgraded"
    monkeypatch.setattr(disk_cache, "library_version", lambda module: other)
    build_at(index, tmp_path / "a", 2, cache)
    assert engines, "a feature set recorded under another wasmtime was not checked again"


def test_another_wasmtime_verifies_every_release_again(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wasmtime decides validation and smoke figures: its cached verdicts do not hold for another one."""
    from registry_tool.registry import build as build_mod

    cache = tmp_path / "cache"
    _age(index)
    first = build_at(index, tmp_path / "a", 0, cache)
    assert build_at(index, tmp_path / "a", 1, cache).counts["verified"] == 0
    monkeypatch.setattr(build_mod, "library_version", lambda module: "another wasmtime")
    assert build_at(index, tmp_path / "a", 2, cache).counts["verified"] == first.counts["verified"]


def test_a_cache_written_by_another_tool_version_is_no_cache(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every record is one version's verdict (roots' schema, tree nodes, entries): upgrades start afresh."""
    from registry_tool.registry import cache as cache_mod

    cache = tmp_path / "cache"
    build_at(index, tmp_path / "a", 0, cache)
    monkeypatch.setattr(cache_mod, "__version__", "99.0.0")
    loaded = BuildCache(cache)
    assert len(loaded) == 0 and loaded.checked_roots() == frozenset()


def test_a_trailer_without_the_files_nonce_is_not_trusted(index: Index, tmp_path: Path) -> None:
    """Bytes an index author controls (inside an entry) cannot pass for a trailer after a torn append."""
    import marshal
    import zlib

    from registry_tool.registry import cache as cache_mod

    cache = tmp_path / "cache"
    build_at(index, tmp_path / "a", 0, cache)
    data = cache.read_bytes()
    forged = marshal.dumps({"releases": {}, "content": {}, "publication": None, "roots": ["f" * 64]})
    guess = b"\0" * 8  # anything but the file's own nonce
    tail = cache_mod._TRAILER.pack(
        cache_mod._MAGIC, guess, len(data), len(forged), zlib.crc32(guess + forged)
    )
    cache.write_bytes(data + forged + tail)
    loaded = BuildCache(cache)
    assert len(loaded) == 0 and loaded.checked_roots() == frozenset()


def _state(cache: BuildCache) -> tuple[Any, ...]:
    return (
        dict(cache._by_release),
        dict(cache._by_content),
        dict(cache._listings),
        cache._publication,
        cache._roots,
        cache._features,
    )


def test_later_saves_append_deltas_that_read_back_as_the_whole_index(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encoding the whole index (4.5 MB at 10,000 releases) on every save was a tenth of a one-change
    rebuild: a save appends what changed since the index it loaded, up to _MAX_DEPTH deltas."""
    from registry_tool.registry import cache as cache_mod

    monkeypatch.setattr(cache_mod, "_MAX_DEPTH", 2)
    cache, site = tmp_path / "cache", tmp_path / "site"
    _age(index)
    build_at(index, site, 0, cache)
    depths = []
    for variant in (7, 8, 9):
        index.add_release("beta", f"2.{variant}.0", variant=variant)
        _age(index)
        build_at(index, site, 0, cache)
        loaded = BuildCache(cache)
        depths.append(loaded._depth)
        state = _state(loaded)
        if loaded._depth == 2:
            assert loaded._file is not None and loaded._index_at is not None
            chain = cache_mod._read_chain(loaded._file.fileno(), loaded._nonce, loaded._index_at, 0)
            newest, whole = chain[0][1], chain[-1][1]
            assert "base" in newest and "base" not in whole
            # The same SITE: its documents as changes, not the whole record.
            assert "documents" in newest and "publication" not in newest
        loaded.close()
        # What the chain reads back is what a whole index written now holds (in a copy).
        copy = tmp_path / "copy"
        copy.write_bytes(cache.read_bytes())
        rewritten = BuildCache(copy)
        rewritten._rewrite()
        rewritten.close()
        again = BuildCache(copy)
        assert again._depth == 0 and _state(again)[1:] == state[1:]
        assert again._by_release.keys() == state[0].keys()  # the entries moved, the same ones
        again.close()
    assert depths == [1, 2, 0]  # two deltas, then a whole index again
    assert len(BuildCache(cache)) == 7


def test_a_damaged_record_below_the_newest_index_is_no_cache(index: Index, tmp_path: Path) -> None:
    cache, site = tmp_path / "cache", tmp_path / "site"
    _age(index)
    build_at(index, site, 0, cache)
    whole = BuildCache(cache)
    offset, length, _ = whole._index_at  # type: ignore[misc]
    whole.close()
    index.add_release("beta", "2.1.0", variant=7)
    _age(index)
    build_at(index, site, 0, cache)
    loaded = BuildCache(cache)
    assert loaded._depth == 1 and len(loaded) == 5
    loaded.close()
    data = bytearray(cache.read_bytes())
    data[offset + length // 2] ^= 0xFF  # inside the whole index the delta names
    cache.write_bytes(bytes(data))
    assert len(BuildCache(cache)) == 0
