"""inspect_wasm: types of imports/exports, components, defined memories; no execution."""

from __future__ import annotations

import pytest
import wasmtime

from registry_tool.manifest import WasmInspectionError, inspect_wasm, is_component


def wat(text: str) -> bytes:
    return bytes(wasmtime.wat2wasm(text))


def test_imports_and_exports_with_types() -> None:
    info = inspect_wasm(
        wat(
            """(module
              (import "ferrite:keys" "get" (func (param i32 i32) (result i64)))
              (import "env" "mem" (memory 3))
              (table (export "tab") 7 funcref)
              (global (export "g") i32 (i32.const 1))
              (func (export "f") (param i64 f32 f64) (result i32 i64) i32.const 0 i64.const 0))"""
        )
    )
    assert not info.is_component
    get = info.imports[0]
    assert (get.module, get.name, get.kind, get.params, get.results) == (
        "ferrite:keys",
        "get",
        "func",
        ("i32", "i32"),
        ("i64",),
    )
    assert str(get) == "ferrite:keys.get (func [i32, i32] -> [i64])"
    assert info.imports[1].kind == "memory"
    f = info.export("f")
    assert f is not None and f.signature == "[i64, f32, f64] -> [i32, i64]"
    assert {e.name: e.kind for e in info.exports} == {"tab": "table", "g": "global", "f": "func"}
    assert info.memory_min_bytes == 3 * 65536
    assert info.table_min_elements == 7


def test_defined_memory_and_table_are_measured_without_export() -> None:
    info = inspect_wasm(wat("(module (memory 40 50) (table 9 funcref))"))
    assert info.memory_min_bytes == 40 * 65536
    assert info.table_min_elements == 9


def test_no_code_runs_during_inspection() -> None:
    # A start function that would trap: compilation alone must not run it.
    info = inspect_wasm(wat("(module (func $boom unreachable) (start $boom))"))
    assert info.exports == ()


def test_component_is_recognised() -> None:
    data = wat("(component)")
    assert is_component(data)
    info = inspect_wasm(data)
    assert info.is_component and info.exports == ()


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "magic"),
        (b"MZ\x90\x00", "magic"),
        (b"\0asm\x02\x00\x00\x00", "cannot compile"),
        (b"\0asm\x01\x00\x00\x00\x0a\xff", "cannot compile"),
        (b"\0asm\x0d\x00\x01\x00\x00", "cannot compile the component"),
    ],
)
def test_invalid_binaries(data: bytes, fragment: str) -> None:
    with pytest.raises(WasmInspectionError, match=fragment) as info:
        inspect_wasm(data)
    assert info.value.code == "wasm-invalid"
    assert info.value.exit_code == 1


def test_disabled_feature_names_the_proposal() -> None:
    with pytest.raises(WasmInspectionError, match="SIMD support is not enabled"):
        inspect_wasm(wat("(module (func (result v128) v128.const i64x2 0 0))"), {"simd": False})
