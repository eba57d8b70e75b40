"""Plugin manifests (plugin.toml), the registry configuration (registry.toml) and ``validate``.

This is the cross-part API other packages import; see docs/architecture.md and docs/manifest.md.

Names are imported on first use: the smoke worker and the validate fast path import this package
for a few names and need neither wasmtime nor jsonschema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry_tool._lazy import lazy_exports

if TYPE_CHECKING:
    from registry_tool.manifest.abi import ABIS
    from registry_tool.manifest.binary import is_component
    from registry_tool.manifest.config import (
        CONFIG_FILE,
        ImportPattern,
        Limits,
        Permission,
        RegistryConfig,
        find_registry_config,
        load_registry_config,
    )
    from registry_tool.manifest.errors import (
        ManifestError,
        RegistryConfigError,
        RegistryConfigNotFoundError,
        WasmInspectionError,
    )
    from registry_tool.manifest.model import MANIFEST_FILE, Artifact, Manifest, TestSpec, load_manifest
    from registry_tool.manifest.units import UnitError, format_size, parse_duration, parse_size
    from registry_tool.manifest.validate import find_releases, validate_paths, validate_release
    from registry_tool.manifest.versions import (
        is_newer,
        is_version,
        parse_range,
        parse_version,
        ranges_overlap,
        sort_versions,
    )
    from registry_tool.manifest.wasm import (
        ExportInfo,
        ImportInfo,
        ModuleInfo,
        engine_config,
        inspect_wasm,
        make_engine,
    )

_WHERE = {
    "ABIS": "abi",
    "CONFIG_FILE": "config",
    "ImportPattern": "config",
    "Limits": "config",
    "Permission": "config",
    "RegistryConfig": "config",
    "find_registry_config": "config",
    "load_registry_config": "config",
    "ManifestError": "errors",
    "RegistryConfigError": "errors",
    "RegistryConfigNotFoundError": "errors",
    "WasmInspectionError": "errors",
    "MANIFEST_FILE": "model",
    "Artifact": "model",
    "Manifest": "model",
    "TestSpec": "model",
    "load_manifest": "model",
    "UnitError": "units",
    "format_size": "units",
    "parse_duration": "units",
    "parse_size": "units",
    "find_releases": "validate",
    "validate_paths": "validate",
    "validate_release": "validate",
    "is_newer": "versions",
    "is_version": "versions",
    "parse_range": "versions",
    "parse_version": "versions",
    "ranges_overlap": "versions",
    "sort_versions": "versions",
    "ExportInfo": "wasm",
    "ImportInfo": "wasm",
    "ModuleInfo": "wasm",
    "engine_config": "wasm",
    "inspect_wasm": "wasm",
    "is_component": "binary",
    "make_engine": "wasm",
}

__all__ = [
    "ABIS",
    "CONFIG_FILE",
    "MANIFEST_FILE",
    "Artifact",
    "ExportInfo",
    "ImportInfo",
    "ImportPattern",
    "Limits",
    "Manifest",
    "ManifestError",
    "ModuleInfo",
    "Permission",
    "RegistryConfig",
    "RegistryConfigError",
    "RegistryConfigNotFoundError",
    "TestSpec",
    "UnitError",
    "WasmInspectionError",
    "engine_config",
    "find_registry_config",
    "find_releases",
    "format_size",
    "inspect_wasm",
    "is_component",
    "is_newer",
    "is_version",
    "load_manifest",
    "load_registry_config",
    "make_engine",
    "parse_duration",
    "parse_range",
    "parse_size",
    "parse_version",
    "ranges_overlap",
    "sort_versions",
    "validate_paths",
    "validate_release",
]

__getattr__ = lazy_exports(__name__, _WHERE)
