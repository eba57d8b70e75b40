"""The client's trust state machine (the TUF client workflow applied to this registry's files).

Pure: bytes in, verdict and next state out, ``now`` injected.  Nothing here fetches or
writes; ``api`` does the I/O and persists the state once a session's root chain and top
document verified (never on a failed session, never below what is stored).

State: the trusted root (its exact bytes) and the highest registry.json version seen.
Per session: walk the root chain forward, verify the top document registry.json against the
current root's index role, refuse it when expired (freeze) or older than the highest seen
(rollback).  Everything below the top document is pinned by digest (``registry_tool.format``).
When a root step rotates the index keys, the highest-seen version is reset:
that is how a client recovers after an attacker who held the old index key published an
inflated version (fast-forward attack).  Per release: the manifest must be the one the
pinned plugin document names, signed by a delegated, unrevoked maintainer, for the name and
version asked for, and agree with the entry on every field a host acts on (the index is not
trusted for them); the wasm must match both the manifest and the entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from pathlib import PurePosixPath
from typing import Any, NamedTuple

from registry_tool.client.errors import (
    DigestMismatchError,
    FreezeAttackError,
    IndexSignatureError,
    MalformedRegistryError,
    MixAndMatchError,
    RollbackAttackError,
    RootFingerprintMismatchError,
    WrongRegistryError,
    WrongSoftwareError,
)
from registry_tool.errors import CheckFailed, UsageError
from registry_tool.format import REGISTRY_JSON, PluginDocument, Release, TopDocument, is_version, toml
from registry_tool.format.rules import PLUGIN_NAME_RE, SHA256_RE, is_reserved_name
from registry_tool.signing.release import ParsedIdentity
from registry_tool.trust import (
    Root,
    UnauthorizedSignerError,
    verify_index_signatures,
    verify_release_signatures,
    verify_root_chain,
    verify_threshold,
)

log = logging.getLogger(__name__)
MAX_ROOT_STEPS = 1024  # root versions one session walks; a chain going on past it is refused


@dataclass(frozen=True)
class TrustState:
    """What one client trusts about one registry URL."""

    url: str
    root_bytes: bytes
    highest_version: int = 0  # highest top document (registry.json) version seen (0: none yet)

    @cached_property
    def root(self) -> Root:
        """The trusted root, parsed once per state object (strict parsing validates its schema)."""
        # Parsed once per state object (strict parsing includes schema validation).
        return Root.parse(self.root_bytes, where="trusted root")

    @property
    def root_version(self) -> int:
        """The trusted root's version."""
        return self.root.version

    def with_highest(self, highest: int) -> TrustState:
        """This state with another highest-seen version, keeping the parsed root (same bytes)."""
        if highest == self.highest_version:
            return self
        new = replace(self, highest_version=highest)
        if "root" in self.__dict__:  # the cached parse of the very same bytes
            new.__dict__["root"] = self.__dict__["root"]
        return new


def fingerprint(root_bytes: bytes) -> str:
    """The sha256 of a root file's exact bytes, as published for out-of-band confirmation."""
    return hashlib.sha256(root_bytes).hexdigest()


def check_fingerprint(url: str, root_bytes: bytes, expected: str, *, given: bool = False) -> None:
    """The root's sha256 must be the fingerprint obtained out of band (64 hex digits, all of them).

    Raises:
        UsageError: ``expected`` is not a sha256 (a prefix is never enough: exit 2, not a verdict).
        RootFingerprintMismatchError: the served root has another sha256.
    """
    wanted = expected.strip().lower().removeprefix("sha256:")
    if not SHA256_RE.fullmatch(wanted):
        raise UsageError(
            f"root fingerprint {expected[:80]!r} is not a sha256 (64 hex digits)",
            fix="pass the whole sha256 of root/1.root.json the registry's owners publish "
            "(`registry-tool root verify` prints it)",
        )
    actual = fingerprint(root_bytes)
    if actual != wanted and given:  # ``given``: the root came from a file, not from ``url``
        raise RootFingerprintMismatchError(
            f"the root file given has sha256 {actual}, not the fingerprint {expected}",
            fix="check that the file is the registry's root/1.root.json, and the fingerprint with the "
            "registry's owners through another channel",
        )
    if actual != wanted:  # public values: no need for hmac
        raise RootFingerprintMismatchError(
            f"the root served by {url} has sha256 {actual}, not the fingerprint {expected}",
            fix="check the fingerprint with the registry's owners through another channel; "
            "the server may be serving a forged root",
        )


