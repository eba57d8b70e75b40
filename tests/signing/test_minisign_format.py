"""The minisign formats: round trips, strict parsing, tampering, legacy signatures."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from registry_tool.errors import UsageError
from registry_tool.signing import (
    BadSignatureError,
    KeyMismatchError,
    LegacySignatureError,
    MalformedKeyError,
    MalformedSignatureError,
    PublicKey,
    SecretKey,
    Signature,
    WrongPassphraseError,
    format_key_id,
    parse_key_id,
    prehash_file,
    sign_bytes,
    verify_bytes,
    verify_file,
)
from registry_tool.signing.minisign import scrypt_params

DATA = b"exact bytes that are shipped\n"


def test_round_trip(alice: SecretKey) -> None:
    sig = sign_bytes(alice, DATA, trusted_comment="plugin:x\tversion:1")
    verified = verify_bytes(alice.public_key, DATA, sig)
    assert verified.key_id == alice.key_id
    assert verified.trusted_comment == "plugin:x\tversion:1"


def test_key_id_is_little_endian_upper_hex() -> None:
    keynum = bytes([0x5A, 0xDF, 0x5B, 0x1C, 0xED, 0xC4, 0x61, 0xF2])
    assert format_key_id(keynum) == "F261C4ED1C5BDF5A"  # as `minisign -G` printed for this key number
    assert parse_key_id("F261C4ED1C5BDF5A") == keynum


def test_public_key_text_round_trip(alice: SecretKey) -> None:
    text = alice.public_key.to_text()
    assert text.startswith(f"untrusted comment: minisign public key {alice.key_id}\n")
    assert PublicKey.parse(text).raw == alice.public_key.raw
    assert PublicKey.parse(alice.public_key.to_base64()) == PublicKey.parse(text.split("\n")[1])


@pytest.mark.parametrize("passphrase", [None, b"s3cret", "pässwörd".encode()])
def test_secret_key_round_trip(alice: SecretKey, fast: dict[str, int], passphrase: bytes | None) -> None:
    data = alice.dump(passphrase, **fast)
    assert SecretKey.is_encrypted(data) is (passphrase is not None)
    assert SecretKey.load(data, passphrase) == alice


def test_wrong_passphrase(alice: SecretKey, fast: dict[str, int]) -> None:
    data = alice.dump(b"right", **fast)
    with pytest.raises(WrongPassphraseError):
        SecretKey.load(data, b"wrong")
    with pytest.raises(UsageError, match="encrypted"):
        SecretKey.load(data, None)


def test_secret_key_salt_is_random(alice: SecretKey, fast: dict[str, int]) -> None:
    assert alice.dump(b"p", **fast) != alice.dump(b"p", **fast)


def test_tampered_unencrypted_secret_key_is_rejected(alice: SecretKey) -> None:
    lines = alice.dump(None).decode().split("\n")
    raw = bytearray(base64.b64decode(lines[1]))
    raw[60] ^= 1  # inside the secret key
    lines[1] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(MalformedKeyError):
        SecretKey.load("\n".join(lines).encode(), None)


def test_hostile_scrypt_limits_rejected(alice: SecretKey, fast: dict[str, int]) -> None:
    data = alice.dump(b"p", **fast)
    lines = data.decode().split("\n")
    raw = bytearray(base64.b64decode(lines[1]))
    raw[46:54] = (1 << 40).to_bytes(8, "little")  # memlimit 1 TiB
    lines[1] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(MalformedKeyError, match="scrypt limits"):
        SecretKey.load("\n".join(lines).encode(), b"p")


@pytest.mark.parametrize(
    ("opslimit", "memlimit", "expected"),
    [
        (33554432, 1073741824, (1 << 20, 8, 1)),  # minisign -G (sensitive)
        (524288, 16777216, (1 << 14, 8, 1)),  # libsodium interactive
        (32768, 1 << 20, (1 << 10, 8, 1)),  # the fast test parameters
    ],
)
def test_scrypt_params_follow_libsodium(opslimit: int, memlimit: int, expected: tuple[int, int, int]) -> None:
    assert scrypt_params(opslimit, memlimit) == expected


# --------------------------------------------------------------------------- strict signature parsing


def _good(alice: SecretKey) -> str:
    return sign_bytes(alice, DATA, trusted_comment="tc")


def _mutations(sig: str) -> dict[str, str]:
    l1, l2, l3, l4, _ = sig.split("\n")
    raw = base64.b64decode(l2)
    return {
        "three lines": "\n".join([l1, l2, l3]) + "\n",
        "five lines": sig + "extra\n",
        "blank line inside": "\n".join([l1, "", l2, l3, l4]) + "\n",
        "trailing garbage": sig + "garbage",
        "crlf": sig.replace("\n", "\r\n"),
        "no untrusted prefix": "\n".join(["comment: x", l2, l3, l4]),
        "no trusted prefix": "\n".join([l1, l2, "trusted: tc", l4]),
        "bad base64 char": "\n".join([l1, l2[:-4] + "!!!=", l3, l4]),
        "base64 whitespace": "\n".join([l1, l2[:10] + " " + l2[10:], l3, l4]),
        "non canonical base64": "\n".join([l1, l2[:-2] + chr(ord(l2[-2]) + 1) + "=", l3, l4]),
        "short signature": "\n".join([l1, base64.b64encode(raw[:-1]).decode(), l3, l4]),
        "long global sig": "\n".join([l1, l2, l3, base64.b64encode(b"\0" * 65).decode()]),
        "unknown algorithm": "\n".join([l1, base64.b64encode(b"XX" + raw[2:]).decode(), l3, l4]),
        "oversize untrusted comment": "\n".join(["untrusted comment: " + "a" * 1005, l2, l3, l4]),
        "oversize trusted comment": "\n".join([l1, l2, "trusted comment: " + "b" * 8175, l4]),
        "not utf-8": "\n".join([l1, l2, l3, l4]).encode().replace(b"tc", b"\xff\xfe").decode("latin-1"),
    }


MUTATIONS = [
    "three lines",
    "five lines",
    "blank line inside",
    "trailing garbage",
    "crlf",
    "no untrusted prefix",
    "no trusted prefix",
    "bad base64 char",
    "base64 whitespace",
    "non canonical base64",
    "short signature",
    "long global sig",
    "unknown algorithm",
    "oversize untrusted comment",
    "oversize trusted comment",
    "not utf-8",
]


@pytest.mark.parametrize("case", MUTATIONS)
def test_malformed_signature_rejected(alice: SecretKey, case: str) -> None:
    text = _mutations(_good(alice))[case]
    data: str | bytes = text.encode("latin-1") if case == "not utf-8" else text
    with pytest.raises(MalformedSignatureError):
        Signature.parse(data)


def test_comment_limits_are_minisigns(alice: SecretKey) -> None:
    # The largest comments minisign itself accepts parse fine.
    sig = sign_bytes(alice, DATA, trusted_comment="b" * 8174, untrusted_comment="a" * 1004)
    assert verify_bytes(alice.public_key, DATA, sig).trusted_comment == "b" * 8174
    with pytest.raises(UsageError):
        sign_bytes(alice, DATA, trusted_comment="line\nbreak")


def test_no_final_newline_is_accepted(alice: SecretKey) -> None:
    assert verify_bytes(alice.public_key, DATA, _good(alice).rstrip("\n"))


@pytest.mark.parametrize(
    "case",
    ["two lines then garbage", "wrong algorithm", "bad base64", "short", "three lines"],
)
def test_malformed_public_key_rejected(alice: SecretKey, case: str) -> None:
    text = alice.public_key.to_text()
    l1, l2, _ = text.split("\n")
    raw = base64.b64decode(l2)
    bad = {
        "two lines then garbage": text + "x\n",
        "wrong algorithm": f"{l1}\n{base64.b64encode(b'Ec' + raw[2:]).decode()}\n",
        "bad base64": f"{l1}\n{l2[:-1]}*\n",
        "short": f"{l1}\n{base64.b64encode(raw[:-3]).decode()}\n",
        "three lines": f"{l1}\n{l1}\n{l2}\n",
    }[case]
    with pytest.raises(MalformedKeyError):
        PublicKey.parse(bad)


# --------------------------------------------------------------------------- tampering


def _flip_b64(line: str, index: int) -> str:
    raw = bytearray(base64.b64decode(line))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("byte", [0, 7, len(DATA) - 1])
def test_tampered_file_byte(alice: SecretKey, byte: int) -> None:
    data = bytearray(DATA)
    data[byte] ^= 0x20
    with pytest.raises(BadSignatureError, match="does not match the data"):
        verify_bytes(alice.public_key, bytes(data), _good(alice))


@pytest.mark.parametrize("index", [10, 40, 73])  # inside the 64-byte Ed25519 signature
def test_tampered_signature_byte(alice: SecretKey, index: int) -> None:
    l1, l2, l3, l4, _ = _good(alice).split("\n")
    with pytest.raises(BadSignatureError):
        verify_bytes(alice.public_key, DATA, "\n".join([l1, _flip_b64(l2, index), l3, l4]))


@pytest.mark.parametrize("new", ["tC", "tc ", "", "tc\tplugin:evil"])
def test_tampered_trusted_comment(alice: SecretKey, new: str) -> None:
    l1, l2, _, l4, _ = _good(alice).split("\n")
    with pytest.raises(BadSignatureError, match="trusted comment"):
        verify_bytes(alice.public_key, DATA, "\n".join([l1, l2, f"trusted comment: {new}", l4]))


def test_tampered_global_signature(alice: SecretKey) -> None:
    l1, l2, l3, l4, _ = _good(alice).split("\n")
    with pytest.raises(BadSignatureError, match="trusted comment"):
        verify_bytes(alice.public_key, DATA, "\n".join([l1, l2, l3, _flip_b64(l4, 5)]))


def test_untrusted_comment_is_not_signed(alice: SecretKey) -> None:
    _, l2, l3, l4, _ = _good(alice).split("\n")
    assert verify_bytes(alice.public_key, DATA, "\n".join(["untrusted comment: anything", l2, l3, l4]))


def test_wrong_key(alice: SecretKey, bob: SecretKey) -> None:
    with pytest.raises(KeyMismatchError):
        verify_bytes(bob.public_key, DATA, _good(alice))


def test_key_id_collision_with_different_key(alice: SecretKey) -> None:
    """A signature claiming the trusted key's id, made by another key, is checked against the full key."""
    impostor = SecretKey.from_seed(b"\x66" * 32, alice.keynum)
    assert impostor.key_id == alice.key_id
    sig = sign_bytes(impostor, DATA, trusted_comment="tc")
    with pytest.raises(BadSignatureError):
        verify_bytes(alice.public_key, DATA, sig)


