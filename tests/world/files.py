"""Local files a tool must refuse by type and size before reading a byte."""

from __future__ import annotations

import os
from pathlib import Path

# What ``hostile_file`` can make; "directory" only where a directory is not already refused by name.
HOSTILE_KINDS = ("fifo", "dev-zero", "directory", "huge")


def hostile_file(path: Path, kind: str) -> Path:
    """Make ``path`` a file no bounded read may read whole or wait on, and return it.

    ``fifo``: nobody ever writes (an unbounded wait if opened blocking); ``dev-zero``: a link to
    ``/dev/zero``; ``directory``: a directory; ``huge``: a sparse 600 MiB file (no disk used).
    """
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    elif kind == "huge":
        with path.open("wb") as fh:
            fh.truncate(600 * 1024 * 1024)
    else:
        raise ValueError(f"unknown hostile file kind {kind!r}")
    return path
