"""Verify-on-install client: trust state machine, bounded fetcher, installer, lockfile.

Hosts use ``Registry`` (open, search, resolve, install, update), ``verify_installed`` and
``load_plugin_bytes``; see docs/client.md.  The documents the client reads (format 2) are defined
in ``registry_tool.format``; importing the client never imports the builder
(``registry_tool.registry``).
"""

from registry_tool.client.api import (
    InstallResult,
    LoadedPlugin,
    MetaCache,
    Registry,
    SearchHit,
    default_plugin_dir,
    default_state_dir,
    list_installed,
    load_plugin,
    load_plugin_bytes,
    remove,
    remove_many,
    trust,
    verify_installed,
    verify_site,
)
from registry_tool.client.fetch import Fetcher, FetchPolicy, HttpFetcher
from registry_tool.client.install import LockedPlugin, Requirement
from registry_tool.client.trust_state import TrustState

__all__ = [
    "FetchPolicy",
    "Fetcher",
    "HttpFetcher",
    "InstallResult",
    "LoadedPlugin",
    "LockedPlugin",
    "MetaCache",
    "Registry",
    "Requirement",
    "SearchHit",
    "TrustState",
    "default_plugin_dir",
    "default_state_dir",
    "list_installed",
    "load_plugin",
    "load_plugin_bytes",
    "remove",
    "remove_many",
    "trust",
    "verify_installed",
    "verify_site",
]
