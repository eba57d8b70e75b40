"""A publication as the builder sees it: the top document plus every plugin document.

The client never loads a whole publication (it walks the tree to one plugin); the builder does,
to carry ``published_at`` over, to check immutability against ``--previous`` and to report.
Reading a publication walks the tree from the top document's pin, each document fetched by its
pin (at most ``size`` bytes, then the sha256) and parsed with the verifier's rules; a plugin
document the build cache recorded as this tool's own is read and decoded only when used
(``StoredVersions``), so a one-change rebuild reads only the documents it changes.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from registry_tool.errors import CheckFailed
from registry_tool.format import (
    MAX_META_BYTES,
    MAX_TOP_BYTES,
    REGISTRY_JSON,
    CatalogEntry,
    FileRef,
    Limits,
    NodeDocument,
    Pin,
    PluginDocument,
    RegistryInfo,
    Release,
    SmokeFigure,
    TopDocument,
    is_plugin_name,
    is_version,
    plugin_key,
)

# Reads a site-relative path, returning at most ``cap`` bytes (raising when there are more).
Reader = Callable[[str, int], bytes]


class PublicationError(CheckFailed):
    """A published document does not match its pin."""

    code = "digest-mismatch"


@dataclass(frozen=True)
class Publication:
    """One publication: the top document and every release by plugin name and version.

    Attributes:
        top: The top document.
        plugins: Plugin name -> version -> release (a ``StoredVersions`` for a plugin document
            decoded only when used).
        documents: sha256 of every tree node and plugin document the tree pins (empty for a
            publication built in memory); not part of equality.
        encoded: Plugin name -> the bytes of its plugin document as read (empty for a
            publication built in memory; without the ``StoredVersions`` not decoded); not part of
            equality.
        pins: Plugin name -> the pin of its plugin document (empty for a publication built in
            memory); not part of equality.
    """

    top: TopDocument
    plugins: dict[str, Mapping[str, Release]] = field(default_factory=dict)
    documents: frozenset[str] = field(default=frozenset(), compare=False)
    encoded: dict[str, bytes] = field(default_factory=dict, compare=False)
    pins: dict[str, Pin] = field(default_factory=dict, compare=False)

    # The top document's fields, for reports and callers that only need them.
    @property
    def version(self) -> int:
        """The registry version."""
        return self.top.version

    @property
    def generated_at(self) -> str:
        """When the top document was signed."""
        return self.top.generated_at

    @property
    def expires_at(self) -> str:
        """When the top document expires."""
        return self.top.expires_at

    @property
    def root_version(self) -> int:
        """The root version whose index role signed it."""
        return self.top.root_version

    @property
    def registry(self) -> RegistryInfo:
        """Name, description, base URL and host of the registry."""
        return self.top.registry

    def expires(self) -> datetime:
        """``expires_at`` as a time."""
        return self.top.expires()

    def releases(self) -> list[Release]:
        """Every release, sorted by name then version string (stable, not semver order)."""
        return [self.plugins[n][v] for n in sorted(self.plugins) for v in sorted(self.plugins[n])]

    def get(self, name: str, version: str) -> Release | None:
        """One release, or None."""
        versions = self.plugins.get(name)
        return versions.get(version) if versions is not None and version in versions else None

    def document_bytes(self, name: str) -> bytes | None:
        """The bytes of a plugin document as read (None when not read, or built in memory)."""
        versions = self.plugins.get(name)
        if isinstance(versions, StoredVersions):
            return versions.data
        return self.encoded.get(name)

    def verified_documents(self) -> frozenset[str]:
        """sha256 of every document whose bytes were checked against its pin (read so far)."""
        unread = {
            versions.pin.sha256
            for versions in self.plugins.values()
            if isinstance(versions, StoredVersions) and versions.data is None
        }
        return self.documents - unread


def fetch_pinned(read: Reader, pin: Pin) -> bytes:
    """A metadata document by its pin: at most ``pin.size`` bytes, then the digest must match."""
    data = read(pin.path, pin.size)
    if not pin.matches(data):
        raise PublicationError(
            f"{pin.path} does not match its pin (sha256 {pin.sha256[:16]}…, {pin.size} bytes)",
            where=pin.path,
            fix="the published site was modified after the build; rebuild it",
        )
    return data


class StoredVersions(Mapping[str, Release]):
    """The releases of a plugin document this tool wrote, decoded from the site on first use.

    The build cache's record of the document (``KnownDocument``) lists its versions, so asking
    which versions it holds reads nothing; the first release asked for fetches the document by its
    pin (size cap, sha256) and decodes it with ``release_as_written``.  A one-change rebuild never
    decodes the documents it carries over unchanged.
    """

    def __init__(self, name: str, pin: Pin, read: Reader, versions: tuple[str, ...]) -> None:
        """The document of ``name`` at ``pin``, holding ``versions`` by its record."""
        self.name = name
        self.pin = pin
        self._read = read
        self._versions = versions
        self._set = frozenset(versions)
        self._releases: dict[str, Release] | None = None
        self.data: bytes | None = None  # the document's bytes once read

    def _decoded(self) -> dict[str, Release]:
        if self._releases is None:
            data = fetch_pinned(self._read, self.pin)
            raw = json.loads(data)
            if raw.get("name") != self.name or set(raw["versions"]) != self._set:
                # The record vouches for these bytes; anything else is not the document it names.
                raise PublicationError(
                    f"{self.pin.path} is not the document of {self.name!r} the build cache recorded",
                    where=self.pin.path,
                    fix="delete the build cache file and rebuild",
                )
            self._releases = {v: release_as_written(self.name, v, e) for v, e in raw["versions"].items()}
            self.data = data
        return self._releases

    def __getitem__(self, version: str) -> Release:
        """The release of ``version`` (the document is read and decoded on first use)."""
        if version not in self._set:
            raise KeyError(version)
        return self._decoded()[version]

    def __iter__(self) -> Iterator[str]:
        """The versions, as recorded (nothing read)."""
        return iter(self._versions)

    def __len__(self) -> int:
        """The number of versions (nothing read)."""
        return len(self._versions)

    def __contains__(self, version: object) -> bool:
        """Whether the document holds ``version`` (nothing read)."""
        return version in self._set


def read_publication(
    top: TopDocument,
    read: Reader,
    known: Mapping[str, KnownDocument] | None = None,
    known_nodes: frozenset[str] = frozenset(),
) -> Publication:
    """Every plugin document of a publication, walking the whole tree from ``top.tree``.

    Tree nodes are fetched by pin and parsed strictly.  A plugin document whose digest is in
    ``known`` (the build cache's record of documents this tool encoded itself, from releases it
    had verified) under the same plugin name is a ``StoredVersions``: read by its pin and decoded
    without re-running the verifier's rules only when one of its releases is used.  Every other
    document is fetched by its pin and parsed strictly now.  A tree node in ``known_nodes`` (bytes
    this tool encoded, by the same record) is fetched by its pin and decoded without the rules.
    """
    known = known or {}
    plugins: dict[str, Mapping[str, Release]] = {}
    documents: set[str] = set()
    encoded: dict[str, bytes] = {}
    pins: dict[str, Pin] = {}
    pending: list[tuple[Pin, str]] = [(top.tree, "")]
    while pending:
        pin, prefix = pending.pop()
        data = fetch_pinned(read, pin)
        node = _node_as_written(data) if pin.sha256 in known_nodes else None
        if node is None or node.prefix != prefix:  # else the rules name what is wrong
            node = NodeDocument.parse(data, expected_prefix=prefix, where=pin.path)
        documents.add(pin.sha256)
        for digit, child in sorted((node.children or {}).items()):
            pending.append((child, prefix + digit))
        for name, doc_pin in sorted((node.plugins or {}).items()):
            assert plugin_key(name).startswith(prefix)  # checked by NodeDocument.parse
            pins[name] = doc_pin
            documents.add(doc_pin.sha256)
            record = known.get(doc_pin.sha256)
            if record is not None and record.name == name:
                plugins[name] = StoredVersions(name, doc_pin, read, record.versions)
                continue
            data = fetch_pinned(read, doc_pin)
            plugins[name] = PluginDocument.parse(data, expected_name=name, where=doc_pin.path).versions
            encoded[name] = data
    return Publication(top, plugins, frozenset(documents), encoded, pins)


#: What the build cache records of each plugin document a build published (see ``KnownDocument``).
Fingerprint = tuple[bool, tuple[tuple[str, str], ...]]


def _node_as_written(data: bytes) -> NodeDocument:
    """``NodeDocument.to_bytes()`` read back without the rules: only for nodes this tool wrote."""
    raw = json.loads(data)

    def pins(table: dict[str, Any] | None) -> dict[str, Pin] | None:
        return None if table is None else {k: Pin(p["sha256"], p["size"]) for k, p in table.items()}

    return NodeDocument(raw["prefix"], children=pins(raw.get("children")), plugins=pins(raw.get("plugins")))


@dataclass(frozen=True)
class PluginPrint:
    """Everything a rebuild needs to keep a whole plugin as it was, without a look at its releases.

    Recorded for a plugin whose every release the build cache answered or recorded.  The prints
    themselves are kept as digests (``index_digest``, ``site_digest``): a rebuild computes the
    same digest from what it finds, and the record stays small (the cache is read on every build).

    Attributes:
        context: The releases' cache context (tool version, root chain, registry.toml).
        written_at: When it was recorded (files modified within ``cache.RACY_SECONDS`` before are
            never trusted by their stat print).
        index_digest: ``index_digest`` of its releases' stat prints.
        site_paths: Every release file in SITE, as a path below ``plugins/<name>/``, NUL-separated
            (one string: the cache holds 30,000 of them at 10,000 releases).
        site_digest: ``site_digest`` of their site prints, in that order.
        yanked: The yanked versions.
        dependencies: (version, ((dependency, range), ...)) of every release with dependencies.
    """

    context: str
    written_at: float
    index_digest: str
    site_paths: str
    site_digest: str
    yanked: tuple[str, ...]
    dependencies: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]


def index_digest(releases: Iterable[tuple[str, bytes]]) -> str:
    """The digest of (version, stat print) pairs (each part length-prefixed: one reading only)."""
    parts = [b"%d:%s%d:%s" % (len(version), version.encode(), len(stat), stat) for version, stat in releases]
    return hashlib.sha256(b"".join(parts)).hexdigest()


def site_digest(prints: Iterable[bytes | None]) -> str:
    """The digest of site prints in order (a missing path, or a link, is ``_NO_PRINT``).

    Prints have one fixed length, so their concatenation reads one way only.
    """
    return hashlib.sha256(b"".join([p or _NO_PRINT for p in prints])).hexdigest()


# A site print (``publish.site_print``): size, mtime_ns, ctime_ns, inode and file type, packed.
SITE_PRINT = struct.Struct("<qqqQI")
# As long as a print, and none: its size field would be -1.
_NO_PRINT = b"\xff" * SITE_PRINT.size


@dataclass(frozen=True)
class KnownDocument:
    """A plugin document this tool encoded and wrote into SITE, as the build cache records it.

    The document is content-addressed, so its digest fixes every field below; the record is
    trusted local state like the rest of the cache.

    Attributes:
        name: The plugin.
        fingerprint: (smoke run, ((version, content key of the release), ...)) of the releases it
            was encoded from: the same fingerprint from the index means the same document bytes.
        catalog: Its catalog entry's fields (``CatalogEntry`` without the pin).
        site_print: ``publish.site_print`` of its file in SITE after the build.
        whole: The plugin's print, when the build cache held every one of its releases.
        versions: The document's versions (from the fingerprint; asked for three times per plugin
            in a rebuild, so made once).
    """

    name: str
    fingerprint: Fingerprint
    catalog: tuple[Any, ...]
    site_print: bytes | None
    whole: PluginPrint | None = None
    versions: tuple[str, ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:  # noqa: D105 (see the attribute)
        object.__setattr__(self, "versions", tuple([v for v, _ in self.fingerprint[1]]))


@dataclass(frozen=True)
class PublicationRecord:
    """The plugin documents a build wrote (or kept) in SITE, kept in the build cache for the next build.

    Attributes:
        documents: sha256 -> the record of every plugin document of the publication: bytes this
            tool encoded from releases it had parsed or verified itself.
    """

    documents: dict[str, KnownDocument]
    nodes: frozenset[str] = frozenset()

    def to_data(self) -> dict[str, Any]:
        """The record as cache data (plain tuples for ``marshal``)."""
        return {
            "nodes": sorted(self.nodes),
            "documents": self.to_documents_data(),
        }

    def to_documents_data(self) -> dict[str, Any]:
        """The documents' records as plain tuples."""
        return {
            sha: (
                d.name,
                d.fingerprint,
                d.catalog,
                d.site_print,
                None if d.whole is None else tuple(getattr(d.whole, f) for f in _PLUGIN_PRINT_FIELDS),
            )
            for sha, d in sorted(self.documents.items())
        }

    @classmethod
    def from_data(cls, raw: Any) -> PublicationRecord:
        """The record from cache data (``KeyError`` / ``TypeError`` / ``ValueError`` when malformed)."""
        if not isinstance(raw, dict) or not isinstance(raw["documents"], dict):
            raise TypeError("malformed publication record")
        nodes = raw["nodes"]
        if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
            raise TypeError("malformed publication record")
        documents: dict[str, KnownDocument] = {}
        for sha, (name, fingerprint, catalog, site_print, whole) in raw["documents"].items():
            smoke, releases = fingerprint
            if not (isinstance(sha, str) and isinstance(name, str) and isinstance(smoke, bool)) or not (
                site_print is None or isinstance(site_print, bytes)
            ):
                raise TypeError("malformed publication record")
            if not all(isinstance(v, str) and isinstance(k, str) for v, k in releases):
                raise TypeError("malformed publication record")
            plugin = None if whole is None else PluginPrint(*whole)
            if plugin is not None and not (
                isinstance(plugin.context, str)
                and isinstance(plugin.written_at, float)
                and isinstance(plugin.index_digest, str)
                and isinstance(plugin.site_digest, str)
                and isinstance(plugin.site_paths, str)
                and all(isinstance(v, str) for v in plugin.yanked)
                and all(isinstance(v, str) and isinstance(d, tuple) for v, d in plugin.dependencies)
            ):
                raise TypeError("malformed publication record")
            documents[sha] = KnownDocument(name, (smoke, tuple(releases)), tuple(catalog), site_print, plugin)
        return cls(documents, frozenset(nodes))


