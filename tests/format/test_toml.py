"""The verifiers' TOML parser reads signed files exactly as the build's tomllib does (TOML 1.0)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from registry_tool.format import toml

REPO = Path(__file__).resolve().parents[2]

# TOML 1.1 additions: a parser accepting them would verify manifests the build refuses.
TOML_1_1_ONLY = [
    "a = {b = 1,\n c = 2}",
    'a = "\\e"',
    'a = "\\x41"',
    "a = 1979-05-27T07:32Z",
    "a = {b = 1,}",
]


@pytest.mark.parametrize("doc", TOML_1_1_ONLY)
def test_toml_1_1_syntax_is_refused_like_tomllib(doc: str) -> None:
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads(doc)
    with pytest.raises(toml.TOMLDecodeError):
        toml.loads(doc)


def test_every_sample_manifest_parses_identically() -> None:
    files = sorted((REPO / "index").rglob("*.toml"))
    assert len(files) >= 6
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert toml.loads(text) == tomllib.loads(text), f


@pytest.mark.parametrize("opener", ["[", "{a="])
def test_deep_nesting_is_a_recursion_error_not_a_crash(opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    with pytest.raises(RecursionError):
        toml.loads("a=" + opener * 100_000 + closer * 100_000)
