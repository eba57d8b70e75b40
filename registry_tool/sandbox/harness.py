"""Orchestration: one supervised worker process per plugin release, plugins in parallel.

The parent never loads untrusted code.  It starts ``registry_tool.sandbox.worker`` in its own
session, feeds it the job, and reads one JSON line per event under a deadline: the compile phase
gets ``compile_timeout``, each test ``wall_time + kill_margin``.  A worker that overruns is killed
(whole process group); one that dies is diagnosed from its exit status and stderr.  Either way the
test in progress gets its class and the remaining tests continue in a fresh worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from registry_tool.errors import CheckFailed, RegistryToolError, UsageError
from registry_tool.manifest.abi import ABI_SPECS
from registry_tool.report import CheckResult, Finding, Report, Severity
from registry_tool.sandbox.abis import DEFAULT_ABI_RULES, Case, ImportPolicy, ImportRule
from registry_tool.sandbox.engine import EngineSpec, Limits, check_features, default_cache_dir
from registry_tool.sandbox.outcome import OUTCOME_NAMES, Outcome, TestOutcome, neutralise
from registry_tool.sandbox.worker import Job

if TYPE_CHECKING:
    from registry_tool.manifest.config import RegistryConfig
    from registry_tool.manifest.model import Manifest, TestSpec

_STDERR_TAIL = 2000
_MAX_EVENT = 1024 * 1024  # an outcome line is a few KiB: anything longer is not our worker talking


class _ProtocolError(Exception):
    """The worker wrote something that is not a well-formed event."""


class SmokeSetupError(CheckFailed):
    """A release cannot be smoke-run at all (unreadable artifact, unusable test declaration)."""

    code = "smoke-setup"


class SmokePathError(UsageError):
    """A path given to ``smoke`` does not exist."""

    code = "smoke-path"


# --------------------------------------------------------------------------- worker supervision


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    stderr: IO[bytes]
    selector: selectors.BaseSelector
    buffer: bytes = b""
    diagnosis: str | None = None

    def read_event(self, deadline: float) -> dict[str, Any] | None:
        """The next JSON event, or None at EOF; raises TimeoutError past ``deadline``."""
        assert self.proc.stdout is not None
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if not self.selector.select(remaining):
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return None
            self.buffer += chunk
            if len(self.buffer) > _MAX_EVENT:
                raise _ProtocolError(f"an event line longer than {_MAX_EVENT} bytes")
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            event = json.loads(line)
        except ValueError:
            raise _ProtocolError("a line that is not JSON") from None
        if not isinstance(event, dict) or "event" not in event:
            raise _ProtocolError("a JSON line that is not an event")
        return event

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def close(self) -> str:
        """Reap the process (idempotent); return the tail of its stderr."""
        if self.diagnosis is not None:
            return self.diagnosis
        if self.proc.poll() is None:
            self.kill()
        self.selector.close()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.stderr.seek(0)
        self.diagnosis = self.stderr.read()[-_STDERR_TAIL:].decode("utf-8", "replace")
        self.stderr.close()
        return self.diagnosis


# -P: never the working directory on sys.path (in CI it is the pull request's tree, which could
# shadow this module with its own code).
WORKER_COMMAND = [sys.executable, "-P", "-m", "registry_tool.sandbox.worker"]
_ALLOWED_ENV = ("PATH", "PYTHONPATH", "LANG", "HOME")  # enough to start Python; the worker clears even these


def _start_worker(job: Job, start: int) -> _Worker:
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - owned by _Worker, closed in close()
    proc = subprocess.Popen(
        WORKER_COMMAND,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        start_new_session=True,  # its own process group, so a kill takes any children too
        env={k: v for k, v in os.environ.items() if k in _ALLOWED_ENV},
    )
    assert proc.stdin is not None and proc.stdout is not None
    # A worker that dies before reading its job is diagnosed at the first read_event, not here.
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.write(json.dumps({"job": job.to_json(), "start": start}).encode())
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.close()
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    return _Worker(proc, stderr, selector)


def _death(worker: _Worker, tail: str) -> tuple[Outcome, str]:
    """Why a worker died: out of address space is memory_limit, anything else worker_crashed."""
    code = worker.proc.returncode
    how = (
        f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit status {code}"
    )
    lowered = tail.lower()
    if any(s in lowered for s in ("memory allocation of", "memoryerror", "cannot allocate memory")):
        return Outcome.memory_limit, f"the worker ran out of address space ({how}): {neutralise(tail[-300:])}"
    if code is not None and -code == signal.SIGXCPU:
        return Outcome.timeout, f"the worker exceeded its CPU-time limit ({how})"
    detail = f"the worker process died ({how})"
    if tail.strip():
        detail += f": {neutralise(tail.strip()[-500:])}"
    return Outcome.worker_crashed, detail


def _fail(case: Case, outcome: Outcome, detail: str, wall_ms: float | None = None) -> TestOutcome:
    return TestOutcome(
        name=case.name,
        outcome=outcome,
        expected=case.expected,
        wall_ms=wall_ms,
        detail=detail,
    )


def run_job(job: Job) -> list[TestOutcome]:
    """Run every case of ``job`` in supervised workers; always one outcome per case, in order."""
    results: list[TestOutcome] = []
    while len(results) < len(job.cases):
        results += _run_worker(job, len(results))
    return results


def _run_worker(job: Job, start: int) -> list[TestOutcome]:
    """Outcomes from one worker, from case ``start`` up to the one it finished or died on."""
    cases = job.cases[start:]
    worker = _start_worker(job, start)
    outcomes: list[TestOutcome] = []
    try:
        failed = _await_compile(worker, job, cases)
        if failed:
            return failed
        for case in cases:
            ended = _await_test(worker, job, case)
            outcomes.append(ended)
            if worker.diagnosis is not None:  # the worker is gone: the rest needs a new one
                break
        return outcomes
    except _ProtocolError as err:
        # Only a subverted worker process could write this; fail closed on the current test.
        worker.kill()
        detail = f"the worker broke the result protocol: {err}"
        return [*outcomes, _fail(cases[len(outcomes)], Outcome.worker_crashed, detail)]
    finally:
        worker.close()


def _await_compile(worker: _Worker, job: Job, cases: list[Case]) -> list[TestOutcome]:
    """Wait for the compile phase; on failure, the outcome of every remaining case."""
    began, limit = time.monotonic(), job.limits.compile_timeout
    try:
        event = worker.read_event(began + limit)
    except TimeoutError:
        worker.kill()
        detail = f"compilation did not finish within {limit:g}s; worker killed"
        return [_fail(c, Outcome.compile_timeout, detail, _ms_since(began)) for c in cases]
    if event is None:
        outcome, detail = _death(worker, worker.close())
        return [_fail(c, outcome, f"while compiling: {detail}") for c in cases]
    if event["event"] == "compile_error":
        detail = neutralise(str(event.get("detail", ""))).replace("\n", "\\n")
        return [_fail(c, Outcome.compile_error, detail) for c in cases]
    if event["event"] != "compiled":
        raise _ProtocolError(f"unexpected event {event['event']!r} before compilation ended")
    return []


def _await_test(worker: _Worker, job: Job, case: Case) -> TestOutcome:
    """The next test's outcome, or its timeout/crash (the worker is then closed)."""
    began, limit = time.monotonic(), job.limits.wall_time + job.limits.kill_margin
    try:
        event = worker.read_event(began + limit)
    except TimeoutError:
        worker.kill()
        worker.close()
        return _fail(case, Outcome.timeout, f"no result within {limit:g}s; worker killed", _ms_since(began))
    if event is None:
        outcome, detail = _death(worker, worker.close())
        return _fail(case, outcome, detail, _ms_since(began))
    try:
        result = TestOutcome.from_json(event["outcome"])
    except (KeyError, ValueError, TypeError):
        raise _ProtocolError("a test event without a valid outcome") from None
    if result.name != case.name:
        raise _ProtocolError(f"an outcome for {result.name!r} while {case.name!r} was running")
    result.expected = case.expected  # the parent decides what passes
    # The worker's strings embed module-controlled text (import and export names, trap messages):
    # make them inert here, at the trust boundary, whatever the worker did; a detail stays one line.
    result.detail = neutralise(result.detail).replace("\n", "\\n").replace("\t", " ")
    result.stdout, result.stderr = neutralise(result.stdout), neutralise(result.stderr)
    return result


