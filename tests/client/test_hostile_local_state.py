"""Attack: local state a client trusts (its state folder, an installed plugin.toml re-pinned in the
lockfile, a file:// registry in a shared folder) rewritten into values that once crashed or hung
the client.

Each must end in the client's named refusal (a finding, or a ``RegistryToolError``), never an
OverflowError from a year-1 expiry or an infinite TOML float, never a wait on a planted FIFO.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from registry_tool.client import Registry, load_plugin_bytes, trust, verify_installed
from registry_tool.client.errors import FetchError, MalformedRegistryError
from registry_tool.client.store import StateStore
from registry_tool.client.trust_state import ManifestFacts
from registry_tool.errors import RegistryToolError
from tests.world.lockfile import read_lock, write_lock

from .client_world import NOW, World


def _returns(action: Callable[[], Any]) -> Any:
    """``action()``'s result or exception, failing the test if it blocks (a FIFO opened for reading
    waits for a writer forever; 60 s is not a race with anything)."""
    done: dict[str, Any] = {}

    def run() -> None:
        try:
            done["value"] = action()
        except BaseException as err:  # handed to the test thread
            done["error"] = err

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "blocked on a planted FIFO"
    if "error" in done:
        raise done["error"]
    return done["value"]


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


def test_a_fifo_planted_in_the_metadata_cache_is_skipped_not_waited_on(installed: World) -> None:
    cache = installed.state_dir / "cache"
    top = json.loads((installed.site / "registry.json").read_bytes())
    planted = cache / top["catalog"]["sha256"]
    planted.unlink(missing_ok=True)
    os.mkfifo(planted)
    hits = _returns(lambda: installed.open().search("alpha"))
    assert [h.name for h in hits] == ["alpha"]


def test_a_fifo_in_a_file_registry_is_refused_not_waited_on(world: World, tmp_path: Path) -> None:
    url = world.site.as_uri() + "/"
    state = tmp_path / "state"
    root = (world.site / "root" / "1.root.json").read_bytes()
    trust(url, root_bytes=root, state_dir=state, clock=lambda: NOW)
    (world.site / "registry.json").unlink()
    os.mkfifo(world.site / "registry.json")
    with pytest.raises(FetchError, match="not a regular file"):
        _returns(lambda: Registry.open(url, state_dir=state, clock=lambda: NOW + timedelta(minutes=5)))


@pytest.mark.parametrize("where", ["a-file", "under-a-file", "dev-null"])
def test_a_plugin_directory_that_cannot_be_one_is_a_usage_error(
    trusted: World, tmp_path: Path, where: str
) -> None:
    """A host catching RegistryToolError got FileExistsError / NotADirectoryError from install."""
    from registry_tool.errors import UsageError

    afile = tmp_path / "afile"
    afile.write_text("x")
    dest = {"a-file": afile, "under-a-file": afile / "plugins", "dev-null": Path("/dev/null")}[where]
    with pytest.raises(UsageError, match="plugin directory"):
        trusted.open().install("alpha", dest)


def _rules(world: World) -> set[str]:
    report = _returns(lambda: verify_installed(world.plugins, state_dir=world.state_dir))
    return {f.rule for r in report.results for f in r.findings}


def test_special_files_in_the_plugin_directory_are_unsafe_paths(installed: World) -> None:
    # As the Go and Rust verifiers classify them: a FIFO or folder where the tool wrote a file is
    # as unsafe as a planted link (it was "malformed", or "installed-tampered" for the wasm).
    release = installed.plugins / "alpha" / "1.0.0"
    signature = release / "plugin.toml.minisig"
    saved = signature.read_bytes()
    signature.unlink()
    os.mkfifo(signature)
    assert "unsafe-path" in _rules(installed)
    signature.unlink()
    signature.write_bytes(saved + b"\n" * (17 * 1024))  # past the 16 KiB a signature file may have
    assert "installed-tampered" in _rules(installed)
    signature.write_bytes(saved)
    lockfile = installed.plugins / "registry-tool.lock.json"
    saved = lockfile.read_bytes()
    lockfile.unlink()
    os.mkfifo(lockfile)
    with pytest.raises(RegistryToolError) as caught:
        _returns(lambda: verify_installed(installed.plugins, state_dir=installed.state_dir))
    assert caught.value.code == "unsafe-path"
    lockfile.unlink()
    with lockfile.open("wb") as fh:  # sparse: 64 MiB and one byte
        fh.truncate(64 * 1024 * 1024 + 1)
    with pytest.raises(RegistryToolError) as caught:
        verify_installed(installed.plugins, state_dir=installed.state_dir)
    assert caught.value.code == "lockfile"
    lockfile.unlink()
    lockfile.write_bytes(saved)
    assert verify_installed(installed.plugins, state_dir=installed.state_dir).ok


def test_a_published_at_that_is_not_a_time_is_a_lockfile_error(installed: World) -> None:
    lock = read_lock(installed.plugins)
    lock["plugins"]["alpha"]["published_at"] = "2026-11-20 00:00:00Z"
    write_lock(installed.plugins, {k: v for k, v in lock.items() if k != "lockfile_version"})
    with pytest.raises(RegistryToolError) as caught:
        verify_installed(installed.plugins, state_dir=installed.state_dir)
    assert caught.value.code == "lockfile"


def test_links_where_an_operation_works_are_refused_before_anything_is_written(installed: World) -> None:
    # Decision 14: a link in the folders of the plugin being installed or verified, even one the
    # client never reads (it passed before); verify also refuses one directly in the directory.
    top = installed.plugins / "stray"
    top.symlink_to("/etc")
    with pytest.raises(RegistryToolError) as caught:
        verify_installed(installed.plugins, state_dir=installed.state_dir)
    assert caught.value.code == "unsafe-path"
    top.unlink()
    dangling = installed.plugins / "alpha" / "1.0.0" / "dangling"
    dangling.symlink_to("nowhere")
    assert "unsafe-path" in _rules(installed)
    with pytest.raises(RegistryToolError) as caught:
        installed.open().install("alpha@1.1.0", installed.plugins, allow={"keys"})
    assert caught.value.code == "unsafe-path"
    dangling.unlink()
    assert verify_installed(installed.plugins, state_dir=installed.state_dir).ok


def test_a_trust_state_that_cannot_be_read_is_the_environment_not_a_bad_plugin(
    installed: World, tmp_path: Path
) -> None:
    """A --state-dir under a file failed every plugin with exit 1, as if each had been tampered with."""
    (tmp_path / "file").write_text("x")
    report = verify_installed(installed.plugins, state_dir=tmp_path / "file" / "state")
    assert not report.ok and report.exit_code == 2
    assert report.results and all(r.findings for r in report.results if r.subject != "plugin directory")
