"""Reactor modules, WASI granted through a permission, host state and call sequences, and the
copy-on-write memory images the engine now uses (primed before the output cap applies)."""

from __future__ import annotations

import pytest

from registry_tool.manifest.abi import link_import
from registry_tool.sandbox import Case, ImportRule, Outcome

from .conftest import WASI_C, Runner, wat

# A reactor: _initialize sets the state every export relies on (as a Go c-shared runtime does).
REACTOR_CORE = """(module
  (global $ready (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $ready (i32.const 1)))
  (func (export "ready") (result i32)
    (if (i32.eqz (global.get $ready)) (then unreachable))
    (global.get $ready)))"""

REACTOR_EXTISM = """(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store (param i64 i32)))
  (import "extism:host/env" "output_set" (func $out (param i64 i64)))
  (global $ready (mut i32) (i32.const 0))
  (global $calls (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $ready (i32.const 1))
    (global.set $calls (i32.add (global.get $calls) (i32.const 1))))
  (func $emit (param $byte i32) (local $o i64)
    (local.set $o (call $alloc (i64.const 1)))
    (call $store (local.get $o) (local.get $byte))
    (call $out (local.get $o) (i64.const 1)))
  ;; [] -> [i32], the PDK shape
  (func (export "status") (result i32)
    (if (i32.eqz (global.get $ready)) (then unreachable))
    (call $emit (i32.add (i32.const 48) (global.get $calls))) (i32.const 0))
  ;; [] -> [], a void export the Extism SDK runs as status 0
  (func (export "void")
    (if (i32.eqz (global.get $ready)) (then unreachable))
    (call $emit (i32.const 86))))"""


def test_reactor_initialize_runs_before_a_core_export(run: Runner) -> None:
    [result] = run(wat(REACTOR_CORE), Case("r", "ready", expect_kind="values", expect=[1]))
    assert result.outcome is Outcome.passed, result.detail


def test_extism_reactor_is_initialised_once_and_void_exports_run(run: Runner) -> None:
    status, void = run(
        wat(REACTOR_EXTISM),
        [
            Case("status", "status", input=b"", expect_kind="bytes", expect=b"1"),  # _initialize ran once
            Case("void", "void", input=b"", expect_kind="bytes", expect=b"V"),
        ],
        abi="extism",
    )
    assert status.outcome is Outcome.passed, status.detail
    assert void.outcome is Outcome.passed, void.detail


def test_a_command_start_is_not_preceded_by_initialize(run: Runner) -> None:
    # Both exported (a confused module): _start is the command entry and does its own setup.
    module = wat(
        '(module (memory (export "memory") 1) (global $n (mut i32) (i32.const 0))'
        ' (func (export "_initialize") (global.set $n (i32.const 1)))'
        ' (func (export "_start") (if (global.get $n) (then unreachable))))'
    )
    [result] = run(module, Case("start", "_start"), abi="wasi-command")
    assert result.outcome is Outcome.passed, result.detail


def test_extism_std_build_start_exit_zero_is_success(run: Runner) -> None:
    module = wat(
        '(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'
        ' (memory (export "memory") 1) (func (export "_start") (call $exit (i32.const 0))))'
    )
    cases = [Case("ok", "_start", input=b""), Case("exit", "_start", input=b"", exit_code=1)]
    ok, failed = run(module, cases, abi="extism")
    assert ok.outcome is Outcome.passed, ok.detail
    assert failed.outcome is Outcome.exit_code


# --------------------------------------------------------------------------- WASI through a permission

WASI_RULE = ImportRule("wasi_snapshot_preview1", "*", "wasi")
KEYS_RULE = ImportRule("ferrite:keys", "*", "keys")
FD_WRITE = '(import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))'
KEYS_GET = '(import "ferrite:keys" "get" (func $get (param i32 i32 i32 i32) (result i32)))'


def _mixed(export: str) -> bytes:
    """A module importing WASI and a host function, writing "hi\\n" to stdout."""
    return wat(
        f'(module {FD_WRITE} {KEYS_GET} (memory (export "memory") 1)'
        ' (data (i32.const 0) "\\10\\00\\00\\00\\03\\00\\00\\00") (data (i32.const 16) "hi\\n")'
        f" {export})"
    )


_WRITE = "(drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 32)))"
_GET = "(drop (call $get (i32.const 16) (i32.const 1) (i32.const 64) (i32.const 4)))"


