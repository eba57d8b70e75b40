"""What a release may do comes from its maintainer-signed manifest and its module, not the index.

The plugin document is signed (through the top document) by the index key; the manifest by the
plugin's maintainer.  Whoever holds the index key alone must not be able to change what a plugin
is allowed to do.  ``trust_state.verify_manifest`` compares the entry's abi, host, exports,
permissions and dependencies with the signed manifest; this module adds what needs the full
manifest or the module: the declared limits, the module kind (core module or component) against
the signed ABI, and the module's imports against the permissions the manifest declares (and the
user granted), with the predicate ``validate`` and the sandbox use
(``registry_tool.manifest.config.import_allowed``).

Pure: bytes in, facts or a named error out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from registry_tool.client.errors import MalformedRegistryError, MixAndMatchError, UngrantedImportError
from registry_tool.client.trust_state import required_dependencies
from registry_tool.errors import UsageError
from registry_tool.format import Release
from registry_tool.manifest.binary import is_component
from registry_tool.manifest.binary import module_imports as binary_imports
from registry_tool.manifest.config import FEATURES, Limits, Permission, import_allowed
from registry_tool.manifest.errors import WasmInspectionError
from registry_tool.manifest.model import Manifest, parse_manifest
from registry_tool.manifest.units import milliseconds
from registry_tool.manifest.wasm import inspect_wasm

_FIX = "do not install from this registry until its owners rebuild it; report it to them"


@dataclass(frozen=True)
class ReleaseFacts:
    """The facts the client records, as the signed manifest and the module state them."""

    abi: str
    host: str | None
    exports: tuple[str, ...]
    permissions: tuple[str, ...]
    dependencies: dict[str, str]
    imports: tuple[tuple[str, str], ...]  # (module, name)


def signed_manifest(release: Release, data: bytes) -> Manifest:
    """The release's signed plugin.toml parsed (after its digest and signatures were checked)."""
    where = release.manifest.path
    manifest, findings = parse_manifest(Path(where), data, where)
    if manifest is None:
        detail = "; ".join(f.message for f in findings[:3])
        raise MalformedRegistryError(
            f"the signed manifest of {release.name} {release.version} cannot be read: {detail}"[:600],
            where=where,
            fix="the maintainer must re-sign a valid plugin.toml",
        )
    return manifest


def _dependencies(manifest: Manifest) -> dict[str, str]:
    raw: Any = manifest.source.data.get("dependencies", {}) if manifest.source is not None else {}
    try:
        return required_dependencies(raw)
    except (TypeError, KeyError):
        return {}  # verify_manifest already compared the signed manifest with the index entry


def _limit_mismatches(release: Release, declared: Limits, defaults: Limits | None) -> list[str]:
    limits = declared.over(defaults) if defaults is not None else declared
    out: list[str] = []
    if limits.fuel is not None and limits.fuel != release.limits.fuel:
        out.append(f"limits.fuel: index {release.limits.fuel}, manifest {limits.fuel}")
    if limits.memory is not None and limits.memory != release.limits.memory:
        out.append(f"limits.memory: index {release.limits.memory}, manifest {limits.memory}")
    if limits.wall_time is not None and milliseconds(limits.wall_time) != release.limits.wall_time_ms:
        declared_ms = milliseconds(limits.wall_time)
        out.append(f"limits.wall_time: index {release.limits.wall_time_ms} ms, manifest {declared_ms} ms")
    return out


def compare_index_entry(
    release: Release, manifest: Manifest, *, default_limits: Limits | None = None
) -> list[str]:
    """Fields where the index entry says something the signed manifest does not.

    Only those ``verify_manifest`` does not already compare.
    """
    return _limit_mismatches(release, manifest.declared_limits, default_limits)


def module_imports(release: Release, wasm: bytes) -> tuple[tuple[str, str], ...]:
    """(module, name) of every import of the module or component."""
    try:
        if is_component(wasm):
            return tuple((i.module, i.name) for i in _component_imports(release, wasm))
        return tuple((imp.module, imp.name) for imp in binary_imports(wasm))
    except (WasmInspectionError, ValueError, IndexError, UnicodeDecodeError) as err:
        raise MalformedRegistryError(
            f"the module of {release.name} {release.version} cannot be read ({err})"[:600],
            where=release.wasm.path,
            fix="the maintainer must publish a valid module",
        ) from None


