"""Proxy-Wasm start-up as Envoy runs it (proxy-wasm-cpp-host ``WasmBase::startVm``): a reactor's
``_initialize`` then ``main(0, 0)``, a command's ``_start``, before the root
context exists.  TinyGo's proxy-wasm-go-sdk filters are WASI commands whose ``main`` sets the VM
context; tests/sandbox/modules/proxy_main.c is such a filter in C, built as a command and a reactor."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from registry_tool.manifest import load_registry_config, validate_release
from registry_tool.sandbox import Case, Outcome

from .conftest import Runner, wat

EXAMPLES_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "registry.toml"


@pytest.fixture(scope="module")
def command(build_c) -> bytes:  # type: ignore[no-untyped-def]
    return build_c("proxy_main")


@pytest.fixture(scope="module")
def reactor(build_c) -> bytes:  # type: ignore[no-untyped-def]
    return build_c("proxy_reactor_main", target="reactor")


def _case(name: str, argv: list[str] | None = None, **http: Any) -> Case:
    return Case(name, argv=argv, http=http)


def _log(stderr: str) -> list[str]:
    return [line.removeprefix("[info] ") for line in stderr.splitlines()]


MAIN_RAN = {"expect_request_headers": {"x-main-ran": "yes"}}
START_ORDER = ["main ran", "root context", "http context"]


def test_a_command_filter_runs_start_before_the_root_context(run: Runner, command: bytes) -> None:
    assert "_start" in {e.name for e in wasmtime.Module(wasmtime.Engine(), command).exports}
    [result] = run(command, _case("command", **MAIN_RAN), abi="proxy-wasm")
    assert result.outcome is Outcome.passed, result.detail
    assert _log(result.stderr) == START_ORDER


def test_a_reactor_filter_runs_initialize_then_main(run: Runner, reactor: bytes) -> None:
    exports = {e.name for e in wasmtime.Module(wasmtime.Engine(), reactor).exports}
    assert {"_initialize", "main"} <= exports and "_start" not in exports
    [result] = run(reactor, _case("reactor", **MAIN_RAN), abi="proxy-wasm")
    assert result.outcome is Outcome.passed, result.detail
    assert _log(result.stderr) == ["constructors ran", *START_ORDER]  # _initialize, then main


def test_proc_exit_zero_in_start_fails_the_vm_as_in_envoy(run: Runner, command: bytes) -> None:
    """proxy-wasm-cpp-host's proc_exit is an error whatever the status: Envoy never loads the filter."""
    [result] = run(command, _case("exit 0", ["filter.wasm", "exit0"], **MAIN_RAN), abi="proxy-wasm")
    assert result.outcome is Outcome.trap, result.detail
    assert "proc_exit(0) during start-up (Envoy fails the VM)" in result.detail
    assert "root context" not in result.stderr
    # The finding's fix is the build's (it was "the module trapped; run it under wasmtime"), for Go
    # as for TinyGo (the detail blamed a TinyGo build on a standard Go one).
    from registry_tool.sandbox.harness import _fix_for

    assert "go build -buildmode=c-shared" in (_fix_for(result) or ""), _fix_for(result)


def test_another_exit_status_or_a_trap_in_start_ends_the_test(run: Runner, command: bytes) -> None:
    exited, trapped = run(
        command,
        [_case("exit 3", ["filter.wasm", "exit3"]), _case("trap", ["filter.wasm", "trap"])],
        abi="proxy-wasm",
    )
    assert exited.outcome is Outcome.exit_code, exited.detail
    assert "proc_exit(3) during start-up" in exited.detail
    assert "root context" not in exited.stderr  # the filter never got its root context
    assert trapped.outcome is Outcome.trap and "unreachable" in trapped.detail, trapped.detail


def _filter(extra: str) -> str:
    """A minimal filter logging each start-up export it runs (log text at 0..31)."""
    return f"""(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "init    main    void    start   ")
  (func $say (param $at i32) (drop (call $log (i32.const 2) (local.get $at) (i32.const 5))))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  {extra})"""


_INIT = '(func (export "_initialize") (call $say (i32.const 0)))'
_MAIN = '(func (export "main") (param i32 i32) (result i32) (call $say (i32.const 8)) (i32.const 0))'
_MAIN_VOID = '(func (export "__main_void") (result i32) (call $say (i32.const 16)) (i32.const 0))'
_START = '(func (export "_start") (call $say (i32.const 24)))'


@pytest.mark.parametrize(
    ("exports", "ran"),
    [
        (_INIT + _MAIN + _MAIN_VOID + _START, ["init", "main"]),  # _start only without _initialize
        (_INIT + _MAIN_VOID + _START, ["init"]),  # Envoy calls no __main_void
        (_INIT, ["init"]),
        (_START + _MAIN, ["start"]),  # a command's main is its own business
        ("", []),
    ],
)
def test_start_up_calls_what_envoy_calls(run: Runner, exports: str, ran: list[str]) -> None:
    [result] = run(wat(_filter(exports)), _case("start-up"), abi="proxy-wasm")
    assert result.outcome is Outcome.passed, result.detail
    assert [line.strip() for line in _log(result.stderr)] == ran


def _validate(tmp_path: Path, wasm: bytes) -> list[tuple[str, str]]:
    release = tmp_path / "plugins" / "filter" / "1.0.0"
    release.mkdir(parents=True)
    (release / "filter.wasm").write_bytes(wasm)
    (release / "plugin.toml").write_text(
        '[plugin]\nname = "filter"\nversion = "1.0.0"\ndescription = "a filter"\nauthors = ["tests"]\n'
        'license = "MIT"\nabi = "proxy-wasm"\nmin_host_version = "0.2.0"\n\n'
        '[artifact]\nfile = "filter.wasm"\n\n[exports]\nfunctions = ["proxy_on_context_create"]\n\n'
        '[[tests]]\nname = "start-up"\n'
    )
    shutil.copy(EXAMPLES_CONFIG, tmp_path / "registry.toml")
    result = validate_release(release, load_registry_config(tmp_path / "registry.toml"))
    return [(f.rule, f.message) for f in result.findings if f.severity.value == "error"]


def test_validate_accepts_command_and_reactor_filters(tmp_path: Path, command: bytes, reactor: bytes) -> None:
    assert _validate(tmp_path / "command", command) == []
    assert _validate(tmp_path / "reactor", reactor) == []


def test_a_start_up_export_of_another_type_is_refused_as_envoy_refuses_to_load_it(
    run: Runner, tmp_path: Path
) -> None:
    module = wat(_filter(_INIT + '(func (export "main") (param i32) (result i32) (i32.const 0))'))
    [result] = run(module, _case("bad main"), abi="proxy-wasm")
    assert result.outcome is Outcome.missing_export and "'main'" in result.detail, result.detail
    [(rule, message)] = _validate(tmp_path, module)
    assert rule == "export-signature" and "'main'" in message and "[i32, i32] -> [i32]" in message