def _ms_since(began: float) -> float:
    return (time.monotonic() - began) * 1000


# --------------------------------------------------------------------------- manifests -> jobs

_FIXES = {
    Outcome.wrong_output: "fix the plugin, or the test's expected output if the new output is right",
    Outcome.exit_code: "the program exited with another code than the test's exit_code",
    Outcome.out_of_fuel: "make the export cheaper or raise [limits].fuel (capped by the registry's maximum)",
    Outcome.timeout: "make the export faster or raise [limits].wall_time (capped by the registry's maximum)",
    Outcome.memory_limit: "use less memory or raise [limits].memory (capped by the registry's maximum)",
    Outcome.stack_overflow: "reduce recursion depth; the stack is capped by the registry's limits.max.stack",
    Outcome.trap: "the module trapped; run it locally under wasmtime to debug",
    Outcome.missing_export: "export the function the test calls, with the ABI's signature",
    Outcome.link_error: "remove the import or declare the permission that grants it in [permissions]",
    Outcome.compile_error: "rebuild the module for the wasm features the registry enables",
    Outcome.compile_timeout: "the module takes too long to compile; reduce its size or function count",
    Outcome.worker_crashed: "report this: the engine crashed on this module",
    Outcome.output_limit: "write less to stdout/stderr",
}


