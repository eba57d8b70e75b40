"""Local write access to the plugin directory, and a stolen index key: what the client refuses.

A host runs the client as a service user over a data directory others may write.  Links
planted below the plugin directory must never redirect a write, a deletion or a read; the
lockfile is data to check, not to trust; and an index entry signed only by the index key
must not change what a plugin may do (the maintainer-signed manifest and the module decide).
Every case runs against the real site served on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from registry_tool.client import load_plugin_bytes, verify_installed
from registry_tool.client.errors import (
    LockfileError,
    MixAndMatchError,
    NotInstalledError,
    UngrantedImportError,
    UnsafePathError,
)
from registry_tool.client.install import LEGACY_LOCKFILE, LOCK, LOCKFILE, read_lockfile, remove_plugin
from registry_tool.manifest.config import ImportPattern, Permission
from registry_tool.signing import sign_release
from tests.world.lockfile import fold, line, read_lock

from .client_world import NOW, World

# These cases do not test the transport: the site is served from memory (tests/world/simulator.py).
pytestmark = pytest.mark.simulated


@pytest.fixture
def installed(trusted: World) -> World:
    trusted.open().install("alpha@1.0.0", trusted.plugins)
    return trusted


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the plugin directory with a file nobody may touch."""
    folder = tmp_path / "outside"
    (folder / "1.1.0").mkdir(parents=True)
    (folder / "1.0.0").mkdir(parents=True)
    (folder / "1.0.0" / "precious.txt").write_text("keep me")
    (folder / "1.1.0" / "precious.txt").write_text("keep me")
    return folder


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- links below the plugin dir


def test_symlinked_plugin_folder_install_writes_nothing_outside(trusted: World, outside: Path) -> None:
    trusted.plugins.mkdir()
    (trusted.plugins / "alpha").symlink_to(outside, target_is_directory=True)
    before = tree(outside)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        trusted.open().install("alpha@1.1.0", trusted.plugins)
    assert tree(outside) == before
    assert not (trusted.plugins / LOCKFILE).exists()


def test_symlinked_version_folder_install_writes_nothing_outside(trusted: World, outside: Path) -> None:
    (trusted.plugins / "alpha").mkdir(parents=True)
    (trusted.plugins / "alpha" / "1.1.0").symlink_to(outside / "1.1.0", target_is_directory=True)
    before = tree(outside)
    with pytest.raises(UnsafePathError):
        trusted.open().install("alpha@1.1.0", trusted.plugins)
    assert tree(outside) == before


def _move_out_and_link(folder: Path, target: Path) -> None:
    """Move the files of an installed version ``folder`` to ``target`` and leave a link in its place."""
    for f in folder.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
        f.unlink()
    folder.rmdir()
    folder.symlink_to(target, target_is_directory=True)


def test_remove_through_symlinked_version_folder_deletes_nothing_and_keeps_entry(
    installed: World, outside: Path
) -> None:
    _move_out_and_link(installed.plugins / "alpha" / "1.0.0", outside / "1.0.0")
    before = tree(outside)
    with pytest.raises(UnsafePathError):
        remove_plugin(installed.plugins, "alpha")
    assert tree(outside) == before
    assert "alpha" in read_lockfile(installed.plugins).plugins  # the entry stays until the files are gone


def test_remove_deletes_only_the_files_the_lockfile_lists(installed: World) -> None:
    unrelated = installed.plugins / "alpha" / "1.0.0" / "notes.txt"
    unrelated.write_text("not ours")
    remove_plugin(installed.plugins, "alpha")
    assert unrelated.read_text() == "not ours"
    assert sorted(p.name for p in (installed.plugins / "alpha" / "1.0.0").iterdir()) == ["notes.txt"]
    assert "alpha" not in read_lockfile(installed.plugins).plugins


