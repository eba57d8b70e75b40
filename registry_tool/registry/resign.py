"""``registry-tool resign``: a fresh version and expiry for the published registry, nothing else.

A scheduled workflow runs this so clients never see an expired registry.json (freeze
protection forces an expiry; resigning keeps the registry alive between publications).
The current registry.json must verify under the site's root chain first: resigning must
never launder a tampered document.  Only the top document changes (``version``,
``generated_at``, ``expires_at``, and ``root_version`` when the site's root chain has moved
on); it pins the same tree and catalog, so every other file keeps its bytes and is not touched.
The signatures, then the top document are renamed into SITE from a journal (``publish``).
"""

from __future__ import annotations

import dataclasses
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from registry_tool.errors import CheckFailed, UsageError
from registry_tool.format import REGISTRY_JSON, TopDocument, format_time
from registry_tool.registry import site as site_io
from registry_tool.registry.plan import next_version
from registry_tool.registry.publish import publish_top, sign_registry
from registry_tool.registry.scan import load_root_chain
from registry_tool.report import CheckResult, Report
from registry_tool.signing import SecretKey, Signature, read_signatures, verify_parsed
from registry_tool.trust import verify_index_signatures


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
) -> ResignResult:
    """Re-sign SITE's registry.json with a higher version and ``now + validity`` as expiry.

    ``validity`` defaults to the current document's window (expires_at - generated_at).

    Raises:
        UsageError: SITE has no registry.json, names a root it lacks, or the validity is not positive.
        RegistryToolError: The current top document does not verify; the keys cannot sign.
    """
    site = site_io.real_site(site)
    with site_io.site_lock(site):
        site_io.recover_interrupted(site)
        return _resign_locked(site, keys, now, validity, registry_version, verify_now)


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


def _resign_locked(
    site: Path,
    keys: list[SecretKey],
    now: datetime,
    validity: timedelta | None,
    registry_version: int | None,
    verify_now: datetime | None,
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
    if window.total_seconds() <= 0:
        raise UsageError("the validity must be positive", fix="pass --validity like 7d")
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
    staged = site_io.staging_dir(site)
    try:
        publish_top(site, staged, new_data, signatures)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return ResignResult(site=site, previous=current, document=document)
