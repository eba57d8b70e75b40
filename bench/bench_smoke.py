"""Benchmark of the smoke harness (not a test): prints figures measured side by side in one run.

1. Harness cost per test vs bare wasmtime-py doing the same isolation (core, wasi-command), and a
   one-test release including the worker's start.
2. First (compile) vs cached (deserialize) start of a generated ~20 MB module.
3. Extism ABI per call vs the official Extism SDK, with one reused plugin and with a new plugin per call.
4. Cold compile of the real-plugin corpus (index/plugins) under the harness's engine config, with
   copy-on-write memory images off (the old config) and on (the current one).
5. Proxy-Wasm per-test cost: the whole lifecycle of one request, per test, in-process and in a worker.
6. A one-test release end to end (manifest load, job, worker start, cached compile, run) and
   ``run_job`` alone: wall and CPU time.

Run: .venv/bin/python bench/bench_smoke.py [overhead cache extism corpus proxy release]
"Before" figures: the same command with PYTHONPATH pointing at an extracted older tree (the worker
inherits PYTHONPATH), run in alternation with the current one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime

from registry_tool.sandbox import Case, EngineSpec, ImportPolicy, Job, Limits, run_job
from registry_tool.sandbox.abis import DEFAULT_ABI_RULES
from registry_tool.sandbox.engine import make_engine
from registry_tool.sandbox.worker import EpochTimer, Release, run_case, scratch_dir

ADD = '(module (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))'
EXTISM_C = Path(__file__).resolve().parents[1] / "tests" / "sandbox" / "modules" / "extism_shout.c"


def per_call(fn: Callable[[], object], seconds: float = 1.0, rounds: int = 5) -> float:
    """CPU seconds per call of this thread: the best of ``rounds`` means over ``seconds / rounds`` each.

    CPU time of the calling thread, not wall time: on a shared, loaded machine waiting for a core
    would count otherwise.  The best round: other jobs only ever add time (caches, frequency).
    """
    fn()
    best = float("inf")
    for _ in range(rounds):
        n, start, cpu = 0, time.perf_counter(), time.thread_time()
        while time.perf_counter() - start < seconds / rounds:
            fn()
            n += 1
        best = min(best, (time.thread_time() - cpu) / n)
    return best


def _cpu_with_children() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def side_by_side(fns: dict[str, Callable[[], object]], rounds: int = 7) -> dict[str, float]:
    """``per_call`` of each, measured in alternation so that each sees the same load."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], per_call(fn, seconds=0.15, rounds=1))
    return best


def job(path: Path, abi: str, cases: list[Case], cache_dir: Path | None = None, **limits: float) -> Job:
    return Job(
        str(path), abi, cases, Limits(**limits), EngineSpec(), ImportPolicy(DEFAULT_ABI_RULES[abi]),
        cache_dir=str(cache_dir) if cache_dir else None,
    )  # fmt: skip


WRITER = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "x")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 1))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""


def _bare_store(engine: wasmtime.Engine, limits: Limits) -> wasmtime.Store:
    """What the harness gives each test, written directly against wasmtime-py."""
    store = wasmtime.Store(engine)
    store.set_limits(
        memory_size=limits.memory, table_elements=limits.table_elements, instances=limits.instances
    )
    store.set_fuel(limits.fuel)
    store.set_epoch_deadline(200)
    return store


def _bare_core(engine: wasmtime.Engine, module: wasmtime.Module) -> Callable[[], object]:
    def one() -> object:
        store = _bare_store(engine, Limits())
        return wasmtime.Instance(store, module, []).exports(store)["add"](store, 2, 3)

    return one


def _bare_wasi(engine: wasmtime.Engine, module: wasmtime.Module, tmp: Path) -> Callable[[], object]:
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    scratch = Path(tempfile.mkdtemp(dir=scratch_dir()))  # where the worker puts them too
    files = [scratch / "bare-stdin", scratch / "bare-stdout", scratch / "bare-stderr"]

    def one() -> object:
        store = _bare_store(engine, Limits())
        for f in files:
            f.unlink(missing_ok=True)
            f.write_bytes(b"")
        wasi = wasmtime.WasiConfig()
        wasi.argv = ["plugin.wasm"]
        wasi.stdin_file, wasi.stdout_file, wasi.stderr_file = (str(f) for f in files)
        store.set_wasi(wasi)
        linker.instantiate(store, module).exports(store)["_start"](store)
        return files[1].read_bytes()

    return one


