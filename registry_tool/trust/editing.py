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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from registry_tool._files import read_bounded
from registry_tool.errors import CheckFailed, UsageError
from registry_tool.format.rules import MAX_ROOT_BYTES, root_file_version
from registry_tool.signing.minisign import PublicKey, SecretKey, sign_bytes
from registry_tool.signing.release import keyed_signature_path, read_signatures, signature_paths
from registry_tool.trust.root import (
    ROOT_TYPE,
    SPEC_VERSION,
    Root,
    format_time,
    verify_root_chain,
    verify_root_self,
    verify_root_step,
)

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
        raise UsageError(f"{root_dir} is not a directory", fix="run `registry-tool root init` first")
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
        raise UsageError(f"no root metadata in {root_dir}", fix="run `registry-tool root init` first")
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
    target.write_bytes(data)
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
    target = latest_path if amend else root_dir / f"{latest_n + 1}.root.json"
    target.write_bytes(data)
    return target


def _require_valid(versions: list[tuple[int, Path]], path: Path) -> None:
    """A partly signed version must be finished first: a new version on top of it could never verify."""
    data, sigs = path.read_bytes(), read_signatures(path)
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


def sign_root_dir(root_dir: Path, secret: SecretKey, *, version: int | None = None) -> Path:
    """Add one root key's signature to the latest (or given) version: ``<N>.root.json.<KEYID>.minisig``."""
    versions = dict(root_versions(root_dir))
    n = version or max(versions)
    if n not in versions:
        raise UsageError(f"no root version {n} in {root_dir}", fix="pick an existing version")
    path = versions[n]
    data = path.read_bytes()
    root = Root.parse(data, where=str(path))
    eligible = {k.raw for k in root.roles["root"].keys}
    if n > 1:
        prev = Root.parse(versions[n - 1].read_bytes(), where=str(versions[n - 1]))
        eligible |= {k.raw for k in prev.roles["root"].keys}
    if secret.public_key.raw not in eligible:
        raise RootEditError(
            f"key {secret.key_id} is not a root key of version {n} or {n - 1}; its signature would not count",
            fix="sign with a root key",
        )
    comment = f"registry-root\tregistry:{root.registry}\tversion:{n}"
    target = keyed_signature_path(path, secret.key_id)
    target.write_text(sign_bytes(secret, data, trusted_comment=comment), encoding="utf-8")
    return target


def verify_root_dir(root_dir: Path, now: datetime, *, trusted: Path | None = None) -> Root:
    """Walk the whole chain in ``root_dir``.

    The walk starts from ``trusted`` (pinned, so its own signatures are not checked) or from
    version 1, which must then be signed by its own root threshold.
    """
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
            read_signatures(first_path),
            now if len(versions) == 1 else _never_expired(),
            where=first_name,
        )
        rest = versions[1:]
    candidates = [(_read_root_file(p), read_signatures(p)) for _, p in rest]
    names = [first_name] + [str(p) for _, p in rest]
    return verify_root_chain(first_bytes, candidates, now, names=names)


def _read_root_file(path: Path) -> bytes:
    return read_bounded(path, MAX_ROOT_BYTES, "root file")


def _never_expired() -> datetime:
    # Intermediate versions may be expired; only the last one is checked against the real time.
    return datetime(1970, 1, 1, tzinfo=UTC)


def parse_expiry(value: str, now: datetime) -> datetime:
    """``--expires``: a duration from now (``365d``, ``12w``) or an RFC 3339 UTC time."""
    if "T" in value:
        from registry_tool.trust.root import parse_time

        return parse_time(value)
    from registry_tool.manifest.units import parse_duration

    try:
        return now + timedelta(seconds=parse_duration(value))
    except ValueError as exc:
        raise UsageError(f"--expires: {exc}", fix="use e.g. 365d or 2027-11-21T00:00:00Z") from None


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
