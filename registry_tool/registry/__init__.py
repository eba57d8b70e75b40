"""Building the static signed registry (format 2): the site, ``build`` and ``resign``.

The documents themselves (models, strict parsing) live in ``registry_tool.format``, which the
client imports without this package.
"""

from registry_tool.registry.build import (
    BuildOptions,
    BuildRefusedError,
    BuildResult,
    PublishedReleaseChangedError,
    PublishedReleaseRemovedError,
    RollbackError,
    UnsafeIndexPathError,
    build_site,
)
from registry_tool.registry.document import Publication, read_publication
from registry_tool.registry.resign import ResignResult, resign_site

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
