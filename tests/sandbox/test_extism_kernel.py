"""The wasm Extism kernel (registry_tool/sandbox/extism_kernel.wat): bounds, allocator, caps, linking."""

from __future__ import annotations

import functools
import gc
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime

from registry_tool.sandbox import Case, Outcome
from registry_tool.sandbox.abis import ExtismAdapter, ImportPolicy, kernel_module

from .conftest import KernelInStore, Runner, wat

PAGE = 65536
ENV = "extism:host/env"


def _kernel(data: bytes = b"", cap: int = 16 * PAGE) -> tuple[KernelInStore, Callable[..., int]]:
    kernel = KernelInStore(data, cap=cap)
    return kernel, functools.partial(kernel.call, kernel.store)


def _plugin(*funcs: str) -> bytes:
    """A plugin importing the kernel's memory functions, with the given exported functions."""
    imports = {
        "alloc": "(param i64) (result i64)",
        "free": "(param i64)",
        "length": "(param i64) (result i64)",
        "length_unsafe": "(param i64) (result i64)",
        "load_u8": "(param i64) (result i32)",
        "load_u64": "(param i64) (result i64)",
        "store_u8": "(param i64 i32)",
        "store_u64": "(param i64 i64)",
        "input_length": "(result i64)",
        "input_offset": "(result i64)",
        "input_load_u8": "(param i64) (result i32)",
        "input_load_u64": "(param i64) (result i64)",
        "output_set": "(param i64 i64)",
        "error_set": "(param i64)",
    }
    lines = [f'(import "{ENV}" "{name}" (func ${name} {sig}))' for name, sig in imports.items()]
    return wat("(module\n" + "\n".join(lines + list(funcs)) + ")")


# --------------------------------------------------------------------------- bounds, through a plugin

OUT_OF_BOUNDS = [
    ("load_u8_past_top", "(drop (call $load_u8 (i64.add (call $alloc (i64.const 8)) (i64.const 8))))",
     "extism: load_u8: out-of-bounds access of 1 bytes"),
    ("load_u64_straddling_top", "(drop (call $load_u64 (i64.add (call $alloc (i64.const 8)) (i64.const 1))))",
     "extism: load_u64: out-of-bounds access of 8 bytes"),
    ("store_u8_at_null", "(call $store_u8 (i64.const 0) (i32.const 1))",
     "extism: store_u8: out-of-bounds access of 1 bytes at offset 0"),
    ("store_u64_wrapping", "(call $store_u64 (i64.const -4) (i64.const 1))",
     "extism: store_u64: out-of-bounds access of 8 bytes at offset 18446744073709551612"),
    ("store_u8_far", "(call $store_u8 (i64.const 0x7fffffff) (i32.const 1))",
     "extism: store_u8: out-of-bounds"),
    ("input_load_u8_at_length", "(drop (call $input_load_u8 (call $input_length)))",
     "extism: input_load_u8: input index 5 (1 bytes) is out of bounds: the input is 5 bytes"),
    ("input_load_u64_short", "(drop (call $input_load_u64 (i64.const 0)))",
     "extism: input_load_u64: input index 0 (8 bytes) is out of bounds"),
    ("output_set_past_top", "(call $output_set (call $alloc (i64.const 4)) (i64.const 5))",
     "extism: output_set: out-of-bounds access of 5 bytes"),
    ("error_set_inside_a_block", "(call $error_set (i64.add (call $alloc (i64.const 16)) (i64.const 1)))",
     "extism: error_set: offset"),
]  # fmt: skip


def test_out_of_bounds_kernel_access_traps_with_a_clear_message(run: Runner) -> None:
    funcs = [f'(func (export "{name}") (result i32) {body} (i32.const 0))' for name, body, _ in OUT_OF_BOUNDS]
    results = run(
        _plugin(*funcs), [Case(name, name, input=b"12345") for name, _, _ in OUT_OF_BOUNDS], abi="extism"
    )
    for (name, _, message), result in zip(OUT_OF_BOUNDS, results, strict=True):
        assert result.outcome is Outcome.trap, (name, result.detail)
        assert message in result.detail, (name, result.detail)


