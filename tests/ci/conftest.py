"""Temporary index git repositories: a signed base on `main`, pull requests on a branch.

Keys, roots and releases are made with the real signing and trust APIs; modules are tiny WAT
programs compiled with wasmtime.wat2wasm.  The base repository is built once per session and
cloned per test (a local clone takes milliseconds).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from registry_tool.ci.check import CheckOptions, check_pull_request
from registry_tool.ci.scaffold import render_template
from registry_tool.report import Report
from registry_tool.signing import SecretKey, sign_release, sign_yank
from registry_tool.trust.editing import add_maintainer, edit_root_dir, init_root_dir, new_root, sign_root_dir

HOST = "ferrite"

ADD = """(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"""

# The same function, slower: a loop of `n` iterations first (fuel regressions).
SLOW_ADD = """(module (func (export "add") (param i32 i32) (result i32) (local $i i32)
  (local.set $i (i32.const {n}))
  (block $done (loop $again
    (br_if $done (i32.eqz (local.get $i)))
    (local.set $i (i32.sub (local.get $i) (i32.const 1)))
    (br $again)))
  local.get 0 local.get 1 i32.add))"""

# Imports the host's key-value store: needs permissions.keys.
KEYS_ADD = """(module (import "ferrite:keys" "get" (func $get (param i32) (result i32)))
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"""

# Hostile: never returns.
SPIN = """(module (func (export "add") (param i32 i32) (result i32) (loop $l (br $l)) i32.const 0))"""


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return proc.stdout


def manifest_text(
    name: str,
    version: str,
    *,
    permissions: dict[str, bool] | None = None,
    dependencies: dict[str, str] | None = None,
) -> str:
    perms = "".join(f"{k} = {str(v).lower()}\n" for k, v in (permissions or {}).items())
    deps = "".join(f'{k} = "{v}"\n' for k, v in (dependencies or {}).items())
    if deps:
        perms += f"\n[dependencies]\n{deps}"
    return f"""[plugin]
name = "{name}"
version = "{version}"
description = "adds two numbers"
authors = ["tests"]
license = "MIT"
abi = "core"

[compatibility]
host = ">=0.1.0, <1.0.0"

[artifact]
file = "{name}.wasm"

[exports]
functions = ["add"]

[permissions]
{perms}
[limits]
fuel = 2_000_000
memory = "1MiB"
wall_time = "10s"  # generous: the suite shares 2 cores; fuel bounds the work

[[tests]]
name = "adds"
call = "add"
args = [2, 3]
expect = [5]
"""


@dataclass
class Keys:
    root: SecretKey
    index: SecretKey
    alice: SecretKey  # maintainer of alpha*
    bob: SecretKey  # maintainer of beta
    mallory: SecretKey  # nobody


@dataclass
class IndexRepo:
    """A clone of the base repository, on branch `pr`."""

    path: Path
    keys: Keys
    smoked: list[str] = field(default_factory=list)

    @property
    def index(self) -> Path:
        return self.path / "index"

    def release(
        self,
        name: str,
        version: str,
        wat: str = ADD,
        *,
        signer: SecretKey | None = None,
        permissions: dict[str, bool] | None = None,
        dependencies: dict[str, str] | None = None,
    ) -> Path:
        directory = self.index / "plugins" / name / version
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{name}.wasm").write_bytes(wasmtime.wat2wasm(wat))
        text = manifest_text(name, version, permissions=permissions, dependencies=dependencies)
        (directory / "plugin.toml").write_text(text)
        sign_release(directory, signer or self.keys.alice)
        return directory

    def yank(self, name: str, version: str, signer: SecretKey, reason: str = "broken") -> Path:
        directory = self.index / "plugins" / name / version
        (directory / "yank.toml").write_text(
            f'[yank]\nname = "{name}"\nversion = "{version}"\nreason = "{reason}"\n'
        )
        return sign_yank(directory, signer)

    def commit(self, message: str = "pr") -> None:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)

    def check(self, base: str = "origin/main", **options: Any) -> Report:
        """Run the check as the PR workflow does (base = origin/main), recording smoke runs."""
        from registry_tool.sandbox.harness import smoke_release

        def smoke(manifest: Any, config: Any) -> list[Any]:
            self.smoked.append(f"{manifest.name}/{manifest.version}")
            return list(smoke_release(manifest, config))

        opts = CheckOptions(base=base, smoke=smoke, **options)
        return check_pull_request(self.path, [self.index], opts)


def _init_git(path: Path) -> None:
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "ci@example.invalid")
    git(path, "config", "user.name", "ci tests")
    git(path, "config", "commit.gpgsign", "false")


def make_base_repo(path: Path) -> tuple[Path, Keys]:
    """main: registry.toml, root v1 -> v2 (alice: alpha*, bob: beta), alpha 1.0.0 and beta 1.0.0."""
    keys = Keys(*(SecretKey.generate() for _ in range(5)))
    index = path / "index"
    index.mkdir(parents=True)
    values = {"NAME": "test-registry", "HOST": HOST, "BASE_URL": "https://example.invalid/reg/"}
    (index / "registry.toml").write_text(render_template("registry.toml", values))
    now = datetime.now(UTC)
    root_dir = index / "root"
    v1 = new_root(
        "test-registry", [keys.root.public_key], [keys.index.public_key], expires=now + timedelta(days=365)
    )
    init_root_dir(root_dir, v1)
    sign_root_dir(root_dir, keys.root)
    edit_root_dir(root_dir, add_maintainer("alice", [keys.alice.public_key], ["alpha*"]), now=now)
    edit_root_dir(root_dir, add_maintainer("bob", [keys.bob.public_key], ["beta"]), now=now)
    sign_root_dir(root_dir, keys.root)
    repo = IndexRepo(path, keys)
    repo.release("alpha", "1.0.0")
    repo.release("beta", "1.0.0", signer=keys.bob)
    _init_git(path)
    repo.commit("base index")
    return path, keys


@pytest.fixture(scope="session")
def base_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Keys]:
    return make_base_repo(tmp_path_factory.mktemp("base") / "index-repo")


@pytest.fixture
def index_repo(base_repo: tuple[Path, Keys], tmp_path: Path) -> Iterator[IndexRepo]:
    base, keys = base_repo
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(base), str(clone)], check=True, capture_output=True)
    _init_identity = ("user.email", "ci@example.invalid"), ("user.name", "ci tests")
    for key, value in _init_identity:
        git(clone, "config", key, value)
    git(clone, "checkout", "-q", "-b", "pr")
    yield IndexRepo(clone, keys)
    shutil.rmtree(clone, ignore_errors=True)


@pytest.fixture
def make_pr(index_repo: IndexRepo) -> Callable[[Callable[[IndexRepo], object]], IndexRepo]:
    def build(change: Callable[[IndexRepo], object]) -> IndexRepo:
        change(index_repo)
        index_repo.commit()
        return index_repo

    return build