def test_upgrade_does_not_delete_through_a_planted_link(installed: World, outside: Path) -> None:
    _move_out_and_link(installed.plugins / "alpha" / "1.0.0", outside / "1.0.0")
    before = tree(outside)
    with pytest.raises(UnsafePathError):
        installed.open().install("alpha@1.1.0", installed.plugins)
    assert tree(outside) == before
    assert read_lockfile(installed.plugins).plugins["alpha"].version == "1.0.0"


@pytest.mark.parametrize("which", ["alpha.wasm", "plugin.toml"])
def test_verify_refuses_a_symlinked_installed_file(installed: World, tmp_path: Path, which: str) -> None:
    path = installed.plugins / "alpha" / "1.0.0" / which
    copy = tmp_path / which
    copy.write_bytes(path.read_bytes())  # same bytes: only the link is wrong
    path.unlink()
    path.symlink_to(copy)
    report = verify_installed(installed.plugins)
    assert not report.ok
    assert report.results[0].findings[0].rule == "unsafe-path"
    with pytest.raises(UnsafePathError):
        load_plugin_bytes(installed.plugins, "alpha")


def test_symlinked_lockfile_is_refused(installed: World, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.json"
    (installed.plugins / LOCKFILE).rename(real)
    (installed.plugins / LOCKFILE).symlink_to(real)
    with pytest.raises(UnsafePathError):
        read_lockfile(installed.plugins)


def test_symlinked_lock_file_is_not_truncated(installed: World, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("important")
    (installed.plugins / LOCK).unlink()
    (installed.plugins / LOCK).symlink_to(victim)
    with pytest.raises(UnsafePathError):
        installed.open().install("alpha@1.1.0", installed.plugins)
    assert victim.read_text() == "important"


# --------------------------------------------------------------------------- the lockfile as data


def test_version_1_lockfile_asks_for_reinstall(tmp_path: Path) -> None:
    (tmp_path / LEGACY_LOCKFILE).write_text('version = 1\n[[plugin]]\nname = "alpha"\n')
    with pytest.raises(LockfileError, match="version 1 lockfile") as err:
        read_lockfile(tmp_path)
    assert "reinstall" in (err.value.fix or "")


def _edit(world: World, **fields: Any) -> None:
    path = world.plugins / LOCKFILE
    doc = fold(path.read_bytes())
    doc["plugins"]["alpha"].update(fields)
    path.write_bytes(line(doc))


@pytest.mark.parametrize(
    "fields",
    [
        {"version": 1},
        {"wasm_size": "12"},
        {"wasm_size": True},
        {"wasm_size": 1.5},
        {"signers": "ABCDEF0123456789"},
        {"permissions": [1]},
        {"dependencies": []},
        {"signatures": ["alpha/1.0.0/evil.sh"]},
        {"required_by": ["../x"]},
        {"extra": "unknown member"},
        {"registry": "\ud800"},
        {"requested": "^1\udfff"},
    ],
)
def test_lockfile_value_of_the_wrong_type_is_a_named_error(installed: World, fields: dict[str, Any]) -> None:
    _edit(installed, **fields)
    with pytest.raises(LockfileError):
        read_lockfile(installed.plugins)


@pytest.mark.parametrize(
    "text",
    [
        '{"lockfile_version": 2, "plugins": {"alpha": {"wasm_size": Infinity}}}',
        '{"lockfile_version": 2, "plugins": {"alpha": {"wasm_size": NaN}}}',
        '{"lockfile_version": 2, "plugins": {"alpha": {"wasm_size": ' + "9" * 5000 + "}}}",
        '{"lockfile_version": 2, "lockfile_version": 2, "plugins": {}}',
        '{"lockfile_version": 3, "plugins": {}}',
        '{"lockfile_version": 2, "plugins": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "[]",
        "\udcff",
    ],
)
def test_hostile_lockfile_text_is_a_named_error(tmp_path: Path, text: str) -> None:
    (tmp_path / LOCKFILE).write_bytes(text.encode("utf-8", errors="surrogateescape"))
    with pytest.raises(LockfileError):
        read_lockfile(tmp_path)


def test_lockfile_is_version_3_json_lines(installed: World) -> None:
    doc = read_lock(installed.plugins)
    entry = doc["plugins"]["alpha"]
    assert doc["lockfile_version"] == 3
    assert sorted(entry) == sorted(
        [
            "version", "registry", "requested", "required_by", "dependencies", "abi", "manifest",
            "manifest_sha256", "manifest_size", "wasm", "wasm_sha256", "wasm_size", "signatures",
            "signers", "permissions", "published_at",
        ]
    )  # fmt: skip
    assert entry["manifest"] == "alpha/1.0.0/plugin.toml"
    assert entry["signatures"] == ["alpha/1.0.0/plugin.toml.minisig"]
    manifest = (installed.plugins / entry["manifest"]).read_bytes()
    assert entry["manifest_size"] == len(manifest)
    assert entry["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    assert entry["required_by"] == [] and entry["dependencies"] == {}


def test_remove_unknown_keeps_lockfile(installed: World) -> None:
    before = (installed.plugins / LOCKFILE).read_bytes()
    with pytest.raises(NotInstalledError):
        remove_plugin(installed.plugins, "beta")
    assert (installed.plugins / LOCKFILE).read_bytes() == before


# --------------------------------------------------------------------------- index-only fields


@pytest.mark.parametrize(
    "field, value",
    [
        ("host", ">=0.0.1"),
        ("abi", "wasi-command"),
        ("exports", ["add", "evil"]),
        ("limits", {"fuel": 50_000_000, "memory": 16_777_216, "wall_time_ms": 999_999}),
    ],
)
def test_stolen_index_key_cannot_change_what_the_manifest_signed(
    trusted: World, field: str, value: Any
) -> None:
    """A registry.json signed by a stolen index key sets index-only fields: mix-and-match."""
    folder = trusted.add_release("alpha", "1.2.0")
    with (folder / "plugin.toml").open("a") as fh:
        fh.write('\n[limits]\nwall_time = "2s"\n')  # declared: the index must repeat it
    sign_release(folder, trusted.keys.alice, timestamp=int(NOW.timestamp()))
    trusted.build()

    def mutate(doc: dict[str, Any]) -> None:
        doc["versions"]["1.2.0"][field] = value

    trusted.forge_plugin("alpha", mutate)
    before = trusted.snapshot()
    with pytest.raises(
        MixAndMatchError, match=f"(disagrees with its maintainer-signed manifest|lists) .*{field}"
    ):
        trusted.open().install("alpha@1.2.0", trusted.plugins)
    trusted.assert_failed_closed(before)


def _evil_release(world: World, permissions: tuple[str, ...], imports: str) -> None:
    """alpha 3.0.0, maintainer-signed, whose module imports ``imports``: a build would refuse it,
    so the site is rewritten after the build, as a malicious maintainer who holds (or colludes with
    the holder of) the index key would serve it."""
    world.add_release("alpha", "3.0.0", permissions=permissions)
    world.build()
    site = world.site / "plugins/alpha/3.0.0"
    wasm = bytes(
        wasmtime.wat2wasm(
            f'(module {imports} (func (export "add") (param i32 i32) (result i32) local.get 0))'
        )
    )
    (site / "alpha.wasm").write_bytes(wasm)
    text = (site / "plugin.toml").read_text()
    pinned = text[text.index("[artifact]") :].split("\n\n")[0]
    (site / "plugin.toml").write_text(text.replace(pinned, '[artifact]\nfile = "alpha.wasm"'))
    for sig in site.glob("plugin.toml*.minisig"):
        sig.unlink()
    sign_release(site, world.keys.alice, timestamp=int(NOW.timestamp()))
    manifest = (site / "plugin.toml").read_bytes()

    def mutate(doc: dict[str, Any]) -> None:
        entry = doc["versions"]["3.0.0"]
        entry["manifest"].update(sha256=hashlib.sha256(manifest).hexdigest(), size=len(manifest))
        entry["wasm"].update(sha256=hashlib.sha256(wasm).hexdigest(), size=len(wasm))

    world.forge_plugin("alpha", mutate)


def test_module_importing_a_gated_host_function_without_permission_is_refused(trusted: World) -> None:
    _evil_release(trusted, (), '(import "ferrite:keys" "get" (func (param i32) (result i32)))')
    before = trusted.snapshot()
    with pytest.raises(UngrantedImportError, match=r"ferrite:keys\.get"):
        trusted.open().install("alpha@3.0.0", trusted.plugins)
    trusted.assert_failed_closed(before)


def test_module_importing_beyond_its_granted_permission_is_refused_with_the_vocabulary(
    trusted: World,
) -> None:
    _evil_release(trusted, ("keys",), '(import "ferrite:net" "fetch" (func (param i32) (result i32)))')
    vocabulary = {
        "keys": Permission("keys", "", (ImportPattern("ferrite:keys"),)),
        "network": Permission("network", "", (ImportPattern("ferrite:net"),)),
    }
    reg = trusted.open()
    reg.vocabulary = vocabulary
    with pytest.raises(UngrantedImportError, match=r"ferrite:net\.fetch"):
        reg.install("alpha@3.0.0", trusted.plugins, allow={"keys"})
    assert not (trusted.plugins / "alpha" / "3.0.0").exists()


def test_module_within_its_permissions_installs_with_the_vocabulary(trusted: World) -> None:
    reg = trusted.open()
    reg.vocabulary = {"keys": Permission("keys", "", (ImportPattern("ferrite:keys"),))}
    entry = reg.install("alpha@2.0.0", trusted.plugins, allow={"keys"})
    assert entry.permissions == ("keys",)


def test_cli_registry_config_makes_the_import_check_exact(http_trusted: World) -> None:
    """`--registry-config registry.toml`: keys granted, but the module also imports ferrite:net."""
    trusted = http_trusted
    from typer.testing import CliRunner

    from registry_tool import _cli

    if not _cli.app.registered_commands:
        _cli._register_areas()
    _evil_release(trusted, ("keys",), '(import "ferrite:net" "fetch" (func (param i32) (result i32)))')
    args = ["client", "install", "alpha@3.0.0", "--allow", "keys", "--registry", trusted.url]
    args += ["--state-dir", str(trusted.state_dir), "--dir", str(trusted.plugins), "--format", "json"]
    result = CliRunner().invoke(_cli.app, [*args, "--registry-config", str(trusted.index / "registry.toml")])
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["error"]["rule"] == "undeclared-import"
    assert not (trusted.plugins / "alpha" / "3.0.0").exists()


def test_verify_refuses_a_release_folder_moved_outside_behind_a_link(installed: World, outside: Path) -> None:
    """The files are intact, only reached through a link: `client verify` used to pass."""
    folder = installed.plugins / "alpha" / "1.0.0"
    target = outside / "moved"
    folder.rename(target)
    folder.symlink_to(target, target_is_directory=True)
    report = verify_installed(installed.plugins)
    assert not report.ok and report.results[0].findings[0].rule == "unsafe-path"


@pytest.mark.parametrize(
    "text", ["", "{", '{"remove": "alpha/1.0.0/alpha.wasm"}', '{"remove": ["../../etc/passwd"]}']
)
def test_cut_short_or_hostile_cleanup_journal_deletes_nothing_and_blocks_nobody(
    installed: World, text: str
) -> None:
    (installed.plugins / ".registry-tool.cleanup.json").write_text(text)
    before = tree(installed.plugins / "alpha")
    installed.open().install("beta", installed.plugins)
    assert tree(installed.plugins / "alpha") == before
    assert not (installed.plugins / ".registry-tool.cleanup.json").exists()
    assert verify_installed(installed.plugins).ok
