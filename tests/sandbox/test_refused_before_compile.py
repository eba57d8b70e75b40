"""A core module whose imports the link plan refuses is refused before it compiles.

Every test of such a module ends in link_error whatever the compile gives; a 19 MB module with one
refused import compiled for 20-35 s (and 570 MB) first, then every test was refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from registry_tool.sandbox import Case, Outcome
from registry_tool.sandbox.worker import _binary_imports, _link_plan, _module_imports, refused_before_compile

from .conftest import Runner, wat

REFUSED = """(module
  (import "ferrite:net" "fetch" (func (param i32) (result i32)))
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"""


def test_every_test_is_link_error_and_nothing_is_compiled(run: Runner, tmp_path: Path) -> None:
    cache = tmp_path / "modules"
    outcomes = run(wat(REFUSED), [Case("a", "add", [1, 2]), Case("b", "add", [3, 4])], cache_dir=cache)
    assert [o.outcome for o in outcomes] == [Outcome.link_error, Outcome.link_error]
    assert "ferrite:net.fetch" in outcomes[0].detail and "(fix: " in outcomes[0].detail
    assert not list(cache.rglob("*.cwasm")), "the module was compiled"


def test_the_bytes_give_the_link_plan_what_the_compiled_module_gives() -> None:
    """One plan, two readers: the refusal before the compile is the one the compiled module gets."""
    import wasmtime

    from registry_tool.sandbox.abis import DEFAULT_ABI_RULES, ImportPolicy

    wasm = wat(REFUSED)
    module = wasmtime.Module(wasmtime.Engine(), wasm)
    from_bytes, compiled = _binary_imports(wasm), _module_imports(module, wasm)
    assert from_bytes is not None
    assert [e[:4] for e in from_bytes] == [e[:4] for e in compiled]
    policy = ImportPolicy(DEFAULT_ABI_RULES["core"], [], [])
    refusal = refused_before_compile(wasm, "core", policy)
    try:
        _link_plan(compiled, "core", policy)
    except Exception as err:
        assert str(err) == refusal
    else:
        raise AssertionError("the compiled module's plan did not refuse")


def test_a_module_with_very_many_types_is_left_to_the_compiler() -> None:
    """Reading a million types in Python took 3 s before a 0.2 s compile: past the bound, not read."""
    many = "(module " + "(type (func)) " * 50_001 + '(import "ferrite:net" "fetch" (func)))'
    assert _binary_imports(wat(many)) is None
    assert _binary_imports(wat(REFUSED)) is not None


V128_IMPORT = """(module
  (import "ferrite:keys" "get" (func (param v128)))
  (memory (export "memory") 1)
  (func (export "next_visit") (param i32) (result i32) i32.const 0))"""


def test_a_v128_import_is_link_error_not_a_crashed_worker(run: Runner) -> None:
    """Asking wasmtime-py a v128 import type's kind aborted the worker (SIGABRT, "report this");
    validate passed the module.  Refused by the link plan, from the types the bytes give."""
    from registry_tool.sandbox.abis import ImportRule

    outcomes = run(
        wat(V128_IMPORT),
        [Case("a", "next_visit", [1], expect=[0])],
        permission_rules=[ImportRule("ferrite:keys", "*", "keys")],
        granted=["keys"],
    )
    assert outcomes[0].outcome is Outcome.link_error, outcomes[0].detail
    assert "(v128) -> ()" in outcomes[0].detail and "numbers only" in outcomes[0].detail


def test_the_compiled_modules_imports_are_read_from_its_bytes_not_wasmtime_types() -> None:
    """Past the pre-check's bound the compiled module's plan decides: its types come from the bytes
    too (a subprocess: the old reading aborted the process)."""
    import subprocess
    import sys

    script = f"""
import wasmtime
from registry_tool.sandbox.worker import _module_imports
wasm = wasmtime.wat2wasm({V128_IMPORT!r})
entries = _module_imports(wasmtime.Module(wasmtime.Engine(), wasm), wasm)
print([e[:4] for e in entries])
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "('ferrite:keys', 'get', 'func', (('v128',), ()))" in proc.stdout


def test_a_type_of_very_many_value_types_is_left_to_the_compiler() -> None:
    """One function type of 30 million parameters (wasmtime refuses it in milliseconds) was read for
    20 s before the compile: the type section's size bounds what is read."""

    from tests.manifest.test_binary_strict import HEADER, leb, section

    n = 1_000_000
    wasm = HEADER + section(1, leb(1) + b"\x60" + leb(n) + b"\x7f" * n + b"\x00")
    assert _binary_imports(wasm) is None


@pytest.mark.parametrize("abi", ["core", "extism"])
def test_a_test_with_no_call_says_so_and_how_to_fix_it(run: Runner, abi: str) -> None:
    """It said "export '' is absent" with the fix "export the function the test calls"."""
    from registry_tool.sandbox.abis import NO_CALL
    from registry_tool.sandbox.harness import _fix_for

    module = '(module (memory (export "memory") 1) (func (export "f") (result i32) i32.const 0))'
    outcome = run(wat(module), [Case("tests[0]", None)], abi=abi)[0]
    assert outcome.outcome is Outcome.missing_export and outcome.detail == NO_CALL, outcome.detail
    assert 'set call = "<export>"' in (_fix_for(outcome) or "")
