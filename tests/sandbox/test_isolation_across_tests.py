"""What one test of a release does is invisible to the next, although the worker reuses the compiled
module, its linker and host functions across the tests of a release: each test gets a fresh store,
instance, fuel, memory limits and host state."""

from __future__ import annotations

from pathlib import Path

import wasmtime

from registry_tool.sandbox import Case, EngineSpec, ImportPolicy, ImportRule, Job, Limits, Outcome
from registry_tool.sandbox.abis import DEFAULT_ABI_RULES
from registry_tool.sandbox.engine import make_engine
from registry_tool.sandbox.worker import Release, run_case

from .conftest import WRITER, Runner, wat

PAGE = 65536

CORE = wat(
    """(module
  (global $g (mut i32) (i32.const 0))
  (memory (export "memory") 1 4)
  (func (export "bump") (result i32)
    (global.set $g (i32.add (global.get $g) (i32.const 1)))
    (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
    (i32.add (i32.mul (global.get $g) (i32.const 10)) (i32.load (i32.const 0))))
  (func (export "grow") (result i32) (memory.grow (i32.const 3)))
  (func (export "spin") (param $n i32) (result i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    (i32.const 0))
  (func (export "boom") unreachable))"""
)


def test_globals_and_memory_written_by_one_test_are_fresh_in_the_next(run: Runner) -> None:
    bump = Case("bump", "bump", expect_kind="values", expect=[11])
    results = run(CORE, [bump, Case("bump again", "bump", expect_kind="values", expect=[11])])
    assert [r.outcome for r in results] == [Outcome.passed, Outcome.passed], results


def test_a_trap_in_one_test_does_not_poison_the_next(run: Runner) -> None:
    cases = [
        Case("boom", "boom", expect_trap="trap"),
        Case("bump", "bump", expect_kind="values", expect=[11]),
        Case("boom again", "boom", expect_trap="trap"),
        Case("bump again", "bump", expect_kind="values", expect=[11]),
    ]
    results = run(CORE, cases)
    assert [r.passed for r in results] == [True] * 4, results


