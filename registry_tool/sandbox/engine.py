"""The wasmtime engine a smoke run uses and its on-disk cache of compiled modules.

The engine is built from the registry's limits and features.

Everything here is plain data that crosses the worker-process boundary as JSON, so the parent
decides the limits and the worker only applies them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import wasmtime

from registry_tool._files import private_dir
from registry_tool.errors import Location, UsageError
from registry_tool.format.rules import MAX_TEST_FILE_BYTES


def feature_flags() -> dict[str, str]:
    """Wasm proposals the registry can switch (registry.toml [features]) -> ``wasmtime.Config`` attribute.

    The component model is not one of them here: it is set per module (``EngineSpec.component``).
    Read from the registry configuration's feature table in the parent only: the worker gets the
    resolved switches in its job (``EngineSpec.flags``), so it never imports the configuration code.
    """
    from registry_tool.manifest.config import FEATURES

    return {name: attr for name, attr in FEATURES.items() if name != "component_model"}


def _default_compile_time() -> float:
    from registry_tool.manifest.config import DEFAULT_COMPILE_TIME

    return DEFAULT_COMPILE_TIME


def _default_features() -> dict[str, bool]:
    """What a registry whose ``[features]`` lists nothing runs with (``manifest.config``)."""
    from registry_tool.manifest.config import resolved_features

    return resolved_features({})


CACHE_ENV = "REGISTRY_TOOL_CACHE_DIR"
#: Bytes of stdout and of stderr a test may write by default (``Limits.output``): as much as an
#: ``expect_file`` may hold, so that any expected output can be produced (at 1 MiB, a 2 MiB
#: expect_file validate accepted always failed as output_limit).
OUTPUT_CAP = MAX_TEST_FILE_BYTES
EPOCH_TICK_S = 0.01


@dataclass(frozen=True)
class Limits:
    """Hard limits of one test run (all bytes / seconds / counts)."""

    fuel: int = 50_000_000
    memory: int = 16 * 1024**2  # per linear memory (Store.set_limits memory_size)
    wall_time: float = 2.0
    table_elements: int = 100_000
    instances: int = 10
    tables: int = 10
    memories: int = 1
    stack: int = 1024**2  # Config.max_wasm_stack
    output: int = OUTPUT_CAP  # bytes of stdout and of stderr each
    compile_timeout: float = field(default_factory=_default_compile_time)
    # Worker-process limits: address space and CPU seconds per worker.
    address_space: int = 4 * 1024**3
    # Slack the parent adds to wall_time before it kills a worker that ignores its own deadline.
    kill_margin: float = 3.0

    def to_json(self) -> dict[str, Any]:
        """The limits as JSON for the worker."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Limits:
        """The limits back from ``to_json``."""
        return cls(**data)


