"""plugin.toml: parsing into a typed ``Manifest`` that remembers the line of every key."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from registry_tool._files import UnreadableFileError, UnsafePathError, read_bounded
from registry_tool.format.rules import MAX_MANIFEST_BYTES as MAX_MANIFEST_BYTES
from registry_tool.format.rules import MAX_TEST_FILE_BYTES
from registry_tool.manifest.abi import ABI_SPECS
from registry_tool.manifest.config import Limits
from registry_tool.manifest.errors import ManifestError
from registry_tool.manifest.source import (
    TomlSource,
    TomlSyntaxError,
    parse_toml,
    schema_findings,
)
from registry_tool.manifest.units import UnitError
from registry_tool.report import Finding

if TYPE_CHECKING:
    from registry_tool.manifest.config import RegistryConfig

MANIFEST_FILE = "plugin.toml"
PLUGIN_SCHEMA = "plugin.schema.json"
INPUT_KEYS = ("input", "input_base64", "input_file")
#: The Proxy-Wasm request/response description and expectations of a test.
HTTP_TEST_KEYS = tuple(sorted(ABI_SPECS["proxy-wasm"].test_keys))
EXPECT_KEYS = ("expect", "expect_base64", "expect_regex", "expect_file", "expect_trap")


@dataclass(frozen=True)
class Artifact:
    """``[artifact]``: the module's file name in the release and its pinned digest and size."""

    file: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class TestSpec:
    """One ``[[tests]]`` entry, every field as written (resolution helpers below)."""

    __test__ = False  # not a pytest class

    index: int
    name: str
    call: str | None
    release_dir: Path
    input: str | None = None
    input_base64: str | None = None
    input_file: str | None = None
    args: tuple[int | float, ...] | None = None
    argv: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    exit_code: int | None = None
    config: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    expect: str | tuple[int | float, ...] | None = None
    expect_base64: str | None = None
    expect_regex: str | None = None
    expect_file: str | None = None
    expect_trap: str | None = None
    keys: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    expect_keys: Mapping[str, str | bool] = field(default_factory=lambda: MappingProxyType({}))
    steps: tuple[Mapping[str, Any], ...] = ()
    http: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # proxy-wasm keys
    source: TomlSource | None = field(default=None, repr=False, compare=False)

    @property
    def field_prefix(self) -> str:
        """The test's dotted field in messages: ``tests[INDEX]``."""
        return f"tests[{self.index}]"

    @property
    def line(self) -> int | None:
        """1-based line of this ``[[tests]]`` entry (looked up when asked: only failures need it)."""
        return self.source.line_of(self.field_prefix) if self.source else None

    def input_bytes(self) -> bytes | None:
        """The input as bytes (``input`` UTF-8, ``input_base64`` decoded, ``input_file`` read)."""
        if self.input is not None:
            return self.input.encode("utf-8")
        if self.input_base64 is not None:
            return base64.b64decode(self.input_base64, validate=True)
        if self.input_file is not None:
            return read_test_file(self.release_dir, "input_file", self.input_file)
        return None

    def expected_bytes(self) -> bytes | None:
        """Expected output bytes for ``expect`` (string form), ``expect_base64`` or ``expect_file``."""
        if isinstance(self.expect, str):
            return self.expect.encode("utf-8")
        if self.expect_base64 is not None:
            return base64.b64decode(self.expect_base64, validate=True)
        if self.expect_file is not None:
            return read_test_file(self.release_dir, "expect_file", self.expect_file)
        return None


def read_test_file(release_dir: Path, field_: str, name: str) -> bytes:
    """A test's ``input_file``/``expect_file``, read bounded (``MAX_TEST_FILE_BYTES``).

    Inside the release folder, a regular file reached through no link at its end.  ``smoke``
    reads these for a release that validate may never have seen: ``/etc/passwd`` or
    ``../../secret`` was piped to the plugin and shown in the report, a FIFO hung the run and a
    link to ``/dev/zero`` read until memory ran out.

    Raises:
        UnsafePathError: the name leaves the release folder.
        UnreadableFileError: missing, not a regular file, a link, or larger than the cap.
    """
    base = release_dir.resolve()
    target = base / name
    try:
        inside = not PurePosixPath(name).is_absolute() and target.resolve().is_relative_to(base)
    except (OSError, RuntimeError):  # a link loop, a name too long
        inside = False
    if not inside:
        raise UnsafePathError(
            f"{field_} {name!r} leaves the release directory {release_dir}",
            where=str(release_dir / "plugin.toml"),
            fix="keep test data in files inside the release folder, named relative to it",
        )
    try:
        return read_bounded(target, MAX_TEST_FILE_BYTES, f"test {field_}", follow_symlinks=False)
    except UnreadableFileError as err:
        if not os.path.lexists(target):
            # The index holds it; a built site and an installed release hold only plugin.toml, its
            # signatures and the module (a host running an installed plugin's tests hits this).
            raise UnreadableFileError(
                f"test {field_} {target} does not exist",
                where=str(release_dir / "plugin.toml"),
                fix=f"add {name} to the release folder; a release installed by the client or served by a "
                "site holds no test files: smoke-run the release in the index",
            ) from None
        raise err from None