_PLUGIN_PRINT_FIELDS = (
    "context",
    "written_at",
    "index_digest",
    "site_paths",
    "site_digest",
    "yanked",
    "dependencies",
)


def catalog_fields(entry: CatalogEntry) -> tuple[Any, ...]:
    """A catalog entry without its pin, as ``KnownDocument.catalog`` keeps it."""
    return (
        entry.description,
        entry.keywords,
        entry.license,
        entry.abi,
        entry.latest,
        entry.versions,
        entry.permissions,
        entry.host,
        entry.authors,
    )


def catalog_entry(fields: tuple[Any, ...], pin: Pin) -> CatalogEntry:
    """The catalog entry of a known document (``catalog_fields`` inverted)."""
    description, keywords, license_, abi, latest, versions, permissions, host, authors = fields
    return CatalogEntry(
        description,
        tuple(keywords),
        license_,
        abi,
        latest,
        versions,
        tuple(permissions),
        host,
        tuple(authors),
        pin,
    )


def release_as_written(name: str, version: str, raw: dict[str, Any]) -> Release:
    """``Release.to_json()`` read back without the verifier's checks: only for entries this tool wrote.

    Used for plugin documents whose digest the build cache recorded when this tool encoded them
    (see ``read_publication``); every other document is parsed with ``PluginDocument.parse``.
    ``tests/registry`` checks it inverts ``to_json``.
    """
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
        manifest=FileRef(**raw["manifest"]),
        wasm=FileRef(**raw["wasm"]),
        signers=tuple(raw["signers"]),
        published_at=raw["published_at"],
        yanked=None if yanked is None else yanked["reason"],
        smoke=None if smoke is None else tuple(SmokeFigure(**s) for s in smoke),
        authors=tuple(raw["authors"]),
        keywords=tuple(raw["keywords"]),
        homepage=raw["homepage"],
        repository=raw["repository"],
        dependencies=dict(raw["dependencies"]),
    )


