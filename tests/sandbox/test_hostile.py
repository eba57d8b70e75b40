"""The hostile-module corpus: every case ends in its named class, within its limit plus a margin."""

from __future__ import annotations

import re
import resource

import pytest

from registry_tool.sandbox import Case, Outcome

from .conftest import Runner, wat

SPIN = '(module (func (export "f") (loop br 0)))'
SPIN_IN_START = '(module (func $s (loop br 0)) (start $s) (func (export "f")))'
GROW_LOOP = """(module (memory (export "memory") 1)
  (func (export "f") (loop (drop (memory.grow (i32.const 1))) br 0)))"""
HUGE_MEMORY = '(module (memory (export "memory") 60000) (func (export "f")))'
TABLE_BOMB = """(module (table (export "t") 0 funcref)
  (func (export "f") (loop (drop (table.grow (ref.null func) (i32.const 1000))) br 0)))"""
HUGE_TABLE = '(module (table 10000000 funcref) (func (export "f")))'
RECURSE = '(module (func $f (export "f") (call $f)))'
UNREACHABLE = '(module (func (export "f") unreachable))'
DIV_ZERO = '(module (func (export "f") (result i32) (i32.div_u (i32.const 1) (i32.const 0))))'
WASI_FLOOD = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\\10\\00\\00\\00\\00\\10\\00\\00")
  (func (export "_start")
    (loop (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))) br 0)))"""
# A host call that sleeps 100 s: epochs cannot interrupt host code, so the parent's kill must.
WASI_SLEEP = """(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $p (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 24) "\\00\\e8\\76\\48\\17\\00\\00\\00")
  (func (export "_start") (drop (call $p (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))"""


def _exit_with(code: int) -> str:
    return f"""(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const {code}))))"""


@pytest.mark.parametrize(
    ("name", "module", "limits", "outcome"),
    [
        ("spin in export, fuel", SPIN, {"fuel": 5_000_000}, Outcome.out_of_fuel),
        ("spin in export, deadline", SPIN, {"fuel": 10**15, "wall_time": 0.5}, Outcome.timeout),
        ("spin in start, fuel", SPIN_IN_START, {"fuel": 5_000_000}, Outcome.out_of_fuel),
        ("spin in start, deadline", SPIN_IN_START, {"fuel": 10**15, "wall_time": 0.5}, Outcome.timeout),
        ("memory.grow loop", GROW_LOOP, {"fuel": 2_000_000}, Outcome.memory_limit),
        ("huge initial memory", HUGE_MEMORY, {}, Outcome.memory_limit),
        ("table growth bomb", TABLE_BOMB, {"fuel": 2_000_000}, Outcome.memory_limit),
        ("huge initial table", HUGE_TABLE, {}, Outcome.memory_limit),
        ("unbounded recursion", RECURSE, {}, Outcome.stack_overflow),
        ("unreachable", UNREACHABLE, {}, Outcome.trap),
        ("division by zero", DIV_ZERO, {}, Outcome.trap),
    ],
)
def test_core_hostile_module_is_classified_within_its_limit(
    run: Runner, name: str, module: str, limits: dict[str, float], outcome: Outcome
) -> None:
    [result] = run(wat(module), Case(name, "f"), wall_time=limits.pop("wall_time", 1.0), **limits)
    assert result.outcome is outcome, result.detail
    assert not result.passed
    if outcome is Outcome.timeout:  # the worker's own epoch deadline, not the parent's kill
        assert "epoch interruption" in result.detail
        assert result.wall_ms is not None and result.wall_ms >= 450


def test_trap_detail_names_the_trap_code(run: Runner) -> None:
    [unreachable] = run(wat(UNREACHABLE), Case("u", "f"))
    [division] = run(wat(DIV_ZERO), Case("d", "f"))
    assert "unreachable" in unreachable.detail
    assert "integer_division_by_zero" in division.detail


def test_uncaught_exception_is_a_trap_without_code(run: Runner) -> None:
    module = wat('(module (tag $e) (func (export "f") throw $e))')
    features = {"exceptions": True, "reference_types": True, "simd": True}
    [result] = run(module, Case("throw", "f"), features=features)
    assert result.outcome is Outcome.trap
    assert "exception" in result.detail


def test_expect_trap_inverts_the_verdict(run: Runner) -> None:
    results = run(
        wat(SPIN),
        [
            Case("wants fuel", "f", expect_trap="out_of_fuel"),
            Case("wants timeout", "f", expect_trap="timeout"),
        ],
        fuel=1_000_000,
    )
    assert [r.outcome for r in results] == [Outcome.out_of_fuel, Outcome.out_of_fuel]
    assert [r.passed for r in results] == [True, False]


def test_stdout_flood_hits_the_output_cap(run: Runner) -> None:
    # The module loops on fd_write for ever (ignoring EFBIG); fuel ends it, and a wall-clock limit far
    # beyond any machine's time for 1M fuel keeps the timer out of it: the outcome is the cap either way.
    [result] = run(
        wat(WASI_FLOOD), Case("flood"), abi="wasi-command", output=64 * 1024, fuel=1_000_000, wall_time=120.0
    )
    assert result.outcome is Outcome.output_limit
    assert result.fuel_consumed == 1_000_000  # the loop went on past the cap, bounded by fuel
    assert len(result.stdout) <= 2100  # the report shows a bounded excerpt


def test_c_stdout_flood_hits_the_output_cap(run: Runner, build_c) -> None:
    [result] = run(build_c("flood"), Case("flood"), abi="wasi-command", output=256 * 1024)
    assert result.outcome is Outcome.output_limit
    assert "flood flood" in result.stdout


def test_sleep_past_the_deadline_is_a_timeout_without_sleeping(run: Runner) -> None:
    # A 100 s WASI sleep: time is virtual, so the test ends at once instead of blocking in a host call
    # (a host call that does block is killed by the parent: test_supervision's hanging worker).
    [result] = run(wat(WASI_SLEEP), Case("sleep"), abi="wasi-command", wall_time=0.5, kill_margin=30)
    assert result.outcome is Outcome.timeout
    # Only the virtual clock says this; a real sleep would end in the parent's kill ("no result within").
    assert "slept past its wall-clock deadline" in result.detail


@pytest.mark.parametrize("code", [1, 3, 125])
def test_proc_exit_nonzero_is_an_exit_code_result(run: Runner, code: int) -> None:
    failing, expected = run(
        wat(_exit_with(code)), [Case("plain"), Case("declared", exit_code=code)], abi="wasi-command"
    )
    assert failing.outcome is Outcome.exit_code
    assert f"exit code {code}" in failing.detail
    assert expected.outcome is Outcome.passed


def test_a_poll_of_more_subscriptions_than_a_program_needs_is_einval(run: Runner) -> None:
    """100,000 clock subscriptions in one call: the host's loop over them is metered by neither fuel
    nor the epoch (5.6 M took 4 s past a 1 s wall time and 1.2 GB); at most 4,096 are read."""
    module = """(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $p (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 80)
  (func (export "_start")
    (call $exit (call $p (i32.const 0) (i32.const 5000000) (i32.const 100000) (i32.const 5000100)))))"""
    [result] = run(wat(module), Case("poll", exit_code=28), abi="wasi-command")  # 28: EINVAL
    assert result.outcome is Outcome.passed, result.detail


def test_a_run_whose_last_host_call_returned_past_the_deadline_is_a_timeout(run: Runner) -> None:
    """The epoch interrupts wasm code only: random_get of 16 MiB (about half a second of host
    work, ten times the 50 ms wall time) returned, the export ended, and the test passed."""
    module = """(module
  (import "wasi_snapshot_preview1" "random_get" (func $r (param i32 i32) (result i32)))
  (memory (export "memory") 260)
  (func (export "_start") (drop (call $r (i32.const 0) (i32.const 16777216)))))"""
    [result] = run(wat(module), Case("random", expect_kind="none"), abi="wasi-command", wall_time=0.05,
                   memory=32 * 1024 * 1024)  # fmt: skip
    assert result.outcome is Outcome.timeout, result.detail
    assert result.fuel_consumed is not None  # counted: no epoch interruption left it unflushed


def test_proc_exit_in_the_start_function_is_a_result(run: Runner) -> None:
    module = _exit_with(4).replace('(func (export "_start")', "(start $s) (func $s")
    module = module[: module.rindex(")")] + ' (func (export "_start")))'
    [result] = run(wat(module), Case("start", exit_code=4), abi="wasi-command")
    assert result.outcome is Outcome.passed, result.detail


def test_proc_exit_outside_wasi_range_is_a_trap(run: Runner) -> None:
    # wasmtime refuses exit statuses >= 126 (reserved by shells); that is a trap, not a result.
    [result] = run(wat(_exit_with(255)), Case("255"), abi="wasi-command")
    assert result.outcome is Outcome.trap
    assert "exit status" in result.detail


@pytest.mark.parametrize(
    "blob",
    [b"", b"\0asm", b"\0asm\x01\0\0\0\x01\xff", b"not wasm at all", b"\0asm\x0d\0\x01\0"],
    ids=["empty", "magic-only", "truncated-section", "text", "bad-version"],
)
def test_malformed_binary_is_a_compile_error(run: Runner, blob: bytes) -> None:
    results = run(blob, [Case("a", "f"), Case("b", "f")])
    assert [r.outcome for r in results] == [Outcome.compile_error, Outcome.compile_error]
    assert all(r.detail for r in results)


@pytest.mark.parametrize(
    ("module", "feature"),
    [
        ('(module (func (export "f") (drop (v128.const i32x4 0 0 0 0))))', "simd"),
        ('(module (memory 1 1) (func (export "f") (drop (i32.atomic.load (i32.const 0)))))', "threads"),
        ('(module (func (export "f") (return_call 0)))', "tail_call"),
        ('(module (memory 1) (memory 1) (func (export "f")))', "multi_memory"),
    ],
    ids=["simd", "threads", "tail_call", "multi_memory"],
)
def test_module_using_a_disabled_feature_does_not_compile(run: Runner, module: str, feature: str) -> None:
    base = {"reference_types": True, "bulk_memory": True, "multi_value": True}
    [refused] = run(wat(module), Case("f", "f", expect_kind="none"), features=base, memories=2)
    [accepted] = run(wat(module), Case("f", "f"), features={**base, feature: True}, memories=2)
    assert refused.outcome is Outcome.compile_error
    assert re.search("enabled|support|multiple memories", refused.detail), refused.detail
    assert accepted.outcome is not Outcome.compile_error, accepted.detail


@pytest.mark.parametrize("threads", [False, True])
def test_a_shared_memory_is_refused_as_validate_refuses_it(run: Runner, threads: bool) -> None:
    """With threads on, wasmtime compiled it and every test trapped ("shared memory support is
    disabled"), or passed one that expects a trap; validate refuses it whatever the switch."""
    from registry_tool.manifest.wasm import SHARED_MEMORY_REFUSED
    from registry_tool.sandbox.harness import _fix_for

    shared = wat('(module (memory 1 1 shared) (func (export "f")))')
    [result] = run(shared, Case("f", "f", expect_kind="none"), features={"threads": threads})
    assert (result.outcome, result.detail) == (Outcome.compile_error, SHARED_MEMORY_REFUSED)
    assert "build without shared memory" in str(_fix_for(result))


def _slow_to_compile() -> bytes:
    # ~3 MB of long dependency chains: seconds of Cranelift time, far above the 0.3 s budget below.
    body = "(i32.add (i32.const 1)) " * 5000
    funcs = "".join(
        f'(func (export "f{i}") (param i32) (result i32) (local.get 0) {body})' for i in range(200)
    )
    return wat(f"(module {funcs})")


def test_slow_compile_is_stopped_at_the_compile_timeout(run: Runner) -> None:
    results = run(_slow_to_compile(), [Case("a", "f0", [1]), Case("b", "f1", [1])], compile_timeout=0.3)
    assert [r.outcome for r in results] == [Outcome.compile_timeout, Outcome.compile_timeout]
    assert "did not finish within 0.3s" in results[0].detail


@pytest.mark.parametrize("input_size", [0, 4 * 1024**2], ids=["small-job", "job-larger-than-a-pipe"])
def test_worker_without_address_space_fails_cleanly(run: Runner, input_size: int) -> None:
    # So little address space that the worker cannot even start: a crash, not a hang or a traceback.
    [result] = run(wat(SPIN), Case("f", "f", input=b"x" * input_size), address_space=48 * 1024**2)
    assert result.outcome in (Outcome.worker_crashed, Outcome.memory_limit)
    assert "worker" in result.detail


def test_runaway_runs_keep_the_tool_memory_bounded(run: Runner, build_c) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(2):
        run(wat(GROW_LOOP), Case("grow", "f"), memory=64 * 1024**2, fuel=1_000_000)
        run(build_c("flood"), Case("flood"), abi="wasi-command", output=1024**2, fuel=3_000_000)
        run(wat(HUGE_MEMORY), Case("huge", "f"))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 20 * 1024, f"the parent grew by {grown_kib} KiB"


def test_a_memory_exported_under_many_names_is_measured_once(run: Runner) -> None:
    """200,000 names of one memory took 123 s to collect before the first test (a tuple copied
    per name) and 1.5 s of every test to measure."""
    import wasmtime as wt

    from registry_tool.sandbox.worker import _measured_exports

    names = " ".join(f'(export "m{i}" (memory 0)) (export "t{i}" (table 0))' for i in range(20_000))
    module = wat(
        f'(module (memory 1) (table 1 funcref) {names} (func (export "f") (result i32) (i32.const 1)))'
    )
    exports = wt.Module(wt.Engine(), module).exports
    assert _measured_exports(module, exports) == (("m0",), ("t0",))
    [result] = run(module, Case("f", "f", expect_kind="values", expect=[1]))
    assert result.outcome is Outcome.passed and result.peak_memory_bytes == 65536, result.detail


def test_a_module_the_reader_cannot_walk_for_a_shared_memory_is_not_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check answered "no shared memory" when it could not read the bytes (fail open)."""
    import wasmtime as wt

    from registry_tool.manifest import binary
    from registry_tool.sandbox.worker import _shared_memory_refusal

    def unreadable(data: bytes, depth: int = 0) -> bool:
        raise ValueError("an unknown section")

    monkeypatch.setattr(binary, "has_shared_memory", unreadable)
    engine = wt.Engine()
    said = _shared_memory_refusal(wat('(module (func (export "f")))'), engine)
    assert said is not None and "cannot read the module's memories" in said
    assert _shared_memory_refusal(b"\0asm garbage", engine) is None  # the compiler reports it
    component = wat("(component)")
    said = _shared_memory_refusal(component, engine)  # a component is not validated here: refused
    assert said is not None and "cannot read the module's memories" in said