def case_from_spec(spec: TestSpec, abi: str) -> Case:
    """A worker Case from a manifest ``[[tests]]`` entry (reads input/expect files)."""
    where = f"{spec.release_dir / 'plugin.toml'}"
    expect_trap = spec.expect_trap
    if expect_trap is not None and expect_trap not in OUTCOME_NAMES:
        raise SmokeSetupError(
            f"test '{spec.name}': unknown expect_trap class '{spec.expect_trap}'",
            where=where,
            fix=f"use one of: {', '.join(sorted(OUTCOME_NAMES))}",
        )
    kind, expect = _expectation(spec)
    try:
        data = spec.input_bytes()
    except (OSError, ValueError) as err:
        raise SmokeSetupError(f"test '{spec.name}': cannot read its input: {err}", where=where) from None
    return Case(
        name=spec.name,
        call=spec.call or (ABI_SPECS[abi].default_call if abi in ABI_SPECS else None),
        args=list(spec.args or ()),
        input=data,
        argv=list(spec.argv) if spec.argv is not None else None,
        config=dict(spec.config),
        env=dict(spec.env),
        expect_kind=kind,
        expect=expect,
        exit_code=spec.exit_code or 0,
        expect_trap=expect_trap,
        keys=dict(spec.keys),
        expect_keys={k: (v if isinstance(v, str) else None) for k, v in spec.expect_keys.items()},
        steps=[dict(step) for step in spec.steps],
        http=dict(spec.http),
    )


def _expectation(spec: TestSpec) -> tuple[str, Any]:
    if isinstance(spec.expect, tuple):
        return "values", list(spec.expect)
    if spec.expect_regex is not None:
        return "regex", spec.expect_regex
    if isinstance(spec.expect, str):
        return "text", spec.expect
    try:
        data = spec.expected_bytes()
    except (OSError, ValueError) as err:
        raise SmokeSetupError(
            f"test '{spec.name}': cannot read its expected output: {err}",
            where=str(spec.release_dir / "plugin.toml"),
        ) from None
    return ("none", None) if data is None else ("bytes", data)


