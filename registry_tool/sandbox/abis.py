"""ABI runners: how a test's input reaches a plugin and how its result comes back.

Each runner (an ``Adapter``) links its ABI's host functions once per release and invokes a test; the
worker does everything common (store limits, WASI capture, import gating, classification).  Adding
an ABI is one ``AbiSpec`` (``registry_tool.manifest.abi``) plus one ``Adapter`` subclass in
``runners.RUNNERS`` (docs/sandbox.md, "Adding an ABI").
"""

from __future__ import annotations

import base64
import fnmatch
import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import wasmtime

from registry_tool.manifest.abi import (
    ABI_SPECS,
    EXTISM_ENV,
    EXTISM_LOG_LEVELS,
    INTEGER_RANGES,
    WASI_FUNCTIONS,
    as_signed,
    integer_fits,
)
from registry_tool.manifest.abi import (
    WASI as ABI_WASI,
)
from registry_tool.sandbox.engine import OUTPUT_CAP, Limits
from registry_tool.sandbox.outcome import Outcome


class Exports:
    """The running instance's exports by name (None when absent).

    Looked up through a Linker rather than ``Instance.exports``, which in wasmtime-py enumerates
    every export in quadratic time (half a second for a module with 3000 exports).  ``names`` (the
    module's export names) and ``signatures`` (types read once per release) spare a call into
    wasmtime for a name the module does not export and for an export's type.
    """

    NAMESPACE = "registry-tool:plugin"

    def __init__(
        self,
        linker: wasmtime.Linker,
        store: wasmtime.Store,
        instance: wasmtime.Instance,
        names: frozenset[str] | None = None,
        signatures: Callable[[str], Signature | None] | None = None,
    ) -> None:
        """Expose ``instance`` (in ``store``) through ``linker``, which may be reused per test."""
        linker.define_instance(store, self.NAMESPACE, instance)
        self.linker = linker
        self.store = store
        self._names = names
        self._signatures = signatures

    def __call__(self, name: str) -> Any:
        """The export ``name``, or None when the module does not export it."""
        if self._names is not None and name not in self._names:
            return None
        try:
            return self.linker.get(self.store, self.NAMESPACE, name)
        except wasmtime.WasmtimeError:
            return None

    def signature(self, name: str, func: wasmtime.Func) -> Signature:
        """The (params, results) type names of the exported function ``func`` called ``name``."""
        known = self._signatures(name) if self._signatures is not None else None
        if known is not None:
            return known
        ty = func.type(self.store)
        return [type_name(k) for k in ty.params], [type_name(k) for k in ty.results]


Signature = tuple[list[str], list[str]]


class MissingExportError(Exception):
    """The export a test calls is absent or has the wrong kind/type (classified ``missing_export``)."""


class LinkRefusedError(Exception):
    """An import the module is not allowed, or that nothing provides (classified ``link_error``)."""


# --------------------------------------------------------------------------- test cases


_PASSED = Outcome.passed.value  # read per test: an enum member's value goes through a descriptor


@dataclass
class Case:
    """One test, independent of TOML: what to call, with what, and what must come back.

    ``expect_kind`` is ``none``, ``bytes`` (exact), ``text`` (exact, UTF-8), ``regex`` (search in the
    UTF-8 output) or ``values`` (core results, compared numerically).
    """

    name: str
    call: str | None = None
    args: list[int | float] = field(default_factory=list)
    input: bytes | None = None
    argv: list[str] | None = None
    config: dict[str, str] = field(default_factory=dict)
    expect_kind: str = "none"
    expect: Any = None
    exit_code: int = 0
    expect_trap: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: The host key-value store before the test, and what it must hold after (None: absent).
    keys: dict[str, str] = field(default_factory=dict)
    expect_keys: dict[str, str | None] = field(default_factory=dict)
    #: Calls made first on the same instance: {"call", "args", "input", "expect"} each.
    steps: list[dict[str, Any]] = field(default_factory=list)
    #: ABI-specific description and expectations (proxy-wasm: request, response, expectations).
    http: dict[str, Any] = field(default_factory=dict)

    @property
    def expected(self) -> str:
        """The outcome this case must end in: its ``expect_trap``, or ``passed``."""
        return self.expect_trap or _PASSED

    def to_json(self, blob: Callable[[bytes], Any] | None = None) -> dict[str, Any]:
        """The case as JSON for the worker, without the fields left at their default.

        Bytes (input, an expected output) as base64, or as what ``blob`` gives for them (a job
        sends each distinct file once).  A job carries every case to the worker: what a
        default-valued field would cost to encode and decode is a share of each test's cost.
        """
        encode = blob or (lambda b: base64.b64encode(b).decode())
        data = {k: v for k, v in self.__dict__.items() if k not in _CASE_DEFAULTS or v != _CASE_DEFAULTS[k]}
        if self.input is not None:
            data["input"] = encode(self.input)
        if isinstance(self.expect, bytes):
            data["expect"] = encode(self.expect)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], blobs: Sequence[bytes] = ()) -> Case:
        """The case back from ``to_json`` (``blobs``: the job's, for ``{"blob": i}`` references)."""

        def decode(value: Any) -> bytes:
            return blobs[value["blob"]] if isinstance(value, dict) else base64.b64decode(value)

        if data.get("input") is not None or data.get("expect_kind") == "bytes":
            data = dict(data)
            if data.get("input") is not None:
                data["input"] = decode(data["input"])
            if data.get("expect_kind") == "bytes":
                data["expect"] = decode(data["expect"])
        return cls(**data)


_CASE_DEFAULTS: dict[str, Any] = {k: v for k, v in Case("").__dict__.items() if k != "name"}


