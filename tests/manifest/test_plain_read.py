"""The one-open read of release files (``read_plain``) and the rules' shortcut through it.

A regular file is read in one open, fstat and read; every other shape (a link, a folder, a FIFO,
a missing file) gets ``None`` and the rules take their general path, which decides and explains it
as before.  A FIFO must never be waited on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from registry_tool.manifest import load_registry_config
from registry_tool.manifest.source import read_plain
from registry_tool.manifest.validate import check_release

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_regular_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 70_000)
    assert read_plain(str(path)) == (70_000, b"x" * 70_000)
    path.write_bytes(b"")
    assert read_plain(str(path)) == (0, b"")


def test_over_the_cap_is_sized_not_read(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 11)
    assert read_plain(str(path), cap=10) == (11, None)
    assert read_plain(str(path), cap=11) == (11, b"x" * 11)


@pytest.mark.parametrize("shape", ["link", "dangling-link", "folder", "fifo", "missing", "nul"])
def test_anything_but_a_regular_file_is_left_to_the_general_path(tmp_path: Path, shape: str) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"data")
    path = tmp_path / "f"
    if shape == "link":
        path.symlink_to(target)
    elif shape == "dangling-link":
        path.symlink_to(tmp_path / "nowhere")
    elif shape == "folder":
        path.mkdir()
    elif shape == "fifo":
        os.mkfifo(path)  # opened without waiting for a writer (a blocking open would hang here)
    name = str(path) + ("\0x" if shape == "nul" else "")
    assert read_plain(name) is None


def test_a_file_that_grows_while_read_is_read_to_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fstat says 4 bytes, the file has more by the time it is read: all of it is read."""
    path = tmp_path / "f"
    path.write_bytes(b"abcd")
    real_fstat = os.fstat

    def fstat_then_grow(fd: int) -> os.stat_result:
        info = real_fstat(fd)
        path.write_bytes(b"abcd" * 100_000)  # same inode, longer
        return info

    monkeypatch.setattr(os, "fstat", fstat_then_grow)
    size, data = read_plain(str(path)) or (0, None)
    assert (size, data) == (4, b"abcd" * 100_000)


def _release(materialised: Callable[[Path], tuple[Path, Path]]) -> tuple[Path, Path]:
    return materialised(EXAMPLES / "valid" / "core-numeric")


def test_linked_manifest_is_still_refused(materialised: Callable[[Path], tuple[Path, Path]]) -> None:
    release, config = _release(materialised)
    real = release.parent / "elsewhere.toml"
    (release / "plugin.toml").rename(real)
    (release / "plugin.toml").symlink_to(real)
    checked = check_release(release, load_registry_config(config))
    assert [f.rule for f in checked.result.findings] == ["symlink"]
    assert checked.manifest is None


def test_manifest_that_is_a_folder_is_unreadable(materialised: Callable[[Path], tuple[Path, Path]]) -> None:
    release, config = _release(materialised)
    (release / "plugin.toml").unlink()
    (release / "plugin.toml").mkdir()
    checked = check_release(release, load_registry_config(config))
    assert [f.rule for f in checked.result.findings] == ["manifest-missing"]


def test_manifest_path_or_folder_give_the_same_result(
    materialised: Callable[[Path], tuple[Path, Path]],
) -> None:
    """The shortcut (a folder holding a regular plugin.toml) and the general path (plugin.toml
    named directly) agree on everything they report."""
    release, config = _release(materialised)
    cfg = load_registry_config(config)
    by_folder = check_release(release, cfg)
    by_file = check_release(release / "plugin.toml", cfg)
    assert by_folder.result == by_file.result
    assert by_folder.wasm == by_file.wasm and by_folder.wasm_sha256 == by_file.wasm_sha256
    assert by_folder.manifest is not None and by_file.manifest is not None
    assert by_folder.manifest.raw == by_file.manifest.raw
    assert by_folder.manifest.path == by_file.manifest.path


def test_fifo_artifact_is_missing_without_waiting(materialised: Callable[[Path], tuple[Path, Path]]) -> None:
    release, config = _release(materialised)
    (release / "module.wasm").unlink()
    os.mkfifo(release / "module.wasm")
    checked = check_release(release, load_registry_config(config))
    assert [f.rule for f in checked.result.findings if f.severity.value == "error"] == ["artifact-missing"]


def test_artifact_over_the_cap_is_not_read(materialised: Callable[[Path], tuple[Path, Path]]) -> None:
    release, config = _release(materialised)
    cfg = load_registry_config(config)
    size = (release / "module.wasm").stat().st_size
    capped = replace(cfg, max_limits=replace(cfg.max_limits, module_size=size - 1))
    checked = check_release(release, capped)
    assert [f.rule for f in checked.result.findings if f.severity.value == "error"] == ["artifact-size"]
    assert checked.wasm is None
