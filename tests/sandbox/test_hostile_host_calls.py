"""Hostile modules against the host side of the sandbox: re-entrant host calls, host memory outside
the store's limits, aliased exports, huge outputs and error texts, page-by-page growth and WASI
imports of the wrong type.  Each case passed, misreported or ran out the deadline before its fix."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import wasmtime

from registry_tool.manifest.abi import WASI, WASI_FUNCTIONS, link_import
from registry_tool.sandbox import Case, EngineSpec, ImportPolicy, ImportRule, Job, Limits, Outcome, protocol
from registry_tool.sandbox import outcome as outcome_module
from registry_tool.sandbox.abis import DEFAULT_ABI_RULES, HOST_DATA_CAP, type_name
from registry_tool.sandbox.engine import make_engine, reservation_for
from registry_tool.sandbox.worker import Release, run_case

from .conftest import Runner, wat

MiB = 1024 * 1024

# Every allocation the host asks for asks the host for the header map again (host -> wasm -> host
# ...); the deepest one calls proxy_http_call, which must be refused without the network permission.
PROXY_REENTER = wat(
    """(module
  (import "env" "proxy_get_header_map_pairs" (func $pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call" (func $http (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response"
    (func $local (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 256) "accepted")
  (global $done (mut i32) (i32.const 0))
  (global $ok (mut i32) (i32.const 0))
  (func (export "proxy_abi_version_0_2_0"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32)
    (drop (call $pairs (i32.const 0) (i32.const 0) (i32.const 4)))
    (if (i32.eqz (global.get $done))
      (then
        (global.set $done (i32.const 1))
        (global.set $ok (i32.eqz (call $http (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 0)
          (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 8))))))
    (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $pairs (i32.const 0) (i32.const 0) (i32.const 4)))
    (if (global.get $ok)
      (then (drop (call $local (i32.const 200) (i32.const 0) (i32.const 0) (i32.const 256) (i32.const 8)
        (i32.const 0) (i32.const 0) (i32.const 0)))))
    (i32.const 0)))"""
)


def test_a_host_call_from_the_allocator_is_refused_not_answered(run: Runner) -> None:
    case = Case("re-entrant", http={}, expect_kind="none")
    [result] = run(PROXY_REENTER, case, abi="proxy-wasm")
    assert result.outcome is Outcome.trap and "proxy_on_memory_allocate" in result.detail


CORE = wat('(module (memory (export "memory") 1) (func (export "one") (result i32) (i32.const 1)))')


def _release(wasm: bytes, abi: str, tmp: Path, limits: Limits | None = None) -> Release:
    path = tmp / "m.wasm"
    path.write_bytes(wasm)
    job = Job(str(path), abi, [], limits or Limits(), EngineSpec(), ImportPolicy(DEFAULT_ABI_RULES[abi]))
    engine = make_engine(job.engine)
    return Release(engine, wasmtime.Module(engine, wasm), wasm, job)


class _Unraisable:
    def __del__(self) -> None:
        raise RecursionError("maximum recursion depth exceeded")


def test_a_host_call_that_could_not_run_fails_the_test(tmp_path: Path) -> None:
    # ctypes answers a callback that could not even start with zeros: a refused call read as success.
    # Anything unraisable during a run now fails it.
    release = _release(CORE, "core", tmp_path)
    invoke = release.adapter.invoke

    def lost_then_invoke(*args: object) -> object:
        _Unraisable()  # collected at once: its error goes to sys.unraisablehook
        return invoke(*args)  # type: ignore[arg-type]

    release.adapter.invoke = lost_then_invoke  # type: ignore[method-assign]
    result = run_case(release, Case("one", "one", expect_kind="values", expect=[1]), tmp_path)
    assert result.outcome is Outcome.trap and "could not run (RecursionError" in result.detail
    release.adapter.invoke = invoke  # type: ignore[method-assign]
    assert run_case(release, Case("one", "one", expect_kind="values", expect=[1]), tmp_path).outcome is (
        Outcome.passed
    )


KEYS_HEAP = wat(
    """(module
  (import "ferrite:keys" "set" (func $set (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 40)
  ;; 100 distinct 1-byte keys, each holding a 2.5 MB value: 250 MB in the worker's heap
  (func (export "f") (result i32)
    (local $i i32)
    (loop
      (i32.store8 (i32.const 0) (local.get $i))
      (drop (call $set (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 2500000)))
      (br_if 0 (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 100))))
    (i32.const 0)))"""
)


def test_key_value_data_is_bounded_outside_the_memory_limit(run: Runner) -> None:
    rule = ImportRule("ferrite:keys", "*", "keys")
    case = Case("fill", "f", expect_kind="values", expect=[0])
    [result] = run(KEYS_HEAP, case, permission_rules=[rule], granted=["keys"], memory=64 * MiB)
    assert result.outcome is Outcome.trap and f"would exceed {HOST_DATA_CAP} bytes" in result.detail


PROXY_HEADERS = wat(
    """(module
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 40)
  (func (export "proxy_abi_version_0_2_0"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  ;; 100 headers of 2.5 MB each: 250 MB of host memory for one request
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (local $i i32)
    (i32.store8 (i32.const 0) (i32.const 120))
    (loop
      (drop (call $add (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 2500000)))
      (br_if 0 (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 100))))
    (i32.const 0)))"""
)


def test_header_maps_are_bounded_outside_the_memory_limit(run: Runner) -> None:
    [result] = run(PROXY_HEADERS, Case("headers", http={}), abi="proxy-wasm", memory=64 * MiB)
    assert result.outcome is Outcome.trap and "a header map would exceed" in result.detail


ALIASED = wat(
    '(module (memory (export "memory") 1 1) (export "m2" (memory 0)) (export "m3" (memory 0))'
    ' (export "m4" (memory 0)) (func (export "f") unreachable))'
)


def test_one_memory_exported_under_several_names_is_counted_once(run: Runner) -> None:
    [result] = run(ALIASED, Case("f", "f", expect_trap="trap"), memory=256 * 1024)
    assert result.outcome is Outcome.trap and result.peak_memory_bytes == 65536


EXTISM_BIG = """(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "{call}" (func $set (param {params})))
  (memory (export "memory") 1)
  (func (export "f") (result i32)
    (call $set (call $alloc (i64.const {size})){length})
    (i32.const {ret})))"""


def test_a_huge_output_is_a_wrong_output_not_a_timeout(run: Runner) -> None:
    module = wat(
        EXTISM_BIG.format(
            call="output_set", params="i64 i64", size=12_000_000, length=" (i64.const 12000000)", ret=0
        )
    )
    [result] = run(module, Case("big", "f", input=b"", expect_kind="text", expect="hello"), abi="extism")
    assert result.outcome is Outcome.wrong_output, result.detail


def test_a_huge_error_text_is_cut_not_a_broken_protocol(run: Runner) -> None:
    module = wat(EXTISM_BIG.format(call="error_set", params="i64", size=2 * MiB, length="", ret=1))
    [result] = run(module, Case("err", "f", input=b"", expect_trap="exit_code"), abi="extism")
    # Cut to DETAIL_CHARS in the worker; the parent then shows each NUL as \\x00.
    assert result.outcome is Outcome.exit_code and len(result.detail) < 5 * protocol.DETAIL_CHARS


def test_result_records_cut_their_detail() -> None:
    record = protocol.test_record(0, Outcome.trap, 1, 2, 3.0, "", "", "x" * (4 * MiB))
    assert len(record) < protocol.DETAIL_CHARS + 200
    (length,) = struct.unpack_from("<I", record)
    assert length == len(record)


def test_only_the_shown_head_of_a_huge_output_is_neutralised(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = outcome_module.neutralise

    def counting(data: bytes | str) -> str:
        seen.append(len(data))
        return real(data)

    monkeypatch.setattr(outcome_module, "neutralise", counting)
    text = outcome_module.shown(b"\0" * 12_000_000, 200)
    assert seen == [800] and text.endswith("… [cut: 12000000 bytes in all]")


GROW = wat(
    """(module
  (memory (export "memory") 1)
  (func (export "f") (result i32)
    (local $p i32)
    (loop
      (local.set $p (memory.grow (i32.const 1)))
      (i32.store8 (i32.shl (local.get $p) (i32.const 16)) (i32.const 1))
      (br_if 0 (i32.lt_u (memory.size) (i32.const 768))))
    (memory.size)))"""
)


def test_the_reservation_is_the_memory_limit_so_growth_never_copies(run: Runner) -> None:
    assert reservation_for(64 * MiB) == 64 * MiB and reservation_for(100_000) == 2 * 65536
    # Page by page to 48 MiB: under a 16 MiB reservation every grow past it copied the memory
    # (quadratic: minutes); reserved at the limit it is milliseconds, far inside 20 s.
    spec = EngineSpec(reservation=reservation_for(64 * MiB))
    path = run.tmp / "grow.wasm"
    path.write_bytes(GROW)
    from registry_tool.sandbox.harness import run_job

    job = Job(
        str(path),
        "core",
        [Case("grow", "f", expect_kind="values", expect=[768])],
        Limits(memory=64 * MiB, wall_time=20.0),
        spec,
        ImportPolicy(DEFAULT_ABI_RULES["core"]),
    )
    [result] = run_job(job)
    assert result.outcome is Outcome.passed, result.detail


def test_job_for_reserves_the_memory_limit() -> None:
    from registry_tool.manifest import load_manifest, load_registry_config
    from registry_tool.sandbox.harness import job_for

    index = Path(__file__).resolve().parents[2] / "index"
    config = load_registry_config(index)
    for release in sorted((index / "plugins").glob("*/*/plugin.toml"))[:4]:
        job = job_for(load_manifest(release.parent, config), config, cache=False)
        assert job.engine.reservation == reservation_for(job.limits.memory) >= job.limits.memory


WRONG_CLOCK = wat(
    '(module (import "wasi_snapshot_preview1" "clock_time_get" (func $c (param i32 i32 i32) (result i32)))'
    ' (memory (export "memory") 1) (func (export "_start") (drop (call $c (i32.const 0) (i32.const 0)'
    " (i32.const 0)))))"
)


def test_a_wasi_import_of_the_wrong_type_is_a_link_error(run: Runner) -> None:
    [result] = run(WRONG_CLOCK, Case("clock", "_start"), abi="wasi-command")
    assert result.outcome is Outcome.link_error and "WASI defines (i32, i64, i32) -> (i32)" in result.detail
    decision = link_import("wasi-command", WASI, "clock_time_get", "func", True, (("i32",) * 3, ("i32",)))
    assert not decision.linked
    assert not link_import("wasi-command", WASI, "no_such_call", "func", True).linked
    assert not link_import("wasi-command", WASI, "memory", "memory", True).linked


def test_the_wasi_table_is_wasmtimes() -> None:
    engine = wasmtime.Engine()
    store, linker = wasmtime.Store(engine), wasmtime.Linker(engine)
    linker.define_wasi()
    for name, signature in WASI_FUNCTIONS.items():
        func = linker.get(store, WASI, name)
        assert isinstance(func, wasmtime.Func), name
        ty = func.type(store)
        assert (tuple(map(type_name, ty.params)), tuple(map(type_name, ty.results))) == signature, name


RANDOM_HUGE = wat(
    '(module (import "wasi_snapshot_preview1" "random_get" (func $r (param i32 i32) (result i32)))'
    ' (memory (export "memory") 1) (func (export "_start")'
    " (drop (call $r (i32.const 0) (i32.const 2000000000)))))"
)


def test_random_get_past_memory_traps_before_making_the_bytes(run: Runner) -> None:
    [result] = run(RANDOM_HUGE, Case("random", "_start"), abi="wasi-command", wall_time=30.0)
    assert result.outcome is Outcome.trap and "outside linear memory" in result.detail
