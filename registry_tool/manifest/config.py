"""registry.toml: the registry's configuration (host, ABIs, permission vocabulary, limits, features)."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Container, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from registry_tool._files import no_regular_file, unreachable
from registry_tool.errors import hidden_characters
from registry_tool.format.strictjson import MAX_SAFE_INTEGER
from registry_tool.manifest.abi import ABI_SPECS, gated_module
from registry_tool.manifest.errors import RegistryConfigError, RegistryConfigNotFoundError
from registry_tool.manifest.source import TomlSource, TomlSyntaxError, parse_toml, schema_findings
from registry_tool.manifest.units import UnitError, parse_duration, parse_size
from registry_tool.manifest.versions import RangeError, check_range
from registry_tool.report import Finding

CONFIG_FILE = "registry.toml"
#: The most bytes of registry.toml any command reads (it is a few KiB).
MAX_CONFIG_BYTES = 1 << 20
CONFIG_SCHEMA = "registry-config.schema.json"
# Imports each ABI allows on its own, before permissions (module, name pattern): from the ABI specs.
ABI_BASE_IMPORTS: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType(
    {name: spec.imports for name, spec in ABI_SPECS.items()}
)
#: Compile time a module gets when registry.toml sets no ``[limits.max] compile_time``: sized for
#: real modules on a cold CI cache (a 69 MB WASI command needs over two minutes of CPU).
DEFAULT_COMPILE_TIME = 300.0

# registry.toml [features] name -> wasmtime.Config attribute.
FEATURES: Mapping[str, str] = MappingProxyType(
    {
        "simd": "wasm_simd",
        "relaxed_simd": "wasm_relaxed_simd",
        "bulk_memory": "wasm_bulk_memory",
        "reference_types": "wasm_reference_types",
        "multi_value": "wasm_multi_value",
        "threads": "wasm_threads",
        "multi_memory": "wasm_multi_memory",
        "memory64": "wasm_memory64",
        "tail_call": "wasm_tail_call",
        "exceptions": "wasm_exceptions",
        "gc": "wasm_gc",
        "function_references": "wasm_function_references",
        "wide_arithmetic": "wasm_wide_arithmetic",
        "component_model": "wasm_component_model",
    }
)

#: The proposals on for every feature registry.toml's ``[features]`` does not list: the MVP-plus set
#: every mainstream toolchain emits.  Every other proposal is off until ``[features]`` turns it on:
#: wasmtime's own defaults change between its versions (wasmtime 50 enables gc, threads, memory64
#: and exceptions), and what a registry accepts must not change with the tool's wasmtime.
DEFAULT_FEATURES: Mapping[str, bool] = MappingProxyType(
    {"simd": True, "bulk_memory": True, "reference_types": True, "multi_value": True}
)


#: A proposal -> the proposals it needs on (wasmtime panics, aborting the process, on some sets).
FEATURE_NEEDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "relaxed_simd": ("simd",),
        "function_references": ("reference_types",),
        "gc": ("function_references", "reference_types"),
    }
)


def resolved_features(listed: Mapping[str, bool] | None) -> dict[str, bool]:
    """Every switchable proposal but ``component_model`` -> on: as listed, else ``DEFAULT_FEATURES``.

    The one reading of ``[features]``: validate's engine and the sandbox's both take it, so a module
    validate accepts compiles in smoke.  ``relaxed_simd`` follows ``simd`` when not listed.
    """
    listed = dict(listed or {})
    features = {
        name: bool(listed.get(name, DEFAULT_FEATURES.get(name, False)))
        for name in sorted(FEATURES)
        if name != "component_model"
    }
    if "relaxed_simd" not in listed and not features["simd"]:
        features["relaxed_simd"] = False
    # A listed proposal brings the unlisted ones it needs (``gc = true`` alone: function_references);
    # only a need listed as false is a conflict (``feature_conflict``).
    for name, needs in FEATURE_NEEDS.items():
        if listed.get(name):
            for need in needs:
                if need not in listed:
                    features[need] = True
    return features


def feature_conflict(features: Mapping[str, bool]) -> tuple[str, list[str]] | None:
    """The first proposal on (of ``resolved_features``) whose needs are off, with them; or None."""
    for name, needs in FEATURE_NEEDS.items():
        missing = [n for n in needs if not features.get(n)]
        if features.get(name) and missing:
            return name, missing
    return None


MAX_STACK = 2 * 1024 * 1024  # wasmtime's async_stack_size: max_wasm_stack may not exceed it


@dataclass(frozen=True)
class Limits:
    """Resource limits; ``None`` means "not set at this level" (defaults/max fill it)."""

    fuel: int | None = None
    memory: int | None = None  # bytes
    wall_time: float | None = None  # seconds
    module_size: int | None = None  # bytes
    table_elements: int | None = None
    instances: int | None = None
    stack: int | None = None  # bytes (wasmtime max_wasm_stack)
    compile_time: float | None = None  # seconds (registry.toml [limits.max] only)

    @classmethod
    def from_toml(cls, table: Mapping[str, Any]) -> Limits:
        """Build from a TOML table; raises ``UnitError``/``KeyError`` naming the bad key."""
        values: dict[str, Any] = {}
        for key, raw in table.items():
            if key in ("memory", "module_size", "stack"):
                values[key] = parse_size(raw)
                if key == "stack" and not 0 < values[key] <= MAX_STACK:
                    # wasmtime panics (aborting the sandbox worker) on a zero stack or one above its
                    # async stack size: the module would be blamed for the engine's refusal.
                    raise UnitError(f"stack must be 1 byte to 2MiB (wasmtime's bound), got {values[key]}")
            elif key in ("wall_time", "compile_time"):
                values[key] = parse_duration(raw)
            elif key in ("fuel", "table_elements", "instances"):
                values[key] = int(raw)
            else:
                raise KeyError(key)
        return cls(**values)

    def over(self, base: Limits) -> Limits:
        """These limits with unset fields taken from ``base``."""
        return replace(base, **{f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None})

    def exceeding(self, maximum: Limits) -> list[tuple[str, float, float]]:
        """(field, value, max) for every field set here that is above a set maximum."""
        out: list[tuple[str, float, float]] = []
        for f in fields(self):
            value, cap = getattr(self, f.name), getattr(maximum, f.name)
            if value is not None and cap is not None and value > cap:
                out.append((f.name, value, cap))
        return out


DEFAULT_TESTS_PER_RELEASE = 64
DEFAULT_SMOKE_WALL_TIME = 120.0  # seconds


@dataclass(frozen=True)
class ImportPattern:
    """An allowed import: module and name patterns (``fnmatch``), e.g. ``wasi_snapshot_preview1.*``."""

    module: str
    name: str = "*"

    def matches(self, module: str, name: str) -> bool:
        """Does the import ``module.name`` match (a WIT interface also by its package)?"""
        return fnmatch.fnmatchcase(name, self.name) and any(
            fnmatch.fnmatchcase(candidate, self.module) for candidate in _module_names(module)
        )


def _module_names(module: str) -> tuple[str, ...]:
    """A module name plus, for a WIT interface, its unversioned interface and its package.

    ``ferrite:keys/store@1.0.0`` also matches as ``ferrite:keys/store`` and ``ferrite:keys``,
    so a permission for ``ferrite:keys`` also covers components.
    """
    if ":" not in module or "/" not in module:
        return (module,)
    interface = module.split("@", 1)[0]
    return (module, interface, interface.split("/", 1)[0])


@dataclass(frozen=True)
class Permission:
    """A permission of the registry's vocabulary and the imports it grants."""

    name: str
    description: str
    imports: tuple[ImportPattern, ...]


