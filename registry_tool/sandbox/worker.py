"""The isolated worker: compiles one module and runs its tests under the limits it is handed.

Run as ``python -m registry_tool.sandbox.worker``.  It reads one JSON job on stdin and appends one
record per event (``compiled``, then ``test`` per case; ``protocol``) to the results file the parent
handed it, so the parent can time the compile phase and each test separately and knows which test a
crash interrupted.  The untrusted
module's own stdout/stderr go to capped temp files, never to this process's streams.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import functools
import json
import math
import os
import re
import resource
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import wasmtime

from registry_tool._files import MiB, read_bounded
from registry_tool.errors import UNPRINTABLE
from registry_tool.format.rules import MAX_MODULE_BYTES
from registry_tool.manifest.abi import (
    ABI_SPECS,
    WASI,
    WASI_UNSTABLE,
    gated_module,
    import_refusal,
    link_import,
)
from registry_tool.manifest.binary import export_signature
from registry_tool.sandbox import protocol
from registry_tool.sandbox.abis import (
    LOG_CAP,
    LOG_LIMIT_MESSAGE,
    SLEPT_PAST_DEADLINE,
    Adapter,
    Case,
    DeterministicWasi,
    Exports,
    ImportPolicy,
    KeyValueStub,
    LinkRefusedError,
    MissingExportError,
    PollFallback,
    Produced,
    define_stubs,
    format_values,
)
from registry_tool.sandbox.engine import EPOCH_TICK_S, EngineSpec, Limits, ModuleCache, cache_key, make_engine
from registry_tool.sandbox.outcome import Outcome, TestOutcome, shown, shown_tail
from registry_tool.sandbox.runners import adapter_class

if TYPE_CHECKING:
    from collections.abc import Callable

    from registry_tool.sandbox.component import ComponentAdapter

_RESOURCE_LIMIT = re.compile(r"(minimum size of .* exceeds|resource limit exceeded|limit.* exceeded)", re.I)
_AT_CAP = 15 / 16  # a failed run whose memory/table reached this share of its cap hit the limit


@dataclass
class Job:
    """Everything a worker needs; crosses the process boundary as JSON."""

    wasm_path: str
    abi: str
    cases: list[Case]
    limits: Limits
    engine: EngineSpec
    policy: ImportPolicy
    program: str = "plugin.wasm"
    cache_dir: str | None = None
    #: The registry's host name: permission-granted ``<host>:keys`` imports get the key-value stub.
    host: str = "ferrite"

    def to_json(self) -> dict[str, Any]:
        """The job as JSON (the worker's stdin).

        Each distinct input or expected output once (``blobs``), the cases naming it: 64 tests of
        one 4 MiB file made a 680 MB job and took the parent to 2.4 GB.
        """
        blobs: dict[bytes, int] = {}

        def blob(data: bytes) -> dict[str, int]:
            return {"blob": blobs.setdefault(data, len(blobs))}

        cases = [c.to_json(blob) for c in self.cases]
        return {
            "wasm_path": self.wasm_path,
            "abi": self.abi,
            "cases": cases,
            "blobs": [base64.b64encode(b).decode() for b in blobs],
            "limits": self.limits.to_json(),
            # Resolved here: the worker gets wasmtime's switches, not the registry's feature table.
            "engine": asdict(self.engine.resolved()),  # EngineSpec(**data["engine"]) reads it back
            "policy": self.policy.to_json(),
            "program": self.program,
            "cache_dir": self.cache_dir,
            "host": self.host,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        """The job back from ``to_json``."""
        blobs = [base64.b64decode(b) for b in data.get("blobs", [])]
        return cls(
            wasm_path=data["wasm_path"],
            abi=data["abi"],
            cases=[Case.from_json(c, blobs) for c in data["cases"]],
            limits=Limits.from_json(data["limits"]),
            engine=EngineSpec(**data["engine"]),
            policy=ImportPolicy.from_json(data["policy"]),
            program=data["program"],
            cache_dir=data["cache_dir"],
            host=data.get("host", "ferrite"),
        )


# --------------------------------------------------------------------------- process limits


def apply_process_limits(limits: Limits, n_cases: int) -> None:
    """Address-space and CPU-time ceilings, so a runaway in wasmtime itself cannot take the host."""
    resource.setrlimit(resource.RLIMIT_AS, (limits.address_space, limits.address_space))
    # CPU time counts every thread, and wasmtime compiles on one per core: a compile within its
    # wall-clock compile_time may use compile_time x cores of CPU (the compile timeout, not this
    # ceiling, is what must end a slow compile).
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cpu = math.ceil(limits.compile_timeout * 2 * cores + n_cases * (limits.wall_time + 1) + 5)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    # Output files are capped by RLIMIT_FSIZE during runs: writes past it fail with EFBIG
    # instead of killing the worker.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _set_file_cap(cap: int) -> None:
    global _FSIZE_HARD  # read once: nothing in the worker changes the hard limit
    if _FSIZE_HARD is None:
        _FSIZE_HARD = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (cap, _FSIZE_HARD))


_FSIZE_HARD: int | None = None


class EpochTimer:
    """Advances the engine's epoch every tick; a store's deadline is counted in ticks."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        """Start ticking ``engine``'s epoch every ``EPOCH_TICK_S``."""
        self._engine = engine
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="epoch")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(EPOCH_TICK_S):
            self._engine.increment_epoch()

    def stop(self) -> None:
        """Stop ticking and join the thread."""
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- compile


