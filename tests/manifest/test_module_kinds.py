"""Modules built for another host get one finding naming what they are; imports are reported once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import wasmtime

from registry_tool.manifest import load_registry_config, validate_release
from registry_tool.manifest.abi import module_kind

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _validate(
    tmp_path: Path, case: str, wat: str | None = None, abi: str | None = None
) -> list[tuple[str, str]]:
    release = tmp_path / "release"
    shutil.copytree(EXAMPLES / "invalid" / case, release)
    source = wat if wat is not None else (release / "module.wat").read_text()
    (release / "module.wasm").write_bytes(wasmtime.wat2wasm(source))
    if abi is not None:
        manifest = release / "plugin.toml"
        text = manifest.read_text()
        manifest.write_text(text.replace(text.split("abi = ")[1].split("\n")[0], f'"{abi}"'))
    shutil.copy(EXAMPLES / "registry.toml", tmp_path / "registry.toml")
    result = validate_release(release, load_registry_config(tmp_path / "registry.toml"))
    return [(f.rule, f.message) for f in result.findings if f.severity.value == "error"]


@pytest.mark.parametrize(
    "case",
    [
        "module-kind-dylink-side-module",
        "module-kind-go-js",
        "module-kind-emscripten-glue",
        "module-kind-proxy-wasm-filter-as-core",
    ],
)
def test_foreign_module_gets_one_finding_not_one_per_import(tmp_path: Path, case: str) -> None:
    findings = _validate(tmp_path, case)
    assert [rule for rule, _ in findings] == ["module-kind"], findings


def test_duplicate_imports_are_reported_once(tmp_path: Path) -> None:
    wat = (
        '(module (import "env" "abort" (func)) (import "env" "abort" (func (param i32)))'
        ' (func (export "add") (param i32 i32) (result i32) local.get 0))'
    )
    findings = _validate(tmp_path, "module-kind-dylink-side-module", wat=wat)
    assert [rule for rule, _ in findings] == ["import-not-allowed"], findings


def test_extism_void_export_is_accepted_and_unknown_host_names_refused(tmp_path: Path) -> None:
    ok = '(module (func (export "add")))'
    assert _validate(tmp_path / "a", "module-kind-dylink-side-module", wat=ok, abi="extism") == []
    bogus = '(module (import "extism:host/env" "rt_heap_top" (func)) (func (export "add")))'
    [(rule, message)] = _validate(tmp_path / "b", "module-kind-dylink-side-module", wat=bogus, abi="extism")
    assert rule == "import-not-allowed" and "not part of the extism ABI" in message  # smoke refuses it too


def test_a_proxy_wasm_filter_declared_as_proxy_wasm_is_not_foreign() -> None:
    imports = [("env", "proxy_log"), ("wasi_snapshot_preview1", "fd_write")]
    assert module_kind("proxy-wasm", imports, ["proxy_abi_version_0_2_0"], []) is None
    found = module_kind("extism", imports, ["proxy_abi_version_0_2_0"], [])
    assert found is not None and found.kind == "Proxy-Wasm filter"
    assert module_kind("core", [("env", "abort")], ["add"], ["name", "producers"]) is None
    # A host module's own names never make a module "Emscripten output".
    assert module_kind("core", [("ferrite:net", "invoke_handler")], ["add"], []) is None