@dataclass(frozen=True)
class RegistryConfig:
    """registry.toml, checked: host, allowed ABIs, permissions, limits, features, index policy."""

    path: Path
    raw: bytes
    name: str
    description: str
    base_url: str
    host_name: str
    host_versions: str  # semver range, e.g. ">=0.2.0, <1.0.0"
    allowed_abis: tuple[str, ...]
    permissions: Mapping[str, Permission]
    default_limits: Limits
    max_limits: Limits
    features: Mapping[str, bool]
    index_validity: float  # seconds a signed registry.json stays valid
    allow_backports: bool
    regression_threshold: float
    source: TomlSource = field(repr=False, compare=False)
    # The smoke budget of one release ([limits.max]): how many [[tests]], and the worst-case total
    # wall time (tests x their wall_time limit), so a manifest cannot hold thousands of 10 s tests.
    max_tests_per_release: int = 64
    max_smoke_wall_time: float = 120.0
    # [ci] max_new_releases: each new release is smoke-run, so one pull request adding thousands
    # would hold the CI runner for hours; above this, ci check refuses it before checking any.
    max_new_releases: int = 100

    @property
    def index_dir(self) -> Path:
        """The index folder (where registry.toml is)."""
        return self.path.parent

    def line_of(self, dotted_field: str) -> int | None:
        """1-based line of a dotted field of registry.toml, or of its nearest parent."""
        return self.source.line_of(dotted_field)

    def granting_permission(self, module: str, name: str) -> str | None:
        """Name of a permission whose import patterns cover ``module.name``, if any."""
        return granting_permission(self.permissions, module, name)

    def import_allowed(self, abi: str, granted: frozenset[str] | set[str], module: str, name: str) -> bool:
        """May a module of ``abi`` whose manifest grants ``granted`` import ``module.name``?

        The sandbox links host functions with the same predicate, so what validate accepts
        is exactly what can run.
        """
        return import_allowed(self.permissions, abi, granted, module, name)

    def allowed_imports(self, abi: str, granted: frozenset[str] | set[str]) -> tuple[ImportPattern, ...]:
        """The import patterns ``abi`` plus ``granted`` permissions allow (for docs and linkers)."""
        base = tuple(ImportPattern(m, n) for m, n in ABI_BASE_IMPORTS.get(abi, ()))
        extra = tuple(i for p in self.permissions.values() if p.name in granted for i in p.imports)
        return base + extra


