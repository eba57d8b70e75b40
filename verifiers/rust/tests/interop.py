#!/usr/bin/env python3
"""A conformance-runner 'verifier' that splits each case between two implementations.

    interop.py python-installs|rust-installs RUST_BINARY PYTHON -- (runner arguments)

`pin` and `refresh` run on both implementations (each with its own state directory below the
runner's) and must agree; `install` runs on the installing one and `verify` on the other, over
the same plugin directory. Run with the install/verify cases of the suite, this checks lockfile
interoperability: what one installs, the other verifies, and a tampered file is refused by both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def main() -> int:
    """Answer one runner step (or batch) as the module docstring says; returns the exit code."""
    mode, rust, python = sys.argv[1], sys.argv[2], sys.argv[3]
    args = sys.argv[sys.argv.index("--") + 1 :]
    commands = {"rust": [rust], "python": [python, "-m", "registry_tool.client.conformance"]}
    installer, checker = ("python", "rust") if mode == "python-installs" else ("rust", "python")

    def run(impl: str) -> tuple[int, str]:
        own = list(args)
        i = own.index("--state")
        state = Path(own[i + 1]) / impl
        state.mkdir(parents=True, exist_ok=True)
        own[i + 1] = str(state)
        done = subprocess.run([*commands[impl], *own], capture_output=True, text=True, check=False)
        sys.stderr.write(f"[{impl}] {done.stdout}{done.stderr}")
        return done.returncode, done.stdout

    op = args[0]
    if op in ("pin", "refresh"):
        results = {impl: run(impl) for impl in ("rust", "python")}
        verdicts = {
            impl: (code, json.loads(out or "{}").get("error")) for impl, (code, out) in results.items()
        }
        if verdicts["rust"] != verdicts["python"]:
            print(json.dumps({"ok": False, "error": "implementations-disagree", "message": str(verdicts)}))
            return 1
        code, out = results[installer]
    else:
        code, out = run(installer if op == "install" else checker)
    sys.stdout.write(out)
    return code


if __name__ == "__main__":
    sys.exit(main())
