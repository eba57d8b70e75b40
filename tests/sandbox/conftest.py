"""Fixtures for the sandbox tests: build modules (WAT, clang, Go) and run them through real workers."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from registry_tool.sandbox import Case, EngineSpec, ImportPolicy, Job, Limits, TestOutcome, run_job
from registry_tool.sandbox.abis import DEFAULT_ABI_RULES

HERE = Path(__file__).parent
WASI_C = HERE / "modules"
#: The documented per-test JSON of a smoke run (docs/sandbox.md), in its order.
OUTCOME_FIELDS = (
    "name",
    "outcome",
    "expected",
    "passed",
    "fuel_consumed",
    "peak_memory_bytes",
    "wall_ms",
    "stdout",
    "stderr",
    "detail",
)


# A WASI command that writes "x" to stdout.
WRITER = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "x")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 1))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""


def wat(text: str) -> bytes:
    return wasmtime.wat2wasm(text)


class Runner:
    """Runs a module's cases in real worker processes and remembers how long it took."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.elapsed = 0.0

    def __call__(
        self,
        wasm: bytes,
        cases: list[Case] | Case,
        *,
        abi: str = "core",
        features: dict[str, bool] | None = None,
        granted: list[str] | None = None,
        permission_rules: list[Any] | None = None,
        cache_dir: Path | None = None,
        component: bool = False,
        host: str = "ferrite",
        **limits: Any,
    ) -> list[TestOutcome]:
        path = self.tmp / f"{hashlib.sha256(wasm).hexdigest()[:16]}.wasm"
        path.write_bytes(wasm)
        spec = (
            EngineSpec(component=component) if features is None else EngineSpec(features, component=component)
        )
        job = Job(
            wasm_path=str(path),
            abi=abi,
            cases=[cases] if isinstance(cases, Case) else cases,
            limits=Limits(**limits),
            engine=spec,
            policy=ImportPolicy(DEFAULT_ABI_RULES[abi], permission_rules or [], granted or []),
            cache_dir=str(cache_dir) if cache_dir else None,
            host=host,
        )
        start = time.monotonic()
        outcomes = run_job(job)
        self.elapsed = time.monotonic() - start
        return outcomes


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


# --------------------------------------------------------------------------- toolchains


def _clang() -> str:
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed")
    return clang


@pytest.fixture(scope="session")
def build_c(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., bytes]:
    """Compile C from tests/sandbox/modules (cached for the session)."""
    out_dir = tmp_path_factory.mktemp("c-build")
    built: dict[tuple[str, str], bytes] = {}

    def build(name: str, target: str = "wasi") -> bytes:
        key = (name, target)
        if key not in built:
            out = out_dir / f"{name}-{target}.wasm"
            src = str(WASI_C / f"{name}.c")
            if target == "wasi":
                cmd = [_clang(), "--target=wasm32-wasi", "-O2", "-o", str(out), src]
            elif target == "reactor":  # a WASI reactor: _initialize instead of _start
                cmd = [_clang(), "--target=wasm32-wasi", "-mexec-model=reactor", "-O2", "-o", str(out), src]
            else:  # a freestanding module (Extism plugins)
                cmd = [
                    _clang(),
                    "--target=wasm32-unknown-unknown",
                    "-O2",
                    "-nostdlib",
                    "-Wl,--no-entry",
                    "-o",
                    str(out),
                    src,
                ]
            subprocess.run(cmd, check=True, capture_output=True, timeout=120)
            built[key] = out.read_bytes()
        return built[key]

    return build


@pytest.fixture(scope="session")
def go_command(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A Go GOOS=wasip1 command (echoes stdin upper-cased, prints argv count); skipped without go."""
    go = shutil.which("go") or (shutil.which("go", path="/usr/local/go/bin"))
    if go is None:
        pytest.skip("go is not installed")
    work = tmp_path_factory.mktemp("go-build")
    (work / "go.mod").write_text("module smoketest\n\ngo 1.21\n")
    (work / "main.go").write_text((WASI_C / "upper.go").read_text())
    env = dict(os.environ, GOOS="wasip1", GOARCH="wasm", GOCACHE=str(work / "cache"), GOFLAGS="-mod=mod")
    env.setdefault("HOME", str(work))
    try:
        subprocess.run(
            [go, "build", "-o", "upper.wasm", "."],
            cwd=work,
            env=env,
            check=True,
            capture_output=True,
            timeout=90,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"go build for wasip1 failed or took too long: {err}")
    return (work / "upper.wasm").read_bytes()


class KernelInStore:
    """An Extism kernel linked the way a test links it, in a store of its own capped at ``cap``."""

    def __init__(self, data: bytes = b"", config: dict[str, str] | None = None, *, cap: int) -> None:
        from registry_tool.sandbox.abis import ExtismAdapter

        engine = wasmtime.Engine()
        self.store = wasmtime.Store(engine)
        self.store.set_limits(memory_size=cap)
        linker = wasmtime.Linker(engine)
        adapter = ExtismAdapter(ImportPolicy())
        adapter.define(linker, engine)
        self.kernel = adapter.begin(
            linker, self.store, Case("kernel", input=data, config=config or {})
        ).kernel
        self.memory = self.kernel.memory

    def __getattr__(self, name: str) -> Any:
        return getattr(self.kernel, name)
