"""Editing root metadata: every edit yields a new, *unsigned* version that needs its thresholds.

The document transforms are pure (``Root`` in, bytes out, validated by ``Root.parse``); the
``*_dir`` functions at the bottom are the file-system edge used by the CLI.
"""

from __future__ import annotations

import copy
import hashlib
import json
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from registry_tool._files import read_bounded, write_replacing
from registry_tool.errors import CheckFailed, UsageError
from registry_tool.format.rules import MAX_ROOT_BYTES, root_file_version
from registry_tool.signing.minisign import PublicKey, SecretKey, sign_bytes
from registry_tool.signing.release import keyed_signature_path, read_root_signatures, signature_paths
from registry_tool.trust.root import (
    ROOT_TYPE,
    SPEC_VERSION,
    Root,
    check_root_successor,
    format_time,
    verify_root_chain,
    verify_root_self,
    verify_root_step,
)
from registry_tool.trust.summary import future_revocations, revocation_text, root_changes

Doc = dict[str, Any]
DEFAULT_ROOT_VALIDITY = timedelta(days=365)


class RootEditError(UsageError):
    """The requested root edit is impossible or would produce invalid metadata."""

    code = "root-edit"


class RootStoreError(CheckFailed):
    """The root/ directory is inconsistent (missing versions, stray files)."""

    code = "root-store"


def dump_root(doc: Doc) -> bytes:
    """Stable, readable JSON; any formatting verifies since signatures cover the exact bytes."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _key_entry(key: PublicKey, comment: str | None = None) -> dict[str, str]:
    entry = {"public_key": key.to_base64()}
    if comment:
        entry["comment"] = comment
    return entry


def _add_key(doc: Doc, key: PublicKey, comment: str | None = None) -> str:
    existing = doc["keys"].get(key.key_id)
    if existing is not None and PublicKey.parse(existing["public_key"]).raw != key.raw:
        raise RootEditError(
            f"key id {key.key_id} is already used by a different public key",
            fix="generate a new key (key ids are random; a collision is suspicious)",
        )
    for revoked in doc["revoked"]:
        if PublicKey.parse(revoked["public_key"]).raw == key.raw:
            raise RootEditError(
                f"key {key.key_id} was revoked and cannot be added again", fix="use a new key"
            )
    doc["keys"].setdefault(key.key_id, _key_entry(key, comment))
    return key.key_id


def new_root(
    registry: str,
    root_keys: Sequence[PublicKey],
    index_keys: Sequence[PublicKey],
    *,
    root_threshold: int = 1,
    index_threshold: int = 1,
    expires: datetime,
) -> bytes:
    """Version 1 of a registry's root."""
    doc: Doc = {
        "_type": ROOT_TYPE,
        "spec_version": SPEC_VERSION,
        "registry": registry,
        "version": 1,
        "expires": format_time(expires),
        "keys": {},
        "roles": {},
        "maintainers": {},
        "plugin_thresholds": {},
        "revoked": [],
    }
    doc["roles"]["root"] = {"keyids": [_add_key(doc, k) for k in root_keys], "threshold": root_threshold}
    doc["roles"]["index"] = {"keyids": [_add_key(doc, k) for k in index_keys], "threshold": index_threshold}
    return _validated(doc)


def _validated(doc: Doc) -> bytes:
    data = dump_root(doc)
    try:
        Root.parse(data)
    except CheckFailed as err:
        raise RootEditError(
            f"the edit would produce invalid root metadata: {err.what}", fix=err.fix
        ) from None
    return data


def derive(
    root: Root, edit: Callable[[Doc], None], *, expires: datetime | None = None, bump: bool = True
) -> bytes:
    """Apply ``edit`` to a copy of ``root`` as version N+1 (or N when amending an unsigned version)."""
    doc = copy.deepcopy(root.data)
    if bump:
        doc["version"] = root.version + 1
    if expires is not None:
        doc["expires"] = format_time(expires)
    edit(doc)
    return _validated(doc)


