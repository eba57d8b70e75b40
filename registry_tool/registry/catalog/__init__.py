"""The browser catalog: static assets written into a site next to registry.json.

The page (index.html, catalog.js, catalog.css in this package) reads the same signed documents
as the client and verifies them in the browser before showing anything (docs/catalog.md).  It is
outside the trust model: the only thing the build puts into it is the pinned root, the trust
anchor the page walks the root chain from.
"""

from __future__ import annotations

import base64
from importlib import resources
from pathlib import Path

from registry_tool.trust.root import Root

#: The files the catalog adds to a site (relative to the site folder).
CATALOG_FILES = ("index.html", "catalog.js", "catalog.css")
_PLACEHOLDER = b"@@PINNED_ROOT_BASE64@@"


def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


def render_index(pinned_root_bytes: bytes, *, parsed: bool = False) -> bytes:
    """index.html with the pinned root embedded as base64 (exact bytes; base64 needs no HTML escaping).

    ``parsed``: the caller already parsed these bytes as a root (the build's verified chain).
    """
    if not parsed:
        Root.parse(pinned_root_bytes, where="pinned root")
    page = _asset("index.html")
    if page.count(_PLACEHOLDER) != 1:  # pragma: no cover - guards the packaged template
        raise RuntimeError("catalog index.html must hold the pinned-root placeholder exactly once")
    return page.replace(_PLACEHOLDER, base64.b64encode(pinned_root_bytes))


def catalog_files(pinned_root_bytes: bytes, *, parsed: bool = False) -> dict[str, bytes]:
    """The catalog's files by site path.

    ``pinned_root_bytes`` is the root the page trusts first (normally ``root/1.root.json``); it is
    parsed here, unless ``parsed`` says the caller did, so a build never ships a page with an
    unusable anchor (``RootFormatError``).
    """
    return {
        "index.html": render_index(pinned_root_bytes, parsed=parsed),
        "catalog.js": _asset("catalog.js"),
        "catalog.css": _asset("catalog.css"),
    }


def write_catalog(site_dir: Path, pinned_root_bytes: bytes) -> list[Path]:
    """Write the catalog into ``site_dir``; returns the files written (see ``catalog_files``)."""
    written = []
    for name, data in catalog_files(pinned_root_bytes).items():
        path = Path(site_dir) / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        written.append(path)
    return written


__all__ = ["CATALOG_FILES", "catalog_files", "render_index", "write_catalog"]
