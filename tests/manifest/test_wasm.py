"""inspect_wasm: types of imports/exports, components, defined memories; no execution."""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime

from registry_tool.manifest import WasmInspectionError, inspect_wasm, is_component


def wat(text: str) -> bytes:
    return bytes(wasmtime.wat2wasm(text))


def test_imports_and_exports_with_types() -> None:
    info = inspect_wasm(
        wat(
            """(module
              (import "ferrite:keys" "get" (func (param i32 i32) (result i64)))
              (import "env" "mem" (memory 3))
              (table (export "tab") 7 funcref)
              (global (export "g") i32 (i32.const 1))
              (func (export "f") (param i64 f32 f64) (result i32 i64) i32.const 0 i64.const 0))"""
        )
    )
    assert not info.is_component
    get = info.imports[0]
    assert (get.module, get.name, get.kind, get.params, get.results) == (
        "ferrite:keys",
        "get",
        "func",
        ("i32", "i32"),
        ("i64",),
    )
    assert str(get) == "ferrite:keys.get (func [i32, i32] -> [i64])"
    assert info.imports[1].kind == "memory"
    f = info.export("f")
    assert f is not None and f.signature == "[i64, f32, f64] -> [i32, i64]"
    assert {e.name: e.kind for e in info.exports} == {"tab": "table", "g": "global", "f": "func"}
    assert info.memory_min_bytes == 3 * 65536
    assert info.table_min_elements == 7


def test_defined_memory_and_table_are_measured_without_export() -> None:
    info = inspect_wasm(wat("(module (memory 40 50) (table 9 funcref))"))
    assert info.memory_min_bytes == 40 * 65536
    assert info.table_min_elements == 9


def test_no_code_runs_during_inspection() -> None:
    # A start function that would trap: compilation alone must not run it.
    info = inspect_wasm(wat("(module (func $boom unreachable) (start $boom))"))
    assert info.exports == ()


def test_component_is_recognised() -> None:
    data = wat("(component)")
    assert is_component(data)
    info = inspect_wasm(data)
    assert info.is_component and info.exports == ()


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "magic"),
        (b"MZ\x90\x00", "magic"),
        (b"\0asm\x02\x00\x00\x00", "cannot compile"),
        (b"\0asm\x01\x00\x00\x00\x0a\xff", "cannot compile"),
        (b"\0asm\x0d\x00\x01\x00\x00", "cannot compile the component"),
    ],
)
def test_invalid_binaries(data: bytes, fragment: str) -> None:
    with pytest.raises(WasmInspectionError, match=fragment) as info:
        inspect_wasm(data)
    assert info.value.code == "wasm-invalid"
    assert info.value.exit_code == 1


def test_disabled_feature_names_the_proposal() -> None:
    with pytest.raises(WasmInspectionError, match="SIMD support is not enabled"):
        inspect_wasm(wat("(module (func (result v128) v128.const i64x2 0 0))"), {"simd": False})


_FORK_AFTER_PARALLEL_COMPILE = """
import os, sys
import wasmtime
from registry_tool.manifest.wasm import inspect_wasm, make_engine

funcs = " ".join(f'(func (export "f{i}") (result i32) i32.const {i})' for i in range(200))
module = bytes(wasmtime.wat2wasm(f"(module {funcs})"))
inspect_wasm(module, None)  # the parent's engine validates on wasmtime's thread pool
wasmtime.Module(make_engine(None), module)  # and compiles on it
pid = os.fork()
if pid == 0:
    info = inspect_wasm(module, None)  # what a build's forked worker does first
    os._exit(0 if len(info.exports) == 200 else 1)
import time
deadline = time.monotonic() + 60  # a hang, not a slow child: it needs milliseconds
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        sys.exit(os.waitstatus_to_exitcode(status))
    time.sleep(0.05)
os.kill(pid, 9)
sys.exit("the forked child hangs")
"""


def test_a_forked_child_inspects_without_the_parents_thread_pool() -> None:
    """wasmtime's thread pool is not copied by fork: a child validating on it waits forever.

    The build forks its workers after its own checks may have used wasmtime; a child must make
    its own engines, which validate on the calling thread.  Run in a fresh single-threaded
    interpreter; without the fork hook the child hangs until the script's deadline kills it.
    """
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _FORK_AFTER_PARALLEL_COMPILE], capture_output=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]


