"""The manifest identity record: `client verify` parses only manifests an install did not record.

The record maps the sha256 of a manifest's exact bytes to the name, version and module digest its
parse gave, and lives in the trust state directory beside the trusted root.  These tests try to
make `client verify` accept a plugin folder rewritten together with its lockfile through it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from registry_tool.client import api, verify_installed
from registry_tool.client.api import (
    identity_record_path,
    load_manifest_identities,
    record_manifest_identities,
)
from registry_tool.client.install import ManifestFacts, read_lockfile
from registry_tool.client.trust_state import (
    IDENTITY_RECORD_MAGIC,
    ManifestIdentity,
    identity_record_header,
    identity_record_lines,
    lock_facts,
    parse_identity_record,
)
from registry_tool.signing import sign_bytes
from tests.world.lockfile import read_lock, write_lock

from .client_world import World

pytestmark = pytest.mark.simulated

URL = "https://example.org/plugins/"
D1, D2, W1 = "1" * 64, "2" * 64, "a" * 64


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ManifestFacts.parse `client verify` makes, by the manifest's path."""
    seen: list[str] = []
    real = ManifestFacts.parse.__func__  # type: ignore[attr-defined]

    def counting(cls: type[ManifestFacts], data: bytes, *, where: str) -> ManifestFacts:
        seen.append(where)
        result: ManifestFacts = real(cls, data, where=where)
        return result

    monkeypatch.setattr(ManifestFacts, "parse", classmethod(counting))
    return seen


def _swap_in_plain_signed(trusted: World, tmp_path: Path) -> tuple[str, str]:
    """alpha 1.1.0's manifest and module copied into alpha 1.0.0's folder, lockfile digests rewritten.

    The manifest is re-signed by alpha's maintainer with a plain `minisign -S` trusted comment (no
    plugin or version field: accepted), so the signature check cannot tell; only the identity of the
    stored manifest (version 1.1.0) can.  Returns the swapped-in manifest's and module's sha256.
    """
    trusted.open().install("alpha@1.0.0", trusted.plugins)
    other = tmp_path / "other"
    trusted.open().install("alpha@1.1.0", other)
    src = read_lockfile(other).plugins["alpha"]
    folder = trusted.plugins / "alpha/1.0.0"
    manifest = (other / src.manifest).read_bytes()
    (folder / "plugin.toml").write_bytes(manifest)
    (folder / "alpha.wasm").write_bytes((other / src.wasm).read_bytes())
    for sig in folder.glob("*.minisig"):
        sig.unlink()
    (folder / "plugin.toml.minisig").write_text(
        sign_bytes(trusted.keys.alice, manifest, trusted_comment="file:plugin.toml")
    )
    lock = read_lock(trusted.plugins)
    lock["plugins"]["alpha"].update(
        manifest_sha256=src.manifest_sha256,
        manifest_size=src.manifest_size,
        wasm_sha256=src.wasm_sha256,
        wasm_size=src.wasm_size,
        signatures=["alpha/1.0.0/plugin.toml.minisig"],
    )
    write_lock(trusted.plugins, lock)
    return src.manifest_sha256, src.wasm_sha256


def _forged_record(trusted: World, manifest_sha: str, wasm_sha: str, url: str | None = None) -> bytes:
    """A record claiming the swapped-in manifest is alpha 1.0.0 (it says 1.1.0)."""
    head = identity_record_header(url or trusted.url)
    return (
        head + identity_record_lines([(manifest_sha, ManifestIdentity("alpha", "1.0.0", wasm_sha))])
    ).encode()


def _assert_swap_caught(trusted: World) -> None:
    report = verify_installed(trusted.plugins, state_dir=trusted.state_dir)
    assert not report.ok
    finding = report.results[0].findings[0]
    assert finding.rule == "installed-tampered"
    assert "does not describe the installed module" in finding.message


# --------------------------------------------------------------------------- what the record saves