def compile_module(engine: wasmtime.Engine, wasm: bytes, spec: EngineSpec, cache: ModuleCache | None) -> Any:
    """The compiled module (or component), from the cache when possible; raises WasmtimeError."""
    kind: Any = wasmtime.Module
    if spec.component:  # the component model's bindings only for a component
        from wasmtime import component

        kind = component.Component
    if cache is None:
        return kind(engine, wasm)
    key = cache_key(wasm, spec)
    cached = cache.load(engine, key, kind)
    if cached is not None:
        return cached
    module = kind(engine, wasm)
    cache.store(module, key)
    return module


# --------------------------------------------------------------------------- one release


#: One import as the link plan reads it: module, name, kind ("func" or "other"), a function's
#: (params, results) type names as the bytes spell them (i32, v128, ...), and the import object.
_ImportEntry = tuple[str, str, str, tuple[tuple[str, ...], tuple[str, ...]] | None, Any]


def _module_imports(module: wasmtime.Module, wasm: bytes) -> list[_ImportEntry]:
    """The compiled module's imports, each function's types read from ``wasm`` (its bytes).

    Not from wasmtime-py's types: asking a v128 or reference ``ValType`` its kind aborts the
    process in the C API (SIGABRT).  The bytes compiled, so they read; every count is bounded by them.
    """
    read = _read_imports(wasm, None)
    imports = module.imports
    if read is None or len(read) != len(imports):  # never for bytes wasmtime compiled
        raise LinkRefusedError("the module's imports could not be read from its bytes")
    return [(m, n, kind, sig, imp) for (m, n, kind, sig, _), imp in zip(read, imports, strict=True)]


#: Types or imports past which the imports are not read before the compile (a module with a
#: million types took 3 s to read in Python, far longer than its compile).
_MAX_PRECHECK_ENTRIES = 50_000


def _binary_imports(wasm: bytes) -> list[_ImportEntry] | None:
    """A core module's imports read from its bytes before it compiles, or None (left to the compiler)."""
    from registry_tool.manifest.binary import is_component

    return None if is_component(wasm) else _read_imports(wasm, _MAX_PRECHECK_ENTRIES)


def _read_imports(wasm: bytes, max_entries: int | None) -> list[_ImportEntry] | None:
    """The imports of a core module's bytes, functions with their type names; None if unreadable here."""
    from registry_tool.manifest.binary import import_signatures

    try:
        imports = import_signatures(wasm, max_entries)
    except (ValueError, IndexError):
        return None  # unreadable here, or too many entries to read before compiling
    entries: list[_ImportEntry] = []
    for imp, sig in imports:
        if imp.kind == "func" and sig is not None:
            entries.append((imp.module, imp.name, "func", (tuple(sig[0]), tuple(sig[1])), imp))
        else:
            entries.append((imp.module, imp.name, "other", None, imp))
    return entries


def _valid(engine: wasmtime.Engine, wasm: bytes) -> bool:
    try:
        wasmtime.Module.validate(engine, wasm)
    except wasmtime.WasmtimeError:
        return False
    return True


def _shared_memory_refusal(wasm: bytes, engine: wasmtime.Engine) -> str | None:
    """Why the module is not run for a shared memory it (or a core module of the component) declares.

    Validate refuses one.  Bytes the reader cannot walk are the compiler's to report when wasmtime
    refuses them too; bytes it compiles but the reader cannot walk are refused (fail closed: they
    could hold one).
    """
    from registry_tool.manifest.binary import SHARED_MEMORY_REFUSED, has_shared_memory, is_component

    try:
        return SHARED_MEMORY_REFUSED if has_shared_memory(wasm) else None
    except (ValueError, IndexError) as err:
        # A component is not validated here (validate refuses one the reader cannot walk): refused.
        if not is_component(wasm) and not _valid(engine, wasm):
            return None
        return f"the sandbox cannot read the module's memories to rule out a shared one ({err}): not run"


def refused_before_compile(wasm: bytes, abi: str, policy: ImportPolicy) -> str | None:
    """Why every test of a core module ends in link_error, read from its bytes before it compiles.

    The link plan refuses from the imports alone, and a 19 MB module took 20-35 s to compile
    before every test was refused.  None: nothing is refused (or the bytes are for the compiler).
    """
    entries = _binary_imports(wasm)
    if entries is None:
        return None
    try:
        _link_plan(entries, abi, policy)
    except LinkRefusedError as err:
        return str(err)
    return None


def _link_plan(imports: list[_ImportEntry], abi: str, policy: ImportPolicy) -> tuple[list[Any], bool]:
    """(imports to stub, whether WASI is linked); raise for any import that cannot be linked.

    ``link_import`` is the answer validate gives too, and ``import_refusal`` says why in validate's
    words: WASI (from the ABI or a permission) is always wasmtime's own implementation, linked once
    (``wasi_unstable``, where the ABI takes it, as its preview 1 namesakes); the ABI's host modules
    are the adapter's; anything else a permission grants gets a stub.
    """
    stubs, wasi = [], False
    for module, name, kind, func_type, imp in imports:
        gate = gated_module(abi, module)
        allowed = policy.allowed(gate, name)
        decision = link_import(abi, module, name, kind, allowed, func_type)
        if not decision.linked:
            permission = next((r.permission for r in policy.permission_rules if r.matches(gate, name)), None)
            refusal = import_refusal(abi, module, name, decision, allowed, permission)
            raise LinkRefusedError(f"import {module}.{name} {refusal.message} (fix: {refusal.fix})")
        if decision.how == "wasi":
            wasi = True
        elif decision.how == "stub":
            stubs.append(imp)
    return stubs, wasi


class _AsPreview1:
    """A ``wasi_unstable`` import seen as its ``wasi_snapshot_preview1`` namesake (same name and type)."""

    __slots__ = ("module", "name", "type")

    def __init__(self, imp: Any) -> None:
        self.module, self.name, self.type = WASI, imp.name, imp.type


