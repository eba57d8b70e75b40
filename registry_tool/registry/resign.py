"""``registry-tool resign``: a fresh version and expiry for the published registry, nothing else.

A scheduled workflow runs this so clients never see an expired registry.json (freeze
protection forces an expiry; resigning keeps the registry alive between publications).
The current registry.json must verify under the site's root chain first: resigning must
never launder a tampered document.  Only the top document changes (``version``,
``generated_at``, ``expires_at``, and ``root_version`` when the site's root chain has moved
on); it pins the same tree and catalog, so every other file keeps its bytes and is not touched.
The signatures, then the top document are renamed into SITE from a journal (``publish``).

SITE is only as trustworthy as whoever can write it: an attacker could put back an older
genuine registry.json with its signature, and renewing it would republish old content under a
new version (a rollback clients cannot detect).  So the signer keeps, outside SITE, a record of
the newest top document each of its keys signed for each site (``build`` and ``resign`` write
it: ``record_signed``), and resign renews only that document or a newer one; with no record (a
fresh machine), only the version the operator names with ``expect_version``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from registry_tool._files import private_dir
from registry_tool.errors import CheckFailed, UsageError
from registry_tool.format import REGISTRY_JSON, TopDocument, format_time
from registry_tool.registry import site as site_io
from registry_tool.registry.plan import next_version
from registry_tool.registry.publish import publish_top, sign_registry
from registry_tool.registry.scan import load_root_chain
from registry_tool.report import CheckResult, Report
from registry_tool.signing import SecretKey, Signature, read_signatures, verify_parsed
from registry_tool.trust import verify_index_signatures

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ResignResult:
    """A re-signed site: the top document before and after."""

    site: Path
    previous: TopDocument
    document: TopDocument

    def report(self) -> Report:
        """The report: one result, the site, with the versions and times as data."""
        old, new = self.previous, self.document
        result = CheckResult(subject=str(self.site), file=REGISTRY_JSON)
        result.data = {
            "registry_version": new.version,
            "previous_version": old.version,
            "root_version": new.root_version,
            "generated_at": new.generated_at,
            "expires_at": new.expires_at,
            "previous_expires_at": old.expires_at,
        }
        return Report(command="resign", results=[result])


def resign_site(
    site: Path,
    keys: list[SecretKey],
    now: datetime,
    *,
    validity: timedelta | None = None,
    registry_version: int | None = None,
    verify_now: datetime | None = None,
    expect_version: int | None = None,
    state_dir: Path | None = None,
) -> ResignResult:
    """Re-sign SITE's registry.json with a higher version and ``now + validity`` as expiry.

    ``validity`` defaults to the current document's window (expires_at - generated_at).
    ``expect_version``: the version SITE's registry.json must have (required when the signer's
    state holds no record for SITE, checked when given).  ``state_dir``: the signer's records
    (default ``signer_state_dir()``).

    Raises:
        UsageError: SITE has no registry.json, names a root it lacks, or the validity is not positive.
        ResignRefusedError: The document is not one these keys signed, or older than the newest
            one they signed for SITE, or not the expected version.
        RegistryToolError: The current top document does not verify; the keys cannot sign.
    """
    site = site_io.real_site(site)
    with site_io.site_lock(site):
        site_io.recover_interrupted(site)
        result = _resign_locked(
            site, keys, now, validity, registry_version, verify_now, expect_version, state_dir
        )
        record_signed(
            site,
            keys,
            result.document.registry.name,
            result.document.version,
            result.document.to_bytes(),
            state_dir,
        )
        return result


class ResignRefusedError(CheckFailed):
    """The top document was not signed by the key asked to renew it."""

    code = "resign-refused"


def _require_own_signature(data: bytes, signatures: list[str], keys: list[SecretKey], where: str) -> None:
    """Re-sign only a top document one of ``keys`` signed before.

    SITE's root folder is as writable as the rest of SITE: a chain planted there (its index role
    listing the genuine key beside the attacker's) would let a forged top document verify, and
    re-signing it would lend the genuine key to the forgery.  A document that already carries a
    valid signature by a key being used is one its holder published.
    """
    for key in keys:
        public = key.public_key
        for text in signatures:
            try:
                signature = Signature.parse(text, where=where)
                if signature.key_id == public.key_id:
                    verify_parsed(public, data, signature, where=where)
                    return
            except CheckFailed:
                continue
    raise ResignRefusedError(
        "registry.json carries no valid signature by the key(s) given: resign renews only a document"
        " its key signed before",
        where=where,
        fix="rebuild the site with `registry-tool build` (and check who wrote SITE's root folder)",
    )


@dataclasses.dataclass(frozen=True)
class SignedRecord:
    """The newest top document a key signed for a site: its version and sha256."""

    version: int
    sha256: str


def signer_state_dir() -> Path:
    """``platformdirs.user_state_dir("registry-tool")/signed``: the signer's records, outside SITE."""
    from platformdirs import user_state_dir

    return Path(user_state_dir("registry-tool")) / "signed"


def _record_path(state_dir: Path, key_id: str, name: str, site: Path) -> Path:
    tag = hashlib.sha256(f"{key_id}\0{name}\0{site.resolve()}".encode()).hexdigest()[:32]
    return state_dir / f"{tag}.json"


def _require_private(directory: Path) -> None:
    """Records are trusted on sight: only from a folder no other user can write."""
    if not private_dir(directory):
        raise UsageError(
            f"the signer's state folder {directory} is not a private folder of this user",
            where=str(directory),
            fix=f"chmod 700 {directory} (and check who else could write its records)",
        )


