"""Maintainer signatures on releases: delegation, revocation, per-plugin thresholds."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from registry_tool.signing import SecretKey, TrustedCommentMismatchError, release_trusted_comment, sign_bytes
from registry_tool.signing.release import IdentityMismatchError, ParsedIdentity
from registry_tool.trust import (
    ExpiredRootError,
    PluginNameMismatchError,
    RevokedKeyError,
    Root,
    ThresholdNotMetError,
    UnauthorizedSignerError,
    verify_release_signatures,
    verify_yank_signatures,
)
from registry_tool.trust.editing import add_maintainer, derive, revoke, set_plugin_threshold


def manifest(name: str = "validate_email", version: str = "1.0.0") -> bytes:
    return f'[plugin]\nname = "{name}"\nversion = "{version}"\n\n[artifact]\nfile = "x.wasm"\n'.encode()


def release_sig(key: SecretKey, data: bytes, name: str = "validate_email", version: str = "1.0.0") -> str:
    return sign_bytes(key, data, trusted_comment=release_trusted_comment(name, version, timestamp=0))


@pytest.mark.parametrize(
    ("plugin", "signer"),
    [
        ("validate_email", "m1"),
        ("validate_email", "m2"),
        ("json-path", "m1"),
        ("json-", "m1"),
        ("other", "m3"),
    ],
)
def test_delegated_maintainer_signs(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime, plugin: str, signer: str
) -> None:
    data = manifest(plugin)
    sigs = [release_sig(k[signer], data, plugin)]
    assert verify_release_signatures(root_with_maintainers, plugin, data, sigs, now) == {k[signer].key_id}


@pytest.mark.parametrize(
    ("plugin", "signer"),
    [("other", "m1"), ("json", "m1"), ("validate_emails", "m2"), ("validate_email", "m3"), ("jsonx", "m1")],
)
def test_maintainer_outside_delegation(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime, plugin: str, signer: str
) -> None:
    data = manifest(plugin)
    with pytest.raises(UnauthorizedSignerError, match="delegated for"):
        verify_release_signatures(
            root_with_maintainers, plugin, data, [release_sig(k[signer], data, plugin)], now
        )


@pytest.mark.parametrize("signer", ["r1", "ix", "x"])
def test_non_maintainer_keys_cannot_sign_releases(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime, signer: str
) -> None:
    data = manifest()
    with pytest.raises(UnauthorizedSignerError):
        verify_release_signatures(
            root_with_maintainers, "validate_email", data, [release_sig(k[signer], data)], now
        )


def test_manifest_name_must_match(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime
) -> None:
    """A delegated signer's manifest for plugin A cannot be served as plugin B."""
    data = manifest("json-path")
    sig = release_sig(k["m1"], data, "json-path")
    with pytest.raises(PluginNameMismatchError):
        verify_release_signatures(root_with_maintainers, "validate_email", data, [sig], now)


def test_trusted_comment_must_name_this_release(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime
) -> None:
    data = manifest(version="1.0.1")
    sig = release_sig(k["m1"], data, version="1.0.0")  # reused comment of another version
    with pytest.raises(TrustedCommentMismatchError):
        verify_release_signatures(root_with_maintainers, "validate_email", data, [sig], now)


def test_plain_minisign_comment_is_accepted(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime
) -> None:
    data = manifest()
    sig = sign_bytes(k["m1"], data, trusted_comment="timestamp:1763726400\tfile:plugin.toml\thashed")
    assert verify_release_signatures(root_with_maintainers, "validate_email", data, [sig], now)


def test_tampered_manifest(root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime) -> None:
    from registry_tool.trust import BadSignatureError

    sig = release_sig(k["m1"], manifest())
    tampered = manifest().replace(b"x.wasm", b"y.wasm")
    with pytest.raises(BadSignatureError):
        verify_release_signatures(root_with_maintainers, "validate_email", tampered, [sig], now)


@pytest.fixture
def two_of_two(root_with_maintainers: Root) -> Root:
    return Root.parse(derive(root_with_maintainers, set_plugin_threshold("validate_email", 2)))


def test_per_plugin_threshold(two_of_two: Root, k: dict[str, SecretKey], now: datetime) -> None:
    data = manifest()
    assert verify_release_signatures(
        two_of_two, "validate_email", data, [release_sig(k["m1"], data), release_sig(k["m2"], data)], now
    ) == {k["m1"].key_id, k["m2"].key_id}
    with pytest.raises(ThresholdNotMetError, match="2 required"):
        verify_release_signatures(two_of_two, "validate_email", data, [release_sig(k["m1"], data)] * 2, now)
    # other plugins keep the default threshold of 1
    other = manifest("json-path")
    assert verify_release_signatures(
        two_of_two, "json-path", other, [release_sig(k["m1"], other, "json-path")], now
    )


