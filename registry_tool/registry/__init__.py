"""Building the static signed registry: registry.json, the site layout, resign.

``document`` is shared with the client (``parse_registry``); ``build`` and ``resign``
write sites.
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
from registry_tool.registry.document import (
    FORMAT_VERSION,
    FileRef,
    Limits,
    RegistryDocument,
    RegistryDocumentError,
    RegistryInfo,
    Release,
    SmokeFigure,
    format_time,
    parse_registry,
    parse_time,
    release_path,
)
from registry_tool.registry.resign import ResignResult, resign_site

__all__ = [
    "FORMAT_VERSION",
    "BuildOptions",
    "BuildRefusedError",
    "BuildResult",
    "FileRef",
    "Limits",
    "PublishedReleaseChangedError",
    "PublishedReleaseRemovedError",
    "RegistryDocument",
    "RegistryDocumentError",
    "RegistryInfo",
    "Release",
    "ResignResult",
    "RollbackError",
    "SmokeFigure",
    "UnsafeIndexPathError",
    "build_site",
    "format_time",
    "parse_registry",
    "parse_time",
    "release_path",
    "resign_site",
]
