"""End to end: plugin.toml + registry.toml -> smoke_paths -> report, and the `smoke` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry_tool.manifest import load_manifest, load_registry_config
from registry_tool.sandbox import Outcome, smoke_paths, smoke_release

from .conftest import OUTCOME_FIELDS, wat

REPO = Path(__file__).resolve().parents[2]
INDEX = REPO / "index"

#: The wall-clock limit of the spinning tests: generous, so fuel always ends them first.
WALL = "600s"
SPIN = '(module (func (export "spin") (loop br 0)) (func (export "one") (result i32) (i32.const 1)))'


def _release(index: Path, name: str, wasm: bytes, body: str, abi: str = "core") -> Path:
    release = index / "plugins" / name / "1.0.0"
    release.mkdir(parents=True)
    (release / f"{name}.wasm").write_bytes(wasm)
    (release / "plugin.toml").write_text(
        f"""[plugin]
name = "{name}"
version = "1.0.0"
description = "test plugin"
authors = ["tests"]
license = "MIT"
abi = "{abi}"
min_host_version = "0.2.0"

[artifact]
file = "{name}.wasm"

[exports]
functions = ["spin", "one"]

{body}"""
    )
    return release


@pytest.fixture
def index(tmp_path: Path) -> Path:
    root = tmp_path / "index"
    root.mkdir()
    # Fuel, not the wall clock, must end the spinning tests on any machine: a wall-clock limit far
    # beyond the time 1e9 fuel takes keeps the epoch deadline out of the race.
    config = (INDEX / "registry.toml").read_text()
    assert 'wall_time = "10s"' in config
    (root / "registry.toml").write_text(config.replace('wall_time = "10s"', f'wall_time = "{WALL}"'))
    _release(
        root,
        "spinner",
        wat(SPIN),
        f"""[limits]
fuel = 1_000_000
wall_time = "{WALL}"

[[tests]]
name = "one is one"
call = "one"
expect = [1]

[[tests]]
name = "spin runs out of fuel, as declared"
call = "spin"
expect_trap = "out_of_fuel"
""",
    )
    return root


def _cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "registry_tool", "smoke", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )


def test_smoke_release_applies_manifest_limits_and_expect_trap(index: Path) -> None:
    config = load_registry_config(index)
    manifest = load_manifest(index / "plugins" / "spinner" / "1.0.0" / "plugin.toml", config)
    one, spin = smoke_release(manifest, config, cache=False)
    assert one.outcome is Outcome.passed
    assert spin.outcome is Outcome.out_of_fuel and spin.passed
    assert spin.fuel_consumed == 1_000_000  # the manifest's fuel, not the registry default


@pytest.mark.parametrize(
    ("outcome", "detail", "rule", "fix"),
    [
        # Expected out_of_fuel, returned normally: a catalogued rule, and a fix (was "smoke-passed", none).
        (Outcome.passed, "", "smoke-unexpected-pass", "remove expect_trap"),
        # Expected out_of_fuel, ended on a cause with a known fix: that fix (was none).
        (
            Outcome.link_error,
            "the module imports ferrite:net.get but the manifest does not declare the 'network' permission",
            "smoke-link-error",
            "network = true",
        ),
        (Outcome.trap, "wasm trap: unreachable", "smoke-trap", "the test expects out_of_fuel"),
    ],
)
def test_a_test_expecting_a_failure_gets_a_catalogued_rule_and_a_fix(
    index: Path, outcome: Outcome, detail: str, rule: str, fix: str
) -> None:
    from registry_tool.rules import RULES
    from registry_tool.sandbox.harness import release_result
    from registry_tool.sandbox.outcome import TestOutcome

    config = load_registry_config(index)
    manifest = load_manifest(index / "plugins" / "spinner" / "1.0.0" / "plugin.toml", config)
    outcomes = [
        TestOutcome("one is one", Outcome.passed),
        TestOutcome("spin", outcome, expected="out_of_fuel", detail=detail),
    ]
    [finding] = release_result(manifest, outcomes).findings
    assert finding.rule == rule and rule in RULES
    assert fix in (finding.fix or ""), finding.fix


def test_a_module_refused_before_any_call_is_one_finding(index: Path) -> None:
    """A link error was repeated once per test (16 identical findings for one import)."""
    from dataclasses import replace

    from registry_tool.sandbox.harness import release_result
    from registry_tool.sandbox.outcome import TestOutcome

    config = load_registry_config(index)
    manifest = load_manifest(index / "plugins" / "spinner" / "1.0.0" / "plugin.toml", config)
    manifest = replace(manifest, tests=[manifest.tests[0]] * 4)
    denied = "the module imports env.http_request, which needs the 'network' permission"
    outcomes = [TestOutcome(f"t{i}", Outcome.link_error, detail=denied) for i in range(3)]
    outcomes.append(TestOutcome("t3", Outcome.trap, detail="wasm trap: unreachable"))
    findings = release_result(manifest, outcomes).findings
    assert [f.rule for f in findings] == ["smoke-link-error", "smoke-trap"]
    assert findings[0].message.startswith("test 't0' ended in link_error (so did 2 other tests): the module")


def test_manifest_limits_are_capped_by_the_registry_maximum(index: Path) -> None:
    release = _release(
        index,
        "greedy",
        wat(SPIN),
        f"""[limits]