class Release:
    """What the tests of one release share: made once, then every test gets a fresh store and instance.

    Shared (read-only while a test runs, or replaced per test): the compiled module, its import plan
    and export inspection, the ABI runner, and one linker whose host functions are store-independent
    definitions that reach the running test's state (WASI clock and randomness, key-value store, the
    ABI's host state) through this object.  Per test: a new ``Store`` with its own fuel, epoch
    deadline and resource limits, a new instance (of the Extism kernel too), WASI files when the
    module imports WASI, and fresh host state.
    """

    def __init__(self, engine: wasmtime.Engine, module: Any, wasm: bytes, job: Job) -> None:
        """Inspect and link ``module`` (compiled for ``engine``) for the tests of ``job``."""
        self.engine, self.module, self.wasm, self.job = engine, module, wasm, job
        self.spec = ABI_SPECS[job.abi]
        self.adapter = adapter_class(job.abi)(job.policy)
        self.limits = self.adapter.store_limits(job.limits)
        #: A link refusal is the outcome of every test (raised again in each).
        self.refused: LinkRefusedError | wasmtime.WasmtimeError | None = None
        self.wasi = False
        self.unstable: tuple[str, ...] = ()
        self.pre: wasmtime.InstancePre | None = None
        self.memories: tuple[str, ...] = ()
        self.tables: tuple[str, ...] = ()
        self.initial_memory = 0
        self.export_names: frozenset[str] = frozenset()
        self._signatures: dict[str, tuple[list[str], list[str]] | None] = {}
        #: Exports whose signature is known to be numeric only (checked once per name).
        self.numeric: set[str] = set()
        self._clock = DeterministicWasi(job.limits.wall_time)
        self._keys = KeyValueStub(job.host)
        self._poll_fallback: PollFallback | None = None
        self._stubbed = False
        #: The zero stubs (``abis.zero_stub``) the running test called, by ``module.name``.
        self.stubs_called: set[str] = set()
        if self.spec.component:
            cast("ComponentAdapter", self.adapter).prepare(engine, module)
            return
        exports = module.exports
        self.export_names = frozenset(e.name for e in exports)
        # Before any test and its output cap: the module's copy-on-write memory images.
        prime_memory_images(engine, module, job.limits)
        self.memories, self.tables = _measured_exports(wasm, exports)
        self.initial_memory = _initial_memory(wasm)
        self.linker = wasmtime.Linker(engine)
        # Exports are looked up through a linker (see ``Exports``); each test's instance replaces
        # the previous one's under the same names.
        self.exports_linker = wasmtime.Linker(engine)
        self.exports_linker.allow_shadowing = True
        try:
            stubs, self.wasi = _link_plan(_module_imports(module, wasm), job.abi, job.policy)
        except LinkRefusedError as err:
            self.refused = err
            return
        # Linked per test (``bind``): wasmtime-py defines WASI only as wasi_snapshot_preview1, and its
        # functions must be called by the plugin itself (they read the caller's memory), so each is
        # aliased under wasi_unstable in each test's store.
        self.unstable = tuple(sorted({imp.name for imp in module.imports if imp.module == WASI_UNSTABLE}))
        if self.wasi:
            self.linker.define_wasi()
            imports = [_AsPreview1(i) if i.module == WASI_UNSTABLE else i for i in module.imports]
            self._poll_fallback = DeterministicWasi.define(self.linker, engine, imports, lambda: self._clock)
        self.adapter.define(self.linker, engine)
        define_stubs(self.linker, stubs, self._keys.module, lambda: self._keys, self.stubs_called.add)
        self._stubbed = bool(stubs)
        if self.unstable:
            self.linker.allow_shadowing = True  # each test's aliases replace the previous test's
        elif not self.adapter.store_bound:
            try:
                self.pre = self.linker.instantiate_pre(module)
            except wasmtime.WasmtimeError as err:  # an import nothing defines: every test's link_error
                self.refused = err

    def signature(self, call: str) -> tuple[list[str], list[str]] | None:
        """The export's (params, results) read from the binary, once per name."""
        if call not in self._signatures:
            self._signatures[call] = export_signature(self.wasm, call)
        return self._signatures[call]

    def bind(self, store: wasmtime.Store) -> None:
        """Alias the release's ``wasi_unstable`` imports to ``store``'s preview 1 functions (and clock)."""
        for name in self.unstable:
            self.linker.define(store, WASI_UNSTABLE, name, self.linker.get(store, WASI, name))

    def begin(self, case: Case) -> KeyValueStub:
        """Fresh host state for ``case``: clock and randomness, key-value store; returns the store.

        Only the state something can reach is made: the clock when WASI is linked, the key-value
        store when a stub is linked or the test declares keys (a store nothing is linked to stays empty).
        """
        if self.wasi:
            self._clock = DeterministicWasi(self.job.limits.wall_time, poll_fallback=self._poll_fallback)
        if self._stubbed or case.keys or case.expect_keys:
            self._keys = KeyValueStub(self.job.host, case.keys)
        return self._keys


# --------------------------------------------------------------------------- one test


def _initial_memory(wasm: bytes) -> int:
    """The module's largest initial memory in bytes (0 when the reader cannot tell)."""
    from registry_tool.manifest.binary import initial_memory_bytes

    try:
        return initial_memory_bytes(wasm)
    except (ValueError, IndexError):
        return 0


