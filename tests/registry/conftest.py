"""Fixtures for the registry build tests: keys, a signed root, an index of signed releases.

Everything is generated with the project's own signing/trust API (the same calls a
registry owner makes), so a build here exercises the real verification path.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import wasmtime

from registry_tool.signing import SecretKey, sign_release, sign_yank
from registry_tool.trust.editing import (
    add_maintainer,
    edit_root_dir,
    init_root_dir,
    new_root,
    revoke,
    sign_root_dir,
)

sys.path.insert(0, str(Path(__file__).parent))  # site_check.py

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)

REGISTRY_TOML = """\
[registry]
name = "test-plugins"
description = "Registry used by the build tests"
base_url = "http://127.0.0.1:8765/"

[host]
name = "ferrite"
versions = ">=0.2.0, <1.0.0"

[abis]
allowed = ["core", "wasi-command", "extism", "proxy-wasm", "component"]

[permissions.keys]
description = "Read and write the host's key-value store"
imports = [{ module = "ferrite:keys", name = "*" }]

[limits.default]
fuel = 50_000_000
memory = "16MiB"
wall_time = "2s"

[limits.max]
fuel = 1_000_000_000
memory = "256MiB"
wall_time = "10s"
module_size = "32MiB"
table_elements = 100_000
instances = 10
stack = "1MiB"

[features]
simd = true
bulk_memory = true
reference_types = true
multi_value = true
threads = false
multi_memory = false
memory64 = false
tail_call = false
exceptions = false

[index]
validity = "7d"
allow_backports = false

[ci]
regression_threshold = 0.25
"""

ADD_WAT = """
(module
  (memory (export "memory") 1)
  (func (export "add") (param i32 i32) (result i32)
    local.get 0 local.get 1 i32.add {extra}))
"""


def add_wasm(variant: int = 0) -> bytes:
    """A tiny core module; ``variant`` changes its bytes (and nothing else that matters)."""
    extra = " i32.const 0 i32.add" * variant
    return bytes(wasmtime.wat2wasm(ADD_WAT.format(extra=extra)))


def manifest_text(name: str, version: str, description: str = "adds two numbers") -> str:
    return textwrap.dedent(
        f"""\
        [plugin]
        name = "{name}"
        version = "{version}"
        description = "{description}"
        authors = ["tests"]
        license = "Apache-2.0"
        abi = "core"
        keywords = ["math"]

        [compatibility]
        host = ">=0.2.0, <0.4.0"

        [artifact]
        file = "{name}.wasm"

        [exports]
        functions = ["add"]

        [limits]
        fuel = 1_000_000

        [[tests]]
        name = "one plus two"
        call = "add"
        args = [1, 2]
        expect = [3]
        """
    )


@dataclass
class Keys:
    root: SecretKey
    index: SecretKey
    alice: SecretKey  # maintainer of "alpha*"
    bob: SecretKey  # maintainer of "beta"
    index2: SecretKey  # not in any role


@dataclass
class Index:
    path: Path
    keys: Keys
    releases: list[tuple[str, str]] = field(default_factory=list)

    def release_dir(self, name: str, version: str) -> Path:
        return self.path / "plugins" / name / version

    def add_release(
        self,
        name: str,
        version: str,
        *,
        signer: SecretKey | None = None,
        variant: int = 0,
        description: str = "adds two numbers",
    ) -> Path:
        folder = self.release_dir(name, version)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "plugin.toml").write_text(manifest_text(name, version, description), encoding="utf-8")
        (folder / f"{name}.wasm").write_bytes(add_wasm(variant))
        key = signer or (self.keys.bob if name == "beta" else self.keys.alice)
        sign_release(folder, key, timestamp=int(NOW.timestamp()))
        self.releases.append((name, version))
        return folder

    def yank(self, name: str, version: str, reason: str, signer: SecretKey | None = None) -> None:
        folder = self.release_dir(name, version)
        (folder / "yank.toml").write_text(
            f'[yank]\nname = "{name}"\nversion = "{version}"\nreason = "{reason}"\n', encoding="utf-8"
        )
        sign_yank(folder, signer or self.keys.alice, timestamp=int(NOW.timestamp()))

    def revoke(self, key: SecretKey, *, keep_prior_releases: bool, at: datetime) -> None:
        root_dir = self.path / "root"
        edit_root_dir(root_dir, revoke(key.key_id, now=at, keep_prior_releases=keep_prior_releases), now=NOW)
        sign_root_dir(root_dir, self.keys.root)


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(*(SecretKey.generate() for _ in range(5)))


def make_index(path: Path, keys: Keys) -> Index:
    path.mkdir(parents=True)
    (path / "registry.toml").write_text(REGISTRY_TOML, encoding="utf-8")
    root_dir = path / "root"
    data = new_root(
        "test-plugins", [keys.root.public_key], [keys.index.public_key], expires=NOW + timedelta(days=365)
    )
    init_root_dir(root_dir, data)
    sign_root_dir(root_dir, keys.root)
    edit_root_dir(root_dir, add_maintainer("alice", [keys.alice.public_key], ["alpha*"]), now=NOW)
    sign_root_dir(root_dir, keys.root)
    edit_root_dir(root_dir, add_maintainer("bob", [keys.bob.public_key], ["beta"]), now=NOW)
    sign_root_dir(root_dir, keys.root)
    return Index(path, keys)


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
    target = tmp_path / "index"
    shutil.copytree(_template.path, target)
    return Index(target, _template.keys, list(_template.releases))
