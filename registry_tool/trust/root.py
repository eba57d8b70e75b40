"""Root metadata and the pure verification rules (docs/trust.md is the specification).

Everything here is bytes in, verdict out: no filesystem, no network, ``now`` injected.  Signatures
are minisign signatures over the exact bytes of the signed file; nothing is re-serialised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from registry_tool.errors import CheckFailed, Location, RegistryToolError, UsageError
from registry_tool.format.errors import DocumentError
from registry_tool.format.rules import MAX_ROOT_BYTES, PLUGIN_NAME_RE, parse_time_strict
from registry_tool.format.rules import format_time as _format_time
from registry_tool.format.strictjson import load_strict
from registry_tool.signing.minisign import (
    BadSignatureError,
    LegacySignatureError,
    MalformedSignatureError,
    PublicKey,
    VerifiedSignature,
)
from registry_tool.signing.release import (
    ParsedIdentity,
    check_trusted_comment,
    identity_of,
    manifest_identity,
)
from registry_tool.trust.policy import (
    Candidate,
    RevokedKeyError,
    Role,
    Tally,
    ThresholdNotMetError,
    UnauthorizedSignerError,
    require_threshold,
    tally_signatures,
    verify_threshold,
)

ROOT_TYPE = "registry-root"
SPEC_VERSION = 1
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
ROLES = ("root", "index")
# The schema's patterns, matched in full: JSON Schema's ``pattern`` is a search, and ``$`` also
# matches before a final newline, so the schema alone accepts "hello\n".
PLUGIN_PATTERN_RE = re.compile(r"\*|[a-z][a-z0-9_-]{0,62}\*|[a-z][a-z0-9_-]{1,63}")
REGISTRY_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAINTAINER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
PUBLIC_KEY_RE = re.compile(r"RW[QRST][A-Za-z0-9+/]{53}")  # a minisign public key line, nothing around it


class RootFormatError(CheckFailed):
    """Root metadata is not valid: JSON, schema or a semantic rule (see docs/trust.md)."""

    code = "root-format"


class ExpiredRootError(CheckFailed):
    """The trusted root (the last of the chain) is past its ``expires`` time."""

    code = "root-expired"


class BadRootVersionError(CheckFailed):
    """A root in the chain is not exactly one more than the one before (skip or rollback)."""

    code = "root-version"


class RootContinuityError(CheckFailed):
    """Root N+1 breaks a rule tying it to root N (docs/trust.md 5.5 step 4).

    The registry name, the public key each key id names, and every revocation are fixed; a new
    revocation takes effect by its version's expiry and names only plugins the key was delegated.
    """

    code = "root-continuity"


class PluginNameMismatchError(CheckFailed):
    """The signed manifest names another plugin than the one being verified."""

    code = "plugin-name-mismatch"


class InvalidPluginNameError(CheckFailed):
    """A release is verified under a name that is not a plugin name (no delegation can cover it)."""

    code = "invalid-plugin-name"


# --------------------------------------------------------------------------- helpers


def parse_time(value: str, *, where: Location | None = None) -> datetime:
    """An RFC 3339 UTC time with a ``Z`` suffix, second precision; else ``root-format``."""
    try:
        moment = parse_time_strict(value)  # strptime alone accepts 2026-1-5T1:2:3Z
        if moment is None:
            raise ValueError(value)
        return moment
    except ValueError:
        raise RootFormatError(
            f"'{value}' is not a valid RFC 3339 UTC time",
            where=where,
            fix="write times like 2026-11-21T12:00:00Z (UTC, seconds, Z suffix)",
        ) from None


def format_time(value: datetime) -> str:
    """``value`` as the documents write times (``2026-11-21T12:00:00Z``)."""
    return _format_time(value)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise UsageError("'now' must be a timezone-aware datetime", fix="pass datetime.now(UTC)")
    return now


def pattern_matches(pattern: str, plugin: str) -> bool:
    """A delegation pattern: an exact name, ``prefix*`` (prefix match), or ``*`` (every plugin)."""
    if pattern.endswith("*"):
        return plugin.startswith(pattern[:-1])
    return plugin == pattern


def pattern_within(inner: str, outer: str) -> bool:
    """Whether every plugin name pattern ``inner`` matches is also matched by pattern ``outer``."""
    if outer.endswith("*"):
        return (inner[:-1] if inner.endswith("*") else inner).startswith(outer[:-1])
    return inner == outer


ROOT_SCHEMA = "root.schema.json"


@cache
def root_schema() -> dict[str, Any]:
    here = Path(__file__).resolve().parent
    for candidate in (
        here.parent / "schemas" / ROOT_SCHEMA,
        here.parents[1] / "schemas" / ROOT_SCHEMA,
    ):
        if candidate.is_file():
            loaded: dict[str, Any] = json.loads(candidate.read_text(encoding="utf-8"))
            return loaded
    raise UsageError(
        "schemas/root.schema.json is missing from the installation", fix="reinstall registry-tool"
    )


def load_json_strict(data: bytes, *, where: str | None = None) -> Any:
    """The format's strict JSON (no BOM, duplicates, NaN, huge integers, lone surrogates, deep nesting)."""
    try:
        return load_strict(data, where=where or "root metadata")
    except DocumentError as exc:
        raise RootFormatError(
            f"not valid root JSON: {exc.what}", where=where, fix="restore the file"
        ) from None


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Revocation:
    """A revoked key: since which root version and time, and which plugins' prior releases stay valid."""

    key: PublicKey
    revoked_in_version: int
    revoked_at: datetime
    keep_prior_releases: bool
    plugins: tuple[str, ...]
    reason: str = ""

    def covers(self, plugin: str) -> bool:
        """Whether the revocation's plugin patterns cover ``plugin``."""
        return any(pattern_matches(p, plugin) for p in self.plugins)

    @property
    def summary(self) -> str:
        """The revocation as error messages state it (which key, in which version, when)."""
        return (
            f"key {self.key.key_id} was revoked in root version {self.revoked_in_version} "
            f"at {format_time(self.revoked_at)}"
        )