@pytest.mark.parametrize(
    ("abi", "export", "case", "granted"),
    [
        (
            "core",
            f'(func (export "f") (result i32) {_WRITE} {_GET} (i32.const 7))',
            Case("core", "f", expect_kind="values", expect=[7]),
            ["wasi", "keys"],
        ),
        (
            "wasi-command",
            f'(func (export "_start") {_WRITE} {_GET})',
            Case("cmd", "_start", expect_kind="text", expect="hi\n"),
            ["keys"],
        ),
        (
            "extism",
            f'(func (export "f") (result i32) {_WRITE} {_GET} (i32.const 0))',
            Case("extism", "f", input=b""),
            ["keys"],
        ),
    ],
    ids=["core", "wasi-command", "extism"],
)
def test_wasi_granted_by_a_permission_links_once_beside_host_imports(
    run: Runner, abi: str, export: str, case: Case, granted: list[str]
) -> None:
    # Before: "import of 'wasi_snapshot_preview1::fd_write' defined twice" (WASI and its stub).
    rules = [WASI_RULE, KEYS_RULE] if "wasi" in granted else [KEYS_RULE]
    [result] = run(_mixed(export), case, abi=abi, permission_rules=rules, granted=granted)
    assert result.outcome is Outcome.passed, result.detail
    assert result.stdout == "hi\n"


def test_link_import_is_one_answer_for_validate_and_smoke() -> None:
    assert link_import("core", "wasi_snapshot_preview1", "fd_write", "func", True).how == "wasi"
    assert link_import("core", "ferrite:keys", "get", "func", True).how == "stub"
    assert link_import("extism", "extism:host/env", "alloc", "func", True).how == "abi"
    refused = link_import("extism", "extism:host/env", "rt_heap_top", "func", True)
    assert not refused.linked and "not part of the extism ABI" in refused.reason
    assert not link_import("core", "ferrite:keys", "mem", "memory", True).linked
    assert not link_import("core", "ferrite:keys", "get", "func", False).linked


# --------------------------------------------------------------------------- host state and sequences

COUNTER = """(module
  (import "{host}:keys" "get" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "{host}:keys" "set" (func $set (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  ;; incr(key): the stored one-digit decimal plus one, stored back and returned
  (func (export "incr") (param $p i32) (param $n i32) (result i32) (local $v i32)
    (local.set $v (i32.const 0))
    (if (i32.gt_s (call $get (local.get $p) (local.get $n) (i32.const 200) (i32.const 2)) (i32.const 0))
      (then (local.set $v (i32.add (i32.mul (i32.sub (i32.load8_u (i32.const 200)) (i32.const 48))
                                            (i32.const 10))
                                   (i32.sub (i32.load8_u (i32.const 201)) (i32.const 48))))))
    (local.set $v (i32.add (local.get $v) (i32.const 1)))
    (i32.store8 (i32.const 300) (i32.add (i32.const 48) (i32.div_u (local.get $v) (i32.const 10))))
    (i32.store8 (i32.const 301) (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
    (drop (call $set (local.get $p) (local.get $n) (i32.const 300) (i32.const 2)))
    (local.get $v)))"""


def test_key_fixtures_seed_the_host_store_and_expect_keys_checks_it(run: Runner) -> None:
    module = wat(COUNTER.format(host="ferrite"))
    good, wrong = run(
        module,
        [
            Case("41->42", "incr", input=b"n", keys={"n": "41"}, expect_keys={"n": "42"},
                 expect_kind="values", expect=[42]),
            Case("store", "incr", input=b"n", keys={"n": "41"}, expect_keys={"n": "41", "other": None}),
        ],
        permission_rules=[KEYS_RULE],
        granted=["keys"],
    )  # fmt: skip
    assert good.outcome is Outcome.passed, good.detail
    assert wrong.outcome is Outcome.wrong_output
    assert "'42', expected '41'" in wrong.detail


def test_keys_module_is_named_after_the_registry_host(run: Runner) -> None:
    module = wat(COUNTER.format(host="acme"))
    rule = ImportRule("acme:keys", "*", "keys")
    [result] = run(
        module,
        Case("acme", "incr", input=b"k", keys={"k": "09"}, expect_kind="values", expect=[10]),
        permission_rules=[rule],
        granted=["keys"],
        host="acme",
    )
    assert result.outcome is Outcome.passed, result.detail


