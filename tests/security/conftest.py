from __future__ import annotations

import hashlib

import pytest

from registry_tool.signing import SecretKey

# Low scrypt limits keep tests fast (N = 2^10).
FAST = {"opslimit": 32768, "memlimit": 1 << 20}


def key(label: str) -> SecretKey:
    seed = hashlib.sha256(f"security {label}".encode()).digest()
    return SecretKey.from_seed(seed, hashlib.sha256(seed).digest()[:8])


@pytest.fixture
def fast() -> dict[str, int]:
    return dict(FAST)


@pytest.fixture
def alice() -> SecretKey:
    return key("alice")
