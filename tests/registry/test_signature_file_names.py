"""A keyed signature file must hold a signature by the key its name gives.

Verifiers fetch ``F.minisig`` and ``F.<KEYID>.minisig`` for the key ids that signed F
(``format.rules.signature_names``).  A signature filed under another key's id is never found: the
build and ci check counted it, and then no client could verify the release or walk the root
chain.  The build and ci check refuse such a file; a keyed file under its own signer's id passes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from registry_tool.errors import CheckFailed
from registry_tool.registry.build import BuildOptions, BuildRefusedError, build_site
from registry_tool.signing import Signature

from .test_refusals import NOW

Index = Any
WRONG = "0000000000000000"


def _build(index: Index, out: Path) -> None:
    opts = BuildOptions(
        index=index.path, out=out, keys=[index.keys.index], now=NOW, verify_now=NOW, smoke=False
    )
    build_site(opts)


def _rules(index: Index, out: Path) -> list[tuple[str, str]]:
    with pytest.raises(CheckFailed) as err:
        _build(index, out)
    if isinstance(err.value, BuildRefusedError):
        return [(f.rule, f.message) for _, f in err.value.report.findings()]
    return [(err.value.code, err.value.what)]


def _signer(path: Path) -> str:
    return Signature.parse(path.read_text()).key_id


@pytest.mark.parametrize("signed", ["plugin.toml", "root"])
def test_a_signature_under_another_keys_id_is_refused(index: Index, tmp_path: Path, signed: str) -> None:
    if signed == "root":
        folder, name = index.path / "root", "1.root.json"
    else:
        folder, name = index.release_dir("alpha", "1.1.0"), "plugin.toml"
    plain = next(folder.glob(f"{name}*.minisig"))  # the root's come keyed
    signer = _signer(plain)
    os.rename(plain, folder / f"{name}.{WRONG}.minisig")
    rules = _rules(index, tmp_path / "site")
    assert any(rule == "signature-name" and signer in text and WRONG in text for rule, text in rules), rules


def test_a_signature_under_its_own_keys_id_builds(index: Index, tmp_path: Path) -> None:
    folder = index.release_dir("alpha", "1.1.0")
    plain = folder / "plugin.toml.minisig"
    os.rename(plain, folder / f"plugin.toml.{_signer(plain)}.minisig")
    _build(index, tmp_path / "site")
