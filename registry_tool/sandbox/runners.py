"""The runner of each ABI: its ``Adapter`` class by ABI name (the spec is ``manifest.abi.ABI_SPECS``).

A test checks that every spec has exactly one runner here and every runner a spec.  The table
names the module and class of each runner, and ``adapter_class`` imports only the one a release
needs: the worker of a ``core`` release must not pay for the component model's bindings
(``wasmtime.component``) or the Proxy-Wasm host.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from registry_tool.sandbox.abis import Adapter

#: ABI name -> (module under ``registry_tool.sandbox``, runner class).
RUNNERS: dict[str, tuple[str, str]] = {
    "core": ("abis", "CoreAdapter"),
    "wasi-command": ("abis", "WasiCommandAdapter"),
    "extism": ("abis", "ExtismAdapter"),
    "proxy-wasm": ("proxy_wasm", "ProxyWasmAdapter"),
    "component": ("component", "ComponentAdapter"),
}


def adapter_class(abi: str) -> type[Adapter]:
    """The runner class of ``abi``, importing its module on first use; KeyError for an unknown ABI."""
    module, name = RUNNERS[abi]
    runner: type[Adapter] = getattr(importlib.import_module(f"registry_tool.sandbox.{module}"), name)
    return runner
