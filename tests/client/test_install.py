"""Resolution, approval, the lockfile and crash-safe commits (plugin-directory logic)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from registry_tool.client import load_plugin_bytes, verify_installed
from registry_tool.client.errors import (
    ApprovalRequiredError,
    BadSpecError,
    InstalledFileTamperedError,
    LockfileError,
    LockfileMismatchError,
    NoMatchingVersionError,
    NotInstalledError,
    PluginNotFoundError,
    RootNotPinnedError,
    UnsafeNameError,
)
from registry_tool.client.install import (
    LOCKFILE,
    Requirement,
    approve_permissions,
    atomic_write,
    read_lockfile,
    resolve,
)
from registry_tool.client.plugin_fs import PluginDir
from registry_tool.errors import RegistryToolError
from registry_tool.format import PluginDocument, Release
from registry_tool.registry.document import Publication as RegistryDocument
from registry_tool.registry.document import read_site_dir
from registry_tool.report import Severity
from registry_tool.signing import sign_bytes
from tests.world.lockfile import fold, line, lines, read_lock, write_lock

from .client_world import World

# These cases do not test the transport: the site is served from memory (tests/world/simulator.py).
pytestmark = pytest.mark.simulated


@pytest.fixture
def doc(world: World) -> RegistryDocument:
    return read_site_dir(world.site)


def _resolve(doc: RegistryDocument, req: Requirement, host_version: str | None = None) -> Release:
    return resolve(PluginDocument(req.name, doc.plugins[req.name]), req, host_version=host_version)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("alpha", "2.0.0"),
        ("alpha@^1", "1.1.0"),
        ("alpha@^1.0.0", "1.1.0"),
        ("alpha@~1.0", "1.0.0"),
        ("alpha@1.0.0", "1.0.0"),
        ("alpha@>=1.0.0 <2.0.0", "1.1.0"),
        ("alpha@<1.1.0 || >=2.0.0", "2.0.0"),
        ("alpha@1.x", "1.1.0"),
        ("beta", "2.0.0"),  # 2.1.0 is yanked
        ("beta@^2", "2.0.0"),
        ("beta@2.1.0", "2.1.0"),  # an exact pin may choose a yanked release
    ],
)
def test_resolve(doc: RegistryDocument, spec: str, expected: str) -> None:
    assert _resolve(doc, Requirement.parse(spec)).version == expected


def test_resolve_skips_yanked_and_says_why(doc: RegistryDocument) -> None:
    with pytest.raises(NoMatchingVersionError, match=r"skipped 2.1.0 \(yanked: CVE-2026-0001"):
        _resolve(doc, Requirement.parse("beta@>=2.1.0"))


@pytest.mark.parametrize("host, expected", [("0.3.5", "2.0.0"), (None, "2.0.0")])
def test_host_compatibility(doc: RegistryDocument, host: str | None, expected: str) -> None:
    assert _resolve(doc, Requirement.parse("alpha"), host_version=host).version == expected


def test_host_incompatible(doc: RegistryDocument) -> None:
    with pytest.raises(
        NoMatchingVersionError, match=r"for host 0.5.0; skipped .*needs host >=0.2.0, <0.4.0"
    ) as err:
        _resolve(doc, Requirement.parse("alpha"), host_version="0.5.0")
    # The fix offered only versions the host cannot run: following it failed again.
    assert "available" not in (err.value.fix or "") and "no release supports host 0.5.0" in (
        err.value.fix or ""
    )


def test_a_refusal_offers_only_versions_the_host_can_install(doc: RegistryDocument) -> None:
    with pytest.raises(NoMatchingVersionError) as err:
        _resolve(doc, Requirement.parse("beta@>=2.1.0"), host_version="0.3.5")
    fix = err.value.fix or ""
    assert fix.startswith("available: ") and "2.1.0" not in fix.split(";")[0], fix  # yanked


def test_unknown_plugin_suggests(trusted: World) -> None:
    with pytest.raises(PluginNotFoundError, match="the registry has 'alpha'"):
        trusted.open().resolve("alpah")


@pytest.mark.parametrize("spec", ["alpha@not a range", "alpha@^^1", "alpha@1.0.0.0"])
def test_bad_specs(spec: str) -> None:
    with pytest.raises(BadSpecError):
        Requirement.parse(spec)


@pytest.mark.parametrize("name", ["..", "../x", "a/b", "x\0y", "A", "a", "-a", "a" * 65, "a b"])
def test_unsafe_names(name: str) -> None:
    with pytest.raises(UnsafeNameError):
        Requirement.parse(name)


# --------------------------------------------------------------------------- approval


def test_approval(doc: RegistryDocument) -> None:
    release = doc.plugins["alpha"]["2.0.0"]
    asked: list[frozenset[str]] = []

    def prompt(rel: Any, missing: frozenset[str]) -> bool:
        asked.append(missing)
        return False

    with pytest.raises(ApprovalRequiredError, match="needs permission"):
        approve_permissions(release, prompt=prompt)
    assert asked == [frozenset({"keys"})]
    assert approve_permissions(release, allow={"keys", "network"}) == ("keys",)  # least privilege
    assert approve_permissions(release, prompt=lambda r, m: True) == ("keys",)
    assert approve_permissions(release, already_granted=("keys",)) == ("keys",)
    assert approve_permissions(doc.plugins["alpha"]["1.0.0"]) == ()


# --------------------------------------------------------------------------- lockfile


def test_lockfile_is_a_base_then_one_canonical_change_line_per_commit(trusted: World) -> None:
    reg = trusted.open()
    reg.install("beta", trusted.plugins)
    reg.install("alpha@1.0.0", trusted.plugins)
    text = (trusted.plugins / LOCKFILE).read_bytes()
    base, change = lines(trusted.plugins)
    assert json.loads(base)["lockfile_version"] == 3 and list(json.loads(base)["plugins"]) == ["beta"]
    assert list(json.loads(change)) == ["plugins"] and list(json.loads(change)["plugins"]) == ["alpha"]
    for each in (base, change):
        assert each == line(json.loads(each))
    doc = read_lock(trusted.plugins)
    assert sorted(doc["plugins"]) == ["alpha", "beta"]
    lock = read_lockfile(trusted.plugins)
    assert lock.to_bytes() == line(doc)  # the folded state as a base: parse + write is the identity
    reg.install("alpha@1.0.0", trusted.plugins)  # already installed: no change, nothing written
    assert (trusted.plugins / LOCKFILE).read_bytes() == text


@pytest.mark.parametrize(
    "field, value",
    [
        ("wasm", "alpha/1.0.0/../../../etc/passwd"),
        ("wasm", "/etc/passwd"),
        ("manifest", "beta/2.0.0/plugin.toml"),
        ("version", "../1.0.0"),
        ("name", "../alpha"),
    ],
)
def test_hostile_lockfile_paths_refused(trusted: World, field: str, value: str) -> None:
    trusted.open().install("alpha@1.0.0", trusted.plugins)
    path = trusted.plugins / LOCKFILE
    doc = fold(path.read_bytes())
    if field == "name":
        doc["plugins"][value] = doc["plugins"].pop("alpha")
    else:
        doc["plugins"]["alpha"][field] = value
    path.write_bytes(line(doc))
    with pytest.raises((LockfileError, UnsafeNameError)):
        load_plugin_bytes(trusted.plugins, "alpha")


def test_load_plugin_bytes_rechecks(trusted: World) -> None:
    trusted.open().install("alpha@1.0.0", trusted.plugins)
    wasm = trusted.plugins / "alpha/1.0.0/alpha.wasm"
    assert load_plugin_bytes(trusted.plugins, "alpha") == wasm.read_bytes()
    wasm.write_bytes(b"\0asm\1\0\0\0")
    with pytest.raises(InstalledFileTamperedError, match="differs from the lockfile"):
        load_plugin_bytes(trusted.plugins, "alpha")
    with pytest.raises(NotInstalledError):
        load_plugin_bytes(trusted.plugins, "beta")


def test_manifest_tampered_after_install(trusted: World) -> None:
    trusted.open().install("alpha@1.0.0", trusted.plugins)
    manifest = trusted.plugins / "alpha/1.0.0/plugin.toml"
    manifest.write_text(manifest.read_text().replace("adds two", "adds 2"))
    report = verify_installed(trusted.plugins)
    assert not report.ok and "plugin.toml differs" in report.results[0].findings[0].message


def test_reinstall_repairs_damaged_files(trusted: World) -> None:
    reg = trusted.open()
    reg.install("alpha@1.0.0", trusted.plugins)
    (trusted.plugins / "alpha/1.0.0/alpha.wasm").unlink()
    reg.install("alpha@1.0.0", trusted.plugins)
    assert verify_installed(trusted.plugins).ok
    # Said, never silent: a host learns that its plugin folder was damaged or tampered with.
    assert any(n.startswith("alpha 1.0.0: the installed files did not verify") for n in reg.notices), (
        reg.notices
    )


def test_locked_install_refuses_changed_registry(trusted: World) -> None:
    reg = trusted.open()
    reg.install("alpha@1.0.0", trusted.plugins)
    path = trusted.plugins / LOCKFILE
    text = path.read_text()
    entry = read_lockfile(trusted.plugins).plugins["alpha"]
    path.write_text(text.replace(entry.wasm_sha256, "0" * 64))
    with pytest.raises(LockfileMismatchError, match="digests differ"):
        reg.install_locked(trusted.plugins)


# --------------------------------------------------------------------------- crash safety


@pytest.mark.parametrize("crash_at", [1, 2, 3, 4])
def test_crash_during_commit_leaves_old_or_new(
    trusted: World, monkeypatch: pytest.MonkeyPatch, crash_at: int
) -> None:
    """Die at the n-th rename of an update (journal, signature, manifest, wasm): the lockfile and
    files always describe a whole plugin, and the next writer removes the rest.  (A death at the
    lockfile's append: tests/client/test_lockfile_v3.py.)"""
    reg = trusted.open()
    reg.install("alpha@1.0.0", trusted.plugins)
    old_lock = (trusted.plugins / LOCKFILE).read_bytes()
    renames = 0
    real = os.rename

    def dying_rename(*args: Any, **kwargs: Any) -> None:
        nonlocal renames
        renames += 1
        if renames == crash_at:
            raise KeyboardInterrupt("simulated crash")
        real(*args, **kwargs)

    monkeypatch.setattr(os, "rename", dying_rename)
    with pytest.raises(KeyboardInterrupt):
        reg.install("alpha@1.1.0", trusted.plugins)
    monkeypatch.undo()
    assert (trusted.plugins / LOCKFILE).read_bytes() == old_lock
    assert verify_installed(trusted.plugins).ok
    assert (
        load_plugin_bytes(trusted.plugins, "alpha")
        == (trusted.site / "plugins/alpha/1.0.0/alpha.wasm").read_bytes()
    )
    assert not list(trusted.plugins.rglob(".part-*"))
    reg.install("beta", trusted.plugins)  # the next writer cleans up what the killed one started
    assert not (trusted.plugins / "alpha/1.1.0").exists()
    assert sorted(p.name for p in trusted.plugins.iterdir()) == [
        ".registry-tool.lck",
        "alpha",
        "beta",
        LOCKFILE,
    ]


def test_kill_after_commit_point_old_version_folder_is_not_left_behind(
    trusted: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = trusted.open()
    reg.install("alpha@1.0.0", trusted.plugins)

    def dying_unlink(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt("simulated crash while deleting the old version")

    monkeypatch.setattr(PluginDir, "unlink", dying_unlink)
    with pytest.raises(KeyboardInterrupt):
        reg.install("alpha@1.1.0", trusted.plugins)
    monkeypatch.undo()
    assert read_lockfile(trusted.plugins).plugins["alpha"].version == "1.1.0"
    assert verify_installed(trusted.plugins).ok
    assert (
        load_plugin_bytes(trusted.plugins, "alpha")
        == (trusted.site / "plugins/alpha/1.1.0/alpha.wasm").read_bytes()
    )
    # The old folder is a leftover until the next writer: `client verify` names it.
    report = verify_installed(trusted.plugins)
    leftover = [f for r in report.results for f in r.findings if f.rule == "leftover-files"]
    assert leftover and "alpha/1.0.0/" in leftover[0].message
    reg.install("beta", trusted.plugins)
    assert not (trusted.plugins / "alpha/1.0.0").exists()
    assert not (trusted.plugins / ".registry-tool.cleanup.json").exists()
    assert not [
        f
        for r in verify_installed(trusted.plugins).results
        for f in r.findings
        if f.rule != "no-trusted-root"
    ]


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    atomic_write(tmp_path, "a/b.bin", b"old")
    atomic_write(tmp_path, "a/b.bin", b"new")
    assert (tmp_path / "a/b.bin").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b.bin"]


def test_remove_unknown(trusted: World) -> None:
    from registry_tool.client import remove

    with pytest.raises(NotInstalledError):
        remove(trusted.plugins, "alpha")


def test_update_keeps_requirement(trusted: World) -> None:
    reg = trusted.open()
    reg.install("alpha@~1.0", trusted.plugins)
    trusted.add_release("alpha", "1.0.5")
    trusted.add_release("alpha", "1.3.0")
    trusted.build()
    changes = trusted.open().update(trusted.plugins)
    assert [(o.version, n.version) for o, n in changes] == [("1.0.0", "1.0.5")]
    assert changes[0][1].requested == "~1.0"
    assert trusted.open().update(trusted.plugins) == []  # nothing newer within ~1.0


def test_verify_with_trust_state_catches_rewritten_directory(trusted: World) -> None:
    """Files and lockfile rewritten consistently: digests agree, the maintainer signature does not."""
    trusted.open().install("alpha@1.0.0", trusted.plugins)
    folder = trusted.plugins / "alpha/1.0.0"
    manifest = folder / "plugin.toml"
    evil = b"\0asm\1\0\0\0"
    digest = hashlib.sha256(evil).hexdigest()
    old = read_lockfile(trusted.plugins).plugins["alpha"]
    text = manifest.read_text()
    pinned = text[text.index("[artifact]") :].split("\n\n")[0]
    manifest.write_text(
        text.replace(pinned, f'[artifact]\nfile = "alpha.wasm"\nsha256 = "{digest}"\nsize = 8')
    )
    (folder / "alpha.wasm").write_bytes(evil)
    lock = read_lock(trusted.plugins)
    lock["plugins"]["alpha"].update(
        wasm_sha256=digest,
        wasm_size=8,
        manifest_sha256=hashlib.sha256(manifest.read_bytes()).hexdigest(),
        manifest_size=len(manifest.read_bytes()),
    )
    write_lock(trusted.plugins, lock)
    assert old.wasm_size != 8
    assert verify_installed(trusted.plugins).ok  # digests alone cannot tell
    report = verify_installed(trusted.plugins, state_dir=trusted.state_dir)
    assert not report.ok
    assert "does not match the data" in report.results[0].findings[0].message
    # Loading checks the same on the bytes it returns.
    assert load_plugin_bytes(trusted.plugins, "alpha") == evil  # digests only
    with pytest.raises(RegistryToolError, match="does not match the data"):
        load_plugin_bytes(trusted.plugins, "alpha", state_dir=trusted.state_dir)
    with pytest.raises(RootNotPinnedError):
        load_plugin_bytes(trusted.plugins, "alpha", state_dir=trusted.state_dir / "typo")


def test_verify_with_a_state_directory_trusting_no_root_is_refused(trusted: World, tmp_path: Path) -> None:
    """Attack: the plugin directory and its lockfile rewritten, the state directory deleted (or a
    host giving a wrong path): the signature checks must not quietly turn off (as in Go and Rust)."""
    trusted.open().install("alpha@1.0.0", trusted.plugins)
    assert verify_installed(trusted.plugins, state_dir=trusted.state_dir).results[0].findings == []
    report = verify_installed(trusted.plugins, state_dir=tmp_path / "none")
    assert not report.ok and report.exit_code == 2
    assert report.results[0].findings[0].rule == "root-not-pinned"
    assert "client trust" in (report.results[0].findings[0].fix or "")
    # Digests only, when no state directory is given at all: said, so the caller can tell.
    report = verify_installed(trusted.plugins)
    assert report.ok and [f.rule for f in report.results[0].findings] == ["no-trusted-root"]
    assert report.results[0].findings[0].severity is Severity.notice


def test_verify_catches_files_rewritten_with_the_entrys_registry(trusted: World) -> None:
    """Attack: unsigned files, their digests re-pinned, and the entry's registry set to an untrusted
    URL: verify passed with a notice (no trusted root for that URL, so no signature was checked)."""
    trusted.open().install("alpha@1.0.0", trusted.plugins)
    entry = read_lockfile(trusted.plugins).plugins["alpha"]
    wasm, manifest = trusted.plugins / entry.wasm, trusted.plugins / entry.manifest
    old_sha = hashlib.sha256(wasm.read_bytes()).hexdigest()
    wasm.write_bytes(wasm.read_bytes() + b"\0")  # a custom-section-free module still parses as bytes
    new_sha = hashlib.sha256(wasm.read_bytes()).hexdigest()
    text = manifest.read_text().replace(old_sha, new_sha)
    text = text.replace(f"size = {entry.wasm_size}", f"size = {entry.wasm_size + 1}")
    manifest.write_text(text)
    lock = read_lock(trusted.plugins)
    lock["plugins"]["alpha"].update(
        registry="http://127.0.0.1:1/",
        wasm_sha256=new_sha,
        wasm_size=entry.wasm_size + 1,
        manifest_sha256=hashlib.sha256(manifest.read_bytes()).hexdigest(),
        manifest_size=manifest.stat().st_size,
    )
    write_lock(trusted.plugins, lock)
    assert verify_installed(trusted.plugins).ok  # digests alone agree with the rewritten files
    report = verify_installed(trusted.plugins, state_dir=trusted.state_dir)
    assert not report.ok
    assert [f.rule for f in report.results[0].findings] == ["installed-tampered"]
    assert "verify under no trusted root" in report.results[0].findings[0].message


@pytest.mark.parametrize("count", [0, 1, 3])
def test_lockfile_lines_are_exactly_canonical_json_dumps(count: int) -> None:
    """Both fast writers (base, change line) match json.dumps byte for byte, whatever the strings hold."""
    from registry_tool.client.install import LockedPlugin, Lockfile, change_line

    odd = 'quote" back\\ slash \u00e9 \u2028 \ud83d\ude00 tab\t nul\x00 del\x7f'
    plugins = {
        f"p{i}x": LockedPlugin(
            name=f"p{i}x",
            version="1.0.0-rc.1",
            registry=f"https://example.org/{odd}/",
            requested=odd if i else "",
            abi="core",
            manifest=f"p{i}x/1.0.0-rc.1/plugin.toml",
            manifest_sha256="a" * 64,
            wasm=f"p{i}x/1.0.0-rc.1/p.wasm",
            wasm_sha256="b" * 64,
            wasm_size=i * 10**15,
            signers=("1B2C3D4E5F607182", "0000000000000000")[:i],
            permissions=(),
            published_at=odd,
            manifest_size=0,
            signatures=(f"p{i}x/1.0.0-rc.1/plugin.toml.minisig",) * i,
            dependencies={"zeta": ">=1", "alpha": odd} if i == 2 else {},
            required_by=("b", "a")[:i],
        )
        for i in range(count)
    }
    lock = Lockfile(plugins)
    doc = {"lockfile_version": 3, "plugins": {n: e.lock_json() for n, e in plugins.items()}}
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"
    assert lock.to_bytes() == canonical.encode()
    if plugins:
        delta: dict[str, LockedPlugin | None] = {**plugins, "gone": None}
        change = {"plugins": {**doc["plugins"], "gone": None}}
        canonical = json.dumps(change, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"
        assert change_line(delta) == canonical.encode()


def test_a_lockfile_changed_after_it_was_parsed_is_parsed_again(trusted: World) -> None:
    """The parse reused for unchanged bytes never hides an edit: same size, other bytes, refused."""
    from registry_tool.client.errors import LockfileError
    from registry_tool.client.install import LOCKFILE, read_lockfile

    trusted.open().install("alpha@1.0.0", trusted.plugins)
    assert read_lockfile(trusted.plugins).plugins["alpha"].version == "1.0.0"
    path = trusted.plugins / LOCKFILE
    data = path.read_bytes()
    assert data.count(b'"version":"1.0.0"') == 1
    path.write_bytes(data.replace(b'"version":"1.0.0"', b'"version":"1.0.X"'))
    with pytest.raises(LockfileError, match="strict semver"):
        read_lockfile(trusted.plugins)
    path.write_bytes(data)
    assert read_lockfile(trusted.plugins).plugins["alpha"].version == "1.0.0"


def test_lockfile_entries_reused_from_the_parse_are_not_shared_with_the_caller(trusted: World) -> None:
    from registry_tool.client.install import read_lockfile

    trusted.open().install("alpha@1.0.0", trusted.plugins)
    first = read_lockfile(trusted.plugins)
    first.plugins.clear()
    assert list(read_lockfile(trusted.plugins).plugins) == ["alpha"]


@pytest.mark.parametrize("source", ["alpha@1.1.0", "alpha@1.1.0 plain comment", "beta@2.0.0"])
def test_verify_refuses_another_signed_release_swapped_in_with_its_lockfile_digests(
    trusted: World, tmp_path: Path, source: str
) -> None:
    """Another validly signed release copied into alpha 1.0.0's folder, lockfile digests rewritten.

    Every digest agrees and every signature verifies.  With a plain ``minisign -S`` trusted
    comment (no plugin/version field, accepted) the signature does not name the release, so only
    the identity read from the stored manifest ([plugin] name and version) tells the swap: a
    shortcut taking that identity from the lockfile because the manifest's digest matches the
    lockfile's would accept it, since whoever rewrites the folder can rewrite the lockfile.
    """
    trusted.open().install("alpha@1.0.0", trusted.plugins)
    other = tmp_path / "other"
    trusted.open().install(source.split()[0], other)
    src_entry = read_lockfile(other).plugins[source.split("@")[0]]
    src = other / src_entry.release_dir
    folder = trusted.plugins / "alpha/1.0.0"
    lock = read_lock(trusted.plugins)
    entry = lock["plugins"]["alpha"]
    for f in folder.iterdir():
        f.unlink()
    sigs = []
    for f in src.iterdir():
        if f.name == src_entry.wasm.rsplit("/", 1)[1]:
            (folder / entry["wasm"].rsplit("/", 1)[1]).write_bytes(f.read_bytes())
        else:
            (folder / f.name).write_bytes(f.read_bytes())
            if f.name != "plugin.toml":
                sigs.append(f"alpha/1.0.0/{f.name}")
    if source.endswith("plain comment"):  # re-signed by alpha's maintainer, as `minisign -S` would
        (folder / "plugin.toml.minisig").write_text(
            sign_bytes(
                trusted.keys.alice, (folder / "plugin.toml").read_bytes(), trusted_comment="file:plugin.toml"
            )
        )
    entry.update(
        manifest_sha256=src_entry.manifest_sha256,
        manifest_size=src_entry.manifest_size,
        wasm_sha256=src_entry.wasm_sha256,
        wasm_size=src_entry.wasm_size,
        signatures=sorted(sigs),
    )
    write_lock(trusted.plugins, lock)
    report = verify_installed(trusted.plugins, state_dir=trusted.state_dir)
    assert not report.ok
    finding = report.results[0].findings[0]
    assert finding.rule == "installed-tampered"
    assert "does not describe the installed module" in finding.message


def test_verify_refuses_a_swapped_module_with_its_lockfile_digest_and_the_signed_manifest_untouched(
    trusted: World,
) -> None:
    """Only the module and the lockfile's wasm digest rewritten: plugin.toml and its signature stay valid.

    The manifest still hashes to the lockfile's recorded digest and its signature verifies; only
    the [artifact] sha256 read from the stored manifest ties the module to what was signed.
    """
    trusted.open().install("alpha@1.0.0", trusted.plugins)
    evil = b"\0asm\1\0\0\0evil"
    (trusted.plugins / "alpha/1.0.0/alpha.wasm").write_bytes(evil)
    lock = read_lock(trusted.plugins)
    lock["plugins"]["alpha"].update(wasm_sha256=hashlib.sha256(evil).hexdigest(), wasm_size=len(evil))
    write_lock(trusted.plugins, lock)
    report = verify_installed(trusted.plugins, state_dir=trusted.state_dir)
    assert not report.ok
    finding = report.results[0].findings[0]
    assert finding.rule == "installed-tampered"
    assert "does not describe the installed module" in finding.message


def test_a_grant_does_not_carry_over_to_a_same_named_plugin_of_another_registry() -> None:
    """Attack: visit_counter from registry A granted keys; B's visit_counter got keys unasked."""
    from types import SimpleNamespace

    from registry_tool.client.errors import ApprovalRequiredError
    from registry_tool.client.install import approve_plan

    release = SimpleNamespace(name="visit_counter", version="1.0.0", permissions=("keys",))
    installed = SimpleNamespace(permissions=("keys",), registry="https://a.example/")
    approve_plan([(release, installed)], registry="https://a.example/")  # type: ignore[list-item]
    with pytest.raises(ApprovalRequiredError, match="keys"):
        approve_plan([(release, installed)], registry="https://b.example/")  # type: ignore[list-item]


def test_checking_while_another_process_commits_an_upgrade_is_not_tampering(
    trusted: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host loading during a routine upgrade read the old lockfile, then found the old release
    folder gone ("an installed file is missing"): run once more on the new lockfile."""
    import registry_tool.client.api as api
    import registry_tool.client.install as install

    trusted.open().install("alpha@~1.0", trusted.plugins)
    trusted.add_release("alpha", "1.0.5")
    trusted.build()
    real = install.read_lockfile
    upgrades = []

    def upgrade_after_reading(dest: Path) -> Any:
        lock = real(dest)
        if not upgrades:  # a writer commits between this reader's lockfile read and its file reads
            upgrades.append(trusted.open().update(trusted.plugins))
        return lock

    monkeypatch.setattr(api, "read_lockfile", upgrade_after_reading)
    monkeypatch.setattr(install, "read_lockfile", upgrade_after_reading)
    report = verify_installed(trusted.plugins, state_dir=trusted.state_dir)
    assert upgrades and report.ok, [f.text() for _, f in report.findings()]
    assert report.results[0].subject == "alpha 1.0.5"
    upgrades.clear()
    trusted.add_release("alpha", "1.0.7")
    trusted.build()
    assert load_plugin_bytes(trusted.plugins, "alpha", state_dir=trusted.state_dir)
    assert upgrades and read_lockfile(trusted.plugins).plugins["alpha"].version == "1.0.7"
