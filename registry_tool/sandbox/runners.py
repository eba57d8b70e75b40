"""The runner of each ABI: its ``Adapter`` by ABI name (the spec is ``manifest.abi.ABI_SPECS``)."""

from __future__ import annotations

from registry_tool.sandbox.abis import Adapter, CoreAdapter, ExtismAdapter, WasiCommandAdapter
from registry_tool.sandbox.proxy_wasm import ProxyWasmAdapter

ADAPTERS: dict[str, Adapter] = {
    "core": CoreAdapter(),
    "wasi-command": WasiCommandAdapter(),
    "extism": ExtismAdapter(),
    "proxy-wasm": ProxyWasmAdapter(),
}
