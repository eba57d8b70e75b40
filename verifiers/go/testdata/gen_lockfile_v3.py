"""Write the lockfile version 3 vectors of lockfile3_test.go.

lockfile-v3-python.jsonl and lockfile-v3-python-base.jsonl hold the lines Python's json.dumps
writes for a sequence of commits, so the Go verifier's lines can be compared byte for byte.
Standard library only:

    python3 gen_lockfile_v3.py   (in verifiers/go/testdata)
"""

import hashlib
import json


def line(obj: object) -> str:
    """One lockfile line (version 3)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"


def entry(name: str, version: str, **over: object) -> dict[str, object]:
    """A valid entry of plugin ``name``, with ``over`` replacing members."""
    d = f"{name}/{version}/"
    e: dict[str, object] = {
        "abi": "core",
        "dependencies": {},
        "manifest": d + "plugin.toml",
        "manifest_sha256": hashlib.sha256(f"m {name} {version}".encode()).hexdigest(),
        "manifest_size": 313,
        "permissions": [],
        "published_at": "2026-11-21T12:00:00Z",
        "registry": "https://plugins.example.org/",
        "requested": "",
        "required_by": [],
        "signatures": [d + "plugin.toml.minisig"],
        "signers": ["C9D35B059575BB3A"],
        "version": version,
        "wasm": d + name + ".wasm",
        "wasm_sha256": hashlib.sha256(f"w {name} {version}".encode()).hexdigest(),
        "wasm_size": 9007199254740992,  # 2^53, the largest integer the format allows
    }
    e.update(over)
    return e


# Strings a lockfile may hold that Go's encoding/json writes otherwise than Python unless told:
# HTML characters, DEL, control characters, U+2028/2029, beyond ASCII and beyond the BMP.
odd = 'a<b>&c\u007f\u0001\u001f\b\f\n\r\t"\\/\u2028\u2029\u00e9\u20ac\U0001f600'
commits: list[dict[str, object]] = [
    {"validate_email": entry("validate_email", "1.1.0", requested="^1.0", permissions=["keys"])},
    {
        "uses_email": entry("uses_email", "1.0.0", dependencies={"validate_email": "^1.0.0"}, requested=odd),
        "validate_email": entry(
            "validate_email", "1.1.0", requested="^1.0", permissions=["keys"], required_by=["uses_email"]
        ),
    },
    {"z-last": entry("z-last", "0.1.0-rc.1", registry="https://\u00fcber.example/\U0001f600/", abi=odd)},
    {"z-last": None},
    {
        "uses_email": None,
        "validate_email": entry("validate_email", "1.1.0", requested="^1.0", permissions=["keys"]),
    },
]

state: dict[str, object] = {}
out = []
for i, change in enumerate(commits):
    if i == 0:
        state.update(change)
        out.append(line({"lockfile_version": 3, "plugins": state}))
        continue
    for name, value in change.items():
        if value is None:
            del state[name]
        else:
            state[name] = value
    out.append(line({"plugins": change}))
with open("lockfile-v3-python.jsonl", "w", encoding="ascii", newline="") as f:
    f.write("".join(out))
with open("lockfile-v3-python-base.jsonl", "w", encoding="ascii", newline="") as f:
    f.write(line({"lockfile_version": 3, "plugins": state}))
