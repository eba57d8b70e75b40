"""Weak Ed25519 public keys: small-order points and non-canonical encodings.

OpenSSL (under ``cryptography``) verifies Ed25519 without rejecting small-order public keys, so for
the identity point the "signature" R = identity, S = 0 verifies for *every* message: anyone can
sign as that key.  libsodium, and therefore ``minisign -V``, refuses such keys, so accepting them
would also make registry-tool and minisign disagree.  A key that is non-canonically encoded is
the same point under different bytes, so it would also dodge "thresholds count distinct raw keys".
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from registry_tool.signing import MalformedKeyError, PublicKey, verify_bytes
from registry_tool.trust import Root, RootFormatError
from registry_tool.trust.editing import dump_root, new_root

from .conftest import key

P = 2**255 - 19
IDENTITY = (1).to_bytes(32, "little")
WEAK = {
    "identity": IDENTITY,
    "identity, sign bit set": (1 | 1 << 255).to_bytes(32, "little"),
    "identity, y = p + 1": (P + 1).to_bytes(32, "little"),
    "order 2 (y = p - 1)": (P - 1).to_bytes(32, "little"),
    "order 4 (y = 0)": bytes(32),
    "order 4, y = p": P.to_bytes(32, "little"),
    "order 8": bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    "order 8 (negated y)": (
        P
        - int.from_bytes(
            bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"), "little"
        )
    ).to_bytes(32, "little"),
    "non-canonical y = p + 3": (P + 3).to_bytes(32, "little"),
}
KEYNUM = bytes(range(8))


def _pub_line(raw: bytes) -> str:
    return base64.b64encode(b"Ed" + KEYNUM + raw).decode()


def _forged_signature() -> str:
    """R = identity, S = 0: valid for any message under the identity key (cofactorless check)."""
    sig = base64.b64encode(b"ED" + KEYNUM + IDENTITY + bytes(32)).decode()
    glob = base64.b64encode(IDENTITY + bytes(32)).decode()
    return f"untrusted comment: forged\n{sig}\ntrusted comment: anything\n{glob}\n"


@pytest.mark.parametrize("label", sorted(WEAK))
def test_weak_public_key_is_refused(label: str) -> None:
    with pytest.raises(MalformedKeyError, match=r"small order|not canonically"):
        PublicKey.parse(_pub_line(WEAK[label]))
    with pytest.raises(MalformedKeyError):
        PublicKey.parse(f"untrusted comment: weak\n{_pub_line(WEAK[label])}\n")


def test_forged_signature_under_identity_key_is_not_accepted() -> None:
    """The end-to-end attack: a signature made without any secret key, for data of our choosing."""
    with pytest.raises(MalformedKeyError):
        verify_bytes(PublicKey.parse(_pub_line(IDENTITY)), b"malware.wasm bytes", _forged_signature())


def test_root_listing_a_weak_key_is_rejected() -> None:
    root_key, index_key = key("root").public_key, key("index").public_key
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    doc = json.loads(new_root("weak-registry", [root_key], [index_key], expires=expires))
    weak_id = "0706050403020100"  # KEYNUM read as a little-endian u64
    doc["keys"][weak_id] = {"public_key": _pub_line(IDENTITY)}
    doc["maintainers"] = {"mallory": {"keyids": [weak_id], "plugins": ["*"]}}
    with pytest.raises(RootFormatError, match="small order"):
        Root.parse(dump_root(doc))


def test_real_keys_still_parse() -> None:
    for label in ("a", "b", "c", "d"):
        pub = key(label).public_key
        assert PublicKey.parse(pub.to_text()).raw == pub.raw
