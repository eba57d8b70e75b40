"""The pure trust state machine and its persistence: pinning, walking, registry checks, merging."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest

from registry_tool.client import trust
from registry_tool.client.errors import (
    IndexSignatureError,
    MalformedRegistryError,
    RootFingerprintMismatchError,
    RootNotPinnedError,
)
from registry_tool.client.store import StateStore, normalise_url, redacted
from registry_tool.client.trust_state import TrustState, pin_root, verify_registry, walk_root
from registry_tool.errors import UsageError
from registry_tool.signing import sign_bytes
from registry_tool.trust import (
    BadRootVersionError,
    ExpiredRootError,
    ThresholdNotMetError,
    UnauthorizedSignerError,
)
from registry_tool.trust.editing import rotate_keys

from .client_world import NOW, World


def root_file(world: World, n: int) -> tuple[bytes, list[str]]:
    path = world.site / "root" / f"{n}.root.json"
    return path.read_bytes(), [p.read_text() for p in sorted(path.parent.glob(f"{n}.root.json.*.minisig"))]


def pinned(world: World) -> TrustState:
    data, sigs = root_file(world, 1)
    return pin_root(world.url, data, sigs)


# --------------------------------------------------------------------------- pinning


@pytest.mark.parametrize("transform", [str.lower, str.upper, lambda h: "sha256:" + h, lambda h: f"  {h}\n"])
def test_pin_with_fingerprint(world: World, transform) -> None:
    data, sigs = root_file(world, 1)
    state = pin_root(world.url, data, sigs, expected_fingerprint=transform(hashlib.sha256(data).hexdigest()))
    assert state.root_version == 1 and state.highest_version == 0


def test_pin_wrong_fingerprint(world: World) -> None:
    data, sigs = root_file(world, 1)
    with pytest.raises(RootFingerprintMismatchError, match="forged root"):
        pin_root(world.url, data, sigs, expected_fingerprint=hashlib.sha256(b"other").hexdigest())


def test_pin_unsigned_or_foreign_signed_root(world: World) -> None:
    data, _ = root_file(world, 1)
    with pytest.raises(ThresholdNotMetError):
        pin_root(world.url, data, [])
    forged = sign_bytes(world.keys.mallory, data, trusted_comment="forged")
    with pytest.raises(UnauthorizedSignerError):
        pin_root(world.url, data, [forged])


# --------------------------------------------------------------------------- walking


def test_walk_keeps_highest_without_rotation(world: World) -> None:
    state = TrustState(world.url, pinned(world).root_bytes, highest_version=42)
    walked = walk_root(state, [root_file(world, 2), root_file(world, 3)], NOW)
    assert walked.root_version == 3 and walked.highest_version == 42


def test_walk_resets_highest_on_index_rotation(world: World) -> None:
    world.edit_root(
        rotate_keys("index", add=[world.keys.index2.public_key], remove=[world.keys.index.key_id])
    )
    world.publish_root()
    state = TrustState(world.url, pinned(world).root_bytes, highest_version=42)
    walked = walk_root(state, [root_file(world, n) for n in (2, 3, 4)], NOW)
    assert walked.root_version == 4 and walked.highest_version == 0


def test_walk_keeps_highest_when_index_keys_are_only_added(world: World) -> None:
    """The old index key still signs: an older document it signed is still a rollback."""
    world.edit_root(rotate_keys("index", add=[world.keys.index2.public_key]))
    world.publish_root()
    state = TrustState(world.url, pinned(world).root_bytes, highest_version=42)
    walked = walk_root(state, [root_file(world, n) for n in (2, 3, 4)], NOW)
    assert walked.root_version == 4 and walked.highest_version == 42


def test_walk_cannot_skip_a_version(world: World) -> None:
    with pytest.raises(BadRootVersionError):
        walk_root(pinned(world), [root_file(world, 3)], NOW)


def test_walk_refuses_expired_final_root(world: World) -> None:
    with pytest.raises(ExpiredRootError):
        walk_root(pinned(world), [root_file(world, 2), root_file(world, 3)], NOW + timedelta(days=400))


def test_forged_next_root_is_refused_and_state_kept(sim_trusted: World) -> None:
    """A server publishing a root v4 signed by a non-root key cannot move the client."""
    sim = sim_trusted.sim
    raw = json.loads(sim.files["root/3.root.json"])
    raw["version"] = 4
    raw["roles"]["index"]["keyids"] = [sim_trusted.keys.index.key_id]
    forged = (json.dumps(raw, indent=2, sort_keys=True) + "\n").encode()
    sim.replace("root/4.root.json", forged)
    sig = sign_bytes(sim_trusted.keys.mallory, forged, trusted_comment="forged")
    sim.replace(f"root/4.root.json.{sim_trusted.keys.mallory.key_id}.minisig", sig)
    before = sim_trusted.snapshot()
    sim.fetched.clear()
    with pytest.raises((UnauthorizedSignerError, ThresholdNotMetError)):
        sim_trusted.open()
    assert sim.count("root/4.root.json") == 1
    sim_trusted.assert_failed_closed(before)


# --------------------------------------------------------------------------- registry.json


def registry_files(world: World) -> tuple[bytes, list[str]]:
    data = (world.site / "registry.json").read_bytes()
    return data, [(world.site / "registry.json.minisig").read_text()]


def walked(world: World) -> TrustState:
    return walk_root(pinned(world), [root_file(world, 2), root_file(world, 3)], NOW)


def test_registry_same_version_again_is_fine(world: World) -> None:
    data, sigs = registry_files(world)
    doc, state = verify_registry(walked(world), data, sigs, NOW)
    again, state2 = verify_registry(state, data, sigs, NOW)
    assert state2.highest_version == state.highest_version == doc.version == again.version


def test_registry_for_another_registry_name(world: World) -> None:
    data = world.forge_registry(lambda raw: raw["registry"].update(name="other-registry"))
    with pytest.raises(MalformedRegistryError, match="is for registry 'other-registry'"):
        verify_registry(walked(world), data, [(world.site / "registry.json.minisig").read_text()], NOW)


def test_registry_built_under_unpublished_root(world: World) -> None:
    data = world.forge_registry(lambda raw: raw.update(root_version=9))
    with pytest.raises(MalformedRegistryError, match="root version 9"):
        verify_registry(walked(world), data, [(world.site / "registry.json.minisig").read_text()], NOW)


def test_registry_without_signature(world: World) -> None:
    data, _ = registry_files(world)
    with pytest.raises(IndexSignatureError):
        verify_registry(walked(world), data, [], NOW)


# --------------------------------------------------------------------------- persistence


def test_store_merges_monotonically(world: World, tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s")
    v1, v3 = pinned(world), walked(world)
    store.save(TrustState(world.url, v3.root_bytes, 10))
    assert store.save(TrustState(world.url, v3.root_bytes, 5)).highest_version == 10  # never lowered
    assert store.save(TrustState(world.url, v1.root_bytes, 99)).root_version == 3  # never an older root
    assert store.load(world.url) == TrustState(normalise_url(world.url), v3.root_bytes, 10)
    assert store.save(TrustState(world.url, v1.root_bytes, 0), replace=True).root_version == 1


def test_store_unreadable(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.path_for("http://127.0.0.1:1/").write_text("{not json")
    with pytest.raises(UsageError, match="unreadable"):
        store.load("http://127.0.0.1:1/")
    with pytest.raises(RootNotPinnedError):
        StateStore(tmp_path / "empty").require("http://127.0.0.1:1/")


@pytest.mark.parametrize(
    "url, expected",
    [
        ("HTTP://127.0.0.1:8000", "http://127.0.0.1:8000/"),
        ("http://127.0.0.1:8000/reg/?x=1", "http://127.0.0.1:8000/reg/"),
        ("file:///srv/site", "file:///srv/site/"),
        ("https://example.org/plugins/registry.json", "https://example.org/plugins/"),
    ],
)
def test_normalise_url(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


@pytest.mark.parametrize("url", ["ftp://x/", "127.0.0.1:8000", "javascript:x"])
def test_bad_registry_urls(url: str) -> None:
    with pytest.raises(UsageError):
        normalise_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://user:s3cret@127.0.0.1:8000/",
        "https://s3cret@example.org/p/",
        "http://@h/",
        "ftp://u:s3cret@h:99999/",
        "https://ci:ab/s3cret=@host/",  # a base64 token holding "/": no port, yet never shown
        "https://user:p#s3cret@host/",
        "http:/\t/u:s3cret@h/",
        "HTTP://U:S3CRET@H/",
    ],
)
def test_a_registry_url_with_credentials_is_refused_without_showing_them(url: str) -> None:
    """The URL goes into the lockfile, the trust state and messages: credentials there would leak."""
    with pytest.raises(UsageError) as err:
        normalise_url(url)
    assert "s3cret" not in err.value.diagnostics().lower()
    assert "***@" in err.value.what


@pytest.mark.parametrize("url", ["http://h/a@b/", "file:///home/a@b/site/"])
def test_an_at_sign_outside_the_host_part_is_a_plain_path(url: str) -> None:
    assert normalise_url(url) == url


def test_trust_by_fingerprint_then_idempotent_then_replace(sim_world: World) -> None:
    world = sim_world
    fp = hashlib.sha256(world.sim.files["root/1.root.json"]).hexdigest()
    state = trust(world.url, fingerprint=fp, state_dir=world.state_dir, fetcher=world.sim)
    assert state.root_version == 3 and state.highest_version > 0
    assert trust(world.url, fingerprint=fp, state_dir=world.state_dir, fetcher=world.sim) == state
    v1 = world.sim.files["root/1.root.json"]
    # Re-running is harmless.
    assert trust(world.url, root_bytes=v1, state_dir=world.state_dir, fetcher=world.sim) == state
    again = trust(world.url, root_bytes=v1, state_dir=world.state_dir, replace=True, fetcher=world.sim)
    assert again.root_version == 3


def test_trust_refuses_another_registrys_root(sim_world: World, keys) -> None:
    from registry_tool.trust.editing import new_root

    world = sim_world
    world.trust()
    other = new_root(
        "other", [keys.mallory.public_key], [keys.index2.public_key], expires=NOW + timedelta(days=9)
    )
    sig = sign_bytes(keys.mallory, other, trusted_comment="root")
    with pytest.raises(UsageError, match="but this root is for 'other'"):
        trust(
            world.url, root_bytes=other, root_signatures=[sig], state_dir=world.state_dir, fetcher=world.sim
        )


def test_trust_over_file_url(world: World) -> None:
    url = world.site.as_uri()
    state = trust(url, root_bytes=(world.site / "root/1.root.json").read_bytes(), state_dir=world.state_dir)
    assert state.url == url + "/" and state.root_version == 3


@pytest.mark.parametrize("given", ["3b1f", "3b1f…e9", "sha256:" + "a" * 63, "a" * 66, "not hex" * 10])
def test_a_fingerprint_that_is_not_a_whole_sha256_is_a_usage_error(given: str) -> None:
    # A prefix read as a mismatch ("the server may be serving a forged root", exit 1) misled users.
    from registry_tool.client.trust_state import check_fingerprint
    from registry_tool.errors import UsageError

    with pytest.raises(UsageError, match="64 hex digits"):
        check_fingerprint("https://r.test/", b"{}", given)


def test_the_shared_url_vectors_are_the_python_clients_answers() -> None:
    """conformance/url-vectors.json, which the Go and Rust verifiers' tests read, holds Python's answers."""
    vectors = json.loads((Path(__file__).parents[2] / "conformance" / "url-vectors.json").read_text())
    for raw, spelled in vectors["canonical"]:
        assert normalise_url(raw) == spelled, raw
    for raw, shown in vectors["redacted"]:
        assert redacted(raw) == shown, raw
