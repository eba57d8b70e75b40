"""Fixtures every test area shares: one key set, index trees and site simulators.

The builders themselves live in the ``tests.world`` package; area conftest files (ci,
registry, client) wrap them with their own data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.world import IndexTree, Keys, SiteSimulator, registry_toml


def pytest_configure(config: pytest.Config) -> None:
    """Markers of the shared test world; a private state folder for the whole run.

    `build` and `resign` record what they signed in the user's state folder: tests (and the
    tool processes they start, which inherit the environment) write there, not in the home of
    whoever runs the suite.
    """
    config.addinivalue_line(
        "markers", "simulated: the client reaches the site through the in-memory SiteSimulator"
    )
    os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="registry-tool-test-state-")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the run's state folder."""
    state = os.environ.get("XDG_STATE_HOME", "")
    if os.path.basename(state).startswith("registry-tool-test-state-"):
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def world_keys() -> Keys:
    """One key per role (root, index, alice, bob, index2, mallory), made once per session."""
    return Keys.generate()


@pytest.fixture
def make_index_tree(tmp_path: Path, world_keys: Keys) -> Callable[..., IndexTree]:
    """``make_index_tree(name="test", **registry_toml_options)``: a new signed index (root v1-v3,
    no releases) below ``tmp_path``."""
    count = 0

    def make(name: str = "test-registry", **options: object) -> IndexTree:
        nonlocal count
        count += 1
        toml = registry_toml(name, **options)  # type: ignore[arg-type]
        return IndexTree.create(tmp_path / f"index{count}", world_keys, registry=name, toml=toml)

    return make


@pytest.fixture
def site_simulator() -> Callable[[Path], SiteSimulator]:
    """``site_simulator(site_dir)``: an in-memory origin serving a built site."""
    return SiteSimulator.from_dir


@pytest.fixture(scope="session")
def minisign() -> str:
    """The reference minisign binary (interop tests use the real tool)."""
    path = shutil.which("minisign")
    if path is None:
        pytest.fail("the minisign binary is required (Debian package `minisign`; scripts/setup-system.sh)")
    return path
