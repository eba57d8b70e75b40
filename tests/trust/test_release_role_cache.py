"""The signing role of a plugin is computed once per root and plugin: it must never leak.

``Root.release_role`` keeps, per root instance and plugin name, the delegated keys and the
refusals of every other key.  Each test first verifies with a root (filling that cache) and then
checks a case whose answer differs: another root, another plugin, another publication time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from registry_tool.signing import SecretKey, release_trusted_comment, sign_bytes
from registry_tool.trust import (
    RevokedKeyError,
    Root,
    ThresholdNotMetError,
    UnauthorizedSignerError,
    verify_release_signatures,
)
from registry_tool.trust.editing import add_maintainer, derive, revoke, set_plugin_threshold


def manifest(name: str, version: str = "1.0.0") -> bytes:
    return f'[plugin]\nname = "{name}"\nversion = "{version}"\n\n[artifact]\nfile = "x.wasm"\n'.encode()


def sig(key: SecretKey, data: bytes, name: str, version: str = "1.0.0") -> str:
    return sign_bytes(key, data, trusted_comment=release_trusted_comment(name, version, timestamp=0))


def delegated(root_v1: bytes, maintainer: str, key: SecretKey, plugins: list[str]) -> Root:
    return Root.parse(derive(Root.parse(root_v1), add_maintainer(maintainer, [key.public_key], plugins)))


def test_plugin_delegated_to_another_maintainer_in_another_root(
    root_v1: bytes, k: dict[str, SecretKey], now: datetime
) -> None:
    # Same registry, same version, same plugin: only the delegation differs.
    to_alice = delegated(root_v1, "alice", k["m1"], ["foo"])
    to_bob = delegated(root_v1, "bob", k["m2"], ["foo"])
    assert (to_alice.registry, to_alice.version) == (to_bob.registry, to_bob.version)
    data = manifest("foo")
    assert verify_release_signatures(to_alice, "foo", data, [sig(k["m1"], data, "foo")], now) == {
        k["m1"].key_id
    }
    assert verify_release_signatures(to_bob, "foo", data, [sig(k["m2"], data, "foo")], now) == {
        k["m2"].key_id
    }
    with pytest.raises(UnauthorizedSignerError):
        verify_release_signatures(to_bob, "foo", data, [sig(k["m1"], data, "foo")], now)
    with pytest.raises(UnauthorizedSignerError):
        verify_release_signatures(to_alice, "foo", data, [sig(k["m2"], data, "foo")], now)


def test_key_revoked_in_a_newer_root(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime
) -> None:
    data = manifest("validate_email")
    sigs = [sig(k["m1"], data, "validate_email")]
    assert verify_release_signatures(root_with_maintainers, "validate_email", data, sigs, now)
    newer = Root.parse(
        derive(root_with_maintainers, revoke(k["m1"].key_id, now=now, keep_prior_releases=False))
    )
    with pytest.raises(RevokedKeyError):
        verify_release_signatures(newer, "validate_email", data, sigs, now)
    # The older root still accepts it: the newer one's answer did not travel back either.
    assert verify_release_signatures(root_with_maintainers, "validate_email", data, sigs, now)


def test_delegation_of_one_plugin_is_not_another_plugins(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime
) -> None:
    # alice (m1) has json-* and validate_email, carol (m3) has "other".
    json, other = manifest("json-path"), manifest("other")
    assert verify_release_signatures(
        root_with_maintainers, "json-path", json, [sig(k["m1"], json, "json-path")], now
    )
    with pytest.raises(UnauthorizedSignerError, match="not for plugin 'other'"):
        verify_release_signatures(root_with_maintainers, "other", other, [sig(k["m1"], other, "other")], now)
    assert verify_release_signatures(
        root_with_maintainers, "other", other, [sig(k["m3"], other, "other")], now
    )
    with pytest.raises(UnauthorizedSignerError, match="not for plugin 'json-path'"):
        verify_release_signatures(
            root_with_maintainers, "json-path", json, [sig(k["m3"], json, "json-path")], now
        )


def test_threshold_of_one_plugin_is_not_another_plugins(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime
) -> None:
    root = Root.parse(derive(root_with_maintainers, set_plugin_threshold("validate_email", 2)))
    json, email = manifest("json-x"), manifest("validate_email")
    assert verify_release_signatures(root, "json-x", json, [sig(k["m1"], json, "json-x")], now)
    with pytest.raises(ThresholdNotMetError):
        verify_release_signatures(root, "validate_email", email, [sig(k["m1"], email, "validate_email")], now)
    assert verify_release_signatures(
        root,
        "validate_email",
        email,
        [sig(k["m1"], email, "validate_email"), sig(k["m2"], email, "validate_email")],
        now,
    ) == {k["m1"].key_id, k["m2"].key_id}


def test_revoked_key_judged_per_release_publication_time(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime
) -> None:
    root = Root.parse(
        derive(root_with_maintainers, revoke(k["m1"].key_id, now=now, keep_prior_releases=True))
    )
    data = manifest("validate_email")
    sigs = [sig(k["m1"], data, "validate_email")]
    before, after = now - timedelta(days=1), now + timedelta(days=1)
    assert verify_release_signatures(root, "validate_email", data, sigs, now, published_at=before)
    with pytest.raises(RevokedKeyError, match="not before the revocation"):
        verify_release_signatures(root, "validate_email", data, sigs, now, published_at=after)
    assert verify_release_signatures(root, "validate_email", data, sigs, now, published_at=before)
    # A plugin the revoked key never had stays refused, whatever was asked before.
    other = manifest("other")
    with pytest.raises(RevokedKeyError, match="never delegated"):
        verify_release_signatures(
            root, "other", other, [sig(k["m1"], other, "other")], now, published_at=before
        )


def test_role_is_reused_within_one_root_and_plugin(root_with_maintainers: Root, now: datetime) -> None:
    role = root_with_maintainers.release_role("validate_email", None)
    assert root_with_maintainers.release_role("validate_email", now) is role
    assert root_with_maintainers.release_role("other", None) is not role
