"""ABI adapters: core (typed numbers, bytes via alloc), wasi-command (argv/stdin/exit), imports policy,
component; with real toolchains (clang, Go) where installed."""

from __future__ import annotations

import pytest

from registry_tool.sandbox import Case, ImportRule, Outcome

from .conftest import WASI_C, Runner, wat

ARITH = """(module
  (func (export "add32") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "add64") (param i64 i64) (result i64) (i64.add (local.get 0) (local.get 1)))
  (func (export "half32") (param f32) (result f32) (f32.div (local.get 0) (f32.const 2)))
  (func (export "half64") (param f64) (result f64) (f64.div (local.get 0) (f64.const 2)))
  (func (export "nan") (result f64) (f64.div (f64.const 0) (f64.const 0)))
  (func (export "pair") (result i32 i64) (i32.const 7) (i64.const -1))
  (func (export "vec") (result v128) (v128.const i32x4 0 0 0 0))
  (global (export "g") i32 (i32.const 1)))"""

BYTES = """(module
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  ;; sum of the input bytes
  (func (export "sum") (param $p i32) (param $n i32) (result i32) (local $s i32)
    (block (loop (br_if 1 (i32.eqz (local.get $n)))
      (local.set $s (i32.add (local.get $s) (i32.load8_u (local.get $p))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br 0)))
    (local.get $s)))"""


@pytest.mark.parametrize(
    ("call", "args", "expect"),
    [
        ("add32", [2, 3], [5]),
        ("add32", [2**31 - 1, 1], [-(2**31)]),
        ("add64", [2**40, 2**40], [2**41]),
        ("add64", [2.0, 3], [5]),  # an integral float is accepted for an integer parameter
        ("half32", [3], [1.5]),
        ("half64", [1.0], [0.5]),
        ("nan", [], [float("nan")]),
        ("pair", [], [7, -1]),
    ],
)
def test_core_typed_arguments_and_results(
    run: Runner, call: str, args: list[float], expect: list[float]
) -> None:
    [result] = run(wat(ARITH), Case(call, call, args, expect_kind="values", expect=expect))
    assert result.outcome is Outcome.passed, result.detail
    assert result.fuel_consumed is not None and result.fuel_consumed >= 0


@pytest.mark.parametrize(
    ("case", "outcome", "detail"),
    [
        (Case("w", "add32", [2, 3], expect_kind="values", expect=[6]), Outcome.wrong_output, "expected [6]"),
        (Case("t", "add32", [2, 3], expect_kind="text", expect="5"), Outcome.passed, ""),
        (Case("r", "pair", [], expect_kind="regex", expect=r"^7 -1$"), Outcome.passed, ""),
        (Case("r2", "pair", [], expect_kind="regex", expect=r"^8"), Outcome.wrong_output, "does not match"),
        (Case("arity", "add32", [1]), Outcome.missing_export, "takes 2 parameters"),
        (Case("frac", "add32", [1.5, 1]), Outcome.missing_export, "not an integer"),
        (Case("absent", "nope"), Outcome.missing_export, "'nope' is absent"),
        (Case("global", "g"), Outcome.missing_export, "not a function"),
        (Case("v128", "vec"), Outcome.missing_export, "uses v128"),
        (Case("no-call", None), Outcome.missing_export, "names no export to call"),
    ],
)
def test_core_mismatches_are_classified(run: Runner, case: Case, outcome: Outcome, detail: str) -> None:
    [result] = run(wat(ARITH), case)
    assert result.outcome is outcome
    assert detail in result.detail


def test_core_bytes_input_goes_through_alloc(run: Runner) -> None:
    [result] = run(wat(BYTES), Case("sum", "sum", input=b"\x01\x02\xff", expect_kind="values", expect=[258]))
    assert result.outcome is Outcome.passed, result.detail
    assert result.peak_memory_bytes == 65536


def test_core_bytes_input_needs_alloc_and_memory(run: Runner) -> None:
    [result] = run(wat(ARITH), Case("x", "add32", input=b"abc"))
    assert result.outcome is Outcome.missing_export
    assert "alloc" in result.detail


