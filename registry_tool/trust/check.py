"""File-level checks behind `registry-tool verify`: read files, call the pure rules, return a CheckResult."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from registry_tool._files import no_regular_file, unreachable
from registry_tool.errors import CheckFailed, UsageError
from registry_tool.format.rules import SIG_SUFFIX, is_signature_of
from registry_tool.report import CheckResult, Finding, Report, Severity
from registry_tool.signing.minisign import PublicKey
from registry_tool.signing.minisign import verify_file as verify_signed_file
from registry_tool.signing.release import (
    MANIFEST,
    YANK,
    ParsedIdentity,
    artifact_path,
    check_artifact_doc,
    identity_from_doc,
    keyed_signature_path,
    parse_signed_toml,
)
from registry_tool.trust.editing import verify_root_dir, walk_root_dir
from registry_tool.trust.root import Root, format_time, verify_release_signatures, verify_yank_signatures
from registry_tool.trust.summary import revocation_text, root_changes


def verify_file(
    path: Path, public_key: PublicKey, *, sig: Path | None = None, allow_legacy: bool = False
) -> CheckResult:
    """Verify ``path`` with one key, like ``minisign -V``.

    The signature is ``--sig``, else ``FILE.<KEYID>.minisig`` for this key if present, else ``FILE.minisig``.
    """
    result = CheckResult(subject=str(path), file=str(path))
    if not path.is_file():
        raise UsageError(no_regular_file(path, "the signed file"), fix="give the signed file")
    keyed = keyed_signature_path(path, public_key.key_id)
    sig_path = sig or (keyed if keyed.is_file() else path.with_name(path.name + ".minisig"))
    if not sig_path.is_file():
        raise UsageError(no_regular_file(sig_path, "signature"), fix="give the signature with --sig")
    try:
        verified = verify_signed_file(
            public_key,
            path,
            sig_path.read_bytes(),
            allow_legacy=allow_legacy,
            where=str(sig_path),
        )
    except CheckFailed as err:
        result.findings.append(Finding.from_error(err))
        return result
    result.data.update(
        key_id=verified.key_id, trusted_comment=verified.trusted_comment, signature=str(sig_path)
    )
    return result


def verify_release_dir(
    release_dir: Path,
    root_dir: Path,
    now: datetime,
    *,
    trusted: Path | None = None,
    published_at: datetime | None = None,
) -> CheckResult:
    """Walk the root chain, then check the release's maintainer signatures, artifact pin and yank."""
    if release_dir.name == MANIFEST:
        release_dir = release_dir.parent
    manifest = release_dir / MANIFEST
    if (why := unreachable(release_dir)) is not None:
        raise UsageError(f"{release_dir} {why}", fix="point at a release directory")
    if not manifest.is_file():
        raise UsageError(f"no {MANIFEST} in {release_dir}", fix="point at a release directory")
    try:
        root = verify_root_dir(root_dir, now, trusted=trusted)
    except CheckFailed as err:
        result = CheckResult(subject=str(release_dir), file=str(manifest))
        result.findings.append(Finding.from_error(err))
        return result
    return verify_release(root, release_dir, now, published_at=published_at)


def verify_releases(path: Path, root_dir: Path, now: datetime, *, trusted: Path | None = None) -> Report:
    """Every release under an index or site folder (or its plugins/ or plugins/<name>/ folder).

    The root chain is walked once for all of them and each manifest is parsed once, so the cost
    is the hashing and the signature checks; one result per release (or one for the root chain
    when it does not verify).
    """
    releases = release_dirs(path)
    try:
        root = verify_root_dir(root_dir, now, trusted=trusted)
    except CheckFailed as err:
        result = CheckResult(subject=str(root_dir), file=str(root_dir))
        result.findings.append(Finding.from_error(err))
        return Report("verify", [result])
    return Report(
        "verify",
        [
            verify_release(root, release, now, location=(release.parent.name, release.name))
            for release in releases
        ],
    )