@dataclass(frozen=True)
class DependencySpec:
    """One ``[dependencies]`` entry: another plugin this release needs, within ``range``.

    ``optional`` dependencies are installed only when asked for (or already installed);
    ``permissions`` names what the dependency will ask for, so reviewers see it on the dependent.
    """

    name: str
    range: str
    optional: bool = False
    permissions: tuple[str, ...] = ()

    @classmethod
    def from_toml(cls, name: str, value: str | Mapping[str, Any]) -> DependencySpec:
        """From ``name = "RANGE"`` or an inline table with the range, optional and permissions."""
        if isinstance(value, str):
            return cls(name, value)
        return cls(
            name,
            str(value["version"]),
            optional=bool(value.get("optional", False)),
            permissions=tuple(value.get("permissions", ())),
        )


@dataclass(frozen=True)
class Manifest:
    """plugin.toml, schema-checked and typed, remembering the line of every key."""

    path: Path
    raw: bytes
    name: str
    version: str
    description: str
    authors: tuple[str, ...]
    license: str
    abi: str
    host_range: str | None  # [compatibility].host, or ">=min_host_version"; None when absent
    artifact: Artifact
    exports: tuple[str, ...]
    permissions: frozenset[str]  # granted (true) permission names
    declared_permissions: Mapping[str, bool]  # as written, including false ones
    declared_limits: Limits
    limits: Limits  # effective: declared over the registry defaults (over maxima) when a config is given
    tests: tuple[TestSpec, ...]
    homepage: str | None = None
    repository: str | None = None
    keywords: tuple[str, ...] = ()
    dependencies: tuple[DependencySpec, ...] = ()
    source: TomlSource | None = field(default=None, repr=False, compare=False)

    @property
    def release_dir(self) -> Path:
        """The release folder (where plugin.toml is)."""
        return self.path.parent

    @property
    def wasm_path(self) -> Path:
        """Where ``artifact.file`` is, as written (not yet checked to stay in the folder)."""
        return self.release_dir / self.artifact.file

    def line_of(self, dotted_field: str) -> int | None:
        """1-based line of a dotted field (``plugin.name``, ``tests[0].call``) or its parent."""
        return self.source.line_of(dotted_field) if self.source else None

    def effective_limits(self, config: RegistryConfig) -> Limits:
        """The declared limits over the registry's defaults over its maxima."""
        return _effective_limits(self.declared_limits, config.default_limits, config.max_limits)


@lru_cache(maxsize=64)
def _effective_limits(declared: Limits, default: Limits, maximum: Limits) -> Limits:
    """Declared over the defaults over the maxima: an index repeats a few declarations, so once each."""
    return declared.over(default).over(maximum)


def parse_manifest(path: Path, raw: bytes, relfile: str) -> tuple[Manifest | None, list[Finding]]:
    """Parse and schema-check plugin.toml bytes: a Manifest, or None plus every structural finding."""
    if len(raw) > MAX_MANIFEST_BYTES:
        return None, [
            Finding(
                "manifest-too-large",
                f"{MANIFEST_FILE} is {len(raw)} bytes, above the {MAX_MANIFEST_BYTES // 1024} KiB cap",
                file=relfile,
                fix="keep test data in input_file/expect_file files instead of inline strings",
            )
        ]
    try:
        src = parse_toml(path, raw)
    except TomlSyntaxError as err:
        return None, [err.finding(relfile, fix="correct the TOML syntax at that position (https://toml.io)")]
    findings = schema_findings(src, PLUGIN_SCHEMA, relfile)
    if findings:
        return None, findings
    d = src.data
    try:
        declared = Limits.from_toml(d.get("limits", {}))
    except (UnitError, KeyError, ValueError) as err:  # the schema patterns make this rare
        return None, [Finding("limits", str(err), file=relfile, line=src.line_of("limits"), field="limits")]
    plugin = d["plugin"]
    host = d.get("compatibility", {}).get("host")
    if host is None and "min_host_version" in plugin:
        host = f">={plugin['min_host_version']}"
    perms = dict(d.get("permissions", {}))
    manifest = Manifest(
        path=path,
        raw=raw,
        name=plugin["name"],
        version=plugin["version"],
        description=plugin["description"],
        authors=tuple(plugin["authors"]),
        license=plugin["license"],
        abi=plugin["abi"],
        host_range=host,
        artifact=Artifact(**d["artifact"]),
        exports=tuple(d["exports"]["functions"]),
        permissions=frozenset(k for k, v in perms.items() if v),
        declared_permissions=MappingProxyType(perms),
        declared_limits=declared,
        limits=declared,
        tests=tuple(_test_spec(i, t, path.parent, src) for i, t in enumerate(d.get("tests", []))),
        homepage=plugin.get("homepage"),
        repository=plugin.get("repository"),
        keywords=tuple(plugin.get("keywords", ())),
        dependencies=tuple(
            DependencySpec.from_toml(name, value) for name, value in sorted(d.get("dependencies", {}).items())
        ),
        source=src,
    )
    return manifest, []