@pytest.mark.parametrize(
    "signature", ["(param v128) (result i32)", "(param i32) (result v128)", "(result i32)"]
)
def test_core_bytes_input_checks_allocs_signature_first(run: Runner, signature: str) -> None:
    """A v128 parameter aborted the worker inside wasmtime-py (worker_crashed, "report this")."""
    body = "v128.const i64x2 0 0" if "result v128" in signature else "i32.const 64"
    module = f"""(module (memory (export "memory") 1)
      (func (export "alloc") {signature} {body})
      (func (export "len") (param i32 i32) (result i32) local.get 1))"""
    [result] = run(wat(module), Case("x", "len", input=b"abc", expect_kind="values", expect=[3]))
    assert result.outcome is Outcome.missing_export, result.detail
    assert "'alloc' must take the length and return the pointer" in result.detail


# --------------------------------------------------------------------------- imports and permissions

KEYS_RULE = ImportRule("ferrite:keys", "*", "keys")


def test_permission_granted_import_gets_a_deterministic_stub(run: Runner) -> None:
    module = wat((WASI_C / "keys.wat").read_text())
    cases = [Case(n, "bump", input=b"visits", expect_kind="values", expect=[1]) for n in ("one", "two")]
    results = run(module, cases, permission_rules=[KEYS_RULE], granted=["keys"])
    # Each test starts from an empty store: the same answer twice.
    assert [r.outcome for r in results] == [Outcome.passed, Outcome.passed], results[0].detail


def test_a_failed_test_names_the_zero_stubs_it_called(run: Runner) -> None:
    """A zero where the plugin expected real data (a Rust PDK decoding a u64) is a likely cause."""
    module = wat(
        '(module (import "acme:geo" "lookup" (func $lookup (result i64)))'
        ' (func (export "f") (result i32) (if (i64.eqz (call $lookup)) (then unreachable)) (i32.const 1))'
        ' (func (export "g") (result i32) (i32.const 1)))'
    )
    rule = ImportRule("acme:geo", "*", "geo")
    failed, passed = run(
        module, [Case("calls it", "f", expect=[1]), Case("does not", "g", expect=[1])],
        permission_rules=[rule], granted=["geo"],
    )  # fmt: skip
    assert failed.outcome is Outcome.trap
    assert "host functions the smoke run stubs with zeros: acme:geo.lookup" in failed.detail
    assert passed.outcome is Outcome.passed and "stubs" not in passed.detail


def test_permission_gated_import_without_the_permission_fails_to_link(run: Runner) -> None:
    module = wat((WASI_C / "keys.wat").read_text())
    [result] = run(module, Case("x", "bump", input=b"k"), permission_rules=[KEYS_RULE], granted=[])
    assert result.outcome is Outcome.link_error
    assert "ferrite:keys.get" in result.detail


@pytest.mark.parametrize(
    ("module", "abi", "named"),
    [
        ('(module (import "env" "abort" (func)) (func (export "f")))', "core", "env.abort"),
        (
            '(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))'
            ' (func (export "f")))',
            "core",
            "wasi_snapshot_preview1.fd_write",
        ),
        ('(module (import "env" "mem" (memory 1)) (func (export "_start")))', "wasi-command", "env.mem"),
        (
            '(module (import "extism:host/user" "hello" (func))'
            ' (func (export "f") (result i32) (i32.const 0)))',
            "extism",
            "extism:host/user.hello",
        ),
    ],
)
def test_imports_outside_abi_and_permissions_are_link_errors(
    run: Runner, module: str, abi: str, named: str
) -> None:
    [result] = run(wat(module), Case("x", "f" if abi != "wasi-command" else None), abi=abi)
    assert result.outcome is Outcome.link_error
    assert named in result.detail


def test_a_permission_can_gate_part_of_wasi(run: Runner) -> None:
    module = wat(
        '(module (import "wasi_snapshot_preview1" "sock_accept" (func (param i32 i32 i32) (result i32)))'
        ' (memory (export "memory") 1) (func (export "_start")))'
    )
    rule = ImportRule("wasi_snapshot_preview1", "sock_*", "network")
    [denied] = run(module, Case("x"), abi="wasi-command", permission_rules=[rule])
    [granted] = run(module, Case("x"), abi="wasi-command", permission_rules=[rule], granted=["network"])
    assert denied.outcome is Outcome.link_error
    assert granted.outcome is Outcome.passed, granted.detail


