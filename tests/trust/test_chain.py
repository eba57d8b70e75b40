"""Walking the root chain: exact versions, both thresholds, expiry, continuity."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from registry_tool.signing import SecretKey
from registry_tool.trust import (
    BadRootVersionError,
    ExpiredRootError,
    RevokedKeyError,
    Root,
    RootContinuityError,
    ThresholdNotMetError,
    UnauthorizedSignerError,
    verify_root_chain,
)
from registry_tool.trust.editing import derive, dump_root, renew, revoke, rotate_keys

from .conftest import Signer


def _next(prev: bytes, edit: Callable[[dict[str, Any]], None] | None = None, **kw: Any) -> bytes:
    return derive(Root.parse(prev), edit or renew(), **kw)


def _raw_edit(data: bytes, fn: Callable[[dict[str, Any]], None]) -> bytes:
    doc = json.loads(data)
    fn(doc)
    return dump_root(doc)


def test_chain_walks_each_version(
    root_v1: bytes, k: dict[str, SecretKey], sign: Signer, now: datetime
) -> None:
    v2 = _next(root_v1, rotate_keys("root", add=[k["r4"].public_key], remove=[k["r3"].key_id]))
    v3 = _next(v2, rotate_keys("index", add=[k["r5"].public_key], remove=[k["ix"].key_id]))
    final = verify_root_chain(
        root_v1, [(v2, sign(v2, [k["r1"], k["r4"], k["r2"]])), (v3, sign(v3, [k["r4"], k["r2"]]))], now
    )
    assert final.version == 3
    assert [key.key_id for key in final.roles["index"].keys] == [k["r5"].key_id]


def test_no_candidates_returns_trusted(root_v1: bytes, now: datetime) -> None:
    assert verify_root_chain(root_v1, [], now).version == 1


@pytest.mark.parametrize("version", [1, 3, 7])
def test_version_must_be_exactly_next(
    root_v1: bytes, k: dict[str, SecretKey], sign: Signer, now: datetime, version: int
) -> None:
    bad = _raw_edit(_next(root_v1), lambda d: d.update(version=version))
    with pytest.raises(BadRootVersionError, match="expected root version 2"):
        verify_root_chain(root_v1, [(bad, sign(bad, [k["r1"], k["r2"]]))], now)


def test_chain_skipping_a_version(
    root_v1: bytes, k: dict[str, SecretKey], sign: Signer, now: datetime
) -> None:
    v2 = _next(root_v1)
    v3 = _next(v2)
    with pytest.raises(BadRootVersionError):
        verify_root_chain(root_v1, [(v3, sign(v3, [k["r1"], k["r2"]]))], now)


@pytest.fixture
def rotated(root_v1: bytes, k: dict[str, SecretKey]) -> bytes:
    """Version 2 replaces every root key: r4, r5, 2-of-2."""
    return _next(
        root_v1,
        rotate_keys(
            "root",
            add=[k["r4"].public_key, k["r5"].public_key],
            remove=[k["r1"].key_id, k["r2"].key_id, k["r3"].key_id],
            threshold=2,
        ),
    )


def test_rotation_signed_by_old_and_new(
    root_v1: bytes, rotated: bytes, k: dict[str, SecretKey], sign: Signer, now: datetime
) -> None:
    sigs = sign(rotated, [k["r1"], k["r2"], k["r4"], k["r5"]])
    assert verify_root_chain(root_v1, [(rotated, sigs)], now).version == 2


def test_rotation_signed_by_old_keys_only(
    root_v1: bytes, rotated: bytes, k: dict[str, SecretKey], sign: Signer, now: datetime
) -> None:
    with pytest.raises(UnauthorizedSignerError, match="root role of version 2"):
        verify_root_chain(root_v1, [(rotated, sign(rotated, [k["r1"], k["r2"], k["r3"]]))], now)


def test_rotation_signed_by_new_keys_only(
    root_v1: bytes, rotated: bytes, k: dict[str, SecretKey], sign: Signer, now: datetime
) -> None:
    with pytest.raises(UnauthorizedSignerError, match="root role of version 1"):
        verify_root_chain(root_v1, [(rotated, sign(rotated, [k["r4"], k["r5"]]))], now)


def test_rotation_one_old_key_short(
    root_v1: bytes, rotated: bytes, k: dict[str, SecretKey], sign: Signer, now: datetime
) -> None:
    with pytest.raises(ThresholdNotMetError, match="version 1"):
        verify_root_chain(root_v1, [(rotated, sign(rotated, [k["r1"], k["r4"], k["r5"]]))], now)


def test_expired_final_root(root_v1: bytes, k: dict[str, SecretKey], sign: Signer, now: datetime) -> None:
    v2 = _next(root_v1, expires=now - timedelta(seconds=1))
    with pytest.raises(ExpiredRootError, match="version 2"):
        verify_root_chain(root_v1, [(v2, sign(v2, [k["r1"], k["r2"]]))], now)


def test_expiry_is_inclusive(root_v1: bytes, now: datetime) -> None:
    root = Root.parse(root_v1)
    with pytest.raises(ExpiredRootError):
        verify_root_chain(root_v1, [], root.expires)
    assert verify_root_chain(root_v1, [], root.expires - timedelta(seconds=1)).version == 1


def test_expired_trusted_root_without_newer(root_v1: bytes, now: datetime) -> None:
    with pytest.raises(ExpiredRootError):
        verify_root_chain(root_v1, [], now + timedelta(days=31))


def test_expired_intermediate_is_fine(
    root_v1: bytes, k: dict[str, SecretKey], sign: Signer, now: datetime
) -> None:
    v2 = _next(root_v1, expires=now - timedelta(days=5))
    v3 = _next(v2, expires=now + timedelta(days=5))
    chain = [(v2, sign(v2, [k["r1"], k["r2"]])), (v3, sign(v3, [k["r2"], k["r3"]]))]
    assert verify_root_chain(root_v1, chain, now).version == 3


def test_naive_now_is_refused(root_v1: bytes) -> None:
    from registry_tool.errors import UsageError

    with pytest.raises(UsageError):
        verify_root_chain(root_v1, [], datetime(2026, 1, 1))


def test_revoked_root_key_counts_for_nothing(
    root_v1: bytes, k: dict[str, SecretKey], sign: Signer, now: datetime
) -> None:
    """r3 is revoked by version 2: its signature counts neither for version 1's threshold nor 2's."""
    v2 = _next(root_v1, revoke(k["r3"].key_id, now=now, keep_prior_releases=False))
    with pytest.raises(RevokedKeyError):
        verify_root_chain(root_v1, [(v2, sign(v2, [k["r3"]]))], now)
    with pytest.raises(ThresholdNotMetError, match="revoked"):
        verify_root_chain(root_v1, [(v2, sign(v2, [k["r1"], k["r3"]]))], now)
    assert verify_root_chain(root_v1, [(v2, sign(v2, [k["r1"], k["r2"]]))], now).revoked


def test_registry_name_is_fixed(root_v1: bytes, k: dict[str, SecretKey], sign: Signer, now: datetime) -> None:
    v2 = _raw_edit(_next(root_v1), lambda d: d.update(registry="evil"))
    with pytest.raises(RootContinuityError):
        verify_root_chain(root_v1, [(v2, sign(v2, [k["r1"], k["r2"]]))], now)


def _revoked_v2(root_v1: bytes, k: dict[str, SecretKey], keep: bool, now: datetime) -> bytes:
    return _next(root_v1, revoke(k["r3"].key_id, now=now, keep_prior_releases=keep))


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.update(revoked=[]),
        lambda d: d["revoked"][0].update(revoked_at="2020-01-01T00:00:00Z"),
        lambda d: d["revoked"][0].update(keep_prior_releases=True),
    ],
    ids=["dropped", "backdated", "un-revoked releases"],
)
def test_revocations_are_permanent(
    root_v1: bytes,
    k: dict[str, SecretKey],
    sign: Signer,
    now: datetime,
    edit: Callable[[dict[str, Any]], None],
) -> None:
    v2 = _revoked_v2(root_v1, k, False, now)
    v3 = _raw_edit(_next(v2), edit)
    chain = [(v2, sign(v2, [k["r1"], k["r2"]])), (v3, sign(v3, [k["r1"], k["r2"]]))]
    with pytest.raises(RootContinuityError):
        verify_root_chain(root_v1, chain, now)


def test_tightening_keep_prior_releases_is_allowed(
    root_v1: bytes, k: dict[str, SecretKey], sign: Signer, now: datetime
) -> None:
    v2 = _revoked_v2(root_v1, k, True, now)
    v3 = _raw_edit(_next(v2), lambda d: d["revoked"][0].update(keep_prior_releases=False))
    chain = [(v2, sign(v2, [k["r1"], k["r2"]])), (v3, sign(v3, [k["r1"], k["r2"]]))]
    assert verify_root_chain(root_v1, chain, now).revoked[0].keep_prior_releases is False


def test_new_revocation_must_name_its_version(
    root_v1: bytes, k: dict[str, SecretKey], sign: Signer, now: datetime
) -> None:
    v2 = _next(_next(root_v1), revoke(k["r3"].key_id, now=now, keep_prior_releases=False))
    v2 = _raw_edit(v2, lambda d: d.update(version=2) or d["revoked"][0].update(revoked_in_version=1))
    with pytest.raises(RootContinuityError, match="revoked_in_version"):
        verify_root_chain(root_v1, [(v2, sign(v2, [k["r1"], k["r2"]]))], now)