# One module per proposal that the registry default set leaves off.
_PROPOSALS = {
    "relaxed_simd": "(module (func (param v128 v128 v128) (result v128)"
    " local.get 0 local.get 1 local.get 2 f32x4.relaxed_madd))",
    "function_references": "(module (type $t (func)) (func (param (ref null $t))))",
    "tail_call": "(module (func $f return_call $f))",
    "multi_memory": "(module (memory 1) (memory 1))",
    "memory64": "(module (memory i64 1))",
    "exceptions": "(module (tag))",
    "wide_arithmetic": "(module (func (param i64 i64 i64 i64) (result i64 i64)"
    " local.get 0 local.get 1 local.get 2 local.get 3 i64.add128))",
}


def _validates(data: bytes, features: dict[str, bool]) -> bool:
    try:
        inspect_wasm(data, features)
    except WasmInspectionError:
        return False
    return True


def _smoke_compiles(data: bytes, features: dict[str, bool]) -> bool:
    """What the sandbox's engine, made from the same registry.toml [features], says."""
    from registry_tool.manifest.config import resolved_features
    from registry_tool.sandbox.engine import EngineSpec, make_config

    engine = wasmtime.Engine(make_config(EngineSpec(features=resolved_features(features)).resolved()))
    try:
        wasmtime.Module(engine, data)
    except wasmtime.WasmtimeError:
        return False
    return True


@pytest.mark.parametrize("proposal", sorted(_PROPOSALS))
def test_validate_and_smoke_read_features_alike(proposal: str) -> None:
    """validate left unlisted features at wasmtime's defaults (all on), smoke turned them off:
    modules validate accepted ended in compile_error.  Both now read [features] one way."""
    data = bytes(wasmtime.wat2wasm(_PROPOSALS[proposal]))
    extra = {"function_references": True} if proposal == "gc" else {}
    for features, expected in (
        ({"simd": True}, False),  # not listed: off (the registry default set)
        ({"simd": True, proposal: True, **extra}, True),
        ({"simd": True, proposal: False}, False),
    ):
        assert _validates(data, features) is expected, (proposal, features)
        assert _smoke_compiles(data, features) is expected, (proposal, features)


def test_default_features_are_the_mvp_plus_set() -> None:
    from registry_tool.manifest.config import DEFAULT_FEATURES, resolved_features

    on = {name for name, enabled in resolved_features({}).items() if enabled}
    assert on == set(DEFAULT_FEATURES) == {"simd", "bulk_memory", "reference_types", "multi_value"}
    assert resolved_features({"simd": False})["relaxed_simd"] is False


@pytest.mark.parametrize(
    "wat",
    [
        '(module (memory (export "m") 1 4 shared))',
        '(module (import "env" "memory" (memory 1 4 shared)))',
    ],
)
def test_a_shared_memory_is_refused_even_with_threads(wat: str) -> None:
    """wasmtime's store limits do not bound a shared memory: it grew past the sandbox's cap."""
    data = bytes(wasmtime.wat2wasm(wat))
    with pytest.raises(WasmInspectionError, match="shared memory"):
        inspect_wasm(data, {"threads": True})
    unshared = bytes(wasmtime.wat2wasm(wat.replace(" shared", "")))
    inspect_wasm(unshared, {"threads": True})


def test_a_listed_proposal_brings_the_unlisted_ones_it_needs() -> None:
    """``gc = true`` alone was a valid registry.toml before unlisted features took the default set."""
    from registry_tool.manifest.config import feature_conflict, resolved_features

    features = resolved_features({"gc": True})
    assert features["function_references"] and features["reference_types"]
    assert feature_conflict(features) is None
    assert feature_conflict(resolved_features({"gc": True, "function_references": False})) is not None