def _in_worker(path: Path, abi: str, case: Case, rounds: int = 5) -> tuple[float, float, float]:
    """In a worker: (CPU seconds per test, wall and CPU seconds of a one-test release incl. start).

    Per test: the difference between releases of 2,100 and 100 tests over 2,000, so the worker's
    start cancels out; CPU of this process and its workers.  Best of ``rounds`` each, alternating,
    after one run that warms the OS page cache.
    """
    run_job(job(path, abi, [case]))
    cpu: dict[int, float] = {}
    wall = float("inf")
    for _ in range(rounds):
        for n in (1, 100, 2100):
            start, used = time.perf_counter(), _cpu_with_children()
            outcomes = run_job(job(path, abi, [case] * n))
            cpu[n] = min(cpu.get(n, float("inf")), _cpu_with_children() - used)
            if n == 1:
                wall = min(wall, time.perf_counter() - start)
            assert all(o.passed for o in outcomes), outcomes[0]
    return (cpu[2100] - cpu[100]) / 2000, wall, cpu[1]


def bench_overhead(tmp: Path) -> None:
    """Per-test cost of the harness next to bare wasmtime-py doing the same isolation."""
    sandbox_engine = make_engine(EngineSpec())
    timer = EpochTimer(sandbox_engine)
    rows = []
    try:
        for abi, source, case in (
            ("core", ADD, Case("add", "add", [2, 3], expect_kind="values", expect=[5])),
            ("wasi-command", WRITER, Case("x", "_start", expect_kind="text", expect="x")),
        ):
            wasm = wasmtime.wat2wasm(source)
            path = tmp / f"{abi}.wasm"
            path.write_bytes(wasm)
            module = wasmtime.Module(sandbox_engine, wasm)
            bare_fn = (
                _bare_core(sandbox_engine, module)
                if abi == "core"
                else _bare_wasi(sandbox_engine, module, tmp)
            )
            release = Release(sandbox_engine, module, wasm, job(path, abi, [case]))
            work = Path(tempfile.mkdtemp(dir=scratch_dir()))
            assert run_case(release, case, work).passed
            figures = side_by_side(
                {
                    "bare": bare_fn,
                    "harness": lambda release=release, case=case, work=work: run_case(release, case, work),
                }
            )
            bare, in_process = figures["bare"], figures["harness"]
            worker_per_test, single_wall, single_cpu = _in_worker(path, abi, case)
            rows.append((abi, bare, in_process, worker_per_test, single_wall, single_cpu))
    finally:
        timer.stop()
    print("1. per-test CPU time: bare wasmtime-py with the same isolation (new store, limits, fuel, epoch")
    print(
        "   deadline, instance; WASI files for wasi-command) vs a harness test, in-process and in a worker;"
    )
    print("   a one-test release including the worker's start (wall time and CPU time)")
    for abi, bare, in_process, per_test, wall, cpu in rows:
        print(
            f"   {abi:13} bare {bare * 1e6:6.1f} us | harness in-process {in_process * 1e6:6.1f} us "
            f"({in_process / bare:.2f}x) | in a worker {per_test * 1e6:6.1f} us ({per_test / bare:.2f}x) | "
            f"one-test release {wall * 1e3:5.0f} ms wall, {cpu * 1e3:5.0f} ms CPU"
        )


RELEASE_TOML = """[plugin]
name = "add"
version = "1.0.0"
description = "adds two numbers"
authors = ["bench"]
license = "MIT"
abi = "core"
min_host_version = "0.2.0"

[artifact]
file = "add.wasm"

[exports]
functions = ["add"]

[[tests]]
name = "adds"
call = "add"
args = [2, 3]
expect = [5]
"""


