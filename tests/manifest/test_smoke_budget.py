"""Attack: a manifest holds thousands of 10 s tests and ties the CI runner up for hours.

[limits.max] tests_per_release and smoke_wall_time cap one release's smoke run: the number of
[[tests]], and the worst case (tests x their wall_time limit), known before anything runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime

from registry_tool.errors import RegistryToolError
from registry_tool.manifest import load_registry_config, validate_release

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "index" / "registry.toml"
ADD = '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
TEST = '\n[[tests]]\nname = "t{i}"\ncall = "add"\nargs = [1, 2]\nexpect = [3]\n'


def _release(tmp_path: Path, tests: int, wall_time: str = "2s") -> Path:
    d = tmp_path / "plugins" / "example" / "1.0.0"
    d.mkdir(parents=True)
    (d / "m.wasm").write_bytes(wasmtime.wat2wasm(ADD))
    text = f"""[plugin]
name = "example"
version = "1.0.0"
description = "An example"
authors = ["tests"]
license = "MIT"
abi = "core"

[compatibility]
host = ">=0.2.0, <1.0.0"

[artifact]
file = "m.wasm"

[exports]
functions = ["add"]

[limits]
wall_time = "{wall_time}"
"""
    (d / "plugin.toml").write_text(text + "".join(TEST.format(i=i) for i in range(tests)))
    return d


def _config(tmp_path: Path, extra: str = "") -> Path:
    text = CONFIG.read_text()
    if extra:
        text = text.replace('stack = "1MiB"', 'stack = "1MiB"\n' + extra)
    path = tmp_path / "registry.toml"
    path.write_text(text)
    return path


def _budget_findings(release: Path, config: Path) -> list[str]:
    result = validate_release(release, load_registry_config(config))
    return [f.message for f in result.findings if f.rule == "smoke-budget"]


def test_thousands_of_tests_are_refused_by_default(tmp_path: Path) -> None:
    found = _budget_findings(_release(tmp_path, 1000, "10s"), _config(tmp_path))
    assert found and "1000 [[tests]], above the registry's limit of 64" in found[0]


def test_tests_per_release_from_registry_toml(tmp_path: Path) -> None:
    config = _config(tmp_path, "tests_per_release = 2")
    assert _budget_findings(_release(tmp_path / "a", 3, "1s"), config)
    assert not _budget_findings(_release(tmp_path / "b", 2, "1s"), config)


def test_total_wall_time_from_registry_toml(tmp_path: Path) -> None:
    config = _config(tmp_path, 'smoke_wall_time = "5s"')
    found = _budget_findings(_release(tmp_path / "a", 3, "2s"), config)
    assert found and "3 tests x wall_time 2s = 6s" in found[0]
    assert not _budget_findings(_release(tmp_path / "b", 2, "2s"), config)


def test_sample_index_fits_the_default_budget() -> None:
    config = load_registry_config(CONFIG)
    assert (config.max_tests_per_release, config.max_smoke_wall_time) == (64, 120.0)
    for release in sorted((REPO / "index" / "plugins").glob("*/*")):
        assert not _budget_findings(release, CONFIG), release


@pytest.mark.parametrize(
    "extra", ['smoke_wall_time = "forever"', "tests_per_release = 0", "tests_per_release = 1e308"]
)
def test_bad_budget_is_a_config_error(tmp_path: Path, extra: str) -> None:
    with pytest.raises(RegistryToolError):
        load_registry_config(_config(tmp_path, extra))


def test_budget_keys_only_in_limits_max(tmp_path: Path) -> None:
    text = CONFIG.read_text().replace('wall_time = "2s"', 'wall_time = "2s"\ntests_per_release = 3', 1)
    path = tmp_path / "registry.toml"
    path.write_text(text)
    with pytest.raises(RegistryToolError, match="schema"):
        load_registry_config(path)
