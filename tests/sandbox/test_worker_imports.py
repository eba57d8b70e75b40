"""The worker's start: it imports only what running a release needs, never the parent's modules.

Every module a worker imports is CPU time before its first test (the one-test release is mostly
interpreter and import time).  These tests run the real worker entry point the way the harness
starts it (``WORKER_COMMAND``, ``-P``, the harness's environment) and read the worker's own
``sys.modules`` as it exits, so a new top-level import of a heavy module fails here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

import pytest

from registry_tool.sandbox import Case, EngineSpec, ImportPolicy, Job, Limits, Outcome, protocol
from registry_tool.sandbox.abis import DEFAULT_ABI_RULES
from registry_tool.sandbox.harness import _ALLOWED_ENV, WORKER_COMMAND

from .conftest import WRITER, wat

ADD = '(module (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))'

#: Run the worker's ``__main__`` as ``-m`` does, and print its ``sys.modules`` when it exits
#: (through ``os._exit``, which skips ``atexit``, or the ordinary way).
_REPORT_MODULES = """
import atexit, json, os, runpy, sys
exit_now = os._exit
def report():
    sys.stderr.write("MODULES " + json.dumps(sorted(sys.modules)) + "\\n")
    sys.stderr.flush()
def report_and_exit(code):
    report()
    exit_now(code)
os._exit = report_and_exit
atexit.register(report)
runpy.run_module("registry_tool.sandbox.worker", run_name="__main__", alter_sys=True)
"""

#: What a core or WASI release's worker must not import: the parent's modules (manifest parsing,
#: schema validation, TOML, signatures, reports, the terminal), the other ABIs' runners and the
#: component model's bindings, and the standard-library modules it does without (``tempfile`` and
#: what it pulls in, ``importlib.metadata`` for the wasmtime version, which the parent sends).
HEAVY = (
    "jsonschema",
    "fastjsonschema",
    "tomlkit",
    "tomllib",
    "cryptography",
    "rich",
    "typer",
    "platformdirs",
    "semantic_version",
    "registry_tool.manifest.config",
    "registry_tool.manifest.model",
    "registry_tool.manifest.validate",
    "registry_tool.report",
    "registry_tool.sandbox.harness",
    "registry_tool.sandbox.component",
    "registry_tool.sandbox.proxy_wasm",
    "wasmtime.component",
    "tempfile",
    "shutil",
    "importlib.metadata",
)


def _records(results: IO[bytes]) -> list[protocol.Record]:
    return protocol.ResultsFile(results.fileno()).read()


def _worker_modules(job: Job) -> set[str]:
    """Run ``job`` in a worker started like the harness starts one; its ``sys.modules`` at exit."""
    command = [*WORKER_COMMAND[: WORKER_COMMAND.index("-m")], "-c", _REPORT_MODULES]
    with tempfile.TemporaryFile() as results:
        proc = subprocess.run(
            command,
            input=json.dumps({"job": job.to_json(), "start": 0, "results_fd": results.fileno()}).encode(),
            capture_output=True,
            env={k: v for k, v in os.environ.items() if k in _ALLOWED_ENV},
            pass_fds=(results.fileno(),),
            check=False,
            timeout=120,
        )
        err = proc.stderr.decode()
        assert proc.returncode == 0, err
        assert proc.stdout == protocol.END
        records = _records(results)
    assert [r.kind for r in records] == ["compiled", "test"]
    assert records[1].outcome is Outcome.passed, records[1].detail
    [line] = [ln for ln in err.splitlines() if ln.startswith("MODULES ")]
    return set(json.loads(line.removeprefix("MODULES ")))


@pytest.mark.parametrize(
    ("abi", "source", "case"),
    [
        ("core", ADD, Case("add", "add", [2, 3], expect_kind="values", expect=[5])),
        ("wasi-command", WRITER, Case("x", "_start", expect_kind="text", expect="x")),
    ],
    ids=["core", "wasi-command"],
)
def test_worker_imports_none_of_the_heavy_modules(tmp_path: Path, abi: str, source: str, case: Case) -> None:
    wasm = tmp_path / "plugin.wasm"
    wasm.write_bytes(wat(source))
    cache = tmp_path / "cache"

    def job() -> Job:
        policy = ImportPolicy(DEFAULT_ABI_RULES[abi])
        return Job(str(wasm), abi, [case], Limits(), EngineSpec(), policy, cache_dir=str(cache))

    _worker_modules(job())  # fills the compile cache (a miss may import tempfile to write it)
    modules = _worker_modules(job())  # a hit: the usual start of a worker
    assert {"wasmtime", "registry_tool.sandbox.engine"} <= modules  # the worker ran (as __main__)
    assert sorted(modules.intersection(HEAVY)) == []


#: The worker's entry point with its scratch file system moved to the directory in argv[1].
_SCRATCH_IN = """
import sys
from pathlib import Path
import registry_tool.sandbox.worker as worker
worker.SHM = Path(sys.argv[1])
worker.main()
"""


def test_scratch_directory_is_gone_when_the_last_result_arrives(tmp_path: Path) -> None:
    """The parent kills a worker as soon as it has read the last result, so the worker removes its
    scratch directory (the tests' WASI files) before it writes that result: none is left behind."""
    wasm = tmp_path / "plugin.wasm"
    wasm.write_bytes(wat(WRITER))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    case = Case("x", "_start", expect_kind="text", expect="x")
    job = Job(
        str(wasm),
        "wasi-command",
        [case, case],
        Limits(),
        EngineSpec(),
        ImportPolicy(DEFAULT_ABI_RULES["wasi-command"]),
    )
    command = [*WORKER_COMMAND[: WORKER_COMMAND.index("-m")], "-c", _SCRATCH_IN, str(scratch)]
    with tempfile.TemporaryFile() as results:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if k in _ALLOWED_ENV},
            pass_fds=(results.fileno(),),
            start_new_session=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        request = {"job": job.to_json(), "start": 0, "results_fd": results.fileno()}
        proc.stdin.write(json.dumps(request).encode())
        proc.stdin.close()
        try:
            # Poll as the parent does; stop at the first read that has the last record.
            reader, records = protocol.ResultsFile(results.fileno()), []
            while len(records) < 3:
                records += reader.read()
                left = list(scratch.iterdir())  # read right after: the worker may do nothing more
                if len(records) < 3:
                    time.sleep(0.001)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # as the harness does after the last result
            proc.wait()
    assert [r.kind for r in records] == ["compiled", "test", "test"]
    assert left == []
    assert all(r.outcome is Outcome.passed for r in records[1:])
