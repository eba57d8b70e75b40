"""Components get the outcome classes of core modules for fuel, stack and the wall clock.

A component call's trap reaches the worker as a plain ``WasmtimeError`` (no trap code): the cause
line wasmtime writes names it.  A component's memories are not exported, so its memory limit is
not told from other traps (docs/sandbox.md).
"""

from __future__ import annotations

import ctypes

import pytest
import wasmtime
from wasmtime import _ffi as ffi

from registry_tool.sandbox import Case, Outcome

from .conftest import Runner, wat

MiB = 1024**2

#: ``wasi:cli/run`` lifted from a core function of a module with a 1-page memory.
_COMPONENT = """(component
  (core module $m
    (memory (export "memory") {pages})
    (func $recurse (call $recurse))
    (func (export "spin") (result i32) (loop br 0) (i32.const 0))
    (func (export "recurse") (result i32) (call $recurse) (i32.const 0))
    ;; grow a page at a time until refused, then abort like Rust's alloc error handler
    (func (export "grow") (result i32)
      (loop (br_if 0 (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
      unreachable)
    ;; one grow far above the limit: refused, and the memory stays small
    (func (export "grow_once") (result i32)
      (if (i32.eq (memory.grow (i32.const 4096)) (i32.const -1)) (then unreachable))
      (i32.const 0))
    (func (export "grow_ok") (result i32)
      (loop (br_if 0 (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
      (i32.const 0))
    (func (export "ok") (result i32) (i32.const 0)))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "{entry}")))
  (instance $inst (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $inst)))"""


def component(entry: str, pages: int = 1) -> bytes:
    return wat(_COMPONENT.format(entry=entry, pages=pages))


@pytest.mark.parametrize(
    ("entry", "outcome", "limits"),
    [
        ("spin", Outcome.out_of_fuel, {"fuel": 1_000_000}),
        ("recurse", Outcome.stack_overflow, {}),
        ("spin", Outcome.timeout, {"fuel": 10**15, "wall_time": 0.2}),
    ],
    ids=["out_of_fuel", "stack_overflow", "timeout"],
)
def test_component_limits_have_their_own_outcome(
    run: Runner, entry: str, outcome: Outcome, limits: dict[str, float]
) -> None:
    [result] = run(
        component(entry), Case("run", expect_trap=outcome.value), abi="component", component=True, **limits
    )
    assert result.outcome is outcome, result.detail
    assert result.passed


def test_component_memory_exhausted_is_a_trap_with_no_peak(run: Runner) -> None:
    """Not measured (the memories are not exported): a trap, never a pass or a false class."""
    [result] = run(component("grow"), Case("run"), abi="component", component=True, memory=2 * MiB)
    assert result.outcome is Outcome.trap and result.peak_memory_bytes is None, result.detail


@pytest.mark.parametrize(
    "code", [wasmtime.TrapCode.OUT_OF_FUEL, wasmtime.TrapCode.STACK_OVERFLOW, wasmtime.TrapCode.INTERRUPT]
)
def test_trap_causes_are_wasmtimes_own_messages(code: wasmtime.TrapCode) -> None:
    """The messages a component's plain error is classified by are the ones this wasmtime writes."""
    from registry_tool.sandbox.worker import _TRAP_CAUSES

    trap = wasmtime.Trap._from_ptr(ffi.wasmtime_trap_new_code(ctypes.c_uint8(code.value)))
    assert trap.trap_code is code
    [cause] = [c for c, k in _TRAP_CAUSES.items() if k is code]
    assert trap.message.removeprefix("wasm trap: ").rstrip(". ") == cause
