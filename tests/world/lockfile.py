"""Tests' view of the lockfile file (version 3, docs/client.md): fold it, rewrite it, append to it.

Tests that edit the lockfile as an attacker or another implementation would go through these,
so every test states its change on the folded state, and the bytes written are the canonical
lines the format specifies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LOCKFILE = "registry-tool.lock.json"


def line(doc: Any) -> bytes:
    """One lockfile line in the canonical form."""
    return (json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n").encode()


def fold(data: bytes) -> dict[str, Any]:
    """``{"lockfile_version": V, "plugins": {...}}``: a version 2 document, or version 3 lines folded."""
    try:
        doc = json.loads(data)
        if isinstance(doc, dict) and doc.get("lockfile_version") == 2:
            return doc
    except ValueError:
        pass
    lines = data[: data.rfind(b"\n") + 1].splitlines()
    base = json.loads(lines[0])
    plugins = dict(base["plugins"])
    for text in lines[1:]:
        for name, entry in json.loads(text)["plugins"].items():
            if entry is None:
                del plugins[name]
            else:
                plugins[name] = entry
    return {"lockfile_version": base["lockfile_version"], "plugins": plugins}


def read_lock(folder: Path) -> dict[str, Any]:
    """The folded lockfile of the plugin directory ``folder``."""
    return fold((folder / LOCKFILE).read_bytes())


def write_lock(folder: Path, doc: dict[str, Any]) -> None:
    """Rewrite the lockfile as one base line holding ``doc`` (version 3 unless ``doc`` says otherwise)."""
    (folder / LOCKFILE).write_bytes(line({"lockfile_version": 3, **doc}))


def lines(folder: Path) -> list[bytes]:
    """The lockfile's complete lines (each with its newline)."""
    data = (folder / LOCKFILE).read_bytes()
    return data[: data.rfind(b"\n") + 1].splitlines(keepends=True)