IN_BOUNDS = """
(func (export "in_bounds") (result i32) (local $b i64)
  (local.set $b (call $alloc (i64.const 16)))
  (call $store_u64 (local.get $b) (i64.const 0x6867666564636261))
  (call $store_u64 (i64.add (local.get $b) (i64.const 8)) (call $load_u64 (local.get $b)))
  (call $store_u8 (i64.add (local.get $b) (i64.const 15))
    (i32.add (call $load_u8 (local.get $b)) (i32.const 25)))
  (call $output_set (local.get $b) (i64.const 16))
  (i32.const 0))
(func (export "lengths") (result i32) (local $b i64) (local $c i64)
  (local.set $b (call $alloc (i64.const 24)))
  (local.set $c (call $alloc (i64.const 8)))
  (if (i64.ne (call $length (local.get $b)) (i64.const 24)) (then (return (i32.const 1))))
  (if (i64.ne (call $length_unsafe (local.get $b)) (i64.const 24)) (then (return (i32.const 2))))
  (if (i64.ne (call $length (i64.const 0)) (i64.const 0)) (then (return (i32.const 3))))
  (if (i64.ne (call $length (i64.add (local.get $b) (i64.const 1))) (i64.const 0))
    (then (return (i32.const 4))))
  (if (i64.ne (call $length (i64.const -1)) (i64.const 0)) (then (return (i32.const 5))))
  (if (i64.ne (call $length (i64.const 0x10000000000)) (i64.const 0)) (then (return (i32.const 6))))
  (if (i64.ne (call $length_unsafe (i64.const 0x10000000000)) (i64.const 0)) (then (return (i32.const 7))))
  (call $free (local.get $b))
  (if (i64.ne (call $length (local.get $b)) (i64.const 0)) (then (return (i32.const 8))))
  (if (i64.ne (call $length_unsafe (local.get $b)) (i64.const 0)) (then (return (i32.const 9))))
  (call $free (local.get $b))  ;; a double free is ignored
  (if (i64.ne (call $length (local.get $c)) (i64.const 8)) (then (return (i32.const 10))))
  (i32.const 0))
(func (export "cyclic_free_list") (result i32) (local $b i64)
  (local.set $b (call $alloc (i64.const 16)))
  (drop (call $alloc (i64.const 8)))
  (call $free (local.get $b))
  (call $store_u64 (i64.sub (local.get $b) (i64.const 8)) (i64.xor (local.get $b) (i64.const -1)))
  (drop (call $alloc (i64.const 64)))  ;; walks a free list that points at itself
  (i32.const 0))
(func (export "spin_input") (result i32)
  (loop $l (drop (call $input_load_u8 (i64.const 0))) (br $l)) (i32.const 0))
"""


def test_kernel_memory_functions_and_lengths_in_a_plugin(run: Runner) -> None:
    ok, lengths, spin, cycle = run(
        _plugin(IN_BOUNDS),
        [
            Case("in bounds", "in_bounds", expect_kind="bytes", expect=b"abcdefghabcdefgz"),
            Case("lengths", "lengths"),
            Case("kernel code burns fuel", "spin_input", input=b"x", expect_trap="out_of_fuel"),
            Case("a corrupt free list ends in fuel", "cyclic_free_list", expect_trap="out_of_fuel"),
        ],
        abi="extism",
        fuel=2_000_000,
    )
    assert ok.outcome is Outcome.passed, ok.detail
    assert lengths.outcome is Outcome.passed, lengths.detail
    assert spin.outcome is Outcome.out_of_fuel, spin.detail
    assert cycle.outcome is Outcome.out_of_fuel, cycle.detail


# --------------------------------------------------------------------------- caps and linking

CAPPED = """
(memory (export "memory") 1)
(func (export "alloc_past_cap") (result i32)
  (if (i64.ne (call $alloc (i64.const 0x200000)) (i64.const 0)) (then (return (i32.const 1))))
  (if (i64.eqz (call $alloc (i64.const 1024))) (then (return (i32.const 2))))  ;; still usable
  (i32.const 0))
(func (export "plugin_grow_still_capped") (result i32)
  (if (i32.ne (memory.grow (i32.const 20)) (i32.const -1)) (then (return (i32.const 1))))
  (i32.const 0))
"""