def _measured_exports(wasm: bytes, exports: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """One name per exported memory and table.

    200,000 names of one memory took 123 s to collect (a tuple copied per name) and 1.5 s of
    every test to measure.
    """
    from registry_tool.manifest.binary import distinct_exports

    try:
        memories, tables = distinct_exports(wasm)
    except (ValueError, IndexError):  # bytes wasmtime compiled but the reader cannot walk: every name
        memories = [e.name for e in exports if isinstance(e.type, wasmtime.MemoryType)]
        tables = [e.name for e in exports if isinstance(e.type, wasmtime.TableType)]
    return tuple(memories), tuple(tables)


def _peak(release: Release, exports: Exports | None) -> tuple[int | None, int | None]:
    """Exported linear memory size and largest exported table after the run.

    Wasm memories and tables never shrink, so the size at the end is the peak.
    """
    if exports is None:
        return None, None
    memory = table = None
    bases: set[int | None] = set()
    for name in release.memories:
        item = exports(name)
        if isinstance(item, wasmtime.Memory):
            # One memory exported under several names is counted once (by where its bytes are).
            base = ctypes.cast(item.data_ptr(exports.store), ctypes.c_void_p).value
            if base in bases:
                continue
            bases.add(base)
            memory = (memory or 0) + item.data_len(exports.store)
    for name in release.tables:
        item = exports(name)
        if isinstance(item, wasmtime.Table):
            table = max(table or 0, item.size(exports.store))
    return memory, table


#: The trap codes that are outcome classes of their own (every other trap is ``trap``).
_TRAP_OUTCOMES = {
    wasmtime.TrapCode.OUT_OF_FUEL: (Outcome.out_of_fuel, "all fuel consumed"),
    wasmtime.TrapCode.INTERRUPT: (Outcome.timeout, "wall-clock deadline reached (epoch interruption)"),
    wasmtime.TrapCode.STACK_OVERFLOW: (Outcome.stack_overflow, "call stack exhausted (max_wasm_stack)"),
}
#: wasmtime's message for each of those trap codes ("wasm trap: <message>", the ``Caused by`` line).
#: A component call raises a plain ``WasmtimeError`` that carries no trap code, only this message
#: (wasmtime's C API has no trap code for a ``wasmtime_error_t``); tests check it against wasmtime's.
_TRAP_CAUSES = {
    "all fuel consumed by WebAssembly": wasmtime.TrapCode.OUT_OF_FUEL,
    "interrupt": wasmtime.TrapCode.INTERRUPT,
    "call stack exhausted": wasmtime.TrapCode.STACK_OVERFLOW,
}


def classify_error(err: BaseException) -> tuple[Outcome, str]:
    """Map a wasmtime error raised while linking, instantiating or calling to an outcome class."""
    if isinstance(err, MissingExportError):
        return Outcome.missing_export, str(err)
    if isinstance(err, LinkRefusedError):
        return Outcome.link_error, str(err)
    if isinstance(err, MemoryError):
        return Outcome.memory_limit, "the worker ran out of address space"
    message = str(err).strip()
    first = message.splitlines()[0] if message else type(err).__name__
    if SLEPT_PAST_DEADLINE in message:
        return Outcome.timeout, SLEPT_PAST_DEADLINE
    if LOG_LIMIT_MESSAGE in message:  # the Extism log is captured output: same class as a stderr flood
        return Outcome.output_limit, f"{LOG_LIMIT_MESSAGE} ({LOG_CAP} bytes) and was cut"
    if isinstance(err, wasmtime.Trap):
        code = err.trap_code
        if code in _TRAP_OUTCOMES:
            return _TRAP_OUTCOMES[code]
        name = code.name.lower() if code is not None else "no trap code"
        return Outcome.trap, f"{name}: {_trap_message(message)}"
    code = _trap_cause(message)
    if code is not None:  # a component call's trap: a WasmtimeError without a trap code
        return _TRAP_OUTCOMES[code]
    if "unknown import" in message or "incompatible import" in message:
        return Outcome.link_error, first
    if _RESOURCE_LIMIT.search(message):
        return Outcome.memory_limit, first
    return Outcome.trap, _trap_message(message)


def _trap_cause(message: str) -> wasmtime.TrapCode | None:
    """The trap code of ``_TRAP_CAUSES`` that a plain error's "wasm trap: ..." cause line names.

    Only the last such line counts: wasmtime writes the cause after the backtrace, whose function
    names come from the module (a name can hold a newline and "wasm trap: interrupt").
    """
    for line in reversed(message.splitlines()):
        text = line.strip()
        if text.startswith("wasm trap: "):
            return _TRAP_CAUSES.get(text.removeprefix("wasm trap: ").rstrip(". "))
    return None


def _trap_message(message: str) -> str:
    lines = [ln for ln in message.splitlines() if ln.strip()]
    # wasmtime puts the cause after the backtrace ("Caused by: ..."); show that, it names the trap.
    for i, line in enumerate(lines):
        if line.strip().lower().startswith("caused by"):
            return " ".join(ln.strip() for ln in lines[i + 1 : i + 3])
    return lines[0] if lines else "trap"


class _Run:
    """What ``_execute`` got: the adapter's result or the error, the instance's exports, the keys."""

    __slots__ = ("error", "exports", "keys", "log", "produced")

    def __init__(
        self,
        produced: Produced | None = None,
        error: BaseException | None = None,
        exports: Exports | None = None,
        keys: KeyValueStub | None = None,
    ) -> None:
        """A plain class: a dataclass costs a worker's start more than it saves."""
        self.produced, self.error, self.exports, self.keys = produced, error, exports, keys
        self.log = b""  # the host log of a run that failed (a trap, fuel, a timeout)


def _check_signature(release: Release, case: Case) -> None:
    """Refuse non-numeric signatures before wasmtime-py sees them (it aborts on v128 types)."""
    if not case.call or case.call in release.numeric:
        return
    signature = release.signature(case.call)
    if signature is None:
        return  # absent or unreadable: the adapter reports it
    bad = [t for t in signature[0] + signature[1] if t not in ("i32", "i64", "f32", "f64")]
    if not bad:
        release.numeric.add(case.call)
    else:
        raise MissingExportError(
            f"export '{case.call}' uses {', '.join(sorted(set(bad)))}: the {release.job.abi} ABI takes and "
            "returns only i32/i64/f32/f64"
        )


class HostCallLost(Exception):
    """A host function could not run at all (a RecursionError or MemoryError before its first line).

    ctypes then prints "Exception ignored" and answers the module with zeros: a refused call
    would read as a success.  The run fails instead.
    """


def _execute(release: Release, case: Case, store: wasmtime.Store) -> _Run:
    lost: list[str] = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda u: lost.append(f"{getattr(u.exc_type, '__name__', 'error')}: {u.exc_value}")
    try:
        run = _execute_hooked(release, case, store)
    finally:
        sys.unraisablehook = previous
    if lost:
        run.produced = None
        run.error = HostCallLost(
            f"a host function could not run ({lost[0][:200]}), so its call was not answered"
        )
    return run


def _execute_hooked(release: Release, case: Case, store: wasmtime.Store) -> _Run:
    run = _Run()
    adapter = release.adapter
    began, state = False, None
    try:
        if release.spec.component:
            run.produced = cast("ComponentAdapter", adapter).run(release.module, store, case)
            return run
        _check_signature(release, case)
        if release.refused is not None:
            raise release.refused
        run.keys = release.begin(case)
        state = adapter.begin(release.linker, store, case)
        began = True
        try:
            if release.pre is not None:
                instance = release.pre.instantiate(store)
            else:
                release.bind(store)
                instance = release.linker.instantiate(store, release.module)
            run.exports = Exports(
                release.exports_linker, store, instance, release.export_names, release.signature
            )
            _initialize_reactor(run.exports, store, case)
        except wasmtime.ExitTrap as exit_trap:
            # A start function or _initialize that calls proc_exit: the program's result.
            run.produced = Produced(exit_code=exit_trap.code)
            return run
        failed = _run_steps(adapter, run.exports, store, case, state)
        run.produced = failed or adapter.invoke(run.exports, store, case, state)
        if run.produced.mismatch is None and case.expect_keys:
            run.produced.mismatch = run.keys.mismatch(case.expect_keys)
    except Exception as err:  # every failure is classified, never propagated: wasmtime.Trap,
        run.error = err  # WasmtimeError, our adapter errors, MemoryError, host-function bugs
        if began:
            # What the plugin logged before it failed (a Rust panic message goes through the log).
            run.log = adapter.log(state)
    return run


def _initialize_reactor(exports: Exports, store: wasmtime.Store, case: Case) -> None:
    """Run a reactor's ``_initialize`` once, right after instantiation.

    A reactor (WASI ``_initialize``: Go c-shared, TinyGo, C with constructors) is initialised once
    per instance before any other export is called; a command's ``_start`` does its own setup.
    """
    if case.call == "_start":
        return
    init = exports("_initialize")
    if isinstance(init, wasmtime.Func):
        ty = init.type(store)
        if not ty.params and not ty.results:
            init(store)


def _run_steps(
    adapter: Adapter, exports: Exports, store: wasmtime.Store, case: Case, state: Any
) -> Produced | None:
    """Run the test's steps on the instance first; the first that fails is the test's result."""
    for i, step in enumerate(case.steps, 1):
        expect = step.get("expect")
        kind = "none" if expect is None else "values" if isinstance(expect, list) else "text"
        data = step.get("input")
        sub = Case(
            f"{case.name} step {i}",
            step["call"],
            list(step.get("args", [])),
            input=data.encode() if isinstance(data, str) else None,
            expect_kind=kind,
            expect=expect,
        )
        produced = adapter.invoke(exports, store, sub, state)
        outcome, detail = compare(sub, produced, b"")
        if outcome is not Outcome.passed:
            produced.mismatch = f"step {i} ({sub.call}): {detail}"
            return produced
    return None


def _wasi_config(case: Case, job: Job, workdir: Path) -> tuple[wasmtime.WasiConfig, str, str]:
    stdin, out, err = _wasi_paths(workdir)
    # New files, not truncated ones: ext4 flushes a file truncated to zero and rewritten when it is
    # closed (auto_da_alloc), which made every test with input or output pay milliseconds of I/O.
    for path, data in ((stdin, case.input or b""), (out, b""), (err, b"")):
        _new_file(path, data)
    wasi = wasmtime.WasiConfig()
    # No preopens, no environment, argv only as declared.
    wasi.argv = case.argv if case.argv is not None else [job.program]
    if case.env:
        wasi.env = list(case.env.items())
    wasi.stdin_file = stdin
    wasi.stdout_file = out
    wasi.stderr_file = err
    return wasi, out, err


@functools.lru_cache(maxsize=4)
def _wasi_paths(workdir: Path) -> tuple[str, str, str]:
    return str(workdir / "stdin"), str(workdir / "stdout"), str(workdir / "stderr")


# The WASI files are made and read with os-level calls: through pathlib and io they cost a tenth of
# a small test.
def _new_file(path: str, data: bytes) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # noqa: PTH108 - the os-level call is the point here
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _read_file(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if not os.fstat(fd).st_size:
            return b""
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=8)
def _ticks(wall_time: float) -> int:
    return max(1, math.ceil(wall_time / EPOCH_TICK_S))


def new_store(engine: wasmtime.Engine, limits: Limits) -> wasmtime.Store:
    """A store with fuel, a wall-clock epoch deadline and resource limits."""
    store = wasmtime.Store(engine)
    store.set_limits(
        memory_size=limits.memory,
        table_elements=limits.table_elements,
        instances=limits.instances,
        tables=limits.tables,
        memories=limits.memories,
    )
    store.set_fuel(limits.fuel)
    store.set_epoch_deadline(_ticks(limits.wall_time))
    return store


def run_case(release: Release, case: Case, workdir: Path) -> TestOutcome:
    """Run one test of ``release`` in this process, in a fresh store, and classify it.

    WASI's stdin/stdout/stderr files exist only for modules that import WASI (and components,
    whose WASI 0.2 always has them); output is capped by RLIMIT_FSIZE while the test runs.
    """
    outcome, fuel, memory, wall_ms, stdout, stderr, detail = measure_case(release, case, workdir)
    return TestOutcome(
        name=case.name,
        outcome=outcome,
        expected=case.expected,
        fuel_consumed=fuel,
        peak_memory_bytes=memory,
        wall_ms=wall_ms,
        stdout=stdout,
        stderr=stderr,
        detail=detail,
    )


Measured = tuple[Outcome, int | None, int | None, float, str, str, str]


def measure_case(
    release: Release, case: Case, workdir: Path, judging: Callable[[], object] | None = None
) -> Measured:
    """``run_case``'s figures as a tuple (outcome, fuel, memory, wall_ms, stdout, stderr, detail).

    The worker writes them straight into its result record, without a ``TestOutcome`` between.
    ``judging`` is called once the run has ended, before its output is judged.
    """
    limits, job = release.job.limits, release.job
    store = new_store(release.engine, release.limits)
    files = release.wasi or release.spec.component
    if files:
        wasi, out_path, err_path = _wasi_config(case, job, workdir)
        store.set_wasi(wasi)
        _set_file_cap(limits.output + 1)
    release.stubs_called.clear()
    start = time.perf_counter()
    try:
        run = _execute(release, case, store)
    finally:
        wall_ms = (time.perf_counter() - start) * 1000
        if files:
            _set_file_cap(resource.RLIM_INFINITY)
    fuel: int | None = limits.fuel - store.get_fuel()
    memory, table = _peak(release, run.exports)
    stdout, stderr = (_read_file(out_path), _read_file(err_path)) if files else (b"", b"")
    stderr += run.produced.log if run.produced is not None else run.log
    if judging is not None:
        judging()
    outcome, detail = judge(case, run, stdout, stderr, limits, memory, table, release.initial_memory)
    epoch_timeout = outcome is Outcome.timeout
    if outcome is Outcome.passed and wall_ms > (limits.wall_time + EPOCH_TICK_S) * 1000:
        # The epoch interrupts only wasm code: a run that ended in a long host call (a poll, a
        # buffer copy) returned past its deadline and is no pass.
        outcome = Outcome.timeout
        detail = (
            f"the run took {wall_ms:.0f} ms, past its wall time of {limits.wall_time * 1000:.0f} ms "
            "(its last host call returned after the deadline)"
        )
    if outcome is not Outcome.passed and release.stubs_called:
        # A zero where the plugin expected real data is a likely cause (docs/manifest.md).
        names = ", ".join(sorted(release.stubs_called))
        detail += f" (it called host functions the smoke run stubs with zeros: {names})"
    if epoch_timeout:
        fuel = None  # an epoch interruption does not flush the fuel counter: the figure would be wrong
    cap = limits.output
    return outcome, fuel, memory, wall_ms, shown(stdout[:cap]), shown_tail(stderr[:cap]), detail


def judge(
    case: Case,
    run: _Run,
    stdout: bytes,
    stderr: bytes,
    limits: Limits,
    memory: int | None,
    table: int | None,
    initial_memory: int = 0,
) -> tuple[Outcome, str]:
    """The outcome class of a finished run (pure: no I/O).

    A failed run whose memory grew to near its cap (not one that started there: its failure is
    its own) or whose table did is ``memory_limit``.
    """
    if len(stdout) > limits.output or len(stderr) > limits.output:
        return Outcome.output_limit, f"output exceeded the {limits.output}-byte cap and was cut"
    if run.error is not None:
        outcome, detail = classify_error(run.error)
    else:
        assert run.produced is not None
        outcome, detail = compare(case, run.produced, stdout)
    if outcome not in (Outcome.passed, Outcome.link_error, Outcome.missing_export, Outcome.memory_limit):
        at_cap = []
        if memory is not None and memory >= limits.memory * _AT_CAP and memory > initial_memory:
            at_cap.append(f"linear memory reached {memory} of {limits.memory} bytes")
        if table is not None and table >= limits.table_elements * _AT_CAP:
            at_cap.append(f"a table reached {table} of {limits.table_elements} elements")
        if at_cap:
            return Outcome.memory_limit, f"{'; '.join(at_cap)}, then the run ended in {outcome}: {detail}"
    return outcome, detail


def compare(case: Case, produced: Produced, stdout: bytes) -> tuple[Outcome, str]:
    """Exit code first, then the ABI's own expectations, then the expected output."""
    if produced.exit_code is not None and produced.exit_code != case.exit_code:
        extra = f": {produced.detail}" if produced.detail else ""
        # A test that expects this class (``expect_trap = "exit_code"``) asked for no particular code.
        wanted = "" if case.expect_trap == Outcome.exit_code.value else f", expected {case.exit_code}"
        return Outcome.exit_code, f"exit code {produced.exit_code}{wanted}{extra}"
    if produced.mismatch is not None:
        return Outcome.wrong_output, produced.mismatch
    kind, expect = case.expect_kind, case.expect
    if kind == "none":
        return Outcome.passed, ""
    values = produced.values
    if produced.output is not None:
        actual = produced.output
    elif values is not None:
        actual = format_values(values)
    else:
        actual = stdout
    if kind == "values":
        if values is None:
            try:
                values = [float(x) for x in actual.split()]
            except ValueError:  # the parent refuses such a test; never a worker crash
                return Outcome.wrong_output, f"the output is no list of numbers: {shown(actual[:80])!r}"
        # Equal lists first (exact), then the numeric comparison (NaN equals NaN, 1 equals 1.0).
        if values == expect or (
            len(values) == len(expect) and all(_same(a, e) for a, e in zip(values, expect, strict=True))
        ):
            return Outcome.passed, ""
        return Outcome.wrong_output, f"results {values}, expected {list(expect)}"
    if kind == "regex":
        if re.search(str(expect), actual.decode("utf-8", "replace")):
            return Outcome.passed, ""
        return Outcome.wrong_output, f"output does not match /{expect}/: {_quoted_head(actual)}"
    want = expect if isinstance(expect, bytes) else str(expect).encode()
    if actual == want:
        return Outcome.passed, ""
    return Outcome.wrong_output, output_difference(actual, want)


#: Bytes of output that a report also gives as base64 when they are no UTF-8 text (what to paste
#: into expect_base64 once the output is judged right).
_BASE64_SHOWN = 1536


def output_difference(actual: bytes, want: bytes) -> str:
    """Why ``actual`` is not ``want``: both heads, then where they first differ, with the bytes there.

    The heads alone hid a difference past their first 200 characters, and text shown of bytes
    that are no UTF-8 lost them (U+FFFD).
    """
    head = f"output {_quoted_head(actual)}, expected {_quoted_head(want)}"
    at = _first_difference(actual, want)
    line = actual.count(b"\n", 0, at) + 1
    column = at - (actual.rfind(b"\n", 0, at) + 1) + 1
    start, end = max(0, at - 16), at + 32
    text = _is_utf8(actual) and _is_utf8(want)

    def window(data: bytes) -> str:
        part = data[start:end]
        if not part:
            return "(the end)"
        return _quoted(part.decode("utf-8", "replace")) if text else "hex " + part.hex(" ")

    where = f"first difference at byte {at} (line {line}, column {column})"
    detail = (
        f"{head}; {where}: {window(actual)} where {window(want)} was expected; "
        f"{len(actual)} bytes, expected {len(want)}"
    )
    if not _is_utf8(actual) and len(actual) <= _BASE64_SHOWN:
        detail += f"; the output as base64: {base64.b64encode(actual).decode()}"
    return detail


def _quoted(text: str) -> str:
    """``text`` as a TOML basic string: pasted into plugin.toml it is the text again.

    Python's repr doubled every backslash, so a repr pasted as ``expect`` was not the output.  JSON's
    escapes are TOML's; every other character a terminal would not show as itself (DEL, C1, bidi,
    invisible) is escaped too, as TOML's u or U escape, so nothing is left for the
    report's own escaping to change.
    """
    return UNPRINTABLE.sub(_toml_escape, json.dumps(text, ensure_ascii=False))


def _toml_escape(m: re.Match[str]) -> str:
    code = ord(m[0])
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _quoted_head(data: bytes, limit: int = 200) -> str:
    """The first ``limit`` characters of ``data`` quoted (``_quoted``), saying how much was cut."""
    text = data[: 4 * limit].decode("utf-8", "replace")  # 4 bytes a character cover any UTF-8
    if len(text) <= limit and len(data) <= 4 * limit:
        return _quoted(text)
    return _quoted(text[:limit]) + f"… [cut: {len(data)} bytes in all]"


def _first_difference(a: bytes, b: bytes) -> int:
    """The first offset where ``a`` and ``b`` differ (the shorter one's length if one is a prefix).

    Compared 64 KiB at a time in C, then byte by byte within the chunk that differs: a Python loop
    over 4 MiB took half a second, inside the test's deadline.
    """
    end, step, start = min(len(a), len(b)), 1 << 16, 0
    while start < end and a[start : start + step] == b[start : start + step]:
        start += step
    if start >= end:
        return end
    return next((i for i in range(start, min(start + step, end)) if a[i] != b[i]), end)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _same(actual: int | float, expected: int | float) -> bool:
    if isinstance(actual, float) or isinstance(expected, float):
        a, e = float(actual), float(expected)
        return (math.isnan(a) and math.isnan(e)) or a == e
    return actual == expected


def prime_memory_images(engine: wasmtime.Engine, module: wasmtime.Module, limits: Limits) -> None:
    """Create the module's copy-on-write memory images before any test runs.

    wasmtime builds them (a memfd file holding the data segments) at the first instantiation; during
    a test RLIMIT_FSIZE is the output cap, which a large image exceeds.  Here nothing of the module
    runs: every import is a trap and the store has no fuel, so a start function traps on entry.
    Failures are ignored: the test's own instantiation reports them.
    """
    store = new_store(engine, replace(limits, instances=limits.instances + 1, memories=limits.memories + 1))
    store.set_fuel(0)
    linker = wasmtime.Linker(engine)
    with contextlib.suppress(Exception):
        linker.define_unknown_imports_as_traps(module)
        linker.instantiate(store, module)


# --------------------------------------------------------------------------- main loop


def run_job(job: Job, start_index: int = 0, results: int = 1, workdir: Path | None = None) -> None:
    """Compile the job's module and run its cases from ``start_index``, one record each (``protocol``).

    Records go to the file descriptor ``results``, one ``write`` each: nothing is buffered in this
    process, so what a crash leaves behind is every finished test's record.
    """
    engine = make_engine(job.engine)
    cache = ModuleCache(Path(job.cache_dir)) if job.cache_dir else None
    # Regular files only, bounded: a FIFO or /dev/zero as artifact must not hang or fill memory.
    wasm = read_bounded(job.wasm_path, MAX_MODULE_BYTES, "smoke artifact")
    shared = _shared_memory_refusal(wasm, engine)  # with threads on wasmtime runs one, unbounded
    if shared is not None:
        os.write(results, protocol.compile_error(shared))
        return
    refused = refused_before_compile(wasm, job.abi, job.policy)
    if refused is not None and _valid(engine, wasm):  # an invalid module is the compile's to report
        # Every test would end so after the compile: say it now (the records of a compiled run).
        os.write(results, protocol.compiled(0.0))
        for index in range(start_index, len(job.cases)):
            os.write(
                results, protocol.test_record(index, Outcome.link_error, None, None, 0.0, "", "", refused)
            )
        return
    started = time.perf_counter()
    try:
        module = compile_module(engine, wasm, job.engine, cache)
    except wasmtime.WasmtimeError as err:
        os.write(results, protocol.compile_error(_trap_message(str(err))))
        return
    compile_ms = (time.perf_counter() - started) * 1000
    # The release's setup (linking, stubs, instantiate_pre, memory images) before the record: the
    # parent's first test deadline starts at it, and 100,000 stubs took 4.6 s, past a 4 s wall time
    # in every test and every retry.  Setup stays within the compile timeout.
    release = Release(engine, module, wasm, job)
    os.write(results, protocol.compiled(compile_ms))
    timer = EpochTimer(engine)
    workdir = workdir or private_dir()  # the parent's (it removes it whatever ends this process)
    last = len(job.cases) - 1
    try:
        for index in range(start_index, len(job.cases)):
            case = job.cases[index]
            judging = None
            if case.expect_kind == "regex":  # the regex runs under the test's deadline (``protocol``)
                judging = functools.partial(os.write, results, protocol.matching(index))
            measured = measure_case(release, case, workdir, judging)
            if index == last:
                # The parent kills the worker once it has the last result: clean up before that.
                remove_private_dir(workdir)
            os.write(results, protocol.test_record(index, *measured))
    finally:
        timer.stop()
        remove_private_dir(workdir)


def private_dir() -> Path:
    """A new directory only this user can enter, for the tests' WASI files.

    ``tempfile.mkdtemp``'s rules (random name, created exclusively, mode 0700) without importing
    ``tempfile``, which pulls in ``shutil``, ``random`` and the compression modules: about 10 ms of
    CPU on every worker start.
    """
    base = scratch_dir()
    if base is None:
        import tempfile

        base = tempfile.gettempdir()
    while True:
        path = Path(base) / f"registry-tool-smoke-{os.urandom(8).hex()}"
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        return path


def remove_private_dir(path: Path) -> None:
    """Remove ``private_dir``'s directory: it only ever holds the WASI files, never subdirectories.

    Opened without following a link, and emptied through that descriptor: whatever a worker left
    in its place, nothing outside the directory is removed.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return
    try:
        for name in os.listdir(fd):  # noqa: PTH208 (by descriptor: no path is followed again)
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        path.rmdir()


#: Where the WASI files of the tests go when the machine has it: a memory file system, where
#: creating and removing three files per test costs about 0.1 ms (on a loaded ext4, over 1 ms).
SHM = Path("/dev/shm")  # noqa: S108 - each worker makes its own private (0700) directory in it
_SHM_FREE = 64 * MiB  # enough for several workers' capped stdout/stderr and inputs


def scratch_dir() -> str | None:
    """The directory for the tests' WASI files: ``SHM`` when usable with room to spare, else the default."""
    try:
        stat = os.statvfs(SHM)
    except OSError:
        return None
    usable = os.access(SHM, os.W_OK | os.X_OK) and stat.f_bavail * stat.f_frsize >= _SHM_FREE
    return str(SHM) if usable else None


def _die_with_parent() -> None:
    """End this worker (and its process group) when the CLI that started it dies.

    The worker runs in its own session so the parent can kill it as a group, which also means a
    killed CLI leaves it running.  A watchdog thread notices the re-parenting and kills the group.
    (Polling the parent id rather than PR_SET_PDEATHSIG: that signal fires when the spawning
    *thread* exits, and the harness starts workers from a thread pool.)
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_S)
        if os.getpgrp() == os.getpid():  # our own group: take any children along
            os.killpg(0, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    if parent == 1:  # the parent is already gone
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


_PARENT_POLL_S = 0.2


def main() -> None:
    """The worker's entry point: read the job on stdin, apply the process limits, run it."""
    _die_with_parent()
    request = json.loads(sys.stdin.buffer.read())
    job = Job.from_json(request["job"])
    apply_process_limits(job.limits, len(job.cases))
    os.environ.clear()  # nothing of the parent's environment is needed past this point
    workdir = request.get("workdir")
    run_job(job, int(request.get("start", 0)), int(request["results_fd"]), Path(workdir) if workdir else None)
    os.write(1, protocol.END)
    # Every record is written and the scratch directory removed: skip the interpreter's teardown
    # (dropping wasmtime's engine, module and stores, clearing every module), about 25 ms of CPU.
    # An exception above still ends the ordinary way, its traceback on stderr for the diagnosis.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