def reservation_for(memory: int) -> int:
    """The address space reserved per linear memory for a memory limit: the limit in whole pages.

    A memory then grows in place up to its cap; with a smaller reservation every ``memory.grow``
    past it moved and copied the whole memory (growing page by page to 128 MiB under a 16 MiB
    reservation did not finish in 10 s).  The worker's address-space ceiling counts every memory
    at its cap already.
    """
    page = 64 * 1024
    return max(page, -(-memory // page) * page)


@dataclass(frozen=True)
class EngineSpec:
    """Everything that changes generated code, hence the compile-cache key."""

    #: Every switchable proposal -> on, as ``manifest.config.resolved_features`` reads registry.toml
    #: (a name absent here is off).
    features: dict[str, bool] = field(default_factory=_default_features)
    stack: int = 1024**2
    component: bool = False
    # Virtual address space reserved per linear memory: the memory limit, so a memory never moves
    # while it grows up to its cap (with no reservation every memory.grow copies the whole memory).
    reservation: int = 16 * 1024**2
    #: ``wasmtime.Config`` attribute -> on, for every switchable proposal (``resolved()`` fills it in
    #: the parent; None: computed from ``features`` when needed).
    flags: dict[str, bool] | None = None
    #: The wasmtime-py version (part of the cache key), filled in by ``resolved()`` in the parent:
    #: reading it (``importlib.metadata``) costs the worker about 20 ms of CPU.  None: read when needed.
    wasmtime: str | None = None

    @property
    def cow(self) -> bool:
        """Copy-on-write memory images: for core modules only (see ``make_config``)."""
        return not self.component

    def normalised_features(self) -> dict[str, bool]:
        """Every switchable proposal by its registry.toml name -> on (absent means off)."""
        return {name: bool(self.features.get(name, False)) for name in sorted(feature_flags())}

    def wasmtime_flags(self) -> dict[str, bool]:
        """Every switchable proposal by its ``wasmtime.Config`` attribute -> on."""
        if self.flags is not None:
            return dict(sorted(self.flags.items()))
        return dict(
            sorted((attr, bool(self.features.get(name, False))) for name, attr in feature_flags().items())
        )

    def resolved(self) -> EngineSpec:
        """This spec with ``flags`` filled in, as the worker receives it."""
        return replace(self, flags=self.wasmtime_flags(), wasmtime=self.wasmtime or wasmtime_version())

    def fingerprint(self) -> str:
        """A digest of everything here that changes generated code (part of the compile-cache key)."""
        blob = json.dumps(
            {
                "features": self.wasmtime_flags(),
                "stack": self.stack,
                "component": self.component,
                "wasmtime": self.wasmtime or wasmtime_version(),
                "fuel": True,
                "epoch": True,
                "reservation": self.reservation,
                "cow": self.cow,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:32]


def wasmtime_version() -> str:
    """The installed wasmtime-py version."""
    from importlib.metadata import version

    return version("wasmtime")


class UnsupportedFeaturesError(UsageError):
    """registry.toml asks for a feature combination this wasmtime build cannot provide."""

    code = "sandbox-unsupported-features"


def check_features(spec: EngineSpec) -> None:
    """Reject sets wasmtime would abort the process on (validate refuses them in registry.toml)."""
    from registry_tool.manifest.config import feature_conflict

    conflict = feature_conflict(spec.normalised_features())
    if conflict:
        name, missing = conflict
        raise UnsupportedFeaturesError(
            f"the {name} proposal needs {', '.join(missing)} enabled as well",
            where=Location(field=f"features.{name}"),
            fix=f"enable {', '.join(missing)} or disable {name} in registry.toml [features]",
        )


def make_config(spec: EngineSpec) -> wasmtime.Config:
    """A Config with fuel, epochs, a bounded stack and exactly the registry's features."""
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    config.max_wasm_stack = spec.stack
    # Reserve exactly the memory limit and no guard region: the worker's RLIMIT_AS stays meaningful
    # (no 4 GiB + 2 GiB guard per memory) and bounds checks are explicit.
    config.memory_reservation = spec.reservation
    config.memory_guard_size = 0
    config.memory_reservation_for_growth = 0
    # Copy-on-write memory images (wasmtime's default) for core modules.  Disabling them made
    # wasmtime compile a Go wasip1 module 4-5x slower under fuel metering (measured in
    # bench/bench_smoke.py).  The image lives in a memfd file created at the first instantiation,
    # which the worker's RLIMIT_FSIZE (the output cap during a test) would refuse: the worker
    # primes a core module's images before any test runs.  A component's core modules are
    # instantiated only by instantiating the component, which runs its code, so nothing can prime
    # them outside a test: a component's memories are initialised by copying instead (a component
    # with more than the output cap of data trapped with EFBIG in every test).
    config.memory_init_cow = spec.cow
    for attr, on in spec.wasmtime_flags().items():
        setattr(config, attr, on)
    if not spec.wasmtime_flags().get("wasm_reference_types", True):
        # wasmtime panics on reference types off while async components are on (no Config property).
        from wasmtime import _ffi as ffi

        ffi.wasmtime_config_wasm_component_model_async_set(config.ptr(), False)
    config.wasm_component_model = spec.component
    return config


def make_engine(spec: EngineSpec) -> wasmtime.Engine:
    """An engine configured by ``make_config``."""
    return wasmtime.Engine(make_config(spec))


# --------------------------------------------------------------------------- compile cache


def default_cache_dir() -> Path:
    """The compile cache directory: ``$REGISTRY_TOOL_CACHE_DIR`` or the user cache directory."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("registry-tool")) / "modules"


def cache_key(wasm: bytes, spec: EngineSpec) -> str:
    """The cache key of ``wasm`` compiled under ``spec``: its SHA-256 and the engine fingerprint."""
    return f"{hashlib.sha256(wasm).hexdigest()}-{spec.fingerprint()}"


class ModuleCache:
    """Compiled modules on disk, keyed by module sha256 + engine fingerprint (incl. wasmtime version).

    Files are written atomically (temp file + rename) so parallel workers never see a half file.
    The directory is created private (0700) and refused if someone else could write to it.  A hit
    refreshes the entry's mtime; past ``max_bytes`` the least recently used entries are removed.
    """

    def __init__(self, directory: Path, max_bytes: int = 2 * 1024**3) -> None:
        """A cache in ``directory``, pruned least-recently-used first to ``max_bytes``."""
        self.directory = directory
        self.max_bytes = max_bytes

    def _usable(self) -> bool:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError:
            return False
        # Deserialising a compiled module runs native code: only a private directory is trusted.
        return private_dir(self.directory)

    def path_for(self, key: str) -> Path:
        """The file an entry with ``key`` lives in."""
        return self.directory / f"{key}.cwasm"

    def load(self, engine: wasmtime.Engine, key: str, kind: Any = wasmtime.Module) -> Any:
        """The cached ``kind`` (Module or component.Component) for ``key``, or None."""
        path = self.path_for(key)
        if not path.is_file() or not self._usable():
            return None
        try:
            loaded = kind.deserialize_file(engine, str(path))
        except wasmtime.WasmtimeError:
            path.unlink(missing_ok=True)  # stale or damaged entry: recompile
            return None
        with contextlib.suppress(OSError):
            os.utime(path)
        return loaded

    def store(self, module: Any, key: str) -> bool:
        """Serialise ``module`` under ``key`` atomically; False when unusable or the write fails."""
        if not self._usable():
            return False
        import tempfile  # only on a miss: the worker's start does without it

        data = module.serialize()
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            Path(tmp).replace(self.path_for(key))
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            return False
        self.prune()
        return True

    def prune(self) -> None:
        """Remove least recently used entries until the cache fits in ``max_bytes``."""
        entries = []
        for path in self.directory.glob("*.cwasm"):
            with contextlib.suppress(OSError):
                info = path.stat()
                entries.append((info.st_mtime_ns, info.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