def add_maintainer(
    maintainer_id: str, keys: Sequence[PublicKey], plugins: Sequence[str], threshold: int | None = None
) -> Callable[[Doc], None]:
    """Delegate ``plugins`` (names or ``prefix*`` patterns) to a maintainer's keys (merging if known)."""

    def edit(doc: Doc) -> None:
        entry = doc["maintainers"].setdefault(maintainer_id, {"keyids": [], "plugins": []})
        for key in keys:
            key_id = _add_key(doc, key)
            if key_id not in entry["keyids"]:
                entry["keyids"].append(key_id)
        for plugin in plugins:
            if plugin not in entry["plugins"]:
                entry["plugins"].append(plugin)
        if threshold is not None:
            for plugin in plugins:
                if "*" in plugin:
                    raise RootEditError("a plugin threshold needs exact plugin names", fix="drop the pattern")
                doc["plugin_thresholds"][plugin] = threshold

    return edit


def set_plugin_threshold(plugin: str, threshold: int) -> Callable[[Doc], None]:
    """An edit setting how many maintainer keys must sign ``plugin``'s releases (1 removes it)."""

    def edit(doc: Doc) -> None:
        if threshold == 1:
            doc["plugin_thresholds"].pop(plugin, None)
        else:
            doc["plugin_thresholds"][plugin] = threshold

    return edit


def pin_registry_config(config_bytes: bytes) -> Callable[[Doc], None]:
    """An edit pinning registry.toml's sha256 in the root.

    ``ci check`` accepts a change to registry.toml only when a root (signed by the root threshold)
    pins the new bytes' digest, because it defines permissions and limits.
    """
    digest = hashlib.sha256(config_bytes).hexdigest()

    def edit(doc: Doc) -> None:
        doc["registry_config"] = {"sha256": digest}

    return edit


def _drop_key(doc: Doc, key_id: str) -> None:
    for role in doc["roles"].values():
        if key_id in role["keyids"]:
            role["keyids"].remove(key_id)
    for mid in list(doc["maintainers"]):
        entry = doc["maintainers"][mid]
        if key_id in entry["keyids"]:
            entry["keyids"].remove(key_id)
        if not entry["keyids"]:
            del doc["maintainers"][mid]
    still_used = any(key_id in r["keyids"] for r in doc["roles"].values()) or any(
        key_id in m["keyids"] for m in doc["maintainers"].values()
    )
    if not still_used:
        doc["keys"].pop(key_id, None)


def revoke(
    key_id: str, *, now: datetime, keep_prior_releases: bool, reason: str = ""
) -> Callable[[Doc], None]:
    """Revoke a key everywhere; it keeps its delegation only to judge releases made before ``now``."""

    def edit(doc: Doc) -> None:
        entry = doc["keys"].get(key_id)
        if entry is None:
            raise RootEditError(
                f"no key {key_id} in the root", fix="list keys with `registry-tool root verify`"
            )
        plugins = sorted(
            {p for m in doc["maintainers"].values() if key_id in m["keyids"] for p in m["plugins"]}
        )
        for role_name, role in doc["roles"].items():
            if key_id in role["keyids"] and len(role["keyids"]) - 1 < role["threshold"]:
                raise RootEditError(
                    f"revoking {key_id} leaves the {role_name} role below its threshold {role['threshold']}",
                    fix=f"first add a replacement: `registry-tool root rotate-keys --role {role_name} --add`",
                )
        _drop_key(doc, key_id)
        doc["keys"].pop(key_id, None)
        record: dict[str, Any] = {
            "keyid": key_id,
            "public_key": entry["public_key"],
            "revoked_in_version": doc["version"],
            "revoked_at": format_time(now),
            "keep_prior_releases": keep_prior_releases,
            "plugins": plugins,
        }
        if reason:
            record["reason"] = reason
        doc["revoked"].append(record)

    return edit


