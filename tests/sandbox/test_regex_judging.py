"""A test's expect_regex is matched in the worker, under the test's deadline.

A pattern that backtracks without end (``^(a+)+$`` on "aaa…a!") ran until the worker was killed
and was reported as the export's timeout, with "make the export faster": the export had returned
at once.  The worker says when the run has ended and the judging begun; a deadline passed after
that is the pattern's, reported as wrong_output naming expect_regex.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from registry_tool.manifest import load_manifest, load_registry_config
from registry_tool.sandbox import Outcome, smoke_release

from .conftest import wat

REPO = Path(__file__).resolve().parents[2]

# A WASI command that prints 40 "a" and a "!" and returns.
PRINTS = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 41))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""


def _release(tmp_path: Path, regex: str) -> Path:
    index = tmp_path / "index"
    release = index / "plugins" / "printer" / "1.0.0"
    release.mkdir(parents=True)
    (index / "registry.toml").write_text((REPO / "index" / "registry.toml").read_text())
    (release / "printer.wasm").write_bytes(wat(PRINTS))
    (release / "plugin.toml").write_text(
        f"""[plugin]
name = "printer"
version = "1.0.0"
description = "prints a line of a"
authors = ["tests"]
license = "MIT"
abi = "wasi-command"
min_host_version = "0.2.0"

[artifact]
file = "printer.wasm"

[exports]
functions = ["_start"]

[limits]
wall_time = "1s"

[[tests]]
name = "first"
expect_regex = {regex!r}

[[tests]]
name = "second"
expect_regex = "a!$"
"""
    )
    return index


@pytest.mark.parametrize(
    ("regex", "first"),
    [("^(a+)+$", Outcome.wrong_output), ("^a+!$", Outcome.passed), ("^b", Outcome.wrong_output)],
)
def test_a_pattern_that_never_ends_is_the_tests_fault_not_the_exports(
    tmp_path: Path, regex: str, first: Outcome
) -> None:
    index = _release(tmp_path, regex)
    config = load_registry_config(index)
    manifest = load_manifest(index / "plugins" / "printer" / "1.0.0" / "plugin.toml", config)
    one, two = smoke_release(manifest, config, cache=False)
    assert one.outcome is first, one.detail
    if regex == "^(a+)+$":
        assert "expect_regex '^(a+)+$'" in one.detail and "did not finish" in one.detail, one.detail
        assert "faster" not in one.detail
    else:
        assert "did not finish" not in one.detail
    # The next test runs in a new worker, as after any timeout.
    assert two.outcome is Outcome.passed, two.detail


def test_a_worker_killed_at_a_deadline_leaves_no_wasi_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The killed worker could not remove its directory: each timeout left the test's stdin,
    stdout and stderr (up to 4 MiB each) on /dev/shm, in memory until the machine restarts."""
    from registry_tool.sandbox import harness

    made: list[Path] = []

    def private_dir() -> Path:
        made.append(tmp_path / f"work{len(made)}")
        made[-1].mkdir(mode=0o700)
        return made[-1]

    monkeypatch.setattr(harness, "private_dir", private_dir)
    index = _release(tmp_path, "^(a+)+$")
    config = load_registry_config(index)
    manifest = load_manifest(index / "plugins" / "printer" / "1.0.0" / "plugin.toml", config)
    one, _ = smoke_release(manifest, config, cache=False)
    assert one.outcome is Outcome.wrong_output and "worker killed" in one.detail
    assert "within the test's wall time (" in one.detail  # its own, not wall time + grace as one figure
    assert len(made) == 2  # the killed worker's, then the next one's
    assert [p for p in made if p.exists()] == []


def test_removing_a_scratch_directory_never_follows_a_link(tmp_path: Path) -> None:
    """A link left in the directory's place: what it points at stays."""
    from registry_tool.sandbox.worker import remove_private_dir

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("x")
    (tmp_path / "scratch").symlink_to(elsewhere, target_is_directory=True)
    remove_private_dir(tmp_path / "scratch")
    assert (elsewhere / "keep").exists()
    real = tmp_path / "real"
    real.mkdir()
    (real / "stdout").write_text("y")
    remove_private_dir(real)
    assert not real.exists()