def limits_for(manifest: Manifest, config: RegistryConfig, *, compile_timeout: float | None = None) -> Limits:
    """The manifest's limits over the registry defaults, never above the registry maxima.

    Compile time is the registry's (``[limits.max] compile_time``), or ``compile_timeout`` when the
    caller overrides it for a local run.
    """
    effective = manifest.effective_limits(config)
    cap = config.max_limits
    base = Limits()

    def pick(name: str, fallback: Any) -> Any:
        value = getattr(effective, name)
        value = fallback if value is None else value
        ceiling = getattr(cap, name)
        return value if ceiling is None else min(value, ceiling)

    memory, instances = pick("memory", base.memory), pick("instances", base.instances)
    memories = 4 if config.features.get("multi_memory") else 1
    return Limits(
        fuel=pick("fuel", base.fuel),
        memory=memory,
        wall_time=pick("wall_time", base.wall_time),
        table_elements=pick("table_elements", base.table_elements),
        instances=instances,
        stack=pick("stack", base.stack),
        memories=memories,
        # Room for the interpreter and wasmtime (~0.5 GiB of mappings) plus every memory at its cap.
        address_space=2 * 1024**3 + memory * memories * instances,
        compile_timeout=compile_timeout if compile_timeout is not None else _compile_time(config),
    )


def _compile_time(config: RegistryConfig) -> float:
    from registry_tool.manifest.config import DEFAULT_COMPILE_TIME

    value = config.max_limits.compile_time
    return DEFAULT_COMPILE_TIME if value is None else value


def policy_for(manifest: Manifest, config: RegistryConfig) -> ImportPolicy:
    """The import policy of a release: its ABI's own patterns, the registry's permissions, its grants."""
    return ImportPolicy(
        abi_rules=list(DEFAULT_ABI_RULES.get(manifest.abi, ())),
        permission_rules=[
            ImportRule(p.module, p.name, perm.name)
            for perm in config.permissions.values()
            for p in perm.imports
        ],
        granted=sorted(manifest.permissions),
    )


def job_for(
    manifest: Manifest, config: RegistryConfig, *, cache: bool = True, compile_timeout: float | None = None
) -> Job:
    """The worker job of one release: its module, cases, limits, engine and import policy."""
    limits = limits_for(manifest, config, compile_timeout=compile_timeout)
    """The worker job of one release: its module, cases, limits, engine and import policy."""
    abi = ABI_SPECS.get(manifest.abi)
    spec = EngineSpec(
        features=dict(config.features), stack=limits.stack, component=bool(abi and abi.component)
    )
    check_features(spec)
    size_cap = config.max_limits.module_size
    try:
        size = manifest.wasm_path.stat().st_size
    except OSError as err:
        raise SmokeSetupError(
            f"cannot read the artifact {manifest.artifact.file}: {err.strerror}",
            where=str(manifest.path),
            fix="build the module and put it beside plugin.toml",
        ) from None
    if size_cap is not None and size > size_cap:
        raise SmokeSetupError(
            f"{manifest.artifact.file} is {size} bytes, over the registry's module_size of {size_cap}",
            where=str(manifest.path),
            fix="shrink the module (wasm-opt -Oz, strip debug info)",
        )
    return Job(
        wasm_path=str(manifest.wasm_path),
        abi=manifest.abi,
        cases=[case_from_spec(t, manifest.abi) for t in manifest.tests],
        limits=limits,
        engine=spec,
        policy=policy_for(manifest, config),
        program=manifest.artifact.file,
        cache_dir=str(default_cache_dir()) if cache else None,
        host=config.host_name,
    )