def granting_permission(vocabulary: Mapping[str, Permission], module: str, name: str) -> str | None:
    """Name of a permission of ``vocabulary`` whose import patterns cover ``module.name``, if any."""
    for perm in vocabulary.values():
        if any(p.matches(module, name) for p in perm.imports):
            return perm.name
    return None


def import_allowed(
    vocabulary: Mapping[str, Permission], abi: str, granted: frozenset[str] | set[str], module: str, name: str
) -> bool:
    """The import rule shared by validate, the sandbox and the client (``RegistryConfig.import_allowed``)."""
    # A wasi_unstable import of an ABI that links preview 0 is gated as its preview 1 namesake, in
    # the client as in validate and the sandbox.
    module = gated_module(abi, module)
    # Permission-gated imports are never allowed by the ABI alone: a registry may gate
    # e.g. `extism:host/user` or `wasi_snapshot_preview1.sock_*` behind a permission.
    gate = [p for p in vocabulary.values() if any(i.matches(module, name) for i in p.imports)]
    if gate:
        return any(p.name in granted for p in gate)
    return any(ImportPattern(m, n).matches(module, name) for m, n in ABI_BASE_IMPORTS.get(abi, ()))


def find_registry_config(start: Path) -> Path:
    """registry.toml at ``start`` (a file or dir) or in the nearest ancestor directory."""
    if (why := unreachable(start)) is not None:
        raise RegistryConfigNotFoundError(
            f"the path {why}",
            where=str(start),
            fix="pass an existing registry.toml or index directory",
        )
    start = start.resolve()
    # An explicitly named file is the configuration, whatever its name, unless it is a manifest.
    if start.is_file() and start.name != "plugin.toml":
        return start
    if not start.is_dir() and start.name != "plugin.toml":
        # A FIFO or a device named as the configuration: never an ancestor's registry.toml instead.
        raise RegistryConfigNotFoundError(
            no_regular_file(start, "the configuration"),
            where=str(start),
            fix="pass a registry.toml that is a regular file, or the index directory",
        )
    for directory in [start, *start.parents] if start.is_dir() else start.parents:
        candidate = directory / CONFIG_FILE
        if candidate.is_file():
            return candidate
        if os.path.lexists(candidate):
            # A FIFO, device, folder or dangling link by that name: the configuration this index
            # means, unreadable (it was "not found", and a parent's registry.toml could have won).
            raise RegistryConfigNotFoundError(
                f"{candidate} is not a regular file",
                where=str(candidate),
                fix=f"make {CONFIG_FILE} a regular file",
            )
    raise RegistryConfigNotFoundError(
        f"no {CONFIG_FILE} found in {start} or any parent directory",
        where=str(start),
        fix=f"run inside an index that has {CONFIG_FILE} (validate and smoke also take --config PATH)",
    )


def load_registry_config(index_dir_or_file: Path, proven: Container[str] = ()) -> RegistryConfig:
    """Read and check registry.toml (a file, or the file found from a directory upwards).

    ``proven``: feature sets wasmtime accepted before (``wasm.features_verdict`` keys).
    """
    from registry_tool._files import read_bounded

    path = find_registry_config(index_dir_or_file)
    # Bounded (a 3 GB registry.toml ended the build out of memory) and non-blocking: one too large
    # or unreadable is an unreadable-file error naming it (exit 2), as every local file is.
    raw = read_bounded(path, MAX_CONFIG_BYTES, CONFIG_FILE)
    return parse_registry_config(path, raw, proven)


def parse_registry_config(path: Path, raw: bytes, proven: Container[str] = ()) -> RegistryConfig:
    """Check registry.toml bytes read from ``path`` (a build's workers parse the bytes its parent checked).

    ``proven``: feature sets wasmtime accepted before (``wasm.features_verdict`` keys).

    Raises:
        RegistryConfigError: Every syntax, schema and consistency finding.
    """
    rel = str(path)
    try:
        src = parse_toml(path, raw)
    except TomlSyntaxError as err:
        raise RegistryConfigError(f"{CONFIG_FILE} is not valid TOML", [err.finding(rel)]) from None
    findings = schema_findings(src, CONFIG_SCHEMA, rel)
    if findings:
        raise RegistryConfigError(f"{CONFIG_FILE} does not match its schema", findings)
    config, problems = _build(src, rel, proven)
    if problems:
        raise RegistryConfigError(f"{CONFIG_FILE} is inconsistent", problems)
    return config


