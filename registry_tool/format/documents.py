"""The format-2 documents: models, strict parsing, canonical bytes, the plugin tree.

Site layout (docs/registry-format.md): ``registry.json`` (the top document, signed by the index
keys) pins the root node of a hashed-prefix tree over plugin names and a catalog; leaves pin one
document per plugin, which pins the release files.  Every document below the top is stored at
``meta/<hh>/<sha256>.json`` and fetched by its pin (sha256 + size), so it is immutable and a client
never sees a mix of two publications.

Parsing is pure and strict (bytes in, a model out, or a ``DocumentError`` whose ``code`` is the
conformance error class).  Checks a document can make about itself live here; checks that need
the verifier's position (expected tree prefix, the name looked up) take it as an argument.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from registry_tool.errors import Location
from registry_tool.format.errors import (
    DocumentError,
    PathTraversalError,
    TreeMismatchError,
    UnsupportedFormatError,
    WrongDocumentError,
)
from registry_tool.format.rules import (
    FORMAT_VERSION,
    LEAF_MAX,
    MAX_META_BYTES,
    MAX_TOP_BYTES,
    MAX_TREE_DEPTH,
    REGISTRY_JSON,
    is_file_name,
    is_key_id,
    is_permission,
    is_plugin_name,
    is_sha256,
    is_version,
    meta_path,
    parse_time_strict,
    release_path,
)
from registry_tool.format.strictjson import MAX_SAFE_INTEGER, dump_canonical, load_strict

NODE_TYPE = "registry-node"
PLUGIN_TYPE = "registry-plugin"
CATALOG_TYPE = "registry-catalog"
_HEX = "0123456789abcdef"


def plugin_key(name: str) -> str:
    """Where a plugin lives in the tree: the lower-case hex SHA-256 of its UTF-8 name."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


# =========================================================================== strict field checks


class _Checker:
    """Type checks that raise ``DocumentError`` naming the document and the field."""

    def __init__(self, doc: str) -> None:
        self.doc = doc

    def fail(self, path: str, what: str, error: type[DocumentError] = DocumentError) -> DocumentError:
        return error(
            f"{self.doc}: {path or '(top level)'} {what}",
            where=Location(file=self.doc, field=path or None),
            fix="the document breaks the registry format (docs/registry-format.md): a client does not "
            "use this registry or mirror; its owners rebuild it with registry-tool",
        )

    def obj(
        self, raw: Any, path: str, required: Iterable[str], optional: Iterable[str] = ()
    ) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.fail(path, "must be an object")
        need, allowed = set(required), set(required) | set(optional)
        missing = sorted(need - raw.keys())
        if missing:
            raise self.fail(path, f"lacks member(s) {', '.join(missing)}")
        extra = sorted(raw.keys() - allowed)
        if extra:
            raise self.fail(path, f"has unknown member(s) {', '.join(repr(e) for e in extra[:5])}")
        return raw

    def str_(self, raw: Any, path: str, *, max_len: int = 65536) -> str:
        if not isinstance(raw, str) or len(raw) > max_len:
            raise self.fail(path, f"must be a string of at most {max_len} characters")
        return raw

    def opt_str(self, raw: Any, path: str) -> str | None:
        return None if raw is None else self.str_(raw, path)

    def int_(self, raw: Any, path: str, *, minimum: int = 0, maximum: int = MAX_SAFE_INTEGER) -> int:
        # bool is an int subclass in Python; JSON true is not a number.
        if isinstance(raw, bool) or not isinstance(raw, int) or not minimum <= raw <= maximum:
            raise self.fail(path, f"must be an integer in [{minimum}, {maximum}]")
        return raw

    def opt_int(self, raw: Any, path: str) -> int | None:
        return None if raw is None else self.int_(raw, path)

    def strs(self, raw: Any, path: str, check: Callable[[str], bool] | None = None) -> tuple[str, ...]:
        if not isinstance(raw, list):
            raise self.fail(path, "must be an array of strings")
        out = tuple(self.str_(item, f"{path}[{i}]") for i, item in enumerate(raw))
        if check is not None:
            bad = [s for s in out if not check(s)]
            if bad:
                raise self.fail(path, f"holds a value that is not allowed: {bad[0]!r}")
        return out

    def time(self, raw: Any, path: str) -> str:
        if parse_time_strict(raw) is None:
            raise self.fail(path, "must be a time written YYYY-MM-DDTHH:MM:SSZ")
        return str(raw)

    def const(self, raw: Any, path: str, value: str) -> None:
        if raw != value:
            raise self.fail(path, f"must be {value!r}")


