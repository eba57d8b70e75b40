from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from registry_tool.signing import SecretKey, sign_bytes
from registry_tool.trust import Root
from registry_tool.trust.editing import add_maintainer, derive, new_root

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


def _key(n: int) -> SecretKey:
    return SecretKey.from_seed(bytes([n]) * 32, bytes([0xA0 + n]) * 8)


@pytest.fixture(scope="session")
def now() -> datetime:
    return NOW


@pytest.fixture(scope="session")
def k() -> dict[str, SecretKey]:
    """r1..r3 root, ix index, m1..m3 maintainers, x outsider."""
    names = ["r1", "r2", "r3", "ix", "m1", "m2", "m3", "x", "r4", "r5"]
    return {name: _key(i + 1) for i, name in enumerate(names)}


Signer = Callable[[bytes, Sequence[SecretKey]], list[str]]


@pytest.fixture(scope="session")
def sign() -> Signer:
    def _sign(data: bytes, keys: Sequence[SecretKey]) -> list[str]:
        return [sign_bytes(key, data, trusted_comment="test") for key in keys]

    return _sign


@pytest.fixture(scope="session")
def root_v1(k: dict[str, SecretKey]) -> bytes:
    """2-of-3 root, 1 index key, expires in 30 days."""
    return new_root(
        "test-registry",
        [k["r1"].public_key, k["r2"].public_key, k["r3"].public_key],
        [k["ix"].public_key],
        root_threshold=2,
        expires=NOW + timedelta(days=30),
    )


@pytest.fixture(scope="session")
def root_with_maintainers(root_v1: bytes, k: dict[str, SecretKey]) -> Root:
    """Version 2: m1 -> validate_email, json-*; m2 -> validate_email; m3 -> other."""
    root = Root.parse(root_v1)
    data = derive(root, add_maintainer("alice", [k["m1"].public_key], ["validate_email", "json-*"]))
    data = derive(
        Root.parse(data), add_maintainer("bob", [k["m2"].public_key], ["validate_email"]), bump=False
    )
    data = derive(Root.parse(data), add_maintainer("carol", [k["m3"].public_key], ["other"]), bump=False)
    return Root.parse(data)