def _build(src: TomlSource, rel: str, proven: Container[str]) -> tuple[RegistryConfig, list[Finding]]:
    d = src.data
    problems: list[Finding] = []

    def bad(rule: str, field_: str, message: str, fix: str) -> None:
        problems.append(Finding(rule, message, file=rel, line=src.line_of(field_), field=field_, fix=fix))

    host_versions = d["host"]["versions"]
    try:
        check_range(host_versions)
    except RangeError as err:
        bad("host-range", "host.versions", str(err), "use a range such as '>=0.2.0, <1.0.0' or '^0.2'")

    limits: dict[str, Limits] = {}
    max_table = dict(d.get("limits", {}).get("max", {}))
    budget_tests = int(max_table.pop("tests_per_release", DEFAULT_TESTS_PER_RELEASE))
    budget_time = DEFAULT_SMOKE_WALL_TIME
    try:
        budget_time = parse_duration(max_table.pop("smoke_wall_time", DEFAULT_SMOKE_WALL_TIME))
    except UnitError as err:
        bad("limits", "limits.max.smoke_wall_time", str(err), "use a duration such as '120s'")
    for level in ("default", "max"):
        try:
            table = max_table if level == "max" else d.get("limits", {}).get(level, {})
            limits[level] = Limits.from_toml(table)
        except (UnitError, KeyError, ValueError) as err:
            bad("limits", f"limits.{level}", str(err), "use sizes like '16MiB' and durations like '2s'")
            limits[level] = Limits()
    for level, set_ in limits.items():
        for name, value in vars(set_).items():
            if value is not None and value > MAX_SAFE_INTEGER:  # a manifest's are checked against these
                bad(
                    "limits",
                    f"limits.{level}.{name}",
                    f"{name} {_num(value)} is above 2**53, the largest number the registry's documents hold",
                    f"lower limits.{level}.{name}",
                )
    for name, value, cap in limits["default"].exceeding(limits["max"]):
        bad(
            "limit-exceeded",
            f"limits.default.{name}",
            f"default {name} {_num(value)} is above the maximum {_num(cap)}",
            "lower the default or raise the maximum",
        )

    validity = 7 * 86400.0
    try:
        validity = parse_duration(d.get("index", {}).get("validity", "7d"))
    except UnitError as err:
        bad("schema", "index.validity", str(err), "use a duration such as '7d'")
    if validity < 1:  # registry.json's times are whole seconds: it would expire when it is made
        bad(
            "schema",
            "index.validity",
            f"validity {_num(validity)} s is under one second",
            "use a duration such as '7d'",
        )
    permissions = {
        name: Permission(
            name=name,
            description=table.get("description", ""),
            imports=tuple(ImportPattern(i["module"], i.get("name", "*")) for i in table.get("imports", [])),
        )
        for name, table in d.get("permissions", {}).items()
    }
    # Shown by clients, the catalog and the permission prompt, as a plugin's description is.
    texts = [("registry.description", d["registry"].get("description", ""))]
    texts += [(f"permissions.{name}.description", p.description) for name, p in permissions.items()]
    for field_, text in texts:
        if hidden := hidden_characters(text, "\n\t"):
            bad(
                "text-field",
                field_,
                f"{field_} holds control or bidi override characters ({', '.join(hidden)})",
                "remove them: clients, the catalog and the permission prompt would show them as escapes",
            )
    features = dict(d.get("features", {}))
    config = RegistryConfig(
        path=src.path,
        raw=src.raw,
        name=d["registry"]["name"],
        description=d["registry"].get("description", ""),
        base_url=d["registry"]["base_url"],
        host_name=d["host"]["name"],
        host_versions=host_versions,
        allowed_abis=tuple(d["abis"]["allowed"]),
        permissions=MappingProxyType(permissions),
        default_limits=limits["default"],
        max_limits=limits["max"],
        features=MappingProxyType(features),
        index_validity=validity,
        allow_backports=bool(d.get("index", {}).get("allow_backports", False)),
        regression_threshold=float(d.get("ci", {}).get("regression_threshold", 0.25)),
        source=src,
        max_tests_per_release=budget_tests,
        max_smoke_wall_time=budget_time,
        max_new_releases=int(d.get("ci", {}).get("max_new_releases", 100)),
    )
    if problems:
        return config, problems
    # Feature combinations wasmtime rejects (e.g. gc without reference_types) are config errors.
    from registry_tool.manifest.wasm import WasmConfigError, check_features

    try:
        check_features(config.features, proven)
    except WasmConfigError as err:
        bad("features", "features", str(err), "enable the features this one depends on")
    return config, problems


def _num(value: float) -> str:
    return f"{int(value):_}" if float(value).is_integer() else f"{value:g}"
