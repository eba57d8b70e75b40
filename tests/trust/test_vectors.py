"""The fixed test vectors of docs/trust.md: files are reproducible and every case gets its verdict."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from registry_tool.errors import CheckFailed
from registry_tool.signing import PublicKey, SecretKey, verify_bytes
from registry_tool.trust import verify_release_signatures, verify_root_chain, verify_root_self
from registry_tool.trust.root import parse_time

VECTORS = Path(__file__).resolve().parent / "vectors"
CASES: list[dict[str, Any]] = json.loads((VECTORS / "cases.json").read_text())["cases"]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vector_generator", VECTORS / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vector_files_are_reproducible() -> None:
    built: dict[str, bytes] = _generator().build()
    on_disk = {
        str(p.relative_to(VECTORS)): p.read_bytes()
        for p in VECTORS.rglob("*")
        if p.is_file() and p.name != "generate.py" and "__pycache__" not in p.parts
    }
    assert built == on_disk


def _read(rel: str) -> bytes:
    return (VECTORS / rel).read_bytes()


def _chain(case: dict[str, Any]) -> list[tuple[bytes, list[str]]]:
    return [(_read(step["root"]), [_read(s).decode() for s in step["signatures"]]) for step in case["chain"]]


def run_case(case: dict[str, Any]) -> tuple[str, Any]:
    """Run one case through the public API; returns ("ok", detail) or (error code, message)."""
    try:
        if case["kind"] == "signature":
            key = PublicKey.parse(_read(case["public_key"]))
            return "ok", verify_bytes(key, _read(case["data"]), _read(case["signature"]))
        now = parse_time(case["now"])
        if case["kind"] == "root-self":
            sigs = [_read(s).decode() for s in case["signatures"]]
            return "ok", verify_root_self(_read(case["root"]), sigs, now)
        root = verify_root_chain(_read(case["trusted"]), _chain(case), now)
        if case["kind"] == "root-chain":
            return "ok", root
        published = parse_time(case["published_at"]) if case["published_at"] else None
        sigs = [_read(s).decode() for s in case["signatures"]]
        return "ok", verify_release_signatures(
            root, case["plugin"], _read(case["manifest"]), sigs, now, published_at=published
        )
    except CheckFailed as err:
        return err.code, err.what


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector_case(case: dict[str, Any]) -> None:
    verdict, detail = run_case(case)
    assert verdict == case["expect"], detail
    if "final_version" in case:
        assert detail.version == case["final_version"]


def test_encrypted_vector_key() -> None:
    key = SecretKey.load(_read("keys/alice.encrypted.key"), b"vector")
    assert key.public_key.raw == PublicKey.parse(_read("keys/alice.pub")).raw


def test_minisign_verifies_vector_signatures(minisign: str) -> None:
    for data, sig, pub in [
        ("sig/message.txt", "sig/message.txt.minisig", "keys/alice.pub"),
        ("release/plugin.toml", "release/plugin.toml.minisig", "keys/alice.pub"),
        ("root/1.root.json", "root/1.root.json.70DA5251843D707A.minisig", "keys/root-a.pub"),
    ]:
        out = subprocess.run(
            [minisign, "-V", "-p", str(VECTORS / pub), "-m", str(VECTORS / data), "-x", str(VECTORS / sig)],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, (data, out.stderr)
