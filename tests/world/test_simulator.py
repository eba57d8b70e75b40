"""The site simulator answers as the real fetcher does, and its faults are exact and counted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from registry_tool.client import Registry, trust
from registry_tool.client.errors import (
    DownloadTooLargeError,
    FetchError,
    HttpStatusError,
    IndexSignatureError,
    NotFoundError,
    SlowRetrievalError,
)
from tests.world import FIXED_NOW, IndexTree, Network, SiteSimulator, add_module, manifest_text


@pytest.fixture
def site(make_index_tree: Callable[..., IndexTree], tmp_path: Path) -> Path:
    tree = make_index_tree("sim-tests")
    tree.add_release("alpha", "1.0.0", manifest=manifest_text("alpha", "1.0.0"), module=add_module())
    tree.build(tmp_path / "site")
    return tmp_path / "site"


def test_serves_the_built_site_and_records_requests(
    site: Path, site_simulator: Callable[[Path], SiteSimulator], tmp_path: Path
) -> None:
    sim = site_simulator(site)
    root = sim.files["root/1.root.json"]
    state = trust(
        sim.base_url, root_bytes=root, state_dir=tmp_path / "s", fetcher=sim, clock=lambda: FIXED_NOW
    )
    assert state.root_version == 3
    reg = Registry.open(sim.base_url, state_dir=tmp_path / "s", fetcher=sim, clock=lambda: FIXED_NOW)
    assert reg.install("alpha", tmp_path / "plugins").version == "1.0.0"
    assert sim.count("registry.json") == 2 and "plugins/alpha/1.0.0/alpha.wasm" in sim.fetched


def test_faults(site: Path) -> None:
    sim = SiteSimulator.from_dir(site)
    url = sim.base_url + "registry.json"
    with pytest.raises(NotFoundError):
        sim.fetch(sim.base_url + "nothing-here", max_size=10)
    with pytest.raises(DownloadTooLargeError, match="size differs"):
        sim.fetch(url, max_size=10)
    sim.delay("registry.json", fetches=2)
    for _ in range(2):
        with pytest.raises(SlowRetrievalError):
            sim.fetch(url, max_size=10**6)
    assert sim.fetch(url, max_size=10**6) == (site / "registry.json").read_bytes()
    sim.withhold("registry.json", 503)
    with pytest.raises(HttpStatusError, match="503"):
        sim.fetch(url, max_size=10**6)
    sim.heal("registry.json")
    sim.endless("registry.json")
    with pytest.raises(DownloadTooLargeError, match="endless data"):
        sim.fetch(url, max_size=10**6)
    assert sim.count("registry.json") == 6
    with pytest.raises(FetchError, match="not served"):
        sim.fetch("https://elsewhere.test/registry.json", max_size=10)


def test_tampering_is_caught_by_the_client_and_reload_keeps_faults(site: Path, tmp_path: Path) -> None:
    sim = SiteSimulator.from_dir(site)
    trust(
        sim.base_url,
        root_bytes=sim.files["root/1.root.json"],
        state_dir=tmp_path / "s",
        fetcher=sim,
        clock=lambda: FIXED_NOW,
    )
    sim.tamper("registry.json", lambda data: data.replace(b'"version"', b'"version" ', 1))
    with pytest.raises(IndexSignatureError):
        Registry.open(sim.base_url, state_dir=tmp_path / "s", fetcher=sim, clock=lambda: FIXED_NOW)
    sim.withhold("catalog.json")
    sim.load(site)  # the honest files again; the fault stays
    assert sim.files["registry.json"] == (site / "registry.json").read_bytes()
    with pytest.raises(NotFoundError):
        sim.fetch(sim.base_url + "catalog.json", max_size=10)


def test_network_routes_by_origin(site: Path) -> None:
    origin = SiteSimulator.from_dir(site)
    mirror = SiteSimulator(origin.files, base_url="https://mirror.test/")
    mirror.replace("registry.json", b"{}")
    net = Network([origin, mirror])
    assert net.fetch(mirror.base_url + "registry.json", max_size=10) == b"{}"
    assert net.fetch(origin.base_url + "registry.json", max_size=10**6) == origin.files["registry.json"]
    assert origin.files["registry.json"] != b"{}"  # the mirror holds its own copy