@dataclass(frozen=True)
class Maintainer:
    """A maintainer: their keys and the plugin names or patterns delegated to them."""

    id: str
    keys: tuple[PublicKey, ...]
    plugins: tuple[str, ...]

    def covers(self, plugin: str) -> bool:
        """Whether ``plugin`` is delegated to this maintainer."""
        return any(pattern_matches(p, plugin) for p in self.plugins)


@dataclass(frozen=True)
class Root:
    """One version of the root metadata, parsed and checked; ``raw`` is the exact signed bytes."""

    raw: bytes
    data: dict[str, Any]
    registry: str
    version: int
    expires: datetime
    keys: dict[str, PublicKey]
    roles: dict[str, Role]
    maintainers: dict[str, Maintainer]
    plugin_thresholds: dict[str, int]
    revoked: tuple[Revocation, ...] = field(default=())
    # sha256 of the registry.toml this root authorises (None: the root pins none).
    registry_config_sha256: str | None = None
    # Per plugin name: the keys that may sign its releases and the refusals of every other
    # maintainer and role key.  These depend on this root and the plugin only, so a site's
    # releases share them; the revoked keys' part depends on each release's publication time
    # and is added per call.  Kept on the instance: another root never sees this one's entries.
    _release_parts: dict[str, tuple[tuple[PublicKey, ...], tuple[Candidate, ...], Role | None]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def parse(cls, data: bytes, *, where: str | None = None, schema_checked: bool = False) -> Root:
        """Strictly parse root metadata: JSON, schema, then the semantic rules of docs/trust.md.

        ``schema_checked``: the caller checked these exact bytes against the schema before (the
        builder's cache records the sha256 of the roots it parsed): only the schema step is left
        out, the JSON and semantic rules still run.
        """
        if len(data) > MAX_ROOT_BYTES:
            raise RootFormatError(
                f"root metadata is larger than {MAX_ROOT_BYTES} bytes", where=where, fix="restore the file"
            )
        doc = load_json_strict(data, where=where)
        if not schema_checked:
            _schema_check(doc, where)
        return _build(data, doc, where)

    def is_expired(self, now: datetime) -> bool:
        """Whether the root has expired at ``now`` (timezone-aware)."""
        return _aware(now) >= self.expires

    def revocation_for(self, key: PublicKey) -> Revocation | None:
        """The revocation of ``key``, if this root revokes it."""
        return next((r for r in self.revoked if r.key.raw == key.raw), None)

    def _revoked_candidates(self) -> tuple[Candidate, ...]:
        return tuple(
            Candidate(
                r.key,
                RevokedKeyError(r.summary, fix="sign with a current key"),
            )
            for r in self.revoked
        )

    def role(self, name: str) -> Role:
        """The ``root`` or ``index`` role; revoked keys are recognised and refused by name."""
        base = self.roles[name]
        return Role(base.name, base.keys, base.threshold, self._revoked_candidates())

    def threshold_for(self, plugin: str) -> int:
        """How many distinct maintainer keys must sign a release of ``plugin`` (default 1)."""
        return self.plugin_thresholds.get(plugin, 1)

    def delegated_keys(self, plugin: str) -> list[PublicKey]:
        """Every key of every maintainer ``plugin`` is delegated to, each once."""
        keys: dict[bytes, PublicKey] = {}
        for m in self.maintainers.values():
            if m.covers(plugin):
                for k in m.keys:
                    keys.setdefault(k.raw, k)
        return list(keys.values())

    def delegation_of(self, key: PublicKey) -> tuple[str, ...]:
        """The plugin patterns of every maintainer holding ``key`` (its raw key), each once, in order."""
        patterns: dict[str, None] = {}
        for m in self.maintainers.values():
            if any(k.raw == key.raw for k in m.keys):
                patterns.update(dict.fromkeys(m.plugins))
        return tuple(patterns)

    def key_ids(self) -> dict[str, PublicKey]:
        """Every key id this root names (``keys`` and ``revoked``) with its public key."""
        ids = dict(self.keys)
        for r in self.revoked:
            ids.setdefault(r.key.key_id, r.key)
        return ids

    def release_role(self, plugin: str, published_at: datetime | None, *, yank: bool = False) -> Role:
        """The keys that may sign ``plugin``'s releases, and why every other known key may not.

        ``yank``: the role judges a yank (its signatures never count once their key is revoked,
        ``published_at`` is None) and a revoked key's refusal says how to re-sign one.
        """
        parts = self._release_parts.get(plugin)
        if parts is None:
            parts = self._release_parts.setdefault(plugin, self._plugin_parts(plugin))
        delegated, refused, whole = parts
        if whole is not None:  # no revoked key: the role is the same for every release
            return whole
        kept: list[PublicKey] = []
        revoked: list[Candidate] = []
        for r in self.revoked:
            why = _kept_release_refusal(r, plugin, published_at)
            if why is None:
                kept.append(r.key)
                continue
            revoked.append(
                Candidate(
                    r.key,
                    RevokedKeyError(
                        f"{r.summary}; {why}",
                        fix="have a current maintainer of the plugin re-sign the yank "
                        "(`registry-tool sign RELEASE_DIR --yank --key KEY`)"
                        if yank
                        else "have a current maintainer of the plugin re-sign the release",
                    ),
                )
            )
        return Role(
            f"maintainer of '{plugin}'",
            delegated + tuple(kept),
            self.threshold_for(plugin),
            refused + tuple(revoked),
        )

    def _plugin_parts(self, plugin: str) -> tuple[tuple[PublicKey, ...], tuple[Candidate, ...], Role | None]:
        delegated = self.delegated_keys(plugin)
        allowed = {k.raw for k in delegated}
        refused: list[Candidate] = []
        for m in self.maintainers.values():
            for k in m.keys:
                if k.raw not in allowed:
                    refused.append(
                        Candidate(
                            k,
                            UnauthorizedSignerError(
                                f"key {k.key_id} (maintainer '{m.id}') is delegated for "
                                f"{', '.join(m.plugins)}, not for plugin '{plugin}'",
                                fix="ask the registry owners to delegate the plugin to this key "
                                "(`registry-tool root add-maintainer`), or sign with a delegated key",
                            ),
                        )
                    )
        for role in self.roles.values():
            for k in role.keys:
                if k.raw not in allowed:
                    refused.append(
                        Candidate(
                            k,
                            UnauthorizedSignerError(
                                f"key {k.key_id} is in the {role.name}, which cannot sign plugin releases",
                                fix="sign releases with a maintainer key delegated for the plugin",
                            ),
                        )
                    )
        keys, refusals = tuple(delegated), tuple(refused)
        whole = None
        if not self.revoked:
            whole = Role(f"maintainer of '{plugin}'", keys, self.threshold_for(plugin), refusals)
        return keys, refusals, whole


def _kept_release_refusal(r: Revocation, plugin: str, published_at: datetime | None) -> str | None:
    """None if a release of ``plugin`` signed by revoked key ``r`` still counts, else why not."""
    if not r.keep_prior_releases:
        return "the registry did not keep the releases it signed"
    if not r.covers(plugin):
        return f"it was never delegated for plugin '{plugin}'"
    if published_at is None:
        return (
            "the release's publication time is unknown, so it cannot be shown to predate the revocation "
            "(`registry-tool verify` reads no signed time: give one release --published-at, or check a "
            "built site with `registry-tool client verify-site`, which reads its signed publication times)"
        )
    if _aware(published_at) >= r.revoked_at:
        return f"the release was published at {format_time(published_at)}, not before the revocation"
    return None


@cache
def _validator() -> Any:
    from registry_tool.manifest.source import ecma_validator

    return ecma_validator(root_schema(), draft=2020)


def _schema_check(doc: Any, where: str | None) -> None:
    # The validator generated ahead of time (manifest/_schemas/root_schema.py) accepts a valid root
    # in well under a millisecond; building jsonschema's costs ~35 ms of every command that parses
    # a root.  It is never more lenient (tests/manifest/test_schema_fast_path.py): what it refuses,
    # jsonschema decides and explains.
    from registry_tool._toml import nesting_depth
    from registry_tool.manifest.source import MAX_DEPTH, schema_accepts

    if schema_accepts(doc, ROOT_SCHEMA):
        return
    if nesting_depth(doc) > MAX_DEPTH:  # jsonschema recurses (uniqueItems compares nested arrays)
        raise RootFormatError(
            f"root metadata nests values more than {MAX_DEPTH} levels deep",
            where=Location(file=where),
            fix="root metadata nests 4 levels; edit roots with `registry-tool root ...` commands",
        )
    errors = sorted(_validator().iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        first = errors[0]
        path = ".".join(str(p) for p in first.absolute_path) or None
        raise RootFormatError(
            f"root metadata does not match schemas/root.schema.json: {first.message}",
            where=Location(file=where, field=path),
            fix="correct the field; edit roots with `registry-tool root ...` commands",
        )


def _fail(what: str, where: str | None, field_path: str | None = None) -> RootFormatError:
    return RootFormatError(
        what, where=Location(file=where, field=field_path), fix="correct the root metadata"
    )


def _parse_key(text: str, where: str | None, field_path: str) -> PublicKey:
    try:
        return PublicKey.parse(text)
    except CheckFailed as err:
        raise _fail(f"invalid public key: {err.what}", where, field_path) from None


def _strict_fields(doc: dict[str, Any], where: str | None) -> None:
    """What the schema cannot say exactly: patterns matched in full, integers that are ints."""

    def full(regex: re.Pattern[str], value: str, what: str, path: str) -> None:
        if not regex.fullmatch(value):
            raise _fail(f"{what} {value!r} does not match {regex.pattern!r} exactly", where, path)

    def integer(value: Any, path: str) -> None:
        if type(value) is not int:  # JSON Schema's "integer" also admits 2.0
            raise _fail(f"{value!r} is not an integer", where, path)

    full(REGISTRY_NAME_RE, doc["registry"], "registry name", "registry")
    integer(doc["spec_version"], "spec_version")  # const 1 in the schema also admits 1.0
    # The schema's "$" also matches before a final newline: "RW...\n" passed it, and the key
    # parser drops that newline, so Python trusted a root the Go and Rust verifiers refuse.
    for key_id, entry in doc["keys"].items():
        full(PUBLIC_KEY_RE, entry["public_key"], "public key", f"keys.{key_id}.public_key")
    if "registry_config" in doc:
        full(SHA256_RE, doc["registry_config"]["sha256"], "sha256", "registry_config.sha256")
    integer(doc["version"], "version")
    for name in ROLES:
        integer(doc["roles"][name]["threshold"], f"roles.{name}.threshold")
    for mid, m in doc["maintainers"].items():
        full(MAINTAINER_ID_RE, mid, "maintainer id", f"maintainers.{mid}")
        for pattern in m["plugins"]:
            full(PLUGIN_PATTERN_RE, pattern, "plugin pattern", f"maintainers.{mid}.plugins")
    for plugin, k in doc["plugin_thresholds"].items():
        full(PLUGIN_NAME_RE, plugin, "plugin name", f"plugin_thresholds.{plugin}")
        integer(k, f"plugin_thresholds.{plugin}")
    for i, r in enumerate(doc["revoked"]):
        integer(r["revoked_in_version"], f"revoked.{i}.revoked_in_version")
        full(PUBLIC_KEY_RE, r["public_key"], "public key", f"revoked.{i}.public_key")
        for pattern in r["plugins"]:
            full(PLUGIN_PATTERN_RE, pattern, "plugin pattern", f"revoked.{i}.plugins")


def _build(data: bytes, doc: dict[str, Any], where: str | None) -> Root:
    _strict_fields(doc, where)
    keys: dict[str, PublicKey] = {}
    for key_id, entry in doc["keys"].items():
        key = _parse_key(entry["public_key"], where, f"keys.{key_id}.public_key")
        if key.key_id != key_id:
            raise _fail(
                f"key '{key_id}' holds a public key with key id {key.key_id}", where, f"keys.{key_id}"
            )
        keys[key_id] = key

    def resolve(ids: Iterable[str], path: str) -> tuple[PublicKey, ...]:
        missing = [i for i in ids if i not in keys]
        if missing:
            raise _fail(f"unknown key id(s) {', '.join(missing)}", where, path)
        return tuple(keys[i] for i in ids)

    roles: dict[str, Role] = {}
    for name in ROLES:
        spec = doc["roles"][name]
        role_keys = resolve(spec["keyids"], f"roles.{name}.keyids")
        distinct = len({k.raw for k in role_keys})
        if spec["threshold"] > distinct:
            raise _fail(
                f"threshold {spec['threshold']} exceeds the {distinct} distinct key(s) of the {name} role",
                where,
                f"roles.{name}.threshold",
            )
        roles[name] = Role(f"{name} role", role_keys, spec["threshold"])
    maintainers = {
        mid: Maintainer(mid, resolve(m["keyids"], f"maintainers.{mid}.keyids"), tuple(m["plugins"]))
        for mid, m in doc["maintainers"].items()
    }
    # The online index key must not be able to act as root or maintainer: a compromised
    # publish server then cannot forge releases or rotate the root.
    index_raw = {k.raw for k in roles["index"].keys}
    other_raw = {k.raw for k in roles["root"].keys} | {k.raw for m in maintainers.values() for k in m.keys}
    if index_raw & other_raw:
        raise _fail("an index key is also a root or maintainer key", where, "roles.index.keyids")
    revoked: list[Revocation] = []
    all_raw = {k.raw for k in keys.values()}
    for i, r in enumerate(doc["revoked"]):
        path = f"revoked.{i}"
        key = _parse_key(r["public_key"], where, f"{path}.public_key")
        if key.key_id != r["keyid"]:
            raise _fail(
                f"revoked key id {r['keyid']} does not match its public key ({key.key_id})", where, path
            )
        if key.raw in all_raw:
            raise _fail(f"revoked key {key.key_id} is still listed under 'keys'", where, path)
        if any(key.raw == other.key.raw for other in revoked):
            raise _fail(f"key {key.key_id} is revoked twice", where, path)
        # Key ids are chosen by whoever makes the key: one id naming two public keys in one root
        # would let a summary that lists ids show one key while another is trusted.
        if key.key_id in keys or any(key.key_id == other.key.key_id for other in revoked):
            raise _fail(f"key id {key.key_id} names two different public keys", where, path)
        if r["revoked_in_version"] > doc["version"]:
            raise _fail("revoked_in_version is later than this version", where, f"{path}.revoked_in_version")
        at = parse_time(r["revoked_at"], where=Location(file=where, field=f"{path}.revoked_at"))
        revoked.append(
            Revocation(
                key,
                r["revoked_in_version"],
                at,
                r["keep_prior_releases"],
                tuple(r["plugins"]),
                r.get("reason", ""),
            )
        )
    root = Root(
        raw=data,
        data=doc,
        registry=doc["registry"],
        version=doc["version"],
        expires=parse_time(doc["expires"], where=Location(file=where, field="expires")),
        keys=keys,
        roles=roles,
        maintainers=maintainers,
        plugin_thresholds=dict(doc["plugin_thresholds"]),
        revoked=tuple(revoked),
        registry_config_sha256=doc.get("registry_config", {}).get("sha256"),
    )
    for plugin, k in root.plugin_thresholds.items():
        available = len(root.delegated_keys(plugin))
        if k > available:
            raise _fail(
                f"plugin '{plugin}' needs {k} maintainer signatures, only {available} key(s) are delegated",
                where,
                f"plugin_thresholds.{plugin}",
            )
    return root


# --------------------------------------------------------------------------- roots


def _check_expiry(root: Root, now: datetime, where: str | None) -> None:
    if root.is_expired(now):
        raise ExpiredRootError(
            f"root version {root.version} expired at {format_time(root.expires)}",
            where=where,
            fix="the registry owners must publish a new root version (`registry-tool root renew` and sign)",
        )


def verify_root_self(
    root_bytes: bytes, sigs: Sequence[str], now: datetime, *, where: str | None = None
) -> Root:
    """First-use pinning: the root is signed by a threshold of its own root keys and not expired."""
    root = Root.parse(root_bytes, where=where)
    verify_threshold(root.role("root"), root_bytes, sigs, subject=f"root version {root.version}", where=where)
    _check_expiry(root, now, where)
    return root


def _check_continuity(prev: Root, nxt: Root, where: str | None) -> None:
    """The rules of docs/trust.md 5.5 step 4 tying root N+1 to root N (all ``root-continuity``)."""

    def refuse(what: str, fix: str) -> RootContinuityError:
        return RootContinuityError(f"root version {nxt.version} {what}", where=where, fix=fix)

    if nxt.registry != prev.registry:
        raise RootContinuityError(
            f"root version {nxt.version} is for registry '{nxt.registry}', not '{prev.registry}'",
            where=where,
            fix="a registry keeps its name for the whole root chain; this file belongs to another registry",
        )
    # A key id is chosen by whoever makes the key, so it can be copied: the same id naming another
    # public key would swap a trusted key while every id-based summary stays the same.
    new_ids = nxt.key_ids()
    for key_id, old_key in prev.key_ids().items():
        new_key = new_ids.get(key_id)
        if new_key is not None and new_key.raw != old_key.raw:
            raise refuse(
                f"binds key id {key_id} to another public key ({new_key.to_base64()}; "
                f"version {prev.version} has {old_key.to_base64()})",
                "a key id names one public key for the whole chain; a new key gets a new key id "
                "(`registry-tool key generate`)",
            )
    for old in prev.revoked:
        new = nxt.revocation_for(old.key)
        if (
            new is None
            or new.key.key_id != old.key.key_id
            or new.revoked_at != old.revoked_at
            or new.revoked_in_version != old.revoked_in_version
            or set(new.plugins) != set(old.plugins)
        ):
            raise refuse(
                f"drops or alters the revocation of key {old.key.key_id}",
                "revocations are permanent; keep every entry of the previous version as it is "
                "(only its reason may change, and keep_prior_releases from true to false)",
            )
        if new.keep_prior_releases and not old.keep_prior_releases:
            raise refuse(
                f"re-validates releases of revoked key {old.key.key_id}",
                "keep_prior_releases can only change from true to false",
            )
    for new in nxt.revoked:
        if prev.revocation_for(new.key) is not None:
            continue
        if new.revoked_in_version != nxt.version:
            raise RootContinuityError(
                f"new revocation of key {new.key.key_id} says revoked_in_version {new.revoked_in_version}",
                where=where,
                fix=f"set revoked_in_version to {nxt.version}",
            )
        if new.revoked_at > nxt.expires:
            raise refuse(
                f"revokes key {new.key.key_id} as of {format_time(new.revoked_at)}, after the version "
                f"itself expires ({format_time(nxt.expires)})",
                "a revocation takes effect when it is made: set revoked_at to the time of the revocation",
            )
        # A revocation that keeps prior releases lets the key's signatures count for its plugins
        # (before revoked_at): it may name only plugins the key was delegated, never grant more.
        delegated = prev.delegation_of(new.key)
        wider = [p for p in new.plugins if not any(pattern_within(p, d) for d in delegated)]
        if wider:
            raise refuse(
                f"revokes key {new.key.key_id} for plugins {', '.join(wider)}, which version "
                f"{prev.version} did not delegate to it (delegated: {', '.join(delegated) or 'none'})",
                "a revocation lists the plugins the key was delegated for (`registry-tool root revoke` "
                "writes them); it never delegates anything",
            )


def check_root_successor(prev: Root, nxt: Root, *, where: str | None = None) -> None:
    """Every rule of a chain step from ``prev`` to ``nxt`` but the signatures: version N+1, continuity."""
    if nxt.version != prev.version + 1:
        raise BadRootVersionError(
            f"expected root version {prev.version + 1} after {prev.version}, got {nxt.version}",
            where=where,
            fix="publish every root version; a client walks them one by one",
        )
    _check_continuity(prev, nxt, where)


def _root_role(root: Root) -> Role:
    """The root role, named with its version: a chain step's errors say which version's keys failed."""
    return replace(root.role("root"), name=f"root role of version {root.version}")


def authenticate_root_candidate(
    prev: Root, raw: bytes, sigs: Sequence[str], *, where: str | None = None
) -> set[str]:
    """Before root N+1 is parsed: at least one key of root N's root role signed its raw bytes.

    Necessary, not sufficient (``verify_root_step`` checks both thresholds after parsing); it keeps
    a server that holds no root key from making a client parse (or fetch past) its candidates.
    """
    role = _root_role(prev)
    tally = tally_signatures(raw, sigs, role)
    if not tally.counted:
        require_threshold(tally, role, f"root version {prev.version + 1}", where)
    return tally.key_ids


def verify_root_step(
    prev: Root, raw: bytes, sigs: Sequence[str], *, where: str | None = None, schema_checked: bool = False
) -> Root:
    """Accept root N+1 given trusted root N: exact version, continuity, both thresholds.

    The candidate comes from an untrusted server and its signatures are detached, so they are
    checked against root N's keys before the candidate is parsed at all: parsing (schema,
    delegation checks) must not be work that a server holding no root key can demand.  A
    candidate that no key of root N signed is refused unparsed; the full check below (both
    thresholds, with the candidate's own revocations applied) decides everything else.
    ``schema_checked`` is passed to ``Root.parse``.
    """
    authenticate_root_candidate(prev, raw, sigs, where=where)
    nxt = Root.parse(raw, where=where, schema_checked=schema_checked)
    check_root_successor(prev, nxt, where=where)
    # Keys the new version revokes count for nothing, not even for the old threshold.
    revoked_now = {r.key.raw for r in nxt.revoked}
    old = _root_role(prev)
    old_role = replace(
        old,
        keys=tuple(k for k in old.keys if k.raw not in revoked_now),
        refused=nxt._revoked_candidates() + old.refused,
    )
    new_role = _root_role(nxt)
    subject = f"root version {nxt.version}"
    # Both the old and the new root role must sign a rotation.
    verify_threshold(old_role, raw, sigs, subject=subject, where=where)
    verify_threshold(new_role, raw, sigs, subject=subject, where=where)
    return nxt


def verify_root_chain(
    trusted: bytes,
    candidates: Sequence[tuple[bytes, Sequence[str]]],
    now: datetime,
    *,
    names: Sequence[str] | None = None,
    on_step: Callable[[Root], None] | None = None,
) -> Root:
    """Walk trusted root N -> N+1 -> ...; intermediate roots may be expired, the final one may not."""
    current = Root.parse(trusted, where=names[0] if names else None)
    for i, (raw, sigs) in enumerate(candidates):
        where = names[i + 1] if names and len(names) > i + 1 else None
        current = verify_root_step(current, raw, sigs, where=where)
        if on_step:
            on_step(current)
    _check_expiry(current, now, names[-1] if names else None)
    return current


# --------------------------------------------------------------------------- index and releases


def verify_index_signatures(
    root: Root, registry_json: bytes, sigs: Sequence[str], *, where: str | None = None
) -> set[str]:
    """registry.json must carry a threshold of the index role's keys."""
    return verify_threshold(root.role("index"), registry_json, sigs, subject="registry.json", where=where)


def _verify_maintainer_signed(
    root: Root,
    plugin_name: str,
    data: bytes,
    sigs: Sequence[str],
    now: datetime,
    published_at: datetime | None,
    table: str,
    where: str | None,
    parsed: ParsedIdentity | None = None,
) -> set[str]:
    _check_expiry(root, now, None)
    if not PLUGIN_NAME_RE.fullmatch(plugin_name):
        # A prefix delegation ("json-*") must not cover "json-x\n" or "json-\u0445": no such plugin.
        raise InvalidPluginNameError(
            f"{plugin_name!r} is not a plugin name (^[a-z][a-z0-9_-]{{1,63}}$), so no delegation covers it",
            where=where,
            fix="plugin names are lower-case ASCII letters, digits, '_' and '-'",
        )
    name, version = identity_of(data, parsed, where=where, table=table)
    if name != plugin_name:
        raise PluginNameMismatchError(
            f"the signed {table}.name is '{name}', but it is being verified as plugin '{plugin_name}'",
            where=Location(file=where, field=f"{table}.name"),
            fix="a release lives under plugins/<name>/<version>/ with the same name in its manifest",
        )
    role = root.release_role(plugin_name, published_at, yank=table == "yank")

    def names_this_release(verified: VerifiedSignature) -> None:
        check_trusted_comment(verified.trusted_comment, name, version, where=where)

    subject = f"{table}.toml of '{plugin_name}' {version}"
    return verify_threshold(role, data, sigs, subject=subject, where=where, each=names_this_release)


def verify_release_signatures(
    root: Root,
    plugin_name: str,
    manifest_bytes: bytes,
    sigs: Sequence[str],
    now: datetime,
    *,
    published_at: datetime | None = None,
    where: str | None = None,
    identity: ParsedIdentity | None = None,
) -> set[str]:
    """Key ids of the delegated, unrevoked maintainers whose signatures meet the plugin's threshold.

    ``published_at`` (from the registry's history) lets signatures by a key revoked later count,
    only where the revocation keeps prior releases.  ``identity``: the ``[plugin]`` name and
    version a caller already parsed from exactly ``manifest_bytes`` (the build's manifest
    parser), so they are not parsed again; refused if it was read from other bytes.  Without
    it the bytes are parsed here (the client and every other caller).
    """
    return _verify_maintainer_signed(
        root, plugin_name, manifest_bytes, sigs, now, published_at, "plugin", where, identity
    )


def verify_yank_signatures(
    root: Root,
    plugin_name: str,
    yank_bytes: bytes,
    sigs: Sequence[str],
    now: datetime,
    *,
    version: str | None = None,
    where: str | None = None,
) -> set[str]:
    """A yank needs the same delegation and threshold as a release of the plugin.

    ``version``, when given, is the release the yank is found with; the signed ``[yank] version``
    must be it (a valid yank of 1.0.0 cannot be copied next to 2.0.0).
    """
    name, yanked = manifest_identity(yank_bytes, where=where, table="yank")
    if version is not None and yanked != version:
        raise PluginNameMismatchError(
            f"the signed yank.version is '{yanked}', but it is next to release {version}",
            where=Location(file=where, field="yank.version"),
            fix="a yank.toml names the release of its own directory",
        )
    # Parsed once here: the shared check below uses this identity of the same bytes.
    parsed = ParsedIdentity(name, yanked, yank_bytes, "yank")
    return _verify_maintainer_signed(root, plugin_name, yank_bytes, sigs, now, None, "yank", where, parsed)


__all__ = [
    "BadRootVersionError",
    "BadSignatureError",
    "Candidate",
    "ExpiredRootError",
    "InvalidPluginNameError",
    "LegacySignatureError",
    "Maintainer",
    "MalformedSignatureError",
    "PluginNameMismatchError",
    "RegistryToolError",
    "Revocation",
    "RevokedKeyError",
    "Role",
    "Root",
    "RootContinuityError",
    "RootFormatError",
    "Tally",
    "ThresholdNotMetError",
    "UnauthorizedSignerError",
    "authenticate_root_candidate",
    "check_root_successor",
    "format_time",
    "parse_time",
    "pattern_matches",
    "pattern_within",
    "tally_signatures",
    "verify_index_signatures",
    "verify_release_signatures",
    "verify_root_chain",
    "verify_root_self",
    "verify_root_step",
    "verify_threshold",
    "verify_yank_signatures",
]