def test_fuel_is_granted_afresh_to_every_test(run: Runner) -> None:
    fuel = 100_000
    spin = Case("spin", "spin", [10_000], expect_kind="values", expect=[0])
    cases = [spin, Case("spin again", "spin", [10_000]), Case("too long", "spin", [10**6]), spin]
    results = run(CORE, cases, fuel=fuel)
    assert [r.outcome for r in results] == [
        Outcome.passed,
        Outcome.passed,
        Outcome.out_of_fuel,
        Outcome.passed,
    ]
    # Each spin burns over half the fuel: without a refill the second one would run out.
    assert all(r.fuel_consumed is not None and r.fuel_consumed > fuel // 2 for r in results)


def test_the_memory_limit_applies_to_each_test_on_its_own(run: Runner) -> None:
    grow = Case("grow to the cap", "grow", expect_kind="values", expect=[1])  # 1 -> 4 pages: old size 1
    results = run(CORE, [grow, Case("grow again", "grow", expect_kind="values", expect=[1])], memory=4 * PAGE)
    assert [r.outcome for r in results] == [Outcome.passed, Outcome.passed], results
    assert [r.peak_memory_bytes for r in results] == [4 * PAGE, 4 * PAGE]
    over = run(CORE, [grow, Case("over the cap", "grow", expect_kind="values", expect=[1])], memory=3 * PAGE)
    assert [r.outcome for r in over] == [Outcome.wrong_output, Outcome.wrong_output]  # -1 both times


EXTISM = wat(
    """(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "var_get" (func $var_get (param i64) (result i64)))
  (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (global $calls (mut i32) (i32.const 0))
  (memory (export "memory") 1)
  (func (export "count") (result i32) (local $key i64) (local $out i64)
    (local.set $key (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $key) (i32.const 107))
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store8 (i32.const 0) (i32.add (i32.load8_u (i32.const 0)) (i32.const 1)))
    (local.set $out (call $alloc (i64.const 4)))
    ;; var present?, calls, plugin memory byte, key block first in the kernel heap (data at 32)?
    (call $store_u8 (local.get $out)
      (i32.add (i32.const 48) (i64.ne (call $var_get (local.get $key)) (i64.const 0))))
    (call $store_u8 (i64.add (local.get $out) (i64.const 1)) (i32.add (i32.const 48) (global.get $calls)))
    (call $store_u8 (i64.add (local.get $out) (i64.const 2))
      (i32.add (i32.const 48) (i32.load8_u (i32.const 0))))
    (call $store_u8 (i64.add (local.get $out) (i64.const 3))
      (i32.add (i32.const 48) (i64.eq (local.get $key) (i64.const 32))))
    (call $var_set (local.get $key) (local.get $key))
    (call $output_set (local.get $out) (i64.const 4))
    (i32.const 0)))"""
)


def test_extism_vars_kernel_heap_and_plugin_state_are_fresh_in_every_test(run: Runner) -> None:
    fresh = Case("first", "count", expect_kind="text", expect="0111")
    # Within one test (steps on one instance) the state is kept: that is what steps are for.
    stepped = Case(
        "steps keep state",
        "count",
        steps=[{"call": "count", "expect": "0111"}],
        expect_kind="text",
        expect="1220",
    )
    results = run(
        EXTISM, [fresh, stepped, Case("after", "count", expect_kind="text", expect="0111")], abi="extism"
    )
    assert [r.outcome for r in results] == [Outcome.passed] * 3, results


KEYS = wat(
    """(module
  (import "ferrite:keys" "set" (func $set (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "kv")
  (func (export "put") (result i32) (call $set (i32.const 0) (i32.const 1) (i32.const 1) (i32.const 1)))
  (func (export "nop") (result i32) (i32.const 0)))"""
)


def test_the_key_value_store_starts_from_each_tests_own_fixtures(run: Runner) -> None:
    cases = [
        Case("put", "put", keys={"a": "1"}, expect_keys={"k": "v", "a": "1"}),
        Case("nothing left", "nop", expect_keys={"k": None, "a": None}),
    ]
    rules = [ImportRule("ferrite:keys", "*", "keys")]
    results = run(KEYS, cases, permission_rules=rules, granted=["keys"])
    assert [r.outcome for r in results] == [Outcome.passed, Outcome.passed], results


CLOCK = wat(
    """(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $now (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "now") (result i64)
    (drop (call $now (i32.const 0) (i64.const 1) (i32.const 8)))
    (drop (call $now (i32.const 0) (i64.const 1) (i32.const 8)))
    (i64.load (i32.const 8))))"""
)


def test_the_virtual_clock_restarts_in_every_test(run: Runner) -> None:
    second_read = 1_700_000_000 * 10**9 + 2_000
    now = Case("now", "now", expect_kind="values", expect=[second_read])
    rules = [ImportRule("wasi_snapshot_preview1", "*", "wasi")]
    results = run(CLOCK, [now, Case("now again", "now", expect_kind="values", expect=[second_read])],
                  permission_rules=rules, granted=["wasi"])  # fmt: skip
    assert [r.outcome for r in results] == [Outcome.passed, Outcome.passed], results


WRITER_WASM = wat(WRITER)


def test_wasi_output_of_one_test_is_not_the_next_tests(run: Runner) -> None:
    once = Case("writes x", "_start", expect_kind="text", expect="x")
    results = run(
        WRITER_WASM,
        [once, Case("writes x again", "_start", expect_kind="text", expect="x")],
        abi="wasi-command",
    )
    assert [(r.outcome, r.stdout) for r in results] == [(Outcome.passed, "x"), (Outcome.passed, "x")]


def _release(wasm: bytes, abi: str, tmp: Path) -> Release:
    path = tmp / "m.wasm"
    path.write_bytes(wasm)
    job = Job(str(path), abi, [], Limits(), EngineSpec(), ImportPolicy(DEFAULT_ABI_RULES[abi]))
    engine = make_engine(job.engine)
    return Release(engine, wasmtime.Module(engine, wasm), wasm, job)


def test_a_module_that_imports_no_wasi_gets_no_wasi_files(tmp_path: Path) -> None:
    release = _release(CORE, "core", tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    outcome = run_case(release, Case("bump", "bump", expect_kind="values", expect=[11]), work)
    assert outcome.outcome is Outcome.passed
    assert list(work.iterdir()) == []
    writer = _release(WRITER_WASM, "wasi-command", tmp_path)
    assert (
        run_case(writer, Case("x", "_start", expect_kind="text", expect="x"), work).outcome is Outcome.passed
    )
    assert sorted(p.name for p in work.iterdir()) == ["stderr", "stdin", "stdout"]