def _load(data: bytes, where: str, cap: int) -> tuple[_Checker, dict[str, Any]]:
    """Strict JSON, an object, and format_version 2 (checked first: it decides how to read the rest)."""
    raw = load_strict(data, where=where, cap=cap)
    check = _Checker(where)
    if not isinstance(raw, dict):
        raise check.fail("", "must be a JSON object")
    if "format_version" in raw and type(raw["format_version"]) is not int:
        raise check.fail("format_version", "must be an integer (no fraction or exponent)")
    if "format_version" in raw and raw["format_version"] != FORMAT_VERSION:
        got = raw["format_version"]
        raise UnsupportedFormatError(
            f"{where} has format_version {got!r}; "
            f"this registry-tool reads format_version {FORMAT_VERSION} only",
            where=Location(file=where, field="format_version"),
            fix="use a registry-tool that supports this registry's format, or rebuild the registry"
            f" with format {FORMAT_VERSION}",
        )
    return check, raw


# =========================================================================== pins and file refs


@dataclass(frozen=True, order=True)
class Pin:
    """A document below the top, by content: download at most ``size`` bytes, then check ``sha256``."""

    sha256: str
    size: int

    @property
    def path(self) -> str:
        """The document's site path, ``meta/<hh>/<sha256>.json``."""
        return meta_path(self.sha256)

    def to_json(self) -> dict[str, Any]:
        """The pin as it appears in the document that holds it."""
        return {"sha256": self.sha256, "size": self.size}

    @classmethod
    def of(cls, data: bytes) -> Pin:
        """The pin of these exact bytes."""
        return cls(hashlib.sha256(data).hexdigest(), len(data))

    def matches(self, data: bytes) -> bool:
        """Whether ``data`` has exactly the pinned size and digest."""
        return len(data) == self.size and hashlib.sha256(data).hexdigest() == self.sha256

    @classmethod
    def parse(cls, check: _Checker, raw: Any, path: str, *, maximum: int = MAX_META_BYTES) -> Pin:
        """Read a pin at ``path`` strictly; sizes above ``maximum`` are refused."""
        check.obj(raw, path, ("sha256", "size"))
        sha = check.str_(raw["sha256"], f"{path}.sha256", max_len=64)
        if not is_sha256(sha):
            raise check.fail(f"{path}.sha256", "must be 64 lower-case hex digits")
        return cls(sha, check.int_(raw["size"], f"{path}.size", minimum=1, maximum=maximum))


@dataclass(frozen=True)
class FileRef:
    """A release file: its site path, digest and size (clients cap the download at ``size``)."""

    path: str
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        """The reference as it appears in a release entry."""
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


# =========================================================================== releases and plugin documents


@dataclass(frozen=True)
class SmokeFigure:
    """What the harness measured for one [[tests]] entry."""

    name: str
    fuel: int | None
    peak_memory: int | None

    def to_json(self) -> dict[str, Any]:
        """The figure as it appears in a release entry's ``smoke`` list."""
        return {"name": self.name, "fuel": self.fuel, "peak_memory": self.peak_memory}


@dataclass(frozen=True)
class Limits:
    """The resource limits the sandbox applies to a release (the manifest's, capped by the registry)."""

    fuel: int
    memory: int  # bytes
    wall_time_ms: int

    def to_json(self) -> dict[str, Any]:
        """The limits as they appear in a release entry."""
        return {"fuel": self.fuel, "memory": self.memory, "wall_time_ms": self.wall_time_ms}


