"""The Extism host ABI implemented over wasmtime, checked against the official Extism SDK."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import wasmtime

from registry_tool.sandbox import Case, ImportRule, Outcome

from .conftest import KernelInStore, Runner, wat

extism = pytest.importorskip("extism", reason="the official Extism SDK is the oracle")

INDEX = Path(__file__).resolve().parents[2] / "index"


def _oracle(
    wasm: bytes, func: str, data: bytes, config: dict[str, str] | None = None, wasi: bool = False
) -> bytes:
    plugin = extism.Plugin(wasm, wasi=wasi, config=config or {})
    return bytes(plugin.call(func, data))


@pytest.mark.parametrize(
    ("data", "config"),
    [
        (b"hello", {}),
        (b"", {}),
        (b"Mixed Case 123 \xff\x00 bytes", {}),
        (b"x" * 20_000, {}),
        (b"with suffix", {"suffix": "!!"}),
        (b"unicode \xc3\xa9t\xc3\xa9", {"suffix": " \u2713"}),
    ],
    ids=["short", "empty", "binary", "large", "config", "unicode"],
)
def test_extism_output_matches_the_official_sdk(
    run: Runner, build_c, data: bytes, config: dict[str, str]
) -> None:
    wasm = build_c("extism_shout", target="freestanding")
    expected = _oracle(wasm, "shout", data, config)
    same, different = run(
        wasm,
        [
            Case("oracle", "shout", input=data, config=config, expect_kind="bytes", expect=expected),
            Case("negative", "shout", input=data, config=config, expect_kind="bytes", expect=expected + b"?"),
        ],
        abi="extism",
    )
    assert same.outcome is Outcome.passed, same.detail
    assert different.outcome is Outcome.wrong_output
    assert "[info] shouting" in same.stderr  # log_info lands in the captured log


def test_extism_error_matches_the_official_sdk(run: Runner, build_c) -> None:
    wasm = build_c("extism_shout", target="freestanding")
    with pytest.raises(extism.Error, match="no thanks"):
        _oracle(wasm, "fail", b"")
    [result] = run(wasm, Case("fail", "fail", input=b""), abi="extism")
    assert result.outcome is Outcome.exit_code
    assert "no thanks" in result.detail


def test_sample_index_extism_plugin_matches_the_official_sdk(run: Runner) -> None:
    release = INDEX / "plugins" / "count_vowels" / "1.0.0"
    if not release.is_dir():
        pytest.skip("the sample index has no count_vowels plugin")
    wasm = (release / "count_vowels.wasm").read_bytes()
    wasi = b"wasi_snapshot_preview1" in wasm
    cases = []
    for i, (text, config) in enumerate(
        [(b"Hello, World!", {}), (b"Hello, World!", {"vowels": "lo"}), (b"", {})]
    ):
        expected = _oracle(wasm, "count_vowels", text, config, wasi=wasi)
        cases.append(
            Case(f"c{i}", "count_vowels", input=text, config=config, expect_kind="bytes", expect=expected)
        )
    assert all(r.outcome is Outcome.passed for r in run(wasm, cases, abi="extism"))


@pytest.mark.slow  # Go-built modules: seconds to compile each
@pytest.mark.parametrize(("plugin", "export"), [("greet_go", "greet"), ("greet_go_std", "_start")])
def test_go_pdk_samples_match_the_official_sdk(run: Runner, plugin: str, export: str) -> None:
    # The Go PDK's c-shared build is a reactor (_initialize first), its std build a command.
    wasm = (INDEX / "plugins" / plugin / "1.0.0" / f"{plugin}.wasm").read_bytes()
    cases = []
    for i, (name, config) in enumerate(
        [(b"Ferrite", {}), (b"Ferrite", {"greeting": "Hi"}), (b"\xc3\xa9t\xc3\xa9", {})]
    ):
        expected = _oracle(wasm, export, name, config, wasi=True)
        cases.append(Case(f"c{i}", export, input=name, config=config, expect_kind="bytes", expect=expected))
    results = run(wasm, cases, abi="extism", memory=32 * 1024**2, fuel=100_000_000)
    assert all(r.outcome is Outcome.passed for r in results), [(r.name, r.detail) for r in results]


@pytest.mark.slow  # a Go-built module: seconds to compile
def test_go_pdk_error_matches_the_official_sdk(run: Runner) -> None:
    wasm = (INDEX / "plugins" / "greet_go" / "1.0.0" / "greet_go.wasm").read_bytes()
    with pytest.raises(extism.Error, match="input is empty"):
        _oracle(wasm, "greet", b"", wasi=True)
    [result] = run(wasm, Case("empty", "greet", input=b""), abi="extism", memory=32 * 1024**2)
    assert result.outcome is Outcome.exit_code and "input is empty" in result.detail


HTTP = """(module
  (import "extism:host/env" "http_request" (func $http (param i64 i64) (result i64)))
  (func (export "fetch") (result i32) (drop (call $http (i64.const 0) (i64.const 0))) (i32.const 0)))"""


def test_http_request_is_denied_without_the_network_permission(run: Runner) -> None:
    [denied] = run(wat(HTTP), Case("fetch", "fetch"), abi="extism")
    rule = ImportRule("ferrite:net", "*", "network")
    [granted] = run(
        wat(HTTP), Case("fetch", "fetch"), abi="extism", permission_rules=[rule], granted=["network"]
    )
    assert denied.outcome is Outcome.trap
    assert "network" in denied.detail
    assert granted.outcome is Outcome.passed, granted.detail


@pytest.mark.parametrize(
    ("module", "outcome", "detail"),
    [
        (
            '(module (func (export "f") (param i32) (result i32) (local.get 0)))',
            Outcome.missing_export,
            "[] -> [i32]",
        ),
        (
            '(module (import "extism:host/env" "load_u8" (func $l (param i64) (result i32)))'
            ' (func (export "f") (result i32) (call $l (i64.const 999999))))',
            Outcome.trap,
            "out-of-bounds",
        ),
        (
            '(module (import "extism:host/env" "no_such_function" (func))'
            ' (func (export "f") (result i32) (i32.const 0)))',
            Outcome.link_error,
            "no_such_function",
        ),
        ('(module (func (export "f") (result i32) (i32.const 7)))', Outcome.exit_code, "returned 7"),
    ],
)
def test_extism_misbehaviour_is_classified(run: Runner, module: str, outcome: Outcome, detail: str) -> None:
    [result] = run(wat(module), Case("x", "f"), abi="extism")
    assert result.outcome is outcome
    assert detail in result.detail
    assert not result.detail.rstrip(". ").endswith(":")  # "plugin returned 7: " had nothing after it


# --------------------------------------------------------------------------- the kernel, directly

PAGE = 65536


def _kernel(data: bytes = b"", config: dict[str, str] | None = None, cap: int = 4 * PAGE) -> KernelInStore:
    return KernelInStore(data, config, cap=cap)


def test_kernel_memory_blocks_and_bounds() -> None:
    kernel = _kernel(b"input", {"k": "v"})
    k = functools.partial(kernel.call, kernel.store)
    block = k("alloc", 16)
    k("store_u64", block, -1)  # all 64 bits set
    assert k("load_u64", block) == -1  # i64 results are signed on the wasm side
    k("store_u8", block + 15, 0x1FF)
    assert k("load_u8", block + 15) == 0xFF
    assert k("length", block) == 16
    assert k("length", block + 1) == 0  # not a block start
    k("free", block)
    assert k("length", block) == 0
    with pytest.raises(wasmtime.WasmtimeError, match="out-of-bounds"):
        k("load_u64", k("alloc", 4))  # 8 bytes past a 4-byte block at the end of the heap
    with pytest.raises(wasmtime.WasmtimeError, match="out-of-bounds"):
        k("store_u8", 0, 1)  # offset 0 is null


def test_kernel_heap_is_capped() -> None:
    kernel = _kernel(cap=2 * PAGE)
    assert kernel.alloc(kernel.store, 1024) != 0
    assert kernel.alloc(kernel.store, 10 * PAGE) == 0  # like Extism: 0 when memory is exhausted


def test_kernel_config_vars_and_input() -> None:
    kernel = _kernel(b"0123456789", {"k": "v"}, cap=1 << 20)
    s = kernel.store
    k = functools.partial(kernel.call, s)
    assert kernel.read(s, kernel.config_get(s, kernel.put(s, b"k"))) == b"v"
    assert kernel.config_get(s, kernel.put(s, b"missing")) == 0
    key = kernel.put(s, b"counter")
    assert kernel.var_get(s, key) == 0
    kernel.var_set(s, key, kernel.put(s, b"3"))
    assert kernel.read(s, kernel.var_get(s, key)) == b"3"
    kernel.var_set(s, key, 0)
    assert kernel.var_get(s, key) == 0
    assert k("input_load_u8", 9) == ord("9")
    assert k("input_load_u64", 2) == int.from_bytes(b"23456789", "little")
    with pytest.raises(wasmtime.WasmtimeError, match="out of bounds"):
        k("input_load_u64", 3)
    assert kernel.read(s, k("input_offset")) == b"0123456789"


# Logs a line, then traps: the log is what tells a maintainer why (a Rust panic message goes there).
LOG_THEN_TRAP = """(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $st (param i64 i32)))
  (import "extism:host/env" "log_error" (func $log (param i64)))
  (func (export "f") (result i32) (local $b i64)
    (local.set $b (call $alloc (i64.const 1)))
    (call $st (local.get $b) (i32.const 33))
    (call $log (local.get $b))
    unreachable))"""


def test_the_log_of_a_run_that_traps_is_kept(run: Runner) -> None:
    [result] = run(wat(LOG_THEN_TRAP), Case("panics", "f"), abi="extism")
    assert result.outcome is Outcome.trap, result.detail
    assert "[error] !" in result.stderr
