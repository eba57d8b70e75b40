"""The bundled sample index (real plugins of every ABI, signed with the sample keys) through the client."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry_tool.client import Registry, load_plugin_bytes, trust, verify_installed
from registry_tool.client.errors import ApprovalRequiredError
from registry_tool.errors import RegistryToolError
from registry_tool.registry.build import BuildOptions, build_site
from registry_tool.signing import SecretKey

from .client_world import NOW, SiteServer

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "index"


@pytest.fixture
def sample_site(tmp_path: Path) -> Path:
    """The committed sample index, built with its committed (demo-only) index key."""
    key = SecretKey.load((ROOT / "samples/keys/index.key").read_bytes(), None)
    site = tmp_path / "site"
    build_site(BuildOptions(index=SAMPLE, out=site, keys=[key], now=NOW, smoke=False))
    return site


def test_every_sample_plugin_installs_verified(sample_site: Path, tmp_path: Path) -> None:
    server = SiteServer(sample_site).start()
    try:
        state, plugins = tmp_path / "state", tmp_path / "plugins"
        trust(server.url, root_bytes=(sample_site / "root/1.root.json").read_bytes(), state_dir=state)
        reg = Registry.open(server.url, state_dir=state)
        names = sorted(reg.catalog().plugins)
        assert len(names) >= 5
        gated = [r for r in reg.search() if r.entry.permissions]
        assert gated, "the sample index has a permission-gated plugin"
        with pytest.raises(ApprovalRequiredError):
            reg.install(gated[0].name, plugins)
        every_permission = {p for n in names for r in reg.info(n) for p in r.permissions}
        for name in names:
            reg.install(name, plugins, allow=every_permission)
        report = verify_installed(plugins, state_dir=state)
        assert report.ok and len(report.results) == len(names)
        for hit in reg.search():
            wasm = load_plugin_bytes(plugins, hit.name)
            release = reg.resolve(f"{hit.name}@{hit.version}")
            assert wasm == (sample_site / release.wasm.path).read_bytes()
    finally:
        server.stop()


def test_client_verify_parses_the_root_once(
    sample_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`client verify` of N plugins: one trusted-root parse per command, not one per plugin."""
    from registry_tool.trust import Root

    server = SiteServer(sample_site).start()
    try:
        state, plugins = tmp_path / "state", tmp_path / "plugins"
        trust(server.url, root_bytes=(sample_site / "root/1.root.json").read_bytes(), state_dir=state)
        reg = Registry.open(server.url, state_dir=state)
        names = []
        for hit in reg.search():
            if hit.entry.permissions:
                continue
            try:  # what installs is all this needs (other tests judge every sample plugin)
                reg.install(hit.name, plugins)
            except RegistryToolError:
                continue
            names.append(hit.name)
        assert len(names) >= 3
    finally:
        server.stop()
    parses: list[str | None] = []
    real = Root.parse.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        Root,
        "parse",
        classmethod(lambda cls, data, **kw: parses.append(kw.get("where")) or real(cls, data, **kw)),
    )
    report = verify_installed(plugins, state_dir=state)
    assert report.ok and len(report.results) == len(names)
    assert len(parses) == 1
    # Tampering is still caught for each plugin after the first.
    victim = plugins / report.results[-1].data["manifest"]
    victim.write_bytes(victim.read_bytes() + b"\n# changed\n")
    report = verify_installed(plugins, state_dir=state)
    assert [r.ok for r in report.results] == [True] * (len(names) - 1) + [False]