fuel = 999_999_999_999
wall_time = "{WALL}"

[[tests]]
call = "spin"
expect_trap = "out_of_fuel"
""",
    )
    config = load_registry_config(index)
    [spin] = smoke_release(load_manifest(release / "plugin.toml", config), config, cache=False)
    assert spin.fuel_consumed == 1_000_000_000  # limits.max.fuel of the sample registry


def test_failures_become_findings_with_the_test_line(index: Path) -> None:
    _release(
        index,
        "broken",
        wat(SPIN),
        """[[tests]]
name = "wrong"
call = "one"
expect = [2]

[[tests]]
name = "missing"
call = "nope"
""",
    )
    report = smoke_paths([index], jobs=2, cache=False)
    by_subject = {r.subject: r for r in report.results}
    assert not report.ok and report.exit_code == 1
    broken = by_subject["broken@1.0.0"]
    rules = [f.rule for f in broken.findings]
    assert rules == ["smoke-wrong-output", "smoke-missing-export"]
    assert broken.findings[0].line is not None and broken.findings[0].field == "tests[0]"
    assert by_subject["spinner@1.0.0"].ok


def test_json_format_is_the_documented_shape(index: Path, tmp_path: Path) -> None:
    proc = _cli(str(index), "--format", "json", "--no-cache")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    [result] = doc["results"]
    assert result["data"]["plugin"] == "spinner" and result["data"]["abi"] == "core"
    tests = result["data"]["tests"]
    assert [t["outcome"] for t in tests] == ["passed", "out_of_fuel"]
    assert set(tests[0]) == set(OUTCOME_FIELDS)


def test_github_format_annotates_failures(index: Path, tmp_path: Path) -> None:
    _release(index, "broken", wat(SPIN), '[[tests]]\ncall = "one"\nexpect = [2]\n')
    summary = tmp_path / "summary.md"
    proc = _cli(str(index), "--format", "github", "--no-cache", env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert proc.returncode == 1
    assert "::error file=" in proc.stdout and "smoke-wrong-output" in proc.stdout
    assert "| Tests |" in summary.read_text()


def test_cli_uses_the_cache_dir_from_the_environment(index: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _cli(str(index), env={"REGISTRY_TOOL_CACHE_DIR": str(cache)}).returncode == 0
    assert len(list(cache.glob("*.cwasm"))) == 1
    assert (
        _cli(str(index), "--no-cache", env={"REGISTRY_TOOL_CACHE_DIR": str(tmp_path / "c2")}).returncode == 0
    )
    assert not (tmp_path / "c2").exists()


@pytest.mark.parametrize("args", [["/no/such/dir"], ["--jobs", "0", "index"], []])
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert _cli(*args).returncode == 2


def test_bad_expect_trap_is_reported_not_raised(index: Path) -> None:
    _release(index, "typo", wat(SPIN), '[[tests]]\ncall = "spin"\nexpect_trap = "out_of_gas"\n')
    report = smoke_paths([index / "plugins" / "typo"], cache=False)
    [result] = report.results
    assert not result.ok
    assert "out_of_gas" in result.findings[0].message


@pytest.mark.slow
def test_sample_index_passes() -> None:
    if not (INDEX / "plugins").is_dir():
        pytest.skip("the sample index is not there yet")
    # A cold compile cache, as on every CI runner: the Go modules of the corpus compile in seconds each.
    proc = _cli(str(INDEX), "--jobs", "2", "--no-cache", "--format", "json", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] and doc["summary"]["subjects"] >= 5
    assert all(t["passed"] for r in doc["results"] for t in r["data"]["tests"])


def test_release_outside_any_index_is_a_usage_error(tmp_path: Path) -> None:
    _release(tmp_path, "loose", wat(SPIN), '[[tests]]\ncall = "one"\n')
    proc = _cli(str(tmp_path / "plugins" / "loose"))
    assert proc.returncode == 2
    assert "registry.toml" in proc.stderr


def test_feature_set_wasmtime_cannot_provide_is_refused(index: Path) -> None:
    config = index / "registry.toml"
    text = config.read_text().replace("reference_types = true", "reference_types = false")
    config.write_text(text.replace("[features]", "[features]\nfunction_references = true", 1))
    proc = _cli(str(index), "--no-cache")
    assert proc.returncode == 1  # registry.toml is refused (as validate refuses it), nothing runs
    assert "'function_references' requires 'reference_types'" in proc.stdout


def test_a_registry_without_reference_types_smoke_runs_what_validate_accepts(index: Path) -> None:
    """validate accepted reference_types = false; smoke refused to run anything under it."""
    config = index / "registry.toml"
    config.write_text(config.read_text().replace("reference_types = true", "reference_types = false"))
    load_registry_config(index)  # validate's reading: no finding
    proc = _cli(str(index), "--no-cache")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr


def test_module_over_the_registry_size_cap_is_not_run(index: Path) -> None:
    config = index / "registry.toml"
    config.write_text(config.read_text().replace('module_size = "32MiB"', "module_size = 10"))
    report = smoke_paths([index], cache=False)
    [result] = report.results
    assert [f.rule for f in result.findings] == ["smoke-setup"]
    assert "module_size" in result.findings[0].message


def test_schema_expect_trap_classes_are_the_outcome_classes() -> None:
    """The manifest schema and the harness agree on every class a test may expect."""
    import json

    from registry_tool.sandbox.outcome import Outcome

    schema = json.loads((Path(__file__).parents[2] / "schemas" / "plugin.schema.json").read_text())
    enum = schema["definitions"]["test"]["properties"]["expect_trap"]["enum"]
    assert set(enum) == {o.value for o in Outcome} - {"passed"}


def _writes_then_traps(log: bytes) -> str:
    """A WASI command (WAT) that writes ``log`` to stderr in one fd_write, then traps."""

    def escaped(data: bytes) -> str:
        return "".join(f"\\{b:02x}" for b in data)

    iovec = (16).to_bytes(4, "little") + len(log).to_bytes(4, "little")
    return f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{escaped(iovec)}")
  (data (i32.const 16) "{escaped(log)}")
  (func (export "_start")
    (drop (call $w (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8))) unreachable))"""