def test_alloc_past_the_memory_limit_returns_zero_and_the_plugin_keeps_its_own_cap(run: Runner) -> None:
    results = run(
        _plugin(CAPPED),
        [
            Case("alloc past cap", "alloc_past_cap"),
            Case("plugin grow", "plugin_grow_still_capped"),
            Case(
                "input over the cap", "alloc_past_cap", input=b"x" * (2 * 1024**2), expect_trap="memory_limit"
            ),
        ],
        abi="extism",
        memory=1024**2,
    )
    for result in results:
        assert result.passed, (result.name, result.outcome, result.detail)
    assert "does not fit in the kernel heap" in results[2].detail
    assert results[0].peak_memory_bytes == PAGE  # the plugin's memory only, not the kernel's


def test_a_plugin_memory_over_the_limit_is_still_refused(run: Runner) -> None:
    [result] = run(
        wat('(module (memory 32) (func (export "f") (result i32) (i32.const 0)))'),
        Case("big", "f"),
        abi="extism",
        memory=1024**2,
    )
    assert result.outcome is Outcome.memory_limit, result.detail


@pytest.mark.parametrize(
    ("name", "item"),
    [
        ("memory", "(memory 1)"),
        ("rt_input_init", "(func (param i64) (result i64))"),
        ("rt_heap_top", "(global (mut i64))"),
        ("fault", "(func (param i32 i64 i64 i64))"),  # the kernel's own import
    ],
)
def test_kernel_internals_are_not_importable(run: Runner, name: str, item: str) -> None:
    module = wat(f'(module (import "{ENV}" "{name}" {item}) (func (export "f") (result i32) (i32.const 0)))')
    [result] = run(module, Case("x", "f"), abi="extism")
    assert result.outcome is Outcome.link_error, result.detail
    assert name in result.detail


# --------------------------------------------------------------------------- large input

ECHO = """
(func (export "echo") (result i32) (local $n i64) (local $out i64) (local $i i64)
  (local.set $n (call $input_length))
  (local.set $out (call $alloc (local.get $n)))
  (block $done (loop $l
    (br_if $done (i64.gt_u (i64.add (local.get $i) (i64.const 8)) (local.get $n)))
    (call $store_u64 (i64.add (local.get $out) (local.get $i)) (call $input_load_u64 (local.get $i)))
    (local.set $i (i64.add (local.get $i) (i64.const 8)))
    (br $l)))
  (block $done (loop $l
    (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
    (call $store_u8 (i64.add (local.get $out) (local.get $i)) (call $input_load_u8 (local.get $i)))
    (local.set $i (i64.add (local.get $i) (i64.const 1)))
    (br $l)))
  (call $output_set (local.get $out) (local.get $n))
  (i32.const 0))
"""


