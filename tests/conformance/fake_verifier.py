"""A stand-in verifier for the runner's own tests (tests/conformance/test_runner.py).

It speaks the command contract of conformance/README.md but decides almost nothing itself:
`install` answers come from a table (env FAKE_TABLE, a JSON file: spec -> answer, exit code and
the site files to copy into the plugin directory).  It does really fetch registry.json in
`refresh` (with the 64 KiB cap and the deadline) and really re-hash files in `verify`, so the
runner's fault directives, tamper and symlink steps are exercised against real behaviour.

With env FAKE_BATCH=1 it declares batch mode (`capabilities`) and answers `batch` requests by
running the same step in-process; FAKE_PIDS (a file) collects one line per process started, so
the runner's tests can count processes.  In batch mode the spec `crash` ends the process without
an answer (the runner must fail that case and start a new process).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

CAP = 64 * 1024
LOCK = "registry-tool.lock.json"


def answer(doc: dict[str, Any], code: int = 0) -> NoReturn:
    print(json.dumps(doc))
    sys.exit(code)


def refuse(error: str, code: int = 1) -> NoReturn:
    answer({"ok": False, "error": error, "message": f"fake verifier: {error}"}, code)


def fetch(url: str, deadline_s: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=deadline_s) as response:
            data = response.read(CAP + 1)
    except (urllib.error.HTTPError, http.client.HTTPException, ConnectionError):
        refuse("network", 2)
    except TimeoutError:
        refuse("slow-retrieval")
    if len(data) > CAP:
        refuse("endless-data")
    return data


def fold(data: bytes) -> dict[str, Any]:
    """A version 2 document, or a version 3 file folded (an unfinished last line ignored)."""
    with contextlib.suppress(ValueError):
        doc = json.loads(data)
        if isinstance(doc, dict) and doc.get("lockfile_version") == 2:
            return doc
    lines = data[: data.rfind(b"\n") + 1].splitlines()
    base = json.loads(lines[0])
    assert base["lockfile_version"] == 3
    for line in lines[1:]:
        for name, entry in json.loads(line)["plugins"].items():
            if entry is None:
                del base["plugins"][name]
            else:
                base["plugins"][name] = entry
    return base  # type: ignore[no-any-return]


def main(argv: list[str]) -> None:
    op, rest = argv[0], argv[1:]
    opts = dict(zip(rest[::2], rest[1::2], strict=False))
    state = Path(opts["--state"])
    deadline = int(opts.get("--deadline-ms", "10000")) / 1000
    if op == "pin":
        if not Path(opts["--root"]).is_file():
            refuse("root-chain")
        (state / "pinned").write_text(opts["--url"])
        answer({"ok": True, "root_version": 1})
    if op == "refresh":
        if not (state / "pinned").exists():
            refuse("not-pinned", 2)
        top = json.loads(fetch(opts["--url"] + "registry.json", deadline))
        answer({"ok": True, "registry_version": top["version"], "root_version": top["root_version"]})
    if op == "install":
        table = json.loads(Path(os.environ["FAKE_TABLE"]).read_text())
        row = table[opts["--spec"]]
        dest = Path(opts["--dir"])
        if row.get("files"):
            lock: dict[str, Any] = {"lockfile_version": 3, "plugins": {}}
            entry: dict[str, Any] = {"version": row["answer"]["version"]}
            for kind, (local, remote) in row["files"].items():
                data = fetch(opts["--url"] + remote, deadline)
                (dest / local).parent.mkdir(parents=True, exist_ok=True)
                (dest / local).write_bytes(data)
                entry.update(
                    {
                        kind: local,
                        f"{kind}_sha256": hashlib.sha256(data).hexdigest(),
                        f"{kind}_size": len(data),
                    }
                )
            lock["plugins"][row["answer"]["name"]] = entry
            (dest / LOCK).write_text(json.dumps(lock, sort_keys=True, separators=(",", ":")) + "\n")
        answer(row["answer"], row.get("exit", 0))
    if op == "verify":
        dest = Path(opts["--dir"])
        if not (dest / LOCK).exists():
            answer({"ok": True, "plugins": []})
        try:
            lock = fold((dest / LOCK).read_bytes())
        except (ValueError, AssertionError, KeyError, TypeError, IndexError):
            refuse("lockfile")
        for entry in lock["plugins"].values():
            for kind in ("manifest", "wasm"):
                path = dest / entry[kind]
                parts = Path(entry[kind]).parts
                if any((dest.joinpath(*parts[: i + 1])).is_symlink() for i in range(len(parts))):
                    refuse("unsafe-path")
                if (
                    not path.is_file()
                    or hashlib.sha256(path.read_bytes()).hexdigest() != entry[f"{kind}_sha256"]
                ):
                    refuse("installed-tampered")
        answer({"ok": True, "plugins": sorted(lock["plugins"])})
    refuse("not-found", 2)


def batch() -> None:
    for line in iter(sys.stdin.readline, ""):
        args = json.loads(line)["args"]
        if "crash" in args:
            os._exit(3)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                main(args)
                code = 0
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 0
        answer = json.loads(out.getvalue())
        answer["exit"] = code
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    if os.environ.get("FAKE_PIDS"):
        with open(os.environ["FAKE_PIDS"], "a") as f:
            f.write(" ".join(sys.argv[1:2]) + "\n")
    if sys.argv[1:] == ["capabilities"]:
        if os.environ.get("FAKE_BATCH") != "1":
            refuse("usage", 2)
        answer({"ok": True, "batch": True})
    if sys.argv[1:] == ["batch"]:
        batch()
        sys.exit(0)
    main(sys.argv[1:])
