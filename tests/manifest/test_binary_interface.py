"""binary.module_interface against wasmtime's own view of compiled modules.

validate no longer compiles core modules (it validates them, then reads imports/exports
from the bytes), so the reader must agree with what a compilation reports: names, kinds and
order of imports and exports, and the initial memory/table sizes.
"""

from __future__ import annotations

import pytest
import wasmtime

from registry_tool.manifest.binary import WASM_PAGE, module_interface
from registry_tool.manifest.wasm import inspect_wasm

MODULES = {
    "numeric": '(module (func (export "add") (param i32 i64) (result f64) f64.const 0))',
    "imports-every-kind": """(module
        (import "env" "f" (func (param i32) (result i32)))
        (import "env" "mem" (memory 3 10))
        (import "env" "tbl" (table 7 funcref))
        (import "env" "g" (global (mut i64)))
        (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
        (func (export "run") (result i32) i32.const 0)
        (export "memory" (memory 0))
        (export "table" (table 0))
        (export "glob" (global 0)))""",
    "defined-memory-and-table": """(module
        (memory (export "memory") 5)
        (table 12 funcref)
        (global $g i32 (i32.const 1))
        (export "g" (global $g))
        (func $a (param f32) (result f32) local.get 0)
        (export "a" (func $a))
        (export "a_again" (func $a)))""",
    "imported-memory-larger": """(module
        (import "env" "memory" (memory 9))
        (memory 2))""",
    "v128": '(module (func (export "simd") (param v128) (result v128) local.get 0))',
}
_KINDS = {
    wasmtime.FuncType: "func",
    wasmtime.MemoryType: "memory",
    wasmtime.TableType: "table",
    wasmtime.GlobalType: "global",
}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_reader_agrees_with_a_wasmtime_compilation(name: str) -> None:
    config = wasmtime.Config()
    config.wasm_multi_memory = True
    engine = wasmtime.Engine(config)
    data = bytes(wasmtime.wat2wasm(MODULES[name]))
    module = wasmtime.Module(engine, data)
    iface = module_interface(data)
    assert [(i.module, i.name, i.kind) for i, _ in iface.imports] == [
        (i.module, i.name or "", _KINDS[type(i.type)]) for i in module.imports
    ]
    assert [(n, k) for n, k, _ in iface.exports] == [(e.name, _KINDS[type(e.type)]) for e in module.exports]
    types = [*(i.type for i in module.imports), *(e.type for e in module.exports)]
    memories = [t.limits.min * WASM_PAGE for t in types if isinstance(t, wasmtime.MemoryType)]
    tables = [t.limits.min for t in types if isinstance(t, wasmtime.TableType)]
    assert iface.memory_min_bytes >= max(memories, default=0)
    assert iface.table_min_elements >= max(tables, default=0)


def test_function_signatures_and_sizes() -> None:
    info = inspect_wasm(bytes(wasmtime.wat2wasm(MODULES["imports-every-kind"])))
    assert [str(i) for i in info.imports] == [
        "env.f (func [i32] -> [i32])",
        "env.mem (memory)",
        "env.tbl (table)",
        "env.g (global)",
        "wasi_snapshot_preview1.fd_write (func [i32, i32, i32, i32] -> [i32])",
    ]
    assert (info.memory_min_bytes, info.table_min_elements) == (3 * WASM_PAGE, 7)
    run = info.export("run")
    assert run is not None and (run.kind, run.params, run.results) == ("func", (), ("i32",))
    defined = inspect_wasm(bytes(wasmtime.wat2wasm(MODULES["defined-memory-and-table"])), {})
    assert (defined.memory_min_bytes, defined.table_min_elements) == (5 * WASM_PAGE, 12)
    assert [(e.name, e.kind, e.signature) for e in defined.exports if e.kind == "func"] == [
        ("a", "func", "[f32] -> [f32]"),
        ("a_again", "func", "[f32] -> [f32]"),
    ]


def test_multi_memory_needs_the_feature() -> None:
    """Validation applies the registry's features exactly as compilation did."""
    data = bytes(wasmtime.wat2wasm(MODULES["imported-memory-larger"]))
    from registry_tool.manifest.errors import WasmInspectionError

    with pytest.raises(WasmInspectionError, match="cannot compile"):
        inspect_wasm(data, {"multi_memory": False})
    assert inspect_wasm(data, {"multi_memory": True}).memory_min_bytes == 9 * WASM_PAGE
