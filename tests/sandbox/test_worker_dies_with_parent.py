"""A smoke worker must not outlive the CLI that started it.

Workers run in their own session (so the harness can kill a worker and its children as a
group); a killed CLI must not leave one running.  The parent here starts a worker whose stdin
stays open (held by the test), so only the parent's death can end it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry_tool._files import UnreadableFileError

PARENT = """
import subprocess, sys
fd = int(sys.argv[1])
proc = subprocess.Popen([sys.executable, "-m", "registry_tool.sandbox.worker"], stdin=fd,
                        stdout=subprocess.DEVNULL, start_new_session=True, pass_fds=(fd,))
print(proc.pid, flush=True)
proc.wait()
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _wait(predicate: object, timeout: float = 120.0) -> bool:
    """Poll ``predicate`` until true (returns early; the long timeout is for a loaded machine)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_smoke_worker_dies_when_its_cli_parent_is_killed() -> None:
    read_end, write_end = os.pipe()
    try:
        parent = subprocess.Popen(
            [sys.executable, "-c", PARENT, str(read_end)],
            stdout=subprocess.PIPE,
            pass_fds=(read_end,),
            text=True,
        )
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert _alive(worker)
        # Wait until the worker blocks reading its job (its watchdog starts just before).
        assert _wait(lambda: "pipe" in _wchan(worker))
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert _wait(lambda: not _alive(worker)), "the worker outlived its killed parent"
    finally:
        os.close(read_end)
        os.close(write_end)


def _wchan(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return ""


def test_smoke_artifact_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    from registry_tool._files import read_bounded
    from registry_tool.format.rules import MAX_MODULE_BYTES

    fifo = tmp_path / "plugin.wasm"
    os.mkfifo(fifo)
    with pytest.raises(UnreadableFileError, match="FIFO"):
        read_bounded(fifo, MAX_MODULE_BYTES, "smoke artifact")
