"""Validate's cache (compiled schemas, remembered verdicts) never changes a verdict.

The remembered verdicts are consulted only by a process that asks for them (the validate
launcher); here they are switched on so every check goes through the cache.  Every example
tree must give the same report with no cache, with an empty cache (filled on the way) and
with the cache that run filled.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from registry_tool.manifest import cache, semver_subset, spdx, validate_paths, wasm
from registry_tool.manifest import validate as rules
from registry_tool.manifest.wasm import inspect_wasm

REPO = Path(__file__).resolve().parents[2]
Materialise = Callable[[Path], tuple[Path, Path]]


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setattr(cache, "cache_dir", lambda: directory)
    return directory


def _through_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "_verdicts", {"on": True})
    rules.spdx_errors.cache_clear()


def _without_the_subsets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every license, version and range to its library (and so through the cache)."""
    monkeypatch.setattr(spdx, "accepts", lambda expr: None)
    for name in ("is_version", "check_range", "ranges_overlap"):
        monkeypatch.setattr(semver_subset, name, lambda *args: None)


def _report(path: Path, config: Path) -> object:
    rules.spdx_errors.cache_clear()
    return validate_paths([path], config_path=config).to_json()


@pytest.mark.parametrize("subsets", [True, False], ids=["subsets", "libraries-only"])
def test_examples_give_the_same_report_with_and_without_the_cache(
    example_cases: dict[str, list[Path]],
    materialised: Materialise,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    subsets: bool,
) -> None:
    """With and without the license/version subsets, and with and without the cache."""
    cases = [(case, *materialised(case)) for case in example_cases["invalid"] + example_cases["valid"]]
    plain = [_report(path, config) for _, path, config in cases]
    if not subsets:
        _without_the_subsets(monkeypatch)
    _through_the_cache(monkeypatch)
    filling = [_report(path, config) for _, path, config in cases]
    assert any(p.name.startswith("wasm-valid-") for p in cache_dir.iterdir())
    assert subsets != any(p.name.startswith("spdx-") for p in cache_dir.iterdir())
    filled = [_report(path, config) for _, path, config in cases]
    for (case, _, _), a, b, c in zip(cases, plain, filling, filled, strict=True):
        assert a == b == c, case.name


def test_verdicts_are_off_unless_asked_for(cache_dir: Path) -> None:
    rules.spdx_errors.cache_clear()
    assert rules.spdx_errors("MIT OR Apache-2.0") == ()
    inspect_wasm((REPO / "index/plugins/adler32/1.0.0/adler32.wasm").read_bytes())
    assert not cache_dir.exists()  # a library caller (build, smoke, ci) writes nothing


def test_only_acceptances_are_remembered(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _through_the_cache(monkeypatch)
    assert rules.spdx_errors("(MIT OR Apache-2.0)") == ()  # parentheses: license_expression decides
    assert rules.spdx_errors("MIT OR Nonsense-1.0") != ()
    assert cache.proved("spdx", "license_expression", "(MIT OR Apache-2.0)")
    assert not cache.proved("spdx", "license_expression", "MIT OR Nonsense-1.0")
    garbage = b"\0asm\x01\0\0\0\xff\xff"
    with pytest.raises(wasm.WasmInspectionError):
        inspect_wasm(garbage)
    with pytest.raises(wasm.WasmInspectionError):
        inspect_wasm(garbage)  # decided again, refused again
    assert not any(p.name.startswith("wasm-valid-") for p in cache_dir.iterdir())


def test_a_verdict_is_for_its_exact_input_and_library_version(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.remember("wasm-valid", "wasmtime", "[]", b"\0asm\x01\0\0\0")
    assert cache.proved("wasm-valid", "wasmtime", "[]", b"\0asm\x01\0\0\0")
    assert not cache.proved("wasm-valid", "wasmtime", "[('simd', False)]", b"\0asm\x01\0\0\0")
    assert not cache.proved("wasm-valid", "wasmtime", "[]", b"\0asm\x01\0\0\0\0")
    assert not cache.proved("wasm-valid", "wasmtime", "[]\0asm", b"\x01\0\0\0")  # parts are delimited
    monkeypatch.setattr(cache, "library_version", lambda name: "0.0.0-other")
    assert not cache.proved("wasm-valid", "wasmtime", "[]", b"\0asm\x01\0\0\0")


def test_version_verdicts_are_remembered_only_when_true(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry_tool.manifest import versions

    _through_the_cache(monkeypatch)
    _without_the_subsets(monkeypatch)
    versions.is_version.cache_clear()
    assert versions.is_version("1.2.3") and not versions.is_version("01.2.3")
    assert versions.ranges_overlap(">=1.0.0, <2.0.0", "^1.5")
    assert not versions.ranges_overlap(">=1.0.0, <2.0.0", "^2.5")
    versions.check_range(">=0.2.0, <1.0.0")
    with pytest.raises(versions.RangeError):
        versions.check_range("not a range")
    lib = "semantic_version"
    assert cache.proved("semver", lib, "1.2.3") and not cache.proved("semver", lib, "01.2.3")
    assert cache.proved("overlap", lib, ">=1.0.0, <2.0.0", "^1.5")
    assert not cache.proved("overlap", lib, ">=1.0.0, <2.0.0", "^2.5")
    assert cache.proved("range", lib, ">=0.2.0, <1.0.0") and not cache.proved("range", lib, "not a range")
    versions.is_version.cache_clear()


def test_a_cache_others_can_write_is_not_read(cache_dir: Path) -> None:
    cache.remember("spdx", "license_expression", "MIT")
    assert cache.proved("spdx", "license_expression", "MIT")
    cache_dir.chmod(0o775)
    try:
        assert not cache.proved("spdx", "license_expression", "MIT")
    finally:
        cache_dir.chmod(0o700)


def test_a_component_is_compiled_once_for_its_types(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A componentize-py component took seconds to compile on every validate run, for its names."""
    import wasmtime

    from registry_tool.manifest import wasm as wasm_mod

    _through_the_cache(monkeypatch)
    data = wasmtime.wat2wasm((REPO / "tests/sandbox/modules/hello_component.wat").read_text())
    first = inspect_wasm(bytes(data))
    assert first.is_component and any(i.module.startswith("wasi:cli/stdout") for i in first.imports)

    def no_compile(*args: object) -> None:
        raise AssertionError("compiled again")

    monkeypatch.setattr(wasm_mod, "_compiled_component_info", no_compile)
    assert inspect_wasm(bytes(data)) == first
    # Another feature set is another question: compiled (here: the patched compile raises).
    with pytest.raises(AssertionError, match="compiled again"):
        inspect_wasm(bytes(data), {"simd": False})
    # A damaged entry is no answer.
    for entry in cache_dir.glob("*.answer"):
        entry.write_bytes(b"{not json")
    with pytest.raises(AssertionError, match="compiled again"):
        inspect_wasm(bytes(data))