def test_aliased_maintainer_key_counts_once(two_of_two: Root, k: dict[str, SecretKey], now: datetime) -> None:
    """m1's key delegated again under a second key id (via another maintainer) is still one key."""
    alias = SecretKey.from_seed(k["m1"].seed, b"\x55" * 8)
    root = Root.parse(derive(two_of_two, add_maintainer("mallory", [alias.public_key], ["validate_email"])))
    data = manifest()
    with pytest.raises(ThresholdNotMetError, match="1 distinct"):
        verify_release_signatures(
            root, "validate_email", data, [release_sig(k["m1"], data), release_sig(alias, data)], now
        )


def test_unreachable_plugin_threshold_is_rejected(root_with_maintainers: Root) -> None:
    from registry_tool.trust.editing import RootEditError

    with pytest.raises(RootEditError, match="only 2 key"):
        derive(root_with_maintainers, set_plugin_threshold("validate_email", 3))


@pytest.fixture
def revoked_keep(root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime) -> Root:
    return Root.parse(
        derive(root_with_maintainers, revoke(k["m1"].key_id, now=now, keep_prior_releases=True))
    )


@pytest.fixture
def revoked_drop(root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime) -> Root:
    return Root.parse(
        derive(root_with_maintainers, revoke(k["m1"].key_id, now=now, keep_prior_releases=False))
    )


def test_revoked_maintainer_rejected(revoked_drop: Root, k: dict[str, SecretKey], now: datetime) -> None:
    data = manifest()
    with pytest.raises(RevokedKeyError, match="did not keep"):
        verify_release_signatures(revoked_drop, "validate_email", data, [release_sig(k["m1"], data)], now)
    # even with a publication time before the revocation: the registry did not keep prior releases
    with pytest.raises(RevokedKeyError):
        verify_release_signatures(
            revoked_drop,
            "validate_email",
            data,
            [release_sig(k["m1"], data)],
            now,
            published_at=now - timedelta(days=100),
        )


@pytest.mark.parametrize(
    ("published", "refusal"),
    [
        (timedelta(days=-1), None),
        (timedelta(seconds=-1), None),
        (timedelta(0), "not before the revocation"),  # published at the revocation instant
        (timedelta(days=1), "not before the revocation"),
        (None, "publication time is unknown"),
    ],
)
def test_keep_prior_releases(
    revoked_keep: Root,
    k: dict[str, SecretKey],
    now: datetime,
    published: timedelta | None,
    refusal: str | None,
) -> None:
    data = manifest()
    at = None if published is None else now + published
    sigs = [release_sig(k["m1"], data)]
    if refusal is None:
        assert verify_release_signatures(revoked_keep, "validate_email", data, sigs, now, published_at=at)
    else:
        with pytest.raises(RevokedKeyError, match=refusal):
            verify_release_signatures(revoked_keep, "validate_email", data, sigs, now, published_at=at)


def test_keep_prior_releases_respects_old_delegation(
    revoked_keep: Root, k: dict[str, SecretKey], now: datetime
) -> None:
    data = manifest("other")
    with pytest.raises(RevokedKeyError, match="never delegated"):
        verify_release_signatures(
            revoked_keep,
            "other",
            data,
            [release_sig(k["m1"], data, "other")],
            now,
            published_at=now - timedelta(days=1),
        )


def test_revoked_maintainer_removed_from_delegations(revoked_keep: Root, k: dict[str, SecretKey]) -> None:
    assert "alice" not in revoked_keep.maintainers
    assert k["m1"].key_id not in revoked_keep.keys
    assert revoked_keep.revoked[0].plugins == ("json-*", "validate_email")


def test_expired_root_rejects_release(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime
) -> None:
    data = manifest()
    with pytest.raises(ExpiredRootError):
        verify_release_signatures(
            root_with_maintainers,
            "validate_email",
            data,
            [release_sig(k["m1"], data)],
            now + timedelta(days=60),
        )