STDERR_THEN_TRAP = _writes_then_traps(b"runtime: call _initialize first\n::error::not a command\nlast\n")


def _command_release(index: Path, name: str, module: str) -> Path:
    """A wasi-command release of ``module`` (WAT) with one test, ``traps``."""
    release = index / "plugins" / name / "1.0.0"
    release.mkdir(parents=True)
    (release / f"{name}.wasm").write_bytes(wat(module))
    (release / "plugin.toml").write_text(
        f'[plugin]\nname = "{name}"\nversion = "1.0.0"\ndescription = "d"\nauthors = ["t"]\nlicense = "MIT"\n'
        f'abi = "wasi-command"\nmin_host_version = "0.2.0"\n[artifact]\nfile = "{name}.wasm"\n'
        '[exports]\nfunctions = ["_start"]\n[[tests]]\nname = "traps"\n'
    )
    return release


def test_failing_tests_show_the_module_output_in_text_and_github(index: Path) -> None:
    release = _command_release(index, "loud", STDERR_THEN_TRAP)
    text = _cli(str(release), "--no-cache")
    assert text.returncode == 1
    assert "  stderr:" in text.stdout and "| runtime: call _initialize first" in text.stdout
    github = _cli(str(release), "--no-cache", "--format", "github")
    lines = github.stdout.splitlines()
    assert any("| runtime: call _initialize first" in line for line in lines)
    annotation = next(line for line in lines if line.startswith("::error "))
    assert "(stderr: last)" in annotation  # the last line the module wrote, in the annotation too
    # The module's "::error::" line is shown, never read as a workflow command.
    assert not any(line.lstrip().startswith("::error::not") for line in lines)
    assert any("not a command" in line for line in lines)


