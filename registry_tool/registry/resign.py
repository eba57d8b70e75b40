"""``registry-tool resign``: a fresh version and expiry for the published registry, nothing else.

A scheduled workflow runs this so clients never see an expired registry.json (freeze
protection forces an expiry; resigning keeps the registry alive between publications).
The current registry.json must verify under the site's root chain first: resigning must
never launder a tampered document.  Only the top document changes (``version``,
``generated_at``, ``expires_at``, and ``root_version`` when the site's root chain has moved
on); it pins the same tree and catalog, so every other file keeps its bytes.  The site is
re-staged with hard links and swapped in atomically like a build.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from registry_tool.errors import UsageError
from registry_tool.format import REGISTRY_JSON, TopDocument, format_time, is_signature_of
from registry_tool.registry import site as site_io
from registry_tool.registry.build import load_root_chain, next_version, sign_registry
from registry_tool.report import CheckResult, Report


@dataclasses.dataclass(frozen=True)
class ResignResult:
    site: Path
    previous: TopDocument
    document: TopDocument

    def report(self) -> Report:
        old, new = self.previous, self.document
        result = CheckResult(subject=str(self.site), file=REGISTRY_JSON)
        result.data = {
            "registry_version": new.version,
            "previous_version": old.version,
            "root_version": new.root_version,
            "generated_at": new.generated_at,
            "expires_at": new.expires_at,
            "text_lines": [
                f"registry version {old.version} -> {new.version}, "
                f"expires {old.expires_at} -> {new.expires_at}"
            ],
        }
        return Report(command="resign", results=[result])


def resign_site(
    site: Path,
    keys: list[Any],
    now: datetime,
    *,
    validity: timedelta | None = None,
    registry_version: int | None = None,
    verify_now: datetime | None = None,
) -> ResignResult:
    """Re-sign SITE's registry.json with a higher version and ``now + validity`` as expiry.

    ``validity`` defaults to the current document's window (expires_at - generated_at).
    """
    site = site_io.real_site(site)
    with site_io.site_lock(site):
        return _resign_locked(site, keys, now, validity, registry_version, verify_now)


def _resign_locked(
    site: Path,
    keys: list[Any],
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
    from registry_tool.trust import verify_index_signatures

    signed_under = chain.roots.get(current.root_version)
    if signed_under is None:
        raise UsageError(
            f"registry.json names root v{current.root_version}, which is not in {site / 'root'}",
            where=str(path),
            fix="rebuild the site with `registry-tool build`",
        )
    from registry_tool.signing import read_signatures

    verify_index_signatures(signed_under, data, read_signatures(path), where=str(path))
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
    _restage(site, new_data, signatures)
    return ResignResult(site=site, previous=current, document=document)


def _restage(site: Path, data: bytes, signatures: dict[str, str]) -> None:
    """Hard-link every other file into a staging folder, write the new registry.json, swap."""
    staged = site_io.staging_dir(site)
    try:
        for dirpath, _dirs, files in os.walk(site):
            base = Path(dirpath)
            for name in files:
                src = base / name
                rel = src.relative_to(site)
                top_level = len(rel.parts) == 1
                if top_level and (name == REGISTRY_JSON or is_signature_of(name, REGISTRY_JSON)):
                    continue
                dst = staged / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)
        (staged / REGISTRY_JSON).write_bytes(data)
        for name, text in signatures.items():
            (staged / name).write_text(text, encoding="utf-8")
        site_io.swap_into_place(staged, site)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
