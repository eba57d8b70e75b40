"""Attack: a module wasmtime accepts whose table or memory sizes our own binary reader misread.

The registry's limits on a module's initial table elements and memory are checked against what
``binary.py`` reads, so a misread is a limit bypass: a table with an initializer (the
function-references form ``0x40 0x00 reftype limits expr``, on by default in wasmtime) was read
as a plain table, its size taken from the wrong bytes, and the parse error that followed made
the memory section be skipped too (a 320 MB initial memory passed as 0).  Sizes that cannot be
read now refuse the module; untrusted page sizes are never shifted into huge integers.
"""

from __future__ import annotations

import pytest
import wasmtime

from registry_tool.manifest.binary import custom_section_names, module_interface
from registry_tool.manifest.wasm import WasmInspectionError, inspect_wasm

PAGE = 65536


def _module(wat: str) -> bytes:
    data = wasmtime.wat2wasm(wat)
    wasmtime.Module.validate(wasmtime.Engine(), data)  # wasmtime's defaults accept every one
    return bytes(data)


#: Table initializers are function-references and GC encodings: a registry turns them on.
_GC = {"function_references": True, "gc": True}


@pytest.mark.parametrize(
    ("wat", "table", "memory"),
    [
        ("(module (func $f) (table 1000000 funcref (ref.func $f)) (memory 5000))", 1_000_000, 5000 * PAGE),
        ("(module (func $f) (table 3 (ref null func) (ref.func $f)) (table 9 funcref))", 9, 0),
        ("(module (func $f) (table 7 (ref func) (ref.func $f)) (memory 2))", 7, 2 * PAGE),
        (
            "(module (global $g i32 (i32.const 4)) (table 11 externref (ref.null extern)) (memory 1))",
            11,
            PAGE,
        ),
        # GC constant expressions (wasmtime turns GC on by default)
        ("(module (table 13 i31ref (ref.i31 (i32.const 7))) (memory 3))", 13, 3 * PAGE),
        ("(module (table 5 anyref (any.convert_extern (ref.null extern))))", 5, 0),
        (
            "(module (table 6 externref"
            " (extern.convert_any (ref.i31 (i32.add (i32.const 1) (i32.const 2))))))",
            6,
            0,
        ),
    ],
)
def test_tables_with_initializers_are_read_with_their_real_sizes(wat: str, table: int, memory: int) -> None:
    iface = module_interface(_module(wat))
    assert (iface.table_min_elements, iface.memory_min_bytes) == (table, memory)
    info = inspect_wasm(_module(wat), _GC)
    assert (info.table_min_elements, info.memory_min_bytes) == (table, memory)


def _with_section(section_id: int, body: bytes) -> bytes:
    assert len(body) < 128
    return b"\0asm\x01\0\0\0" + bytes([section_id, len(body)]) + body


@pytest.mark.parametrize(
    "data",
    [
        # a memory with the custom-page-sizes flag and a page-size log2 of 2**40 / 2**63
        _with_section(5, b"\x01\x08\x00" + b"\x80\x80\x80\x80\x80\x20"),
        _with_section(5, b"\x01\x08\x00" + b"\xff" * 8 + b"\x7f"),
        # a table initializer holding an instruction no constant expression has (call 0)
        _with_section(4, b"\x01\x40\x00\x70\x00\x01\x10\x00\x0b"),
        # a table section with bytes after its last table
        _with_section(4, b"\x01\x70\x00\x01\xff"),
    ],
    ids=["page-log2-2^40", "page-log2-2^63", "unknown-init-instruction", "trailing-bytes"],
)
def test_unreadable_sizes_are_a_value_error_never_a_zero_or_a_memory_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        module_interface(data)


def test_a_custom_section_running_past_the_end_is_no_crash() -> None:
    assert custom_section_names(b"\0asm\x01\0\0\0\x00\x05") == []
    assert custom_section_names(b"\0asm\x01\0\0\0\x00\x05\x04name") == ["name"]


def test_inspect_refuses_a_module_whose_sizes_it_cannot_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """wasmtime accepted it, our reader cannot: a named refusal, not sizes of 0."""
    from registry_tool.manifest import binary

    data = _module("(module (func $f) (table 1000000 funcref (ref.func $f)))")
    monkeypatch.setattr(binary, "_CONST_ULEB", frozenset())  # as if ref.func were unknown
    with pytest.raises(WasmInspectionError, match="cannot read the module"):
        inspect_wasm(data, _GC)


def test_the_clients_import_list_reads_the_import_section_alone() -> None:
    """A signed module whose table section our reader does not know still lists its imports."""
    from registry_tool.manifest.binary import module_imports

    imports = bytes([2, 9]) + b"\x01\x03env\x01f\x00\x00"
    tables = bytes([4, 9]) + b"\x01\x40\x00\x70\x00\x01\x10\x00\x0b"  # initializer: call 0
    data = b"\0asm\x01\0\0\0" + imports + tables
    assert [(i.module, i.name) for i in module_imports(data)] == [("env", "f")]
    with pytest.raises(ValueError):
        module_interface(data)
