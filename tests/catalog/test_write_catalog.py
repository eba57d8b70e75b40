"""write_catalog: the three assets land in the site and index.html carries the exact pinned root."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from registry_tool.errors import RegistryToolError
from registry_tool.registry.catalog import CATALOG_FILES, write_catalog

from .site_fixture import build_site


def embedded_root(page: bytes) -> bytes:
    m = re.search(
        rb'<script type="application/octet-stream" id="pinned-root">([A-Za-z0-9+/=]*)</script>', page
    )
    assert m, "index.html has no pinned root"
    return base64.b64decode(m.group(1), validate=True)


def test_writes_assets_with_the_pinned_root_bytes(tmp_path: Path) -> None:
    site = build_site(tmp_path / "site", write_page=False)
    written = write_catalog(site.path, site.root1)
    assert sorted(p.name for p in written) == sorted(CATALOG_FILES)
    assert embedded_root((site.path / "index.html").read_bytes()) == site.root1
    assert not list(site.path.glob(".*.tmp"))


def test_assets_use_relative_urls_only(tmp_path: Path) -> None:
    """Works from file:// and under a sub-path: no absolute or external URL in the page."""
    site = build_site(tmp_path / "site")
    for name in CATALOG_FILES:
        text = (site.path / name).read_text()
        assert not re.search(r"""(src|href)=["'](/|[a-z]+:)""", text), name
        assert "://" not in text, name  # no CDN, font or script from elsewhere


def test_refuses_an_unusable_anchor(tmp_path: Path) -> None:
    site = build_site(tmp_path / "site", write_page=False)
    with pytest.raises(RegistryToolError):
        write_catalog(site.path, site.root1.replace(b'"version": 1', b'"version": 0'))
    assert not (site.path / "index.html").exists()
