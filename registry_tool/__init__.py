"""registry-tool: a static plugin registry and signing toolkit for WebAssembly plugins.

The library is importable without the CLI: every command in ``registry_tool._cli`` is a
thin wrapper over a function in one of these packages:

- ``registry_tool.manifest``  plugin.toml and registry.toml: schema, parsing, ``validate``
- ``registry_tool.sandbox``   the smoke-run harness on wasmtime (fuel, memory, time limits)
- ``registry_tool.signing``   minisign-compatible Ed25519 keys and signatures
- ``registry_tool.trust``     root metadata, delegations, thresholds, revocation
- ``registry_tool.registry``  building the static, signed registry site
- ``registry_tool.client``    verify-on-install client for hosts and people
- ``registry_tool.ci``        the pull-request check for an index repository
"""

from registry_tool.errors import CheckFailed, RegistryToolError, UsageError

__version__ = "0.1.0"
__all__ = ["CheckFailed", "RegistryToolError", "UsageError", "__version__"]