def test_a_long_log_keeps_its_last_lines(index: Path) -> None:
    """The head of a long stderr hid the line saying why: 100 debug lines, then FATAL."""
    log = "".join(f"debug: step {i} of the warm-up, all fine so far\n" for i in range(100))
    log += "FATAL: config key 'mode' missing\n"
    module = _writes_then_traps(log.encode())
    release = _command_release(index, "chatty", module)
    assert len(log) > 2 * 2000  # beyond what a report shows
    github = _cli(str(release), "--no-cache", "--format", "github")
    annotation = next(line for line in github.stdout.splitlines() if line.startswith("::error "))
    assert "(stderr: FATAL: config key 'mode' missing)" in annotation, annotation
    text = _cli(str(release), "--no-cache")
    assert "| FATAL: config key 'mode' missing" in text.stdout
    assert "| debug: step 99 of the warm-up" in text.stdout


def test_compile_time_comes_from_the_registry_and_the_cli_overrides_it(index: Path) -> None:
    from registry_tool.sandbox.harness import limits_for

    text = (index / "registry.toml").read_text()
    (index / "registry.toml").write_text(text.replace('compile_time = "300s"', 'compile_time = "2m"'))
    config = load_registry_config(index)
    manifest = load_manifest(index / "plugins" / "spinner" / "1.0.0", config)
    assert limits_for(manifest, config).compile_timeout == 120
    assert limits_for(manifest, config, compile_timeout=7).compile_timeout == 7
    (index / "registry.toml").write_text(text.replace('compile_time = "300s"\n', ""))
    assert limits_for(manifest, load_registry_config(index)).compile_timeout == 300
    assert _cli(str(index), "--no-cache", "--compile-timeout", "0").returncode == 2


def test_the_worker_has_room_to_compile_a_big_module_under_a_small_memory_limit(index: Path) -> None:
    """Cranelift's peak grows with the module: a 112 MB Go build under memory = 16MiB ran out of
    address space while compiling, and was told to raise its memory limit."""
    from dataclasses import replace

    from registry_tool.sandbox.harness import limits_for

    config = load_registry_config(index)
    manifest = load_manifest(index / "plugins" / "spinner" / "1.0.0", config)
    tiny = replace(manifest, artifact=replace(manifest.artifact, size=1024))
    big = replace(manifest, artifact=replace(manifest.artifact, size=112 * 1024**2))
    grown = limits_for(big, config).address_space - limits_for(tiny, config).address_space
    assert grown >= 2 * 1024**3  # ~24 bytes of address space per byte of module


def test_a_dead_workers_last_words_are_one_line() -> None:
    from types import SimpleNamespace

    from registry_tool.sandbox.harness import _death
    from registry_tool.sandbox.outcome import Outcome

    worker = SimpleNamespace(proc=SimpleNamespace(returncode=-6))
    tail = "memory allocation of 67108864 bytes failed\nnote: run with `RUST_BACKTRACE=1`\n"
    outcome, detail = _death(worker, tail)  # type: ignore[arg-type]
    assert outcome is Outcome.memory_limit and "\n" not in detail
    assert "bytes failed | note: run with" in detail


