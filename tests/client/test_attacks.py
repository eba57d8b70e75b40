"""Attack and fault cases: a real signed site, mutated between client runs.

Every case checks three things: the named error (its message names the attack), nothing
new in the plugin directory, and the client's trust state (root, highest version) unchanged.
The site is served from memory by the ``SiteSimulator`` (tampering, withheld and stalled
files are its faults, deterministic and without sockets); the cases about the transport
itself (an endless body, redirects) use the real server on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from registry_tool.client import verify_installed
from registry_tool.client.errors import (
    DigestMismatchError,
    DownloadTooLargeError,
    FreezeAttackError,
    HttpStatusError,
    IndexSignatureError,
    MixAndMatchError,
    NotFoundError,
    RedirectRefusedError,
    RepublishedReleaseError,
    RollbackAttackError,
    SlowRetrievalError,
    UnsafeNameError,
    WrongSoftwareError,
)
from registry_tool.errors import CheckFailed
from registry_tool.format import (
    PathTraversalError,
    Pin,
    TreeMismatchError,
    UnsupportedFormatError,
    WrongDocumentError,
    dump_canonical,
    plugin_key,
)
from registry_tool.registry.document import read_site_dir
from registry_tool.signing import sign_release
from registry_tool.trust import RevokedKeyError, UnauthorizedSignerError
from registry_tool.trust.editing import revoke, rotate_keys
from registry_tool.trust.root import BadRootVersionError
from tests.world import Network, SiteSimulator

from .client_world import NOW, World

INFLATED = 9 * 10**15  # below the 2**53 limit of JSON numbers, above any timestamp version


@pytest.fixture
def installed(sim_trusted: World) -> World:
    """alpha 1.0.0 installed; the client has seen the current registry (served from memory)."""
    sim_trusted.open().install("alpha@1.0.0", sim_trusted.plugins)
    return sim_trusted


@pytest.fixture
def installed_http(trusted: World) -> World:
    """As ``installed``, with the site served over HTTP on 127.0.0.1 (transport cases)."""
    trusted.open().install("alpha@1.0.0", trusted.plugins)
    return trusted


def fails_closed(world: World, action: Callable[[], Any], error: type[Exception], match: str) -> None:
    before = world.snapshot()
    with pytest.raises(error, match=match):
        action()
    world.assert_failed_closed(before)


def install(world: World, spec: str = "alpha@1.1.0", **kwargs: Any) -> Callable[[], Any]:
    return lambda: world.open(**kwargs).install(spec, world.plugins, allow={"keys"})


def release_entry(raw: dict[str, Any], version: str) -> dict[str, Any]:
    """An entry of a plugin document (``raw`` is the document's JSON)."""
    entry: dict[str, Any] = raw["versions"][version]
    return entry


# --------------------------------------------------------------------------- registry.json


def test_tampered_registry_json(installed: World) -> None:
    installed.sim.tamper(
        "registry.json",
        lambda data: data.replace(b"used by the client tests", b"used by the client test!", 1),
    )
    fails_closed(installed, install(installed), IndexSignatureError, "tampered registry.json or signature")


def test_tampered_signature(installed: World) -> None:

    def flip(data: bytes) -> bytes:
        lines = data.splitlines()
        sig = bytearray(lines[1])
        sig[20] = ord("A") if sig[20] != ord("A") else ord("B")
        lines[1] = bytes(sig)
        return b"\n".join(lines) + b"\n"

    installed.sim.tamper("registry.json.minisig", flip)
    fails_closed(installed, install(installed), IndexSignatureError, "tampered registry.json or signature")


@pytest.mark.parametrize("target", ["registry.json.minisig", "plugins/alpha/1.1.0/plugin.toml.minisig"])
def test_signature_file_that_is_not_utf8(installed: World, target: str) -> None:
    """Only the untrusted comment changes (nothing signed): still no minisign file (trust.md 3.3),
    as the Go and Rust verifiers say; decoding it with replacement characters accepted it."""

    def garble(data: bytes) -> bytes:
        first, rest = data.split(b"\n", 1)
        return first + b"\xff\n" + rest

    installed.sim.tamper(target, garble)
    fails_closed(installed, install(installed), CheckFailed, "not UTF-8 text")


@pytest.mark.parametrize("action", ["update", "install"])
def test_installed_version_republished_with_other_bytes(installed: World, action: str) -> None:
    """A maintainer key and the index key in other hands (or a registry rebuilt without its
    history): alpha 1.0.0 again, other bytes.  update said "up to date" and swapped them in."""
    shutil.rmtree(installed.index / "plugins" / "alpha" / "1.0.0")
    installed.add_release("alpha", "1.0.0", description="adds two numbers, republished")
    installed.build(previous=False, now=NOW + timedelta(hours=1))
    run = (
        (lambda: installed.open().update(installed.plugins))
        if action == "update"
        else (lambda: installed.open().install("alpha@1.0.0", installed.plugins))
    )
    fails_closed(installed, run, RepublishedReleaseError, r"alpha 1\.0\.0 is installed with module sha256")


def test_registry_signed_by_unknown_key(installed: World) -> None:
    installed.forge_registry(lambda raw: raw.update(version=raw["version"] + 1), key=installed.keys.mallory)
    fails_closed(
        installed, install(installed), IndexSignatureError, "signed by a key that is not an index key"
    )


def test_rollback_to_older_validly_signed_registry(installed: World) -> None:
    old = {n: installed.sim.files[n] for n in ("registry.json", "registry.json.minisig")}
    installed.add_release("alpha", "1.2.0")
    doc = installed.build()
    installed.open().search()  # the client sees the new version
    assert installed.state().highest_version == doc.version
    for name, data in old.items():
        installed.sim.replace(name, data)
    old_version = json.loads(old["registry.json"])["version"]
    fails_closed(
        installed,
        install(installed),
        RollbackAttackError,
        f"rollback attack: registry version {old_version} is lower than the highest seen {doc.version}",
    )


def test_expired_registry_freeze(installed: World) -> None:
    later = NOW + timedelta(days=7, seconds=1)
    fails_closed(installed, install(installed, clock=lambda: later), FreezeAttackError, "freeze attack")


def test_fast_forward_recovery_after_index_key_rotation(installed: World) -> None:
    # An attacker holding the index key publishes an absurdly high version; the client accepts it.
    installed.forge_registry(lambda raw: raw.update(version=INFLATED))
    installed.open().search()
    assert installed.state().highest_version == INFLATED
    # The owners publish normally: every honest version now looks like a rollback.
    installed.build(previous=False)
    fails_closed(
        installed, install(installed), RollbackAttackError, "lower than the highest seen 9000000000000000"
    )
    # The owners rotate the index key in a new root; the client walks to it and resets.
    old_id = installed.keys.index.key_id
    installed.edit_root(rotate_keys("index", add=[installed.keys.index2.public_key], remove=[old_id]))
    installed.index_keys = [installed.keys.index2]
    doc = installed.build(previous=False)
    installed.open().install("alpha@1.1.0", installed.plugins)
    state = installed.state()
    assert state.highest_version == doc.version < INFLATED
    assert state.root_version == doc.root_version


def test_adding_an_index_key_does_not_reopen_rollback(installed: World) -> None:
    """A mirror serving a new root that only adds an index key, with an older registry.json."""
    old = {n: installed.sim.files[n] for n in ("registry.json", "registry.json.minisig")}
    installed.add_release("alpha", "1.2.0")
    doc = installed.build()
    installed.open().search()
    installed.edit_root(rotate_keys("index", add=[installed.keys.index2.public_key]))
    installed.publish_root()
    for name, data in old.items():
        installed.sim.replace(name, data)
    fails_closed(
        installed, install(installed), RollbackAttackError, f"lower than the highest seen {doc.version}"
    )


def test_old_index_key_useless_after_rotation(installed: World) -> None:
    installed.edit_root(
        rotate_keys("index", add=[installed.keys.index2.public_key], remove=[installed.keys.index.key_id])
    )
    installed.publish_root()  # new root served, registry.json still signed by the old key
    fails_closed(installed, install(installed), IndexSignatureError, "not an index key")


def test_a_root_chain_past_the_walk_bound_is_refused_not_cut_short(
    installed: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With the bound at 2, two new roots are walked and a third still exists: the walk used to end
    # at the second and take it as the final root (an expired one would then block every refresh, a
    # key rotated in root 4 would go unseen).  Now the session is refused.
    from registry_tool.client import api

    start = installed.state().root_version
    for _ in range(3):
        installed.edit_root(lambda doc: None)
    installed.publish_root()
    monkeypatch.setattr(api, "MAX_ROOT_STEPS", 2)
    fails_closed(installed, install(installed), BadRootVersionError, "more than 2 new root versions")
    monkeypatch.setattr(api, "MAX_ROOT_STEPS", 3)
    install(installed)()
    assert installed.state().root_version == start + 3


# --------------------------------------------------------------------------- releases


def test_wasm_swapped_for_another_release_mix_and_match(installed: World) -> None:
    installed.sim.replace(
        "plugins/alpha/1.1.0/alpha.wasm", installed.sim.files["plugins/alpha/1.0.0/alpha.wasm"]
    )
    fails_closed(
        installed,
        install(installed),
        MixAndMatchError,
        "mix-and-match attack: .* is the signed module of alpha 1.0.0",
    )


def test_wasm_tampered(installed: World) -> None:
    installed.sim.tamper("plugins/alpha/1.1.0/alpha.wasm", lambda data: data[:-1] + bytes([data[-1] ^ 1]))
    fails_closed(installed, install(installed), DigestMismatchError, "tampered module")


def test_manifest_swapped_for_older_version_mix_and_match(installed: World) -> None:
    # The index key signs an entry for alpha 1.1.0 whose manifest is 1.0.0's (validly signed) one.
    release_dir = installed.site / "plugins/alpha/1.1.0"
    for f in (installed.site / "plugins/alpha/1.0.0").glob("plugin.toml*"):
        shutil.copy(f, release_dir / f.name)
    manifest = (release_dir / "plugin.toml").read_bytes()

    def mutate(raw: dict[str, Any]) -> None:
        release_entry(raw, "1.1.0")["manifest"].update(
            sha256=hashlib.sha256(manifest).hexdigest(), size=len(manifest)
        )

    installed.forge_plugin("alpha", mutate)
    fails_closed(
        installed, install(installed), WrongSoftwareError, "points at the signed manifest of version 1.0.0"
    )


def test_entry_for_a_pointing_at_b_wrong_software(installed: World) -> None:
    """The entry for alpha 1.1.0 names beta's signed manifest and wasm (copied under alpha's path)."""
    a_dir, b_dir = installed.site / "plugins/alpha/1.1.0", installed.site / "plugins/beta/2.0.0"
    for f in b_dir.glob("plugin.toml*"):
        shutil.copy(f, a_dir / f.name)
    shutil.copy(b_dir / "beta.wasm", a_dir / "beta.wasm")

    b = read_site_dir(installed.site).plugins["beta"]["2.0.0"].to_json()

    def mutate(raw: dict[str, Any]) -> None:
        a = release_entry(raw, "1.1.0")
        a["manifest"] = {**b["manifest"], "path": "plugins/alpha/1.1.0/plugin.toml"}
        a["wasm"] = {**b["wasm"], "path": "plugins/alpha/1.1.0/beta.wasm"}
        a["signers"] = b["signers"]

    installed.forge_plugin("alpha", mutate)
    fails_closed(installed, install(installed), WrongSoftwareError, "wrong software attack: .* plugin 'beta'")


def test_larger_manifest_is_called_a_size_difference_not_endless_data(installed: World) -> None:
    """A finite, different file above the signed size: the message says what happened."""
    installed.sim.tamper("plugins/alpha/1.1.0/plugin.toml", lambda data: data + b"#" * 4096)
    fails_closed(installed, install(installed), DownloadTooLargeError, "^size differs from the signed size")


def test_maintainer_key_revoked(installed: World) -> None:
    installed.edit_root(revoke(installed.keys.alice.key_id, now=NOW, keep_prior_releases=False))
    installed.publish_root()  # a mirror still serves the old registry with alice's releases
    fails_closed(installed, install(installed), RevokedKeyError, "was revoked in root version 4")


@pytest.mark.parametrize("operation", ["install", "update", "install --locked"])
def test_installed_release_by_a_key_revoked_since_is_not_kept(installed: World, operation: str) -> None:
    """The same bytes are not the same verdict: the installed alpha 1.0.0 is alice's, now revoked."""
    installed.edit_root(revoke(installed.keys.alice.key_id, now=NOW, keep_prior_releases=False))
    installed.publish_root()
    actions: dict[str, Callable[[], Any]] = {
        "install": install(installed, "alpha@1.0.0"),
        "update": lambda: installed.open().update(installed.plugins, allow={"keys"}),
        "install --locked": lambda: installed.open().install_locked(installed.plugins),
    }
    fails_closed(installed, actions[operation], RevokedKeyError, "was revoked in root version 4")
    # The failed operation kept the root it verified: the offline check now refuses the installed
    # copy too (it kept passing while only a failed install had seen the revocation), and its fix
    # does not send the user to `install --locked`, which fails the same way.
    report = verify_installed(installed.plugins, state_dir=installed.state_dir, clock=lambda: NOW)
    [finding] = [f for r in report.results for f in r.findings if f.rule == "installed-tampered"]
    assert "no longer counts" in finding.message and "--locked" not in (finding.fix or "")


def test_revoked_key_keeps_prior_releases_when_root_says_so(installed: World) -> None:
    installed.edit_root(
        revoke(installed.keys.alice.key_id, now=NOW + timedelta(hours=1), keep_prior_releases=True)
    )
    installed.publish_root()
    entry = installed.open().install("alpha@1.1.0", installed.plugins)
    assert entry.version == "1.1.0"


def test_out_of_delegation_signer(installed: World, tmp_path: Path) -> None:
    """alpha 9.9.9 signed by bob, who is delegated only for beta, slipped in by the index key."""
    staging = tmp_path / "stage"
    shutil.copytree(installed.site / "plugins/alpha/1.1.0", staging)
    for sig in staging.glob("*.minisig"):
        sig.unlink()
    text = (staging / "plugin.toml").read_text().replace('version = "1.1.0"', 'version = "9.9.9"')
    (staging / "plugin.toml").write_text(text)
    sign_release(staging, installed.keys.bob)
    target = installed.site / "plugins/alpha/9.9.9"
    shutil.copytree(staging, target)
    manifest = (target / "plugin.toml").read_bytes()

    def mutate(raw: dict[str, Any]) -> None:
        entry = json.loads(json.dumps(release_entry(raw, "1.1.0")))
        entry["manifest"] = {
            "path": "plugins/alpha/9.9.9/plugin.toml",
            "sha256": hashlib.sha256(manifest).hexdigest(),
            "size": len(manifest),
        }
        entry["wasm"]["path"] = "plugins/alpha/9.9.9/alpha.wasm"
        entry["signers"] = [installed.keys.bob.key_id]
        raw["versions"]["9.9.9"] = entry

    installed.forge_plugin("alpha", mutate)
    fails_closed(installed, install(installed, "alpha"), UnauthorizedSignerError, "not for plugin 'alpha'")


# --------------------------------------------------------------------------- transport


def test_endless_wasm_body(installed_http: World) -> None:
    installed_http.server.endless("/plugins/alpha/1.1.0/alpha.wasm")
    fails_closed(installed_http, install(installed_http), DownloadTooLargeError, "endless data attack")


def test_endless_registry_json(installed: World) -> None:
    installed.sim.endless("registry.json")
    fails_closed(installed, install(installed), DownloadTooLargeError, "endless data attack")


def test_slow_retrieval(installed: World) -> None:
    """A download that hits its deadline (the fetcher's SlowRetrievalError; tests/client/test_fetch.py
    shows the real fetcher raising it for a trickling body) fails the install closed."""
    installed.sim.delay("plugins/alpha/1.1.0/alpha.wasm")
    fails_closed(installed, install(installed), SlowRetrievalError, "slow retrieval attack")
    assert installed.sim.count("plugins/alpha/1.1.0/alpha.wasm") == 1
    # Delivered on the next try: the stall is what failed, not the file.
    assert installed.open().install("alpha@1.1.0", installed.plugins).version == "1.1.0"


def test_redirect_to_another_origin(installed_http: World, other_server: Any) -> None:
    shutil.copy(installed_http.site / "plugins/alpha/1.1.0/alpha.wasm", other_server.root / "alpha.wasm")
    installed_http.server.redirect("/plugins/alpha/1.1.0/alpha.wasm", other_server.url + "alpha.wasm")
    fails_closed(installed_http, install(installed_http), RedirectRefusedError, "another origin")
    assert other_server.requests == []


def test_redirect_to_file_url(installed_http: World) -> None:
    local = installed_http.site / "plugins/alpha/1.1.0/alpha.wasm"
    installed_http.server.redirect("/plugins/alpha/1.1.0/alpha.wasm", local.as_uri())
    fails_closed(installed_http, install(installed_http), RedirectRefusedError, "another origin or scheme")


@pytest.mark.parametrize("code, error", [(404, NotFoundError), (500, HttpStatusError)])
def test_error_status_mid_install(installed: World, code: int, error: type[Exception]) -> None:
    installed.sim.withhold("plugins/alpha/1.1.0/alpha.wasm", code)
    fails_closed(installed, install(installed), error, str(code))


@pytest.mark.parametrize("name", ["../evil", "alpha/../../etc", "a/b", "al\0pha", "..", "/abs", "Alpha", ""])
def test_unsafe_plugin_names(installed: World, name: str) -> None:
    reg = installed.open()
    before = list(installed.sim.fetched)
    fails_closed(
        installed, lambda: reg.install(name, installed.plugins), UnsafeNameError, "not a valid plugin name"
    )
    assert installed.sim.fetched == before  # refused before any request


# --------------------------------------------------------------------------- mirrors


def test_mirror_serving_tampered_files_cannot_change_what_is_installed(installed: World) -> None:
    mirror = SiteSimulator(installed.sim.files, base_url="https://mirror.test/")
    network = Network([installed.sim, mirror])
    wasm = "plugins/alpha/1.1.0/alpha.wasm"
    mirror.replace(wasm, installed.sim.files["plugins/alpha/1.0.0/alpha.wasm"])
    installed.sim.withhold(wasm, 500)
    # The origin is down, so the tampering mirror is what the install stops on: an attack (exit
    # 1), not a network failure (exit 2).
    fails_closed(
        installed,
        install(installed, mirrors=[mirror.base_url], fetcher=network),
        MixAndMatchError,
        "mix-and-match",
    )
    assert mirror.count(wasm) == 1  # the mirror was asked, and its bytes refused
    # With an honest mirror the same install succeeds and installs the signed bytes.
    mirror.replace(wasm, installed.sim.files[wasm])
    entry = installed.open(mirrors=[mirror.base_url], fetcher=network).install(
        "alpha@1.1.0", installed.plugins
    )
    assert (
        entry.wasm_sha256
        == hashlib.sha256((installed.site / "plugins/alpha/1.1.0/alpha.wasm").read_bytes()).hexdigest()
    )


# --------------------------------------------------------------------------- top, tree, plugin documents


def _node(data: dict[str, Any]) -> bytes:
    return dump_canonical({"_type": "registry-node", "format_version": 2, **data})


def _point_tree_at(world: World, root: bytes) -> None:
    (pin,) = world.write_meta([root])
    world.forge_registry(lambda top: top.update(tree=pin.to_json()))


def test_unsupported_format_version_is_refused_naming_both(installed: World) -> None:
    installed.forge_registry(lambda raw: raw.update(format_version=3))
    fails_closed(
        installed, install(installed), UnsupportedFormatError, "format_version 3; .* reads format_version 2"
    )


def test_tree_node_at_the_wrong_prefix_mix_and_match(installed: World) -> None:
    """A validly pinned node from another position of the tree (here: prefix '0' served as the root)."""
    top = json.loads((installed.site / "registry.json").read_bytes())
    leaf = json.loads((installed.site / Pin(**top["tree"]).path).read_bytes())
    _point_tree_at(installed, _node({"prefix": "0", "plugins": leaf["plugins"]}))
    fails_closed(installed, install(installed), TreeMismatchError, "expects ''")


def test_leaf_holding_a_name_outside_its_prefix_mix_and_match(installed: World) -> None:
    top = json.loads((installed.site / "registry.json").read_bytes())
    leaf = json.loads((installed.site / Pin(**top["tree"]).path).read_bytes())
    """alpha's leaf (at the right position) also lists beta, whose key is outside that prefix."""
    digit = plugin_key("alpha")[0]
    assert plugin_key("beta")[0] != digit
    (child,) = installed.write_meta([_node({"prefix": digit, "plugins": leaf["plugins"]})])
    branch = {"prefix": "", "children": {digit: child.to_json()}}
    _point_tree_at(installed, _node(branch))
    fails_closed(installed, install(installed), TreeMismatchError, "outside prefix")


def test_plugin_document_naming_another_plugin_wrong_software(installed: World) -> None:
    """The leaf pins beta's (valid) plugin document under the name alpha."""
    top = json.loads((installed.site / "registry.json").read_bytes())
    leaf = json.loads((installed.site / Pin(**top["tree"]).path).read_bytes())
    leaf["plugins"]["alpha"] = leaf["plugins"]["beta"]
    _point_tree_at(installed, _node({k: v for k, v in leaf.items() if k in ("prefix", "plugins")}))
    fails_closed(installed, install(installed), WrongDocumentError, "pins this document for 'alpha'")


def test_tampered_tree_node_digest_mismatch(installed: World) -> None:
    """Same size, other bytes: refused by digest before it is parsed."""
    top = json.loads((installed.site / "registry.json").read_bytes())
    installed.sim.tamper(
        Pin(**top["tree"]).path,
        lambda data: data.replace(b'"prefix":""', b'"prefix":"" ', 1)[: len(data) - 1] + b"\n",
    )
    shutil.rmtree(installed.state_dir / "cache")  # the client cached the honest node on install
    fails_closed(installed, install(installed), DigestMismatchError, "tampered tree node")


def test_tampered_cached_document_is_refetched_not_trusted(installed: World) -> None:
    """The verified cache is re-hashed on use: a modified cache file is dropped and fetched again."""
    for path in (installed.state_dir / "cache").iterdir():
        path.write_bytes(b"{}")
    installed.sim.fetched.clear()
    entry = installed.open().install("alpha@1.1.0", installed.plugins)
    assert entry.version == "1.1.0"
    assert any(r.startswith("meta/") for r in installed.sim.fetched)


def test_endless_plugin_document(installed: World) -> None:
    shutil.rmtree(installed.state_dir / "cache")
    doc = read_site_dir(installed.site)
    top = json.loads((installed.site / "registry.json").read_bytes())
    leaf = json.loads((installed.site / Pin(**top["tree"]).path).read_bytes())
    installed.sim.endless(Pin(**leaf["plugins"]["alpha"]).path)
    assert doc.plugins["alpha"]
    fails_closed(installed, install(installed), DownloadTooLargeError, "endless data attack")


def test_plugin_entry_disagreeing_with_the_signed_manifest_mix_and_match(installed: World) -> None:
    """The index key cannot change what a host acts on: the signed manifest decides abi, host, exports."""
    installed.forge_plugin("alpha", lambda raw: release_entry(raw, "1.1.0").update(host=">=0.0.0"))
    fails_closed(installed, install(installed), MixAndMatchError, "lists host")


def test_installed_release_whose_entry_now_disagrees_with_its_manifest_mix_and_match(
    installed: World,
) -> None:
    """Kept bytes are no excuse: the entry of the installed alpha 1.0.0 gains a dependency."""
    installed.forge_plugin(
        "alpha", lambda raw: release_entry(raw, "1.0.0").update(dependencies={"beta": ">=1"})
    )
    fails_closed(installed, install(installed, "alpha@1.0.0"), MixAndMatchError, "dependencies")


def test_release_path_outside_its_folder_path_traversal(installed: World) -> None:
    def mutate(raw: dict[str, Any]) -> None:
        release_entry(raw, "1.1.0")["wasm"]["path"] = "plugins/alpha/1.1.0/../../../../etc/passwd"

    installed.forge_plugin("alpha", mutate)
    fails_closed(installed, install(installed), PathTraversalError, "is not plugins/alpha/1.1.0/")


def test_endless_signature_file(installed: World) -> None:
    """A missing signature file (404) is normal; an endless one is an attack, not a missing file."""
    installed.sim.endless("registry.json.minisig")
    fails_closed(installed, install(installed), DownloadTooLargeError, "endless data attack")


def test_index_limits_disagreeing_with_the_declared_ones_mix_and_match(installed: World) -> None:
    """Limits the signed manifest declares decide; the index key cannot raise them."""
    from registry_tool.signing import sign_release

    from .client_world import NOW, manifest_text, module_bytes

    folder = installed.index / "plugins/alpha/1.2.0"
    folder.mkdir(parents=True)
    text = manifest_text("alpha", "1.2.0", (), ">=0.2.0, <0.4.0", "adds")
    (folder / "plugin.toml").write_text(text + '\n[limits]\nfuel = 1_000_000\nmemory = "1MiB"\n')
    (folder / "alpha.wasm").write_bytes(module_bytes(99))
    sign_release(folder, installed.keys.alice, timestamp=int(NOW.timestamp()))
    installed.build()
    assert installed.open().resolve("alpha@1.2.0").limits.fuel == 1_000_000
    installed.forge_plugin("alpha", lambda raw: release_entry(raw, "1.2.0")["limits"].update(fuel=10**12))
    fails_closed(installed, install(installed, "alpha@1.2.0"), MixAndMatchError, "limits.fuel")
