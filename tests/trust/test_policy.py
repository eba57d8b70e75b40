"""Composable policies fail closed: empty combinations accept nothing."""

from __future__ import annotations

import pytest

from registry_tool.signing import KeyMismatchError, SecretKey
from registry_tool.trust import (
    AllOf,
    AnyOf,
    EmptyPolicyError,
    PinnedKey,
    Role,
    Root,
    Threshold,
    ThresholdNotMetError,
    UnauthorizedSignerError,
)

from .conftest import Signer

DATA = b"payload"


@pytest.mark.parametrize("combinator", [AllOf, AnyOf])
def test_empty_combination_fails(
    combinator: type[AllOf] | type[AnyOf], k: dict[str, SecretKey], sign: Signer
) -> None:
    with pytest.raises(EmptyPolicyError):
        combinator(()).check(DATA, sign(DATA, [k["r1"]]))


def test_zero_threshold_never_passes(k: dict[str, SecretKey]) -> None:
    with pytest.raises(EmptyPolicyError):
        Threshold(Role("nobody", (), 0)).check(DATA, [])


def test_pinned_key(k: dict[str, SecretKey], sign: Signer) -> None:
    policy = PinnedKey(k["m1"].public_key)
    assert policy.check(DATA, sign(DATA, [k["m1"]])) == {k["m1"].key_id}
    with pytest.raises(UnauthorizedSignerError):
        policy.check(DATA, sign(DATA, [k["m2"]]))
    with pytest.raises(ThresholdNotMetError):
        policy.check(DATA, [])


def test_all_of_needs_each(root_v1: bytes, k: dict[str, SecretKey], sign: Signer) -> None:
    root = Root.parse(root_v1)
    policy = AllOf((Threshold(root.role("root")), Threshold(root.role("index"))))
    assert policy.check(DATA, sign(DATA, [k["r1"], k["r2"], k["ix"]])) == {
        k["r1"].key_id,
        k["r2"].key_id,
        k["ix"].key_id,
    }
    with pytest.raises(UnauthorizedSignerError):
        policy.check(DATA, sign(DATA, [k["r1"], k["r2"]]))


def test_any_of_takes_first_satisfied(root_v1: bytes, k: dict[str, SecretKey], sign: Signer) -> None:
    root = Root.parse(root_v1)
    policy = AnyOf((Threshold(root.role("root")), PinnedKey(k["x"].public_key)))
    assert policy.check(DATA, sign(DATA, [k["x"]])) == {k["x"].key_id}
    with pytest.raises(ThresholdNotMetError, match="no alternative"):
        policy.check(DATA, sign(DATA, [k["m1"]]))


def test_threshold_each_hook_can_veto(k: dict[str, SecretKey], sign: Signer) -> None:
    def veto(_: object) -> None:
        raise KeyMismatchError("vetoed")

    with pytest.raises(KeyMismatchError):
        Threshold(Role("r", (k["m1"].public_key,), 1), each=veto).check(DATA, sign(DATA, [k["m1"]]))