def pin_root(
    url: str, root_bytes: bytes, sigs: Sequence[str], *, expected_fingerprint: str | None = None
) -> TrustState:
    """First use: accept a root that is signed by a threshold of its own root keys.

    Expiry is checked at the end of the first walk (the pinned root may be an old, expired
    version from which the chain leads to a current one).
    """
    if expected_fingerprint is not None:
        check_fingerprint(url, root_bytes, expected_fingerprint)
    root = Root.parse(root_bytes, where="root")
    verify_threshold(root.role("root"), root_bytes, list(sigs), subject=f"root version {root.version}")
    return TrustState(url=url, root_bytes=root_bytes)


def _index_keys(root: Root) -> frozenset[bytes]:
    return frozenset(k.raw for k in root.role("index").keys)


def walk_root(state: TrustState, steps: Sequence[tuple[bytes, Sequence[str]]], now: datetime) -> TrustState:
    """Advance over root N+1, N+2, ... (each verified by the trust rules); the last must be current.

    If any step removes a key from the index role, the highest-seen registry version is reset
    (fast-forward recovery from a version pushed up by that key), as TUF does when
    timestamp/snapshot keys rotate.  A step that only adds keys (or changes the threshold) keeps
    it: every document the old keys signed still verifies, so an older one is still a rollback.
    """
    rotated = False
    previous = _index_keys(state.root)

    def on_step(root: Root) -> None:
        nonlocal rotated, previous
        keys = _index_keys(root)
        log.info("root chain: stepped to root version %d", root.version)
        rotated = rotated or not previous <= keys
        previous = keys

    names = [f"root/{state.root_version + i}.root.json" for i in range(len(steps) + 1)]
    final = verify_root_chain(state.root_bytes, steps, now, names=names, on_step=on_step)
    return TrustState(
        url=state.url, root_bytes=final.raw, highest_version=0 if rotated else state.highest_version
    )


def verify_registry(
    state: TrustState, data: bytes, sigs: Sequence[str], now: datetime
) -> tuple[TopDocument, TrustState]:
    """Check the top document (signatures, format, registry, root version, expiry, rollback).

    The signatures are checked over the exact bytes before anything parses them.
    """
    root = state.root
    try:
        verify_index_signatures(root, data, list(sigs), where="registry.json")
    except CheckFailed as err:
        unknown = isinstance(err, UnauthorizedSignerError)
        attack = (
            "signed by a key that is not an index key" if unknown else "tampered registry.json or signature"
        )
        raise IndexSignatureError(
            f"{attack}: registry.json does not carry {root.role('index').threshold} valid signature(s) "
            f"by the index keys of root version {root.version} ({err.what})",
            where="registry.json",
            fix="do not use this server or mirror until its owners republish; if the registry rotated "
            "its index keys, the new root version must be published under root/",
        ) from None
    doc = TopDocument.parse(data, where=REGISTRY_JSON)
    if doc.registry.name != root.registry:
        raise WrongRegistryError(
            f"registry.json is for registry {doc.registry.name!r}, "
            f"but the trusted root is for {root.registry!r}",
            where="registry.json",
            fix="check the registry URL",
        )
    if doc.root_version > root.version:
        raise MalformedRegistryError(
            f"registry.json was built under root version {doc.root_version}, but the newest root "
            f"found is version {root.version}",
            where="registry.json",
            fix=f"the server must publish root/{doc.root_version}.root.json "
            "(every root version stays published)",
        )
    expires = doc.expires()
    if now >= expires:
        raise FreezeAttackError(
            f"freeze attack or stale mirror: registry.json version {doc.version} expired at {doc.expires_at}",
            where="registry.json",
            fix="the registry's publish job must re-sign it (`registry-tool resign`); try a mirror meanwhile",
        )
    if doc.version < state.highest_version:
        raise RollbackAttackError(
            f"rollback attack: registry version {doc.version} is lower than the highest seen "
            f"{state.highest_version}",
            where="registry.json",
            fix="the server or mirror is serving an old registry; "
            "use another mirror or wait for it to catch up",
        )
    return doc, replace(state, root_bytes=root.raw, highest_version=max(doc.version, state.highest_version))