def rotate_keys(
    role: str, *, add: Sequence[PublicKey] = (), remove: Sequence[str] = (), threshold: int | None = None
) -> Callable[[Doc], None]:
    """Add/remove keys of the root or index role (removal is not revocation) and set its threshold."""
    if role not in ("root", "index"):
        raise RootEditError(f"unknown role '{role}'", fix="use --role root or --role index")

    def edit(doc: Doc) -> None:
        spec = doc["roles"][role]
        for key_id in remove:
            if key_id not in spec["keyids"]:
                raise RootEditError(f"key {key_id} is not in the {role} role", fix="check the key id")
        for key in add:
            key_id = _add_key(doc, key)
            if key_id not in spec["keyids"]:
                spec["keyids"].append(key_id)
        for key_id in remove:
            _drop_key(doc, key_id)
        if threshold is not None:
            spec["threshold"] = threshold

    return edit


def renew() -> Callable[[Doc], None]:
    """No change but the version (and the expiry given to ``derive``)."""

    def edit(doc: Doc) -> None:
        return None

    return edit


# --------------------------------------------------------------------------- the root/ directory


def root_versions(root_dir: Path) -> list[tuple[int, Path]]:
    """``root/<N>.root.json`` files, sorted; versions must be 1..N without gaps."""
    if not root_dir.is_dir():
        raise UsageError(
            f"{root_dir} is not a directory",
            fix="point at the index's root/ folder (the root commands take it as --dir, e.g. "
            "--dir index/root), or create one with `registry-tool root init`",
        )
    found = sorted((n, p) for p in root_dir.iterdir() if (n := root_file_version(p.name)) is not None)
    for _, path in found:
        # A directory, FIFO or device under a root file's name is not an absent version: refuse it.
        mode = path.stat().st_mode if path.exists() else 0
        if not stat.S_ISREG(mode):
            raise RootStoreError(
                f"{path.name} is not a regular file",
                where=str(path),
                fix="replace it with the root metadata file (every root version stays published)",
            )
    if not found:
        raise UsageError(
            f"no root metadata in {root_dir}",
            fix="point at the index's root/ folder (the root commands take it as --dir, e.g. "
            "--dir index/root), or create one with `registry-tool root init`",
        )
    for expected, (n, path) in enumerate(found, start=1):
        if n != expected:
            raise RootStoreError(
                f"root version {expected} is missing (found {path.name})",
                where=str(root_dir),
                fix="every version must stay published so clients can walk the chain",
            )
    return found


def init_root_dir(root_dir: Path, data: bytes) -> Path:
    """Write version 1 of the root metadata into an empty ``root_dir``; returns the file written."""
    root_dir.mkdir(parents=True, exist_ok=True)
    if any(root_file_version(p.name) is not None for p in root_dir.iterdir()):
        raise RootEditError(
            f"{root_dir} already holds root metadata", fix="edit it with `registry-tool root ...`"
        )
    target = root_dir / "1.root.json"
    write_replacing(target, data)
    return target


def edit_root_dir(
    root_dir: Path,
    edit: Callable[[Doc], None],
    *,
    expires: datetime | None = None,
    now: datetime | None = None,
) -> Path:
    """Write the next version; an unsigned latest version is amended in place instead of bumped."""
    versions = root_versions(root_dir)
    latest_n, latest_path = versions[-1]
    latest = Root.parse(latest_path.read_bytes(), where=str(latest_path))
    signed = signature_paths(latest_path)
    amend = not signed
    if signed:
        _require_valid(versions, latest_path)
    if expires is None and latest.is_expired(now or datetime.now(UTC)):
        expires = (now or datetime.now(UTC)) + DEFAULT_ROOT_VALIDITY
    data = derive(latest, edit, expires=expires, bump=not amend)
    before = latest if not amend else _parsed(versions[-2][1]) if len(versions) > 1 else None
    if before is not None:
        try:  # an edit never yields a version no root key could sign (sign_root_dir refuses it)
            check_root_successor(before, Root.parse(data))
        except CheckFailed as err:
            raise RootEditError(
                f"the edit would make a version that is no valid step after version {before.version}: "
                f"{err.what}",
                fix=err.fix,
            ) from None
    target = latest_path if amend else root_dir / f"{latest_n + 1}.root.json"
    write_replacing(target, data)  # never through a link planted at the name
    return target


