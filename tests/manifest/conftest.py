"""Fixtures for the manifest tests: example trees materialised into tmp dirs with real wasm."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import wasmtime

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "tests" / "examples"
EXAMPLES_CONFIG = EXAMPLES / "registry.toml"
ADD_WAT = (
    '(module (memory (export "memory") 1) (func (export "add") (param i32 i32) (result i32) local.get 0))'
)


@dataclass(frozen=True)
class Expectation:
    rule: str
    line: int | None
    fragment: str


def read_expected(case: Path) -> list[Expectation]:
    """expected.txt: one ``rule[@line]: message fragment`` per line (matched in message or fix)."""
    path = case / "expected.txt"
    if not path.exists():
        return []
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        head, _, fragment = raw.partition(": ")
        rule, _, line = head.partition("@")
        out.append(Expectation(rule.strip(), int(line) if line else None, fragment.strip()))
    return out


def cases(kind: str) -> list[Path]:
    return sorted(p for p in (EXAMPLES / kind).iterdir() if p.is_dir())


def materialise(case: Path, dest: Path) -> tuple[Path, Path]:
    """Copy a case to ``dest``, assemble every .wat into .wasm, create listed symlinks.

    Returns (path to validate, registry.toml to use).
    """
    target = dest / case.name
    shutil.copytree(case, target, symlinks=True)
    for wat in target.rglob("*.wat"):
        wat.with_suffix(".wasm").write_bytes(bytes(wasmtime.wat2wasm(wat.read_text(encoding="utf-8"))))
    links = target / "symlinks.txt"
    if links.exists():
        for line in links.read_text(encoding="utf-8").splitlines():
            name, _, pointee = (part.strip() for part in line.partition("->"))
            outside = (target / pointee).resolve()
            outside.parent.mkdir(parents=True, exist_ok=True)
            outside.write_bytes(bytes(wasmtime.wat2wasm(ADD_WAT)))
            os.symlink(pointee, target / name)
    config = target / "registry.toml"
    return target, config if config.exists() else EXAMPLES_CONFIG


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``invalid_case`` / ``valid_case`` over the example trees."""
    for kind in ("invalid", "valid"):
        if f"{kind}_case" in metafunc.fixturenames:
            found = cases(kind)
            metafunc.parametrize(f"{kind}_case", found, ids=[p.name for p in found])


@pytest.fixture
def expectations() -> Callable[[Path], list[Expectation]]:
    return read_expected


@pytest.fixture
def example_cases() -> dict[str, list[Path]]:
    return {"invalid": cases("invalid"), "valid": cases("valid")}


@pytest.fixture
def materialised(tmp_path: Path) -> Callable[[Path], tuple[Path, Path]]:
    return lambda case: materialise(case, tmp_path)


@pytest.fixture(scope="session")
def cli() -> object:
    """The real typer app with every area registered (in-process, so tests stay fast)."""
    from registry_tool import _cli

    if not _cli.app.registered_commands:
        _cli._register_areas()
    return _cli.app