def smoke_release(
    manifest: Manifest, config: RegistryConfig, *, cache: bool = True, compile_timeout: float | None = None
) -> list[TestOutcome]:
    """Run every ``[[tests]]`` entry of one release under the registry's limits."""
    job = job_for(manifest, config, cache=cache, compile_timeout=compile_timeout)
    return run_job(job) if job.cases else []


def release_result(manifest: Manifest, outcomes: list[TestOutcome]) -> CheckResult:
    """The report entry of one release; ``data["tests"]`` is the stable per-test JSON."""
    result = CheckResult(
        subject=f"{manifest.name}@{manifest.version}",
        file=str(manifest.path),
        data={
            "plugin": manifest.name,
            "version": manifest.version,
            "abi": manifest.abi,
            "tests": [o.to_json() for o in outcomes],
        },
    )
    for spec, outcome in zip(manifest.tests, outcomes, strict=True):
        if not outcome.passed:
            want = "" if outcome.expected == Outcome.passed.value else f" (expected {outcome.expected})"
            result.findings.append(
                Finding(
                    rule=f"smoke-{outcome.outcome.value.replace('_', '-')}",
                    message=f"test '{outcome.name}' ended in {outcome.outcome.value}{want}: {outcome.detail}"
                    + _last_words(outcome),
                    file=str(manifest.path),
                    line=spec.line,
                    field=f"tests[{spec.index}]",
                    fix=_FIXES.get(outcome.outcome) if outcome.expected == Outcome.passed.value else None,
                )
            )
    if not manifest.tests:
        result.findings.append(
            Finding(
                rule="smoke-no-tests",
                message="the release declares no [[tests]]; nothing was run",
                severity=Severity.warning,
                file=str(manifest.path),
                fix="add at least one [[tests]] entry that calls each export",
            )
        )
    return result


def _last_words(o: TestOutcome) -> str:
    """The last line the module wrote to stderr, for the one-line finding (annotations show no log)."""
    lines = [line for line in o.stderr.splitlines() if line.strip()]
    return f" (stderr: {lines[-1][:200]})" if lines else ""


def _smoke_one(release_dir: Path, cache: bool, compile_timeout: float | None) -> CheckResult:
    from registry_tool.manifest import load_manifest, load_registry_config

    try:
        config = load_registry_config(release_dir)
        manifest = load_manifest(release_dir / "plugin.toml", config)
        outcomes = smoke_release(manifest, config, cache=cache, compile_timeout=compile_timeout)
        return release_result(manifest, outcomes)
    except UsageError:
        raise  # no registry.toml, unsupported features: the invocation is wrong, exit 2
    except RegistryToolError as err:
        findings = getattr(err, "findings", None) or [Finding.from_error(err)]
        return CheckResult(subject=str(release_dir), file=str(release_dir / "plugin.toml"), findings=findings)


def smoke_paths(
    paths: Iterable[Path],
    *,
    jobs: int = 1,
    cache: bool = True,
    progress: Callable[[CheckResult], None] | None = None,
    compile_timeout: float | None = None,
) -> Report:
    """Smoke-run every release under ``paths`` (index dirs, plugin dirs or release dirs).

    Releases run in parallel, ``jobs`` at a time (each in its own worker process).
    """
    from registry_tool.manifest import find_releases

    releases: list[Path] = []
    for path in paths:
        if not path.exists():
            raise SmokePathError("no such file or directory", where=str(path), fix="check the path")
        found = find_releases(path)
        if not found:
            raise SmokeSetupError(
                f"no release directory (one holding plugin.toml) under {path}",
                where=str(path),
                fix="pass an index, a plugins/<name> or a plugins/<name>/<version> directory",
            )
        releases += [r for r in found if r not in releases]
    report = Report(command="smoke")
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for result in pool.map(lambda r: _smoke_one(r, cache, compile_timeout), releases):
            report.results.append(result)
            if progress:
                progress(result)
    return report