def _require_valid(versions: list[tuple[int, Path]], path: Path) -> None:
    """A partly signed version must be finished first: a new version on top of it could never verify."""
    data, sigs = path.read_bytes(), read_root_signatures(path)
    try:
        if len(versions) == 1:
            verify_root_self(data, sigs, _never_expired(), where=str(path))
        else:
            verify_root_step(Root.parse(versions[-2][1].read_bytes()), data, sigs, where=str(path))
    except CheckFailed as err:
        raise RootEditError(
            f"{path.name} is partly signed and not valid yet ({err.what})",
            where=str(path),
            fix="collect its remaining signatures with `registry-tool root sign`, "
            "or delete its .minisig files to amend it",
        ) from None


@dataclass(frozen=True)
class RootToSign:
    """A root version reviewed for signing: its exact bytes and what it changes.

    ``changes`` are the lines of ``trust.summary.root_changes`` against the previous version (the
    same text ``root verify`` and ``ci check`` show); ``fingerprint`` is the sha256 of
    ``root/1.root.json``, the anchor every client pins.
    """

    version: int
    path: Path
    data: bytes
    root: Root
    previous: Root | None
    changes: list[str]
    fingerprint: str


def review_root_version(
    root_dir: Path, *, version: int | None = None, now: datetime | None = None
) -> RootToSign:
    """What ``root sign`` would sign: the latest (or given) version, refused unless it is a valid step.

    A root signature covers bytes, not a file name: a document saying version 2 signed as
    ``3.root.json`` is a valid version 2 for any mirror to serve.  So the document must say version
    N (its file name), the versions before it must verify (its changes are read against an
    authentic version N-1), and it must be a valid next step after N-1: every rule of
    ``verify_root_step`` but the signatures being complete.  With ``now`` (the CLI passes the
    clock; library callers may work in another time), a revocation it introduces may not be dated
    after ``now``: until then the revoked key would still sign releases.
    """
    versions = dict(root_versions(root_dir))
    n = version if version is not None else max(versions)  # 0 is no version, not "the latest"
    if n not in versions:
        raise UsageError(f"no root version {n} in {root_dir}", fix="pick an existing version")
    path = versions[n]
    data = _read_root_file(path)
    root = Root.parse(data, where=str(path))
    if root.version != n:
        raise RootEditError(
            f"{path.name} holds root version {root.version}, not {n}; a signature on it would make it a "
            f"valid version {root.version} for anyone who serves it as {root.version}.root.json",
            where=str(path),
            fix=f'sign only a document that says "version": {n} in {n}.root.json; this file is not that',
        )
    previous = None
    if n > 1:
        try:
            previous = verify_root_dir_upto(root_dir, n - 1)
        except CheckFailed as err:
            raise RootEditError(
                f"refusing to sign {path.name}: root version {n - 1} does not verify: "
                f"[{err.code}] {err.what}",
                where=str(path),
                fix=f"versions 1 to {n - 1} must verify first (the changes are read against version "
                f"{n - 1}); restore them or finish their signatures "
                f"({err.fix or 'see `registry-tool root verify`'})",
            ) from None
        try:
            check_root_successor(previous, root, where=str(path))
        except CheckFailed as err:
            raise RootEditError(
                f"refusing to sign {path.name}: it is not a valid next step after version {n - 1}: "
                f"[{err.code}] {err.what}",
                where=str(path),
                fix=err.fix,
            ) from None
    ahead = future_revocations(previous, root, now) if now is not None else []
    if ahead:
        raise RootEditError(
            f"refusing to sign {path.name}: {revocation_text(ahead[0], now)}",
            where=str(path),
            fix="a revocation takes effect when it is made: set revoked_at to the time of the revocation "
            "(`registry-tool root revoke` does)",
        )
    first = data if n == 1 else _read_root_file(versions[1])
    return RootToSign(
        n,
        path,
        data,
        root,
        previous,
        root_changes(previous, root, now=now),
        hashlib.sha256(first).hexdigest(),
    )


