"""A refused removal deletes nothing: every target is checked before the first file goes.

The lockfile is committed after the files are deleted, so a refusal half way through a
multi-plugin removal would leave entries naming files that are gone.
"""

from __future__ import annotations

import pytest

from registry_tool._files import UnsafePathError
from registry_tool.client import remove_many, verify_installed
from registry_tool.client.errors import PluginRequiredError
from registry_tool.client.install import read_lockfile

from .client_world import World

pytestmark = pytest.mark.simulated


@pytest.fixture
def two(trusted: World) -> World:
    reg = trusted.open()
    reg.install("alpha@1.0.0", trusted.plugins)
    reg.install("beta", trusted.plugins)
    return trusted


def _files(world: World, name: str) -> list[bytes]:
    entry = read_lockfile(world.plugins).plugins[name]
    return [(world.plugins / rel).read_bytes() for rel in entry.files]


def test_a_directory_planted_at_a_later_targets_file_refuses_before_anything_is_deleted(two: World) -> None:
    alpha = _files(two, "alpha")
    beta = read_lockfile(two.plugins).plugins["beta"]
    wasm = two.plugins / beta.wasm
    wasm.unlink()
    wasm.mkdir()  # planted: unlink() cannot delete it
    with pytest.raises(UnsafePathError, match=r"beta/2\.0\.0/beta\.wasm"):
        remove_many(two.plugins, ["alpha", "beta"])
    assert _files(two, "alpha") == alpha  # the earlier target's files are all still there
    assert sorted(read_lockfile(two.plugins).plugins) == ["alpha", "beta"]
    assert verify_installed(two.plugins, ["alpha"]).ok


def test_a_linked_release_folder_of_a_later_target_refuses_before_anything_is_deleted(
    two: World, tmp_path: object
) -> None:
    alpha = _files(two, "alpha")
    beta = read_lockfile(two.plugins).plugins["beta"]
    folder = two.plugins / beta.release_dir
    moved = folder.with_name("moved")
    folder.rename(moved)
    folder.symlink_to(moved)
    with pytest.raises(UnsafePathError):
        remove_many(two.plugins, ["alpha", "beta"])
    assert _files(two, "alpha") == alpha
    assert sorted(read_lockfile(two.plugins).plugins) == ["alpha", "beta"]


def test_a_later_target_still_required_refuses_before_anything_is_deleted(trusted: World) -> None:
    trusted.add_release("alphalib", "1.0.0")
    trusted.add_release("alphaapp", "1.0.0", dependencies='alphalib = "^1"')
    trusted.build()
    reg = trusted.open()
    reg.install("alpha@1.0.0", trusted.plugins)
    reg.install("alphaapp", trusted.plugins)
    alpha = _files(trusted, "alpha")
    with pytest.raises(PluginRequiredError, match="alphalib is required by installed plugin"):
        remove_many(trusted.plugins, ["alpha", "alphalib"])
    assert _files(trusted, "alpha") == alpha
    assert sorted(read_lockfile(trusted.plugins).plugins) == ["alpha", "alphaapp", "alphalib"]