def test_unknown_wasi_function_is_a_link_error(run: Runner) -> None:
    module = wat(
        '(module (import "wasi_snapshot_preview1" "no_such_call" (func)) (memory (export "memory") 1)'
        ' (func (export "_start")))'
    )
    [result] = run(module, Case("x"), abi="wasi-command")
    assert result.outcome is Outcome.link_error
    assert "no_such_call" in result.detail


# --------------------------------------------------------------------------- wasi-command with clang / Go


def test_wasi_sandbox_withholds_files_env_and_args(run: Runner, build_c) -> None:
    [result] = run(build_c("probe"), Case("probe", expect_kind="none"), abi="wasi-command")
    assert result.outcome is Outcome.passed, result.detail
    assert "open /etc/passwd: denied" in result.stdout
    assert "create secret.txt: denied" in result.stdout
    assert "HOME: (unset)" in result.stdout
    assert "argc: 1\nargv[0]: plugin.wasm" in result.stdout


def test_wasi_gets_exactly_the_declared_argv_and_env(run: Runner, build_c) -> None:
    case = Case(
        "probe",
        argv=["prog", "--flag"],
        env={"GIVEN": "yes"},
        expect_kind="regex",
        expect=r"GIVEN: yes\nargc: 2\nargv\[0\]: prog\nargv\[1\]: --flag\n$",
    )
    [result] = run(build_c("probe"), case, abi="wasi-command")
    assert result.outcome is Outcome.passed, result.detail


@pytest.mark.parametrize(
    ("case", "outcome"),
    [
        (Case("upper", input=b"hello\n", expect_kind="text", expect="HELLO\n"), Outcome.passed),
        (Case("bytes", input=b"a\xffb", expect_kind="bytes", expect=b"A\xffB"), Outcome.passed),
        (Case("wrong", input=b"hello", expect_kind="text", expect="hello"), Outcome.wrong_output),
        (Case("exit", argv=["u", "4"], input=b"", exit_code=4), Outcome.passed),
        (Case("exit-bad", argv=["u", "4"], input=b""), Outcome.exit_code),
        (Case("no-stdin", expect_kind="text", expect=""), Outcome.passed),
    ],
)
def test_c_wasi_command(run: Runner, build_c, case: Case, outcome: Outcome) -> None:
    [result] = run(build_c("upper"), case, abi="wasi-command")
    assert result.outcome is outcome, result.detail


def test_escape_sequences_in_output_are_neutralised(run: Runner, build_c) -> None:
    hostile = b"\x1b[2J\x1b]0;pwned\x07\x1b]8;;http://x\x1b\\link\x9b31m\r::error::x\n"
    [result] = run(build_c("upper"), Case("esc", input=hostile), abi="wasi-command")
    assert result.outcome is Outcome.passed
    assert not any(ch in result.stdout for ch in "\x1b\x07\r\x9b")
    assert "\\x1b[2J" in result.stdout  # shown, not interpreted
    assert "\n::" not in "\n" + result.stdout


@pytest.mark.slow
def test_go_wasip1_command(run: Runner, go_command: bytes) -> None:
    ok, failing = run(
        go_command,
        [
            Case("go", input=b"gopher", argv=["upper", "x"], expect_kind="text", expect="GOPHER|2\n"),
            Case("go-exit", input=b"fail", expect_kind="regex", expect="FAIL", exit_code=3),
        ],
        abi="wasi-command",
        fuel=500_000_000,
        memory=64 * 1024**2,
        wall_time=5,
        compile_timeout=180,  # ~4 s alone, much more when the suite loads both cores
    )
    assert ok.outcome is Outcome.passed, ok.detail
    assert failing.outcome is Outcome.passed, failing.detail


# --------------------------------------------------------------------------- component

RUN_COMPONENT = """(component
  (core module $m
    (func (export "run") (result i32) (i32.const {rc}))
    (func (export "spin") (loop br 0)))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $inst (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $inst)))"""


