#!/usr/bin/env python3
r"""Write tests/lockfile_v3_vectors.json: lockfile version 3 lines as Python writes them.

    .venv/bin/python verifiers/rust/tests/lockfile_v3_vectors.py

Each case holds a state before and after one commit, the base line of each state and the
change line between them, every line produced by the contract's serialiser
(`json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"`), the
change line holding every entry added or different and `null` for every name removed.
tests/lockfile_v3.rs checks that the Rust writer produces the same bytes from the same states.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("lockfile_v3_vectors.json")


def line(obj: dict[str, Any]) -> str:
    """One lockfile line, byte for byte as every implementation writes it."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"


def entry(name: str, version: str, **changes: Any) -> dict[str, Any]:
    """A version-2/3 lockfile ENTRY with plausible values."""
    base = f"{name}/{version}/"
    e: dict[str, Any] = {
        "version": version,
        "registry": "https://example.org/plugins/",
        "requested": "^1.0",
        "required_by": [],
        "dependencies": {},
        "abi": "core",
        "manifest": base + "plugin.toml",
        "manifest_sha256": "0123456789abcdef" * 4,
        "manifest_size": 812,
        "wasm": base + name + ".wasm",
        "wasm_sha256": "fedcba9876543210" * 4,
        "wasm_size": 9007199254740992,
        "signatures": [base + "plugin.toml.minisig", base + "plugin.toml.1B2C3D4E5F607182.minisig"],
        "signers": ["1B2C3D4E5F607182"],
        "permissions": ["keys", "net"],
        "published_at": "2026-11-21T12:00:00Z",
    }
    e.update(changes)
    return e


def case(name: str, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Both states' base lines and the change line from ``before`` to ``after``."""
    changed: dict[str, Any] = {n: e for n, e in after.items() if before.get(n) != e}
    changed.update({n: None for n in before if n not in after})
    return {
        "name": name,
        "before": line({"lockfile_version": 3, "plugins": before}),
        "after": line({"lockfile_version": 3, "plugins": after}),
        "change": line({"plugins": changed}) if changed else None,
    }


def main() -> None:
    """Write the vector file."""
    lib = entry("lib", "1.0.0", requested="(dependency)")
    app = entry("app", "2.1.0-rc.1", dependencies={"lib": "^1.0"}, requested="")
    lib_needed = {**lib, "required_by": ["app"]}
    odd = entry(
        "odd_name-2",
        "1.0.0",
        registry='https://ex\u00e4mple.org/pl\u00fcgins/\u2603\U0001f600"\\\x01\x1f\x7f\t\n/',
        requested=">=1.0.0 <2.0.0 \u221e",
        dependencies={"lib": "~1.0.0", "zeta": "*"},
        permissions=[],
        signers=[],
        signatures=[],
    )
    cases = [
        case("first install into an empty folder", {}, {"lib": lib}),
        case(
            "a dependent changes the dependency's required_by",
            {"lib": lib},
            {"app": app, "lib": lib_needed},
        ),
        case("a removal is null and updates required_by", {"app": app, "lib": lib_needed}, {"lib": lib}),
        case(
            "only the one changed entry of three",
            {"lib": lib, "app": app, "other": entry("other", "1.0.0")},
            {"lib": lib, "app": app, "other": entry("other", "1.0.1")},
        ),
        case(
            "non-ASCII and control characters are escaped like Python",
            {"lib": lib},
            {"lib": lib, "odd_name-2": odd},
        ),
        case("nothing changed", {"lib": lib}, {"lib": lib}),
        case("everything removed", {"lib": lib, "app": app}, {}),
    ]
    OUT.write_text(json.dumps({"cases": cases}, indent=2, sort_keys=True, ensure_ascii=True) + "\n")


if __name__ == "__main__":
    main()