# --------------------------------------------------------------------------- releases


def required_dependencies(raw: Any) -> dict[str, str]:
    """A manifest's ``[dependencies]`` as the index publishes them: required ones only, name -> range.

    An entry is ``name = "range"`` or ``name = { version = "range", optional = true, ... }``;
    optional dependencies are not published and never resolved by the client.
    """
    if not isinstance(raw, dict):
        raise TypeError("[dependencies] must be a table")
    out: dict[str, str] = {}
    for name, spec in raw.items():
        if isinstance(spec, dict):
            if spec.get("optional") is True:
                continue
            spec = spec["version"]
        if not isinstance(spec, str):
            raise TypeError(f"dependencies.{name} must be a range")
        out[str(name)] = spec
    return out


class ManifestIdentity(NamedTuple):
    """What ``client verify`` reads from a stored manifest: identity, module digest, lock facts.

    ``facts`` is ``lock_facts`` of what a lockfile entry repeats from the manifest ("": not known).
    """

    name: str
    version: str
    artifact_sha256: str
    facts: str = ""


_FACTS_RE = re.compile(r"[0-9a-f]{32}")


def lock_facts(abi: str | None, permissions: Iterable[str], dependencies: Iterable[tuple[str, str]]) -> str:
    """A digest of what a lockfile entry repeats from its signed manifest: abi, permissions, dependencies.

    Hosts read those from the lockfile (``list_installed``), which is not signed: ``client verify``
    compares them with the signed manifest, through this digest when the identity record holds it.
    """
    text = json.dumps([abi, sorted(permissions), sorted(dependencies)], separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


# The manifest identity record: for each manifest a client installed, the identity its parse gave,
# keyed by the sha256 of the manifest's exact bytes.  A parse is a pure function of the bytes, so a
# line is true of any file with that digest, whichever folder it sits in and whoever copied it
# there; ``client verify`` then hashes a stored manifest (it must anyway) and parses only those the
# record does not hold.  The record is as trusted as the trusted root kept beside it in the state
# directory (docs/client.md, Performance).  One header line binds the file to its registry URL;
# then one line per manifest, appended at install.  A line counts only whole (ending in a newline)
# and in this exact shape, so a torn append or a damaged file can only make verify parse more.
IDENTITY_RECORD_MAGIC = "registry-tool manifest identities 1"
# The fifth field (lock_facts) is absent from lines older clients wrote: those manifests are parsed.
_RECORD_LINE = re.compile(
    r"^([0-9a-f]{64}) ([a-z][a-z0-9_-]{1,63}) ([0-9A-Za-z.+-]{1,256}) ([0-9a-f]{64})(?: ([0-9a-f]{32}))?\n",
    re.M,
)


def identity_record_header(url: str) -> str:
    """The record's first line, naming the (normalised) registry URL it belongs to."""
    return f"{IDENTITY_RECORD_MAGIC} {url}\n"


def identity_record_lines(identities: Iterable[tuple[str, ManifestIdentity]]) -> str:
    """The record lines of (manifest sha256, identity) pairs; pairs no line can hold exactly are left out."""
    out: list[str] = []
    for digest, ident in identities:
        if (
            SHA256_RE.fullmatch(digest)
            and PLUGIN_NAME_RE.fullmatch(ident.name)
            and is_version(ident.version)
            and SHA256_RE.fullmatch(ident.artifact_sha256)
        ):
            facts = f" {ident.facts}" if _FACTS_RE.fullmatch(ident.facts) else ""
            out.append(f"{digest} {ident.name} {ident.version} {ident.artifact_sha256}{facts}\n")
    return "".join(out)


def parse_identity_record(data: bytes, url: str) -> dict[str, ManifestIdentity]:
    """Manifest sha256 -> identity from a record's bytes; empty unless the header names ``url``."""
    header = identity_record_header(url).encode("utf-8")
    if not data.startswith(header):
        return {}
    try:
        text = data[len(header) :].decode("ascii")
    except UnicodeDecodeError:
        return {}
    return {m[1]: ManifestIdentity(m[2], m[3], m[4], m[5] or "") for m in _RECORD_LINE.finditer(text)}


@dataclass(frozen=True)
class ManifestFacts:
    """What the client reads from a plugin.toml (only after its digest or signature was checked)."""

    name: str
    version: str
    artifact_file: str
    artifact_sha256: str
    artifact_size: int
    permissions: frozenset[str]
    abi: str | None = None
    host: str | None = None  # [compatibility] host, or ">=min_host_version", as the build derives it
    exports: tuple[str, ...] | None = None
    dependencies: tuple[tuple[str, str], ...] = ()
    # The limits the manifest declares, in the plugin document's units (the others come from the
    # registry's defaults, which a client does not know): fuel, memory bytes, wall_time_ms.
    limits: tuple[tuple[str, int], ...] = ()

    @property
    def identity(self) -> ManifestIdentity:
        """The name, version, module digest and lock facts (what the identity record keeps)."""
        return ManifestIdentity(
            self.name,
            self.version,
            self.artifact_sha256,
            lock_facts(self.abi, self.permissions, self.dependencies),
        )

    @classmethod
    def parse(cls, data: bytes, *, where: str) -> ManifestFacts:
        """Read the facts from plugin.toml bytes; a file lacking them is ``MalformedRegistryError``."""
        try:
            raw = toml.loads(data.decode("utf-8"))
            plugin, artifact = raw["plugin"], raw["artifact"]
            perms = raw.get("permissions", {})
            host = raw.get("compatibility", {}).get("host")
            if host is None and "min_host_version" in plugin:
                host = f">={plugin['min_host_version']}"
            exports = raw.get("exports", {}).get("functions")
            deps = raw.get("dependencies", {})
            return cls(
                limits=_declared_limits(raw.get("limits", {})),
                name=str(plugin["name"]),
                version=str(plugin["version"]),
                artifact_file=str(artifact["file"]),
                artifact_sha256=str(artifact["sha256"]).lower(),
                artifact_size=int(artifact["size"]),
                permissions=frozenset(str(k) for k, v in perms.items() if v is True),
                abi=None if plugin.get("abi") is None else str(plugin["abi"]),
                host=None if host is None else str(host),
                exports=None if exports is None else tuple(str(e) for e in exports),
                dependencies=tuple(sorted(required_dependencies(deps).items())),
            )
        except (
            UnicodeDecodeError,
            toml.TOMLDecodeError,
            KeyError,
            TypeError,
            ValueError,
            OverflowError,  # int(inf): TOML has inf and nan floats
            AttributeError,
            RecursionError,  # the parser recurses into nested arrays and inline tables
        ) as e:
            raise MalformedRegistryError(
                f"plugin.toml lacks a readable [plugin] name/version or [artifact] pin ({e})",
                where=where,
                fix="re-sign the release with `registry-tool sign`",
            ) from None


def _declared_limits(raw: Any) -> tuple[tuple[str, int], ...]:
    """The limits a manifest declares, converted as the build converts them."""
    if not raw:
        return ()
    from registry_tool.manifest.units import milliseconds, parse_duration, parse_size

    out: list[tuple[str, int]] = []
    if "fuel" in raw:
        out.append(("fuel", int(raw["fuel"])))
    if "memory" in raw:
        out.append(("memory", parse_size(raw["memory"])))
    if "wall_time" in raw:
        out.append(("wall_time_ms", milliseconds(parse_duration(raw["wall_time"]))))
    return tuple(out)


def _digest_error(what: str, where: str) -> DigestMismatchError:
    return DigestMismatchError(
        what,
        where=where,
        fix="the server or a mirror modified the file; nothing was installed. "
        "Report it to the registry's owners",
    )


def verify_manifest(
    root: Root, release: Release, data: bytes, sigs: Sequence[str], now: datetime
) -> tuple[ManifestFacts, frozenset[str]]:
    """The release's plugin.toml: the bytes the signed registry names, maintainer-signed, right identity."""
    where = release.manifest.path
    if len(data) != release.manifest.size or hashlib.sha256(data).hexdigest() != release.manifest.sha256:
        raise _digest_error(
            f"tampered manifest: {where} does not match the size and sha256 pinned by the plugin document",
            where,
        )
    facts = ManifestFacts.parse(data, where=where)
    name, version, file = facts.name, facts.version, facts.artifact_file
    if name != release.name:
        raise WrongSoftwareError(
            f"wrong software attack: the registry entry for {release.name} {release.version} points at the "
            f"signed manifest of plugin {name!r}",
            where=where,
            fix="do not install from this registry until its owners rebuild it",
        )
    if version != release.version:
        raise WrongSoftwareError(
            f"wrong software attack: the plugin document's entry for {release.name} {release.version} "
            f"points at the signed manifest of version {version}",
            where=where,
            fix="do not install from this registry until its owners rebuild it",
        )
    # The publication time judges only signatures by revoked keys: not parsed for a root that has none.
    published = release.published() if root.revoked else None
    try:
        signers = verify_release_signatures(
            root,
            release.name,
            data,
            list(sigs),
            now,
            published_at=published,
            where=where,
            identity=ParsedIdentity(name, version, data),  # parsed once, from exactly these bytes
        )
    except CheckFailed as err:
        err.what = f"maintainer signature of {release.name} {release.version}: {err.what}"
        raise
    refuse_other_module(release, facts)
    if is_reserved_name(file):
        # Installed, the module would be taken for the manifest's own signature (or the lockfile
        # name one file as both); ci check refuses such a name, so only a forged index serves it.
        raise MalformedRegistryError(
            f"the signed manifest of {release.name} {release.version} names its module {file!r}, a name "
            "reserved for the release's metadata (plugin.toml, yank.toml and their signatures)",
            where=where,
            fix="do not install this release; ask its maintainers to rename the module",
        )
    refuse_disagreeing_entry(release, facts)
    return facts, frozenset(signers)


def refuse_other_module(release: Release, facts: ManifestFacts) -> None:
    """Raise ``MixAndMatchError`` when the entry's module is not the one the signed manifest pins."""
    sha256, size, file = facts.artifact_sha256, facts.artifact_size, facts.artifact_file
    if (sha256, size) != (release.wasm.sha256, release.wasm.size) or file != PurePosixPath(
        release.wasm.path
    ).name:
        raise MixAndMatchError(
            f"mix-and-match attack: the signed manifest of {release.name} {release.version} pins "
            f"{file} ({size} bytes, sha256 {sha256[:16]}…), but the registry entry names "
            f"{release.wasm.path} ({release.wasm.size} bytes, sha256 {release.wasm.sha256[:16]}…)",
            where=release.manifest.path,
            fix="do not install from this registry until its owners rebuild it",
        )


def refuse_disagreeing_entry(release: Release, facts: ManifestFacts) -> None:
    """Raise ``MixAndMatchError`` where the plugin document's entry says other than the signed manifest.

    The index is trusted for none of what a host acts on: the signed manifest decides, and an
    entry that disagrees was spliced together from two releases (or forged with the index key).
    """
    where, perms = release.manifest.path, facts.permissions
    disagreements = [
        (label, entry, signed)
        for label, entry, signed in (
            ("permissions", sorted(release.permissions), sorted(perms)),
            ("abi", release.abi, facts.abi),
            ("host", release.host, facts.host),
            ("exports", list(release.exports), None if facts.exports is None else list(facts.exports)),
            ("dependencies", sorted(release.dependencies.items()), list(facts.dependencies)),
            *((f"limits.{name}", getattr(release.limits, name), declared) for name, declared in facts.limits),
        )
        if entry != signed
    ]
    if disagreements:
        label, entry, signed = disagreements[0]
        raise MixAndMatchError(
            f"mix-and-match attack: the plugin document's entry for {release.name} {release.version} lists "
            f"{label} {entry!r}, but its signed manifest declares {signed!r}",
            where=where,
            fix="do not install from this registry until its owners rebuild it",
        )


def verify_wasm(doc: PluginDocument, release: Release, facts: ManifestFacts, data: bytes) -> None:
    """The wasm must be exactly what both the signed manifest and the pinned plugin document name."""
    digest = hashlib.sha256(data).hexdigest()
    if digest == facts.artifact_sha256 == release.wasm.sha256 and len(data) == facts.artifact_size:
        return
    for other in doc.versions.values():
        if other is not release and other.wasm.sha256 == digest:
            raise MixAndMatchError(
                f"mix-and-match attack: the module served for {release.name} {release.version} is the "
                f"signed module of {other.name} {other.version}",
                where=release.wasm.path,
                fix="the server or a mirror swapped files; nothing was installed",
            )
    raise _digest_error(
        f"tampered module: {release.wasm.path} ({len(data)} bytes, sha256 {digest[:16]}…) is not the module "
        f"pinned by the signed manifest and the plugin document",
        release.wasm.path,
    )
