"""A Proxy-Wasm filter shaped as AssemblyScript's @solo-io/proxy-runtime builds it (asc cannot run in
CI: npm packages are not part of the project's setup), in WAT: it exports ``malloc`` and no
``proxy_on_memory_allocate`` (Envoy looks ``malloc`` up first), imports ``wasi_unstable`` (WASI
preview 0, which Envoy registers beside preview 1), and finds its root context by the root id it
reads from ``proxy_get_property("plugin_root_id")``, ending in ``proc_exit(255)`` (the SDK's
``--use abort=abort_proc_exit``) when nothing is registered under it."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry_tool.manifest import load_manifest, load_registry_config, validate_release
from registry_tool.manifest.abi import ABI_ONLY_TEST_KEYS
from registry_tool.sandbox import Case, ImportRule, Outcome, run_job
from registry_tool.sandbox.harness import job_for

from .conftest import Runner, wat

EXAMPLES_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "registry.toml"
#: The virtual clock's first reading (DeterministicWasi: its epoch plus one tick).
FIRST_CLOCK_READING = 1_700_000_000 * 10**9 + 1_000

AS_FILTER = """(module
  (import "env" "proxy_get_property" (func $get_property (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value"
    (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_unstable" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_unstable" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_unstable" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "plugin_root_id")
  (data (i32.const 120) "plugin_vm_id")
  (data (i32.const 140) "add_header")
  (data (i32.const 160) "x-root")
  (data (i32.const 170) "x-vm")
  (data (i32.const 180) "x-clock")
  (data (i32.const 190) "virtual")
  (data (i32.const 200) "real")
  (data (i32.const 210) "hello\\n")
  (global $heap (mut i32) (i32.const 1024))
  (global $root (mut i32) (i32.const 0))
  (global $root_len (mut i32) (i32.const 0))
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func $same (param $a i32) (param $alen i32) (param $b i32) (param $blen i32) (result i32) (local $i i32)
    (if (i32.ne (local.get $alen) (local.get $blen)) (then (return (i32.const 0))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $alen)))
      (if (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                  (i32.load8_u (i32.add (local.get $b) (local.get $i))))
        (then (return (i32.const 0))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (i32.const 1))
  (func (export "proxy_abi_version_0_2_0"))
  (func (export "proxy_on_context_create") (param $id i32) (param $parent i32)
    (if (local.get $parent) (then (return)))
    ;; registerRootContext(factory, "add_header"): any other root id has no factory
    (drop (call $get_property (i32.const 100) (i32.const 14) (i32.const 300) (i32.const 304)))
    (global.set $root (i32.load (i32.const 300)))
    (global.set $root_len (i32.load (i32.const 304)))
    (if (i32.eqz (call $same (global.get $root) (global.get $root_len) (i32.const 140) (i32.const 10)))
      (then (call $proc_exit (i32.const 255)))))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $add_header (i32.const 0) (i32.const 160) (i32.const 6)
      (global.get $root) (global.get $root_len)))
    (drop (call $get_property (i32.const 120) (i32.const 12) (i32.const 300) (i32.const 304)))
    (drop (call $add_header (i32.const 0) (i32.const 170) (i32.const 4)
      (i32.load (i32.const 300)) (i32.load (i32.const 304))))
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 400)))
    (if (i64.eq (i64.load (i32.const 400)) (i64.const {clock}))
      (then (drop (call $add_header (i32.const 0) (i32.const 180) (i32.const 7)
        (i32.const 190) (i32.const 7))))
      (else (drop (call $add_header (i32.const 0) (i32.const 180) (i32.const 7)
        (i32.const 200) (i32.const 4)))))
    (i32.store (i32.const 500) (i32.const 210))
    (i32.store (i32.const 504) (i32.const 6))
    (drop (call $fd_write (i32.const 1) (i32.const 500) (i32.const 1) (i32.const 520)))
    (i32.const 0)))""".replace("{clock}", str(FIRST_CLOCK_READING))

#: The same filter without WASI: only its allocator is AssemblyScript's.
MALLOC_ONLY = """(module
  (import "env" "proxy_add_header_map_value"
    (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 160) "x-as-gate")
  (data (i32.const 170) "ok")
  (global $heap (mut i32) (i32.const 1024))
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_abi_version_0_2_0"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $add_header (i32.const 0) (i32.const 160) (i32.const 9) (i32.const 170) (i32.const 2)))
    (i32.const 0)))"""


def _release(
    tmp_path: Path, module: str, tests: str, *, abi: str = "proxy-wasm", extra_config: str = ""
) -> Path:
    release = tmp_path / "plugins" / "as_gate" / "1.0.0"
    release.mkdir(parents=True)
    (release / "as_gate.wasm").write_bytes(wat(module))
    (release / "plugin.toml").write_text(
        '[plugin]\nname = "as_gate"\nversion = "1.0.0"\ndescription = "an AssemblyScript-shaped filter"\n'
        f'authors = ["tests"]\nlicense = "MIT"\nabi = "{abi}"\nmin_host_version = "0.2.0"\n\n'
        '[artifact]\nfile = "as_gate.wasm"\n\n[exports]\nfunctions = ["proxy_on_request_headers"]\n\n' + tests
    )
    (tmp_path / "registry.toml").write_text(EXAMPLES_CONFIG.read_text() + extra_config)
    return release


def _errors(release: Path) -> list[tuple[str, str]]:
    result = validate_release(release, load_registry_config(release.parents[2] / "registry.toml"))
    return [(f.rule, f.message) for f in result.findings if f.severity.value == "error"]


def _smoke(release: Path) -> list[tuple[str, Outcome, str, str]]:
    config = load_registry_config(release.parents[2] / "registry.toml")
    outcomes = run_job(job_for(load_manifest(release, config), config, cache=False))
    return [(o.name, o.outcome, o.detail, o.stdout) for o in outcomes]


ROOT_ID_TESTS = """[[tests]]
name = "registered root id"
root_id = "add_header"
vm_id = "vm-7"
expect_request_headers = { x-root = "add_header", x-vm = "vm-7", x-clock = "virtual" }

