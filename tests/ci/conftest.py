"""Temporary index git repositories: a signed base on `main`, pull requests on a branch.

The index itself is built by tests.world (keys, root chain, releases); modules are tiny WAT
programs compiled with wasmtime.wat2wasm.  The base repository is built once per session and
cloned per test (a local clone takes milliseconds).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from registry_tool.ci.check import CheckOptions, check_pull_request
from registry_tool.ci.scaffold import render_template
from registry_tool.report import Report
from registry_tool.signing import SecretKey
from tests.world import IndexTree, Keys, wasm
from tests.world import manifest_text as world_manifest

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
    """``git ARGS`` in ``cwd``; its stdout."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return proc.stdout


def manifest_text(
    name: str,
    version: str,
    *,
    permissions: dict[str, bool] | None = None,
    dependencies: dict[str, str] | None = None,
) -> str:
    """The ci tests' manifest: MIT, host >=0.1.0, <1.0.0, explicit limits, add(2, 3) == 5."""
    return world_manifest(
        name,
        version,
        license="MIT",
        keywords=None,
        host=">=0.1.0, <1.0.0",
        permissions=permissions or {},
        dependencies=dependencies,
        # wall_time is generous: the suite shares 2 cores; fuel bounds the work.
        limits={"fuel": 2_000_000, "memory": "1MiB", "wall_time": "10s"},
        test=("adds", [2, 3], [5]),
    )


@dataclass
class IndexRepo:
    """A clone of the base repository, on branch `pr`."""

    path: Path
    keys: Keys
    smoked: list[str] = field(default_factory=list)

    @property
    def index(self) -> Path:
        """The index directory inside the repository."""
        return self.path / "index"

    @property
    def tree(self) -> IndexTree:
        """The index as a tests.world tree (signing time: now)."""
        return IndexTree(self.index, self.keys, datetime.now(UTC))

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
        """A signed release (alice signs unless ``signer`` is given); its folder."""
        text = manifest_text(name, version, permissions=permissions, dependencies=dependencies)
        return self.tree.add_release(
            name, version, manifest=text, module=wasm(wat), signer=signer or self.keys.alice
        )

    def yank(self, name: str, version: str, signer: SecretKey, reason: str = "broken") -> Path:
        """A yank of ``name`` ``version`` signed by ``signer``; the signature's path."""
        return self.tree.yank(name, version, reason, signer)

    def commit(self, message: str = "pr") -> None:
        """Commit everything in the working tree."""
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


def make_base_repo(path: Path, keys: Keys | None = None) -> tuple[Path, Keys]:
    """main: registry.toml, root v1 -> v2 (alice: alpha*, bob: beta), alpha 1.0.0 and beta 1.0.0."""
    keys = keys or Keys.generate()
    values = {"NAME": "test-registry", "HOST": HOST, "BASE_URL": "https://example.invalid/reg/"}
    IndexTree.create(
        path / "index",
        keys,
        registry="test-registry",
        toml=render_template("registry.toml", values),
        now=datetime.now(UTC),
        sign_each=False,
    )
    repo = IndexRepo(path, keys)
    repo.release("alpha", "1.0.0")
    repo.release("beta", "1.0.0", signer=keys.bob)
    _init_git(path)
    repo.commit("base index")
    return path, keys


@pytest.fixture(scope="session")
def base_repo(tmp_path_factory: pytest.TempPathFactory, world_keys: Keys) -> tuple[Path, Keys]:
    """The base repository, built once per session."""
    return make_base_repo(tmp_path_factory.mktemp("base") / "index-repo", world_keys)


@pytest.fixture
def index_repo(base_repo: tuple[Path, Keys], tmp_path: Path) -> Iterator[IndexRepo]:
    """A clone of the base repository on a new branch ``pr``."""
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
    """``make_pr(change)``: apply ``change`` to the clone and commit it."""

    def build(change: Callable[[IndexRepo], object]) -> IndexRepo:
        change(index_repo)
        index_repo.commit()
        return index_repo

    return build
