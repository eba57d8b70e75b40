"""Building the static signed registry: registry.json, the site layout, resign.

``document`` is shared with the client (``parse_registry``); ``build`` and ``resign``
write sites.
"""

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

__all__ = [
    "FORMAT_VERSION",
    "FileRef",
    "Limits",
    "RegistryDocument",
    "RegistryDocumentError",
    "RegistryInfo",
    "Release",
    "SmokeFigure",
    "format_time",
    "parse_registry",
    "parse_time",
    "release_path",
]
