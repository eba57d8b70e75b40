"""Root metadata is parsed strictly: JSON, schema, then semantic rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from registry_tool.signing import SecretKey
from registry_tool.trust import Root, RootFormatError
from registry_tool.trust.editing import dump_root


def _doc(root_v1: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(root_v1)
    return doc


def test_valid_root_parses(root_v1: bytes) -> None:
    root = Root.parse(root_v1)
    assert root.version == 1 and root.registry == "test-registry"
    assert root.roles["root"].threshold == 2 and len(root.roles["root"].keys) == 3


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = doc
        for p in parents:
            target = target[p]
        target[last] = value

    return edit


def _first_keyid(doc: dict[str, Any]) -> str:
    return str(doc["roles"]["root"]["keyids"][0])


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "wrong _type": _set("_type", "tuf-root"),
    "future spec_version": _set("spec_version", 2),
    "version zero": _set("version", 0),
    "version as string": _set("version", "1"),
    "expires without Z": _set("expires", "2026-12-21T12:00:00+00:00"),
    "expires impossible date": _set("expires", "2026-13-40T12:00:00Z"),
    "unknown top-level field": _set("extra", 1),
    "missing revoked": lambda d: d.pop("revoked"),
    "threshold zero": _set("roles.root.threshold", 0),
    "threshold above keys": _set("roles.root.threshold", 4),
    "unknown role": _set("roles.targets", {"keyids": ["AAAAAAAAAAAAAAAA"], "threshold": 1}),
    "unknown keyid in role": _set("roles.index.keyids", ["0123456789ABCDEF"]),
    "lower-case keyid": lambda d: d["roles"]["index"].update(
        keyids=[d["roles"]["index"]["keyids"][0].lower()]
    ),
    "duplicate keyid in role": lambda d: d["roles"]["root"]["keyids"].append(d["roles"]["root"]["keyids"][0]),
    "key id does not match public key": lambda d: d["keys"].update(
        {"0123456789ABCDEF": d["keys"][_first_keyid(d)]}
    ),
    "public key not base64 key": lambda d: d["keys"][_first_keyid(d)].update(public_key="RWQ" + "*" * 53),
    "index key also root key": lambda d: d["roles"]["index"]["keyids"].append(_first_keyid(d)),
    "maintainer bad pattern": _set(
        "maintainers", {"a": {"keyids": ["AAAAAAAAAAAAAAAA"], "plugins": ["a*b"]}}
    ),
    "maintainer without plugins": lambda d: d["maintainers"].update(
        {"a": {"keyids": [_first_keyid(d)], "plugins": []}}
    ),
    "plugin threshold unreachable": _set("plugin_thresholds", {"validate_email": 1}),
    "revoked key still listed": lambda d: d["revoked"].append(
        {
            "keyid": _first_keyid(d),
            "public_key": d["keys"][_first_keyid(d)]["public_key"],
            "revoked_in_version": 1,
            "revoked_at": "2026-11-01T00:00:00Z",
            "keep_prior_releases": False,
            "plugins": [],
        }
    ),
}


@pytest.mark.parametrize("case", list(MUTATIONS))
def test_invalid_root_rejected(root_v1: bytes, case: str) -> None:
    doc = _doc(root_v1)
    MUTATIONS[case](doc)
    with pytest.raises(RootFormatError):
        Root.parse(dump_root(doc))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1, "a": 2}',
        b"\xef\xbb\xbf{}",
        b'{"x": NaN}',
        b"\xff\xfe{}",
        b"[1, 2",
        b"",
    ],
    ids=["duplicate key", "bom", "nan", "not utf-8", "truncated", "empty"],
)
def test_invalid_json_rejected(raw: bytes) -> None:
    with pytest.raises(RootFormatError, match="not valid root JSON"):
        Root.parse(raw)


def test_duplicate_key_anywhere_rejected(root_v1: bytes) -> None:
    """Parser differentials: a duplicated member inside a nested object is rejected too."""
    text = root_v1.decode().replace('"threshold": 2', '"threshold": 2, "threshold": 1', 1)
    with pytest.raises(RootFormatError, match=r"duplicate (key|member name)"):
        Root.parse(text.encode())


def test_oversize_root_rejected() -> None:
    with pytest.raises(RootFormatError, match="larger"):
        Root.parse(b" " * (1024 * 1024 + 1))


def test_error_names_the_field(root_v1: bytes) -> None:
    doc = _doc(root_v1)
    doc["roles"]["root"]["threshold"] = 0
    with pytest.raises(RootFormatError) as info:
        Root.parse(dump_root(doc), where="root/1.root.json")
    assert info.value.where is not None and info.value.where.field == "roles.root.threshold"
    assert "root/1.root.json" in str(info.value)


def test_aliased_key_does_not_make_threshold_reachable(root_v1: bytes, k: dict[str, SecretKey]) -> None:
    """One public key under two ids counts once, so a 2-of-2 over the same key is rejected."""
    doc = _doc(root_v1)
    alias = SecretKey.from_seed(k["ix"].seed, b"\x99" * 8)
    doc["keys"][alias.key_id] = {"public_key": alias.public_key.to_base64()}
    doc["roles"]["index"] = {"keyids": [k["ix"].key_id, alias.key_id], "threshold": 2}
    with pytest.raises(RootFormatError, match="distinct"):
        Root.parse(dump_root(doc))


def test_formatting_does_not_matter(root_v1: bytes) -> None:
    compact = json.dumps(json.loads(root_v1), separators=(",", ":")).encode()
    assert Root.parse(compact).data == Root.parse(root_v1).data


def test_schema_is_valid_draft_2020_12() -> None:
    import jsonschema

    from registry_tool.trust.root import root_schema

    jsonschema.Draft202012Validator.check_schema(root_schema())


def test_schema_and_vectors_agree() -> None:
    """Every root in the test vectors validates against the published schema on its own."""
    from pathlib import Path

    import jsonschema

    from registry_tool.trust.root import root_schema

    vectors = Path(__file__).resolve().parent / "vectors" / "root"
    roots = sorted(vectors.glob("*.root.json"))
    assert len(roots) == 3
    for path in roots:
        jsonschema.validate(json.loads(path.read_bytes()), root_schema(), cls=jsonschema.Draft202012Validator)
