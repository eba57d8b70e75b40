"""One build of the test index at a given minute: the helper the rebuild and cache tests share."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from registry_tool.registry.build import BuildOptions, BuildResult, build_site

from .conftest import NOW


def build_at(index: Any, site: Path, at: int, cache: Path | None, **options: Any) -> BuildResult:
    """Build ``index`` into ``site`` at NOW + ``at`` minutes, no smoke runs, one process.

    ``--previous`` is SITE itself once it holds a published site; ``options`` override any field.
    """
    now = NOW + timedelta(minutes=at)
    fields: dict[str, Any] = {
        "index": index.path,
        "out": site,
        "keys": [index.keys.index],
        "now": now,
        "verify_now": now,
        "smoke": False,
        "cache_path": cache,
        "previous": str(site) if (site / "registry.json").exists() else None,
        "jobs": 1,
    }
    return build_site(BuildOptions(**(fields | options)))
