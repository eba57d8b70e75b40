"""The runner of each ABI: its ``Adapter`` class by ABI name (the spec is ``manifest.abi.ABI_SPECS``).

A test checks that every spec has exactly one runner here and every runner a spec.
"""

from __future__ import annotations

from registry_tool.sandbox.abis import Adapter, CoreAdapter, ExtismAdapter, WasiCommandAdapter
from registry_tool.sandbox.component import ComponentAdapter
from registry_tool.sandbox.proxy_wasm import ProxyWasmAdapter

ADAPTERS: dict[str, type[Adapter]] = {
    adapter.name: adapter
    for adapter in (CoreAdapter, WasiCommandAdapter, ExtismAdapter, ProxyWasmAdapter, ComponentAdapter)
}