def test_one_mebibyte_round_trip(run: Runner) -> None:
    data = bytes((i * 7 + i // 256) % 256 for i in range(1024**2 + 3))  # not a multiple of 8
    same, different = run(
        _plugin(ECHO),
        [
            Case("echo", "echo", input=data, expect_kind="bytes", expect=data),
            Case("echo differs", "echo", input=data, expect_kind="bytes", expect=data[:-1] + b"?"),
        ],
        abi="extism",
        fuel=10**9,
    )
    assert same.outcome is Outcome.passed, same.detail
    assert different.outcome is Outcome.wrong_output


def test_one_mebibyte_input_matches_the_official_sdk(run: Runner, build_c: Callable[..., bytes]) -> None:
    extism = pytest.importorskip("extism", reason="the official Extism SDK is the oracle")
    wasm = build_c("extism_shout", target="freestanding")
    data = bytes(range(256)) * 4096
    expected = bytes(extism.Plugin(wasm, wasi=False).call("shout", data))
    assert expected == data.upper()
    [result] = run(
        wasm,
        Case("1 MiB", "shout", input=data, expect_kind="bytes", expect=expected),
        abi="extism",
        fuel=10**9,
    )
    assert result.outcome is Outcome.passed, result.detail


# --------------------------------------------------------------------------- the allocator, directly


def test_freeing_the_last_block_gives_it_back() -> None:
    kernel, k = _kernel()
    top = kernel.heap_bytes(kernel.store)
    block = k("alloc", 100)
    assert kernel.heap_bytes(kernel.store) == top + 16 + 100
    k("free", block)
    assert kernel.heap_bytes(kernel.store) == top
    assert k("alloc", 100) == block


def test_freed_blocks_are_reused_whole_or_split() -> None:
    kernel, k = _kernel()
    small = k("alloc", 64)
    k("alloc", 8)  # keeps the freed blocks off the top
    k("free", small)
    assert k("alloc", 60) == small  # whole: splitting 4 bytes off is not worth a header
    assert k("length", small) == 60
    big = k("alloc", 1000)
    k("alloc", 8)
    top = kernel.heap_bytes(kernel.store)
    k("free", big)
    tail = k("alloc", 100)
    assert tail == big + 1000 - 100  # carved from the end of the free block
    assert (k("length", tail), k("length", big)) == (100, 0)
    assert k("alloc", 2000) == top + 16  # too big for the rest: bumped
    assert kernel.heap_bytes(kernel.store) == top + 16 + 2000


def test_corrupt_headers_confuse_only_the_plugins_own_blocks() -> None:
    kernel, k = _kernel()
    first, second = k("alloc", 16), k("alloc", 16)
    k("store_u64", first - 16, 1 << 40)  # the plugin overwrites a header: capacity past the heap
    assert (k("length", first), k("length", second)) == (0, 0)  # the walk stops, no hang, no escape
    k("free", second)  # not found: ignored
    assert kernel.heap_bytes(kernel.store) == second + 16

    kernel, k = _kernel()
    freed = k("alloc", 16)
    k("alloc", 8)
    k("free", freed)
    k("store_u64", freed - 8, ~(1 << 40))  # the free list's link now points far outside the heap
    fresh = k("alloc", 32)
    assert fresh > freed  # the allocator did not follow the link: it bumped
    assert k("alloc", 16) == freed  # the block itself is still reusable
    assert k("alloc", 16) > fresh  # and the bad link is dropped, not followed


def test_the_kernel_memory_stays_within_the_cap() -> None:
    kernel, k = _kernel(cap=4 * PAGE)
    blocks = []
    while block := k("alloc", 10_000):
        blocks.append(block)
    assert 16 + len(blocks) * 10_016 <= 4 * PAGE < 16 + (len(blocks) + 1) * 10_016
    assert kernel.memory.data_len(kernel.store) == 4 * PAGE
    assert k("alloc", 1 << 33) == 0  # beyond wasm32 altogether


def test_kernel_is_compiled_once_per_engine_and_works_with_several_engines() -> None:
    engines = [wasmtime.Engine(), wasmtime.Engine()]
    assert kernel_module(engines[0]) is kernel_module(engines[0])
    for engine in engines:  # host function types are per engine (wasmtime aborts on a mix)
        store = wasmtime.Store(engine)
        adapter, linker = ExtismAdapter(ImportPolicy()), wasmtime.Linker(engine)
        adapter.define(linker, engine)
        state = adapter.begin(linker, store, Case("x", input=b"in"))
        assert state.kernel.read(store, state.kernel.put(store, b"block")) == b"block"


def test_a_finished_tests_store_is_freed_without_the_cycle_collector() -> None:
    """The host functions live as long as the store; if the kernel they close over referenced the
    store, every test's store (and its memories' address space) would leak."""
    engine = wasmtime.Engine()
    plugin = wasmtime.Module(engine, _plugin(f'(import "{ENV}" "log_info" (func $log (param i64)))'))
    gc.disable()
    try:
        store, linker = wasmtime.Store(engine), wasmtime.Linker(engine)
        adapter = ExtismAdapter(ImportPolicy())
        adapter.define(linker, engine)
        state = adapter.begin(linker, store, Case("x", input=b"in"))
        linker.instantiate(store, plugin)
        assert state.kernel.output(store) == b""
        freed = weakref.ref(store)
        del store, linker, state
        assert freed() is None
    finally:
        gc.enable()


def test_the_kernel_source_is_shipped_beside_the_module() -> None:
    from registry_tool.sandbox import abis

    assert Path(abis.__file__).with_name("extism_kernel.wat").is_file()


def test_the_kernel_needs_no_optional_wasm_feature(run: Runner) -> None:
    """MVP instructions only: it links under the smallest feature set a registry can configure."""
    [result] = run(
        _plugin(IN_BOUNDS),
        Case("in bounds", "in_bounds", expect_kind="bytes", expect=b"abcdefghabcdefgz"),
        abi="extism",
        features={"reference_types": True},  # wasmtime-py cannot run without it; everything else off
    )
    assert result.outcome is Outcome.passed, result.detail
