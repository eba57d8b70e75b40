"""The registry.json document: model, canonical serialisation and strict parsing.

The build writes it and the client reads it, so both sides share this module.  The
serialisation is canonical (sorted keys, two-space indent, UTF-8, trailing newline) so
that two builds of the same index at the same clock are byte-identical.  Parsing is
strict and pure: bytes in, a ``RegistryDocument`` out, or a named error.  A document
that passes ``parse_registry`` has safe relative paths only, entries whose keys agree
with their contents, and timestamps in the one format the project uses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from registry_tool._json import StrictJSONError, loads_strict
from registry_tool.errors import CheckFailed, Location

FORMAT_VERSION = 1
REGISTRY_JSON = "registry.json"
# A registry.json beyond this size is refused before parsing (clients use the same cap).
MAX_REGISTRY_BYTES = 64 * 1024 * 1024

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{1,63}$")
# Strict semver 2.0 (semver.org's recommended expression).
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_FILE_RE = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class RegistryDocumentError(CheckFailed):
    """registry.json is malformed, inconsistent or unsafe."""

    code = "registry-document"


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC, second precision, ``Z`` suffix (the project's one time format)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware UTC datetime")
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


_TIME_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")


def parse_time(text: str, *, where: Location | None = None) -> datetime:
    try:
        # The regex pins the one accepted spelling; fromisoformat (C) is 20x faster than strptime.
        if not _TIME_RE.fullmatch(text):
            raise ValueError(text)
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:
        raise RegistryDocumentError(
            f"timestamp {text!r} is not RFC 3339 UTC with second precision",
            where=where,
            fix="write timestamps like 2026-11-21T12:00:00Z",
        ) from None


def is_safe_name(name: str) -> bool:
    return bool(NAME_RE.fullmatch(name))  # fullmatch: `$` alone admits a trailing newline


def is_safe_version(version: str) -> bool:
    # Build metadata ('+') is excluded from paths: it is ignored by semver precedence,
    # so two 'different' versions could collide, and '+' needs escaping in URLs.
    return bool(SEMVER_RE.fullmatch(version)) and "+" not in version


def release_path(name: str, version: str, filename: str) -> str:
    """The site-relative path of a release file: ``plugins/<name>/<version>/<file>``."""
    return f"plugins/{name}/{version}/{filename}"


@dataclass(frozen=True)
class FileRef:
    """A file of the site with its digest: clients cap the download at ``size``."""

    path: str
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


@dataclass(frozen=True)
class SmokeFigure:
    """What the harness measured for one [[tests]] entry."""

    name: str
    fuel: int | None
    peak_memory: int | None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "fuel": self.fuel, "peak_memory": self.peak_memory}


@dataclass(frozen=True)
class Limits:
    fuel: int
    memory: int  # bytes
    wall_time_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"fuel": self.fuel, "memory": self.memory, "wall_time_ms": self.wall_time_ms}


@dataclass(frozen=True)
class Release:
    """One plugin version as the registry publishes it."""

    name: str
    version: str
    description: str
    license: str
    abi: str
    host: str | None
    exports: tuple[str, ...]
    permissions: tuple[str, ...]
    limits: Limits
    manifest: FileRef
    wasm: FileRef
    signers: tuple[str, ...]
    published_at: str
    yanked: str | None = None  # the reason, or None when not yanked
    smoke: tuple[SmokeFigure, ...] | None = None
    authors: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    homepage: str | None = None
    repository: str | None = None

    @property
    def is_yanked(self) -> bool:
        return self.yanked is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "license": self.license,
            "abi": self.abi,
            "host": self.host,
            "exports": list(self.exports),
            "permissions": sorted(self.permissions),
            "limits": self.limits.to_json(),
            "manifest": self.manifest.to_json(),
            "wasm": self.wasm.to_json(),
            "signers": sorted(self.signers),
            "published_at": self.published_at,
            "yanked": None if self.yanked is None else {"reason": self.yanked},
            "smoke": None if self.smoke is None else [s.to_json() for s in self.smoke],
            "authors": list(self.authors),
            "keywords": list(self.keywords),
            "homepage": self.homepage,
            "repository": self.repository,
        }


@dataclass(frozen=True)
class RegistryInfo:
    name: str
    description: str
    base_url: str
    host_name: str
    host_versions: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "base_url": self.base_url,
            "host": {"name": self.host_name, "versions": self.host_versions},
        }


@dataclass(frozen=True)
class RegistryDocument:
    version: int
    generated_at: str
    expires_at: str
    root_version: int
    registry: RegistryInfo
    # name -> version -> release; iteration order is irrelevant, serialisation sorts.
    plugins: dict[str, dict[str, Release]] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def releases(self) -> list[Release]:
        """Every release, sorted by name then version string (stable, not semver order)."""
        return [self.plugins[n][v] for n in sorted(self.plugins) for v in sorted(self.plugins[n])]

    def get(self, name: str, version: str) -> Release | None:
        return self.plugins.get(name, {}).get(version)

    def expires(self) -> datetime:
        return parse_time(self.expires_at)

    def generated(self) -> datetime:
        return parse_time(self.generated_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "version": self.version,
            "generated_at": self.generated_at,
            "expires_at": self.expires_at,
            "root_version": self.root_version,
            "registry": self.registry.to_json(),
            "plugins": {
                name: {"versions": {v: rel.to_json() for v, rel in versions.items()}}
                for name, versions in self.plugins.items()
            },
        }

    def to_bytes(self) -> bytes:
        """Canonical bytes: what is signed and served.

        Compact separators keep Python's C encoder in use (``indent`` falls back to the pure
        Python one, ~10x slower on a 10,000-release registry); ``jq .`` pretty-prints it.
        """
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return (text + "\n").encode("utf-8")


# --------------------------------------------------------------------------- parsing


def schema_path() -> Path:
    """schemas/registry.schema.json, from the wheel (force-included) or the source tree."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "schemas", here.parent / "schemas"):
        path = candidate / "registry.schema.json"
        if path.is_file():
            return path
    raise FileNotFoundError("registry.schema.json not found next to the package")


