"""A server holding no root key serves a long chain of root versions.

The client must authenticate root N+1 (signatures of root N's keys over the raw bytes) before
parsing it or fetching N+2, as the TUF client workflow does: otherwise a keyless server makes
every session download up to 256 roots of 1 MiB and parse each of them before any check.
"""

from __future__ import annotations

import pytest

from registry_tool.signing import sign_bytes
from registry_tool.trust import Root, ThresholdNotMetError, UnauthorizedSignerError
from registry_tool.trust.editing import derive, renew

from .client_world import World

# These cases do not test the transport: the site is served from memory (tests/world/simulator.py).
pytestmark = pytest.mark.simulated


def _serve_unsigned_chain(world: World, count: int) -> int:
    """root/N+1 .. root/N+count after the served chain: well-formed, numbered right, signed by nobody.

    Returns N+1, the first unauthenticated version."""
    latest = max(int(p.name.split(".")[0]) for p in (world.site / "root").glob("*.root.json"))
    prev = (world.site / "root" / f"{latest}.root.json").read_bytes()
    for _ in range(count):
        raw = derive(Root.parse(prev), renew())
        world.write_site(f"root/{Root.parse(raw).version}.root.json", raw)
        prev = raw
    return latest + 1


@pytest.mark.parametrize("forged_by", [None, "alice"])
def test_unsigned_root_chain_stops_at_the_first_version(trusted: World, forged_by: str | None) -> None:
    first = _serve_unsigned_chain(trusted, 12)
    if forged_by is not None:  # a maintainer key is not a root key
        raw = (trusted.site / "root" / f"{first}.root.json").read_bytes()
        key = trusted.keys.alice
        trusted.write_site(
            f"root/{first}.root.json.{key.key_id}.minisig",
            sign_bytes(key, raw, trusted_comment="forged").encode(),
        )
    before = trusted.snapshot()
    trusted.sim.fetched.clear()
    with pytest.raises((ThresholdNotMetError, UnauthorizedSignerError)) as refused:
        trusted.open()
    # Said to whoever installs: not the owners' "collect signatures" advice alone.
    assert "do not use this registry or mirror" in (refused.value.fix or "")
    fetched_roots = sorted(p for p in trusted.sim.fetched if p.endswith(".root.json"))
    assert fetched_roots == [f"root/{first}.root.json"], "roots after an unauthenticated one were fetched"
    trusted.assert_failed_closed(before)


def test_chain_still_walks_when_signed(trusted: World) -> None:
    """The incremental walk accepts what the rules accept: two renewed versions, signed by the root key."""
    start = trusted.open().root.version
    trusted.edit_root(renew())
    trusted.edit_root(renew())
    trusted.publish_root()
    assert trusted.open().root.version == start + 2


def test_fingerprint_is_checked_before_the_served_root_is_parsed(world: World) -> None:
    """First use with a fingerprint: the root the server sends is unauthenticated until its sha256
    matches, so a forged (here: unparseable) root is reported as a fingerprint mismatch, unparsed,
    and nothing is pinned."""
    from registry_tool.client import trust
    from registry_tool.client.errors import RootFingerprintMismatchError
    from registry_tool.client.trust_state import fingerprint

    real = fingerprint((world.site / "root" / "1.root.json").read_bytes())
    world.sim.replace("root/1.root.json", b"[" * 100_000)
    with pytest.raises(RootFingerprintMismatchError, match="not the fingerprint"):
        trust(world.url, fingerprint=real, state_dir=world.state_dir, fetcher=world.sim)
    assert world.state() is None