@dataclass(frozen=True)
class ImportRule:
    """An import pattern (``name`` is fnmatch): from the ABI itself, or from a named permission."""

    module: str
    name: str = "*"
    permission: str | None = None

    def matches(self, module: str, name: str) -> bool:
        """Whether the import ``module.name`` matches this pattern."""
        return fnmatch.fnmatchcase(module, self.module) and fnmatch.fnmatchcase(name, self.name)


@dataclass
class ImportPolicy:
    """Which imports a module may have: the same predicate ``validate`` applies.

    A permission's patterns gate an import even when the ABI would allow it (a registry may put
    ``wasi_snapshot_preview1.sock_*`` behind a permission); it is allowed only if one of the
    permissions covering it is granted.  Otherwise the ABI's own patterns decide.
    """

    abi_rules: list[ImportRule] = field(default_factory=list)
    permission_rules: list[ImportRule] = field(default_factory=list)
    granted: list[str] = field(default_factory=list)

    def allowed(self, module: str, name: str) -> bool:
        """Whether ``module.name`` may be imported (a covering permission must be granted)."""
        gates = [r for r in self.permission_rules if r.matches(module, name)]
        if gates:
            return any(r.permission in self.granted for r in gates)
        return any(r.matches(module, name) for r in self.abi_rules)

    def to_json(self) -> dict[str, Any]:
        """The policy as JSON for the worker."""
        return {
            "abi_rules": [r.__dict__ for r in self.abi_rules],
            "permission_rules": [r.__dict__ for r in self.permission_rules],
            "granted": list(self.granted),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImportPolicy:
        """The policy back from ``to_json``."""
        return cls(
            abi_rules=[ImportRule(**r) for r in data["abi_rules"]],
            permission_rules=[ImportRule(**r) for r in data["permission_rules"]],
            granted=list(data["granted"]),
        )


#: The ABI's own imports when no registry.toml says otherwise (the ABI specs' patterns).
DEFAULT_ABI_RULES: dict[str, list[ImportRule]] = {
    name: [ImportRule(m, n) for m, n in spec.imports] for name, spec in ABI_SPECS.items()
}


@dataclass
class Produced:
    """What an adapter got back.

    ``output`` None means the text of ``values`` when there are values (the core ABI: made only
    when a test compares text), else the captured stdout.
    """

    output: bytes | None = None
    values: list[int | float] | None = None
    exit_code: int | None = None
    log: bytes = b""
    detail: str = ""
    #: An ABI-specific expectation that failed (e.g. a header after a Proxy-Wasm filter): wrong_output.
    mismatch: str | None = None


# --------------------------------------------------------------------------- adapters


class Adapter:
    """One ABI's runner, created once per release in the worker and reused by each of its tests.

    ``define`` links the ABI's host functions once, as store-independent definitions; they reach
    the running test's state through the adapter (``begin`` replaces it for every test), so a test
    never sees another's.  The ABI's rules (imports, exports, test keys) are its ``AbiSpec``
    (``registry_tool.manifest.abi``), shared with validate.

    Attributes:
        name: The ABI name, a key of ``ABI_SPECS``.
        store_bound: True when ``begin`` links items that belong to the test's own store (the
            Extism kernel instance); each test then instantiates through the linker rather than
            through one pre-linked ``InstancePre``.
    """

    name = ""
    store_bound = False

    def __init__(self, policy: ImportPolicy) -> None:
        """Create the runner of one release whose imports are gated by ``policy``."""
        self.policy = policy

    def store_limits(self, limits: Limits) -> Limits:
        """The store limits a test of this ABI runs under (the ABI may need room of its own)."""
        return limits

    def define(self, linker: wasmtime.Linker, engine: wasmtime.Engine) -> None:
        """Add the ABI's host functions to ``linker``, once per release (store-independent)."""

    def begin(self, linker: wasmtime.Linker, store: wasmtime.Store, case: Case) -> Any:
        """Fresh per-test state, handed back to ``invoke``; runs before the plugin is instantiated."""
        return None

    def invoke(self, exports: Exports, store: wasmtime.Store, case: Case, state: Any) -> Produced:
        """Call the plugin for ``case`` (or one of its steps) and return what came back."""
        raise NotImplementedError

    def log(self, state: Any) -> bytes:
        """The host log the test's ``state`` holds so far (shown when the run fails)."""
        return b""


#: What a test of an ABI without a default call that sets no ``call`` ends in (validate: test-spec).
NO_CALL = "the test names no export to call"
# A test's args that do not fit the export's signature: the test is wrong, not the export (the
# harness gives these their own fix; validate checks args against the signature the same way).
ARGS_COUNT_SAID = "parameters but the test passes"
ARG_TYPE_SAID = "does not suit the export's"


def _export_func(exports: Exports, name: str) -> wasmtime.Func:
    if not name:
        raise MissingExportError(NO_CALL)
    item = exports(name)
    if not isinstance(item, wasmtime.Func):
        kind = "absent" if item is None else f"a {type(item).__name__.lower()}, not a function"
        raise MissingExportError(f"export '{name}' is {kind}")
    return item


_NUMERIC = ("i32", "i64", "f32", "f64")
_VALTYPES = {name: getattr(wasmtime.ValType, name)() for name in _NUMERIC}


_ARGUMENTS_KEPT = 4096
_VALS: dict[str, Callable[[Any], wasmtime.Val]] = {name: getattr(wasmtime.Val, name) for name in _NUMERIC}


def type_name(kind: wasmtime.ValType) -> str:
    """A value type's name (i32, i64, f32, f64), or ``non-numeric``."""
    # Asking a v128 or reference ValType (other than funcref/externref) its kind aborts the process
    # inside the C API, comparing as formatting: only for types known to be neither.  Imports are
    # read from the bytes (worker._module_imports) and the link plan lets numeric ones through only.
    for name, valtype in _VALTYPES.items():
        if kind == valtype:
            return name
    return "non-numeric"


def _coerce(value: int | float, name: str) -> int | float:
    if name in ("i32", "i64"):
        if isinstance(value, float) and not value.is_integer():
            raise MissingExportError(f"argument {value!r} {ARG_TYPE_SAID} {name} parameter: not an integer")
        if not integer_fits(value, name):
            low, high = INTEGER_RANGES[name]
            raise MissingExportError(
                f"argument {value!r} {ARG_TYPE_SAID} {name} parameter: not within {low} to {high}"
            )
        return as_signed(int(value), name)  # wasmtime takes the signed reading; never wrapped silently
    if name in ("f32", "f64"):
        return float(value)
    raise MissingExportError(
        "a parameter or result type is not numeric (core ABI takes i32/i64/f32/f64 only)"
    )


def _as_expected(values: list[int | float], expect: list[Any], kinds: Sequence[str]) -> list[int | float]:
    """Integer results in the reading the test writes them in (the same bits either way).

    An i32 result whose test expects the unsigned value (2940587321, a C ``uint32_t``) reads
    unsigned; wasmtime gives the signed reading (-1354379975).
    """
    out = list(values)
    for i, (value, want, kind) in enumerate(zip(values, expect, kinds, strict=False)):
        unsigned = isinstance(value, int) and isinstance(want, int) and value < 0 <= want
        if (
            unsigned
            and kind in INTEGER_RANGES
            and integer_fits(want, kind)
            and as_signed(want, kind) == value
        ):
            out[i] = want
    return out


def _as_list(result: Any) -> list[int | float]:
    if result is None:
        return []
    if isinstance(result, list | tuple):
        return list(result)
    return [result]


def format_values(values: list[int | float]) -> bytes:
    """Core results as text, the form ``expect = "1"`` and ``expect_regex`` are compared with."""
    return " ".join(repr(v) if isinstance(v, float) else str(v) for v in values).encode()


class CoreAdapter(Adapter):
    """The ``core`` runner: a numeric export called with the test's args or its input bytes."""

    name = "core"

    def __init__(self, policy: ImportPolicy) -> None:
        """Create the runner; it keeps each (export, arguments) pair's checked ``Val``s."""
        super().__init__(policy)
        self._arguments: dict[tuple[str, tuple[int | float, ...]], list[wasmtime.Val]] = {}

    def invoke(self, exports: Exports, store: wasmtime.Store, case: Case, state: Any) -> Produced:
        """Call the export with the test's args (or its input as ``(ptr, len)``); results are values."""
        call = case.call or ""
        func = _export_func(exports, call)
        if case.input is not None:
            args: tuple[int | float, ...] = self._write_input(exports, store, case.input)
        else:
            args = tuple(case.args)
        coerced = self._arguments.get((call, args))
        if coerced is None:
            coerced = self._coerced(exports, call, func, args)
        values = _as_list(func(store, *coerced))
        if case.expect_kind == "values" and isinstance(case.expect, list):
            values = _as_expected(values, case.expect, exports.signature(call, func)[1])
        return Produced(values=values)

    def _coerced(
        self, exports: Exports, call: str, func: wasmtime.Func, args: tuple[int | float, ...]
    ) -> list[wasmtime.Val]:
        """``args`` as ``Val``s of the export's parameter types, checked once per (export, args).

        Typed ``Val``s: wasmtime-py then checks each argument's type once, where a plain number is
        compared with several types (about a fifth of a small test's call).  A ``Val`` of a number
        belongs to no store, so the same ones serve every test.
        """
        params, results = exports.signature(call, func)
        if len(args) != len(params):
            raise MissingExportError(f"export '{call}' takes {len(params)} {ARGS_COUNT_SAID} {len(args)}")
        coerced = [_VALS[k](_coerce(a, k)) for a, k in zip(args, params, strict=True)]
        for kind in results:
            _coerce(0, kind)  # results must be numeric too
        if len(self._arguments) < _ARGUMENTS_KEPT:
            self._arguments[(call, args)] = coerced
        return coerced

    @staticmethod
    def _write_input(exports: Exports, store: wasmtime.Store, data: bytes) -> tuple[int, int]:
        name = "alloc" if exports("alloc") else "malloc"
        alloc = exports(name)
        memory = exports("memory")
        if not isinstance(alloc, wasmtime.Func) or not isinstance(memory, wasmtime.Memory):
            raise MissingExportError(
                "a core test with input needs exported 'alloc(len) -> ptr' (or 'malloc') and 'memory'"
            )
        # Checked before the call, as a test's own export is: wasmtime-py aborts the process on a
        # v128 parameter and fails on a v128 result.
        params, results = exports.signature(name, alloc)
        if params not in (["i32"], ["i64"]) or results not in (["i32"], ["i64"]):
            raise MissingExportError(
                f"'{name}' must take the length and return the pointer, one integer each; it is "
                f"({', '.join(params)}) -> ({', '.join(results)})"
            )
        ptr = alloc(store, len(data))
        if not isinstance(ptr, int) or ptr <= 0 or ptr + len(data) > memory.data_len(store):
            raise MissingExportError(f"'alloc({len(data)})' returned an unusable pointer {ptr!r}")
        memory.write(store, data, ptr)
        return ptr, len(data)


class WasiCommandAdapter(Adapter):
    """The ``wasi-command`` runner: ``_start`` (or the test's call) with stdin, stdout and an exit code."""

    name = "wasi-command"

    def invoke(self, exports: Exports, store: wasmtime.Store, case: Case, state: Any) -> Produced:
        """Run the command; ``proc_exit`` is its exit code, returning normally is 0."""
        func = _export_func(exports, case.call or "_start")
        try:
            func(store)
        except wasmtime.ExitTrap as exit_trap:
            # proc_exit is the program's result, not a crash.
            return Produced(exit_code=exit_trap.code)
        return Produced(exit_code=0)


# --------------------------------------------------------------------------- extism

_I32 = wasmtime.ValType.i32()
_I64 = wasmtime.ValType.i64()
_LOG_LEVELS = {level: i for i, level in enumerate(EXTISM_LOG_LEVELS)}
_U64 = 0xFFFF_FFFF_FFFF_FFFF
#: Host-side copies of plugin memory live in the worker's own heap, outside every wasm limit: the log is
#: captured output (the stderr cap), vars get Extism's default budget (``memory.max_var_bytes``).
LOG_CAP = OUTPUT_CAP
VAR_CAP = 1024 * 1024
#: What one test may keep on the host's side beyond its own linear memory (key-value data, Proxy-Wasm
#: header maps, bodies): host memory is not counted by the store's limits, so without a cap a module
#: could copy its memory out again and again (100 values of 16 MB: 1.6 GB under a 16 MiB limit).
HOST_DATA_CAP = 16 * 1024 * 1024
LOG_LIMIT_MESSAGE = "extism: the plugin's log output exceeded its cap"

KERNEL_WAT = Path(__file__).with_name("extism_kernel.wat")
#: The ``fault`` kinds the kernel reports (see extism_kernel.wat).
_FAULTS = (
    "load_u8",
    "load_u64",
    "store_u8",
    "store_u64",
    "input_load_u8",
    "input_load_u64",
    "output_set",
    "error_set",
)
_KERNEL_HOST = "registry-tool:kernel"


@functools.lru_cache(maxsize=8)
def kernel_module(engine: wasmtime.Engine) -> wasmtime.Module:
    """The Extism kernel compiled for ``engine``: once per engine (a worker has one)."""
    return wasmtime.Module(engine, KERNEL_WAT.read_text())


@functools.lru_cache(maxsize=8)
def _kernel_pre(engine: wasmtime.Engine) -> wasmtime.InstancePre:
    """The kernel with its one import linked, ready to instantiate in any store of ``engine``."""
    linker = wasmtime.Linker(engine)
    linker.define_func(_KERNEL_HOST, "fault", _host_types(engine)["fault"][0], _fault)
    return linker.instantiate_pre(kernel_module(engine))


def _fault(kind: int, offset: int, size: int, limit: int) -> None:
    """The kernel's error path: a trap whose message names the call, the offset and the bound."""
    name = _FAULTS[kind] if 0 <= kind < len(_FAULTS) else "kernel"
    offset &= _U64
    if name.startswith("input_"):
        message = f"input index {offset} ({size} bytes) is out of bounds: the input is {limit} bytes"
    elif name == "error_set":
        message = f"offset {offset} is not an allocated block"
    else:
        message = (
            f"out-of-bounds access of {size & _U64} bytes at offset {offset}: "
            f"the kernel heap spans offsets 16 to {limit}"
        )
    raise wasmtime.WasmtimeError(f"extism: {name}: {message}")


Storelike = wasmtime.Store | wasmtime.Caller


class ExtismKernel:
    """One test's Extism kernel.

    The wasm kernel (extism_kernel.wat) instantiated in the test's store, plus the host-side state the rare
    host functions use (config, vars, log).

    The kernel owns its own linear memory, outside the plugin's, like the real Extism kernel.  That
    memory is a store memory like any other, so ``Store.set_limits(memory_size=...)`` caps it: past
    the cap ``alloc`` returns 0.  Methods take the store or, inside a host function, the caller.

    It holds no reference to the store or the linker: host functions reach the kernel through the
    runner, and natively held closures over a store would form a cycle Python's garbage collector
    cannot see, so a finished test's store (and its memories' address space) would leak.
    """

    #: The kernel items the host side uses, fetched once when the kernel is linked.
    HOST_ITEMS = (
        "memory",
        "alloc",
        "length",
        "rt_output_offset",
        "rt_output_length",
        "rt_error",
        "rt_heap_top",
        "rt_input_init",
    )

    def __init__(
        self,
        store: wasmtime.Store,
        input_bytes: bytes,
        config: dict[str, str],
        network: bool,
        linker: wasmtime.Linker,
    ) -> None:
        """Instantiate the kernel in ``store`` and define it under ``extism:host/env`` in ``linker``."""
        # The whole instance goes under extism:host/env in one call (defining 15 exports one by one
        # costs more than the rest of the setup); the adapter refuses imports of names outside the
        # ABI, so a plugin cannot reach the kernel's memory or its rt_* exports.  The linker serves
        # every test of a release: this test's kernel replaces the previous test's.
        linker.allow_shadowing = True
        self._instance = _kernel_pre(store.engine).instantiate(store)
        linker.define_instance(store, EXTISM_ENV, self._instance)
        self._items: dict[str, Any] = {name: linker.get(store, EXTISM_ENV, name) for name in self.HOST_ITEMS}
        self.memory: wasmtime.Memory = self._items["memory"]
        self.config = config
        self.vars: dict[str, bytes] = {}
        self.var_bytes = 0
        self.network = network
        self.log = bytearray()
        self.calls = 0
        self.input = input_bytes  # what the next call reads
        if input_bytes:
            self._write_input(store, input_bytes)

    def _write_input(self, store: Storelike, data: bytes) -> None:
        offset = self._items["rt_input_init"](store, len(data))
        if data and not offset:
            raise wasmtime.WasmtimeError(
                f"extism: memory limit exceeded: the {len(data)}-byte test input does not fit "
                "in the kernel heap"
            )
        if data:
            self.memory.write(store, data, offset)

    def next_call(self, store: wasmtime.Store, data: bytes) -> None:
        """Prepare another call on the same instance (a test's steps).

        A new input, no output or error left from the call before (as the Extism SDK does per call); vars and
        the heap are kept.
        """
        for name in ("rt_output_offset", "rt_output_length", "rt_error"):
            self._items[name].set_value(store, wasmtime.Val.i64(0))
        self._write_input(store, data)
        self.input = data

    def call(self, ctx: Storelike, name: str, *args: int) -> int:
        """Call a kernel function (e.g. ``alloc``) as a plugin would; returns 0 for no result."""
        if name not in self._items:  # the host side needs only HOST_ITEMS; tools may call any
            self._items[name] = self._instance.exports(ctx)[name]
        result = self._items[name](ctx, *args)
        return int(result) if result is not None else 0

    # -- blocks, as the host functions see them
    def alloc(self, ctx: Storelike, length: int) -> int:
        """A kernel block of ``length`` bytes (0 when the heap is full)."""
        return self.call(ctx, "alloc", length)

    def read(self, ctx: Storelike, offset: int) -> bytes:
        """The bytes of the block at ``offset``; traps unless it is an active block."""
        length = self.call(ctx, "length", offset)
        if not length:
            raise wasmtime.WasmtimeError(f"extism: offset {offset & _U64} is not an allocated block")
        return bytes(self.memory.read(ctx, offset, offset + length))

    def put(self, ctx: Storelike, data: bytes) -> int:
        """``data`` copied into a new block; its offset (0 when the heap is full)."""
        offset = self.alloc(ctx, len(data))
        if offset:
            self.memory.write(ctx, data, offset)
        return offset

    # -- results, read after the call without running wasm (no fuel needed)
    def _global(self, store: Storelike, name: str) -> int:
        return int(self._items[f"rt_{name}"].value(store)) & _U64

    def heap_bytes(self, store: Storelike) -> int:
        """The heap's high-water mark (its top; blocks freed at the end lower it)."""
        return self._global(store, "heap_top")

    def output(self, store: Storelike) -> bytes:
        """What the plugin passed to ``output_set`` (read after the call, without running wasm)."""
        offset, length = self._global(store, "output_offset"), self._global(store, "output_length")
        return bytes(self.memory.read(store, offset, offset + length)) if length else b""

    def error(self, store: Storelike) -> str:
        """What the plugin passed to ``error_set``, or an empty string."""
        offset = self._global(store, "error")
        if not offset:
            return ""
        # The header in place (error_set checked it was a block; the plugin may have freed it since).
        length = int.from_bytes(self.memory.read(store, offset - 8, offset), "little", signed=True)
        if length <= 0 or offset + length > self.heap_bytes(store):
            return f"(error_set at offset {offset}, a block freed since)"
        return bytes(self.memory.read(store, offset, offset + length)).decode("utf-8", "replace")

    # -- config / vars / log / http: host functions (rare calls), over the kernel's memory
    def config_get(self, caller: Storelike, offset: int) -> int:
        """``config_get``: the test's config value for the key block, as a new block (0 when absent)."""
        value = self.config.get(self.read(caller, offset).decode("utf-8", "replace"))
        return 0 if value is None else self.put(caller, value.encode())

    def var_get(self, caller: Storelike, offset: int) -> int:
        """``var_get``: the var for the key block, as a new block (0 when absent)."""
        value = self.vars.get(self.read(caller, offset).decode("utf-8", "replace"))
        return 0 if value is None else self.put(caller, value)

    def var_set(self, caller: Storelike, key_offset: int, value_offset: int) -> None:
        """``var_set``: set (or, with value offset 0, delete) a var, within ``VAR_CAP`` bytes in all."""
        key = self.read(caller, key_offset).decode("utf-8", "replace")
        old = self.vars.pop(key, None)
        if old is not None:
            self.var_bytes -= len(key.encode()) + len(old)
        if value_offset == 0:
            return
        value = self.read(caller, value_offset)
        size = len(key.encode()) + len(value)
        if self.var_bytes + size > VAR_CAP:
            raise wasmtime.WasmtimeError(f"extism: var_set: vars would exceed {VAR_CAP} bytes")
        self.vars[key] = value
        self.var_bytes += size

    def log_at(self, level: str) -> Callable[[Storelike, int], None]:
        """The ``log_<level>`` host function: appends a line to the captured log, within ``LOG_CAP``."""

        def log(caller: Storelike, offset: int) -> None:
            if len(self.log) > LOG_CAP:  # already cut: the run ends in output_limit
                raise wasmtime.WasmtimeError(LOG_LIMIT_MESSAGE)
            self.log += f"[{level}] ".encode() + self.read(caller, offset) + b"\n"
            del self.log[LOG_CAP + 1 :]

        return log

    def http_request(self, caller: Storelike, request: int, body: int) -> int:
        """``http_request``: traps without the ``network`` permission, else an empty answer."""
        if not self.network:
            raise wasmtime.WasmtimeError(
                "extism: http_request denied: the plugin does not declare the 'network' permission"
            )
        # Smoke runs never touch the network: a granted request gets a deterministic empty answer.
        return 0


@functools.lru_cache(maxsize=8)
def _host_types(engine: wasmtime.Engine) -> dict[str, tuple[wasmtime.FuncType, bool]]:
    """The Python host functions' types: name -> (type, needs the caller).

    Per engine: a FuncType is bound to the first engine it is used with (wasmtime aborts the
    process when one is reused with another engine).
    """
    fn = wasmtime.FuncType
    types = {
        "fault": (fn([_I32, _I64, _I64, _I64], []), False),
        "config_get": (fn([_I64], [_I64]), True),
        "var_get": (fn([_I64], [_I64]), True),
        "var_set": (fn([_I64, _I64], []), True),
        "http_request": (fn([_I64, _I64], [_I64]), True),
        "http_status_code": (fn([], [_I32]), False),
        "http_headers": (fn([], [_I64]), False),
        "get_log_level": (fn([], [_I32]), False),
    }
    types.update({f"log_{level}": (fn([_I64], []), True) for level in _LOG_LEVELS})
    return types


@dataclass
class ExtismState:
    """One test's Extism state: its kernel."""

    kernel: ExtismKernel


class ExtismAdapter(Adapter):
    """The ``extism`` runner: the wasm kernel per test, the Python host functions once per release."""

    name = "extism"
    store_bound = True  # each test's kernel instance lives in that test's store

    def __init__(self, policy: ImportPolicy) -> None:
        """Create the runner; ``kernel`` is the running test's (None between tests)."""
        super().__init__(policy)
        self.kernel: ExtismKernel | None = None

    def store_limits(self, limits: Limits) -> Limits:
        """One more instance with one more memory for the kernel; the plugin's own caps are unchanged."""
        return replace(limits, instances=limits.instances + 1, memories=limits.memories + 1)

    def _current(self) -> ExtismKernel:
        if self.kernel is None:
            raise wasmtime.WasmtimeError("extism: a host function was called outside a test")
        return self.kernel

    def _host_functions(self) -> dict[str, Callable[..., Any]]:
        # Each looks the running test's kernel up when called: defined once, they serve every test.
        functions: dict[str, Callable[..., Any]] = {
            "config_get": lambda caller, offset: self._current().config_get(caller, offset),
            "var_get": lambda caller, offset: self._current().var_get(caller, offset),
            "var_set": lambda caller, key, value: self._current().var_set(caller, key, value),
            "http_request": lambda caller, req, body: self._current().http_request(caller, req, body),
            "http_status_code": lambda: 0,
            "http_headers": lambda: 0,
            "get_log_level": lambda: _LOG_LEVELS["trace"],
        }
        for level in _LOG_LEVELS:
            functions[f"log_{level}"] = functools.partial(self._log, level)
        return functions

    def _log(self, level: str, caller: Storelike, offset: int) -> None:
        self._current().log_at(level)(caller, offset)

    def define(self, linker: wasmtime.Linker, engine: wasmtime.Engine) -> None:
        """Link the Python host functions (config, vars, log, http) once for every test of the release."""
        for name, fn in self._host_functions().items():
            ty, caller = _host_types(engine)[name]
            linker.define_func(EXTISM_ENV, name, ty, fn, access_caller=caller)

    def begin(self, linker: wasmtime.Linker, store: wasmtime.Store, case: Case) -> Any:
        """A new kernel instance in the test's store, holding the test's input, config and no vars."""
        self.kernel = None
        kernel = ExtismKernel(store, case.input or b"", case.config, "network" in self.policy.granted, linker)
        self.kernel = kernel
        return ExtismState(kernel)

    def log(self, state: Any) -> bytes:
        """The kernel's log lines so far."""
        return bytes(state.kernel.log) if isinstance(state, ExtismState) else b""

    def invoke(self, exports: Exports, store: wasmtime.Store, case: Case, state: Any) -> Produced:
        """Call the export with the kernel's input; the result is its output, status and error."""
        assert isinstance(state, ExtismState)
        func = _export_func(exports, case.call or "")
        params, results = exports.signature(case.call or "", func)
        if params or results not in ([], ["i32"]):
            raise MissingExportError(f"extism export '{case.call}' must be [] -> [i32] or [] -> []")
        kernel = state.kernel
        if kernel.calls or (case.input or b"") != kernel.input:  # steps: each call its own input
            kernel.next_call(store, case.input or b"")
        kernel.calls += 1
        try:
            rc = _as_list(func(store))
        except wasmtime.ExitTrap as exit_trap:
            # A WASI command's _start (a Go `std` build) ends in proc_exit: its status is the result.
            rc = [exit_trap.code]
        code = int(rc[0]) if rc else 0
        error = kernel.error(store)
        detail = (f"plugin returned {code}: {error}" if error else f"plugin returned {code}") if code else ""
        if not code and error:
            detail = f"plugin set an error: {error}"
            code = 1
        return Produced(output=kernel.output(store), exit_code=code, log=bytes(kernel.log), detail=detail)


# --------------------------------------------------------------------------- permission-gated host stubs


class KeyValueStub:
    """A deterministic in-memory ``<host>:keys`` store for one test.

    ``<host>`` is the registry's host name (``ferrite:keys`` for the sample registry); it holds the test's
    ``keys`` fixtures at the start of every test.

    Contract (the sample host's): ``get(key_ptr, key_len, out_ptr, out_cap) -> i32`` copies at most
    ``out_cap`` bytes and returns the value's full length or -1 when absent;
    ``set(key_ptr, key_len, val_ptr, val_len) -> i32`` and ``delete(key_ptr, key_len) -> i32``
    return 0.  Smoke runs never reach a real store.
    """

    INTERFACE = "keys"

    def __init__(self, host: str = "ferrite", fixtures: dict[str, str] | None = None) -> None:
        """A store holding ``fixtures`` for the module ``<host>:keys``."""
        self.module = f"{host}:{self.INTERFACE}"
        self.data: dict[bytes, bytes] = {k.encode(): v.encode() for k, v in (fixtures or {}).items()}
        self.size = sum(len(k) + len(v) for k, v in self.data.items())

    def mismatch(self, expected: dict[str, str | None]) -> str | None:
        """The first difference between the store after the test and ``expected`` (None: absent)."""
        for key, want in expected.items():
            got = self.data.get(key.encode())
            if (None if got is None else got.decode("utf-8", "replace")) != want:
                shown_got = "absent" if got is None else repr(got.decode("utf-8", "replace"))
                shown_want = "absent" if want is None else repr(want)
                return f"{self.module} key {key!r} is {shown_got}, expected {shown_want}"
        return None

    @staticmethod
    def _memory(caller: wasmtime.Caller) -> wasmtime.Memory:
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            raise wasmtime.WasmtimeError("the keys host import needs the module to export 'memory'")
        return memory

    def _read(self, caller: wasmtime.Caller, ptr: int, length: int) -> bytes:
        memory = self._memory(caller)
        if ptr < 0 or length < 0 or ptr + length > memory.data_len(caller):
            raise wasmtime.WasmtimeError(f"keys: {length} bytes at {ptr} are outside linear memory")
        return bytes(memory.read(caller, ptr, ptr + length))

    def get(self, caller: wasmtime.Caller, key_ptr: int, key_len: int, out_ptr: int, out_cap: int) -> int:
        """``get``: copy at most ``out_cap`` bytes of the value; its full length, or -1 when absent."""
        value = self.data.get(self._read(caller, key_ptr, key_len))
        if value is None:
            return -1
        chunk = value[: max(0, out_cap)]
        self._read(caller, out_ptr, len(chunk))  # bounds check
        self._memory(caller).write(caller, chunk, out_ptr)
        return len(value)

    def set(self, caller: wasmtime.Caller, key_ptr: int, key_len: int, val_ptr: int, val_len: int) -> int:
        """``set``: store the value under the key; 0 (a trap past ``HOST_DATA_CAP`` bytes in all)."""
        key, value = self._read(caller, key_ptr, key_len), self._read(caller, val_ptr, val_len)
        old = self.data.get(key)
        size = self.size + len(key) + len(value) - (0 if old is None else len(key) + len(old))
        if size > HOST_DATA_CAP:
            raise wasmtime.WasmtimeError(f"keys: set: the store would exceed {HOST_DATA_CAP} bytes")
        self.data[key], self.size = value, size
        return 0

    def delete(self, caller: wasmtime.Caller, key_ptr: int, key_len: int) -> int:
        """``delete``: remove the key; 0."""
        key = self._read(caller, key_ptr, key_len)
        old = self.data.pop(key, None)
        if old is not None:
            self.size -= len(key) + len(old)
        return 0

    @staticmethod
    def fits(name: str, ty: wasmtime.FuncType) -> bool:
        """Whether an import ``name`` of type ``ty`` is one of the key-value contract's functions."""
        arity = {"get": 4, "set": 4, "delete": 2}
        if name not in arity or [type_name(p) for p in ty.params] != ["i32"] * arity[name]:
            return False
        return [type_name(r) for r in ty.results] == ["i32"]


def zero_stub(ty: wasmtime.FuncType, on_call: Callable[[], None] | None = None) -> Callable[..., Any]:
    """A deterministic stand-in for any other permission-gated host function: it returns zeros.

    ``on_call`` is told of every call (a failed test then names the stubs it called).
    """
    zero = [0.0 if type_name(r) in ("f32", "f64") else 0 for r in ty.results]

    def stub(*_args: Any) -> Any:
        if on_call is not None:
            on_call()
        if not zero:
            return None
        return zero[0] if len(zero) == 1 else zero

    return stub


def define_stubs(
    linker: wasmtime.Linker,
    imports: list[Any],
    keys_module: str,
    keys: Callable[[], KeyValueStub],
    called: Callable[[str], None] | None = None,
) -> None:
    """Link every permission-granted import that no ABI provides to its deterministic stub.

    Defined once per release: a ``keys_module`` function calls into ``keys()``, the running test's
    store; ``called`` is given ``module.name`` of each zero stub the module calls.
    """
    for imp in imports:
        name = imp.name or ""
        if imp.module == keys_module and KeyValueStub.fits(name, imp.type):

            def call(caller: wasmtime.Caller, *args: int, _name: str = name) -> int:
                result: int = getattr(keys(), _name)(caller, *args)
                return result

            linker.define_func(imp.module, name, imp.type, call, access_caller=True)
        else:
            label = f"{imp.module}.{name}"
            on_call = (lambda _label=label: called(_label)) if called is not None else None
            linker.define_func(imp.module, name, imp.type, zero_stub(imp.type, on_call))


# --------------------------------------------------------------------------- deterministic WASI


PollFallback = Callable[..., int]
SLEPT_PAST_DEADLINE = "the module slept past its wall-clock deadline (virtual time: no real sleep)"


#: The WASI preview 1 calls ``DeterministicWasi`` answers instead of wasmtime.
_WASI_SHADOWED = ("clock_time_get", "clock_res_get", "random_get", "poll_oneoff")


#: The subscriptions one ``poll_oneoff`` may pass (a program polls a few; more is EINVAL).
MAX_POLL_SUBSCRIPTIONS = 4096


class DeterministicWasi:
    """WASI clocks, randomness and sleeps for one test, identical on every run.

    wasmtime's WASI reads the real clock and the OS random source; a Go runtime seeds its hash maps
    and scheduler from them, so its fuel and memory figures changed from run to run (and with them a
    signed registry.json).  Here time is virtual: it starts at ``EPOCH_NS`` and advances ``TICK_NS``
    per clock read, a sleep (``poll_oneoff`` on clocks only) advances it to the deadline at once, and
    random bytes come from SHA-256 in counter mode over a fixed seed.  A sleep ending past the test's
    ``wall_time`` is a timeout at once (real time cannot pass while a host call blocks: epochs only
    interrupt wasm code).
    """

    EPOCH_NS = 1_700_000_000 * 10**9
    TICK_NS = 1_000
    _E_INVAL = 28

    def __init__(
        self, wall_time: float, seed: bytes = b"registry-tool", poll_fallback: PollFallback | None = None
    ) -> None:
        """One test's clock and random stream; ``poll_fallback`` answers fd subscriptions."""
        self.now = self.EPOCH_NS
        # A sleep that would end past the test's wall-clock deadline ends the test in ``timeout``.
        self.deadline = self.EPOCH_NS + int(wall_time * 1e9)
        self.seed, self.counter = seed, 0
        self.poll_fallback = poll_fallback  # wasmtime's own poll_oneoff, for fd subscriptions

    @staticmethod
    def _memory(caller: wasmtime.Caller) -> wasmtime.Memory:
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            raise wasmtime.WasmtimeError("WASI needs the module to export its memory as 'memory'")
        return memory

    def _write(self, caller: wasmtime.Caller, ptr: int, data: bytes) -> None:
        memory = self._memory(caller)
        if ptr < 0 or ptr + len(data) > memory.data_len(caller):
            raise wasmtime.WasmtimeError(f"WASI: {len(data)} bytes at {ptr} are outside linear memory")
        memory.write(caller, data, ptr)

    def clock_time_get(self, caller: wasmtime.Caller, clock: int, precision: int, out: int) -> int:
        """WASI ``clock_time_get``: the virtual clock, advanced one tick per read."""
        if clock not in (0, 1, 2, 3):
            return self._E_INVAL
        self.now += self.TICK_NS
        self._write(caller, out, self.now.to_bytes(8, "little"))
        return 0

    def clock_res_get(self, caller: wasmtime.Caller, clock: int, out: int) -> int:
        """WASI ``clock_res_get``: the virtual clock's tick."""
        if clock not in (0, 1, 2, 3):
            return self._E_INVAL
        self._write(caller, out, self.TICK_NS.to_bytes(8, "little"))
        return 0

    def random_get(self, caller: wasmtime.Caller, buf: int, length: int) -> int:
        """WASI ``random_get``: SHA-256 counter-mode bytes from the fixed seed."""
        if buf < 0 or length < 0 or buf + length > self._memory(caller).data_len(caller):
            # Checked before the bytes are made: 2 GiB of them would take the test's whole deadline.
            raise wasmtime.WasmtimeError(f"WASI: {length} bytes at {buf} are outside linear memory")
        out = bytearray()
        while len(out) < length:
            self.counter += 1
            out += hashlib.sha256(self.seed + self.counter.to_bytes(8, "little")).digest()
        self._write(caller, buf, bytes(out[:length]))
        return 0

    def poll_oneoff(self, caller: wasmtime.Caller, subs: int, events: int, count: int, nevents: int) -> int:
        """WASI ``poll_oneoff``: clock subscriptions advance the virtual clock; fd ones go to wasmtime."""
        memory = self._memory(caller)
        # At most MAX_POLL_SUBSCRIPTIONS: the host's time in this one call is not metered by fuel
        # or the epoch (5.6 M subscriptions took 4 s and 1.2 GB of the worker).
        if not 0 < count <= MAX_POLL_SUBSCRIPTIONS or subs < 0 or subs + 48 * count > memory.data_len(caller):
            return self._E_INVAL
        raw = bytes(memory.read(caller, subs, subs + 48 * count))
        if any(raw[48 * i + 8] != 0 for i in range(count)):  # an fd subscription: wasmtime's own answer
            if self.poll_fallback is None:
                return self._E_INVAL
            return int(self.poll_fallback(caller, subs, events, count, nevents))
        first, soonest = 0, None
        for i in range(count):
            timeout = int.from_bytes(raw[48 * i + 24 : 48 * i + 32], "little")
            absolute = int.from_bytes(raw[48 * i + 40 : 48 * i + 42], "little") & 1
            deadline = timeout if absolute else self.now + timeout
            if soonest is None or deadline < soonest:
                first, soonest = i, deadline
        assert soonest is not None
        if soonest > self.deadline:
            raise wasmtime.WasmtimeError(SLEPT_PAST_DEADLINE)
        self.now = max(self.now, soonest)
        event = (
            raw[48 * first : 48 * first + 8] + bytes(2) + bytes([0]) + bytes(21)
        )  # userdata, errno 0, clock
        self._write(caller, events, event)
        self._write(caller, nevents, (1).to_bytes(4, "little"))
        return 0

    @staticmethod
    def define(
        linker: wasmtime.Linker,
        engine: wasmtime.Engine,
        imports: list[Any],
        current: Callable[[], DeterministicWasi],
    ) -> PollFallback | None:
        """Shadow wasmtime's versions of the four calls among ``imports`` (WASI already defined).

        Defined once per release: each call goes to ``current()``, the running test's clock and
        random stream.  Returns wasmtime's own ``poll_oneoff`` (for fd subscriptions) when the
        module imports it, to be handed to each test's ``DeterministicWasi``.
        """
        wanted = {imp.name: imp.type for imp in imports if imp.module == ABI_WASI}
        fallback = None
        if "poll_oneoff" in wanted:
            fallback = wasmtime.Linker(engine)
            fallback.define_wasi()
        linker.allow_shadowing = True
        for name in _WASI_SHADOWED:
            ty = wanted.get(name)
            # Only the WASI signature is shadowed (``_link_plan`` refuses any other first): an import
            # of another type would otherwise link here and in no real host.
            if (
                isinstance(ty, wasmtime.FuncType)
                and (
                    tuple(map(type_name, ty.params)),
                    tuple(map(type_name, ty.results)),
                )
                == WASI_FUNCTIONS[name]
            ):

                def call(caller: wasmtime.Caller, *args: int, _name: str = name) -> int:
                    result: int = getattr(current(), _name)(caller, *args)
                    return result

                linker.define_func(ABI_WASI, name, wanted[name], call, access_caller=True)
        linker.allow_shadowing = False
        if fallback is None:
            return None
        original = fallback

        def poll_fallback(caller: wasmtime.Caller, *args: int) -> int:
            func = original.get(caller, ABI_WASI, "poll_oneoff")
            assert isinstance(func, wasmtime.Func)
            return int(func(caller, *args))

        return poll_fallback
