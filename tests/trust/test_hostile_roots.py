"""Unauthenticated root candidates: nothing but the detached signatures is looked at first.

Root N+1 comes from an untrusted server.  Its signatures are detached, so the client can (and
must, as TUF does) check the threshold of root N's keys over the raw bytes before parsing the
candidate: parsing is schema validation plus delegation checks that grow with
maintainers x plugin_thresholds, which a server holding no key could otherwise make cost minutes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from registry_tool.signing import SecretKey
from registry_tool.trust import Root, ThresholdNotMetError, UnauthorizedSignerError, verify_root_chain
from registry_tool.trust import root as root_module
from registry_tool.trust.editing import derive, dump_root, renew

from .conftest import Signer


class _Parsed(AssertionError):
    pass


def _hostile(prev: bytes, maintainers: int, plugins: int) -> bytes:
    """A version N+1 whose delegation checks cost maintainers x plugins steps."""
    doc: dict[str, Any] = json.loads(derive(Root.parse(prev), renew()))
    key_id = doc["roles"]["root"]["keyids"][0]
    doc["maintainers"] = {f"m{i}": {"keyids": [key_id], "plugins": ["*"]} for i in range(maintainers)}
    doc["plugin_thresholds"] = {f"p{i}": 1 for i in range(plugins)}
    return dump_root(doc)


@pytest.fixture
def forbid_parse(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    def arm() -> None:
        def refuse(*args: object, **kwargs: object) -> object:
            raise _Parsed("an unauthenticated root candidate was parsed")

        monkeypatch.setattr(root_module, "_build", refuse)
        monkeypatch.setattr(root_module, "_schema_check", refuse)

    return arm


@pytest.mark.parametrize("signers", [(), ("x",), ("r4", "r5")])
def test_candidate_without_old_threshold_is_never_parsed(
    root_v1: bytes,
    k: dict[str, SecretKey],
    sign: Signer,
    now: datetime,
    forbid_parse: Callable[[], None],
    signers: tuple[str, ...],
) -> None:
    """Unsigned, signed by an outsider, or only by keys the candidate itself would list: no key of
    the trusted root signed it, so it is refused on the signatures alone.  (A candidate signed by
    at least one trusted root key is parsed, so the full check can say precisely what is wrong.)"""
    trusted = Root.parse(root_v1)
    hostile = _hostile(root_v1, 300, 300)
    sigs = sign(hostile, [k[s] for s in signers])
    forbid_parse()
    with pytest.raises((ThresholdNotMetError, UnauthorizedSignerError)):
        root_module.verify_root_step(trusted, hostile, sigs)


def test_garbage_candidate_is_a_signature_failure(root_v1: bytes, now: datetime) -> None:
    """Not even JSON: what the server failed to do is sign it, and that is what is reported."""
    with pytest.raises((ThresholdNotMetError, UnauthorizedSignerError)):
        verify_root_chain(root_v1, [(b"\x00" * (1 << 20), [])], now)


def test_old_threshold_then_parse_then_full_check(
    root_v1: bytes, k: dict[str, SecretKey], sign: Signer, now: datetime
) -> None:
    """Signed by root N's threshold: parsed and checked as before (the order does not relax a rule)."""
    v2 = derive(Root.parse(root_v1), renew())
    assert verify_root_chain(root_v1, [(v2, sign(v2, [k["r1"], k["r2"]]))], now).version == 2


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"a":' * 100_000, b"[" * 100_000 + b"]" * 100_000])
def test_deeply_nested_json_is_a_root_format_error(raw: bytes) -> None:
    """json.loads raises RecursionError (not ValueError) on deep nesting; a verifier must still
    answer with its named error, never crash with an unexpected exception."""
    with pytest.raises(root_module.RootFormatError, match="not valid root JSON"):
        Root.parse(raw)


@pytest.mark.parametrize("depth", [100, 300, 5_000])
def test_deeply_nested_values_inside_a_root_are_a_root_format_error(root_v1: bytes, depth: int) -> None:
    """JSON that loads but nests deeply where the schema compares values (uniqueItems recurses into
    nested arrays in jsonschema): a named refusal, never a RecursionError.  A CI check parses an
    unsigned pull-request root to report on it, so this costs an attacker nothing."""
    doc = json.loads(root_v1)
    nested = "[" * depth + "]" * depth
    raw = json.dumps(doc).encode()
    revoked = (
        '[{"keyid":"1CE9246EAF60D9A9","public_key":"x","revoked_in_version":1,"revoked_at":"x",'
        f'"keep_prior_releases":true,"plugins":[{nested},{nested}]}}]'
    )
    raw = raw.replace(b'"revoked": []', b'"revoked": ' + revoked.encode())
    assert revoked.encode() in raw
    with pytest.raises(root_module.RootFormatError, match=r"levels deep|not valid root JSON|does not match"):
        Root.parse(raw)
