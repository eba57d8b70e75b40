"""The host-facing Python API end to end against a real built site on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from registry_tool.client import (
    HttpFetcher,
    Registry,
    list_installed,
    load_plugin,
    load_plugin_bytes,
    remove,
    trust,
    verify_installed,
)
from registry_tool.client.errors import ApprovalRequiredError, PermissionEscalationError

from .client_world import World


def test_host_trusts_searches_installs_verifies_updates_removes(world: World) -> None:
    root1 = (world.site / "root/1.root.json").read_bytes()
    state = trust(world.url, root_bytes=root1, state_dir=world.state_dir)
    assert state.root_version == 3

    reg = Registry.open(world.url, state_dir=world.state_dir)
    assert [r.name for r in reg.search()] == ["alpha", "beta"]
    assert [r.name for r in reg.search("MULTIPLIES")] == ["beta"]
    assert [r.version for r in reg.info("beta")] == ["2.0.0", "2.1.0"]
    assert reg.resolve("alpha@^1").version == "1.1.0"

    asked: list[tuple[str, frozenset[str]]] = []

    def host_ui(release: Any, missing: frozenset[str]) -> bool:
        asked.append((release.version, missing))
        return True

    entry = reg.install("alpha", world.plugins, prompt=host_ui)
    assert asked == [("2.0.0", frozenset({"keys"}))] and entry.permissions == ("keys",)
    site_wasm = (world.site / "plugins/alpha/2.0.0/alpha.wasm").read_bytes()
    assert load_plugin_bytes(world.plugins, "alpha") == site_wasm
    # With the signed manifest of the very release the bytes are (hosts read plugin.toml again).
    for state in (None, world.state_dir):
        loaded = load_plugin(world.plugins, "alpha", state_dir=state)
        signed = (world.site / "plugins/alpha/2.0.0/plugin.toml").read_bytes()
        assert (loaded.wasm, loaded.manifest, loaded.entry) == (site_wasm, signed, entry)
    assert entry.wasm_sha256 == hashlib.sha256(site_wasm).hexdigest()
    assert verify_installed(world.plugins, state_dir=world.state_dir).ok

    world.add_release("alpha", "2.1.0", permissions=("keys", "network"))
    world.build()
    reg = Registry.open(world.url, state_dir=world.state_dir)
    with pytest.raises(PermissionEscalationError, match="network"):
        reg.update(world.plugins)
    assert [e.version for e in list_installed(world.plugins)] == ["2.0.0"]
    [(old, new)] = reg.update(world.plugins, allow={"network"})
    assert (old.version, new.version, new.permissions) == ("2.0.0", "2.1.0", ("keys", "network"))

    remove(world.plugins, "alpha")
    assert list_installed(world.plugins) == []


def test_download_writes_nothing(trusted: World) -> None:
    reg = trusted.open()
    verified = reg.download(reg.resolve("beta"))
    assert verified.wasm_bytes == (trusted.site / "plugins/beta/2.0.0/beta.wasm").read_bytes()
    assert verified.signers == (trusted.keys.bob.key_id,)
    assert not trusted.plugins.exists()


def test_approval_required_without_prompt(trusted: World) -> None:
    with pytest.raises(ApprovalRequiredError):
        trusted.open().install("alpha", trusted.plugins)
    assert not (trusted.plugins / "registry-tool.lock.json").exists()


def test_injected_fetcher(trusted: World) -> None:
    """Hosts can bring their own transport; verification is unchanged."""
    seen: list[str] = []

    class Logging:
        def __init__(self) -> None:
            self.inner = HttpFetcher()

        def fetch(self, url: str, *, max_size: int) -> bytes:
            seen.append(url.removeprefix(trusted.url))
            return self.inner.fetch(url, max_size=max_size)

    trusted.open(fetcher=Logging()).install("beta", trusted.plugins)
    assert "registry.json" in seen and "plugins/beta/2.0.0/beta.wasm" in seen


def test_file_url_registry(world: World) -> None:
    url = world.site.as_uri()
    trust(url, root_bytes=(world.site / "root/1.root.json").read_bytes(), state_dir=world.state_dir)
    entry = Registry.open(url, state_dir=world.state_dir).install("beta", world.plugins)
    assert entry.registry == url + "/"
    assert verify_installed(world.plugins).ok


def test_mirror_used_when_origin_is_down(trusted: World, other_server: Any) -> None:
    import shutil

    shutil.copytree(trusted.site, other_server.root, dirs_exist_ok=True)
    trusted.server.status("/registry.json", 503)
    reg = trusted.open(mirrors=[other_server.url])
    reg.install("beta", trusted.plugins)
    assert "/registry.json" in other_server.requests


def test_update_with_nothing_changed_downloads_only_the_top_document(trusted: World) -> None:
    """The verified cache answers the tree walk and the plugin document: top + signatures only."""
    trusted.open().install("alpha@^1", trusted.plugins)
    trusted.server.requests.clear()
    assert trusted.open().update(trusted.plugins) == []
    fetched = [r for r in trusted.server.requests if not r.startswith("/root/")]
    assert all(r.startswith("/registry.json") for r in fetched), fetched
    sizes = [
        (trusted.site / r.lstrip("/")).stat().st_size
        for r in fetched
        if (trusted.site / r.lstrip("/")).exists()
    ]
    assert sum(sizes) <= 2048, (fetched, sizes)


def test_install_fetches_top_one_path_one_plugin_document_and_the_release(trusted: World) -> None:
    trusted.server.requests.clear()
    trusted.open().install("beta", trusted.plugins)
    meta = [r for r in trusted.server.requests if r.startswith("/meta/")]
    assert len(meta) == 2  # the (single-leaf) tree and beta's plugin document: no catalog, no alpha
    assert not any("/alpha/" in r for r in trusted.server.requests)


def test_search_reads_only_the_catalog(trusted: World) -> None:
    trusted.server.requests.clear()
    hits = trusted.open().search("multiplies")
    assert [(h.name, h.version) for h in hits] == [("beta", "2.0.0")]
    assert len([r for r in trusted.server.requests if r.startswith("/meta/")]) == 1


def test_a_catalog_entry_the_tree_lacks_is_the_registrys_fault(trusted: World) -> None:
    """A stolen index key lists a plugin the tree does not hold: exit 1 (malformed), not a user typo."""
    from registry_tool.client.errors import MalformedRegistryError
    from registry_tool.format import meta_path
    from tests.world.index import forge_top, write_meta

    top = json.loads((trusted.site / "registry.json").read_bytes())
    catalog = json.loads((trusted.site / meta_path(top["catalog"]["sha256"])).read_bytes())
    ghost = dict(next(iter(catalog["plugins"].values())), latest=None)
    catalog["plugins"]["ghost"] = ghost
    (pin,) = write_meta(trusted.site, [(json.dumps(catalog, sort_keys=True) + "\n").encode()])

    def repin(raw: dict[str, Any]) -> None:
        raw["catalog"] = {"sha256": pin.sha256, "size": pin.size}

    forge_top(trusted.site, repin, trusted.keys.index)
    with pytest.raises(MalformedRegistryError, match="ghost"):
        trusted.open().search("", include_yanked=True)
