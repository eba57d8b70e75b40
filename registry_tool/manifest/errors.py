"""Errors of the manifest part, named after the failure."""

from __future__ import annotations

from registry_tool.errors import CheckFailed, Location, UsageError
from registry_tool.report import Finding


class FindingsError(CheckFailed):
    """A checked file is bad; carries every Finding so reports can show them all at once."""

    def __init__(self, what: str, findings: list[Finding], *, where: Location | str | None = None) -> None:
        """``what`` went wrong, with every finding; one finding also gives the location and fix."""
        first = findings[0] if findings else None
        fix = first.fix if first else None
        if first and len(findings) == 1:
            what = f"{what}: {first.message}"
            where = Location(first.file, first.line, first.column, first.field)
        elif findings:
            what = f"{what}: " + "; ".join(
                f"{f.message} (line {f.line})" if f.line else f.message for f in findings
            )
        super().__init__(what, where=where, fix=fix)
        self.findings = findings
        if first:
            self.code = first.rule


class ManifestError(FindingsError):
    """plugin.toml cannot be parsed or breaks the schema."""

    code = "manifest"


class RegistryConfigError(FindingsError):
    """registry.toml cannot be parsed, breaks the schema or is inconsistent."""

    code = "registry-config"


class RegistryConfigNotFoundError(UsageError):
    """No registry.toml above the given path and no --config."""

    code = "config-not-found"


class ComponentProbeError(UsageError):
    """The process that compiles a component for its names could not run (no interpreter, limits).

    An environment problem (exit 2), never blamed on the component.
    """

    code = "component-probe"


class WasmInspectionError(CheckFailed):
    """The bytes are not a module/component wasmtime accepts with the registry's features."""

    code = "wasm-invalid"


class UnsafeIndexPathError(CheckFailed):
    """A name in the index cannot be published safely (symlink, special file, unsafe name)."""

    code = "unsafe-path"
