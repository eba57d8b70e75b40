"""The command line in an unusual environment: every case ends in exit 2 and a message, never a
crash (exit 3), a hang, or a device replaced (a sweep of every command found these)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.world import run_tool
from tests.world.tool import TOOL

REPO = Path(__file__).resolve().parents[2]
INDEX = REPO / "index"
INDEX_KEY = REPO / "samples" / "keys" / "index.key"


def test_a_closed_standard_output_is_a_usage_error() -> None:
    for args in (["validate", str(INDEX)], ["--help"]):
        proc = subprocess.run(
            [*TOOL, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: os.close(1),
            timeout=120,
        )
        assert proc.returncode == 2 and "standard output is closed" in proc.stderr, proc.stderr


def test_a_symbolic_link_loop_in_an_output_path_is_a_usage_error(tmp_path: Path) -> None:
    # Python 3.11's Path.resolve() raises RuntimeError on a loop: it was exit 3, "internal error".
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    for args in (
        ["build", str(INDEX), "--key", str(INDEX_KEY), "--out", str(tmp_path / "loop1"), "--no-smoke"],
        ["init", str(tmp_path / "loop1" / "idx")],
    ):
        proc = run_tool(*args, timeout=300)
        assert proc.returncode == 2 and "symbolic link loop" in proc.stderr, proc.stderr


def test_an_input_path_that_cannot_be_reached_says_why(tmp_path: Path) -> None:
    # A link loop and a file used as a folder both read "does not exist": the path is there.
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    (tmp_path / "file").write_text("x")
    for path, why in ((tmp_path / "loop1", "symbolic link loop"), (tmp_path / "file" / "x", "is a file")):
        for args in (
            ["validate", str(path)],
            ["smoke", str(path)],
            ["verify", str(path), "--pubkey", str(REPO / "samples" / "keys" / "index.pub")],
            ["verify", str(path), "--root", str(INDEX)],
            ["verify", str(INDEX / "registry.toml"), "--pubkey", str(path)],
            ["validate", str(INDEX), "--config", str(path)],
            ["key", "show", str(path)],
        ):
            proc = run_tool(*args, timeout=120)
            assert proc.returncode == 2 and why in proc.stderr, (args, proc.stderr)


def test_a_site_whose_lock_file_cannot_be_made_is_refused_not_waited_on() -> None:
    # filelock retried a lock file it could not create forever: the build hung silently.
    proc = run_tool(
        "build", str(INDEX), "--key", str(INDEX_KEY), "--out", "/proc/site", "--no-smoke", timeout=300
    )
    assert proc.returncode == 2 and "cannot create the lock file" in proc.stderr, proc.stderr


def test_init_without_git_writes_the_index(tmp_path: Path) -> None:
    # git missing: the code meant "the files are there", but `git rev-parse` ran unguarded (exit 2).
    target = tmp_path / "idx"
    proc = run_tool("init", str(target), "--tool-ref", "0" * 40, env={"PATH": str(tmp_path / "nowhere")})
    assert proc.returncode == 0, proc.stderr
    assert (target / "index" / "registry.toml").is_file() or any(target.rglob("registry.toml"))


def test_a_fifo_as_a_report_file_is_never_replaced_nor_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    proc = run_tool(
        "validate",
        str(INDEX / "plugins" / "adler32"),
        "-f",
        "github",
        env={"GITHUB_STEP_SUMMARY": str(fifo)},
        timeout=300,
    )
    assert proc.returncode == 0 and "was not written" in proc.stderr, proc.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