@cache
def _validator() -> Any:
    # fastjsonschema compiles the schema to Python: ~50x faster than jsonschema, which matters for
    # a 10,000-release registry.json that every client parses.  The schema uses no keyword beyond
    # draft 7, so both libraries read it the same way (the tests validate with jsonschema too).
    import fastjsonschema

    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    return fastjsonschema.compile(schema)


def _load_json(data: bytes) -> Any:
    try:
        return loads_strict(data, max_bytes=MAX_REGISTRY_BYTES)
    except StrictJSONError as err:
        raise RegistryDocumentError(
            f"registry.json is not valid JSON: {err.reason}",
            where=Location(file=REGISTRY_JSON, line=err.line, column=err.column),
            fix="rebuild the registry with registry-tool build",
        ) from None


def _schema_check(raw: Any) -> None:
    import fastjsonschema

    try:
        _validator()(raw)
    except fastjsonschema.JsonSchemaException as err:
        name = str(getattr(err, "name", "data"))
        dotted = name.removeprefix("data").removeprefix(".") or "(top level)"
        message = str(getattr(err, "message", err)).removeprefix(name).strip()
        raise RegistryDocumentError(
            f"registry.json does not match schemas/registry.schema.json: {dotted} {message}",
            where=Location(file=REGISTRY_JSON, field=dotted),
            fix="rebuild the registry with a registry-tool of the same format version",
        ) from None


def _file_ref(raw: dict[str, Any], name: str, version: str, field_name: str) -> FileRef:
    path = raw["path"]
    prefix = release_path(name, version, "")
    filename = path[len(prefix) :] if path.startswith(prefix) else ""
    if not _FILE_RE.fullmatch(filename) or filename in {".", ".."}:
        raise RegistryDocumentError(
            f"{field_name} path {path!r} is not a plain file inside {prefix}",
            where=Location(file=REGISTRY_JSON, field=f"plugins.{name}.versions.{version}.{field_name}.path"),
            fix="paths must be plugins/<name>/<version>/<file> with no '..' or sub-folders",
        )
    return FileRef(path=path, sha256=raw["sha256"], size=raw["size"])


def _release(name: str, version: str, raw: dict[str, Any]) -> Release:
    where = Location(file=REGISTRY_JSON, field=f"plugins.{name}.versions.{version}")
    if not is_safe_version(version):
        raise RegistryDocumentError(f"version {version!r} of {name!r} is not a strict semver", where=where)
    parse_time(raw["published_at"], where=where)
    yanked = raw["yanked"]
    smoke = raw["smoke"]
    return Release(
        name=name,
        version=version,
        description=raw["description"],
        license=raw["license"],
        abi=raw["abi"],
        host=raw["host"],
        exports=tuple(raw["exports"]),
        permissions=tuple(raw["permissions"]),
        limits=Limits(**raw["limits"]),
        manifest=_file_ref(raw["manifest"], name, version, "manifest"),
        wasm=_file_ref(raw["wasm"], name, version, "wasm"),
        signers=tuple(raw["signers"]),
        published_at=raw["published_at"],
        yanked=None if yanked is None else yanked["reason"],
        smoke=None if smoke is None else tuple(SmokeFigure(**s) for s in smoke),
        authors=tuple(raw["authors"]),
        keywords=tuple(raw["keywords"]),
        homepage=raw["homepage"],
        repository=raw["repository"],
    )


def document_from_json(raw: Any) -> RegistryDocument:
    """Build the model from decoded JSON, validating schema and cross-field rules."""
    _schema_check(raw)
    if raw["format_version"] != FORMAT_VERSION:
        raise RegistryDocumentError(
            f"registry.json format_version {raw['format_version']} is not supported"
            f" (expected {FORMAT_VERSION})",
            where=Location(file=REGISTRY_JSON, field="format_version"),
            fix="upgrade registry-tool",
        )
    generated = parse_time(raw["generated_at"], where=Location(REGISTRY_JSON, field="generated_at"))
    expires = parse_time(raw["expires_at"], where=Location(REGISTRY_JSON, field="expires_at"))
    if expires <= generated:
        raise RegistryDocumentError(
            "expires_at is not after generated_at",
            where=Location(file=REGISTRY_JSON, field="expires_at"),
        )
    plugins: dict[str, dict[str, Release]] = {}
    for name, entry in raw["plugins"].items():
        if not is_safe_name(name):
            raise RegistryDocumentError(
                f"plugin name {name!r} is not allowed",
                where=Location(file=REGISTRY_JSON, field="plugins"),
                fix="names match ^[a-z][a-z0-9_-]{1,63}$",
            )
        plugins[name] = {v: _release(name, v, rel) for v, rel in entry["versions"].items()}
    reg = raw["registry"]
    return RegistryDocument(
        format_version=raw["format_version"],
        version=raw["version"],
        generated_at=raw["generated_at"],
        expires_at=raw["expires_at"],
        root_version=raw["root_version"],
        registry=RegistryInfo(
            name=reg["name"],
            description=reg["description"],
            base_url=reg["base_url"],
            host_name=reg["host"]["name"],
            host_versions=reg["host"]["versions"],
        ),
        plugins=plugins,
    )


def parse_registry(data: bytes) -> RegistryDocument:
    """Parse and strictly validate registry.json bytes (pure; verify the signature first)."""
    return document_from_json(_load_json(data))
