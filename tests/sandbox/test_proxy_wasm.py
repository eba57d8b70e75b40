"""The proxy-wasm ABI: host functions, the lifecycle driver and the expectations of a test, with a
freestanding C filter (tests/sandbox/modules/proxy_filter.c) and the proxy-wasm-go-sdk sample."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from registry_tool.manifest import load_manifest, load_registry_config
from registry_tool.sandbox import Case, ImportRule, Outcome
from registry_tool.sandbox.harness import job_for
from registry_tool.sandbox.proxy_wasm import ProxyWasmError, deserialize_pairs, serialize_pairs

from .conftest import Runner

INDEX = Path(__file__).resolve().parents[2] / "index"


@pytest.fixture(scope="module")
def filter_wasm(build_c) -> bytes:  # type: ignore[no-untyped-def]
    return build_c("proxy_filter", target="freestanding")


def _case(name: str, **http: Any) -> Case:
    data = http.pop("input", None)
    expect = http.pop("expect", None)
    return Case(name, input=data, http=http, expect_kind="none" if expect is None else "text", expect=expect)


def test_pairs_round_trip_and_malformed_maps_are_refused() -> None:
    pairs = [(b":path", b"/"), (b"x-a", b""), (b"k", b"v\x00w")]
    assert deserialize_pairs(serialize_pairs(pairs)) == pairs
    assert serialize_pairs([(b"a", b"b")]) == b"\x01\0\0\0\x01\0\0\0\x01\0\0\0a\0b\0"
    for bad in (b"", b"\x05\0\0\0", serialize_pairs(pairs)[:-3]):
        with pytest.raises(Exception, match="proxy-wasm"):
            deserialize_pairs(bad)
    # A count the bytes could hold (8 bytes a pair) but no map may have: refused before any list
    # of its sizes is made (33 M pairs in a 256 MiB memory took the worker to 2.7 GB).
    huge = struct.pack("<I", 33_554_431) + bytes(8 * 33_554_431)
    with pytest.raises(ProxyWasmError, match="more than the 1024 a map may hold"):
        deserialize_pairs(huge)


def test_lifecycle_runs_in_the_documented_order(run: Runner, filter_wasm: bytes) -> None:
    [result] = run(
        filter_wasm,
        _case("order", plugin_config="none", vm_config="vm", input=b"body", response_body="resp"),
        abi="proxy-wasm",
    )
    assert result.outcome is Outcome.passed, result.detail
    lines = [line.removeprefix("[info] ") for line in result.stderr.splitlines()]
    assert lines == [
        "create 1 0",
        "vm_start 1 2",
        "configure 1 4",
        "create 2 1",
        "request_headers 4 0",  # the four default pseudo-headers; a body follows
        "request_body 4 1",
        "response_headers 1 0",
        "response_body 4 1",
        "done 2 0",
        "log 2 0",
        "delete 2 0",
    ]


def test_header_edits_pairs_and_body_rewrite_are_seen_by_the_test(run: Runner, filter_wasm: bytes) -> None:
    good = _case(
        "headers",
        plugin_config="headers",
        request_headers=[[":path", "/p"], ["X-A", "1"], ["x-b", "gone"]],
        response_body="original",
        expect_actions={"request_headers": "continue", "response_body": "continue"},
        expect_request_headers={"x-a": "2", "x-b": False, "x-c": "3"},
        expect_log=["/p", "x-missing not found"],
        expect="changed",
    )
    wrong = _case("wrong", plugin_config="headers", expect_request_headers={"x-c": "4"})
    absent = _case("absent", plugin_config="headers", request_headers=[["x-b", "1"]],
                   expect_request_headers={"x-b": "1"})  # fmt: skip
    ok, bad, gone = run(filter_wasm, [good, wrong, absent], abi="proxy-wasm")
    assert ok.outcome is Outcome.passed, ok.detail
    assert bad.outcome is Outcome.wrong_output and "'x-c' is '3', expected '4'" in bad.detail
    assert gone.outcome is Outcome.wrong_output and "'x-b' is absent" in gone.detail


def test_body_edits_prepend_append_and_replace_like_envoy(run: Runner, filter_wasm: bytes) -> None:
    [result] = run(filter_wasm, _case("edit", plugin_config="edit", response_body="abc", expect="<aic>!"),
                   abi="proxy-wasm")  # fmt: skip
    assert result.outcome is Outcome.passed, result.detail


def test_local_response_ends_the_request_phases(run: Runner, filter_wasm: bytes) -> None:
    deny = _case(
        "deny",
        plugin_config="deny",
        input=b"never read",
        expect_actions={"request_headers": "pause"},
        expect_local_response={"status": 401, "body": "no", "headers": {"www-authenticate": "Basic"}},
        expect="no",
    )
    wrong = _case("wrong status", plugin_config="deny", expect_local_response={"status": 403})
    missing = _case("none sent", plugin_config="x", expect_local_response={"status": 403})
    ok, bad, none = run(filter_wasm, [deny, wrong, missing], abi="proxy-wasm")
    assert ok.outcome is Outcome.passed, ok.detail
    assert "request_body" not in ok.stderr and "response_headers" not in ok.stderr
    assert bad.outcome is Outcome.wrong_output and "status 401, expected 403" in bad.detail
    assert none.outcome is Outcome.wrong_output and "no local response" in none.detail


def test_configure_returning_false_is_an_exit_code(run: Runner, filter_wasm: bytes) -> None:
    [result] = run(filter_wasm, _case("refuse", plugin_config="refuse"), abi="proxy-wasm")
    assert result.outcome is Outcome.exit_code and "proxy_on_configure returned false" in result.detail


def test_http_calls_are_refused_unless_the_network_permission_is_granted(
    run: Runner, filter_wasm: bytes
) -> None:
    case = _case("http", plugin_config="http")
    [denied] = run(filter_wasm, case, abi="proxy-wasm")
    [granted] = run(filter_wasm, case, abi="proxy-wasm", granted=["network"])
    assert denied.outcome is Outcome.trap and "denied" in denied.detail and "network" in denied.detail
    assert granted.outcome is Outcome.passed, granted.detail


def test_shared_data_is_bounded(run: Runner, filter_wasm: bytes) -> None:
    [result] = run(filter_wasm, _case("flood", plugin_config="flood"), abi="proxy-wasm")
    assert result.outcome is Outcome.trap and "shared data would exceed" in result.detail


def test_tick_period_and_vm_configuration(run: Runner, filter_wasm: bytes) -> None:
    [result] = run(filter_wasm, _case("tick", plugin_config="tick", vm_config="vm-cfg",
                                      expect_log=["vm-cfg"]), abi="proxy-wasm")  # fmt: skip
    assert result.outcome is Outcome.passed, result.detail


def test_proxy_wasm_imports_outside_the_abi_are_link_errors(run: Runner) -> None:
    from .conftest import wat

    module = wat('(module (import "env" "proxy_not_a_call" (func)) (memory (export "memory") 1))')
    [result] = run(module, _case("x"), abi="proxy-wasm")
    assert result.outcome is Outcome.link_error and "proxy_not_a_call" in result.detail


@pytest.mark.parametrize(
    ("export", "signature"),
    [
        ("proxy_on_request_headers", "(param v128 i32 i32) (result i32) (i32.const 0)"),  # aborted the worker
        ("proxy_on_vm_start", "(param externref i32) (result i32) (i32.const 1)"),  # passed
        ("malloc", "(param v128) (result i32) (i32.const 0)"),
    ],
)
def test_a_callback_of_another_type_is_missing_export(run: Runner, export: str, signature: str) -> None:
    """Envoy refuses to load such a filter; calling a v128 callback killed the worker (SIGABRT)."""
    from .conftest import wat

    exports = {
        "proxy_abi_version_0_2_1": "",
        "proxy_on_context_create": "(param i32 i32)",
        "malloc": "(param i32) (result i32) (i32.const 1024)",
        "proxy_on_request_headers": "(param i32 i32 i32) (result i32) (i32.const 0)",
        export: signature,
    }
    funcs = " ".join(f'(func (export "{name}") {body})' for name, body in exports.items())
    module = wat(f'(module (memory (export "memory") 1) {funcs})')
    [result] = run(module, _case("typed"), abi="proxy-wasm")
    assert result.outcome is Outcome.missing_export and f"export '{export}'" in result.detail, result.detail


def test_a_module_without_the_abi_version_export_is_missing_export(run: Runner) -> None:
    from .conftest import wat

    [result] = run(wat('(module (memory (export "memory") 1))'), _case("x"), abi="proxy-wasm")
    assert result.outcome is Outcome.missing_export


def test_proxy_wasm_mixes_wasi_and_a_granted_host_import(run: Runner, filter_wasm: bytes) -> None:
    # The Go SDK filter imports WASI and env.proxy_*; a registry permission adds a host module.
    from .conftest import wat

    module = wat(
        '(module (import "wasi_snapshot_preview1" "random_get" (func (param i32 i32) (result i32)))'
        ' (import "ferrite:keys" "get" (func (param i32 i32 i32 i32) (result i32)))'
        ' (import "env" "proxy_log" (func (param i32 i32 i32) (result i32)))'
        ' (memory (export "memory") 1) (func (export "proxy_abi_version_0_2_1"))'
        ' (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))'
        ' (func (export "proxy_on_context_create") (param i32 i32)))'
    )
    rule = ImportRule("ferrite:keys", "*", "keys")
    [result] = run(module, _case("mixed"), abi="proxy-wasm", permission_rules=[rule], granted=["keys"])
    assert result.outcome is Outcome.passed, result.detail


# The official Rust SDK (proxy-wasm crate 0.2): every filter imports the gRPC calls, and reads its
# configuration with get_buffer(PluginConfiguration, 0, usize::MAX), .unwrap()ing the status.
_RUST_SDK_LIKE = """(module
  (import "env" "proxy_get_buffer_bytes" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_call" (func $grpc (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (result i32)))
  (import "env" "proxy_grpc_stream" (func (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_send" (func (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_cancel" (func (param i32) (result i32)))
  (import "env" "proxy_grpc_close" (func (param i32) (result i32)))
  (import "env" "proxy_get_status" (func (param i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $top (mut i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32) (local.set $p (global.get $top))
    (global.set $top (i32.add (global.get $top) (local.get $n))) (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_configure") (param $ctx i32) (param $size i32) (result i32)
    (if (call $get (i32.const 7) (i32.const 0) (i32.const -1) (i32.const 0) (i32.const 4))
      (then unreachable))
    (if (i32.load (i32.const 0)) (then) (else unreachable))  ;; the buffer was given
    %s
    (i32.const 1)))"""


def test_rust_sdk_filter_reads_its_whole_configuration_and_links_grpc(run: Runner) -> None:
    from .conftest import wat

    module = wat(_RUST_SDK_LIKE % "")
    [result] = run(module, _case("config", plugin_config="{}"), abi="proxy-wasm")
    assert result.outcome is Outcome.passed, result.detail


def test_grpc_calls_are_refused_unless_the_network_permission_is_granted(run: Runner) -> None:
    from .conftest import wat

    call = "(drop (call $grpc" + " (i32.const 0)" * 11 + " (i32.const 16)))"
    module = wat(_RUST_SDK_LIKE % call)
    [denied] = run(module, _case("grpc", plugin_config="{}"), abi="proxy-wasm")
    [granted] = run(module, _case("grpc", plugin_config="{}"), abi="proxy-wasm", granted=["network"])
    assert denied.outcome is Outcome.trap and "proxy_grpc_call denied" in denied.detail
    assert granted.outcome is Outcome.passed, granted.detail


def test_the_log_of_a_filter_that_traps_is_kept(run: Runner) -> None:
    from .conftest import wat

    module = wat(
        '(module (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))'
        ' (memory (export "memory") 1) (data (i32.const 0) "panicked at src/lib.rs")'
        ' (func (export "proxy_abi_version_0_2_1"))'
        ' (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))'
        ' (func (export "proxy_on_context_create") (param i32 i32))'
        ' (func (export "proxy_on_configure") (param i32 i32) (result i32)'
        "   (drop (call $log (i32.const 4) (i32.const 0) (i32.const 22))) unreachable))"
    )
    [result] = run(module, _case("panics", plugin_config="{}"), abi="proxy-wasm")
    assert result.outcome is Outcome.trap, result.detail
    assert "[error] panicked at src/lib.rs" in result.stderr


# --------------------------------------------------------------------------- the Go SDK sample


@pytest.mark.slow  # a Go-built module: seconds to compile
def test_go_sdk_filter_sample_passes_its_manifest_tests(tmp_path: Path) -> None:
    release = INDEX / "plugins" / "header_gate" / "1.0.0"
    config = load_registry_config(INDEX)
    manifest = load_manifest(release, config)
    job = job_for(manifest, config, cache=False)
    from registry_tool.sandbox import run_job

    outcomes = run_job(job)
    assert all(o.passed for o in outcomes), [(o.name, o.outcome, o.detail) for o in outcomes]