@dataclass(frozen=True)
class Release:
    """One plugin version as the registry publishes it (an entry of a plugin document)."""

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
    dependencies: Mapping[str, str] = field(default_factory=dict)  # plugin name -> range

    @property
    def is_yanked(self) -> bool:
        """Whether a maintainer-signed yank withdrew this release."""
        return self.yanked is not None

    def published(self) -> datetime:
        """``published_at`` as a UTC datetime."""
        moment = parse_time_strict(self.published_at)
        assert moment is not None  # checked when parsed
        return moment

    def to_json(self) -> dict[str, Any]:
        """The release entry of its plugin document (name and version are the keys around it)."""
        return {
            "description": self.description,
            "license": self.license,
            "abi": self.abi,
            "host": self.host,
            "exports": list(self.exports),
            "permissions": sorted(self.permissions),
            "limits": self.limits.to_json(),
            "dependencies": dict(sorted(self.dependencies.items())),
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


_RELEASE_FIELDS = (
    "description", "license", "abi", "host", "exports", "permissions", "limits", "dependencies",
    "manifest", "wasm", "signers", "published_at", "yanked", "smoke", "authors", "keywords",
    "homepage", "repository",
)  # fmt: skip


def _file_ref(check: _Checker, raw: Any, path: str, name: str, version: str, manifest: bool) -> FileRef:
    check.obj(raw, path, ("path", "sha256", "size"))
    where = check.str_(raw["path"], f"{path}.path", max_len=512)
    prefix = release_path(name, version, "")
    file = where[len(prefix) :] if where.startswith(prefix) else ""
    if (manifest and file != "plugin.toml") or not is_file_name(file):
        raise check.fail(
            f"{path}.path",
            f"{where!r} is not {prefix}{'plugin.toml' if manifest else '<file name>'}",
            PathTraversalError,
        )
    sha = check.str_(raw["sha256"], f"{path}.sha256", max_len=64)
    if not is_sha256(sha):
        raise check.fail(f"{path}.sha256", "must be 64 lower-case hex digits")
    return FileRef(where, sha, check.int_(raw["size"], f"{path}.size", minimum=1))


_RELEASE_KEYS = frozenset(_RELEASE_FIELDS)
_LIMIT_KEYS = frozenset(("fuel", "memory", "wall_time_ms"))
_REF_KEYS = frozenset(("path", "sha256", "size"))
_SMOKE_KEYS = frozenset(("name", "fuel", "peak_memory"))
_YANK_KEYS = frozenset(("reason",))
_MAX_STR = 65536


def _is_int(raw: Any, minimum: int = 0) -> bool:
    # ``type(...) is int`` also refuses bool (JSON true), as ``_Checker.int_`` does.
    return type(raw) is int and minimum <= raw <= MAX_SAFE_INTEGER


def _is_str(raw: Any, max_len: int = _MAX_STR) -> bool:
    return type(raw) is str and len(raw) <= max_len


def _is_opt_str(raw: Any) -> bool:
    return raw is None or (type(raw) is str and len(raw) <= _MAX_STR)


def _strs_or_none(raw: Any, check: Callable[[str], bool] | None = None) -> tuple[str, ...] | None:
    if type(raw) is not list:
        return None
    if not raw:
        return ()
    for item in raw:
        if type(item) is not str or len(item) > _MAX_STR or (check is not None and not check(item)):
            return None
    return tuple(raw)


def _ref_or_none(raw: Any, prefix: str, manifest: bool) -> FileRef | None:
    if type(raw) is not dict or raw.keys() != _REF_KEYS:
        return None
    where, sha, size = raw["path"], raw["sha256"], raw["size"]
    if not _is_str(where, 512) or not where.startswith(prefix):
        return None
    file = where[len(prefix) :]
    if (manifest and file != "plugin.toml") or not is_file_name(file):
        return None
    if not _is_str(sha, 64) or not is_sha256(sha) or not _is_int(size, 1):
        return None
    return FileRef(where, sha, size)


def _release_fast(name: str, version: str, raw: Any) -> Release | None:
    """The release entry of a well-formed document, or None if any check might fail.

    Exactly the checks of ``_release``, written without building a field path per check (a
    site's documents hold thousands of entries).  It accepts nothing ``_release`` refuses:
    every doubt returns None, and ``_release`` then names what is wrong.
    """
    if type(raw) is not dict or raw.keys() != _RELEASE_KEYS:
        return None
    limits, deps, yanked, smoke_raw = raw["limits"], raw["dependencies"], raw["yanked"], raw["smoke"]
    if type(limits) is not dict or limits.keys() != _LIMIT_KEYS:
        return None
    fuel, memory, wall = limits["fuel"], limits["memory"], limits["wall_time_ms"]
    if not (_is_int(fuel) and _is_int(memory) and _is_int(wall)):
        return None
    if type(deps) is not dict:
        return None
    if deps:
        from registry_tool.format.ranges import RangeSyntaxError, parse_range
    for dep, spec in deps.items():
        if not is_plugin_name(dep) or not _is_str(spec, 256):
            return None
        try:
            parse_range(spec)
        except RangeSyntaxError:
            return None
    if yanked is not None:
        if type(yanked) is not dict or yanked.keys() != _YANK_KEYS or not _is_str(yanked["reason"]):
            return None
        yanked = yanked["reason"]
    smoke: tuple[SmokeFigure, ...] | None = None
    if smoke_raw is not None:
        if type(smoke_raw) is not list:
            return None
        figures = []
        for s in smoke_raw:
            if type(s) is not dict or s.keys() != _SMOKE_KEYS or not _is_str(s["name"]):
                return None
            f, m = s["fuel"], s["peak_memory"]
            if not ((f is None or _is_int(f)) and (m is None or _is_int(m))):
                return None
            figures.append(SmokeFigure(s["name"], f, m))
        smoke = tuple(figures)
    description, license_, abi, host = raw["description"], raw["license"], raw["abi"], raw["host"]
    homepage, repository, published_at = raw["homepage"], raw["repository"], raw["published_at"]
    if not (
        _is_str(description)
        and _is_str(license_, 256)
        and _is_str(abi, 64)
        and _is_opt_str(host)
        and _is_opt_str(homepage)
        and _is_opt_str(repository)
        and parse_time_strict(published_at) is not None
    ):
        return None
    exports = _strs_or_none(raw["exports"])
    permissions = _strs_or_none(raw["permissions"], is_permission)
    signers = _strs_or_none(raw["signers"], is_key_id)
    authors = _strs_or_none(raw["authors"])
    keywords = _strs_or_none(raw["keywords"])
    prefix = release_path(name, version, "")
    manifest = _ref_or_none(raw["manifest"], prefix, True)
    wasm = _ref_or_none(raw["wasm"], prefix, False)
    if (
        exports is None
        or permissions is None
        or signers is None
        or authors is None
        or keywords is None
        or manifest is None
        or wasm is None
    ):
        return None
    return Release(
        name=name,
        version=version,
        description=description,
        license=license_,
        abi=abi,
        host=host,
        exports=exports,
        permissions=permissions,
        limits=Limits(fuel, memory, wall),
        manifest=manifest,
        wasm=wasm,
        signers=signers,
        published_at=str(published_at),
        yanked=yanked,
        smoke=smoke,
        authors=authors,
        keywords=keywords,
        homepage=homepage,
        repository=repository,
        dependencies=dict(deps),
    )


def _release(check: _Checker, name: str, version: str, raw: Any, path: str) -> Release:
    from registry_tool.format.ranges import RangeSyntaxError, parse_range

    check.obj(raw, path, _RELEASE_FIELDS)
    limits = check.obj(raw["limits"], f"{path}.limits", ("fuel", "memory", "wall_time_ms"))
    deps_raw = raw["dependencies"]
    if not isinstance(deps_raw, dict):
        raise check.fail(f"{path}.dependencies", "must be an object")
    deps: dict[str, str] = {}
    for dep, spec in deps_raw.items():
        if not is_plugin_name(dep):
            raise check.fail(f"{path}.dependencies", f"names {dep!r}, which is not a plugin name")
        text = check.str_(spec, f"{path}.dependencies.{dep}", max_len=256)
        try:
            parse_range(text)
        except RangeSyntaxError as err:
            raise check.fail(f"{path}.dependencies.{dep}", err.what) from None
        deps[dep] = text
    yanked = raw["yanked"]
    if yanked is not None:
        yanked = check.str_(
            check.obj(yanked, f"{path}.yanked", ("reason",))["reason"], f"{path}.yanked.reason"
        )
    smoke_raw = raw["smoke"]
    smoke: tuple[SmokeFigure, ...] | None = None
    if smoke_raw is not None:
        if not isinstance(smoke_raw, list):
            raise check.fail(f"{path}.smoke", "must be null or an array")
        figures = []
        for i, s in enumerate(smoke_raw):
            p = f"{path}.smoke[{i}]"
            check.obj(s, p, ("name", "fuel", "peak_memory"))
            figures.append(
                SmokeFigure(
                    check.str_(s["name"], f"{p}.name"),
                    check.opt_int(s["fuel"], f"{p}.fuel"),
                    check.opt_int(s["peak_memory"], f"{p}.peak_memory"),
                )
            )
        smoke = tuple(figures)
    return Release(
        name=name,
        version=version,
        description=check.str_(raw["description"], f"{path}.description"),
        license=check.str_(raw["license"], f"{path}.license", max_len=256),
        abi=check.str_(raw["abi"], f"{path}.abi", max_len=64),
        host=check.opt_str(raw["host"], f"{path}.host"),
        exports=check.strs(raw["exports"], f"{path}.exports"),
        permissions=check.strs(raw["permissions"], f"{path}.permissions", is_permission),
        limits=Limits(
            check.int_(limits["fuel"], f"{path}.limits.fuel"),
            check.int_(limits["memory"], f"{path}.limits.memory"),
            check.int_(limits["wall_time_ms"], f"{path}.limits.wall_time_ms"),
        ),
        manifest=_file_ref(check, raw["manifest"], f"{path}.manifest", name, version, True),
        wasm=_file_ref(check, raw["wasm"], f"{path}.wasm", name, version, False),
        signers=check.strs(raw["signers"], f"{path}.signers", is_key_id),
        published_at=check.time(raw["published_at"], f"{path}.published_at"),
        yanked=yanked,
        smoke=smoke,
        authors=check.strs(raw["authors"], f"{path}.authors"),
        keywords=check.strs(raw["keywords"], f"{path}.keywords"),
        homepage=check.opt_str(raw["homepage"], f"{path}.homepage"),
        repository=check.opt_str(raw["repository"], f"{path}.repository"),
        dependencies=deps,
    )


def release_from_json(name: str, version: str, raw: Any, *, where: str = "release entry") -> Release:
    """A release entry (``Release.to_json()`` shape) read back strictly; used by the build's cache."""
    return _release(_Checker(where), name, version, raw, f"versions.{version}")


@dataclass(frozen=True)
class PluginDocument:
    """Every version of one plugin."""

    name: str
    versions: dict[str, Release]

    def to_json(self) -> dict[str, Any]:
        """The document as JSON data (``to_bytes`` is its canonical encoding)."""
        return {
            "_type": PLUGIN_TYPE,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "versions": {v: r.to_json() for v, r in self.versions.items()},
        }

    def to_bytes(self) -> bytes:
        """The canonical bytes that are published and pinned."""
        return dump_canonical(self.to_json())

    def releases(self) -> list[Release]:
        """Oldest first by semver precedence."""
        releases = list(self.versions.values())
        if not any("-" in r.version for r in releases):
            # Without pre-release parts, semver precedence is the order of the three numbers
            # (strict semver has no leading zeros), and a tuple of ints is much cheaper to build.
            return sorted(releases, key=lambda r: tuple(map(int, r.version.split("."))))
        from semantic_version import Version

        return sorted(releases, key=lambda r: Version(r.version))

    @classmethod
    def parse(
        cls, data: bytes, *, expected_name: str | None = None, where: str = "plugin document"
    ) -> PluginDocument:
        """Strictly parse; ``expected_name`` is the name the verifier looked up (else ``wrong-software``)."""
        check, raw = _load(data, where, MAX_META_BYTES)
        check.obj(raw, "", ("_type", "format_version", "name", "versions"))
        check.const(raw["_type"], "_type", PLUGIN_TYPE)
        name = check.str_(raw["name"], "name", max_len=64)
        if not is_plugin_name(name):
            raise check.fail("name", f"{name!r} is not a plugin name")
        if expected_name is not None and name != expected_name:
            raise check.fail(
                "name",
                f"is {name!r}, but the tree pins this document for {expected_name!r}",
                WrongDocumentError,
            )
        versions = raw["versions"]
        if not isinstance(versions, dict) or not versions:
            raise check.fail("versions", "must be a non-empty object")
        out: dict[str, Release] = {}
        for version, entry in versions.items():
            if not is_version(version):
                raise check.fail("versions", f"key {version!r} is not a strict semver without '+'")
            release = _release_fast(name, version, entry)
            out[version] = release or _release(check, name, version, entry, f"versions.{version}")
        return cls(name, out)


# =========================================================================== the top document


@dataclass(frozen=True)
class RegistryInfo:
    """The registry's identity in the top document: name, description, URL and host."""

    name: str
    description: str
    base_url: str
    host_name: str
    host_versions: str

    def to_json(self) -> dict[str, Any]:
        """The ``registry`` object of the top document."""
        return {
            "name": self.name,
            "description": self.description,
            "base_url": self.base_url,
            "host": {"name": self.host_name, "versions": self.host_versions},
        }


@dataclass(frozen=True)
class TopDocument:
    """``registry.json``: the only document the index keys sign (and the only one ``resign`` rewrites)."""

    version: int
    generated_at: str
    expires_at: str
    root_version: int
    registry: RegistryInfo
    tree: Pin
    catalog: Pin
    plugin_count: int
    release_count: int

    def expires(self) -> datetime:
        """``expires_at`` as a UTC datetime."""
        moment = parse_time_strict(self.expires_at)
        assert moment is not None
        return moment

    def generated(self) -> datetime:
        """``generated_at`` as a UTC datetime."""
        moment = parse_time_strict(self.generated_at)
        assert moment is not None
        return moment

    def renewed(self, version: int, generated_at: str, expires_at: str, root_version: int) -> TopDocument:
        """The same document with a new version, times and root version (what ``resign`` signs)."""
        return replace(
            self, version=version, generated_at=generated_at, expires_at=expires_at, root_version=root_version
        )

    def to_json(self) -> dict[str, Any]:
        """The document as JSON data (``to_bytes`` is its canonical encoding)."""
        return {
            "format_version": FORMAT_VERSION,
            "version": self.version,
            "generated_at": self.generated_at,
            "expires_at": self.expires_at,
            "root_version": self.root_version,
            "registry": self.registry.to_json(),
            "tree": self.tree.to_json(),
            "catalog": self.catalog.to_json(),
            "counts": {"plugins": self.plugin_count, "releases": self.release_count},
        }

    def to_bytes(self) -> bytes:
        """The canonical bytes that are published and signed."""
        return dump_canonical(self.to_json())

    @classmethod
    def parse(cls, data: bytes, *, where: str = REGISTRY_JSON) -> TopDocument:
        """Strictly parse the top document (verify its signatures over these bytes first)."""
        check, raw = _load(data, where, MAX_TOP_BYTES)
        fields = ("format_version", "version", "generated_at", "expires_at", "root_version")
        check.obj(raw, "", (*fields, "registry", "tree", "catalog", "counts"))
        reg = check.obj(raw["registry"], "registry", ("name", "description", "base_url", "host"))
        host = check.obj(reg["host"], "registry.host", ("name", "versions"))
        counts = check.obj(raw["counts"], "counts", ("plugins", "releases"))
        doc = cls(
            version=check.int_(raw["version"], "version", minimum=1),
            generated_at=check.time(raw["generated_at"], "generated_at"),
            expires_at=check.time(raw["expires_at"], "expires_at"),
            root_version=check.int_(raw["root_version"], "root_version", minimum=1),
            registry=RegistryInfo(
                check.str_(reg["name"], "registry.name", max_len=128),
                check.str_(reg["description"], "registry.description", max_len=4096),
                check.str_(reg["base_url"], "registry.base_url", max_len=2048),
                check.str_(host["name"], "registry.host.name", max_len=128),
                check.str_(host["versions"], "registry.host.versions", max_len=256),
            ),
            tree=Pin.parse(check, raw["tree"], "tree"),
            catalog=Pin.parse(check, raw["catalog"], "catalog"),
            plugin_count=check.int_(counts["plugins"], "counts.plugins"),
            release_count=check.int_(counts["releases"], "counts.releases"),
        )
        if doc.expires() <= doc.generated():
            raise check.fail("expires_at", "must be after generated_at")
        return doc


# =========================================================================== the plugin tree


@dataclass(frozen=True)
class NodeDocument:
    """A node of the hashed-prefix tree: a branch (``children``) or a leaf (``plugins``)."""

    prefix: str
    children: dict[str, Pin] | None = None  # one lower-case hex digit -> child node
    plugins: dict[str, Pin] | None = None  # plugin name -> plugin document

    def to_json(self) -> dict[str, Any]:
        """The node as JSON data (``to_bytes`` is its canonical encoding)."""
        body: dict[str, Any] = {"_type": NODE_TYPE, "format_version": FORMAT_VERSION, "prefix": self.prefix}
        if self.children is not None:
            body["children"] = {k: p.to_json() for k, p in self.children.items()}
        else:
            body["plugins"] = {k: p.to_json() for k, p in (self.plugins or {}).items()}
        return body

    def to_bytes(self) -> bytes:
        """The canonical bytes that are published and pinned."""
        return dump_canonical(self.to_json())

    def step(self, name: str) -> tuple[str, Pin] | None:
        """The next hop towards ``name``: ``("node", pin)``, ``("plugin", pin)``, or None (absent)."""
        if self.children is not None:
            digit = plugin_key(name)[len(self.prefix)]
            pin = self.children.get(digit)
            return None if pin is None else ("node", pin)
        pin = (self.plugins or {}).get(name)
        return None if pin is None else ("plugin", pin)

    @classmethod
    def parse(cls, data: bytes, *, expected_prefix: str, where: str = "tree node") -> NodeDocument:
        """Strictly parse a node found at ``expected_prefix`` (the verifier's position in the walk)."""
        check, raw = _load(data, where, MAX_META_BYTES)
        branch = "children" in raw
        check.obj(raw, "", ("_type", "format_version", "prefix", "children" if branch else "plugins"))
        check.const(raw["_type"], "_type", NODE_TYPE)
        prefix = check.str_(raw["prefix"], "prefix", max_len=MAX_TREE_DEPTH)
        if prefix != expected_prefix:
            raise check.fail(
                "prefix", f"is {prefix!r} where the tree walk expects {expected_prefix!r}", TreeMismatchError
            )
        if branch:
            kids = raw["children"]
            if not isinstance(kids, dict) or len(prefix) >= MAX_TREE_DEPTH:
                raise check.fail("children", "must be an object (and the tree at most 64 levels deep)")
            children: dict[str, Pin] = {}
            for digit, pin in kids.items():
                if len(digit) != 1 or digit not in _HEX:
                    raise check.fail("children", f"key {digit!r} is not one lower-case hex digit")
                children[digit] = Pin.parse(check, pin, f"children.{digit}")
            return cls(prefix, children=children)
        leaf = raw["plugins"]
        if not isinstance(leaf, dict):
            raise check.fail("plugins", "must be an object")
        plugins: dict[str, Pin] = {}
        for name, pin in leaf.items():
            if not is_plugin_name(name):
                raise check.fail("plugins", f"key {name!r} is not a plugin name", TreeMismatchError)
            if not plugin_key(name).startswith(prefix):
                raise check.fail(
                    "plugins", f"holds {name!r}, whose key is outside prefix {prefix!r}", TreeMismatchError
                )
            plugins[name] = Pin.parse(check, pin, f"plugins.{name}")
        return cls(prefix, plugins=plugins)


def build_tree(documents: Mapping[str, Pin]) -> tuple[Pin, dict[str, bytes]]:
    """The tree over ``{plugin name: plugin document pin}``: the root's pin and every node's bytes by sha256.

    A pure function of its input, so a publication that changes one plugin document changes only
    the nodes on that plugin's path; every other node keeps its bytes and its path.
    """
    keyed = sorted((plugin_key(name), name, pin) for name, pin in documents.items())
    nodes: dict[str, bytes] = {}

    def node(prefix: str, items: list[tuple[str, str, Pin]]) -> Pin:
        if len(items) <= LEAF_MAX or len(prefix) >= MAX_TREE_DEPTH:
            doc = NodeDocument(prefix, plugins={name: pin for _, name, pin in items})
        else:
            groups: dict[str, list[tuple[str, str, Pin]]] = {}
            for item in items:
                groups.setdefault(item[0][len(prefix)], []).append(item)
            doc = NodeDocument(prefix, children={d: node(prefix + d, g) for d, g in sorted(groups.items())})
        data = doc.to_bytes()
        pin = Pin.of(data)
        nodes[pin.sha256] = data
        return pin

    return node("", keyed), nodes


# =========================================================================== the catalog


@dataclass(frozen=True)
class CatalogEntry:
    """What search and the browser catalog show for one plugin (from its ``latest`` release)."""

    description: str
    keywords: tuple[str, ...]
    license: str
    abi: str
    latest: str | None  # highest non-yanked version; None when every version is yanked
    versions: int
    permissions: tuple[str, ...]
    host: str | None
    authors: tuple[str, ...]
    document: Pin

    def to_json(self) -> dict[str, Any]:
        """The entry as it appears in the catalog document."""
        return {
            "description": self.description,
            "keywords": list(self.keywords),
            "license": self.license,
            "abi": self.abi,
            "latest": self.latest,
            "versions": self.versions,
            "permissions": sorted(self.permissions),
            "host": self.host,
            "authors": list(self.authors),
            "document": self.document.to_json(),
        }

    @classmethod
    def of(cls, plugin: PluginDocument, pin: Pin) -> CatalogEntry:
        """The entry for ``plugin``: its highest non-yanked release (or the highest, all yanked)."""
        releases = plugin.releases()
        live = [r for r in releases if not r.is_yanked]
        shown = (live or releases)[-1]
        return cls(
            description=shown.description,
            keywords=shown.keywords,
            license=shown.license,
            abi=shown.abi,
            latest=live[-1].version if live else None,
            versions=len(releases),
            permissions=tuple(sorted(shown.permissions)),
            host=shown.host,
            authors=shown.authors,
            document=pin,
        )


@dataclass(frozen=True)
class CatalogDocument:
    """Every plugin's catalog entry: what search and the browser catalog read."""

    plugins: dict[str, CatalogEntry]

    def to_json(self) -> dict[str, Any]:
        """The catalog as JSON data (``to_bytes`` is its canonical encoding)."""
        return {
            "_type": CATALOG_TYPE,
            "format_version": FORMAT_VERSION,
            "plugins": {n: e.to_json() for n, e in self.plugins.items()},
        }

    def to_bytes(self) -> bytes:
        """The canonical bytes that are published and pinned."""
        return dump_canonical(self.to_json())

    @classmethod
    def parse(cls, data: bytes, *, where: str = "catalog") -> CatalogDocument:
        """Strictly parse the catalog (check its pin from the top document first)."""
        check, raw = _load(data, where, MAX_META_BYTES)
        check.obj(raw, "", ("_type", "format_version", "plugins"))
        check.const(raw["_type"], "_type", CATALOG_TYPE)
        if not isinstance(raw["plugins"], dict):
            raise check.fail("plugins", "must be an object")
        out: dict[str, CatalogEntry] = {}
        fields = ("description", "keywords", "license", "abi", "latest", "versions", "permissions", "host")
        for name, e in raw["plugins"].items():
            p = f"plugins.{name}"
            if not is_plugin_name(name):
                raise check.fail("plugins", f"key {name!r} is not a plugin name")
            check.obj(e, p, (*fields, "authors", "document"))
            latest = check.opt_str(e["latest"], f"{p}.latest")
            if latest is not None and not is_version(latest):
                raise check.fail(f"{p}.latest", f"{latest!r} is not a strict semver")
            out[name] = CatalogEntry(
                description=check.str_(e["description"], f"{p}.description"),
                keywords=check.strs(e["keywords"], f"{p}.keywords"),
                license=check.str_(e["license"], f"{p}.license", max_len=256),
                abi=check.str_(e["abi"], f"{p}.abi", max_len=64),
                latest=latest,
                versions=check.int_(e["versions"], f"{p}.versions", minimum=1),
                permissions=check.strs(e["permissions"], f"{p}.permissions", is_permission),
                host=check.opt_str(e["host"], f"{p}.host"),
                authors=check.strs(e["authors"], f"{p}.authors"),
                document=Pin.parse(check, e["document"], f"{p}.document"),
            )
        return cls(out)


# =========================================================================== a whole publication's metadata


@dataclass(frozen=True)
class Metadata:
    """Everything below the top document for one set of plugin documents: what a build publishes."""

    tree: Pin
    catalog: Pin
    files: dict[str, bytes]  # sha256 -> bytes of every meta document (plugin docs, nodes, catalog)
    plugin_pins: dict[str, Pin]
    releases: int
    entries: dict[str, CatalogEntry] = field(default_factory=dict)  # plugin name -> its catalog entry
    carried: frozenset[str] = frozenset()  # sha256 of plugin documents already in place, not in files

    def paths(self) -> dict[str, bytes]:
        """Every meta document with bytes in ``files`` by its site path."""
        return {meta_path(sha): data for sha, data in self.files.items()}


def build_metadata(
    plugins: Iterable[PluginDocument],
    *,
    encoded: Mapping[str, bytes] | None = None,
    carried: Mapping[str, tuple[Pin, CatalogEntry, int]] | None = None,
) -> Metadata:
    """Plugin documents, tree and catalog for a publication (pure).

    ``encoded`` reuses known bytes of a plugin document; ``carried`` names documents already
    published whose bytes are not needed at all: name -> (pin, catalog entry, number of releases).
    """
    files: dict[str, bytes] = {}
    pins: dict[str, Pin] = {}
    entries: dict[str, CatalogEntry] = {}
    releases = 0
    for doc in plugins:
        data = (encoded or {}).get(doc.name) or doc.to_bytes()
        pin = Pin.of(data)
        files[pin.sha256] = data
        pins[doc.name] = pin
        entries[doc.name] = CatalogEntry.of(doc, pin)
        releases += len(doc.versions)
    for name, (pin, entry, count) in (carried or {}).items():
        pins[name] = pin
        entries[name] = entry
        releases += count
    tree, nodes = build_tree(pins)
    files.update(nodes)
    catalog = CatalogDocument(dict(sorted(entries.items()))).to_bytes()
    catalog_pin = Pin.of(catalog)
    files[catalog_pin.sha256] = catalog
    carried_shas = frozenset(pin.sha256 for pin, _, _ in (carried or {}).values())
    return Metadata(tree, catalog_pin, files, pins, releases, entries, carried_shas)