def sign_root_dir(
    root_dir: Path,
    secret: SecretKey,
    *,
    version: int | None = None,
    now: datetime | None = None,
    reviewed: RootToSign | None = None,
) -> Path:
    """Add one root key's signature to the latest (or given) version: ``<N>.root.json.<KEYID>.minisig``.

    The version is reviewed first (``review_root_version``: refused unless it says version N and is a
    valid step after N-1), or ``reviewed`` is that review, made before (the CLI shows its changes
    before it asks for the key's passphrase); the signature covers the reviewed bytes.
    """
    review = reviewed or review_root_version(root_dir, version=version, now=now)
    n, path, root = review.version, review.path, review.root
    eligible = {k.raw for k in root.roles["root"].keys}
    if review.previous is not None:
        eligible |= {k.raw for k in review.previous.roles["root"].keys}
    if secret.public_key.raw not in eligible:
        raise RootEditError(
            f"key {secret.key_id} is not a root key of version {n} or {n - 1}; its signature would not count",
            fix="sign with a root key",
        )
    if secret.key_id in {r.key.key_id for r in root.revoked}:
        # Its signature counts for nothing (docs/trust.md 5.5), and a stolen key's file would ship
        # in the published chain beside the real ones.
        raise RootEditError(
            f"key {secret.key_id} is revoked by root version {n}; its signature would not count",
            fix="sign with a root key this version keeps",
        )
    comment = f"registry-root\tregistry:{root.registry}\tversion:{n}"
    target = keyed_signature_path(path, secret.key_id)
    # Never through a link a pull request planted at the signature's name (it would overwrite the
    # link's target, any file the root key holder can write).
    write_replacing(target, sign_bytes(secret, review.data, trusted_comment=comment).encode("utf-8"))
    return target


def verify_root_dir_upto(root_dir: Path, version: int) -> Root:
    """Versions 1..``version`` of ``root_dir`` as a chain (expiry not judged): the last one, verified."""
    versions = [(n, p) for n, p in root_versions(root_dir) if n <= version]
    first = _read_root_file(versions[0][1])
    verify_root_self(first, read_root_signatures(versions[0][1]), _never_expired(), where=str(versions[0][1]))
    return verify_root_chain(
        first,
        [(_read_root_file(p), read_root_signatures(p)) for _, p in versions[1:]],
        _never_expired(),
        names=[str(p) for _, p in versions],
    )


def verify_root_dir(root_dir: Path, now: datetime, *, trusted: Path | None = None) -> Root:
    """Walk the whole chain in ``root_dir``.

    The walk starts from ``trusted`` (pinned, so its own signatures are not checked) or from
    version 1, which must then be signed by its own root threshold.
    """
    return walk_root_dir(root_dir, now, trusted=trusted)[-1]


def walk_root_dir(root_dir: Path, now: datetime, *, trusted: Path | None = None) -> list[Root]:
    """``verify_root_dir``, returning every root of the walk (the start, then each verified step)."""
    versions = root_versions(root_dir)
    if trusted is not None:
        first_bytes, first_name = _read_root_file(trusted), str(trusted)
        anchor = Root.parse(first_bytes, where=first_name)
        rest = [(n, p) for n, p in versions if n > anchor.version]
    else:
        first_path = versions[0][1]
        first_bytes, first_name = _read_root_file(first_path), str(first_path)
        # version 1 vouches for itself: its own root threshold must have signed it.
        verify_root_self(
            first_bytes,
            read_root_signatures(first_path),
            now if len(versions) == 1 else _never_expired(),
            where=first_name,
        )
        rest = versions[1:]
    candidates = [(_read_root_file(p), read_root_signatures(p)) for _, p in rest]
    names = [first_name] + [str(p) for _, p in rest]
    walked = [Root.parse(first_bytes, where=first_name)]
    verify_root_chain(first_bytes, candidates, now, names=names, on_step=walked.append)
    return walked