[[tests]]
name = "no root id: no root context"
expect_trap = "trap"
"""


def test_an_as_proxy_runtime_filter_validates_and_runs_under_its_root_id(tmp_path: Path) -> None:
    release = _release(tmp_path, AS_FILTER, ROOT_ID_TESTS)
    assert _errors(release) == []
    (_, registered, detail, stdout), (_, unregistered, _, _) = _smoke(release)
    assert registered is Outcome.passed, detail
    assert stdout == "hello\n"  # wasi_unstable.fd_write is preview 1's, on the test's stdout
    assert unregistered is Outcome.trap  # proc_exit(255): wasmtime refuses statuses from 126 on


def test_validate_accepts_malloc_in_place_of_proxy_on_memory_allocate(tmp_path: Path, run: Runner) -> None:
    release = _release(tmp_path, MALLOC_ONLY, '[[tests]]\nexpect_request_headers = { x-as-gate = "ok" }\n')
    assert _errors(release) == []
    [(_, outcome, detail, _)] = _smoke(release)
    assert outcome is Outcome.passed, detail
    without = MALLOC_ONLY.replace('(export "malloc")', "")
    [(rule, message)] = _errors(_release(tmp_path / "none", without, "[[tests]]\n"))
    assert rule == "missing-export" and "'proxy_on_memory_allocate' nor 'malloc'" in message
    [result] = run(wat(without), Case("no allocator"), abi="proxy-wasm")
    assert result.outcome is Outcome.missing_export and "malloc" in result.detail, result.detail


BOTH_ALLOCATORS = """(module
  (import "env" "proxy_get_buffer_bytes" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) unreachable)
  (func (export "proxy_abi_version_0_2_0"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (i32.eqz (call $get (i32.const 6) (i32.const 0) (local.get 1) (i32.const 300) (i32.const 304)))))"""


def test_the_host_allocates_with_malloc_first_as_envoy_does(run: Runner) -> None:
    # Both exported and different: Envoy takes malloc (proxy-wasm-cpp-host WasmBase::getFunctions).
    [result] = run(wat(BOTH_ALLOCATORS), Case("malloc first", http={"vm_config": "cfg"}), abi="proxy-wasm")
    assert result.outcome is Outcome.passed, result.detail


def test_wasi_unstable_is_gated_as_its_preview_1_namesake(tmp_path: Path, run: Runner) -> None:
    gate = '\n[permissions.wasi]\ndescription = "WASI"\nimports = [{ module = "wasi_snapshot_preview1" }]\n'
    release = _release(tmp_path, AS_FILTER, ROOT_ID_TESTS, extra_config=gate)
    errors = _errors(release)
    assert errors and all("needs the 'wasi' permission" in message for _, message in errors), errors
    rule = ImportRule("wasi_snapshot_preview1", "*", "wasi")
    case = Case("gated", http={"root_id": "add_header", "expect_request_headers": {"x-clock": "virtual"}})
    [denied] = run(wat(AS_FILTER), case, abi="proxy-wasm", permission_rules=[rule])
    [granted] = run(wat(AS_FILTER), case, abi="proxy-wasm", permission_rules=[rule], granted=["wasi"])
    assert denied.outcome is Outcome.link_error and "needs the 'wasi' permission" in denied.detail
    assert granted.outcome is Outcome.passed, granted.detail


@pytest.mark.parametrize("key", ["root_id", "vm_id"])
def test_root_and_vm_ids_are_proxy_wasm_test_keys(tmp_path: Path, key: str) -> None:
    assert ABI_ONLY_TEST_KEYS[key] == ("proxy-wasm",)
    core = (
        '(module (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0)))'
    )
    release = _release(
        tmp_path, core, f'[[tests]]\ncall = "proxy_on_request_headers"\n{key} = "x"\n', abi="core"
    )
    [(rule, message)] = [e for e in _errors(release) if e[0] != "test-args"]
    assert rule == "test-spec" and f"{key} only applies to the proxy-wasm ABI" in message
