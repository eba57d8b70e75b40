"""The compiled-module cache: keyed by module digest + engine configuration, private, self-healing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import wasmtime

from registry_tool.sandbox import Case, EngineSpec, ModuleCache, Outcome, default_cache_dir
from registry_tool.sandbox.engine import CACHE_ENV, cache_key, make_engine

from .conftest import Runner, wat

ADD = '(module (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))'
CASE = Case("add", "add", [2, 3], expect_kind="values", expect=[5])


def test_cache_entry_is_written_and_reused(run: Runner, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    [first] = run(wat(ADD), CASE, cache_dir=cache)
    entries = list(cache.glob("*.cwasm"))
    assert first.outcome is Outcome.passed
    assert len(entries) == 1
    inode = entries[0].stat().st_ino
    [second] = run(wat(ADD), CASE, cache_dir=cache)
    assert second.outcome is Outcome.passed
    assert entries[0].stat().st_ino == inode  # read, not rewritten (a write renames a new file in)
    assert (cache.stat().st_mode & 0o777) == 0o700


@pytest.mark.parametrize(
    "other",
    [
        EngineSpec(features={"reference_types": True, "simd": False}),
        EngineSpec(stack=512 * 1024),
        EngineSpec(component=True),
    ],
    ids=["features", "stack", "component"],
)
def test_key_changes_with_engine_configuration(other: EngineSpec) -> None:
    wasm = wat(ADD)
    assert cache_key(wasm, EngineSpec()) != cache_key(wasm, other)
    assert cache_key(wasm, EngineSpec()) == cache_key(wasm, EngineSpec())
    assert cache_key(wasm, EngineSpec()) != cache_key(wat(ADD.replace('"add"', '"sum"')), EngineSpec())


def test_corrupt_entry_is_discarded_and_recompiled(run: Runner, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    run(wat(ADD), CASE, cache_dir=cache)
    [entry] = cache.glob("*.cwasm")
    entry.write_bytes(b"\x7fELF garbage that is not a serialized module")
    [result] = run(wat(ADD), CASE, cache_dir=cache)
    assert result.outcome is Outcome.passed
    assert entry.read_bytes().startswith(b"\x7fELF") and len(entry.read_bytes()) > 100  # rewritten


def test_entry_from_another_module_under_the_right_name_is_not_trusted_blindly(tmp_path: Path) -> None:
    # The key is the content digest: an entry only ever answers for the bytes that produced it.
    engine = make_engine(EngineSpec())
    cache = ModuleCache(tmp_path / "c")
    other = wasmtime.Module(engine, wat(ADD.replace("i32.add", "i32.sub")))
    cache.store(other, cache_key(wat(ADD.replace("i32.add", "i32.sub")), EngineSpec()))
    assert cache.load(engine, cache_key(wat(ADD), EngineSpec())) is None


def test_shared_writable_cache_directory_is_ignored(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    os.chmod(directory, 0o777)
    engine = make_engine(EngineSpec())
    cache = ModuleCache(directory)
    module = wasmtime.Module(engine, wat(ADD))
    key = cache_key(wat(ADD), EngineSpec())
    assert cache.store(module, key) is False
    (directory / f"{key}.cwasm").write_bytes(module.serialize())  # planted by "someone else"
    assert cache.load(engine, key) is None


def test_cache_dir_follows_platform_conventions_and_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert "registry-tool" in str(default_cache_dir())
    monkeypatch.setenv(CACHE_ENV, "/somewhere/else")
    assert default_cache_dir() == Path("/somewhere/else")


def test_least_recently_used_entries_are_pruned_past_the_size_cap(tmp_path: Path) -> None:
    engine = make_engine(EngineSpec())
    modules = [wat(ADD.replace('"add"', f'"f{i}"')) for i in range(3)]
    size = len(wasmtime.Module(engine, modules[0]).serialize())
    cache = ModuleCache(tmp_path / "c", max_bytes=int(size * 2.5))
    keys = [cache_key(m, EngineSpec()) for m in modules]
    cache.store(wasmtime.Module(engine, modules[0]), keys[0])
    cache.store(wasmtime.Module(engine, modules[1]), keys[1])
    os.utime(cache.path_for(keys[1]), ns=(1, 1))  # make entry 1 the least recently used
    assert cache.load(engine, keys[0]) is not None  # a hit refreshes entry 0
    cache.store(wasmtime.Module(engine, modules[2]), keys[2])
    assert [cache.path_for(k).exists() for k in keys] == [True, False, True]