def test_the_client_reads_a_components_imports_whatever_proposals_it_uses() -> None:
    """A component using tail calls under a registry with tail_call = true passed the build, and the
    client (which has no registry.toml) refused it as malformed."""
    from types import SimpleNamespace

    from registry_tool.client.release_check import module_imports

    wat = """(component
      (import "ferrite:keys/get" (func $get (param "k" u32) (result u32)))
      (core module $m
        (func $f (export "f") (param i32) (result i32)
          (if (result i32) (local.get 0)
            (then (return_call $f (i32.sub (local.get 0) (i32.const 1))))
            (else (i32.const 0)))))
      (core instance $i (instantiate $m))
      (func (export "f") (param "x" u32) (result u32) (canon lift (core func $i "f"))))"""
    data = bytes(wasmtime.wat2wasm(wat))
    wasm_ref = SimpleNamespace(path="plugins/tc/1.0.0/tc.wasm")
    release = SimpleNamespace(name="tc", version="1.0.0", wasm=wasm_ref)
    assert module_imports(release, data) == (("ferrite:keys/get", ""),)  # type: ignore[arg-type]


def test_a_shared_memory_in_a_components_core_module_is_refused_too() -> None:
    core = '(module (memory 1 4 shared) (func (export "f") (result i32) (i32.const 1)))'
    component = f"""(component
      (core module $m {core[len("(module ") : -1]})
      (core instance $i (instantiate $m))
      (func (export "f") (result u32) (canon lift (core func $i "f"))))"""
    with pytest.raises(WasmInspectionError, match="shared memory"):
        inspect_wasm(bytes(wasmtime.wat2wasm(component)), {"threads": True})
    unshared = component.replace(" shared", "")
    inspect_wasm(bytes(wasmtime.wat2wasm(unshared)), {"threads": True})


@pytest.mark.parametrize(
    ("said", "fix"),
    [
        ("SIMD support is not enabled (at offset 0xb)", "simd = true"),
        ("bulk memory support is not enabled (at offset 0x22)", "bulk_memory = true"),
        ("exceptions proposal not enabled (at offset 0x14)", "exceptions = true"),
        ("relaxed SIMD support is not enabled (at offset 0x1c)", "relaxed_simd = true"),
        ("reference types support is not enabled (at offset 0xb)", "reference_types = true"),
        (
            "func type returns multiple values but the multi-value feature is not enabled",
            "multi_value = true",
        ),
        ("threads support is not enabled (at offset 0x1f)", "threads = true"),
        ("struct indexed types not supported without the gc feature (at offset 0xb)", "gc = true"),
        ("function references required for index reference types", "function_references = true"),
        ("wide arithmetic support is not enabled (at offset 0x25)", "wide_arithmetic = true"),
        (
            "legacy_exceptions feature required for try instruction (at offset 0x19)",
            "-wasm-use-legacy-eh=false",
        ),
        ("type mismatch: expected i32, found i64", "registry.toml [features] enables"),
    ],
)
def test_a_disabled_proposal_gets_its_switch_and_flag(said: str, fix: str) -> None:
    from registry_tool.manifest.wasm import feature_fix

    assert fix in feature_fix(said)