@dataclass(frozen=True)
class Generation:
    """What a site's current top document pins: kept one more build for readers in flight.

    Attributes:
        meta: Site paths of every metadata document it pins (tree nodes, plugin documents, catalog).
        releases: ``name/version`` of every release its plugin documents list (safe names only).
    """

    meta: frozenset[str] = frozenset()
    releases: frozenset[str] = frozenset()


def site_top_version(site: Path) -> int | None:
    """The version of the top document SITE serves now, read without verifying it, or None.

    Used only to keep a new publication above it (never to trust anything).
    """
    try:
        with open(site / REGISTRY_JSON, "rb") as fh:
            return TopDocument.parse(fh.read(MAX_TOP_BYTES + 1)).version
    except (OSError, CheckFailed):
        return None


def site_generation(site: Path) -> Generation | None:
    """The generation SITE serves now, read without verifying it (best effort), or None.

    None: SITE's registry.json is no top document (a folder holding one this tool did not write).

    Only ever used to *keep* files one more build (a reader that fetched the current top document
    just before the publication still finds what it pins), never to publish or trust anything: a
    document that does not match its pin or does not parse is simply not followed.
    """
    meta: set[str] = set()
    releases: set[str] = set()
    try:
        with open(site / REGISTRY_JSON, "rb") as fh:
            top = TopDocument.parse(fh.read(MAX_TOP_BYTES + 1))
    except (OSError, CheckFailed):
        return None

    def read(pin: Pin) -> bytes | None:
        try:
            with open(site / pin.path, "rb") as fh:
                data = fh.read(pin.size + 1)
        except OSError:
            return None
        return data if pin.matches(data) else None

    meta.add(top.catalog.path)
    pending: list[Pin] = [top.tree]
    while pending:
        pin = pending.pop()
        data = read(pin)
        meta.add(pin.path)
        if data is None:
            continue
        try:
            node = json.loads(data)
            children = [_loose_pin(c) for c in (node.get("children") or {}).values()]
            docs = [_loose_pin(d) for d in (node.get("plugins") or {}).values()]
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
        pending.extend(children)
        for doc_pin in docs:
            meta.add(doc_pin.path)
            doc = read(doc_pin)
            try:
                raw = json.loads(doc) if doc is not None else {}
                name, versions = raw.get("name"), raw.get("versions") or {}
                releases.update(
                    f"{name}/{v}"
                    for v in versions
                    if isinstance(name, str) and is_plugin_name(name) and isinstance(v, str) and is_version(v)
                )
            except (ValueError, TypeError, AttributeError):
                continue
    return Generation(frozenset(meta), frozenset(releases))


def _loose_pin(raw: Any) -> Pin:
    """A pin of an unverified document: a digest-shaped name and a bounded size, else ``ValueError``."""
    sha, size = raw["sha256"], raw["size"]
    if not (isinstance(sha, str) and _SHA256.fullmatch(sha) and isinstance(size, int)):
        raise ValueError("not a pin")
    if not 0 <= size <= MAX_META_BYTES:
        raise ValueError("not a pin")
    return Pin(sha, size)


_SHA256 = re.compile(r"[0-9a-f]{64}")


def read_site_dir(site: Path) -> Publication:
    """The publication in a site folder, its pins checked (its signature is not: for tools and tests)."""

    def read(rel: str, cap: int) -> bytes:
        with open(site / rel, "rb") as fh:
            return fh.read(cap + 1)

    return read_publication(TopDocument.parse(read(REGISTRY_JSON, MAX_TOP_BYTES)), read)
