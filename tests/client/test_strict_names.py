"""Names that *almost* match: a trailing newline slips past ``re.match`` with ``$``.

``^[a-z][a-z0-9_-]{1,63}$`` matches "alpha\\n" with ``re.match`` (``$`` also matches before a
final newline).  Nothing from registry.json or the lockfile may become a file or directory name
with a control character in it, so every name check in the client matches in full.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from registry_tool.client.errors import LockfileError, UnsafeNameError
from registry_tool.client.install import LOCKFILE, check_name, commit_install, read_lockfile, remove_plugin
from tests.world.lockfile import fold, line

from .client_world import World

# These cases do not test the transport: the site is served from memory (tests/world/simulator.py).
pytestmark = pytest.mark.simulated


@pytest.mark.parametrize("name", ["alpha\n", "alpha\r", "alpha\t", "\u0430lpha", "alpha\u200b"])
def test_check_name_matches_in_full(name: str) -> None:
    with pytest.raises(UnsafeNameError):
        check_name(name)


def test_remove_with_newline_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeNameError):
        remove_plugin(tmp_path, "alpha\n")


def _rewrite_lockfile(world: World, replacements: dict[str, str]) -> None:
    path = world.plugins / LOCKFILE
    doc = fold(path.read_bytes())
    entry = doc["plugins"].pop("alpha")
    entry.update({k: v for k, v in replacements.items() if k != "name"})
    doc["plugins"][replacements.get("name", "alpha")] = entry
    path.write_bytes(line(doc))


@pytest.mark.parametrize(
    "replacements",
    [
        {  # a name with a newline, paths consistent with it
            "name": "alpha\n",
            "manifest": "alpha\n/1.0.0/plugin.toml",
            "wasm": "alpha\n/1.0.0/alpha.wasm",
        },
        {  # a version with a newline
            "version": "1.0.0\n",
            "manifest": "alpha/1.0.0\n/plugin.toml",
            "wasm": "alpha/1.0.0\n/alpha.wasm",
        },
        {"wasm": "alpha/1.0.0/alpha.wasm\n"},  # a file name with a newline
    ],
)
def test_lockfile_names_match_in_full(trusted: World, replacements: dict[str, str]) -> None:
    trusted.open().install("alpha@1.0.0", trusted.plugins)
    _rewrite_lockfile(trusted, replacements)
    with pytest.raises(LockfileError):
        read_lockfile(trusted.plugins)


def test_artifact_file_name_with_newline_is_not_written(trusted: World) -> None:
    reg = trusted.open()
    verified = reg.download(reg.resolve("alpha@1.0.0"))
    hostile = dataclasses.replace(verified, wasm_filename="alpha.wasm\n")
    with pytest.raises(UnsafeNameError):
        commit_install(trusted.plugins, hostile, requested="1.0.0", permissions=())
    assert not (trusted.plugins / "alpha").exists()


@pytest.mark.parametrize("name", ["plugin.toml", "Plugin.toml", "PLUGIN.TOML.minisig", "plugin.toml.minisig"])
def test_artifact_may_not_shadow_the_manifest_or_signatures(trusted: World, name: str) -> None:
    """On a case-insensitive filesystem (macOS, Windows) "Plugin.toml" would overwrite the manifest."""
    reg = trusted.open()
    verified = reg.download(reg.resolve("alpha@1.0.0"))
    with pytest.raises(UnsafeNameError):
        commit_install(
            trusted.plugins, dataclasses.replace(verified, wasm_filename=name), requested="", permissions=()
        )
    assert not (trusted.plugins / "alpha").exists()


@pytest.mark.parametrize("text", ["version = 1\nx = " + "[" * 50_000, "\udcff"])
def test_hostile_lockfile_is_a_lockfile_error(tmp_path: Path, text: str) -> None:
    (tmp_path / LOCKFILE).write_bytes(text.encode("utf-8", errors="surrogateescape"))
    with pytest.raises(LockfileError):
        read_lockfile(tmp_path)


def test_hostile_installed_manifest_is_reported_as_tampered() -> None:
    from registry_tool.client.errors import MalformedRegistryError
    from registry_tool.client.trust_state import ManifestFacts

    with pytest.raises(MalformedRegistryError):
        ManifestFacts.parse(b"a = " + b"{ b = " * 50_000, where="plugin.toml")