@pytest.mark.parametrize(("rc", "outcome"), [(0, Outcome.passed), (1, Outcome.exit_code)])
def test_component_runs_wasi_cli_run(run: Runner, rc: int, outcome: Outcome) -> None:
    [result] = run(wat(RUN_COMPONENT.format(rc=rc)), Case("run"), abi="component", component=True)
    assert result.outcome is outcome, result.detail
    assert result.fuel_consumed is not None and result.fuel_consumed > 0


def test_component_other_exports_are_not_supported_yet(run: Runner) -> None:
    [result] = run(wat(RUN_COMPONENT.format(rc=0)), Case("x", "greet"), abi="component", component=True)
    assert result.outcome is Outcome.missing_export
    assert "not supported yet" in result.detail


_IMPORTING_COMPONENT = """(component
  (import "{name}" (instance (export "{func}" (func (result u64)))))
  (core module $m (func (export "run") (result i32) (i32.const 0)))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $inst (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $inst)))"""


@pytest.mark.parametrize(
    ("name", "func", "outcome"),
    [
        ("wasi:random/random@0.2.0", "get-random-u64", Outcome.passed),
        ("wasi:random/random@0.2.3", "get-random-u64", Outcome.passed),  # any 0.2.x links
        ("wasi:keyvalue/atomics@0.2.0-draft", "x", Outcome.link_error),  # not provided
        ("wasi:random/random@0.2.0", "no-such-function", Outcome.link_error),  # provided, wrong shape
    ],
)
def test_component_wasi_imports_link_or_are_link_errors(
    run: Runner, name: str, func: str, outcome: Outcome
) -> None:
    module = wat(_IMPORTING_COMPONENT.format(name=name, func=func))
    [result] = run(module, Case("run"), abi="component", component=True)
    assert result.outcome is outcome, result.detail


def test_component_without_run_export(run: Runner) -> None:
    [result] = run(wat("(component)"), Case("x"), abi="component", component=True)
    assert result.outcome is Outcome.missing_export
    assert "wasi:cli/run" in result.detail


def test_core_module_given_as_component_is_a_compile_error(run: Runner) -> None:
    [result] = run(wat(ARITH), Case("x"), abi="component", component=True)
    assert result.outcome is Outcome.compile_error


def test_a_component_with_more_data_than_the_output_cap_runs(run: Runner) -> None:
    """2 MiB of initialised data against a 64 KiB output cap: wasmtime wrote the data's memory image
    to a memfd at the test's instantiation, under the cap, and every test trapped with EFBIG
    (componentize-py components hold tens of MB)."""
    data = '(data (i32.const 65536) "' + "\\5a" * (2 * 1024 * 1024) + '")'
    text = (WASI_C / "hello_component.wat").read_text()
    libc = '(core module $libc (memory (export "memory") 1))'
    assert libc in text
    text = text.replace(libc, f'(core module $libc (memory (export "memory") 40) {data})')
    text = text.replace('(import "libc" "memory" (memory 1))', '(import "libc" "memory" (memory 40))')
    [result] = run(
        wat(text),
        Case("hello", expect_kind="text", expect="hello from a component\n"),
        abi="component",
        component=True,
        output=64 * 1024,
    )
    assert result.outcome is Outcome.passed, result.detail


def test_component_output_goes_through_wasi_p2_stdout(run: Runner) -> None:
    module = wat((WASI_C / "hello_component.wat").read_text())
    ok, wrong = run(
        module,
        [
            Case("hello", expect_kind="text", expect="hello from a component\n"),
            Case("wrong", expect_kind="text", expect="bye\n"),
        ],
        abi="component",
        component=True,
    )
    assert ok.outcome is Outcome.passed, ok.detail
    assert wrong.outcome is Outcome.wrong_output


def test_component_import_outside_wasi_is_refused(run: Runner) -> None:
    module = wat('(component (import "ferrite:keys/store" (instance)))')
    [result] = run(module, Case("x"), abi="component", component=True)
    assert result.outcome is Outcome.link_error
    assert "ferrite:keys/store" in result.detail