def test_running_out_of_room_while_compiling_is_not_told_to_raise_the_memory_limit() -> None:
    """900,000 functions ran the worker out of address space while compiling: the fix said to raise
    [limits].memory, which the compiler's room does not depend on."""
    from registry_tool.sandbox.harness import _fix_for
    from registry_tool.sandbox.outcome import Outcome, TestOutcome

    compiling = TestOutcome("t", Outcome.memory_limit, detail="while compiling: the worker ran out of memory")
    assert "too large to compile" in str(_fix_for(compiling))
    running = TestOutcome("t", Outcome.memory_limit, detail="memory.grow past the limit")
    assert "[limits].memory" in str(_fix_for(running))


def test_an_implementation_limit_is_not_told_to_switch_a_feature_on() -> None:
    from registry_tool.sandbox.harness import _fix_for
    from registry_tool.sandbox.outcome import Outcome, TestOutcome

    detail = (
        "failed to compile: Unsupported feature: `br_table` has 1000000 targets, which exceeds the "
        "implementation limit of 65520"
    )
    fix = str(_fix_for(TestOutcome("t", Outcome.compile_error, detail=detail)))
    assert "limit of wasmtime's compiler" in fix and "[features]" not in fix


def test_a_known_cause_gets_its_own_fix_and_the_line_that_explains_it() -> None:
    from registry_tool.sandbox.harness import _fix_for, _last_words
    from registry_tool.sandbox.outcome import Outcome, TestOutcome

    # What Go's runtime writes when an export of a command build is called before _start.
    go = TestOutcome(
        "t",
        Outcome.trap,
        stderr="wasmexport function called before runtime initialization\n\tcall _start first\n",
        detail="trap: wasm `unreachable` instruction executed",
    )
    assert "-buildmode=c-shared" in str(_fix_for(go))
    assert _last_words(go) == (
        " (stderr: wasmexport function called before runtime initialization / call _start first)"
    )
    # The panic's line, not the stack trace after it nor the host log appended after that.
    for stderr, said in [
        ("panic: assignment to entry in nil map\n\ngoroutine 1 [running]:\nmain.f()\n\t/m.go:41 +0x6c\n"
         "[info] req headers 4\n", "panic: assignment to entry in nil map"),
        ("fatal error: all goroutines are asleep - deadlock!\n\ngoroutine 1 [chan receive]:\nmain.main()\n"
         "\t/m.go:9 +0x2\n", "fatal error: all goroutines are asleep - deadlock!"),
        ("thread 'main' panicked at src/lib.rs:5:9:\nboom\nnote: run with `RUST_BACKTRACE=1`\n",
         "thread 'main' panicked at src/lib.rs:5:9: boom"),
    ]:  # fmt: skip
        assert _last_words(TestOutcome("t", Outcome.trap, stderr=stderr)) == f" (stderr: {said})"
    http = TestOutcome(
        "t",
        Outcome.trap,
        detail="extism: http_request denied: the plugin does not declare the 'network' permission",
    )
    assert "`network = true`" in str(_fix_for(http))
    assert _fix_for(TestOutcome("t", Outcome.trap, detail="trap: unreachable")) == (
        "the module trapped; run it locally under wasmtime to debug"
    )


def test_a_component_export_other_than_run_is_explained_as_the_abi_limit() -> None:
    from registry_tool.sandbox.harness import _fix_for
    from registry_tool.sandbox.outcome import Outcome, TestOutcome

    other = TestOutcome(
        "t",
        Outcome.missing_export,
        detail="component ABI: calling 'add' is not supported yet; only wasi:cli/run runs",
    )
    fix = str(_fix_for(other))
    assert "wasi:cli/run" in fix and "not supported yet" in fix and "export the function" not in fix


def test_a_test_that_returned_where_a_trap_was_expected_says_so() -> None:
    from registry_tool.sandbox.harness import release_result
    from registry_tool.sandbox.outcome import Outcome, TestOutcome

    manifest = load_manifest(Path(__file__).parents[2] / "index" / "plugins" / "adler32" / "1.0.0")
    outcomes = [
        TestOutcome(spec.name, Outcome.passed, expected=Outcome.out_of_fuel.value) for spec in manifest.tests
    ]
    [first, *_] = release_result(manifest, outcomes).findings
    assert first.message.endswith("(expected out_of_fuel): the call returned normally"), first.message