def test_install_records_each_installed_manifest_and_verify_does_not_parse_it(
    sim_trusted: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = sim_trusted.open()
    reg.install("alpha@1.0.0", sim_trusted.plugins)
    reg.install("beta@2.0.0", sim_trusted.plugins)
    known = load_manifest_identities(sim_trusted.state_dir, sim_trusted.url)
    plugins = read_lockfile(sim_trusted.plugins).plugins
    assert known == {
        e.manifest_sha256: ManifestIdentity(
            e.name, e.version, e.wasm_sha256, lock_facts(e.abi, e.permissions, e.dependencies.items())
        )
        for e in plugins.values()
    }
    parses = _count_parses(monkeypatch)
    report = verify_installed(sim_trusted.plugins, state_dir=sim_trusted.state_dir)
    assert report.ok and len(report.results) == 2
    assert parses == []
    # Without the trust state (digests only) there is no record: every manifest is parsed.
    assert verify_installed(sim_trusted.plugins).ok
    assert sorted(parses) == ["alpha/1.0.0/plugin.toml", "beta/2.0.0/plugin.toml"]


def test_manifests_installed_before_the_record_existed_are_parsed(
    sim_trusted: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim_trusted.open().install("alpha@1.0.0", sim_trusted.plugins)
    identity_record_path(sim_trusted.state_dir, sim_trusted.url).unlink()
    parses = _count_parses(monkeypatch)
    assert verify_installed(sim_trusted.plugins, state_dir=sim_trusted.state_dir).ok
    assert parses == ["alpha/1.0.0/plugin.toml"]


def test_a_record_line_disagreeing_with_the_entry_is_left_to_the_parse(
    sim_trusted: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong line can cost a parse, never a false verdict: the parse decides whenever they differ."""
    sim_trusted.open().install("alpha@1.0.0", sim_trusted.plugins)
    entry = read_lockfile(sim_trusted.plugins).plugins["alpha"]
    path = identity_record_path(sim_trusted.state_dir, sim_trusted.url)
    path.write_text(
        identity_record_header(sim_trusted.url)
        + identity_record_lines(
            [(entry.manifest_sha256, ManifestIdentity("alpha", "9.9.9", entry.wasm_sha256))]
        )
    )
    parses = _count_parses(monkeypatch)
    assert verify_installed(sim_trusted.plugins, state_dir=sim_trusted.state_dir).ok
    assert parses == ["alpha/1.0.0/plugin.toml"]


# --------------------------------------------------------------------------- attacks


@pytest.mark.parametrize("source", ["alpha@1.1.0", "beta@2.0.0"])
def test_another_signed_release_swapped_in_is_caught_although_the_record_knows_its_manifest(
    sim_trusted: World, tmp_path: Path, source: str
) -> None:
    """The record holds the swapped-in manifest (installed elsewhere with the same trust state):
    its line says what that manifest is, which is not the entry's release."""
    sim_trusted.open().install("alpha@1.0.0", sim_trusted.plugins)
    other = tmp_path / "other"
    sim_trusted.open().install(source, other)
    src = read_lockfile(other).plugins[source.split("@")[0]]
    assert src.manifest_sha256 in load_manifest_identities(sim_trusted.state_dir, sim_trusted.url)
    folder = sim_trusted.plugins / "alpha/1.0.0"
    for f in folder.iterdir():
        f.unlink()
    sigs = []
    for f in (other / src.release_dir).iterdir():
        target = "alpha.wasm" if f.name.endswith(".wasm") else f.name
        (folder / target).write_bytes(f.read_bytes())
        if f.name.endswith(".minisig"):
            sigs.append(f"alpha/1.0.0/{f.name}")
    lock = read_lock(sim_trusted.plugins)
    lock["plugins"]["alpha"].update(
        manifest_sha256=src.manifest_sha256,
        manifest_size=src.manifest_size,
        wasm_sha256=src.wasm_sha256,
        wasm_size=src.wasm_size,
        signatures=sorted(sigs),
    )
    write_lock(sim_trusted.plugins, lock)
    _assert_swap_caught(sim_trusted)


def test_the_plain_signed_swap_is_caught_with_the_genuine_record(sim_trusted: World, tmp_path: Path) -> None:
    _swap_in_plain_signed(sim_trusted, tmp_path)
    _assert_swap_caught(sim_trusted)


def test_a_forged_record_in_a_state_directory_others_can_write_is_not_used(
    sim_trusted: World, tmp_path: Path
) -> None:
    manifest_sha, wasm_sha = _swap_in_plain_signed(sim_trusted, tmp_path)
    identity_record_path(sim_trusted.state_dir, sim_trusted.url).write_bytes(
        _forged_record(sim_trusted, manifest_sha, wasm_sha)
    )
    os.chmod(sim_trusted.state_dir, 0o777)
    _assert_swap_caught(sim_trusted)


def test_a_forged_record_others_can_write_is_not_used(sim_trusted: World, tmp_path: Path) -> None:
    manifest_sha, wasm_sha = _swap_in_plain_signed(sim_trusted, tmp_path)
    path = identity_record_path(sim_trusted.state_dir, sim_trusted.url)
    path.write_bytes(_forged_record(sim_trusted, manifest_sha, wasm_sha))
    os.chmod(path, 0o666)
    _assert_swap_caught(sim_trusted)


def test_a_record_reached_through_a_link_is_not_used(sim_trusted: World, tmp_path: Path) -> None:
    manifest_sha, wasm_sha = _swap_in_plain_signed(sim_trusted, tmp_path)
    planted = tmp_path / "planted.manifests"
    planted.write_bytes(_forged_record(sim_trusted, manifest_sha, wasm_sha))
    path = identity_record_path(sim_trusted.state_dir, sim_trusted.url)
    path.unlink()
    path.symlink_to(planted)
    _assert_swap_caught(sim_trusted)


def test_a_record_of_another_registry_is_not_used(sim_trusted: World, tmp_path: Path) -> None:
    manifest_sha, wasm_sha = _swap_in_plain_signed(sim_trusted, tmp_path)
    identity_record_path(sim_trusted.state_dir, sim_trusted.url).write_bytes(
        _forged_record(sim_trusted, manifest_sha, wasm_sha, url="https://other.example/plugins/")
    )
    _assert_swap_caught(sim_trusted)


def test_a_record_planted_in_the_plugin_directory_is_never_read(sim_trusted: World, tmp_path: Path) -> None:
    """Only the trust state directory holds the record: the plugin directory's writer cannot add one."""
    manifest_sha, wasm_sha = _swap_in_plain_signed(sim_trusted, tmp_path)
    name = identity_record_path(sim_trusted.state_dir, sim_trusted.url).name
    (sim_trusted.plugins / name).write_bytes(_forged_record(sim_trusted, manifest_sha, wasm_sha))
    (sim_trusted.plugins / "alpha" / name).write_bytes(_forged_record(sim_trusted, manifest_sha, wasm_sha))
    _assert_swap_caught(sim_trusted)


# --------------------------------------------------------------------------- the file


def test_the_record_is_bound_to_its_registry_url() -> None:
    data = (
        identity_record_header(URL) + identity_record_lines([(D1, ManifestIdentity("alpha", "1.0.0", W1))])
    ).encode()
    assert parse_identity_record(data, URL) == {D1: ManifestIdentity("alpha", "1.0.0", W1)}
    assert parse_identity_record(data, "https://example.org/other/") == {}
    assert parse_identity_record(data[1:], URL) == {}


def test_only_whole_well_formed_lines_count() -> None:
    good = f"{D1} alpha 1.0.0 {W1}\n"
    for bad in (
        f"{D2} alpha 1.0.0 {W1}",  # torn: no newline
        f"{D2} alpha 1.0.0 {W1} extra\n",
        f"{D2} Alpha 1.0.0 {W1}\n",
        f"{D2[:63]} alpha 1.0.0 {W1}\n",
        f"{D2} alpha 1.0.0 {W1[:63]}\n",
        f"x{D2} alpha 1.0.0 {W1}\n",
    ):
        data = (identity_record_header(URL) + good + bad).encode()
        assert parse_identity_record(data, URL) == {D1: ManifestIdentity("alpha", "1.0.0", W1)}, bad
    assert parse_identity_record((identity_record_header(URL) + good).encode() + b"\xff\n", URL) == {}


def test_identities_no_line_can_hold_are_not_recorded() -> None:
    assert identity_record_lines([(D1, ManifestIdentity("alpha", "1.0.0 x", W1))]) == ""
    assert identity_record_lines([(D1, ManifestIdentity("alpha\n", "1.0.0", W1))]) == ""
    assert identity_record_lines([("x" * 64, ManifestIdentity("alpha", "1.0.0", W1))]) == ""


def test_an_append_after_a_torn_line_starts_on_its_own_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    record_manifest_identities(state, URL, [(D1, ManifestIdentity("alpha", "1.0.0", W1))])
    path = identity_record_path(state, URL)
    with path.open("ab") as fh:
        fh.write(f"{D2} beta 2.0".encode())  # a writer killed mid-line
    record_manifest_identities(state, URL, [(D2, ManifestIdentity("beta", "2.0.0", W1))])
    assert load_manifest_identities(state, URL) == {
        D1: ManifestIdentity("alpha", "1.0.0", W1),
        D2: ManifestIdentity("beta", "2.0.0", W1),
    }
    assert path.stat().st_mode & 0o077 == 0


def test_a_full_record_starts_again_with_the_newest_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    monkeypatch.setattr(api, "MAX_IDENTITY_RECORD", 300)  # room for the header and one line
    record_manifest_identities(state, URL, [(D1, ManifestIdentity("alpha", "1.0.0", W1))])
    record_manifest_identities(state, URL, [(D2, ManifestIdentity("beta", "2.0.0", W1))])
    assert load_manifest_identities(state, URL) == {D2: ManifestIdentity("beta", "2.0.0", W1)}
    assert not list(state.glob(".*.tmp"))


def test_a_restart_killed_before_its_rename_is_cleaned_by_the_next_writer(tmp_path: Path) -> None:
    state = tmp_path / "state"
    record_manifest_identities(state, URL, [(D1, ManifestIdentity("alpha", "1.0.0", W1))])
    path = identity_record_path(state, URL)
    stale = state / f".{path.name}.0123abcd.tmp"
    stale.write_text("half")
    record_manifest_identities(state, URL, [(D2, ManifestIdentity("beta", "2.0.0", W1))])
    assert not stale.exists()
    assert len(load_manifest_identities(state, URL)) == 2


def test_a_link_at_the_record_is_never_written_through(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    target = tmp_path / "victim"
    target.write_text("keep\n")
    identity_record_path(state, URL).symlink_to(target)
    record_manifest_identities(state, URL, [(D1, ManifestIdentity("alpha", "1.0.0", W1))])
    assert target.read_text() == "keep\n"


def test_a_record_that_cannot_be_written_does_not_fail_the_install(sim_trusted: World) -> None:
    path = identity_record_path(sim_trusted.state_dir, sim_trusted.url)
    path.mkdir()  # a directory where the file belongs
    entry = sim_trusted.open().install("alpha@1.0.0", sim_trusted.plugins)
    assert entry.version == "1.0.0"
    assert verify_installed(sim_trusted.plugins, state_dir=sim_trusted.state_dir).ok


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_verify_without_a_record_and_with_it_report_the_same(sim_trusted: World, tmp_path: Any) -> None:
    reg = sim_trusted.open()
    reg.install("alpha@1.0.0", sim_trusted.plugins)
    reg.install("beta@2.0.0", sim_trusted.plugins)
    (sim_trusted.plugins / "beta/2.0.0/beta.wasm").write_bytes(b"\0asm\1\0\0\0")
    with_record = verify_installed(sim_trusted.plugins, state_dir=sim_trusted.state_dir).to_json()
    identity_record_path(sim_trusted.state_dir, sim_trusted.url).unlink()
    without = verify_installed(sim_trusted.plugins, state_dir=sim_trusted.state_dir).to_json()
    assert with_record == without
    assert not with_record["ok"]


def test_appends_from_concurrent_installs_all_land_whole(tmp_path: Path) -> None:
    """Writers of one state directory append under a lock: no line is lost or torn."""
    import threading

    state = tmp_path / "state"
    digests = [f"{i:064x}" for i in range(40)]

    def write(chunk: list[str]) -> None:
        for d in chunk:
            record_manifest_identities(state, URL, [(d, ManifestIdentity("alpha", "1.0.0", W1))])

    threads = [threading.Thread(target=write, args=(digests[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(load_manifest_identities(state, URL)) == sorted(digests)
    text = identity_record_path(state, URL).read_text()
    assert text.count(IDENTITY_RECORD_MAGIC) == 1 and len(text.splitlines()) == 41


def test_an_install_that_fails_verification_records_nothing(sim_trusted: World) -> None:
    from registry_tool.errors import CheckFailed

    (sim_trusted.site / "plugins/alpha/1.0.0/alpha.wasm").write_bytes(b"\0asm\1\0\0\0tampered")
    sim_trusted._site_changed()  # serve the tampered module
    with pytest.raises(CheckFailed):
        sim_trusted.open().install("alpha@1.0.0", sim_trusted.plugins)
    assert not identity_record_path(sim_trusted.state_dir, sim_trusted.url).exists()


@pytest.mark.parametrize(
    "field, value",
    [("permissions", ["keys", "network"]), ("abi", "wasi-command"), ("dependencies", {"beta": "^2"})],
)
def test_lockfile_facts_that_differ_from_the_signed_manifest_are_tampering(
    sim_trusted: World, field: str, value: object
) -> None:
    """Hosts read abi, permissions and dependencies from the lockfile (``list_installed``): an edit
    there passed verify, since only the files' digests and the manifest's identity were compared."""
    sim_trusted.open().install("alpha@1.0.0", sim_trusted.plugins)
    lock = read_lock(sim_trusted.plugins)
    lock["plugins"]["alpha"][field] = value
    write_lock(sim_trusted.plugins, lock)
    for state in (sim_trusted.state_dir, None):  # with the identity record, and by the parse
        report = verify_installed(sim_trusted.plugins, state_dir=state)
        assert not report.ok, field
        finding = report.results[0].findings[0]
        assert finding.rule == "installed-tampered" and "differ from plugin.toml" in finding.message
