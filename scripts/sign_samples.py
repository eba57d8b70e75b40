#!/usr/bin/env python3
"""Give the bundled sample index its trust: sample keys, a two-version root chain, signed releases.

The keys in samples/keys/ are DEMO ONLY (unencrypted, published in this repository); a real
registry keeps root keys offline and the index key in a CI secret.  Run after changing a
sample plugin: `python scripts/sign_samples.py` (keys are reused when present).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INDEX = ROOT / "index"
KEYS = ROOT / "samples" / "keys"
EXPIRES = "2031-11-21T00:00:00Z"  # long-lived: the sample must keep verifying in CI for years

# maintainer id -> plugins delegated to it
MAINTAINERS = {
    "ferritelabs": [
        "validate_email",
        "adler32",
        "uppercase",
        "healthcheck",
        "tally",
        "header_gate",
        "jsonl_prices",
        "email_domain",
    ],
    "extism-community": ["count_vowels", "visit_counter", "greet_go", "greet_go_std"],
}


def tool(*args: str | Path) -> None:
    cmd = [sys.executable, "-m", "registry_tool", *map(str, args)]
    subprocess.run(cmd, check=True, cwd=ROOT)


def key(name: str) -> Path:
    path = KEYS / f"{name}.key"
    if not path.exists():
        tool("key", "generate", KEYS / name, "--unencrypted")
    return path


def main() -> None:
    KEYS.mkdir(parents=True, exist_ok=True)
    root_dir = INDEX / "root"
    for old in root_dir.glob("*"):
        old.unlink()
    root_dir.mkdir(exist_ok=True)
    root_key, index_key = key("root"), key("index")
    tool(
        "root",
        "init",
        "--registry",
        "ferrite-plugins",
        "--dir",
        root_dir,
        "--root-key",
        root_key.with_suffix(".pub"),
        "--index-key",
        index_key.with_suffix(".pub"),
        "--expires",
        EXPIRES,
    )
    tool("root", "sign", "--dir", root_dir, "--key", root_key)
    # Version 2 delegates the plugins, so the sample shows a client walking a chain.
    for maintainer, plugins in MAINTAINERS.items():
        args: list[str | Path] = ["root", "add-maintainer", maintainer, "--dir", root_dir]
        args += ["--pubkey", key(maintainer).with_suffix(".pub"), "--expires", EXPIRES]
        for plugin in plugins:
            args += ["--plugin", plugin]
        tool(*args)
    # registry.toml (permissions, limits) changes only with the root threshold: pin its digest.
    tool("root", "pin-config", INDEX / "registry.toml", "--dir", root_dir, "--expires", EXPIRES)
    tool("root", "sign", "--dir", root_dir, "--key", root_key)
    tool("root", "verify", "--dir", root_dir)
    for maintainer, plugins in MAINTAINERS.items():
        for plugin in plugins:
            for release in sorted((INDEX / "plugins" / plugin).iterdir()):
                for sig in release.glob("plugin.toml*.minisig"):
                    sig.unlink()
                tool("sign", release, "--key", key(maintainer))


if __name__ == "__main__":
    main()