def test_a_table_over_the_limit_says_table_elements_and_a_compile_error_names_the_feature() -> None:
    from registry_tool.sandbox.harness import _fix_for
    from registry_tool.sandbox.outcome import Outcome, TestOutcome

    table = TestOutcome(
        "t", Outcome.memory_limit, detail="table minimum size of 105888 elements exceeds table limits"
    )
    assert "table_elements" in str(_fix_for(table)) and "[limits].memory" not in str(_fix_for(table))
    simd = TestOutcome("t", Outcome.compile_error, detail="SIMD support is not enabled (at offset 0xb)")
    assert "simd = true" in str(_fix_for(simd)) and "-msimd128" in str(_fix_for(simd))


def test_the_cpu_ceiling_leaves_room_for_a_compile_on_every_core() -> None:
    """CPU time counts all of wasmtime's compile threads: on 4 cores a compile within its 100 s
    wall-clock limit may use 400 s of CPU, and the ceiling (2 x 100 s + ...) killed it first."""
    code = (
        "import os, resource\n"
        "os.sched_getaffinity = lambda pid: {0, 1, 2, 3}\n"
        "from registry_tool.sandbox.engine import Limits\n"
        "from registry_tool.sandbox.worker import apply_process_limits\n"
        "apply_process_limits(Limits(compile_timeout=100.0), 1)\n"
        "print(resource.getrlimit(resource.RLIMIT_CPU)[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) >= 2 * 100 * 4


def test_a_release_outside_an_index_is_smoked_with_config(index: Path, tmp_path: Path) -> None:
    """A plugin kept in its own repository: smoke had no --config (its error even suggested one)."""
    import shutil

    alone = tmp_path / "my-plugin"
    shutil.copytree(index / "plugins" / "spinner" / "1.0.0", alone)
    without = _cli(str(alone), "--format", "json")
    assert without.returncode == 2 and "--config" in without.stdout + without.stderr
    done = _cli(str(alone), "--config", str(index / "registry.toml"), "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    [result] = json.loads(done.stdout)["results"]
    assert [t["outcome"] for t in result["data"]["tests"]] == ["passed", "out_of_fuel"]


@pytest.mark.parametrize("at_ceiling", [True, False])
def test_out_of_fuel_at_the_registrys_maximum_does_not_say_to_raise_the_limit(
    index: Path, at_ceiling: bool
) -> None:
    """The fix said "raise [limits].fuel" to a test that already ran with the registry's maximum."""
    from registry_tool.sandbox.harness import release_result
    from registry_tool.sandbox.outcome import TestOutcome

    config = load_registry_config(index)
    manifest = load_manifest(index / "plugins" / "spinner" / "1.0.0" / "plugin.toml", config)
    ceiling = config.max_limits.fuel
    assert ceiling is not None
    fuel = ceiling if at_ceiling else 1_000_000
    outcomes = [
        TestOutcome("one", Outcome.passed),
        TestOutcome("spin", Outcome.out_of_fuel, fuel_consumed=fuel),
    ]
    [finding] = release_result(manifest, outcomes, config).findings
    assert ("maximum fuel" in (finding.fix or "")) is at_ceiling, finding.fix
    assert ("raise [limits].fuel" in (finding.fix or "")) is not at_ceiling, finding.fix


def test_a_scratch_directory_the_parent_cannot_make_is_an_environment_error(
    index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: the OSError was an internal error (exit 3), and the started worker was left waiting."""
    from registry_tool.errors import UsageError
    from registry_tool.sandbox import harness

    started: list[harness.Worker] = []
    real_start = harness.start_worker

    def start() -> harness.Worker:
        started.append(real_start())
        return started[-1]

    def no_room() -> Path:
        raise OSError(28, "No space left on device", "/dev/shm/registry-tool-smoke-x")

    monkeypatch.setattr(harness, "start_worker", start)
    monkeypatch.setattr(harness, "private_dir", no_room)
    config = load_registry_config(index)
    manifest = load_manifest(index / "plugins" / "spinner" / "1.0.0" / "plugin.toml", config)
    with pytest.raises(UsageError, match="scratch directory") as err:
        smoke_release(manifest, config, cache=False)
    assert err.value.exit_code == 2
    assert started and all(w.proc.poll() is not None for w in started)