def _read_root_file(path: Path) -> bytes:
    return read_bounded(path, MAX_ROOT_BYTES, "root file")


def _parsed(path: Path) -> Root:
    return Root.parse(_read_root_file(path), where=str(path))


def _never_expired() -> datetime:
    # Intermediate versions may be expired; only the last one is checked against the real time.
    return datetime(1970, 1, 1, tzinfo=UTC)


def parse_expiry(value: str, now: datetime) -> datetime:
    """``--expires``: a duration from now (``365d``, ``12w``) or an RFC 3339 UTC time.

    Either way in the future (a root that has expired when it is written: no client would trust
    it) and at most ten years ahead, the bound a duration has (a time could pass it).
    """
    from registry_tool.manifest.units import MAX_SECONDS, parse_duration

    if "T" in value:
        from registry_tool.trust.root import parse_time

        try:
            expires = parse_time(value)
        except CheckFailed as exc:  # the option's value, not a document: a usage error
            raise UsageError(f"--expires: {exc.what}", fix="use e.g. 365d or 2027-11-21T00:00:00Z") from None
    else:
        try:
            expires = now + timedelta(seconds=parse_duration(value))
        except ValueError as exc:
            raise UsageError(f"--expires: {exc}", fix="use e.g. 365d or 2027-11-21T00:00:00Z") from None
    if expires <= now:
        raise UsageError(
            f"--expires {value} is not in the future",
            fix="give a later time, or a duration from now such as 365d",
        )
    if expires > now + timedelta(seconds=MAX_SECONDS):
        raise UsageError(
            f"--expires {value} is more than ten years ahead",
            fix="give an earlier time, or a duration of at most 3650d: a root is renewed with `root renew`",
        )
    return expires


def init_registry(
    root_dir: Path,
    registry: str,
    *,
    root_keys: Sequence[PublicKey] = (),
    index_keys: Sequence[PublicKey] = (),
    generate_dir: Path | None = None,
    generate_root: int = 0,
    passphrase: bytes | None = None,
    root_threshold: int = 1,
    index_threshold: int = 1,
    expires: datetime,
) -> tuple[Path, list[Path]]:
    """Write ``root/1.root.json``; missing root/index keys are generated into ``generate_dir``.

    Returns the root file and the generated secret key files.
    """
    from registry_tool.signing.keyfiles import generate_key_files

    generated: list[Path] = []
    root_list, index_list = list(root_keys), list(index_keys)
    if (not root_list or not index_list or generate_root) and generate_dir is None:
        raise UsageError(
            "root and index keys are needed",
            fix="pass --root-key/--index-key .pub files or --generate-keys DIR",
        )
    if generate_dir is not None:
        for _ in range(generate_root or (0 if root_list else max(root_threshold, 1))):
            files = generate_key_files(generate_dir / f"root-{len(root_list) + 1}", passphrase)
            root_list.append(PublicKey.parse(files.public.read_bytes()))
            generated.append(files.secret)
        if not index_list:
            # The index key signs in CI: it is protected by the CI secret store, like minisign -W keys.
            files = generate_key_files(generate_dir / "index", passphrase)
            index_list.append(PublicKey.parse(files.public.read_bytes()))
            generated.append(files.secret)
    data = new_root(
        registry,
        root_list,
        index_list,
        root_threshold=root_threshold,
        index_threshold=index_threshold,
        expires=expires,
    )
    return init_root_dir(root_dir, data), generated
