"""Thresholds count distinct public keys; key ids only select candidates."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from registry_tool.signing import SecretKey, Signature, sign_bytes
from registry_tool.trust import (
    BadSignatureError,
    LegacySignatureError,
    MalformedSignatureError,
    Root,
    ThresholdNotMetError,
    UnauthorizedSignerError,
    verify_index_signatures,
    verify_root_self,
    verify_threshold,
)
from registry_tool.trust.editing import dump_root

from .conftest import Signer

DATA = b'{"registry.json": true}\n'


@pytest.mark.parametrize(
    ("signers", "ok"),
    [
        (["r1", "r2"], True),
        (["r1", "r2", "r3"], True),
        (["r3", "r1"], True),
        (["r1"], False),
        ([], False),
        (["r1", "x"], False),
        (["r1", "ix"], False),
    ],
)
def test_two_of_three(
    root_v1: bytes, k: dict[str, SecretKey], sign: Signer, signers: list[str], ok: bool
) -> None:
    root = Root.parse(root_v1)
    sigs = sign(DATA, [k[s] for s in signers])
    if ok:
        assert verify_threshold(root.role("root"), DATA, sigs) == {
            k[s].key_id for s in signers if s.startswith("r")
        }
    else:
        with pytest.raises((ThresholdNotMetError, UnauthorizedSignerError)):
            verify_threshold(root.role("root"), DATA, sigs)


def test_duplicated_signature_counts_once(root_v1: bytes, k: dict[str, SecretKey], sign: Signer) -> None:
    root = Root.parse(root_v1)
    sig = sign(DATA, [k["r1"]])[0]
    with pytest.raises(ThresholdNotMetError, match="1 distinct key"):
        verify_threshold(root.role("root"), DATA, [sig, sig])


def test_two_signatures_by_one_key_count_once(root_v1: bytes, k: dict[str, SecretKey]) -> None:
    """Different signature files (different trusted comments) by the same key are still one key."""
    root = Root.parse(root_v1)
    sigs = [sign_bytes(k["r1"], DATA, trusted_comment=c) for c in ("one", "two", "three")]
    with pytest.raises(ThresholdNotMetError):
        verify_threshold(root.role("root"), DATA, sigs)


def _with_alias(root_v1: bytes, k: dict[str, SecretKey]) -> tuple[Root, SecretKey]:
    """Root key r1 listed a second time under another key id (same Ed25519 key, other key number)."""
    doc = json.loads(root_v1)
    alias = SecretKey.from_seed(k["r1"].seed, b"\x77" * 8)
    doc["keys"][alias.key_id] = {"public_key": alias.public_key.to_base64()}
    doc["roles"]["root"]["keyids"].append(alias.key_id)
    return Root.parse(dump_root(doc)), alias


def test_aliased_key_counts_once(root_v1: bytes, k: dict[str, SecretKey], sign: Signer) -> None:
    root, alias = _with_alias(root_v1, k)
    with pytest.raises(ThresholdNotMetError, match="1 distinct key"):
        verify_threshold(root.role("root"), DATA, sign(DATA, [k["r1"], alias]))
    assert len(verify_threshold(root.role("root"), DATA, sign(DATA, [alias, k["r2"]]))) == 2


def test_key_id_collision_with_different_key(root_v1: bytes, k: dict[str, SecretKey], sign: Signer) -> None:
    """An attacker key that claims r2's key id does not count as r2."""
    root = Root.parse(root_v1)
    impostor = SecretKey.from_seed(b"\xee" * 32, k["r2"].keynum)
    assert impostor.key_id == k["r2"].key_id
    with pytest.raises(ThresholdNotMetError, match="does not match"):
        verify_threshold(root.role("root"), DATA, sign(DATA, [k["r1"], impostor]))
    with pytest.raises(BadSignatureError):
        verify_threshold(root.role("root"), DATA, sign(DATA, [impostor]))


def test_unknown_signer(root_v1: bytes, k: dict[str, SecretKey], sign: Signer) -> None:
    with pytest.raises(UnauthorizedSignerError, match=k["x"].key_id):
        verify_threshold(Root.parse(root_v1).role("root"), DATA, sign(DATA, [k["x"]]))


def test_tampered_data(root_v1: bytes, k: dict[str, SecretKey], sign: Signer) -> None:
    sigs = sign(DATA, [k["r1"], k["r2"]])
    with pytest.raises(BadSignatureError):
        verify_threshold(Root.parse(root_v1).role("root"), DATA + b" ", sigs)


def test_malformed_signature_is_named(root_v1: bytes) -> None:
    with pytest.raises(MalformedSignatureError):
        verify_threshold(Root.parse(root_v1).role("root"), DATA, ["not a signature"])


def test_extra_bad_signatures_do_not_block_a_met_threshold(
    root_v1: bytes, k: dict[str, SecretKey], sign: Signer
) -> None:
    sigs = [*sign(DATA, [k["r1"], k["r2"]]), "garbage", *sign(DATA, [k["x"]])]
    assert verify_threshold(Root.parse(root_v1).role("root"), DATA, sigs) == {k["r1"].key_id, k["r2"].key_id}


def test_legacy_signature_never_counts(root_v1: bytes, k: dict[str, SecretKey]) -> None:
    def legacy(key: SecretKey) -> str:
        sig = key.sign_raw(DATA)
        return Signature(b"Ed", key.keynum, sig, "c", key.sign_raw(sig + b"c"), "u").to_text()

    with pytest.raises(LegacySignatureError):
        verify_threshold(Root.parse(root_v1).role("root"), DATA, [legacy(k["r1"]), legacy(k["r2"])])


def test_index_role(root_v1: bytes, k: dict[str, SecretKey], sign: Signer) -> None:
    root = Root.parse(root_v1)
    assert verify_index_signatures(root, DATA, sign(DATA, [k["ix"]])) == {k["ix"].key_id}
    with pytest.raises(UnauthorizedSignerError):
        verify_index_signatures(root, DATA, sign(DATA, [k["r1"], k["r2"], k["r3"]]))


def test_root_self_signed(root_v1: bytes, k: dict[str, SecretKey], sign: Signer, now: datetime) -> None:
    assert verify_root_self(root_v1, sign(root_v1, [k["r1"], k["r3"]]), now).version == 1
    with pytest.raises(ThresholdNotMetError):
        verify_root_self(root_v1, sign(root_v1, [k["r1"]]), now)


def test_every_byte_of_a_root_matters(
    root_v1: bytes, k: dict[str, SecretKey], sign: Signer, now: datetime
) -> None:
    """Attack sweep: flipping any bit of a signed root makes it unacceptable (nothing is re-serialised)."""
    from registry_tool.errors import CheckFailed

    sigs = sign(root_v1, [k["r1"], k["r2"]])
    accepted = []
    for i in range(len(root_v1)):
        mutated = bytearray(root_v1)
        mutated[i] ^= 0x01
        try:
            verify_root_self(bytes(mutated), sigs, now)
        except CheckFailed:
            continue
        accepted.append(i)
    assert accepted == []
