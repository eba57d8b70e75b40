"""A test's output may be as large as the largest expect_file validate accepts (4 MiB).

stdout was capped at 1 MiB: a 2 MiB expect_file passed validate, and the test always ended in
output_limit ("write less to stdout"), with no key to raise the cap.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from registry_tool.format.rules import MAX_TEST_FILE_BYTES
from registry_tool.manifest import load_manifest, load_registry_config
from registry_tool.sandbox import Outcome, smoke_release

from .conftest import wat

REPO = Path(__file__).resolve().parents[2]

# A WASI command writing SIZE bytes of "a" (memory.fill, then one fd_write).
WRITES = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") {pages})
  (func (export "_start")
    (memory.fill (i32.const 64) (i32.const 97) (i32.const {size}))
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const {size}))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""


@pytest.mark.parametrize(
    ("size", "outcome"),
    [
        (2 * 1024**2, Outcome.passed),
        (MAX_TEST_FILE_BYTES, Outcome.passed),
        (MAX_TEST_FILE_BYTES + 1, Outcome.output_limit),
    ],
)
def test_an_expect_file_validate_accepts_can_be_produced(tmp_path: Path, size: int, outcome: Outcome) -> None:
    index = tmp_path / "index"
    release = index / "plugins" / "writer" / "1.0.0"
    (release / "tests").mkdir(parents=True)
    (index / "registry.toml").write_text((REPO / "index" / "registry.toml").read_text())
    (release / "writer.wasm").write_bytes(wat(WRITES.format(size=size, pages=size // 65536 + 2)))
    (release / "tests" / "out.bin").write_bytes(b"a" * min(size, MAX_TEST_FILE_BYTES))
    (release / "plugin.toml").write_text(
        """[plugin]
name = "writer"
version = "1.0.0"
description = "writes a lot"
authors = ["tests"]
license = "MIT"
abi = "wasi-command"
min_host_version = "0.2.0"

[artifact]
file = "writer.wasm"

[exports]
functions = ["_start"]

[limits]
memory = "16MiB"

[[tests]]
expect_file = "tests/out.bin"
"""
    )
    config = load_registry_config(index)
    manifest = load_manifest(release / "plugin.toml", config)
    [result] = smoke_release(manifest, config, cache=False)
    assert result.outcome is outcome, result.detail