def release_dirs(path: Path) -> list[Path]:
    """``plugins/<name>/<version>/`` folders under ``path``, sorted (an index, a site, plugins/, a plugin)."""
    if (path / "plugins").is_dir():
        path = path / "plugins"
    if path.name == "plugins":
        plugins = sorted(p for p in path.iterdir() if p.is_dir())
    elif path.parent.name == "plugins" and path.is_dir():
        plugins = [path]
    else:
        raise UsageError(
            f"{path} is not a release, a plugin folder, a plugins/ folder, an index or a site",
            fix="give plugins/<name>/<version>, plugins/<name>, plugins/ or the folder holding plugins/",
        )
    return [v for plugin in plugins for v in sorted(plugin.iterdir()) if v.is_dir()]


def verify_release(
    root: Root,
    release_dir: Path,
    now: datetime,
    *,
    published_at: datetime | None = None,
    location: tuple[str, str] | None = None,
) -> CheckResult:
    """One release against an already verified root: maintainer signatures, artifact pin and yank.

    ``location``: the (name, version) folder names the release is served under, when the caller
    listed them under plugins/ (else they are read from the resolved path).

    The folder is listed once (its entries say which names are files, following links as reading
    them does); each file is then read with one open, fstat and read.
    """
    folder = str(release_dir)
    manifest = str(release_dir / MANIFEST)  # as the report has always named it
    result = CheckResult(subject=folder, file=manifest)
    try:
        files = _files_in(folder)
        if MANIFEST not in files:
            raise CheckFailed(f"no {MANIFEST} in {release_dir}", where=folder, fix="restore it")
        data = _read(manifest)
        # One parse serves the identity, the signature checks and the artifact pin.
        doc = parse_signed_toml(data, where=manifest)
        name, version = identity_from_doc(doc, where=manifest)
        served_as = _check_location(release_dir, version, manifest, location) or name
        sig_names = _signature_names(files, MANIFEST)  # listed once: read here, named in the report
        signers = verify_release_signatures(
            root,
            served_as,
            data,
            [_read(f"{folder}/{n}").decode("utf-8", errors="surrogateescape") for n in sig_names],
            now,
            published_at=published_at,
            where=manifest,
            identity=ParsedIdentity(name, version, data),
        )
        doc_file = _artifact_file(doc)
        wasm = artifact_path(release_dir, doc_file, where=manifest)
        # A plain file name is answered by the listing; a path into a subfolder asks the disk.
        if not (doc_file in files if "/" not in doc_file else wasm.is_file()):
            raise CheckFailed(f"artifact {wasm} is missing", where=manifest, fix="restore the wasm file")
        check_artifact_doc(doc, _read(str(wasm)), where=manifest)
    except CheckFailed as err:
        result.findings.append(Finding.from_error(err))
        return result
    result.data.update(
        plugin=name,
        version=version,
        signers=sorted(signers),
        root_version=root.version,
        signatures=sig_names,
    )
    if YANK in files:
        yank = str(release_dir / YANK)
        try:
            yank_bytes = _read(yank)
            yank_sigs = [
                _read(f"{folder}/{n}").decode("utf-8", errors="surrogateescape")
                for n in _signature_names(files, YANK)
            ]
            verify_yank_signatures(root, served_as, yank_bytes, yank_sigs, now, version=version, where=yank)
            result.findings.append(
                Finding("yanked", f"{name} {version} is yanked", Severity.warning, file=yank)
            )
        except CheckFailed as err:
            result.findings.append(Finding.from_error(err))
    return result


def _files_in(folder: str) -> set[str]:
    """Names of the regular files in ``folder`` (links followed, as reading them follows them)."""
    try:
        with os.scandir(folder) as entries:
            return {e.name for e in entries if e.is_file()}
    except (FileNotFoundError, NotADirectoryError):
        return set()


def _signature_names(files: set[str], signed: str) -> list[str]:
    """``F.minisig`` then ``F.<KEYID>.minisig`` by key id (the order ``signature_paths`` gives)."""
    plain = signed + SIG_SUFFIX
    keyed = sorted(n for n in files if n != plain and is_signature_of(n, signed))
    return [plain, *keyed] if plain in files else keyed


