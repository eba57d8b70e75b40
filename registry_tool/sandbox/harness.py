"""Orchestration: one supervised worker process per plugin release, plugins in parallel.

The parent never loads untrusted code.  It starts ``registry_tool.sandbox.worker`` in its own
session, feeds it the job, and reads the worker's result records (``protocol``) from a file they
share, under deadlines: the compile phase gets ``compile_timeout``, each test ``wall_time +
kill_margin`` from the record before it.  A worker that overruns is killed (whole process group);
one that dies is diagnosed from its exit status and stderr.  Either way the test in progress gets
its class and the remaining tests continue in a fresh worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from registry_tool._files import unreachable
from registry_tool.errors import CheckFailed, RegistryToolError, UsageError
from registry_tool.manifest.abi import ABI_SPECS
from registry_tool.report import CheckResult, Finding, Report, Severity
from registry_tool.sandbox import protocol
from registry_tool.sandbox.abis import (
    ARG_TYPE_SAID,
    ARGS_COUNT_SAID,
    DEFAULT_ABI_RULES,
    NO_CALL,
    Case,
    ImportPolicy,
    ImportRule,
)
from registry_tool.sandbox.engine import (
    EngineSpec,
    Limits,
    check_features,
    default_cache_dir,
    reservation_for,
)
from registry_tool.sandbox.outcome import (
    COMMAND_BUILD_FIX,
    COMMAND_BUILD_SAID,
    OUTCOME_NAMES,
    Outcome,
    TestOutcome,
    neutralise,
)
from registry_tool.sandbox.worker import Job, private_dir, remove_private_dir, scratch_dir

if TYPE_CHECKING:
    from registry_tool.manifest.config import RegistryConfig
    from registry_tool.manifest.model import Manifest, TestSpec

_STDERR_TAIL = 2000


class SmokeSetupError(CheckFailed):
    """A release cannot be smoke-run at all (unreadable artifact, unusable test declaration)."""

    code = "smoke-setup"


class SmokeEnvironmentError(UsageError):
    """The machine cannot run a smoke test (no room or permission for the tests' files)."""

    code = "smoke-environment"


class SmokePathError(UsageError):
    """A path given to ``smoke`` does not exist."""

    code = "smoke-path"


# --------------------------------------------------------------------------- worker supervision


@dataclass
class Worker:
    """A started worker: its process, stderr file, results file and the pipe it ends on."""

    proc: subprocess.Popen[bytes]
    stderr: IO[bytes]
    results_file: IO[bytes]
    selector: selectors.BaseSelector
    results: protocol.ResultsFile
    diagnosis: str | None = None
    ended: str | None = None  # "end": it wrote END (every record is written); "eof": it is gone
    #: The tests' WASI files: made here and removed by ``close``, since a worker killed at a
    #: deadline cannot remove them (each left up to three capped files on /dev/shm, in memory).
    workdir: Path | None = None

    def send(self, job: Job, start: int) -> None:
        """Hand the worker its job (cases from ``start``); it has been importing meanwhile."""
        assert self.proc.stdin is not None
        self.workdir = private_dir()
        request = {
            "job": job.to_json(),
            "start": start,
            "results_fd": self.results.fd,
            "workdir": str(self.workdir),
        }
        # A worker that dies before reading its job is diagnosed by the wait, not here.
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.write(json.dumps(request).encode())
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()

    def wait(self, until: float) -> str | None:
        """Sleep until the worker ends or ``until``: "end" (it wrote END), "eof" (it is gone) or None."""
        assert self.proc.stdout is not None
        if self.ended is None and self.selector.select(max(0.0, until - time.monotonic())):
            # END means every record is written; EOF, that the worker is gone.  Either way the
            # results file is final.  A worker that writes anything else here is read as ended.
            self.ended = "end" if os.read(self.proc.stdout.fileno(), 4096) else "eof"
        return self.ended

    def kill(self) -> None:
        """Kill the worker's whole process group and reap the worker."""
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
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        self.results_file.close()
        self.stderr.seek(0)
        self.diagnosis = self.stderr.read()[-_STDERR_TAIL:].decode("utf-8", "replace")
        self.stderr.close()
        if self.workdir is not None:
            remove_private_dir(self.workdir)
        return self.diagnosis


# -P: never the working directory on sys.path (in CI it is the pull request's tree, which could
# shadow this module with its own code).
WORKER_COMMAND = [sys.executable, "-P", "-m", "registry_tool.sandbox.worker"]
_ALLOWED_ENV = ("PATH", "PYTHONPATH", "LANG", "HOME")  # enough to start Python; the worker clears even these


def start_worker() -> Worker:
    """Start a worker process; it imports wasmtime and its own modules while the job is prepared.

    Hand it its job with ``send``.  A caller may start it before loading the release, so the
    worker's start (Python, its imports) overlaps the parent's own work.
    """
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - owned by Worker, closed in close()
    # The results file: unlinked, on a memory file system when there is one, shared with the worker.
    results = tempfile.TemporaryFile(dir=scratch_dir())  # noqa: SIM115 - closed in close()
    proc = subprocess.Popen(
        WORKER_COMMAND,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        pass_fds=(results.fileno(),),
        start_new_session=True,  # its own process group, so a kill takes any children too
        env={k: v for k, v in os.environ.items() if k in _ALLOWED_ENV},
    )
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    return Worker(proc, stderr, results, selector, protocol.ResultsFile(results.fileno()))


def _death(worker: Worker, tail: str) -> tuple[Outcome, str]:
    """Why a worker died: out of address space is memory_limit, anything else worker_crashed."""
    code = worker.proc.returncode
    how = (
        f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit status {code}"
    )
    lowered = tail.lower()
    # A detail is one line (docs/sandbox.md): the worker's last words, their lines joined.
    said = " | ".join(line.strip() for line in tail.strip().splitlines() if line.strip())
    if any(s in lowered for s in ("memory allocation of", "memoryerror", "cannot allocate memory")):
        return Outcome.memory_limit, f"the worker ran out of address space ({how}): {neutralise(said[-300:])}"
    if code is not None and -code == signal.SIGXCPU:
        return Outcome.timeout, f"the worker exceeded its CPU-time limit ({how})"
    detail = f"the worker process died ({how})"
    if said:
        detail += f": {neutralise(said[-500:])}"
    return Outcome.worker_crashed, detail


def _fail(case: Case, outcome: Outcome, detail: str, wall_ms: float | None = None) -> TestOutcome:
    return TestOutcome(
        name=case.name,
        outcome=outcome,
        expected=case.expected,
        wall_ms=wall_ms,
        detail=detail,
    )


def run_job(job: Job, worker: Worker | None = None) -> list[TestOutcome]:
    """Run every case of ``job`` in supervised workers; always one outcome per case, in order.

    ``worker``: one from ``start_worker`` that has not had its job yet (it runs the first share).
    """
    results: list[TestOutcome] = []
    while len(results) < len(job.cases):
        results += _run_worker(job, len(results), worker)
        worker = None
    return results


def _run_worker(job: Job, start: int, worker: Worker | None = None) -> list[TestOutcome]:
    """Outcomes from one worker, from case ``start`` up to the one it finished or died on.

    The parent sleeps until the worker ends or a deadline passes, reading the results file every
    ``POLL_S`` meanwhile: the compile phase gets ``compile_timeout`` from the start, each test
    ``wall_time + kill_margin`` from the record before it (its time as the worker wrote it, never
    later than when the parent read it).
    """
    cases = job.cases[start:]
    if worker is None:
        worker = start_worker()
    try:
        worker.send(job, start)
    except OSError as err:
        # No scratch directory (no room, no permission): the machine's problem, and the started
        # worker is not left waiting for a job.
        worker.close()
        raise SmokeEnvironmentError(
            f"cannot make the tests' scratch directory: {err.strerror or err}",
            where=str(err.filename or ""),
            fix="free space in /dev/shm or the temporary directory (TMPDIR), or make it writable",
        ) from None
    outcomes: list[TestOutcome] = []
    began = time.monotonic()
    deadline, compiled, matching = began + job.limits.compile_timeout, False, False
    limit = job.limits.wall_time + job.limits.kill_margin
    try:
        while True:
            ended = worker.wait(min(deadline, time.monotonic() + protocol.POLL_S))
            records = worker.results.read()
            while worker.results.more:
                records += worker.results.read()
            now = time.monotonic()
            for record in records:
                if record.kind == "matching":
                    # The run ended; its output is judged against expect_regex, within the test's
                    # deadline (which this record does not move).
                    index = start + len(outcomes)
                    if not compiled or matching or len(outcomes) == len(cases) or record.index != index:
                        raise protocol.ProtocolError(f"a matching record for test {record.index} out of turn")
                    if cases[len(outcomes)].expect_kind != "regex":
                        raise protocol.ProtocolError(
                            f"a matching record for test {index}, which has no regex"
                        )
                    matching = True
                    continue
                matching = False
                if not compiled:
                    if record.kind == "compile_error":
                        detail = neutralise(record.detail).replace("\n", "\\n")
                        return [_fail(c, Outcome.compile_error, detail) for c in cases]
                    if record.kind != "compiled":
                        raise protocol.ProtocolError(f"a {record.kind} record before compilation ended")
                    compiled = True
                elif len(outcomes) == len(cases):
                    raise protocol.ProtocolError("a record after the last test")
                else:
                    outcomes.append(_checked(record, start + len(outcomes), cases[len(outcomes)]))
                began = min(record.at, now)  # the next phase started when this record was written
                deadline = began + limit
            if len(outcomes) == len(cases):
                return outcomes
            if ended == "end":
                # It says every record is written, yet a test has none: only a subverted worker.
                raise protocol.ProtocolError("the worker ended before every test had its record")
            if ended == "eof":
                outcome, detail = _death(worker, worker.close())
                if not compiled:
                    return [_fail(c, outcome, f"while compiling: {detail}") for c in cases]
                return [*outcomes, _fail(cases[len(outcomes)], outcome, detail, _ms_since(began))]
            if time.monotonic() >= deadline:
                worker.kill()
                if not compiled:
                    timeout = job.limits.compile_timeout
                    detail = f"compilation did not finish within {timeout:g}s; worker killed"
                    return [_fail(c, Outcome.compile_timeout, detail, _ms_since(began)) for c in cases]
                case = cases[len(outcomes)]
                if matching:
                    # The export returned in time: the test's own pattern did not finish.
                    pattern = neutralise(repr(str(case.expect)[:80]))
                    detail = (
                        f"the run ended, then matching expect_regex {pattern} against its output "
                        f"did not finish within the test's wall time ({job.limits.wall_time:g}s, and "
                        f"{job.limits.kill_margin:g}s of grace); worker killed. Simplify the "
                        "expression: nested repetition such as (a+)+ backtracks without end on some inputs"
                    )
                    return [*outcomes, _fail(case, Outcome.wrong_output, detail, _ms_since(began))]
                wall, grace = job.limits.wall_time, job.limits.kill_margin
                detail = (
                    f"no result within the wall time ({wall:g}s, and {grace:g}s of grace: a host call "
                    "the epoch cannot interrupt); worker killed"
                )
                return [*outcomes, _fail(cases[len(outcomes)], Outcome.timeout, detail, _ms_since(began))]
    except protocol.ProtocolError as err:
        # Only a subverted worker process could write this; fail closed on the current test, or on
        # the last one when the record came after every test had its own.
        worker.kill()
        detail = f"the worker broke the result protocol: {err}"
        if len(outcomes) == len(cases):
            return [*outcomes[:-1], _fail(cases[-1], Outcome.worker_crashed, detail)]
        return [*outcomes, _fail(cases[len(outcomes)], Outcome.worker_crashed, detail)]
    finally:
        worker.close()


def _checked(record: protocol.Record, index: int, case: Case) -> TestOutcome:
    """The outcome of ``case`` (test ``index`` of the job) from the worker's record, made inert."""
    if record.kind != "test" or record.index != index:
        raise protocol.ProtocolError(f"a record for test {record.index} while test {index} was running")
    # The worker's strings embed module-controlled text (import and export names, trap messages):
    # make them inert here, at the trust boundary, whatever the worker did; a detail stays one line.
    detail = record.detail
    if detail:
        detail = neutralise(detail).replace("\n", "\\n").replace("\t", " ")
    return TestOutcome(
        name=case.name,
        outcome=record.outcome,
        expected=case.expected,  # the parent decides what passes
        fuel_consumed=record.fuel,
        peak_memory_bytes=record.memory,
        wall_ms=record.wall_ms,
        stdout=neutralise(record.stdout) if record.stdout else "",
        stderr=neutralise(record.stderr) if record.stderr else "",
        detail=detail,
    )


def _ms_since(began: float) -> float:
    return (time.monotonic() - began) * 1000


# --------------------------------------------------------------------------- manifests -> jobs

_FIXES = {
    Outcome.wrong_output: "fix the plugin, or the test's expected output if the new output is right",
    Outcome.exit_code: "the plugin ended with another status than the test expects (exit code, an Extism "
    "error, a Proxy-Wasm callback returning false): see the detail, and fix the plugin or the test",
    Outcome.out_of_fuel: "make the export cheaper or raise [limits].fuel (capped by the registry's maximum)",
    Outcome.timeout: "make the export faster or raise [limits].wall_time (capped by the registry's maximum)",
    Outcome.memory_limit: "use less memory or raise [limits].memory (capped by the registry's maximum)",
    Outcome.stack_overflow: "reduce recursion depth; the stack is capped by the registry's limits.max.stack",
    Outcome.trap: "the module trapped; run it locally under wasmtime to debug",
    Outcome.missing_export: "export the function the test calls, with the ABI's signature",
    Outcome.link_error: "remove the import or declare the permission that grants it in [permissions]",
    Outcome.compile_error: "rebuild the module for the wasm features the registry enables",
    Outcome.compile_timeout: "the module takes too long to compile: reduce its size or function count; "
    "for a local run on a slow machine pass smoke --compile-timeout SECONDS (CI uses registry.toml's "
    "[limits.max] compile_time)",
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
    from registry_tool.manifest.validate import (
        NUMERIC_EXPECT_CORE_ONLY,
        NUMERIC_EXPECT_FIX,
        process_string_problems,
    )

    for _, message, fix in process_string_problems(spec.argv, spec.env):
        # The worker would pass the string cut at the NUL, or another name: the test would run
        # something else than it says (validate reports the same as test-spec).
        raise SmokeSetupError(f"test '{spec.name}': {message}", where=where, fix=fix)
    kind, expect = _expectation(spec)
    if kind == "values" and abi != "core":  # validate's test-spec: the output text is no result list
        raise SmokeSetupError(
            f"test '{spec.name}': {NUMERIC_EXPECT_CORE_ONLY}", where=where, fix=NUMERIC_EXPECT_FIX
        )
    try:
        data = spec.input_bytes()
    except (OSError, ValueError) as err:
        raise SmokeSetupError(f"test '{spec.name}': cannot read its input: {err}", where=where) from None
    except RegistryToolError as err:
        raise SmokeSetupError(
            f"test '{spec.name}': cannot read its input: {err.what}", where=where, fix=err.fix
        ) from None
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
        try:  # compiled here: in the worker a bad pattern read as the engine crashing
            re.compile(spec.expect_regex)
        except (re.error, RecursionError, OverflowError) as err:
            raise SmokeSetupError(
                f"test '{spec.name}': expect_regex {spec.expect_regex[:80]!r} is no regular expression "
                f"({err})",
                where=str(spec.release_dir / "plugin.toml"),
                fix="fix the pattern (Python's re syntax)",
            ) from None
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
    except RegistryToolError as err:
        raise SmokeSetupError(
            f"test '{spec.name}': cannot read its expected output: {err.what}",
            where=str(spec.release_dir / "plugin.toml"),
            fix=err.fix,
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
    # Unpinned (a maintainer's first local run): the largest module the registry allows.
    module_size = manifest.artifact.size or cap.module_size or 0
    return Limits(
        fuel=pick("fuel", base.fuel),
        memory=memory,
        wall_time=pick("wall_time", base.wall_time),
        table_elements=pick("table_elements", base.table_elements),
        instances=instances,
        stack=pick("stack", base.stack),
        memories=memories,
        # Room for the interpreter and wasmtime (~0.5 GiB of mappings), every memory at its cap, and
        # compiling the module: Cranelift's peak grows with the module (a 33 MB Go build peaked at
        # ~1 GiB, a 112 MB one at ~2.7 GiB), so a big module under a small memory limit still compiles.
        address_space=2 * 1024**3 + memory * memories * instances + _COMPILE_ROOM * module_size,
        compile_timeout=compile_timeout if compile_timeout is not None else _compile_time(config),
    )


_COMPILE_ROOM = 24  # bytes of address space per byte of module, on top of the 2 GiB


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
    from registry_tool.manifest.config import resolved_features

    limits = limits_for(manifest, config, compile_timeout=compile_timeout)
    abi = ABI_SPECS.get(manifest.abi)
    spec = EngineSpec(
        features=resolved_features(config.features),
        stack=limits.stack,
        component=bool(abi and abi.component),
        reservation=reservation_for(limits.memory),
    )
    check_features(spec)
    size_cap = config.max_limits.module_size
    try:
        info = manifest.wasm_path.stat()
    except OSError as err:
        raise SmokeSetupError(
            f"cannot read the artifact {manifest.artifact.file}: {err.strerror}",
            where=str(manifest.path),
            fix="build the module and put it beside plugin.toml",
        ) from None
    if not stat.S_ISREG(info.st_mode):
        # A FIFO or device (or a link to one): the worker refused it as "the engine crashed".
        raise SmokeSetupError(
            f"the artifact {manifest.artifact.file} is no regular file",
            where=str(manifest.path),
            fix="put the compiled module itself beside plugin.toml (not a FIFO, device or a link to one)",
        )
    size = info.st_size
    if size_cap is not None and size > size_cap:
        raise SmokeSetupError(
            f"{manifest.artifact.file} is {size} bytes, over the registry's module_size of {size_cap}",
            where=str(manifest.path),
            fix="shrink the module (wasm-opt -Oz, strip debug info)",
        )
    return Job(
        wasm_path=str(manifest.wasm_path),
        abi=manifest.abi,
        cases=_shared_bytes(case_from_spec(t, manifest.abi) for t in manifest.tests),
        limits=limits,
        engine=spec,
        policy=policy_for(manifest, config),
        program=manifest.artifact.file,
        cache_dir=str(default_cache_dir()) if cache else None,
        host=config.host_name,
    )


def smoke_release(
    manifest: Manifest,
    config: RegistryConfig,
    *,
    cache: bool = True,
    compile_timeout: float | None = None,
    worker: Worker | None = None,
) -> list[TestOutcome]:
    """Run every ``[[tests]]`` entry of one release under the registry's limits.

    ``worker``: one from ``start_worker`` that has not had a job yet; the caller closes it.
    """
    job = job_for(manifest, config, cache=cache, compile_timeout=compile_timeout)
    return run_job(job, worker) if job.cases else []


#: Outcomes that come from the module, not from the call a test makes.
_RELEASE_WIDE = frozenset({Outcome.link_error, Outcome.compile_error, Outcome.compile_timeout})


def _shared_bytes(cases: Iterable[Case]) -> list[Case]:
    """The cases, each distinct input or expected output held once.

    64 tests of one 4 MiB file were 512 MB of copies in the parent.
    """
    seen: dict[bytes, bytes] = {}
    out = []
    for case in cases:
        if case.input is not None:
            case.input = seen.setdefault(case.input, case.input)
        if isinstance(case.expect, bytes):
            case.expect = seen.setdefault(case.expect, case.expect)
        out.append(case)
    return out


def release_result(
    manifest: Manifest, outcomes: list[TestOutcome], config: RegistryConfig | None = None
) -> CheckResult:
    """The report entry of one release; ``data["tests"]`` is the stable per-test JSON.

    ``config``: the registry's configuration, for fixes that depend on its maxima.
    """
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

    # A module refused before any call (every test's link or compile error) is one finding, not one
    # per test.
    def _release_wide(o: TestOutcome) -> tuple[Outcome, str] | None:
        wide = o.outcome in _RELEASE_WIDE and o.expected == Outcome.passed.value
        return (o.outcome, o.detail) if wide else None

    alike = Counter(key for o in outcomes if (key := _release_wide(o)) is not None)
    told: set[tuple[Outcome, str]] = set()
    for spec, outcome in zip(manifest.tests, outcomes, strict=True):
        key = _release_wide(outcome)
        if key is not None and key in told:
            continue
        if not outcome.passed:
            if key is not None:
                told.add(key)
            others = alike[key] - 1 if key is not None else 0
            also = f" (so did {others} other test{'s' if others > 1 else ''})" if others else ""
            want = "" if outcome.expected == Outcome.passed.value else f" (expected {outcome.expected})"
            # A run that passed where a trap was expected has no detail of its own to show.
            detail = _own_fix(outcome)[0] or "the call returned normally"
            if outcome.outcome is Outcome.passed:
                rule = UNEXPECTED_PASS_RULE
                fix: str | None = (
                    f"the test expects {outcome.expected}: fix the plugin so that it ends so, or remove "
                    "expect_trap if returning normally is right"
                )
            else:
                rule = f"smoke-{outcome.outcome.value.replace('_', '-')}"
                fix = _fix_for(outcome, expected=outcome.expected)
                ceiling = config.max_limits.fuel if config is not None else None
                if (
                    outcome.outcome is Outcome.out_of_fuel
                    and outcome.expected == Outcome.passed.value
                    and ceiling is not None
                    and outcome.fuel_consumed is not None
                    and outcome.fuel_consumed >= ceiling
                ):
                    # Raising [limits].fuel cannot help: the test ran with the registry's maximum.
                    fix = (
                        f"the test used the registry's maximum fuel ({ceiling:,}, registry.toml "
                        "[limits.max] fuel): make the plugin's work cheaper, or ask the registry's "
                        "owners to raise that maximum"
                    )
            result.findings.append(
                Finding(
                    rule=rule,
                    message=f"test '{outcome.name}' ended in {outcome.outcome.value}{want}{also}: "
                    f"{detail}{_last_words(outcome)}",
                    file=str(manifest.path),
                    line=spec.line,
                    field=f"tests[{spec.index}]",
                    fix=fix,
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


# Causes the detail or the module's stderr names, with the fix that fits better than the
# outcome's generic one (checked in order; the text is matched as the sandbox and runtimes say it).
_KNOWN_CAUSES = (
    (NO_CALL, 'set call = "<export>" in the test\'s [[tests]] entry (validate lists the exports)'),
    (
        ARGS_COUNT_SAID,
        "the export is there: give the test's args exactly as many values as it takes parameters",
    ),
    (
        ARG_TYPE_SAID,
        "the export is there: give each of the test's args a value of its parameter's type "
        "(a whole number within range for i32/i64)",
    ),
    (
        # Cranelift's own limits (a br_table of a million targets): no [features] switch helps.
        "exceeds the implementation limit",
        "the module exceeds a limit of wasmtime's compiler (named above): rebuild it so that it stays "
        "within it, e.g. split the function",
    ),
    (
        "does not declare the 'network' permission",
        "declare the permission: set `network = true` under [permissions] (the registry's vocabulary "
        "must define it)",
    ),
    (
        "table minimum size of",  # wasmtime: "table minimum size of N elements exceeds table limits"
        "the module's initial table is larger than the registry allows: lower its size (fewer "
        "functions in the table), or raise [limits].table_elements up to registry.toml's "
        "[limits.max] table_elements",
    ),
    (
        "component ABI: calling",  # component.py: only wasi:cli/run is called
        "a component's tests run its wasi:cli/run export (a command component: argv, env, stdin, "
        "exit code); calling other exported functions is not supported yet: test them through run, "
        "or publish the logic as a core module",
    ),
    (COMMAND_BUILD_SAID, COMMAND_BUILD_FIX),  # proxy_wasm.py: a filter's start-up ran main and exited
    (
        "wasmexport function called before runtime initialization",
        "a Go command build (GOOS=wasip1 without -buildmode=c-shared) runs its exports only after "
        "_start: build the plugin as a reactor, go build -buildmode=c-shared with //go:wasmexport",
    ),
)


#: The finding of a test that expects a failure outcome (``expect_trap``) and returned normally.
UNEXPECTED_PASS_RULE = "smoke-unexpected-pass"  # noqa: S105 (a rule id)

#: A refused import's detail ends in validate's own fix for it (``worker._link_plan``).
_OWN_FIX = " (fix: "


def _own_fix(o: TestOutcome) -> tuple[str, str | None]:
    """(detail without its fix, the fix) of a refused import; (detail, None) for anything else.

    A finding shows one fix: the specific one the refusal names, not that and the generic one.
    """
    if o.outcome is Outcome.link_error and o.detail.endswith(")"):
        # The last marker: the detail names the module's import first, and an import name is the
        # module author's text.
        at = o.detail.rfind(_OWN_FIX)
        if at >= 0:
            return o.detail[:at], o.detail[at + len(_OWN_FIX) : -1]
    return o.detail, None


def _fix_for(o: TestOutcome, expected: str = Outcome.passed.value) -> str | None:
    """The fix of a failed test: a refused import's own, a known cause's, else the outcome's.

    A test that expects another failure (``expect_trap``) gets a specific fix when one is known,
    else the generic "fix the plugin or the test's expect_trap".
    """
    if expected != Outcome.passed.value:
        specific = _fix_for(o)
        if specific is not None and specific != _FIXES.get(o.outcome):
            return specific
        return (
            f"the test expects {expected} and the run ended in {o.outcome.value}: fix the plugin "
            "(the detail says why it ended so), or the test's expect_trap"
        )
    own = _own_fix(o)[1]
    if own is not None:
        return own
    for said, fix in _KNOWN_CAUSES:
        if said in o.detail or said in o.stderr:
            return fix
    if o.outcome is Outcome.memory_limit and o.detail.startswith("while compiling"):
        # The compiler's room, not the module's linear memory: [limits].memory does not change it.
        return (
            "the module is too large to compile in the sandbox (its address space is 2 GiB plus 24 "
            "bytes per byte of module): reduce its size or its number of functions"
        )
    if o.outcome is Outcome.compile_error:
        from registry_tool.manifest.wasm import feature_fix

        return feature_fix(o.detail)  # a disabled proposal named by wasmtime: its switch and flag
    return _FIXES.get(o.outcome)


def _last_words(o: TestOutcome) -> str:
    """The last line the module wrote to stderr, for the one-line finding (annotations show no log).

    A last line that is indented continues the one before it (Go's runtime writes the reason,
    then a tab and "call _start first"): both are shown.
    """
    lines = [line for line in o.stderr.splitlines() if line.strip()]
    if not lines:
        return ""
    cause = next((i for i in reversed(range(len(lines))) if _CAUSE_LINE.match(lines[i])), None)
    if cause is not None:  # a panic's own line, not the stack trace or the host log after it
        last = lines[cause]
        if last.endswith(":") and cause + 1 < len(lines):  # Rust: "...panicked at src/lib.rs:5:9:" + message
            last = f"{last} {lines[cause + 1].strip()}"
        return f" (stderr: {last[:200]})"
    last = lines[-1]
    if last[:1] in (" ", "\t") and len(lines) > 1:
        last = f"{lines[-2].strip()} / {last.strip()}"
    return f" (stderr: {last[:200]})"


# The line that says why a module died, as Go's runtime, Rust's std and wasi-libc's assert write it.
_CAUSE_LINE = re.compile(r"(panic: |fatal error: |thread '[^']*' panicked at |Assertion failed: )")


def _smoke_one(
    release_dir: Path,
    cache: bool,
    compile_timeout: float | None,
    worker: Worker | None = None,
    config_path: Path | None = None,
) -> CheckResult:
    # The worker starts first: its interpreter and imports (most of a one-test release) run while
    # this thread loads the registry configuration and the manifest.  A release that turns out to
    # have no tests, or not to load, costs a worker that is killed unused.
    if worker is None:
        worker = start_worker()
    from registry_tool.manifest import load_manifest, load_registry_config

    try:
        config = load_registry_config(config_path or release_dir)
        manifest = load_manifest(release_dir / "plugin.toml", config)
        outcomes = smoke_release(
            manifest, config, cache=cache, compile_timeout=compile_timeout, worker=worker
        )
        return release_result(manifest, outcomes, config)
    except UsageError:
        raise  # no registry.toml, unsupported features: the invocation is wrong, exit 2
    except RegistryToolError as err:
        findings = getattr(err, "findings", None) or [Finding.from_error(err)]
        return CheckResult(subject=str(release_dir), file=str(release_dir / "plugin.toml"), findings=findings)
    finally:
        worker.close()  # idempotent: a worker that ran the release is closed already


def smoke_paths(
    paths: Iterable[Path],
    *,
    jobs: int = 1,
    cache: bool = True,
    progress: Callable[[CheckResult], None] | None = None,
    compile_timeout: float | None = None,
    config_path: Path | None = None,
) -> Report:
    """Smoke-run every release under ``paths`` (index dirs, plugin dirs or release dirs).

    ``config_path``: the registry.toml to use, else the one found by walking up from each release
    (a plugin kept in its own repository is smoke-run against its registry's file).

    Releases run in parallel, ``jobs`` at a time (each in its own worker process).  The first
    release's worker starts before anything else, so its start overlaps finding the releases and
    importing the manifest modules.
    """
    first = start_worker()
    try:
        from registry_tool.manifest import find_releases

        releases: list[Path] = []
        for path in paths:
            if (why := unreachable(path)) is not None:
                raise SmokePathError(f"{path} {why}", where=str(path), fix="check the path")
            found = find_releases(path)
            if not found:  # a usage error, as validate answers it
                raise SmokePathError(
                    f"no release directory (one holding plugin.toml) under {path}",
                    where=str(path),
                    fix="pass an index, a plugins/<name> or a plugins/<name>/<version> directory",
                )
            releases += [r for r in found if r not in releases]
        workers = {releases[0]: first} if releases else {}
        report = Report(command="smoke")
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for result in pool.map(
                lambda r: _smoke_one(r, cache, compile_timeout, workers.pop(r, None), config_path), releases
            ):
                report.results.append(result)
                if progress:
                    progress(result)
        return report
    finally:
        first.close()  # idempotent: the first release closed it if it ran
