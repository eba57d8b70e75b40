"""Hostile secret key files: the scrypt parameters a key file implies must be bounded *as derived*.

The limits stored in a key file are not the memory scrypt uses: libsodium's ``pickparams`` turns a
tiny memlimit with a large opslimit into N = 2 and a huge parallelism p, and scrypt allocates
``128 * r * p`` bytes for p (2 GiB for memlimit 0, opslimit 2^27) before deriving anything.
"""

from __future__ import annotations

import base64

import pytest

from registry_tool.signing import MalformedKeyError, SecretKey
from registry_tool.signing import minisign as minisign_module
from registry_tool.signing.minisign import scrypt_params


class _KdfCalled(AssertionError):
    pass


def _with_limits(data: bytes, opslimit: int, memlimit: int) -> bytes:
    lines = data.decode().split("\n")
    raw = bytearray(base64.b64decode(lines[1]))
    raw[38:46] = opslimit.to_bytes(8, "little")
    raw[46:54] = memlimit.to_bytes(8, "little")
    lines[1] = base64.b64encode(bytes(raw)).decode()
    return "\n".join(lines).encode()


def _forbid_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Running scrypt with these parameters would allocate gigabytes: fail the test instead."""

    def refuse(*args: object, **kwargs: object) -> object:
        raise _KdfCalled(f"scrypt was run for a hostile key file: {kwargs}")

    monkeypatch.setattr(minisign_module, "Scrypt", refuse)


@pytest.mark.parametrize(
    ("opslimit", "memlimit"),
    [
        (1 << 25, 0),  # minisign's own opslimit, memlimit 0: N=2, p=2^19 -> 512 MiB for p alone
        (1 << 27, 0),  # the largest opslimit the old check allowed: p=2^21 -> 2 GiB
        (1 << 27, 1 << 10),
        (1 << 26, 1 << 14),
    ],
)
def test_small_memlimit_large_opslimit_is_refused_before_scrypt(
    alice: SecretKey, fast: dict[str, int], opslimit: int, memlimit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, r, p = scrypt_params(opslimit, memlimit)
    assert 128 * r * p >= 64 * 1024 * 1024  # what scrypt would allocate for the p blocks alone
    data = _with_limits(alice.dump(b"p", **fast), opslimit, memlimit)
    _forbid_kdf(monkeypatch)
    with pytest.raises(MalformedKeyError, match="scrypt"):
        SecretKey.load(data, b"p")


@pytest.mark.parametrize(
    ("opslimit", "memlimit"),
    [
        (33_554_432, 1_073_741_824),  # minisign -G / registry-tool key generate
        (524_288, 16_777_216),  # libsodium interactive
        (32_768, 1 << 20),  # the test vectors
    ],
)
def test_real_minisign_limits_are_within_the_bound(opslimit: int, memlimit: int) -> None:
    minisign_module.check_kdf_cost(opslimit, memlimit)  # does not raise


@pytest.mark.parametrize(
    ("opslimit", "memlimit"),
    [(1 << 27, 1 << 30), (1 << 25, 1 << 30), (1 << 24, (1 << 30) - 1), (1 << 20, 1 << 26)],
)
def test_bound_follows_the_derived_parameters(opslimit: int, memlimit: int) -> None:
    """Whatever the stored limits, what is accepted costs at most 1 GiB for V, 64 blocks for p and 4x
    minisign's default work (N * p <= 2^22)."""
    n, r, p = scrypt_params(opslimit, memlimit)
    minisign_module.check_kdf_cost(opslimit, memlimit)
    assert 128 * r * n <= 1 << 30 and p <= 64 and n * p <= 1 << 22