def _read(path: str) -> bytes:
    """The whole file: one open, fstat and read (a short read ends a regular file)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)
        if len(data) <= size:
            return data
        chunks = [data]  # it grew meanwhile: read the rest
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class ReleaseLocationError(CheckFailed):
    """A release in ``plugins/<name>/<version>/`` whose manifest names another version."""

    code = "release-location"


def _check_location(
    release_dir: Path, version: str, where: str, location: tuple[str, str] | None = None
) -> str | None:
    """In an index or site (``plugins/<name>/<version>/``) the directories name the release.

    The plugin name is what signatures must be delegated for, and the version must be the manifest's.
    """
    parts = ("plugins", *location) if location is not None else release_dir.resolve().parts
    if len(parts) < 3 or parts[-3] != "plugins":
        return None
    if parts[-1] != version:
        raise ReleaseLocationError(
            f"the manifest says version {version} but the release is in directory {parts[-1]}/",
            where=where,
            fix=f"move the release to plugins/{parts[-2]}/{version}/",
        )
    return parts[-2]


def _artifact_file(doc: dict[str, Any]) -> str:
    artifact = doc.get("artifact")
    file = artifact.get("file") if isinstance(artifact, dict) else None
    if not isinstance(file, str):
        raise CheckFailed("the manifest has no [artifact] file", fix="add [artifact] file and re-sign")
    return file


def verify_root_report(root_dir: Path, now: datetime, *, trusted: Path | None = None) -> Report:
    """`registry-tool root verify`: the chain verdict, with what the final root says."""
    result = CheckResult(subject=str(root_dir), file=str(root_dir))
    try:
        walked = walk_root_dir(root_dir, now, trusted=trusted)
    except CheckFailed as err:
        result.findings.append(Finding.from_error(err))
        return Report("root verify", [result])
    root = walked[-1]
    roles = {
        name: {"keyids": [k.key_id for k in r.keys], "threshold": r.threshold}
        for name, r in root.roles.items()
    }
    first = root_dir / "1.root.json"
    result.data.update(
        registry=root.registry,
        version=root.version,
        # What clients pass as `client trust URL --root-fingerprint`: the sha256 of root version 1.
        root_fingerprint=hashlib.sha256(first.read_bytes()).hexdigest() if first.is_file() else None,
        expires=format_time(root.expires),
        # Every key with its public key: a key id alone can be copied by whoever makes a key.
        keys={key_id: key.to_base64() for key_id, key in root.keys.items()},
        roles=roles,
        maintainers={
            m.id: {"keyids": [k.key_id for k in m.keys], "plugins": list(m.plugins)}
            for m in root.maintainers.values()
        },
        plugin_thresholds=dict(sorted(root.plugin_thresholds.items())),
        registry_config_sha256=root.registry_config_sha256,
        revoked=[r.key.key_id for r in root.revoked],
        revocations=[
            {
                "key_id": r.key.key_id,
                "public_key": r.key.to_base64(),
                "revoked_in_version": r.revoked_in_version,
                "revoked_at": format_time(r.revoked_at),
                "keep_prior_releases": r.keep_prior_releases,
                "plugins": list(r.plugins),
                "reason": r.reason,
                "text": revocation_text(r, now),
            }
            for r in root.revoked
        ],
    )
    if len(walked) > 1:
        # The newest step, as `root sign` showed it to each signer and `ci check` reported it.
        result.data.update(changes_from=walked[-2].version, changes=root_changes(walked[-2], root, now=now))
    if (root.expires - now).days < 30:
        result.findings.append(
            Finding(
                "root-expires-soon",
                f"root version {root.version} expires at {format_time(root.expires)}",
                Severity.warning,
                file=str(root_dir),
                fix="run `registry-tool root renew` and collect signatures",
            )
        )
    return Report("root verify", [result])
