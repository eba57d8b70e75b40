"""Chain-step rules that keep a root version from swapping keys or delegating through a revocation.

docs/trust.md 5.1 rule 7 and 5.5 step 4: a key id names one public key (within a root and from
one version to the next); a revocation is fixed once made; a new revocation takes effect by its
version's expiry and lists only plugins the key was delegated in the version before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from registry_tool.signing import SecretKey
from registry_tool.trust import Root, RootContinuityError, RootFormatError, verify_root_chain
from registry_tool.trust.editing import derive, dump_root, renew, revoke
from registry_tool.trust.root import check_root_successor, pattern_within

from .conftest import Signer

Doc = dict[str, Any]


def _edit(data: bytes, fn: Callable[[Doc], None], *, bump: bool = True) -> bytes:
    doc = json.loads(data)
    if bump:
        doc["version"] += 1
    fn(doc)
    return dump_root(doc)


def _impostor(victim: SecretKey) -> SecretKey:
    """Another key made with the victim's key number: the same key id (the maker chooses it)."""
    impostor = SecretKey.from_seed(b"\x66" * 32, victim.keynum)
    assert impostor.key_id == victim.key_id and impostor.public_key.raw != victim.public_key.raw
    return impostor


def _chain(
    root_v1: bytes,
    v2: Root,
    steps: list[bytes],
    sign: Signer,
    k: dict[str, SecretKey],
    extra: list[SecretKey],
) -> list[tuple[bytes, list[str]]]:
    chain = [(v2.raw, sign(v2.raw, [k["r1"], k["r2"]]))]
    return chain + [(raw, sign(raw, [k["r1"], k["r2"], *extra])) for raw in steps]


@pytest.mark.parametrize("victim", ["r3", "ix", "m1"], ids=["root-key", "index-key", "maintainer-key"])
def test_a_key_id_cannot_name_another_public_key_in_the_next_version(
    root_v1: bytes,
    root_with_maintainers: Root,
    k: dict[str, SecretKey],
    sign: Signer,
    now: datetime,
    victim: str,
) -> None:
    """The swap the attack made: same id, the attacker's key, every id-based summary unchanged."""
    impostor = _impostor(k[victim])

    def swap(doc: Doc) -> None:
        doc["keys"][impostor.key_id]["public_key"] = impostor.public_key.to_base64()

    v3 = _edit(root_with_maintainers.raw, swap)
    chain = _chain(root_v1, root_with_maintainers, [v3], sign, k, [impostor])
    with pytest.raises(RootContinuityError, match=f"binds key id {impostor.key_id} to another public key"):
        verify_root_chain(root_v1, chain, now)


def test_a_revoked_key_id_cannot_come_back_with_another_key(
    root_v1: bytes, root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime
) -> None:
    v3 = Root.parse(derive(root_with_maintainers, revoke(k["m3"].key_id, now=now, keep_prior_releases=False)))
    impostor = _impostor(k["m3"])

    def comeback(doc: Doc) -> None:
        doc["keys"][impostor.key_id] = {"public_key": impostor.public_key.to_base64()}
        doc["maintainers"]["carol"] = {"keyids": [impostor.key_id], "plugins": ["other"]}

    # Within the version itself (the revocation must stay listed): one id, two public keys.
    with pytest.raises(RootFormatError, match="names two different public keys"):
        Root.parse(_edit(v3.raw, comeback))
    # And step by step, even where the revocation were dropped.
    v4 = Root.parse(_edit(v3.raw, lambda d: (d.update(revoked=[]), comeback(d))))
    with pytest.raises(RootContinuityError, match="another public key"):
        check_root_successor(v3, v4)


def test_two_revocations_under_one_key_id_are_refused(root_v1: bytes, k: dict[str, SecretKey]) -> None:
    impostor = _impostor(k["x"])

    def two(doc: Doc) -> None:
        for key in (k["x"].public_key, impostor.public_key):
            doc["revoked"].append(
                {
                    "keyid": key.key_id,
                    "public_key": key.to_base64(),
                    "revoked_in_version": 1,
                    "revoked_at": "2026-01-01T00:00:00Z",
                    "keep_prior_releases": False,
                    "plugins": [],
                }
            )

    with pytest.raises(RootFormatError, match="names two different public keys"):
        Root.parse(_edit(root_v1, two, bump=False))


def test_unchanged_keys_and_a_new_key_id_pass(
    root_v1: bytes, root_with_maintainers: Root, k: dict[str, SecretKey], sign: Signer, now: datetime
) -> None:
    v3 = derive(root_with_maintainers, renew())
    chain = _chain(root_v1, root_with_maintainers, [v3], sign, k, [])
    assert verify_root_chain(root_v1, chain, now).version == 3


