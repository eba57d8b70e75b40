"""The host-facing Python API end to end against a real built site on 127.0.0.1."""

from __future__ import annotations

import hashlib

from registry_tool.client import load_plugin_bytes, verify_installed


def test_install_and_load(trusted) -> None:
    reg = trusted.open()
    assert [r.name for r in reg.search()] == ["alpha", "beta"]
    entry = reg.install("alpha@^1", trusted.plugins)
    assert (entry.name, entry.version) == ("alpha", "1.1.0")
    site_wasm = (trusted.site / "plugins/alpha/1.1.0/alpha.wasm").read_bytes()
    assert load_plugin_bytes(trusted.plugins, "alpha") == site_wasm
    assert entry.wasm_sha256 == hashlib.sha256(site_wasm).hexdigest()
    assert verify_installed(trusted.plugins).ok