def _legacy(secret: SecretKey, data: bytes, comment: str = "tc") -> str:
    sig = secret.sign_raw(data)  # the signature over the raw data, no prehash
    glob = secret.sign_raw(sig + comment.encode())
    return Signature(b"Ed", secret.keynum, sig, comment, glob, "legacy").to_text()


def test_legacy_signature_rejected_by_default(alice: SecretKey) -> None:
    sig = _legacy(alice, DATA)
    with pytest.raises(LegacySignatureError):
        verify_bytes(alice.public_key, DATA, sig)
    assert verify_bytes(alice.public_key, DATA, sig, allow_legacy=True).trusted_comment == "tc"


def test_prehash_is_blake2b_512(alice: SecretKey) -> None:
    sig = Signature.parse(_good(alice))
    assert alice.public_key.verify_raw(sig.signature, hashlib.blake2b(DATA, digest_size=64).digest())
    assert not alice.public_key.verify_raw(sig.signature, hashlib.blake2b(DATA, digest_size=32).digest())


def test_secret_key_repr_hides_the_seed(alice: SecretKey) -> None:
    assert alice.seed.hex() not in repr(alice) and "seed" not in repr(alice)


# A file spanning several read chunks, with a last partial one: the streamed prehash must see every byte.
BIG = bytes(range(256)) * (3 * 4096 + 17)


