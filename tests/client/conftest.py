"""Fixtures for the client tests (the support code lives in client_world.py and tests.world).

``world``/``trusted`` reach the site over HTTP on 127.0.0.1 (transport tests, the CLI);
``sim_world``/``sim_trusted`` through the in-memory ``SiteSimulator`` (trust-state and attack
tests: no sockets, no clocks).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.world import Keys, SiteSimulator

from .client_world import NOW, SiteServer, World, make_index


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    """An empty directory served by ``server``."""
    site = tmp_path / "site"
    site.mkdir()
    return site


@pytest.fixture
def server(site_dir: Path) -> Iterator[SiteServer]:
    """A file server on 127.0.0.1 for ``site_dir``."""
    srv = SiteServer(site_dir).start()
    yield srv
    srv.stop()


@pytest.fixture
def other_server(tmp_path: Path) -> Iterator[SiteServer]:
    """A second origin: another port on 127.0.0.1."""
    other = tmp_path / "other"
    other.mkdir()
    srv = SiteServer(other).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def keys(world_keys: Keys) -> Keys:
    """The session's key set."""
    return world_keys


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> tuple[Path, Path]:
    """Index + site, built once: alpha 1.0.0/1.1.0/2.0.0 (keys), beta 2.0.0 and 2.1.0 (yanked)."""
    base = tmp_path_factory.mktemp("client-template")
    world = World(base / "index", base / "site", keys, base / "state", base / "plugins")
    make_index(world.index, keys)
    world.add_release("alpha", "1.0.0")
    world.add_release("alpha", "1.1.0")
    world.add_release("alpha", "2.0.0", permissions=("keys",))
    world.add_release("beta", "2.0.0", description="multiplies numbers")
    world.add_release("beta", "2.1.0", description="multiplies numbers")
    world.yank("beta", "2.1.0", "CVE-2026-0001: wrong results")
    world.build()
    return world.index, world.site


def _copy_world(tmp_path: Path, keys: Keys, template: tuple[Path, Path]) -> World:
    index, site = tmp_path / "index", tmp_path / "site"
    shutil.copytree(template[0], index)
    shutil.copytree(template[1], site)
    return World(index, site, keys, tmp_path / "state", tmp_path / "plugins")


@pytest.fixture
def http_world(tmp_path: Path, keys: Keys, _template: tuple[Path, Path]) -> Iterator[World]:
    """A copy of the template, served over HTTP on 127.0.0.1 (started on first use)."""
    w = _copy_world(tmp_path, keys, _template)
    yield w
    w.close()


@pytest.fixture
def world(request: pytest.FixtureRequest) -> World:
    """The world most tests use: served over HTTP, or from memory for a test (module) marked
    ``simulated`` (``pytestmark = pytest.mark.simulated``); ``trusted`` follows."""
    simulated = request.node.get_closest_marker("simulated") is not None
    world: World = request.getfixturevalue("sim_world" if simulated else "http_world")
    return world


@pytest.fixture
def trusted(world: World) -> World:
    """A world whose client already pinned root version 1."""
    world.trust(clock=lambda: NOW)
    return world


@pytest.fixture
def http_trusted(http_world: World) -> World:
    """``trusted`` over HTTP, whatever ``world`` is in the test module."""
    http_world.trust(clock=lambda: NOW)
    return http_world


@pytest.fixture
def sim_world(tmp_path: Path, keys: Keys, _template: tuple[Path, Path]) -> World:
    """A copy of the template served from memory by a ``SiteSimulator`` (``world.sim``)."""
    w = _copy_world(tmp_path, keys, _template)
    w.sim = SiteSimulator.from_dir(w.site)
    return w


@pytest.fixture
def sim_trusted(sim_world: World) -> World:
    """A simulated world whose client already pinned root version 1."""
    sim_world.trust(clock=lambda: NOW)
    return sim_world
