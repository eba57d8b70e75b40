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


_HUGE = 3 * 1024**3  # sparse: no disk used; read whole, it does not fit the child's address space


def _under_two_gib(*args: str) -> tuple[int, str]:
    """``registry-tool ARGS`` in a process whose address space is capped at 2 GiB."""
    import resource
    import subprocess
    import sys

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))

    done = subprocess.run(
        [sys.executable, "-m", "registry_tool", *args],
        capture_output=True,
        text=True,
        preexec_fn=cap,
        timeout=300,
    )
    return done.returncode, done.stdout + done.stderr


def _sample_index(tmp_path: Path) -> Path:
    import shutil

    index = tmp_path / "index"
    shutil.copytree(Path(__file__).resolve().parents[2] / "index", index, symlinks=True)
    return index


@pytest.mark.parametrize(
    "where", ["plugin.toml", "root signature", "registry.toml"], ids=["manifest", "root-sig", "config"]
)
def test_a_huge_index_file_is_refused_by_its_size_not_read_whole(tmp_path: Path, where: str) -> None:
    """validate and build read plugin.toml, root files and registry.toml whole before their caps:
    3 GB of zeros (a few MB in git) ended them with MemoryError (exit 3) or used 3 GB."""
    index = _sample_index(tmp_path)
    release = next((index / "plugins").glob("*/*/plugin.toml")).parent
    if where == "plugin.toml":
        target = release / "plugin.toml"
    elif where == "root signature":
        target = index / "root" / "1.root.json.0123456789ABCDEF.minisig"
    else:
        target = index / "registry.toml"
    with target.open("wb") as fh:
        fh.truncate(_HUGE)
    if where == "plugin.toml":
        code, out = _under_two_gib("validate", str(release), "--format", "json")
        assert code == 1 and "manifest-too-large" in out, out[-2000:]
    else:
        key = Path(__file__).resolve().parents[2] / "samples" / "keys" / "index.key"
        site, cache = str(tmp_path / "site"), ["--no-cache"]
        code, out = _under_two_gib(
            "build", str(index), "--out", site, "--key", str(key), "--no-smoke", *cache
        )
        assert code == 2 and "3221225472 bytes, more than" in out, out[-2000:]
    assert "MemoryError" not in out and "Traceback" not in out
