"""Building the static signed registry (format 2): ``build_site`` and ``resign_site``.

The documents themselves (models, strict parsing) live in ``registry_tool.format``, which the
client imports without this package.  Importing this package imports nothing else: every name
below is loaded from its module on first use, so ``import registry_tool.registry.document`` (or
this package) never loads the builder, the sandbox or the cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry_tool._lazy import lazy_exports

if TYPE_CHECKING:
    from registry_tool.registry.build import BuildOptions, BuildResult, build_site
    from registry_tool.registry.document import Publication, read_publication
    from registry_tool.registry.errors import (
        BuildRefusedError,
        PublishedReleaseChangedError,
        PublishedReleaseRemovedError,
        RollbackError,
        UnsafeIndexPathError,
    )
    from registry_tool.registry.resign import ResignResult, resign_site

_WHERE = {
    "BuildOptions": "build",
    "BuildResult": "build",
    "build_site": "build",
    "Publication": "document",
    "read_publication": "document",
    "BuildRefusedError": "errors",
    "PublishedReleaseChangedError": "errors",
    "PublishedReleaseRemovedError": "errors",
    "RollbackError": "errors",
    "UnsafeIndexPathError": "errors",
    "ResignResult": "resign",
    "resign_site": "resign",
}

__all__ = [
    "BuildOptions",
    "BuildRefusedError",
    "BuildResult",
    "Publication",
    "PublishedReleaseChangedError",
    "PublishedReleaseRemovedError",
    "ResignResult",
    "RollbackError",
    "UnsafeIndexPathError",
    "build_site",
    "read_publication",
    "resign_site",
]


__getattr__ = lazy_exports(__name__, _WHERE)