def test_yank_needs_a_delegated_maintainer(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime
) -> None:
    yank = b'[yank]\nname = "validate_email"\nversion = "1.0.0"\nreason = "CVE"\n'
    good = sign_bytes(k["m2"], yank, trusted_comment="yank")
    assert verify_yank_signatures(root_with_maintainers, "validate_email", yank, [good], now) == {
        k["m2"].key_id
    }
    with pytest.raises(UnauthorizedSignerError):
        verify_yank_signatures(
            root_with_maintainers,
            "validate_email",
            yank,
            [sign_bytes(k["m3"], yank, trusted_comment="y")],
            now,
        )


def test_root_key_that_is_also_a_delegated_maintainer(
    root_v1: bytes, k: dict[str, SecretKey], now: datetime
) -> None:
    """Small registries: the owner's root key may also be delegated plugins, and then signs them."""
    root = Root.parse(derive(Root.parse(root_v1), add_maintainer("owner", [k["r1"].public_key], ["*"])))
    data = manifest("anything")
    assert verify_release_signatures(root, "anything", data, [release_sig(k["r1"], data, "anything")], now)
    with pytest.raises(UnauthorizedSignerError, match="root role"):
        verify_release_signatures(root, "anything", data, [release_sig(k["r2"], data, "anything")], now)


def test_yank_must_name_its_release_version(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime
) -> None:
    yank = b'[yank]\nname = "validate_email"\nversion = "1.0.0"\nreason = "CVE"\n'
    sigs = [sign_bytes(k["m1"], yank, trusted_comment="yank")]
    assert verify_yank_signatures(root_with_maintainers, "validate_email", yank, sigs, now, version="1.0.0")
    with pytest.raises(PluginNameMismatchError, match=r"yank\.version"):
        verify_yank_signatures(root_with_maintainers, "validate_email", yank, sigs, now, version="2.0.0")


# --------------------------------------------------------------------------- an already parsed identity


def _parsed(
    data: bytes, name: str = "validate_email", version: str = "1.0.0", table: str = "plugin"
) -> ParsedIdentity:
    return ParsedIdentity(name, version, data, table)


def test_parsed_identity_gives_the_same_verdict(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime
) -> None:
    data = manifest()
    sigs = [release_sig(k["m1"], data)]
    expected = verify_release_signatures(root_with_maintainers, "validate_email", data, sigs, now)
    # An equal copy of the bytes is as good as the same object.
    for source in (data, bytes(bytearray(data))):
        got = verify_release_signatures(
            root_with_maintainers, "validate_email", data, sigs, now, identity=_parsed(source)
        )
        assert got == expected == {k["m1"].key_id}


@pytest.mark.parametrize(
    ("source", "table"),
    [
        (manifest("json-path"), "plugin"),  # identity read from another plugin's manifest
        (manifest(version="1.0.1"), "plugin"),  # from another version's manifest
        (manifest() + b"\n", "plugin"),  # from bytes that differ by one byte
        (manifest(), "yank"),  # from the right bytes, but the wrong table
    ],
)
def test_parsed_identity_from_other_bytes_is_refused(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime, source: bytes, table: str
) -> None:
    data = manifest()
    sigs = [release_sig(k["m1"], data)]
    with pytest.raises(IdentityMismatchError, match="not read from the verified bytes"):
        verify_release_signatures(
            root_with_maintainers, "validate_email", data, sigs, now, identity=_parsed(source, table=table)
        )


def test_parsed_identity_still_binds_name_and_trusted_comment(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime
) -> None:
    """The checks that use the identity still run on it: plugin name and trusted comment."""
    data = manifest("json-path")
    sig = release_sig(k["m1"], data, "json-path")
    with pytest.raises(PluginNameMismatchError):
        verify_release_signatures(
            root_with_maintainers, "validate_email", data, [sig], now, identity=_parsed(data, "json-path")
        )
    data = manifest(version="1.0.1")
    sig = release_sig(k["m1"], data, version="1.0.0")
    with pytest.raises(TrustedCommentMismatchError):
        verify_release_signatures(
            root_with_maintainers, "validate_email", data, [sig], now, identity=_parsed(data, version="1.0.1")
        )


def test_a_plugin_no_maintainer_is_delegated_says_to_delegate_it(
    root_v1: bytes, k: dict[str, SecretKey], now: datetime
) -> None:
    """It said "sign with a key of the maintainer of 'validate_email'": no such maintainer exists."""
    data = manifest()
    with pytest.raises(UnauthorizedSignerError, match="delegates it to no maintainer") as err:
        verify_release_signatures(
            Root.parse(root_v1), "validate_email", data, [release_sig(k["m1"], data)], now
        )
    assert "root add-maintainer" in (err.value.fix or "")