# --------------------------------------------------------------------------- revocations


def _revoke_m1(root: Root, now: datetime, **fields: Any) -> Root:
    """Version N+1 revoking m1 (delegated validate_email, json-*), keeping prior releases."""
    data = derive(root, revoke(root.maintainers["alice"].keys[0].key_id, now=now, keep_prior_releases=True))
    return Root.parse(_edit(data, lambda d: d["revoked"][-1].update(fields), bump=False))


@pytest.mark.parametrize(
    "plugins",
    [["*"], ["other"], ["validate_email", "other"], ["json*"], ["validate*"]],
)
def test_a_revocation_cannot_name_plugins_the_key_was_never_delegated(
    root_with_maintainers: Root, now: datetime, plugins: list[str]
) -> None:
    """plugins ["*"] with keep_prior_releases was a delegation of every plugin until revoked_at."""
    v3 = _revoke_m1(root_with_maintainers, now, plugins=plugins)
    with pytest.raises(RootContinuityError, match="did not delegate to it"):
        check_root_successor(root_with_maintainers, v3)


@pytest.mark.parametrize("plugins", [[], ["validate_email"], ["json-*"], ["json-x", "json-y*"]])
def test_a_revocation_may_name_what_the_key_was_delegated(
    root_with_maintainers: Root, now: datetime, plugins: list[str]
) -> None:
    check_root_successor(root_with_maintainers, _revoke_m1(root_with_maintainers, now, plugins=plugins))


def test_a_key_without_delegation_is_revoked_for_no_plugin(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime
) -> None:
    """A root key, or a key the root never listed: its revocation lists no plugin."""
    for key_id in (k["r3"].key_id,):
        v3 = Root.parse(derive(root_with_maintainers, revoke(key_id, now=now, keep_prior_releases=True)))
        assert v3.revoked[-1].plugins == ()
        check_root_successor(root_with_maintainers, v3)
        wider = Root.parse(_edit(v3.raw, lambda d: d["revoked"][-1].update(plugins=["hello"]), bump=False))
        with pytest.raises(RootContinuityError, match=r"delegated: none"):
            check_root_successor(root_with_maintainers, wider)


def test_a_revocation_takes_effect_by_its_versions_expiry(root_with_maintainers: Root, now: datetime) -> None:
    """A revoked_at after the version's own expiry is refused (until then the key still signs)."""
    v3 = _revoke_m1(root_with_maintainers, now)
    expires = v3.data["expires"]
    check_root_successor(root_with_maintainers, _revoke_m1(root_with_maintainers, now, revoked_at=expires))
    with pytest.raises(RootContinuityError, match="after the version itself expires"):
        check_root_successor(
            root_with_maintainers, _revoke_m1(root_with_maintainers, now, revoked_at="2099-01-01T00:00:00Z")
        )


@pytest.mark.parametrize(
    "change",
    [
        {"plugins": ["*"]},  # widened: the attack of finding 6
        {"plugins": ["validate_email"]},  # narrowed: still a change
        {"plugins": ["json-*", "validate_email", "other"]},
        {"revoked_at": "2026-01-01T00:00:00Z"},
    ],
    ids=["widened", "narrowed", "added", "backdated"],
)
def test_an_existing_revocation_is_fixed(root_with_maintainers: Root, now: datetime, change: Doc) -> None:
    v3 = _revoke_m1(root_with_maintainers, now)
    v4 = Root.parse(_edit(v3.raw, lambda d: d["revoked"][0].update(change)))
    with pytest.raises(RootContinuityError, match="drops or alters the revocation"):
        check_root_successor(v3, v4)


def test_an_existing_revocation_may_change_its_reason_order_and_tighten(
    root_with_maintainers: Root, now: datetime
) -> None:
    v3 = _revoke_m1(root_with_maintainers, now)
    v4 = Root.parse(
        _edit(
            v3.raw,
            lambda d: d["revoked"][0].update(
                reason="found in a dump",
                plugins=list(reversed(d["revoked"][0]["plugins"])),
                keep_prior_releases=False,
            ),
        )
    )
    check_root_successor(v3, v4)


@pytest.mark.parametrize(
    ("inner", "outer", "within"),
    [
        ("hello", "hello", True),
        ("hello", "hel*", True),
        ("hello*", "hello*", True),
        ("hello-*", "hello*", True),
        ("hello*", "hello", False),
        ("hel*", "hello*", False),
        ("*", "a*", False),
        ("a*", "*", True),
        ("*", "*", True),
        ("other", "hello*", False),
    ],
)
def test_pattern_within(inner: str, outer: str, within: bool) -> None:
    assert pattern_within(inner, outer) is within