def test_streamed_file_verifies_like_bytes(alice: SecretKey, tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(BIG)
    sig = sign_bytes(alice, BIG, trusted_comment="tc")
    assert prehash_file(path) == hashlib.blake2b(BIG, digest_size=64).digest()
    assert verify_file(alice.public_key, path, sig).trusted_comment == "tc"


@pytest.mark.parametrize("offset", [0, (1 << 20) - 1, 1 << 20, len(BIG) - 1])
def test_streamed_file_tampered_in_any_chunk(alice: SecretKey, tmp_path: Path, offset: int) -> None:
    sig = sign_bytes(alice, BIG, trusted_comment="tc")
    data = bytearray(BIG)
    data[offset] ^= 0x01
    (tmp_path / "big").write_bytes(data)
    with pytest.raises(BadSignatureError, match="does not match the data"):
        verify_file(alice.public_key, tmp_path / "big", sig)


def test_streamed_file_truncated_or_extended(alice: SecretKey, tmp_path: Path) -> None:
    sig = sign_bytes(alice, BIG, trusted_comment="tc")
    for data in (BIG[:-1], BIG + b"\0", b""):
        (tmp_path / "f").write_bytes(data)
        with pytest.raises(BadSignatureError):
            verify_file(alice.public_key, tmp_path / "f", sig)


def test_streamed_file_wrong_key_and_legacy(alice: SecretKey, bob: SecretKey, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(DATA)
    with pytest.raises(KeyMismatchError):
        verify_file(bob.public_key, tmp_path / "f", _good(alice))
    legacy = _legacy(alice, DATA)
    with pytest.raises(LegacySignatureError):
        verify_file(alice.public_key, tmp_path / "f", legacy)
    assert verify_file(alice.public_key, tmp_path / "f", legacy, allow_legacy=True).trusted_comment == "tc"
