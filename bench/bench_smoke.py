"""Benchmark of the smoke harness (not a test): prints figures measured side by side in one run.

1. Harness overhead per test vs a bare wasmtime-py call of the same export.
2. First (compile) vs cached (deserialize) start of a generated ~20 MB module.
3. Extism-ABI throughput of our native host implementation vs the official Extism SDK.
4. Cold compile of the real-plugin corpus (index/plugins) under the harness's engine config, with
   copy-on-write memory images off (the old config) and on (the current one).
5. Proxy-Wasm per-test cost: the whole lifecycle of one request, per test, in-process and in a worker.

Run: .venv/bin/python bench/bench_smoke.py [overhead cache extism corpus proxy]
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime

from registry_tool.sandbox import Case, EngineSpec, ImportPolicy, Job, Limits, run_job
from registry_tool.sandbox.abis import DEFAULT_ABI_RULES
from registry_tool.sandbox.engine import make_engine
from registry_tool.sandbox.worker import EpochTimer, run_case

ADD = '(module (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))'
EXTISM_C = Path(__file__).resolve().parents[1] / "tests" / "sandbox" / "modules" / "extism_shout.c"


def per_call(fn: Callable[[], object], seconds: float = 1.0) -> float:
    """Mean seconds per call over about ``seconds`` of repetition."""
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return (time.perf_counter() - start) / n


def job(path: Path, abi: str, cases: list[Case], cache_dir: Path | None = None, **limits: float) -> Job:
    return Job(
        str(path), abi, cases, Limits(**limits), EngineSpec(), ImportPolicy(DEFAULT_ABI_RULES[abi]),
        cache_dir=str(cache_dir) if cache_dir else None,
    )  # fmt: skip


def bench_overhead(tmp: Path) -> None:
    wasm = wasmtime.wat2wasm(ADD)
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    add = wasmtime.Instance(store, wasmtime.Module(engine, wasm), []).exports(store)["add"]
    bare = per_call(lambda: add(store, 2, 3))

    case = Case("add", "add", [2, 3], expect_kind="values", expect=[5])
    path = tmp / "add.wasm"
    path.write_bytes(wasm)
    the_job = job(path, "core", [case])
    sandbox_engine = make_engine(the_job.engine)
    module = wasmtime.Module(sandbox_engine, wasm)
    timer = EpochTimer(sandbox_engine)
    in_process = per_call(lambda: run_case(sandbox_engine, module, wasm, the_job, case, tmp))
    timer.stop()

    batch = job(path, "core", [case] * 200)
    start = time.perf_counter()
    run_job(batch)
    worker_per_test = (time.perf_counter() - start) / 200
    start = time.perf_counter()
    run_job(job(path, "core", [case]))
    worker_single = time.perf_counter() - start

    print("1. overhead per call, export add(i32, i32) -> i32")
    print(f"   bare wasmtime-py call (reused store/instance):   {bare * 1e6:10.1f} us")
    print(
        f"   harness test, in-process (store+link+instance):  {in_process * 1e6:10.1f} us  "
        f"({in_process / bare:.0f}x)"
    )
    print(
        f"   harness test, in worker, 200 tests per worker:   {worker_per_test * 1e6:10.1f} us  "
        f"({worker_per_test / bare:.0f}x)"
    )
    print(f"   harness, one-test release incl. worker start:    {worker_single * 1e3:10.1f} ms")


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
    print("3. Extism ABI, export shout (upper-cases its input byte by byte through input_load_u8/store_u8;")
    print("   the harness runs each call as a test: new store, kernel instance, WASI files, plugin instance)")
    for size in (64, 4096, 1024**2):
        data = b"a" * size
        plugin = extism.Plugin(wasm, wasi=False)
        sdk = per_call(lambda data=data, plugin=plugin: plugin.call("shout", data))

        case = Case("shout", "shout", input=data)
        ours = _harness_per_call(wasm, job(out, "extism", [case], fuel=10**9), tmp)
        label = f"{size // 1024**2} MiB" if size >= 1024**2 else f"{size} B"
        print(
            f"   {label:>6} input: official SDK {1 / sdk:9.0f} calls/s ({size / sdk / 1e6:7.2f} MB/s), "
            f"harness {1 / ours:7.0f} calls/s ({size / ours / 1e6:7.2f} MB/s); "
            f"SDK is {ours / sdk:.1f}x faster"
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
    module = wasmtime.Module(engine, wasm)
    timer = EpochTimer(engine)
    try:
        return per_call(lambda: run_case(engine, module, wasm, the_job, the_job.cases[0], tmp))
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
    print("5. proxy-wasm: one test = new store, WASI, 36 host functions, instantiate, _initialize,")
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
    import sys

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


if __name__ == "__main__":
    main()