def test_steps_share_one_instance(run: Runner) -> None:
    module = wat(COUNTER.format(host="ferrite"))
    steps = [{"call": "incr", "input": "n", "expect": [1]}, {"call": "incr", "input": "n", "expect": [2]}]
    ok, bad = run(
        module,
        [
            Case("third", "incr", input=b"n", steps=steps, expect_kind="values", expect=[3]),
            Case("bad step", "incr", input=b"n", steps=[{"call": "incr", "input": "n", "expect": [5]}]),
        ],
        permission_rules=[KEYS_RULE],
        granted=["keys"],
    )
    assert ok.outcome is Outcome.passed, ok.detail
    assert bad.outcome is Outcome.wrong_output and "step 1 (incr)" in bad.detail


# --------------------------------------------------------------------------- copy-on-write images


def test_large_data_segment_runs_under_the_output_cap(run: Runner) -> None:
    # The memory image (a memfd file) is larger than the 64 KiB output cap; it is created before the
    # cap applies, so the test runs (before priming: "File too large").
    segment = "\\01" * (512 * 1024)
    module = wat(
        f'(module (memory (export "memory") 16) (data (i32.const 65536) "{segment}")'
        ' (func (export "f") (result i32) (i32.load8_u (i32.const 300000))))'
    )
    [result] = run(module, Case("big", "f", expect_kind="values", expect=[1]), output=64 * 1024)
    assert result.outcome is Outcome.passed, result.detail


def test_stdout_flood_still_ends_in_output_limit(run: Runner, build_c) -> None:
    [result] = run(build_c("flood"), Case("flood"), abi="wasi-command", output=4096)
    assert result.outcome is Outcome.output_limit


def test_keys_wat_still_starts_empty(run: Runner) -> None:
    module = wat((WASI_C / "keys.wat").read_text())
    [result] = run(module, Case("one", "bump", input=b"v", expect_kind="values", expect=[1]),
                   permission_rules=[KEYS_RULE], granted=["keys"])  # fmt: skip
    assert result.outcome is Outcome.passed, result.detail


# --------------------------------------------------------------------------- deterministic WASI

CLOCK_AND_RANDOM = """(module
  (import "wasi_snapshot_preview1" "random_get" (func $rand (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $rand (i32.const 100) (i32.const 16)))
    (drop (call $clock (i32.const 1) (i64.const 0) (i32.const 116)))
    ;; sleep 1 s: a relative clock subscription at 200, its event at 300, nevents at 340
    (i64.store (i32.const 224) (i64.const 1000000000))
    (drop (call $poll (i32.const 200) (i32.const 300) (i32.const 1) (i32.const 340)))
    (drop (call $clock (i32.const 1) (i64.const 0) (i32.const 124)))
    (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 16))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 400)))
    ;; exit with the microseconds the sleep took beyond 1 s (one clock tick: 1)
    (call $exit (i32.wrap_i64 (i64.div_u
      (i64.sub (i64.sub (i64.load (i32.const 124)) (i64.load (i32.const 116))) (i64.const 1000000000))
      (i64.const 1000))))))"""


def test_wasi_clock_random_and_sleep_are_deterministic(run: Runner) -> None:
    # Real clocks and OS randomness made a Go runtime's fuel figures differ on every run.
    module = wat(CLOCK_AND_RANDOM)
    first, second = run(module, [Case("a", exit_code=1), Case("b", exit_code=1)], abi="wasi-command")
    assert first.outcome is Outcome.passed, first.detail  # virtual time: the sleep took exactly 1 s
    assert first.stdout == second.stdout and first.stdout  # the same random bytes on every run
    assert first.wall_ms is not None and first.wall_ms < 900  # and nothing really slept


def test_extism_steps_keep_vars_and_give_each_call_its_own_input(run: Runner) -> None:
    from .conftest import HERE

    wasm = (HERE.parents[1] / "index" / "plugins" / "greet_go" / "1.0.0" / "greet_go.wasm").read_bytes()
    steps = [{"call": "greet", "input": "Ann", "expect": "Hello, Ann!"}, {"call": "greet", "input": "Bo"}]
    third, empty = run(
        wasm,
        [
            Case("third call", "greet", input=b"Cy", steps=steps, expect_kind="text", expect="Hello, Cy!"),
            # an empty input after a non-empty one is empty (the plugin's error), not the old input
            Case("empty later", "greet", input=b"", steps=steps[:1], expect_trap="exit_code"),
        ],
        abi="extism",
        memory=32 * 1024**2,
        fuel=100_000_000,
    )
    assert third.outcome is Outcome.passed, third.detail
    assert "(call 3)" in third.stderr  # the var kept its count across the calls on one instance
    assert empty.outcome is Outcome.exit_code and empty.passed, empty.detail
