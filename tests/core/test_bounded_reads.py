"""Local files given to the tool are read bounded: /dev/zero, a FIFO, a 600 MiB file are refused
by type and size before any byte is read (never read whole, never waited on)."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry_tool._files import UnreadableFileError, UnsafePathError, read_bounded
from registry_tool.signing.keyfiles import describe_key, load_public_key, load_secret_key
from tests.world.files import HOSTILE_KINDS, hostile_file


def _hostile(tmp_path: Path, kind: str) -> Path:
    return hostile_file(tmp_path / "file", kind)


KINDS = list(HOSTILE_KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_read_bounded_refuses_before_reading(tmp_path: Path, kind: str) -> None:
    with pytest.raises(UnreadableFileError) as err:
        read_bounded(_hostile(tmp_path, kind), 1024 * 1024, "test file")
    assert err.value.exit_code == 2 and "test file" in err.value.what


def test_read_bounded_reads_a_small_file_exactly(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_bounded(path, 100, "test file") == b"x" * 100
    with pytest.raises(UnreadableFileError, match="101 bytes"):
        path.write_bytes(b"x" * 101)
        read_bounded(path, 100, "test file")


def test_read_bounded_without_following_links(tmp_path: Path) -> None:
    (tmp_path / "target").write_bytes(b"data")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    assert read_bounded(tmp_path / "link", 10, "f") == b"data"
    with pytest.raises(UnsafePathError):
        read_bounded(tmp_path / "link", 10, "f", follow_symlinks=False)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("loader", [load_public_key, load_secret_key, describe_key])
def test_key_file_that_is_not_a_small_regular_file_is_refused(
    tmp_path: Path, kind: str, loader: object
) -> None:
    with pytest.raises(UnreadableFileError, match="key file"):
        loader(_hostile(tmp_path, kind))  # type: ignore[operator]
