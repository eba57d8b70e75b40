"""Fixtures for the registry build tests: a small signed index (the builders are in tests.world).

Everything is generated with the project's own signing/trust API (the same calls a
registry owner makes), so a build here exercises the real verification path.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.world import FIXED_NOW, IndexTree, Keys, add_module, registry_toml
from tests.world import manifest_text as world_manifest

NOW = FIXED_NOW
LATER = NOW + timedelta(hours=1)

REGISTRY_TOML = registry_toml(
    "test-plugins",
    description="Registry used by the build tests",
    base_url="http://127.0.0.1:8765/",
    abis=("core", "wasi-command", "extism", "proxy-wasm", "component"),
    extra="\n[ci]\nregression_threshold = 0.25\n",
)


def add_wasm(variant: int = 0) -> bytes:
    """A tiny core module; ``variant`` changes its bytes (and nothing else that matters)."""
    return add_module(variant)


def manifest_text(name: str, version: str, description: str = "adds two numbers") -> str:
    """The build tests' manifest: host >=0.2.0, <0.4.0, fuel 1_000_000."""
    return world_manifest(name, version, description=description, limits={"fuel": 1_000_000})


class Index(IndexTree):
    """The registry tests' index: ``add_release`` writes the standard ``add`` module."""

    def add_release(  # type: ignore[override]
        self,
        name: str,
        version: str,
        *,
        signer: object = None,
        variant: int = 0,
        description: str = "adds two numbers",
    ) -> Path:
        """Release ``name`` ``version`` signed by its maintainer (or ``signer``)."""
        return super().add_release(
            name,
            version,
            manifest=manifest_text(name, version, description),
            module=add_wasm(variant),
            signer=signer,  # type: ignore[arg-type]
        )


@pytest.fixture(scope="session")
def keys(world_keys: Keys) -> Keys:
    """The session's key set."""
    return world_keys


def make_index(path: Path, keys: Keys) -> Index:
    """An index at ``path``: registry.toml and root v1 -> v3 (alice: alpha*, bob: beta)."""
    tree = IndexTree.create(
        path, keys, registry="test-plugins", toml=REGISTRY_TOML, timestamp=int(NOW.timestamp())
    )
    return Index(tree.path, keys, NOW, tree.timestamp)


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Index:
    index = make_index(tmp_path_factory.mktemp("template") / "index", keys)
    index.add_release("alpha", "1.0.0")
    index.add_release("alpha", "1.1.0", variant=1)
    index.add_release("alpha-tools", "0.1.0", variant=2)
    index.add_release("beta", "2.0.0", variant=3)
    return index


@pytest.fixture
def index(tmp_path: Path, _template: Index) -> Index:
    """A fresh copy of a small signed index: alpha 1.0.0/1.1.0, alpha-tools 0.1.0, beta 2.0.0."""
    copy = _template.copy_to(tmp_path / "index")
    return Index(copy.path, copy.keys, copy.now, copy.timestamp, copy.releases)
