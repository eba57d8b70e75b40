"""Names and numbers in root metadata are exactly what the specification's patterns say.

JSON Schema's ``pattern`` is a regex *search*, and in Python's ``re`` ``$`` also matches before a
final newline, so ``^[a-z][a-z0-9_-]{1,63}$`` accepts ``"hello\\n"``; and JSON Schema's
``integer`` accepts ``2.0``.  A Go or Rust verifier following docs/trust.md would reject these,
so accepting them would be a verdict that differs between implementations.  A plugin name with a
newline would also be covered by a prefix delegation while displaying like another plugin.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from registry_tool.signing import SecretKey, sign_bytes
from registry_tool.trust import Root, RootFormatError, verify_release_signatures
from registry_tool.trust.editing import dump_root
from registry_tool.trust.root import InvalidPluginNameError

Edit = Callable[[dict[str, Any]], None]


def _maint(doc: dict[str, Any], patterns: list[str]) -> None:
    doc["maintainers"] = {"alice": {"keyids": [doc["roles"]["root"]["keyids"][0]], "plugins": patterns}}


CASES: dict[str, Edit] = {
    "pattern with trailing newline": lambda d: _maint(d, ["hello\n"]),
    "prefix pattern with trailing newline": lambda d: _maint(d, ["hello-*\n"]),
    "registry name with trailing newline": lambda d: d.update(registry="test-registry\n"),
    "maintainer id with trailing newline": lambda d: (
        _maint(d, ["hello"]),
        d["maintainers"].update({"bob\n": d["maintainers"].pop("alice")}),
    ),
    "plugin threshold name with trailing newline": lambda d: (
        _maint(d, ["*"]),
        d.update(plugin_thresholds={"hello\n": 1}),
    ),
    "float version": lambda d: d.update(version=1.0),
    "float threshold": lambda d: d["roles"]["root"].update(threshold=2.0),
    "float plugin threshold": lambda d: (_maint(d, ["*"]), d.update(plugin_thresholds={"hello": 1.0})),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_not_quite_matching_root_is_rejected(root_v1: bytes, case: str) -> None:
    doc = json.loads(root_v1)
    CASES[case](doc)
    with pytest.raises(RootFormatError):
        Root.parse(dump_root(doc))


def test_revoked_entry_pattern_is_strict(root_v1: bytes, k: dict[str, SecretKey]) -> None:
    doc = json.loads(root_v1)
    key = k["x"].public_key
    doc["revoked"] = [
        {
            "keyid": key.key_id,
            "public_key": key.to_base64(),
            "revoked_in_version": 1,
            "revoked_at": "2026-01-01T00:00:00Z",
            "keep_prior_releases": True,
            "plugins": ["hello\n"],
        }
    ]
    with pytest.raises(RootFormatError):
        Root.parse(dump_root(doc))


@pytest.mark.parametrize("name", ["json-x\n", "json-\u0445", "json-x\x00", "JSON-X"])
def test_prefix_delegation_covers_only_valid_names(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime, name: str
) -> None:
    """alice holds ``json-*``; a release named ``json-x\\n`` (or with a Cyrillic letter, a NUL,
    upper case) is no plugin name at all, so her signature counts for nothing."""
    manifest = f'[plugin]\nname = {json.dumps(name)}\nversion = "1.0.0"\n'.encode()
    sig = sign_bytes(k["m1"], manifest, trusted_comment="t")
    with pytest.raises(InvalidPluginNameError):
        verify_release_signatures(root_with_maintainers, name, manifest, [sig], now)


def test_valid_name_under_prefix_still_counts(
    root_with_maintainers: Root, k: dict[str, SecretKey], now: datetime
) -> None:
    manifest = b'[plugin]\nname = "json-x"\nversion = "1.0.0"\n'
    sig = sign_bytes(k["m1"], manifest, trusted_comment="t")
    assert verify_release_signatures(root_with_maintainers, "json-x", manifest, [sig], now) == {
        k["m1"].key_id
    }