#: An absent table of a test (most tests set none of env, config, keys, expect_keys, the HTTP
#: keys): one shared read-only empty mapping instead of a new dict and proxy each.
_NONE: Mapping[str, Any] = MappingProxyType({})


def _table(t: dict[str, Any], key: str) -> Mapping[str, Any]:
    return MappingProxyType(dict(t[key])) if key in t else _NONE


def _test_spec(index: int, t: dict[str, Any], release_dir: Path, src: TomlSource) -> TestSpec:
    expect = t.get("expect")
    http = {k: t[k] for k in HTTP_TEST_KEYS if k in t}
    return TestSpec(
        index=index,
        # Unnamed: after its call, or its place (an ABI with no call of its own, Proxy-Wasm, calls none).
        name=t.get("name") or (f"{t['call']}#{index}" if t.get("call") else f"tests[{index}]"),
        call=t.get("call"),
        release_dir=release_dir,
        input=t.get("input"),
        input_base64=t.get("input_base64"),
        input_file=t.get("input_file"),
        args=tuple(t["args"]) if "args" in t else None,
        argv=tuple(t["argv"]) if "argv" in t else None,
        env=_table(t, "env"),
        exit_code=t.get("exit_code"),
        config=_table(t, "config"),
        expect=tuple(expect) if isinstance(expect, list) else expect,
        expect_base64=t.get("expect_base64"),
        expect_regex=t.get("expect_regex"),
        expect_file=t.get("expect_file"),
        expect_trap=t.get("expect_trap"),
        keys=_table(t, "keys"),
        expect_keys=_table(t, "expect_keys"),
        steps=tuple(MappingProxyType(dict(step)) for step in t.get("steps", ())),
        http=MappingProxyType(http) if http else _NONE,
        source=src,
    )


def read_manifest_bytes(path: Path) -> bytes:
    """plugin.toml's bytes, from a regular file of at most 64 times the manifest cap.

    Opened non-blocking and checked before reading: a FIFO in its place blocked validate and smoke
    forever, and a link to /dev/zero made smoke read until memory ran out.  A file between the cap
    and the read bound is read, so that the manifest-too-large rule can name its size.

    Raises:
        UnreadableFileError: missing, unreadable, not a regular file, or far too large.
    """
    from registry_tool._files import read_bounded

    return read_bounded(path, 64 * MAX_MANIFEST_BYTES, MANIFEST_FILE)


def manifest_read_finding(err: UnreadableFileError, path: Path) -> Finding:
    """The finding for a plugin.toml ``read_manifest_bytes`` refused."""
    from registry_tool._files import FileTooLargeError, NotRegularFileError

    if isinstance(err, FileTooLargeError):
        return Finding("manifest-too-large", err.what, file=str(path), fix=err.fix)
    fix = (
        f"replace it with the {MANIFEST_FILE} file itself"
        if isinstance(err, NotRegularFileError)
        else f"add a {MANIFEST_FILE} to the release directory"
    )
    return Finding("manifest-missing", err.what, file=str(path), fix=fix)


def load_manifest(plugin_toml: Path, config: RegistryConfig | None = None) -> Manifest:
    """Read plugin.toml (or the plugin.toml in a release directory).

    Raises ``ManifestError`` (exit 1) with every syntax/schema finding and its TOML line.
    With ``config``, ``Manifest.limits`` holds the effective limits.
    """
    path = plugin_toml / MANIFEST_FILE if plugin_toml.is_dir() else plugin_toml
    try:
        raw = read_manifest_bytes(path)
    except UnreadableFileError as err:
        raise ManifestError(err.what, [manifest_read_finding(err, path)]) from None
    manifest, findings = parse_manifest(path, raw, str(path))
    if manifest is None:
        raise ManifestError(f"{path} is not a valid plugin manifest", findings)
    if config is not None:
        from dataclasses import replace

        manifest = replace(manifest, limits=manifest.effective_limits(config))
    return manifest
