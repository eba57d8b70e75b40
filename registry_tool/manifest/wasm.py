"""Inspect a wasm module or component with wasmtime: imports, exports and their types.

Nothing is instantiated or executed; wasmtime's validator (under the registry's enabled wasm
features) proves that the engine accepts the binary, and the types are read from its bytes.
wasmtime is imported on first use, not with this module: the types here, ``is_component`` and
the manifest rules that read them must not cost its import (CLI start-up time).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from registry_tool.manifest import cache as disk_cache
from registry_tool.manifest.binary import (
    SHARED_MEMORY_REFUSED,
    WASM_MAGIC,
    Interface,
    has_shared_memory,
    is_component,
    module_interface,
)
from registry_tool.manifest.errors import ComponentProbeError, WasmInspectionError

if TYPE_CHECKING:
    import wasmtime


class WasmConfigError(ValueError):
    """A registry.toml [features] set that wasmtime cannot run (unknown or contradictory)."""


@dataclass(frozen=True)
class ImportInfo:
    """One import of a module (or a component's imported instance), with its function type."""

    module: str
    name: str
    kind: str  # func | memory | table | global | tag | instance | ...
    params: tuple[str, ...] = ()
    results: tuple[str, ...] = ()

    def __str__(self) -> str:
        """``module.name (kind [params] -> [results])`` as messages print it."""
        sig = f" [{', '.join(self.params)}] -> [{', '.join(self.results)}]" if self.kind == "func" else ""
        return f"{self.module}{'.' + self.name if self.name else ''} ({self.kind}{sig})"


@dataclass(frozen=True)
class ExportInfo:
    """One export of a module or component, with its function type."""

    name: str
    kind: str
    params: tuple[str, ...] = ()
    results: tuple[str, ...] = ()

    @property
    def signature(self) -> str:
        """``[params] -> [results]`` as messages print it."""
        return f"[{', '.join(self.params)}] -> [{', '.join(self.results)}]"


@dataclass(frozen=True)
class ModuleInfo:
    """What validate needs to know about a module or component: its interface and initial sizes."""

    is_component: bool
    imports: tuple[ImportInfo, ...]
    exports: tuple[ExportInfo, ...]
    memory_min_bytes: int = 0  # the largest initial memory, defined or imported (the limit applies to each)
    table_min_elements: int = 0

    def export(self, name: str) -> ExportInfo | None:
        """The export called ``name``, or None."""
        return next((e for e in self.exports if e.name == name), None)


def engine_config(features: Mapping[str, bool] | None = None) -> wasmtime.Config:
    """A wasmtime Config with the registry's [features] applied.

    wasmtime aborts the whole process (a Rust panic) on some inconsistent feature sets, so
    dependencies are resolved here first and contradictions raise ``WasmConfigError``.
    """
    import wasmtime

    from registry_tool.manifest.config import FEATURES, feature_conflict, resolved_features

    listed = dict(features or {})
    for name in listed:
        if name not in FEATURES:
            raise WasmConfigError(f"unknown wasm feature {name!r}; known: {', '.join(sorted(FEATURES))}")
    wanted = resolved_features(listed)
    conflict = feature_conflict(wanted)
    if conflict:
        raise WasmConfigError(f"feature {conflict[0]!r} requires {', '.join(map(repr, conflict[1]))}")
    config = wasmtime.Config()
    for name, enabled in wanted.items():
        setattr(config, FEATURES[name], enabled)
    if "component_model" in listed:
        config.wasm_component_model = bool(listed["component_model"])
    if not wanted["reference_types"]:
        # Async components need reference types; wasmtime-py has no property for it yet.
        from wasmtime import _ffi as ffi

        ffi.wasmtime_config_wasm_component_model_async_set(config.ptr(), False)
    return config


#: True in a process forked from one that may have used wasmtime (see ``_forked``).
_FORKED = [False]


@lru_cache(maxsize=8)
def _engine(features: tuple[tuple[str, bool], ...]) -> wasmtime.Engine:
    import wasmtime

    config = engine_config(dict(features))
    # Validation compiles only to learn types: skip optimisation to keep it quick.
    config.cranelift_opt_level = "none"
    if _FORKED[0]:
        config.parallel_compilation = False
    try:
        return wasmtime.Engine(config)
    except wasmtime.WasmtimeError as err:
        raise WasmConfigError(f"wasmtime rejects this feature set: {err}") from None


def _forked() -> None:
    # wasmtime validates and compiles on a process-wide thread pool that a fork does not copy: a
    # child that validated with it after its parent had started it would wait forever for threads
    # that do not exist (the build forks its workers).  The child drops the parent's engines and
    # makes its own, which validate and compile on the calling thread.
    _FORKED[0] = True
    _engine.cache_clear()


os.register_at_fork(after_in_child=_forked)


def make_engine(features: Mapping[str, bool] | None = None) -> wasmtime.Engine:
    """A (cached) engine for inspection with the given features."""
    return _engine(tuple(sorted((features or {}).items())))


def _features_key(features: Mapping[str, bool] | None) -> str:
    # The resolved switches, not the listed ones: what an unlisted feature means is a rule of this
    # tool (resolved_features) and changed once; a verdict remembered under the old meaning of the
    # same listing must not answer for the new one.
    from registry_tool.manifest.config import resolved_features

    return "features-2:" + repr(sorted(resolved_features(features).items()))


def features_verdict(features: Mapping[str, bool] | None) -> str | None:
    """The installed wasmtime's acceptance of this feature set as a key (None: no wasmtime found).

    A build records it in its cache (``check_features(proven=...)``): a rebuild that verifies
    nothing then need not import wasmtime at all.
    """
    library = disk_cache.library_version("wasmtime")
    return None if library is None else f"{library}\0{_features_key(features)}"


def check_features(features: Mapping[str, bool] | None, proven: Container[str] = ()) -> None:
    """Raise ``WasmConfigError`` when wasmtime cannot run with this feature set.

    ``proven``: ``features_verdict`` keys this tool recorded after wasmtime accepted them.
    """
    if proven and features_verdict(features) in proven:
        return
    remembered = disk_cache.verdicts_on()
    if remembered and disk_cache.proved("wasm-features", "wasmtime", _features_key(features)):
        return
    make_engine(features)
    if remembered:
        disk_cache.remember("wasm-features", "wasmtime", _features_key(features))


def inspect_wasm(
    data: bytes, features: Mapping[str, bool] | None = None, *, shared_memory: bool = False
) -> ModuleInfo:
    """Validate ``data`` under the given features and list its imports and exports with types.

    Core modules are validated by wasmtime (the same validator its compiler runs first, with the
    registry's features) without generating code: a 1 MiB module validates in a fraction of the
    time a compilation takes, and the smoke harness compiles (and caches) separately.  Imports,
    exports and their types are then read from the validated bytes (``binary.py``).  Components
    are compiled: their types are only available from a compiled component.

    In a process that uses remembered verdicts (``cache.py``), a module wasmtime (this version)
    accepted under these features in an earlier run is not validated again: that saves importing
    wasmtime in the next ``registry-tool validate``.

    A shared memory (in the module, or in a core module a component embeds) is refused unless
    ``shared_memory``: the sandbox cannot bound it; the client, which runs nothing, reads imports
    with ``shared_memory=True``.

    Raises ``WasmInspectionError`` with wasmtime's reason when the binary is invalid or uses a
    disabled feature.
    """
    if data[:4] != WASM_MAGIC:
        raise WasmInspectionError(
            "not a WebAssembly binary (missing the \\0asm magic header)",
            fix="point artifact.file at a compiled .wasm (use wat2wasm for text modules)",
        )
    if is_component(data):
        return _inspect_component(data, features, shared_memory)
    remembered = disk_cache.verdicts_on()
    if not (remembered and disk_cache.proved("wasm-valid", "wasmtime", _features_key(features), data)):
        _validate_module(data, features)
        if remembered:
            disk_cache.remember("wasm-valid", "wasmtime", _features_key(features), data)
    iface = _interface(data)
    if iface.shared_memory and not shared_memory:
        raise _shared_memory_refusal()
    imports = tuple(
        ImportInfo(imp.module, imp.name, imp.kind, *(tuple(t) for t in (sig or ((), ()))))
        for imp, sig in iface.imports
    )
    exports = tuple(
        ExportInfo(name, kind, *(tuple(t) for t in (sig or ((), ())))) for name, kind, sig in iface.exports
    )
    return ModuleInfo(False, imports, exports, iface.memory_min_bytes, iface.table_min_elements)


def _shared_memory_refusal() -> WasmInspectionError:
    # wasmtime applies a store's memory limit to linear memories, not to shared ones (a shared
    # memory grew past a 2-page cap here), so the sandbox could not bound it.
    return WasmInspectionError(
        SHARED_MEMORY_REFUSED,
        fix="build without shared memory (no -pthread / --shared-memory, asc without --sharedMemory): "
        "atomics work on an unshared memory when registry.toml enables threads",
    )


# wasmtime's words for a proposal the engine has off -> the registry.toml [features] key and how a
# toolchain leaves the proposal out.
_FEATURE_MESSAGES = (
    ("relaxed SIMD support is not enabled", "relaxed_simd", "build without -mrelaxed-simd"),
    ("SIMD support is not enabled", "simd", "build without -msimd128 (or the toolchain's SIMD flag)"),
    ("reference types support is not enabled", "reference_types", "build with -mno-reference-types"),
    ("multi-value feature is not enabled", "multi_value", "build with -mno-multivalue"),
    ("threads support is not enabled", "threads", "build without -matomics / -pthread"),
    ("without the gc feature", "gc", "build for a target without wasm GC"),
    ("function references required", "function_references", "build without typed function references"),
    ("wide arithmetic support is not enabled", "wide_arithmetic", "build without -mwide-arithmetic"),
    (
        "bulk memory support is not enabled",
        "bulk_memory",
        "build without bulk memory (clang -mno-bulk-memory, asc --disable bulk-memory; Go always uses it)",
    ),
    (
        "data count section requires the bulk-memory",
        "bulk_memory",
        "build without bulk memory (clang -mno-bulk-memory, asc --disable bulk-memory; Go always uses it)",
    ),
    ("tail calls support is not enabled", "tail_call", "build with -mno-tail-call"),
    ("exceptions proposal not enabled", "exceptions", "build with -fno-exceptions"),
    ("memory64 must be enabled", "memory64", "build for wasm32, not wasm64"),
    ("multiple memories", "multi_memory", "link the module with one memory"),
    ("threads must be enabled", "threads", "build without -pthread / atomics"),
)
_GENERIC_FEATURE_FIX = "rebuild the module, or only use wasm features registry.toml [features] enables"


def feature_fix(message: str) -> str:
    """The fix for a module wasmtime refuses with ``message`` (a disabled proposal, said by name)."""
    if "legacy_exceptions" in message:
        # Legacy try/catch (clang's default -fwasm-exceptions output) is no switch of registry.toml:
        # wasmtime runs only the exnref encoding of the exceptions proposal.
        return (
            "rebuild with the standard (exnref) exception encoding: clang -fwasm-exceptions "
            "-mllvm -wasm-use-legacy-eh=false (a recent clang: Debian 12's clang 14 lacks the "
            "option; wasmtime does not run legacy try/catch), with exceptions = true in registry.toml "
            "[features]; or build without exceptions (-fno-exceptions)"
        )
    if "threads must be enabled for shared memories" in message or SHARED_MEMORY_REFUSED in message:
        return _shared_memory_refusal().fix or _GENERIC_FEATURE_FIX  # threads = true would not run it either
    for said, key, rebuild in _FEATURE_MESSAGES:
        if said in message:
            return f"{rebuild}, or ask the registry to set {key} = true in registry.toml [features]"
    return _GENERIC_FEATURE_FIX


def _validate_module(data: bytes, features: Mapping[str, bool] | None) -> None:
    import wasmtime

    engine = make_engine(features)
    try:
        wasmtime.Module.validate(engine, data)
    except wasmtime.WasmtimeError as err:
        said = _first_line(err)
        fix = feature_fix(said)
        if "exceptions proposal not enabled" in said and _legacy_exceptions(data, features):
            fix = feature_fix("legacy_exceptions")  # exceptions = true would not run it either
        raise WasmInspectionError(f"wasmtime cannot compile the module: {said}", fix=fix) from None


def _legacy_exceptions(data: bytes, features: Mapping[str, bool] | None) -> bool:
    """Does the module use legacy try/catch, which no [features] switch makes wasmtime run?"""
    import wasmtime

    try:
        wasmtime.Module.validate(make_engine({**(features or {}), "exceptions": True}), data)
    except wasmtime.WasmtimeError as err:
        return "legacy_exceptions" in _first_line(err)
    return False


def _inspect_component(data: bytes, features: Mapping[str, bool] | None, shared_memory: bool) -> ModuleInfo:
    # A component is compiled to learn its types (seconds for a componentize-py one, every run):
    # in a process that uses remembered verdicts, the names an earlier run read are taken again.
    parts = (_features_key(features), "shared" if shared_memory else "", data)
    remembered = disk_cache.verdicts_on()
    if remembered:
        known = _recalled_component(disk_cache.recall("component-types", "wasmtime", *parts))
        if known is not None:
            return known
    info = _compiled_component_info(data, features, shared_memory)
    if remembered:
        names = {"imports": [i.module for i in info.imports], "exports": [e.name for e in info.exports]}
        disk_cache.keep("component-types", "wasmtime", json.dumps(names).encode(), *parts)
    return info


def _component_info(imports: Sequence[str], exports: Sequence[str]) -> ModuleInfo:
    return ModuleInfo(
        True,
        tuple(ImportInfo(name, "", "instance" if "/" in name else "item") for name in imports),
        tuple(ExportInfo(name, "instance" if "/" in name else "item") for name in exports),
    )


def _recalled_component(raw: bytes | None) -> ModuleInfo | None:
    if raw is None:
        return None
    try:
        names = json.loads(raw)
        imports, exports = names["imports"], names["exports"]
        if all(isinstance(n, str) for n in [*imports, *exports]):
            return _component_info(imports, exports)
    except (ValueError, TypeError, KeyError):
        pass
    return None  # nothing remembered, or a damaged entry: compile


# Address space a component's compile may use: 2 GiB for the interpreter and wasmtime plus this
# much per byte of component, as the smoke harness sizes a module's compile (harness.limits_for).
_PROBE_ROOM = 24


def _probe_address_space(size: int) -> int:
    return 2 * 1024**3 + _PROBE_ROOM * size


def _compiled_component_info(
    data: bytes, features: Mapping[str, bool] | None, shared_memory: bool
) -> ModuleInfo:
    """The component's names, compiled in a process of its own (``_component_probe``).

    Bounded as the smoke harness bounds a compile: an address space of 2 GiB plus 24 bytes per
    byte of component, and the registry's default compile time; a component that needs more is
    refused (``WasmInspectionError``), never a process of the caller run out of memory.
    """
    import importlib.util
    import subprocess
    import sys
    from pathlib import Path

    from registry_tool.manifest.config import DEFAULT_COMPILE_TIME

    if importlib.util.find_spec("wasmtime") is None:  # callers explain how to install it
        raise ModuleNotFoundError("No module named 'wasmtime'", name="wasmtime")
    room = _probe_address_space(len(data))
    # -P: never the working directory on sys.path (`-m` would put it first: in CI it is the pull
    # request's tree, whose own registry_tool/ package would run in place of this one).  The child
    # imports what this process imports (a host may have put both on sys.path itself).
    command = [sys.executable, "-P", "-m", "registry_tool.manifest._component_probe", str(room)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(Path(p).absolute()) for p in sys.path if p)}
    try:
        done = subprocess.run(
            [*command, json.dumps(dict(features or {}))],
            input=data,
            capture_output=True,
            timeout=DEFAULT_COMPILE_TIME,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise WasmInspectionError(
            f"wasmtime did not compile the component within {DEFAULT_COMPILE_TIME:g} s",
            fix="a component this slow to compile cannot be checked or run: split it, or build it "
            "with fewer functions",
        ) from None
    except (OSError, TypeError, ValueError) as err:  # no interpreter to start (sys.executable empty)
        raise ComponentProbeError(
            f"cannot start a Python interpreter ({sys.executable!r}) to compile the component: {err}",
            fix="run registry-tool with a Python interpreter that sys.executable names",
        ) from None
    try:
        names = json.loads(done.stdout.decode("utf-8", errors="replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        names = None
    if done.returncode < 0:  # an abort (wasmtime out of memory) or a kill: the component's doing
        raise WasmInspectionError(
            f"wasmtime could not compile the component within {room // 1024**2} MiB of address space "
            f"(killed by signal {-done.returncode})",
            fix="a component this large to compile cannot be checked or run: split it, or build it "
            "with fewer functions",
        )
    if done.returncode != 0 or not isinstance(names, dict):
        said = done.stderr.decode("utf-8", errors="replace").strip().splitlines()[-3:]
        raise ComponentProbeError(
            f"the process compiling the component ended with exit {done.returncode} without a verdict: "
            + (" | ".join(said) or "it said nothing"),
            fix="check that this Python can import registry_tool and wasmtime, and the process limits "
            "(ulimit -v)",
        )
    if "error" in names:
        raise WasmInspectionError(
            f"wasmtime cannot compile the component: {names['error']}",
            fix="rebuild the component against WASI 0.2 with the features registry.toml enables",
        )
    if not shared_memory:
        try:
            shared = has_shared_memory(data)
        except (ValueError, IndexError) as err:
            raise WasmInspectionError(
                f"cannot read the component's core modules: {err}", fix="rebuild the component"
            ) from None
        if shared:
            raise _shared_memory_refusal()
    return _component_info(
        [str(n) for n in names.get("imports", [])], [str(n) for n in names.get("exports", [])]
    )


def _interface(data: bytes) -> Interface:
    try:
        return module_interface(data)
    except (ValueError, IndexError, KeyError) as err:
        raise WasmInspectionError(
            f"cannot read the module's imports, exports and function types: {err}",
            fix="rebuild the module with a standard toolchain",
        ) from None


def _first_line(err: Exception) -> str:
    """The wasmtime error chain in one line: the root cause first, then the context."""
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip() and ln.strip() != "Caused by:"]
    lines = [re.sub(r"^\d+: ", "", ln) for ln in lines]
    if not lines:
        return type(err).__name__
    return lines[-1] if len(lines) == 1 else f"{lines[-1]} ({'; '.join(lines[:-1])})"
