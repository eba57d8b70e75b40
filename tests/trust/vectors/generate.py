"""Deterministic test vectors for docs/trust.md (fixed seeds, fixed times).

Run `python tests/trust/vectors/generate.py` to rewrite the files; tests/trust/test_vectors.py
checks that the files equal this output and that every case in cases.json gets its verdict.
Ed25519 signatures are deterministic, so fixed seeds give fixed bytes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from registry_tool.signing import SecretKey, Signature, release_trusted_comment, sign_bytes
from registry_tool.trust.editing import add_maintainer, derive, new_root, revoke
from registry_tool.trust.root import Root

HERE = Path(__file__).resolve().parent
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = "2026-06-01T00:00:00Z"
EXPIRES = T0 + timedelta(days=3650)


def seed_key(label: str) -> SecretKey:
    """seed = SHA-256("registry-tool vector " + label); key number = first 8 bytes of SHA-256(seed)."""
    seed = hashlib.sha256(f"registry-tool vector {label}".encode()).digest()
    return SecretKey.from_seed(seed, hashlib.sha256(seed).digest()[:8])


KEYS = {name: seed_key(name) for name in ("root-a", "root-b", "root-c", "index", "alice", "bob", "mallory")}


def sig(key: SecretKey, data: bytes, comment: str) -> str:
    return sign_bytes(key, data, trusted_comment=comment, untrusted_comment="test vector")


def legacy_sig(key: SecretKey, data: bytes, comment: str) -> str:
    raw = key.sign_raw(data)
    return Signature(
        b"Ed", key.keynum, raw, comment, key.sign_raw(raw + comment.encode()), "legacy"
    ).to_text()


def build() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    cases: list[dict[str, object]] = []
    for name, key in KEYS.items():
        files[f"keys/{name}.pub"] = key.public_key.to_text().encode()
        files[f"keys/{name}.key"] = key.dump(None, comment="test vector secret key (unencrypted)")
    # An encrypted key: passphrase "vector", salt 32 x 0x01, small scrypt limits (N=2^10, r=8, p=1).
    files["keys/alice.encrypted.key"] = KEYS["alice"].dump(
        b"vector", opslimit=32768, memlimit=1 << 20, salt=b"\x01" * 32, comment="passphrase: vector"
    )

    # ---- plain signatures
    message = b"registry-tool test vector\n"
    files["sig/message.txt"] = message
    files["sig/message.txt.minisig"] = sig(
        KEYS["alice"], message, "timestamp:0\tfile:message.txt\thashed"
    ).encode()
    tampered_comment = files["sig/message.txt.minisig"].replace(b"file:message.txt", b"file:message.TXT")
    files["sig/tampered-comment.minisig"] = tampered_comment
    files["sig/legacy.minisig"] = legacy_sig(KEYS["alice"], message, "legacy").encode()
    impostor = SecretKey.from_seed(KEYS["mallory"].seed, KEYS["alice"].keynum)
    files["sig/keyid-collision.minisig"] = sig(impostor, message, "claims alice's key id").encode()
    for name, sigfile, data, expect in [
        ("signature: valid", "sig/message.txt.minisig", "sig/message.txt", "ok"),
        ("signature: tampered byte in file", "sig/message.txt.minisig", "sig/tampered.txt", "bad-signature"),
        (
            "signature: tampered trusted comment",
            "sig/tampered-comment.minisig",
            "sig/message.txt",
            "bad-signature",
        ),
        ("signature: legacy Ed", "sig/legacy.minisig", "sig/message.txt", "legacy-signature"),
        ("signature: key id collision", "sig/keyid-collision.minisig", "sig/message.txt", "bad-signature"),
    ]:
        cases.append(
            {
                "name": name,
                "kind": "signature",
                "public_key": "keys/alice.pub",
                "data": data,
                "signature": sigfile,
                "expect": expect,
            }
        )
    files["sig/tampered.txt"] = message.replace(b"vector", b"Vector")

    # ---- root chain: v1 (2-of-3 root, 1 index), v2 delegates, v3 revokes alice keeping prior releases
    r = [KEYS["root-a"], KEYS["root-b"], KEYS["root-c"]]
    v1 = new_root(
        "vector-registry",
        [k.public_key for k in r],
        [KEYS["index"].public_key],
        root_threshold=2,
        expires=EXPIRES,
    )
    v2 = derive(Root.parse(v1), add_maintainer("alice", [KEYS["alice"].public_key], ["hello", "hello-*"]))
    v2 = derive(Root.parse(v2), add_maintainer("bob", [KEYS["bob"].public_key], ["other"]), bump=False)
    v3 = derive(
        Root.parse(v2), revoke(KEYS["alice"].key_id, now=T0 + timedelta(days=100), keep_prior_releases=True)
    )
    for n, data in ((1, v1), (2, v2), (3, v3)):
        files[f"root/{n}.root.json"] = data
        for key in r[:2]:
            files[f"root/{n}.root.json.{key.key_id}.minisig"] = sig(
                key, data, f"registry-root\tregistry:vector-registry\tversion:{n}"
            ).encode()
    files["root/2.root.json.dup.minisig"] = files[f"root/2.root.json.{r[0].key_id}.minisig"]

    def sigs(n: int, keys: list[SecretKey]) -> list[str]:
        return [f"root/{n}.root.json.{k.key_id}.minisig" for k in keys]

    chain2 = [{"root": "root/2.root.json", "signatures": sigs(2, r[:2])}]
    chain3 = [*chain2, {"root": "root/3.root.json", "signatures": sigs(3, r[:2])}]
    cases += [
        {
            "name": "root: self-signed version 1",
            "kind": "root-self",
            "root": "root/1.root.json",
            "signatures": sigs(1, r[:2]),
            "now": NOW,
            "expect": "ok",
            "final_version": 1,
        },
        {
            "name": "root: version 1 with one of two signatures",
            "kind": "root-self",
            "root": "root/1.root.json",
            "signatures": sigs(1, r[:1]),
            "now": NOW,
            "expect": "threshold-not-met",
        },
        {
            "name": "root: chain 1-2-3",
            "kind": "root-chain",
            "trusted": "root/1.root.json",
            "chain": chain3,
            "now": NOW,
            "expect": "ok",
            "final_version": 3,
        },
        {
            "name": "root: chain skipping version 2",
            "kind": "root-chain",
            "trusted": "root/1.root.json",
            "chain": chain3[1:],
            "now": NOW,
            "expect": "root-version",
        },
        {
            "name": "root: duplicated signature counts once",
            "kind": "root-chain",
            "trusted": "root/1.root.json",
            "chain": [
                {"root": "root/2.root.json", "signatures": [*sigs(2, r[:1]), "root/2.root.json.dup.minisig"]}
            ],
            "now": NOW,
            "expect": "threshold-not-met",
        },
        {
            "name": "root: expired final version",
            "kind": "root-chain",
            "trusted": "root/1.root.json",
            "chain": chain2,
            "now": "2036-01-01T00:00:00Z",
            "expect": "root-expired",
        },
    ]

    # ---- releases
    manifest = b'[plugin]\nname = "hello"\nversion = "1.0.0"\n\n[artifact]\nfile = "hello.wasm"\nsize = 8\n'
    files["release/plugin.toml"] = manifest
    comment = release_trusted_comment("hello", "1.0.0", timestamp=int(T0.timestamp()))
    files["release/plugin.toml.minisig"] = sig(KEYS["alice"], manifest, comment).encode()
    files["release/plugin.toml.bob.minisig"] = sig(KEYS["bob"], manifest, comment).encode()
    before, after = "2026-03-01T00:00:00Z", "2026-05-01T00:00:00Z"  # alice revoked at 2026-04-11
    for name, chain, signature, published, expect in [
        ("release: delegated maintainer", chain2, "release/plugin.toml.minisig", None, "ok"),
        (
            "release: maintainer outside delegation",
            chain2,
            "release/plugin.toml.bob.minisig",
            None,
            "unauthorized-signer",
        ),
        (
            "release: revoked key, no publication time",
            chain3,
            "release/plugin.toml.minisig",
            None,
            "revoked-key",
        ),
        ("release: revoked key, published before", chain3, "release/plugin.toml.minisig", before, "ok"),
        (
            "release: revoked key, published after",
            chain3,
            "release/plugin.toml.minisig",
            after,
            "revoked-key",
        ),
    ]:
        cases.append(
            {
                "name": name,
                "kind": "release",
                "trusted": "root/1.root.json",
                "chain": chain,
                "plugin": "hello",
                "manifest": "release/plugin.toml",
                "signatures": [signature],
                "published_at": published,
                "now": NOW,
                "expect": expect,
            }
        )
    doc = {"description": "registry-tool trust test vectors; see docs/trust.md#test-vectors", "cases": cases}
    files["cases.json"] = (json.dumps(doc, indent=2) + "\n").encode()
    return files


def main() -> None:
    for rel, data in build().items():
        path = HERE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


if __name__ == "__main__":
    main()