_EVERY_FEATURE = {name: True for name in FEATURES if name != "component_model"}


def _component_imports(release: Release, wasm: bytes) -> Any:
    """A component's imports: read by wasmtime, which the base install leaves to ``[sandbox]``.

    Every proposal is on: the client wants the import list, not the registry's feature verdict
    (validate and the build gave that under registry.toml, which the client does not have).
    """
    try:
        return inspect_wasm(wasm, _EVERY_FEATURE, shared_memory=True).imports
    except ModuleNotFoundError as err:
        if err.name != "wasmtime":
            raise
        raise UsageError(
            f"{release.name} {release.version} is a WebAssembly component: reading its imports"
            " needs wasmtime",
            where=release.wasm.path,
            fix="pip install 'registry-tool[sandbox]'",
        ) from None


def check_entry(release: Release, manifest_bytes: bytes, *, default_limits: Limits | None = None) -> Manifest:
    """The signed manifest, once the index entry's own fields agree with it (decision 11, step 4).

    Called before any permission is asked for: a permission the index entry lists but the
    maintainer never declared is a mix-and-match, not a question to the user.

    Raises:
        MixAndMatchError: An index-only field differs from the signed manifest.
    """
    manifest = signed_manifest(release, manifest_bytes)
    diffs = compare_index_entry(release, manifest, default_limits=default_limits)
    if diffs:
        _mix_and_match(release, diffs)
    return manifest


def _mix_and_match(release: Release, diffs: list[str]) -> NoReturn:
    raise MixAndMatchError(
        f"mix-and-match: the index entry of {release.name} {release.version} disagrees with its "
        f"maintainer-signed manifest ({'; '.join(diffs)})"[:1200],
        where=release.manifest.path,
        fix=_FIX,
    )


def check_release(
    release: Release,
    manifest_bytes: bytes,
    wasm: bytes,
    *,
    granted: Iterable[str],
    vocabulary: Mapping[str, Permission] | None = None,
    default_limits: Limits | None = None,
) -> ReleaseFacts:
    """Refuse an entry disagreeing with the signed manifest, or a module importing beyond the grant.

    A module may not import what the granted permissions do not cover.  Call after the digests
    and signatures matched.

    ``vocabulary`` is the registry's permission vocabulary (registry.toml ``[permissions]``).
    Without it the import rule is the part that holds for every vocabulary: a module granted no
    permission may import only what its ABI allows on its own.
    """
    manifest = check_entry(release, manifest_bytes, default_limits=default_limits)
    return check_module(release, manifest, wasm, granted=granted, vocabulary=vocabulary)


def check_module(
    release: Release,
    manifest: Manifest,
    wasm: bytes,
    *,
    granted: Iterable[str],
    vocabulary: Mapping[str, Permission] | None = None,
) -> ReleaseFacts:
    """``check_release`` after ``check_entry``: the module against the signed ``manifest`` and the grant."""
    if is_component(wasm) != (manifest.abi == "component"):
        kind = "a component" if is_component(wasm) else "a core module"
        _mix_and_match(
            release, [f"module: the signed manifest says abi {manifest.abi!r}, the module is {kind}"]
        )
    grants = frozenset(granted)
    imports = module_imports(release, wasm)
    refused = [
        f"{module}.{name}"
        for module, name in imports
        if not (
            import_allowed(vocabulary, manifest.abi, grants, module, name)
            if vocabulary is not None
            else import_allowed({}, manifest.abi, frozenset(), module, name) or bool(grants)
        )
    ]
    if refused:
        listed = ", ".join(sorted(set(refused))[:8])
        raise UngrantedImportError(
            f"{release.name} {release.version} imports {listed}, which the permissions its signed manifest "
            f"declares ({', '.join(sorted(grants)) or 'none'}) do not allow",
            where=release.wasm.path,
            fix="do not install it: the module reaches for host functions nobody approved; report it to the "
            "registry's owners",
        )
    return ReleaseFacts(
        abi=manifest.abi,
        host=manifest.host_range,
        exports=tuple(manifest.exports),
        permissions=tuple(sorted(manifest.permissions)),
        dependencies=_dependencies(manifest),
        imports=imports,
    )