def bench_release(tmp: Path, rounds: int = 7) -> None:
    """A one-test release as ``smoke`` runs it: registry.toml and plugin.toml loaded, the job made,
    the worker started, the module loaded from the compile cache, the test run, the report entry made.

    Wall and CPU time (this process and its workers), best and median of ``rounds`` after one run
    that fills the compile cache and warms this process's imports; ``run_job`` alone (the job
    already made) next to it in alternation.
    """
    import os
    import statistics

    from registry_tool.sandbox import smoke_paths

    release = tmp / "index" / "plugins" / "add" / "1.0.0"
    release.mkdir(parents=True)
    (tmp / "index" / "registry.toml").write_text((INDEX / "registry.toml").read_text())
    (release / "plugin.toml").write_text(RELEASE_TOML)
    (release / "add.wasm").write_bytes(wasmtime.wat2wasm(ADD))
    os.environ["REGISTRY_TOOL_CACHE_DIR"] = str(tmp / "cache")
    case = Case("adds", "add", [2, 3], expect_kind="values", expect=[5])
    the_job = job(release / "add.wasm", "core", [case], cache_dir=tmp / "cache")

    def whole() -> None:
        report = smoke_paths([release])
        assert report.results[0].ok, report.results[0].findings

    def run() -> None:
        assert run_job(the_job)[0].passed

    def floor() -> None:
        # What no worker can avoid: the interpreter started as the harness starts it, and wasmtime.
        command = [sys.executable, "-P", "-c", "import wasmtime"]
        subprocess.run(command, check=True, env={"PATH": os.environ.get("PATH", "")})

    figures: dict[str, tuple[list[float], list[float]]] = {"smoke_paths": ([], []), "run_job": ([], []),
                                                            "floor": ([], [])}  # fmt: skip
    whole()
    run()
    for _ in range(rounds):
        for name, fn in (("smoke_paths", whole), ("run_job", run), ("floor", floor)):
            start, used = time.perf_counter(), _cpu_with_children()
            fn()
            figures[name][0].append(time.perf_counter() - start)
            figures[name][1].append(_cpu_with_children() - used)
    print("6. one-test release including the worker's start (core add, compile cache warm), wall and CPU;")
    print("   floor: python -P -c 'import wasmtime' (the interpreter and wasmtime, nothing of ours)")
    for name, (walls, cpus) in figures.items():
        print(
            f"   {name:11} wall best {min(walls) * 1e3:5.0f} ms, median {statistics.median(walls) * 1e3:5.0f}"
            f" ms | CPU best {min(cpus) * 1e3:4.0f} ms, median {statistics.median(cpus) * 1e3:4.0f} ms"
        )


