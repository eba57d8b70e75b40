"""Attack: local state a client trusts (its state folder, an installed plugin.toml re-pinned in the
lockfile) rewritten into values that once crashed ``client verify`` with a traceback.

Each must end in the client's named refusal (a finding, or a ``RegistryToolError``), never an
OverflowError from a year-1 expiry or an infinite TOML float.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from registry_tool.client import load_plugin_bytes, verify_installed
from registry_tool.client.errors import MalformedRegistryError
from registry_tool.client.store import StateStore
from registry_tool.client.trust_state import ManifestFacts
from registry_tool.errors import RegistryToolError
from tests.world.lockfile import read_lock, write_lock

from .client_world import World


@pytest.fixture
def installed(trusted: World) -> World:
    trusted.open().install("alpha@1.0.0", trusted.plugins)
    return trusted


def test_a_stored_root_expiring_in_year_one_is_a_verdict_not_an_overflow(installed: World) -> None:
    path = StateStore(installed.state_dir).path_for(installed.url)
    state = json.loads(path.read_bytes())
    root = json.loads(state["root"])
    root["expires"] = "0001-01-01T00:00:00Z"
    state["root"] = json.dumps(root)
    path.write_text(json.dumps(state))
    try:
        report = verify_installed(installed.plugins, state_dir=installed.state_dir)
    except RegistryToolError:
        return  # refusing the state folder is as good as a finding
    assert not report.ok


@pytest.mark.parametrize(("old", "new"), [("size = ", "size = inf #"), ("[limits]", "[limits]\nfuel = inf")])
def test_an_infinite_number_in_a_repinned_manifest_is_refused_by_name(
    installed: World, old: str, new: str
) -> None:
    manifest = installed.plugins / "alpha" / "1.0.0" / "plugin.toml"
    text = manifest.read_text()
    if old not in text:
        text += "\n[limits]\n"
    data = text.replace(old, new, 1).encode()
    manifest.write_bytes(data)
    with pytest.raises(MalformedRegistryError):
        ManifestFacts.parse(data, where="plugin.toml")
    lock = read_lock(installed.plugins)  # re-pinned, as a local attacker can
    entry = lock["plugins"]["alpha"]
    entry["manifest_sha256"], entry["manifest_size"] = hashlib.sha256(data).hexdigest(), len(data)
    write_lock(installed.plugins, {k: v for k, v in lock.items() if k != "lockfile_version"})
    assert not verify_installed(installed.plugins, state_dir=installed.state_dir).ok
    with pytest.raises(RegistryToolError):
        load_plugin_bytes(installed.plugins, "alpha")