def test_a_component_is_compiled_in_a_bounded_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A component's types need a compile, and a hostile one (900,000 functions in 3.6 MB) took
    25 s and 4.9 GB in the process of validate, ci check, the build and the client: it is compiled
    in a process of its own, whose address space and time are capped."""
    from registry_tool.manifest import cache, config
    from registry_tool.manifest import wasm as wasm_mod
    from registry_tool.manifest.errors import ComponentProbeError

    data = wat("(component)")
    assert inspect_wasm(data).is_component
    monkeypatch.setattr(cache, "verdicts_on", lambda: False)  # compiled every time
    monkeypatch.setattr(wasm_mod, "_probe_address_space", lambda size: 32 * 1024**2)
    with pytest.raises((WasmInspectionError, ComponentProbeError)):  # 32 MiB: nothing compiles
        inspect_wasm(data)
    monkeypatch.undo()
    monkeypatch.setattr(cache, "verdicts_on", lambda: False)
    monkeypatch.setattr(config, "DEFAULT_COMPILE_TIME", 0.001)
    with pytest.raises(WasmInspectionError, match="did not compile the component within"):
        inspect_wasm(data)


@pytest.mark.parametrize(
    ("ended", "error", "said"),
    [
        (-6, "WasmInspectionError", "within 2048 MiB of address space (killed by signal 6)"),
        (1, "ComponentProbeError", "ValueError: not allowed to raise maximum limit"),
        (OSError(13, "Permission denied"), "ComponentProbeError", "cannot start a Python interpreter"),
    ],
)
def test_only_a_compile_killed_by_a_signal_is_blamed_on_the_component(
    monkeypatch: pytest.MonkeyPatch, ended: object, error: str, said: str
) -> None:
    """A probe that could not start or set its limits was "too large to compile" (exit 1)."""
    import subprocess

    from registry_tool.manifest import cache
    from registry_tool.manifest import wasm as wasm_mod

    def run(*args: object, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        if isinstance(ended, OSError):
            raise ended
        stderr = b"Traceback ...\nValueError: not allowed to raise maximum limit\n"
        return subprocess.CompletedProcess([], ended, b"", stderr)  # type: ignore[arg-type]

    monkeypatch.setattr(cache, "verdicts_on", lambda: False)
    monkeypatch.setattr(wasm_mod, "_probe_address_space", lambda size: 2048 * 1024**2)
    monkeypatch.setattr(subprocess, "run", run)
    with pytest.raises(Exception) as info:
        inspect_wasm(wat("(component)"))
    assert type(info.value).__name__ == error and said in str(info.value.what), info.value.what  # type: ignore[attr-defined]
    assert info.value.exit_code == (1 if error == "WasmInspectionError" else 2)  # type: ignore[attr-defined]


def test_a_gc_module_is_read_with_its_struct_array_and_sub_types() -> None:
    """With gc = true a one-struct module was refused: the type section reader knew only func types."""
    data = wat(
        """(module
      (rec (type $s (struct (field i32) (field (mut i8)))) (type $a (array (mut (ref null $s)))))
      (type $f (sub (func (param i32) (result i32))))
      (type $g (sub final $f (func (param i32) (result i32))))
      (func (export "add") (type $g) local.get 0)
      (func (export "mk") (result (ref $s)) i32.const 1 i32.const 2 struct.new $s))"""
    )
    info = inspect_wasm(data, {"gc": True, "function_references": True, "reference_types": True})
    signatures = {e.name: (e.params, e.results) for e in info.exports}
    assert signatures == {"add": (("i32",), ("i32",)), "mk": ((), ("ref",))}


def test_the_probe_keeps_a_hard_address_space_limit_the_caller_already_has(tmp_path: Path) -> None:
    """Under `ulimit -v 1900000` the probe could not set its 2 GiB cap and the component was refused."""
    import subprocess
    import sys

    component = tmp_path / "c.wasm"
    component.write_bytes(wat("(component)"))
    script = (
        "import resource, sys\n"
        "limit = 1900 * 1024**2\n"
        "resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
        "from registry_tool.manifest import cache\n"
        "cache.verdicts_on = lambda: False\n"
        "from registry_tool.manifest.wasm import inspect_wasm\n"
        f"print(inspect_wasm(open({str(component)!r}, 'rb').read()).is_component)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr[-2000:]


def test_the_component_probe_never_imports_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ci check and build run in the pull request's checkout: a registry_tool/ package there ran
    in the probe's process (`python -m` puts the working directory first), with the index key
    readable in the publish job, and its made-up answer was believed."""
    from registry_tool.manifest import cache

    marker = tmp_path / "ran"
    fake = tmp_path / "registry_tool" / "manifest"
    fake.mkdir(parents=True)
    (tmp_path / "registry_tool" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (fake / "__init__.py").write_text("")
    (fake / "_component_probe.py").write_text('print(\'{"imports": [], "exports": ["run"]}\')\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cache, "verdicts_on", lambda: False)
    info = inspect_wasm(b"\0asm\x0d\x00\x01\x00")  # an empty component: it exports nothing
    assert not marker.exists()
    assert info.is_component and info.exports == ()


def test_legacy_try_catch_is_told_so_while_exceptions_are_off() -> None:
    """clang 14's -fwasm-exceptions output was told to ask for exceptions = true, which then
    refuses it again (wasmtime runs only the exnref encoding)."""
    legacy = wat('(module (tag $t) (func (export "f") try throw $t catch $t end))')
    for exceptions in (False, True):
        with pytest.raises(WasmInspectionError) as err:
            inspect_wasm(legacy, {"exceptions": exceptions})
        assert "-wasm-use-legacy-eh=false" in str(err.value.fix)
    exnref = wat('(module (tag $t) (func (export "f") (throw $t)))')
    with pytest.raises(WasmInspectionError) as err:
        inspect_wasm(exnref, {"exceptions": False})
    assert "exceptions = true" in str(err.value.fix) and "legacy" not in str(err.value.fix)
