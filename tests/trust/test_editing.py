"""Editing the root: new unsigned versions, amending, signing rules, refusal of unsafe edits."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from registry_tool.signing import SecretKey
from registry_tool.trust import Root, ThresholdNotMetError
from registry_tool.trust.editing import (
    RootEditError,
    RootStoreError,
    add_maintainer,
    derive,
    edit_root_dir,
    init_root_dir,
    renew,
    revoke,
    rotate_keys,
    sign_root_dir,
    verify_root_dir,
)


@pytest.fixture
def root_dir(tmp_path: Path, root_v1: bytes, k: dict[str, SecretKey]) -> Path:
    d = tmp_path / "root"
    init_root_dir(d, root_v1)
    return d


def sign_latest(d: Path, *keys: SecretKey) -> None:
    for key in keys:
        sign_root_dir(d, key)


def test_edit_before_signing_amends(root_dir: Path, k: dict[str, SecretKey], now: datetime) -> None:
    path = edit_root_dir(root_dir, add_maintainer("alice", [k["m1"].public_key], ["a*"]), now=now)
    assert path.name == "1.root.json"
    assert Root.parse(path.read_bytes()).version == 1


def test_edit_after_signing_bumps_and_needs_signatures(
    root_dir: Path, k: dict[str, SecretKey], now: datetime
) -> None:
    sign_latest(root_dir, k["r1"], k["r2"])
    path = edit_root_dir(root_dir, add_maintainer("alice", [k["m1"].public_key], ["a*"]), now=now)
    assert path.name == "2.root.json"
    with pytest.raises(ThresholdNotMetError):
        verify_root_dir(root_dir, now)
    sign_latest(root_dir, k["r2"], k["r3"])
    assert verify_root_dir(root_dir, now).version == 2
    # amending v2 again is refused once signed: a third edit makes v3
    assert edit_root_dir(root_dir, renew(), now=now).name == "3.root.json"


def test_partly_signed_version_blocks_edits(root_dir: Path, k: dict[str, SecretKey], now: datetime) -> None:
    sign_latest(root_dir, k["r1"])
    with pytest.raises(RootEditError, match="partly signed"):
        edit_root_dir(root_dir, renew(), now=now)


def test_root_sign_accepts_previous_root_keys(root_dir: Path, k: dict[str, SecretKey], now: datetime) -> None:
    sign_latest(root_dir, k["r1"], k["r2"])
    edit = rotate_keys("root", add=[k["r4"].public_key], remove=[k["r3"].key_id])
    edit_root_dir(root_dir, edit, now=now)
    sign_latest(root_dir, k["r3"])  # a key of version 1 may still sign version 2 (old threshold)
    with pytest.raises(RootEditError, match="not a root key"):
        sign_latest(root_dir, k["m1"])
    sign_latest(root_dir, k["r1"], k["r4"])
    assert verify_root_dir(root_dir, now).version == 2


def test_missing_version_is_an_error(root_dir: Path, k: dict[str, SecretKey], now: datetime) -> None:
    (root_dir / "3.root.json").write_bytes((root_dir / "1.root.json").read_bytes())
    with pytest.raises(RootStoreError, match="version 2 is missing"):
        verify_root_dir(root_dir, now)


def test_key_id_collision_refused(root_v1: bytes, k: dict[str, SecretKey]) -> None:
    impostor = SecretKey.from_seed(b"\xab" * 32, k["r1"].keynum)
    with pytest.raises(RootEditError, match="already used by a different public key"):
        derive(Root.parse(root_v1), add_maintainer("eve", [impostor.public_key], ["x*"]))


def test_revoked_key_cannot_return(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime
) -> None:
    revoked = Root.parse(
        derive(root_with_maintainers, revoke(k["m1"].key_id, now=now, keep_prior_releases=False))
    )
    with pytest.raises(RootEditError, match="revoked"):
        derive(revoked, add_maintainer("alice", [k["m1"].public_key], ["validate_email"]))


def test_revoke_cannot_break_a_threshold(root_v1: bytes, k: dict[str, SecretKey], now: datetime) -> None:
    root = Root.parse(root_v1)
    shrunk = Root.parse(derive(root, rotate_keys("root", remove=[k["r3"].key_id])))
    with pytest.raises(RootEditError, match="below its threshold"):
        derive(shrunk, revoke(k["r1"].key_id, now=now, keep_prior_releases=False))
    with pytest.raises(RootEditError, match="below its threshold"):
        derive(root, revoke(k["ix"].key_id, now=now, keep_prior_releases=False))


def test_revoke_records_the_delegation(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime
) -> None:
    data = derive(
        root_with_maintainers, revoke(k["m1"].key_id, now=now, keep_prior_releases=True, reason="lost")
    )
    root = Root.parse(data)
    (entry,) = root.revoked
    assert entry.revoked_in_version == 3 and entry.reason == "lost" and entry.revoked_at == now
    assert entry.plugins == ("json-*", "validate_email")


def test_index_key_cannot_become_maintainer(root_v1: bytes, k: dict[str, SecretKey]) -> None:
    with pytest.raises(RootEditError, match="index key"):
        derive(Root.parse(root_v1), add_maintainer("ci", [k["ix"].public_key], ["x*"]))


def test_expiry_is_extended_when_expired(root_dir: Path, k: dict[str, SecretKey], now: datetime) -> None:
    sign_latest(root_dir, k["r1"], k["r2"])
    later = now + timedelta(days=400)
    path = edit_root_dir(root_dir, renew(), now=later)
    assert Root.parse(path.read_bytes()).expires > later


def test_revoked_key_cannot_return_under_another_key_id(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime
) -> None:
    """Same Ed25519 key, new key number: still the revoked key (compared by raw public key)."""
    import json

    from registry_tool.trust import RootFormatError
    from registry_tool.trust.editing import dump_root

    revoked = Root.parse(
        derive(root_with_maintainers, revoke(k["m1"].key_id, now=now, keep_prior_releases=False))
    )
    alias = SecretKey.from_seed(k["m1"].seed, b"\x42" * 8)
    with pytest.raises(RootEditError, match="revoked"):
        derive(revoked, add_maintainer("alice2", [alias.public_key], ["validate_email"]))
    doc = json.loads(revoked.raw)  # hand-edited file: the parser refuses it too
    doc["keys"][alias.key_id] = {"public_key": alias.public_key.to_base64()}
    with pytest.raises(RootFormatError, match="still listed"):
        Root.parse(dump_root(doc))
