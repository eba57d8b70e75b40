"""The sample index: every committed .wasm is exactly what its source builds to."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from registry_tool.manifest import find_releases, load_manifest, load_registry_config, validate_release

REPO = Path(__file__).resolve().parents[2]


def _load_build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_samples", REPO / "scripts" / "build_samples.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


build = _load_build_script()


@pytest.mark.parametrize("sample", build.SAMPLES, ids=lambda s: s.name)
def test_committed_wasm_is_what_the_source_builds_to(sample) -> None:  # type: ignore[no-untyped-def]
    if sample.kind in build.GO_BUILDMODE:
        go = build.go_version()
        if go is None:
            pytest.skip("go is not installed; Go samples cannot be rebuilt")
        if go != build.REFERENCE_GO:
            pytest.skip(f"Go {go} differs from the reference {build.REFERENCE_GO}; bytes would differ")
    elif sample.kind != "wat":
        version = build.clang_version()
        if version is None:
            pytest.skip(
                "clang is not installed (apt-get install clang lld wasi-libc); C samples cannot be rebuilt"
            )
        if version != build.REFERENCE_CLANG:
            pytest.skip(
                f"clang {version} differs from the reference {build.REFERENCE_CLANG}; bytes would differ"
            )
    committed = (sample.release_dir / sample.wasm_name).read_bytes()
    # Digests, not bytes: pytest's diff of two multi-MiB modules takes minutes to compute.
    rebuilt = hashlib.sha256(build.build(sample)).hexdigest()
    assert rebuilt == hashlib.sha256(committed).hexdigest(), (
        f"rebuild {sample.name} with `make samples` and commit it"
    )


@pytest.mark.parametrize("sample", build.SAMPLES, ids=lambda s: s.name)
def test_manifest_pins_the_committed_wasm(sample) -> None:  # type: ignore[no-untyped-def]
    m = load_manifest(sample.release_dir)
    data = m.wasm_path.read_bytes()
    assert m.artifact.file == sample.wasm_name
    assert m.artifact.sha256 == hashlib.sha256(data).hexdigest()
    assert m.artifact.size == len(data)


def test_one_sample_per_abi_with_tests_and_a_gated_import() -> None:
    index = REPO / "index"
    config = load_registry_config(index)
    manifests = [load_manifest(r) for r in find_releases(index)]
    assert {m.abi for m in manifests} == {"core", "wasi-command", "extism", "proxy-wasm", "component"}
    assert all(m.tests for m in manifests)
    gated = [m for m in manifests if m.permissions]
    assert gated, "a sample must use a permission-gated import"
    for m in gated:
        result = validate_release(m.release_dir, config)
        assert result.ok and any(i.startswith("ferrite:keys.") for i in result.data["imports"])  # type: ignore[union-attr]


def test_every_source_has_a_sample() -> None:
    # go.mod / go.sum pin a Go sample's module versions; they are build inputs, not samples.
    sources = {
        p.relative_to(REPO / "samples" / "src").as_posix()
        for p in (REPO / "samples" / "src").rglob("*.*")
        if p.name not in ("go.mod", "go.sum")
    }
    assert sources == {s.source for s in build.SAMPLES}
