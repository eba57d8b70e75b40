"""Interoperability with the real `minisign` binary, both ways."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from registry_tool.signing import LegacySignatureError, PublicKey, SecretKey, sign_bytes, verify_bytes

DATA = b'[plugin]\nname = "x"\n'


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=120)


@pytest.fixture
def signed_by_us(tmp_path: Path, alice: SecretKey) -> tuple[Path, Path]:
    (tmp_path / "f").write_bytes(DATA)
    (tmp_path / "f.minisig").write_text(sign_bytes(alice, DATA, trusted_comment="plugin:x\tversion:1.0.0"))
    (tmp_path / "k.pub").write_text(alice.public_key.to_text())
    return tmp_path / "f", tmp_path / "k.pub"


def test_our_signature_verifies_with_minisign(minisign: str, signed_by_us: tuple[Path, Path]) -> None:
    f, pub = signed_by_us
    out = run(minisign, "-V", "-p", str(pub), "-m", str(f))
    assert out.returncode == 0, out.stderr
    assert "Trusted comment: plugin:x\tversion:1.0.0" in out.stdout


def test_our_signature_with_bare_base64_key(
    minisign: str, signed_by_us: tuple[Path, Path], alice: SecretKey
) -> None:
    f, _ = signed_by_us
    out = run(minisign, "-V", "-P", alice.public_key.to_base64(), "-m", str(f), "-x", f"{f}.minisig")
    assert out.returncode == 0, out.stderr


def test_minisign_rejects_our_signature_on_tampered_file(
    minisign: str, signed_by_us: tuple[Path, Path]
) -> None:
    f, pub = signed_by_us
    f.write_bytes(DATA + b"#")
    assert run(minisign, "-V", "-p", str(pub), "-m", str(f)).returncode != 0


def test_minisign_signs_with_our_unencrypted_key(minisign: str, tmp_path: Path, alice: SecretKey) -> None:
    (tmp_path / "k.key").write_bytes(alice.dump(None))
    (tmp_path / "f").write_bytes(DATA)
    out = run(
        minisign, "-S", "-s", str(tmp_path / "k.key"), "-m", str(tmp_path / "f"), "-t", "made by minisign"
    )
    assert out.returncode == 0, out.stderr
    verified = verify_bytes(alice.public_key, DATA, (tmp_path / "f.minisig").read_text())
    assert verified.trusted_comment == "made by minisign"


def test_minisign_signs_with_our_encrypted_key(
    minisign: str, tmp_path: Path, alice: SecretKey, fast: dict[str, int]
) -> None:
    """minisign reads the scrypt limits from the file and the password from stdin (not a tty)."""
    (tmp_path / "k.key").write_bytes(alice.dump(b"pw", **fast))
    (tmp_path / "f").write_bytes(DATA)
    out = run(minisign, "-S", "-s", str(tmp_path / "k.key"), "-m", str(tmp_path / "f"), stdin="pw\n")
    assert out.returncode == 0, out.stderr
    assert verify_bytes(alice.public_key, DATA, (tmp_path / "f.minisig").read_text())


def test_minisign_rejects_wrong_password_for_our_key(
    minisign: str, tmp_path: Path, alice: SecretKey, fast: dict[str, int]
) -> None:
    (tmp_path / "k.key").write_bytes(alice.dump(b"pw", **fast))
    (tmp_path / "f").write_bytes(DATA)
    out = run(minisign, "-S", "-s", str(tmp_path / "k.key"), "-m", str(tmp_path / "f"), stdin="nope\n")
    assert out.returncode != 0


def test_unencrypted_minisign_key_pair_accepted(minisign: str, tmp_path: Path) -> None:
    pub, key = tmp_path / "m.pub", tmp_path / "m.key"
    assert run(minisign, "-G", "-W", "-p", str(pub), "-s", str(key)).returncode == 0
    public = PublicKey.parse(pub.read_text())
    secret = SecretKey.load(key.read_bytes(), None)
    assert secret.public_key.raw == public.raw and secret.key_id == public.key_id
    # minisign prints the same key id we compute, without leading zeros ("%" PRIX64); ours has 16 digits
    printed = pub.read_text().split("\n")[0].rsplit(" ", 1)[-1]
    assert printed == public.key_id.lstrip("0")
    (tmp_path / "f").write_bytes(DATA)
    (tmp_path / "f.minisig").write_text(sign_bytes(secret, DATA, trusted_comment="ours"))
    assert run(minisign, "-V", "-p", str(pub), "-m", str(tmp_path / "f")).returncode == 0


@pytest.mark.slow
def test_encrypted_minisign_key_pair_accepted(
    minisign: str, tmp_path: Path, minisign_encrypted: tuple[Path, Path, str]
) -> None:
    """`minisign -G` (scrypt, 1 GiB) key: loaded with the password, then each side verifies the other."""
    pub, key, password = minisign_encrypted
    public = PublicKey.parse(pub.read_bytes())
    secret = SecretKey.load(key.read_bytes(), password.encode())
    assert secret.public_key == PublicKey(public.keynum, public.raw)
    f = tmp_path / "f"
    f.write_bytes(DATA)
    out = run(minisign, "-S", "-s", str(key), "-m", str(f), "-t", "by minisign", stdin=f"{password}\n")
    assert out.returncode == 0, out.stderr
    assert verify_bytes(public, DATA, (tmp_path / "f.minisig").read_text()).trusted_comment == "by minisign"
    (tmp_path / "g").write_bytes(DATA)
    (tmp_path / "g.minisig").write_text(sign_bytes(secret, DATA, trusted_comment="by us"))
    assert run(minisign, "-V", "-p", str(pub), "-m", str(tmp_path / "g")).returncode == 0


def test_minisign_legacy_flag_absent_but_legacy_parsed(
    minisign: str, tmp_path: Path, alice: SecretKey
) -> None:
    """minisign 0.11 verifies legacy 'Ed' signatures; we refuse them unless asked."""
    sig = alice.sign_raw(DATA)
    glob = alice.sign_raw(sig + b"old")
    from registry_tool.signing import Signature

    text = Signature(b"Ed", alice.keynum, sig, "old", glob, "legacy").to_text()
    (tmp_path / "f").write_bytes(DATA)
    (tmp_path / "f.minisig").write_text(text)
    (tmp_path / "k.pub").write_text(alice.public_key.to_text())
    # The format is exact: minisign itself accepts the legacy file we built.
    out = run(minisign, "-V", "-p", str(tmp_path / "k.pub"), "-m", str(tmp_path / "f"))
    assert out.returncode == 0, out.stderr
    with pytest.raises(LegacySignatureError):
        verify_bytes(alice.public_key, DATA, text)
