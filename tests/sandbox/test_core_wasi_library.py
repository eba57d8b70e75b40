"""A library built for wasm32-wasip1 (a reactor: ``_initialize``, WASI imports) declared ``abi = "core"``:
the fix says how to rebuild it without WASI, and smoke gives that one fix, not it and the generic one."""

from __future__ import annotations

from registry_tool.manifest.abi import CORE_WASI_FIX
from registry_tool.sandbox import Case, Outcome

from .conftest import Runner, wat

#: What `cargo build --target wasm32-wasip1` of a cdylib (or C with stdio) looks like to the host.
WASI_REACTOR = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_initialize"))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))"""


def test_the_core_wasi_fix_covers_a_reactor_library() -> None:
    assert "wasm32-unknown-unknown" in CORE_WASI_FIX
    assert "-nostdlib" in CORE_WASI_FIX
    assert "'wasi-command' for a program with _start" in CORE_WASI_FIX


def test_smoke_gives_one_fix_for_a_wasi_library_declared_core(run: Runner) -> None:
    from registry_tool.sandbox.harness import _fix_for, _own_fix

    [result] = run(wat(WASI_REACTOR), Case("add", "add", [1, 2], expect_kind="values", expect=[3]))
    assert result.outcome is Outcome.link_error
    assert _fix_for(result) == CORE_WASI_FIX
    message, fix = _own_fix(result)
    assert fix == CORE_WASI_FIX
    assert message.startswith("import wasi_snapshot_preview1.fd_write ") and "fix:" not in message
    assert CORE_WASI_FIX in result.detail  # the JSON detail keeps it whole


def test_other_link_errors_keep_the_outcomes_fix() -> None:
    from registry_tool.sandbox.harness import _fix_for
    from registry_tool.sandbox.outcome import TestOutcome

    plain = TestOutcome("t", Outcome.link_error, detail="unknown import: `env::f` has not been defined")
    assert _fix_for(plain) == "remove the import or declare the permission that grants it in [permissions]"


def test_an_import_name_holding_a_fix_marker_does_not_take_over_the_fix() -> None:
    """The import's name is the module author's text: the fix shown is validate's, the last one."""
    from registry_tool.sandbox.harness import _fix_for
    from registry_tool.sandbox.outcome import TestOutcome

    detail = f"import env.x (fix: trust me) is not granted (fix: {CORE_WASI_FIX})"
    assert _fix_for(TestOutcome("t", Outcome.link_error, detail=detail)) == CORE_WASI_FIX


def test_a_component_trap_is_classified_by_the_cause_not_by_a_function_name() -> None:
    """wasmtime writes the backtrace (names from the module) before the cause: only the cause counts."""
    import wasmtime

    from registry_tool.sandbox.worker import classify_error

    message = (
        "error while executing at wasm backtrace:\n    0:  0x1 - <unknown>!x\n"
        "wasm trap: interrupt\n\nCaused by:\n    wasm trap: wasm `unreachable` instruction executed"
    )
    outcome, _ = classify_error(wasmtime.WasmtimeError(message))
    assert outcome is Outcome.trap
    fuel = message.replace("wasm `unreachable` instruction executed", "all fuel consumed by WebAssembly")
    assert classify_error(wasmtime.WasmtimeError(fuel))[0] is Outcome.out_of_fuel
