"""Fixtures for the client tests (the support code lives in client_world.py)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from client_world import (
    NOW,
    Keys,
    SiteServer,
    World,
    make_index,
    new_key,
)


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    return site


@pytest.fixture
def server(site_dir: Path) -> Iterator[SiteServer]:
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
def keys() -> Keys:
    return Keys(*(new_key() for _ in range(6)))


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> tuple[Path, Path]:
    """Index + site, built once: alpha 1.0.0/1.1.0/2.0.0 (keys), beta 2.0.0 and 2.1.0 (yanked)."""
    base = tmp_path_factory.mktemp("client-template")
    world = World(base / "index", base / "site", keys, None, base / "state", base / "plugins")  # type: ignore[arg-type]
    make_index(world.index, keys)
    world.add_release("alpha", "1.0.0")
    world.add_release("alpha", "1.1.0")
    world.add_release("alpha", "2.0.0", permissions=("keys",))
    world.add_release("beta", "2.0.0", description="multiplies numbers")
    world.add_release("beta", "2.1.0", description="multiplies numbers")
    world.yank("beta", "2.1.0", "CVE-2026-0001: wrong results")
    world.build()
    return world.index, world.site


@pytest.fixture
def world(tmp_path: Path, keys: Keys, _template: tuple[Path, Path]) -> Iterator[World]:
    index, site = tmp_path / "index", tmp_path / "site"
    shutil.copytree(_template[0], index)
    shutil.copytree(_template[1], site)
    server = SiteServer(site).start()
    yield World(index, site, keys, server, tmp_path / "state", tmp_path / "plugins")
    server.stop()


@pytest.fixture
def trusted(world: World) -> World:
    """A world whose client already pinned root version 1."""
    world.trust(clock=lambda: NOW)
    return world