def read_signed(
    site: Path, keys: list[SecretKey], name: str, state_dir: Path | None = None
) -> SignedRecord | None:
    """The newest record any of ``keys`` has for registry ``name`` at ``site``, or None.

    Raises:
        UsageError: The state folder can be written by another user (its records could be forged).
    """
    directory = state_dir if state_dir is not None else signer_state_dir()
    if not directory.exists():
        return None
    _require_private(directory)
    newest: SignedRecord | None = None
    for key in keys:
        path = _record_path(directory, key.key_id, name, site)
        try:
            raw = json.loads(path.read_bytes())
            record = SignedRecord(int(raw["version"]), str(raw["sha256"]))
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError, OverflowError, RecursionError):
            raise UsageError(
                f"the signer's record {path} is unreadable or malformed",
                where=str(path),
                fix="rebuild the site with `registry-tool build` (it writes a fresh record)",
            ) from None
        if newest is None or record.version > newest.version:
            newest = record
    return newest


def record_signed(
    site: Path, keys: list[SecretKey], name: str, version: int, data: bytes, state_dir: Path | None = None
) -> None:
    """Record that ``keys`` signed the top document ``data`` (``version``) for ``name`` at ``site``.

    ``build`` and ``resign`` call it once the document is in SITE, and it replaces the record:
    what the signer's own build just published is the newest document by definition, even
    with a lower version (a site rebuilt from scratch; clients refuse it if it is a rollback).

    Raises:
        UsageError: The state folder cannot be written or is not private.
    """
    directory = state_dir if state_dir is not None else signer_state_dir()
    record = {"version": version, "sha256": hashlib.sha256(data).hexdigest()}
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        _require_private(directory)
        for key in keys:
            fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                json.dump(record, fh)
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).replace(_record_path(directory, key.key_id, name, site))
    except OSError as err:
        raise UsageError(
            f"cannot record the signed registry.json in {directory}: {err.strerror or err}",
            where=str(directory),
            fix="make the signer's state folder writable (resign relies on it to refuse rollbacks)",
        ) from None


def record_built(site: Path, keys: list[SecretKey], name: str, version: int, data: bytes) -> None:
    """``record_signed`` for ``build``: a record it cannot write is logged, not raised.

    The site is published by then; without a record the next ``resign`` here asks for
    ``--expect-version`` (an older record only lets it renew this newer document).
    """
    try:
        record_signed(site, keys, name, version, data)
    except UsageError as err:
        log.warning("%s", err)  # its text holds the fix already


def _require_newest(
    site: Path,
    data: bytes,
    current: TopDocument,
    keys: list[SecretKey],
    expect_version: int | None,
    state_dir: Path | None,
    where: str,
) -> None:
    """Renew only the newest top document the keys signed for SITE (or the one the operator expects).

    An older genuine document put back into SITE verifies and carries the key's own signature;
    renewing it would publish its old content under a new version, which clients accept.
    """
    if expect_version is not None and current.version != expect_version:
        raise ResignRefusedError(
            f"registry.json has version {current.version}, not the expected {expect_version}:"
            " resign renews only the document you last published",
            where=where,
            fix="check who wrote SITE; restore the last published site or rebuild it with"
            " `registry-tool build`",
        )
    record = read_signed(site, keys, current.registry.name, state_dir)
    if record is None:
        if expect_version is None:
            directory = state_dir if state_dir is not None else signer_state_dir()
            raise ResignRefusedError(
                f"no record of a registry.json signed by the key(s) given for {site} in {directory}:"
                " resign cannot tell the newest document from an older one put back into SITE",
                where=where,
                fix="pass --expect-version N (the version of the registry.json you last published),"
                " or run resign where the site was built",
            )
        return
    digest = hashlib.sha256(data).hexdigest()
    if current.version < record.version or (current.version == record.version and digest != record.sha256):
        raise ResignRefusedError(
            f"registry.json has version {current.version}, but the key(s) given already signed version"
            f" {record.version} for this site: an older document was put back into SITE (rollback)",
            where=where,
            fix="check who wrote SITE, then rebuild it with `registry-tool build`",
        )


def _resign_locked(
    site: Path,
    keys: list[SecretKey],
    now: datetime,
    validity: timedelta | None,
    registry_version: int | None,
    verify_now: datetime | None,
    expect_version: int | None,
    state_dir: Path | None,
) -> ResignResult:
    path = site / REGISTRY_JSON
    if not path.is_file():
        raise UsageError(
            f"{path} does not exist", where=str(path), fix="point at a site written by `registry-tool build`"
        )
    data = path.read_bytes()
    current = TopDocument.parse(data, where=str(path))
    chain = load_root_chain(site, verify_now or now)
    signed_under = chain.roots.get(current.root_version)
    if signed_under is None:
        raise UsageError(
            f"registry.json names root v{current.root_version}, which is not in {site / 'root'}",
            where=str(path),
            fix="rebuild the site with `registry-tool build`",
        )
    signatures_now = read_signatures(path)
    verify_index_signatures(signed_under, data, signatures_now, where=str(path))
    window = validity if validity is not None else current.expires() - current.generated()
    if window.total_seconds() < 1:  # times are whole seconds: less would expire when generated
        raise UsageError("the validity must be at least one second", fix="pass --validity like 7d")
    document = current.renewed(
        version=next_version(current, now, registry_version),
        generated_at=format_time(now),
        expires_at=format_time(now + window),
        root_version=chain.root.version,
    )
    new_data = document.to_bytes()
    TopDocument.parse(new_data)  # never sign what a client would refuse
    signatures = sign_registry(new_data, keys, chain.root, current.registry.name, document.version)
    _require_own_signature(data, signatures_now, keys, str(path))
    _require_newest(site, data, current, keys, expect_version, state_dir, str(path))
    staged = site_io.staging_dir(site)
    try:
        publish_top(site, staged, new_data, signatures)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return ResignResult(site=site, previous=current, document=document)
