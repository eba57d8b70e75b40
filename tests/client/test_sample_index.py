"""The bundled sample index (real plugins of every ABI), re-signed with test keys, through the client."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from client_world import NOW, Keys, SiteServer

from registry_tool.client import Registry, load_plugin_bytes, trust, verify_installed
from registry_tool.client.errors import ApprovalRequiredError
from registry_tool.registry.build import BuildOptions, build_site
from registry_tool.signing import sign_release
from registry_tool.trust.editing import add_maintainer, edit_root_dir, init_root_dir, new_root, sign_root_dir

SAMPLE = Path(__file__).resolve().parents[2] / "index"


@pytest.fixture
def sample_site(tmp_path: Path, keys: Keys) -> Path:
    index = tmp_path / "index"
    shutil.copytree(SAMPLE, index)
    # Whatever keys the sample ships with, this test signs the index with its own.
    shutil.rmtree(index / "root", ignore_errors=True)
    for sig in index.rglob("*.minisig"):
        sig.unlink()
    name = "ferrite-plugins"
    init_root_dir(
        index / "root",
        new_root(name, [keys.root.public_key], [keys.index.public_key], expires=NOW + timedelta(days=30)),
    )
    sign_root_dir(index / "root", keys.root)
    edit_root_dir(index / "root", add_maintainer("samples", [keys.alice.public_key], ["*"]), now=NOW)
    sign_root_dir(index / "root", keys.root)
    for manifest in sorted(index.glob("plugins/*/*/plugin.toml")):
        sign_release(manifest.parent, keys.alice)
    site = tmp_path / "site"
    build_site(BuildOptions(index=index, out=site, keys=[keys.index], now=NOW, smoke=False))
    return site


def test_every_sample_plugin_installs_verified(sample_site: Path, tmp_path: Path) -> None:
    server = SiteServer(sample_site).start()
    try:
        state, plugins = tmp_path / "state", tmp_path / "plugins"
        trust(server.url, root_bytes=(sample_site / "root/1.root.json").read_bytes(), state_dir=state)
        reg = Registry.open(server.url, state_dir=state)
        names = sorted(reg.document.plugins)
        assert len(names) >= 5
        gated = [r for r in reg.search() if r.permissions]
        assert gated, "the sample index has a permission-gated plugin"
        with pytest.raises(ApprovalRequiredError):
            reg.install(gated[0].name, plugins)
        every_permission = {p for r in reg.document.releases() for p in r.permissions}
        for name in names:
            reg.install(name, plugins, allow=every_permission)
        report = verify_installed(plugins, state_dir=state)
        assert report.ok and len(report.results) == len(names)
        for release in reg.search():
            wasm = load_plugin_bytes(plugins, release.name)
            assert wasm == (sample_site / release.wasm.path).read_bytes()
    finally:
        server.stop()
