"""The build cache file: an index, then one blob per release entry read only when asked for.

Damage is never trusted: a torn or corrupted index is no cache, an entry failing its CRC is a
miss for that release only, and saving copies the entries it never read byte for byte.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from registry_tool.registry.build import BuildOptions, build_site
from registry_tool.registry.cache import BuildCache

from .conftest import NOW

Index = Any  # conftest.Index


def _build(index: Index, site: Path, cache: Path, at: int = 0) -> Any:
    now = NOW + timedelta(minutes=at)
    return build_site(
        BuildOptions(
            index=index.path,
            out=site,
            keys=[index.keys.index],
            now=now,
            verify_now=now,
            smoke=False,
            cache_path=cache,
            jobs=1,
        )
    )


def _age(index: Index) -> None:
    old = time.time() - 3600
    for path in (index.path / "plugins").rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))


def _entry_area(cache: Path) -> int:
    head = cache.read_bytes().split(b"\n", 1)[0]
    return len(head) + 1 + int(head.split(b" ")[-2])


def test_an_entry_failing_its_crc_is_a_miss_for_that_release_only(index: Index, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _age(index)
    _build(index, tmp_path / "a", cache)
    data = bytearray(cache.read_bytes())
    data[_entry_area(cache) + 5] ^= 0xFF  # inside the first entry (sorted: alpha/1.0.0)
    cache.write_bytes(bytes(data))
    result = _build(index, tmp_path / "b", cache)
    assert result.counts == {"verified": 1, "cached": 3, "smoked": 0}


def test_a_torn_index_is_no_cache(index: Index, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _age(index)
    _build(index, tmp_path / "a", cache)
    cache.write_bytes(cache.read_bytes()[: _entry_area(cache) - 10])
    assert len(BuildCache(cache)) == 0
    assert _build(index, tmp_path / "b", cache).counts["verified"] == 4


def test_a_truncated_entry_area_is_a_miss_not_a_crash(index: Index, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _age(index)
    _build(index, tmp_path / "a", cache)
    cache.write_bytes(cache.read_bytes()[:-10])  # the last entry (beta/2.0.0) is cut
    result = _build(index, tmp_path / "b", cache)
    assert result.counts == {"verified": 1, "cached": 3, "smoked": 0}


def test_entries_never_read_are_saved_byte_for_byte_and_still_hit(index: Index, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _age(index)
    _build(index, tmp_path / "a", cache)
    loaded = BuildCache(cache)
    before = {key: loaded._read(where) for key, where in loaded._by_release.items()}  # type: ignore[arg-type]
    loaded.save()  # nothing read: every entry copied
    loaded.save()  # and again, from the file it just wrote
    again = BuildCache(cache)
    after = {key: again._read(where) for key, where in again._by_release.items()}  # type: ignore[arg-type]
    assert after == before and None not in after.values()
    assert _build(index, tmp_path / "b", cache).counts == {"verified": 0, "cached": 4, "smoked": 0}


def test_a_cache_file_cut_short_costs_misses_never_a_failed_build(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries past the end of a torn file are gone at load: saving never trips over them."""
    from registry_tool.registry import cache as cache_mod

    monkeypatch.setattr(cache_mod, "RACY_SECONDS", 0.0)  # the files were aged a moment ago
    site, cache = tmp_path / "site", tmp_path / "cache"
    _age(index)
    _build_previous(index, site, cache, 0)
    _build_previous(index, site, cache, 1)  # plugins kept whole: their entries only copied
    cache.write_bytes(cache.read_bytes()[:-10])  # the last entry (beta/2.0.0) loses its tail
    for at in (2, 3):
        _build_previous(index, site, cache, at)  # published, and the cache saved: no OSError
    loaded = BuildCache(cache)
    assert len(loaded) >= 3  # beta/2.0.0's entry is gone until beta is looked at again
    loaded.close()


def test_no_cache_file_is_left_open_by_a_refused_build(index: Index, tmp_path: Path) -> None:
    import gc
    import warnings

    from registry_tool.registry.build import BuildRefusedError

    cache = tmp_path / "cache"
    _build(index, tmp_path / "site", cache)
    (index.release_dir("alpha", "1.0.0") / "plugin.toml.minisig").write_text("garbage")
    gc.collect()  # what earlier tests left for the collector is not this build's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(BuildRefusedError):
            _build(index, tmp_path / "site2", cache)
        gc.collect()
    assert not [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def _build_previous(index: Index, site: Path, cache: Path, at: int) -> Any:
    now = NOW + timedelta(minutes=at)
    return build_site(
        BuildOptions(
            index=index.path,
            out=site,
            keys=[index.keys.index],
            now=now,
            verify_now=now,
            smoke=False,
            cache_path=cache,
            previous=str(site) if (site / "registry.json").exists() else None,
            jobs=1,
        )
    )