def _big_module(target_bytes: int) -> bytes:
    ops = " ".join(
        f"(local.set 1 (i32.xor (i32.mul (local.get 1) (i32.const {k * 2654435761 % 2**31}))"
        f" (i32.add (local.get 0) (i32.const {k}))))"
        for k in range(400)
    )
    one = f'(func (export "f{{}}") (param i32) (result i32) (local i32) {ops} (local.get 1))'
    size = len(wasmtime.wat2wasm(f"(module {one.format(0)})"))
    count = max(1, target_bytes // size)
    return wasmtime.wat2wasm("(module " + "".join(one.format(i) for i in range(count)) + ")")


def bench_cache(tmp: Path) -> None:
    wasm = _big_module(20 * 1024 * 1024)
    path = tmp / "big.wasm"
    path.write_bytes(wasm)
    cache = tmp / "cache"
    case = [Case("f0", "f0", [1])]
    start = time.perf_counter()
    first = run_job(job(path, "core", case, cache_dir=cache, compile_timeout=600))
    cold = time.perf_counter() - start
    start = time.perf_counter()
    second = run_job(job(path, "core", case, cache_dir=cache))
    warm = time.perf_counter() - start
    assert first[0].outcome.value == second[0].outcome.value == "passed", (first, second)

    engine = make_engine(EngineSpec())
    start = time.perf_counter()
    module = wasmtime.Module(engine, wasm)
    compile_s = time.perf_counter() - start
    serialized = tmp / "big.cwasm"
    serialized.write_bytes(module.serialize())
    start = time.perf_counter()
    wasmtime.Module.deserialize_file(engine, str(serialized))
    load_s = time.perf_counter() - start
    print(f"2. start of a {len(wasm) / 1e6:.1f} MB module (one test, whole release incl. worker start)")
    print(f"   first run (compile + store in cache):            {cold * 1e3:10.1f} ms")
    print(
        f"   cached run (deserialize):                        {warm * 1e3:10.1f} ms  "
        f"({cold / warm:.0f}x faster)"
    )
    print(
        f"   in-process: compile {compile_s * 1e3:.0f} ms vs deserialize {load_s * 1e3:.1f} ms "
        f"({compile_s / load_s:.0f}x)"
    )


def bench_extism(tmp: Path) -> None:
    try:
        import extism
    except ImportError:
        print("3. extism SDK not installed: skipped")
        return
    clang = shutil.which("clang")
    if clang is None:
        print("3. clang not installed: skipped")
        return
    out = tmp / "shout.wasm"
    subprocess.run(
        [clang, "--target=wasm32-unknown-unknown", "-O2", "-nostdlib", "-Wl,--no-entry", "-o", str(out),
         str(EXTISM_C)],
        check=True,
    )  # fmt: skip
    wasm = out.read_bytes()
    print("3. Extism ABI, export shout (upper-cases its input byte by byte through input_load_u8/store_u8);")
    print("   SDK reused: one extism.Plugin for every call; SDK new: a new extism.Plugin per call (the")
    print("   isolation the harness gives each test: new store, kernel instance, plugin instance)")
    for size in (64, 4096, 1024**2):
        data = b"a" * size
        plugin = extism.Plugin(wasm, wasi=False)
        case = Case("shout", "shout", input=data)
        engine = make_engine(EngineSpec())
        release = Release(engine, wasmtime.Module(engine, wasm), wasm, job(out, "extism", [case], fuel=10**9))
        timer = EpochTimer(engine)
        try:
            assert run_case(release, case, tmp).passed
            figures = side_by_side(
                {
                    "reused": lambda data=data, plugin=plugin: plugin.call("shout", data),
                    "new": lambda data=data: extism.Plugin(wasm, wasi=False).call("shout", data),
                    "harness": lambda release=release, case=case: run_case(release, case, tmp),
                },
                rounds=5 if size < 1024**2 else 2,
            )
        finally:
            timer.stop()
        reused, new, ours = figures["reused"], figures["new"], figures["harness"]
        label = f"{size // 1024**2} MiB" if size >= 1024**2 else f"{size} B"
        print(
            f"   {label:>6}: SDK reused {reused * 1e6:8.1f} us, SDK new {new * 1e6:8.1f} us, "
            f"harness {ours * 1e6:8.1f} us CPU per call "
            f"({ours / new:.2f}x SDK new, {ours / reused:.1f}x SDK reused)"
        )
    # The per-test floor: an Extism export that returns at once, next to the same in the core ABI.
    empty = tmp / "empty.wasm"
    empty.write_bytes(wasmtime.wat2wasm('(module (func (export "f") (result i32) (i32.const 0)))'))
    floor = {
        abi: _harness_per_call(empty.read_bytes(), job(empty, abi, [Case("f", "f")]), tmp)
        for abi in ("core", "extism")
    }
    print(
        f"   per-test floor (export returning 0 at once): extism {floor['extism'] * 1e6:.0f} us, "
        f"core {floor['core'] * 1e6:.0f} us"
    )


def _harness_per_call(wasm: bytes, the_job: Job, tmp: Path) -> float:
    engine = make_engine(the_job.engine)
    release = Release(engine, wasmtime.Module(engine, wasm), wasm, the_job)
    timer = EpochTimer(engine)
    try:
        first = run_case(release, the_job.cases[0], tmp)
        assert first.passed, first  # a figure of a failing test would measure the failure
        return per_call(lambda: run_case(release, the_job.cases[0], tmp))
    finally:
        timer.stop()


INDEX = Path(__file__).resolve().parents[1] / "index"


def _cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_corpus_compile() -> None:
    from registry_tool.sandbox.engine import make_config

    corpus = sorted(p for p in INDEX.glob("plugins/*/*/*.wasm") if p.stat().st_size > 100_000)
    print("4. cold compile of the real-plugin corpus (CPU seconds, serial, harness engine config)")
    totals = {False: 0.0, True: 0.0}
    for path in corpus:
        wasm = path.read_bytes()
        figures = {}
        for cow in (False, True):
            config = make_config(EngineSpec())
            config.memory_init_cow = cow
            engine = wasmtime.Engine(config)
            start = _cpu()
            wasmtime.Module(engine, wasm)
            figures[cow] = _cpu() - start
            totals[cow] += figures[cow]
        print(
            f"   {path.parent.parent.name:14} {len(wasm) / 1e6:5.1f} MB: copy-on-write off "
            f"{figures[False]:6.1f} s, on {figures[True]:5.1f} s ({figures[False] / figures[True]:.1f}x)"
        )
    print(f"   corpus total: off {totals[False]:.1f} s, on {totals[True]:.1f} s "
          f"({totals[False] / max(totals[True], 1e-9):.1f}x)")  # fmt: skip


def bench_proxy_wasm(tmp: Path) -> None:
    from registry_tool.manifest import load_manifest, load_registry_config
    from registry_tool.sandbox.harness import job_for

    config = load_registry_config(INDEX)
    manifest = load_manifest(INDEX / "plugins" / "header_gate" / "1.0.0", config)
    the_job = job_for(manifest, config, cache=False)
    wasm = Path(the_job.wasm_path).read_bytes()
    print("5. proxy-wasm: one test = new store, WASI files, instantiate (36 host functions linked once per")
    print("   release), _initialize,")
    print("   root context, vm_start, configure, http context, 4 callbacks, done/log/delete")
    for case in the_job.cases[:2]:
        single = Job(**{**the_job.__dict__, "cases": [case]})
        per = _harness_per_call(wasm, single, tmp)
        print(f"   header_gate (Go SDK, 3.3 MB) '{case.name}': {per * 1e3:7.2f} ms per test (in-process)")
    batch = Job(**{**the_job.__dict__, "cases": [the_job.cases[0]] * 50, "cache_dir": str(tmp / "c")})
    run_job(Job(**{**batch.__dict__, "cases": batch.cases[:1]}))  # fill the compile cache
    start = time.perf_counter()
    run_job(Job(**{**batch.__dict__, "cases": batch.cases[:1]}))
    one = time.perf_counter() - start
    start = time.perf_counter()
    run_job(batch)
    fifty = time.perf_counter() - start
    print(f"   in a worker (cached compile): {(fifty - one) / 49 * 1e3:.2f} ms per extra test, "
          f"{one * 1e3:.0f} ms for a one-test release")  # fmt: skip
    clang = shutil.which("clang")
    if clang is not None:
        source = Path(__file__).resolve().parents[1] / "tests" / "sandbox" / "modules" / "proxy_filter.c"
        out = tmp / "proxy_filter.wasm"
        subprocess.run([clang, "--target=wasm32-unknown-unknown", "-O2", "-nostdlib", "-Wl,--no-entry",
                        "-o", str(out), str(source)], check=True)  # fmt: skip
        case = Case("headers", http={"plugin_config": "headers", "response_body": "x"})
        small = job(out, "proxy-wasm", [case])
        per = _harness_per_call(out.read_bytes(), small, tmp)
        print(f"   C filter (4 KB, no runtime to initialise): {per * 1e3:.2f} ms per test (in-process)")


def main() -> None:
    only = set(sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp:
        if not only or "overhead" in only:
            bench_overhead(Path(tmp))
        if not only or "cache" in only:
            bench_cache(Path(tmp))
        if not only or "extism" in only:
            bench_extism(Path(tmp))
        if not only or "corpus" in only:
            bench_corpus_compile()
        if not only or "proxy" in only:
            bench_proxy_wasm(Path(tmp))
        if not only or "release" in only:
            bench_release(Path(tmp))


if __name__ == "__main__":
    main()
