"""Thresholds fail closed: no vacuous pass, every rule on a counted signature can refuse."""

from __future__ import annotations

import pytest

from registry_tool.signing import KeyMismatchError, SecretKey
from registry_tool.trust import (
    EmptyPolicyError,
    Role,
    ThresholdNotMetError,
    UnauthorizedSignerError,
    verify_threshold,
)

from .conftest import Signer

DATA = b"payload"


def test_zero_threshold_never_passes(k: dict[str, SecretKey]) -> None:
    with pytest.raises(EmptyPolicyError):
        verify_threshold(Role("nobody", (), 0), DATA, [])


def test_one_key_role_is_a_pinned_key(k: dict[str, SecretKey], sign: Signer) -> None:
    role = Role("pinned", (k["m1"].public_key,), 1)
    assert verify_threshold(role, DATA, sign(DATA, [k["m1"]])) == {k["m1"].key_id}
    with pytest.raises(UnauthorizedSignerError):
        verify_threshold(role, DATA, sign(DATA, [k["m2"]]))
    with pytest.raises(ThresholdNotMetError):
        verify_threshold(role, DATA, [])


def test_the_same_key_twice_counts_once(k: dict[str, SecretKey], sign: Signer) -> None:
    role = Role("two", (k["m1"].public_key, k["m2"].public_key), 2)
    with pytest.raises(ThresholdNotMetError, match="1 distinct key"):
        verify_threshold(role, DATA, sign(DATA, [k["m1"], k["m1"]]))
    assert verify_threshold(role, DATA, sign(DATA, [k["m1"], k["m2"]])) == {k["m1"].key_id, k["m2"].key_id}


def test_each_hook_can_veto_a_counted_signature(k: dict[str, SecretKey], sign: Signer) -> None:
    def veto(_: object) -> None:
        raise KeyMismatchError("vetoed")

    with pytest.raises(KeyMismatchError):
        verify_threshold(Role("r", (k["m1"].public_key,), 1), DATA, sign(DATA, [k["m1"]]), each=veto)
