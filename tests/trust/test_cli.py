"""The CLI end to end: a maintainer gets delegated, signs a release, anyone verifies it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result


@pytest.fixture(scope="session")
def cli() -> object:
    from registry_tool import _cli

    if not _cli.app.registered_commands:
        _cli._register_areas()
    return _cli.app


def run(cli: object, *args: str | Path, env: dict[str, str] | None = None, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env)  # type: ignore[arg-type]
    assert result.exit_code == code, (result.exit_code, result.output)
    return result


def as_json(result: Result) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def init_root(cli: object, root: Path, keys: Path, *extra: str, code: int = 0) -> Result:
    """``root init`` of registry "demo" into ``root``, unencrypted keys generated into ``keys``."""
    return run(
        cli,
        "root",
        "init",
        "--registry",
        "demo",
        "--dir",
        root,
        "--generate-keys",
        keys,
        "--unencrypted",
        *extra,
        code=code,
    )


@pytest.fixture
def registry(tmp_path: Path, cli: object) -> Path:
    """root/1 with a 2-of-2 root signed by both keys; generated keys in keys/."""
    root = tmp_path / "index" / "root"
    init_root(cli, root, tmp_path / "keys", "--root-threshold", "2")
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == [
        "index.key",
        "index.pub",
        "root-1.key",
        "root-1.pub",
        "root-2.key",
        "root-2.pub",
    ]
    run(cli, "root", "verify", "--dir", root, code=1)  # unsigned: not valid yet
    run(cli, "root", "sign", "--key", tmp_path / "keys" / "root-1.key", "--dir", root)
    run(cli, "root", "verify", "--dir", root, code=1)  # 1 of 2
    run(cli, "root", "sign", "--key", tmp_path / "keys" / "root-2.key", "--dir", root)
    run(cli, "root", "verify", "--dir", root)
    return tmp_path


def sign_root(cli: object, base: Path) -> None:
    for name in ("root-1", "root-2"):
        run(cli, "root", "sign", "--key", base / "keys" / f"{name}.key", "--dir", base / "index" / "root")


def add_maintainer(cli: object, base: Path, plugin: str) -> None:
    """Delegate ``plugin`` (a name or prefix pattern) to alice's key in a new, unsigned root version."""
    run(
        cli,
        "root",
        "add-maintainer",
        "alice",
        "--pubkey",
        base / "alice.pub",
        "--plugin",
        plugin,
        "--dir",
        base / "index" / "root",
    )


def delegate_alice(cli: object, base: Path, plugin: str) -> None:
    """Generate alice's key, delegate ``plugin`` to it and sign the new root version with both root keys."""
    run(cli, "key", "generate", base / "alice", "--unencrypted")
    add_maintainer(cli, base, plugin)
    sign_root(cli, base)


@pytest.fixture
def release(registry: Path) -> Path:
    d = registry / "index" / "plugins" / "hello" / "1.0.0"
    d.mkdir(parents=True)
    (d / "hello.wasm").write_bytes(b"\x00asm\x01\x00\x00\x00")
    (d / "plugin.toml").write_text(
        '# hello\n[plugin]\nname = "hello"\nversion = "1.0.0"\n\n[artifact]\nfile = "hello.wasm"\n'
    )
    return d


def test_key_generate_and_show(cli: object, tmp_path: Path) -> None:
    out = run(cli, "key", "generate", tmp_path / "alice", "--unencrypted").stdout
    key_id = out.split()[2]
    assert len(key_id) == 16
    assert (tmp_path / "alice.key").stat().st_mode & 0o777 == 0o600
    for target in ("alice.pub", "alice.key"):
        assert key_id in run(cli, "key", "show", tmp_path / target).stdout
    b64 = (tmp_path / "alice.pub").read_text().split("\n")[1]
    assert key_id in run(cli, "key", "show", b64).stdout
    run(cli, "key", "generate", tmp_path / "alice", "--unencrypted", code=2)  # refuses to overwrite
    run(cli, "key", "generate", tmp_path / "alice", "--unencrypted", "--force")


def test_passphrase_is_never_an_argument(cli: object, tmp_path: Path) -> None:
    run(cli, "key", "generate", tmp_path / "a", "--passphrase", "x", code=2)
    run(cli, "key", "generate", tmp_path / "a", "--passphrase-env", "NOT_SET_ANYWHERE", code=2)


@pytest.mark.slow
def test_encrypted_key_via_env(cli: object, tmp_path: Path, minisign: str) -> None:
    """Default keys are scrypt-encrypted with minisign's parameters; the passphrase comes from an env var."""
    env = {"RT_PASS": "hunter2"}
    run(cli, "key", "generate", tmp_path / "enc", "--passphrase-env", "RT_PASS", env=env)
    assert "encrypted" in (tmp_path / "enc.key").read_text()
    (tmp_path / "f").write_bytes(b"data")
    run(cli, "sign", tmp_path / "f", "--key", tmp_path / "enc.key", "--passphrase-env", "RT_PASS", env=env)
    out = subprocess.run(
        [minisign, "-V", "-p", str(tmp_path / "enc.pub"), "-m", str(tmp_path / "f")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr


def test_sign_and_verify_file(cli: object, tmp_path: Path) -> None:
    run(cli, "key", "generate", tmp_path / "k", "--unencrypted")
    f = tmp_path / "registry.json"
    f.write_bytes(b"{}")
    run(cli, "sign", f, "--key", tmp_path / "k.key", "--trusted-comment", "hello world")
    res = as_json(run(cli, "verify", f, "--pubkey", tmp_path / "k.pub", "--format", "json"))
    assert res["ok"] and res["results"][0]["data"]["trusted_comment"] == "hello world"
    (tmp_path / "copy.sig").write_bytes((tmp_path / "registry.json.minisig").read_bytes())
    run(cli, "verify", f, "--pubkey", tmp_path / "k.pub", "--sig", tmp_path / "copy.sig")
    f.write_bytes(b"{ }")
    res = as_json(run(cli, "verify", f, "--pubkey", tmp_path / "k.pub", "--format", "json", code=1))
    assert res["results"][0]["findings"][0]["rule"] == "bad-signature"
    run(cli, "verify", f, code=2)  # neither --pubkey nor --root
    run(cli, "verify", tmp_path / "missing", "--pubkey", tmp_path / "k.pub", code=2)


def test_maintainer_flow(cli: object, registry: Path, release: Path, minisign: str) -> None:
    root = registry / "index" / "root"
    run(cli, "key", "generate", registry / "alice", "--unencrypted")
    add_maintainer(cli, registry, "hello")
    # a second edit before signing amends the pending version instead of adding another
    add_maintainer(cli, registry, "hello-*")
    assert sorted(p.name for p in root.glob("*.root.json")) == ["1.root.json", "2.root.json"]
    run(cli, "root", "verify", "--dir", root, code=1)
    sign_root(cli, registry)
    info = as_json(run(cli, "root", "verify", "--dir", root, "--format", "json"))["results"][0]["data"]
    assert info["version"] == 2 and info["maintainers"]["alice"]["plugins"] == ["hello", "hello-*"]

    run(cli, "sign", release, "--key", registry / "alice.key")
    assert 'sha256 = "' in (release / "plugin.toml").read_text()
    res = as_json(run(cli, "verify", release, "--root", root, "--format", "json"))
    assert res["results"][0]["data"]["plugin"] == "hello"
    out = subprocess.run(
        [minisign, "-V", "-p", str(registry / "alice.pub"), "-m", str(release / "plugin.toml")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and "plugin:hello" in out.stdout

    (release / "hello.wasm").write_bytes(b"\x00asm\x01\x00\x00\x01")
    res = as_json(run(cli, "verify", release, "--root", root, "--format", "json", code=1))
    assert res["results"][0]["findings"][0]["rule"] == "artifact-mismatch"


def test_revoke_and_rotate(cli: object, registry: Path, release: Path) -> None:
    root = registry / "index" / "root"
    delegate_alice(cli, registry, "hello")
    key_id = run(cli, "key", "show", registry / "alice.pub").stdout.split()[2]
    run(cli, "sign", release, "--key", registry / "alice.key")
    run(cli, "verify", release, "--root", root)

    run(cli, "root", "revoke", key_id, "--keep-prior-releases", "--reason", "laptop lost", "--dir", root)
    sign_root(cli, registry)
    res = as_json(run(cli, "verify", release, "--root", root, "--format", "json", code=1))
    assert res["results"][0]["findings"][0]["rule"] == "revoked-key"
    run(cli, "verify", release, "--root", root, "--published-at", "2020-01-01T00:00:00Z")

    run(cli, "key", "generate", registry / "index2", "--unencrypted")
    old_index = run(cli, "key", "show", registry / "keys" / "index.pub").stdout.split()[2]
    run(
        cli,
        "root",
        "rotate-keys",
        "--role",
        "index",
        "--add",
        registry / "index2.pub",
        "--remove",
        old_index,
        "--dir",
        root,
    )
    sign_root(cli, registry)
    data = as_json(run(cli, "root", "verify", "--dir", root, "--format", "json"))["results"][0]["data"]
    assert data["version"] == 4 and old_index not in data["roles"]["index"]["keyids"]
    assert data["revoked"] == [key_id]

    run(cli, "root", "renew", "--expires", "30d", "--dir", root)
    sign_root(cli, registry)
    res = as_json(run(cli, "root", "verify", "--dir", root, "--format", "json"))
    assert res["results"][0]["findings"][0]["rule"] == "root-expires-soon"  # a warning, still ok
    # starting from a pinned version works too
    run(cli, "root", "verify", "--dir", root, "--trusted", root / "3.root.json")


def test_root_sign_refuses_non_root_key(cli: object, registry: Path) -> None:
    run(
        cli,
        "root",
        "sign",
        "--key",
        registry / "keys" / "index.key",
        "--dir",
        registry / "index" / "root",
        code=2,
    )


def test_root_edit_errors(cli: object, registry: Path) -> None:
    root = registry / "index" / "root"
    run(cli, "root", "revoke", "0123456789ABCDEF", "--dir", root, code=2)
    run(cli, "root", "rotate-keys", "--role", "targets", "--dir", root, code=2)
    run(cli, "root", "rotate-keys", "--role", "root", "--threshold", "3", "--dir", root, code=2)
    init_root(cli, root, registry / "k2", code=2)
    (root / "2.root.json").unlink(missing_ok=True)
    (root / "3.root.json").write_text("{}")
    run(cli, "root", "verify", "--dir", root, code=1)  # gap: version 2 missing


def test_release_served_under_another_name(cli: object, registry: Path, release: Path) -> None:
    """A validly signed release of `hello` copied to plugins/hello-evil/ does not verify as hello-evil."""
    import shutil

    root = registry / "index" / "root"
    delegate_alice(cli, registry, "hello*")
    run(cli, "sign", release, "--key", registry / "alice.key")
    copy = registry / "index" / "plugins" / "hello-evil" / "1.0.0"
    shutil.copytree(release, copy)
    res = as_json(run(cli, "verify", copy, "--root", root, "--format", "json", code=1))
    assert res["results"][0]["findings"][0]["rule"] == "plugin-name-mismatch"
    run(cli, "verify", release / "plugin.toml", "--root", root)


def test_release_in_wrong_version_directory(cli: object, registry: Path, release: Path) -> None:
    import shutil

    root = registry / "index" / "root"
    delegate_alice(cli, registry, "hello")
    run(cli, "sign", release / "plugin.toml", "--key", registry / "alice.key")
    moved = release.parent / "2.0.0"
    shutil.copytree(release, moved)
    res = as_json(run(cli, "verify", moved, "--root", root, "--format", "json", code=1))
    assert res["results"][0]["findings"][0]["rule"] == "release-location"


def test_verify_picks_the_keyed_signature(cli: object, tmp_path: Path) -> None:
    run(cli, "key", "generate", tmp_path / "a", "--unencrypted")
    run(cli, "key", "generate", tmp_path / "b", "--unencrypted")
    f = tmp_path / "file.txt"
    f.write_text("x")
    run(cli, "sign", f, "--key", tmp_path / "a.key")
    key_b = run(cli, "key", "show", tmp_path / "b.pub").stdout.split()[2]
    run(cli, "sign", f, "--key", tmp_path / "b.key")  # a.key's signature is there: writes the keyed file
    assert (tmp_path / f"file.txt.{key_b}.minisig").is_file()
    run(cli, "verify", f, "--pubkey", tmp_path / "a.pub")
    run(cli, "verify", f, "--pubkey", tmp_path / "b.pub")


def test_help_for_every_command(cli: object) -> None:
    for args in (
        ["key", "--help"],
        ["root", "--help"],
        ["sign", "--help"],
        ["verify", "--help"],
        ["root", "init", "--help"],
        ["root", "revoke", "--help"],
        ["key", "generate", "--help"],
    ):
        assert "Usage" in run(cli, *args).stdout


def test_root_signed_with_plain_minisign(cli: object, registry: Path, minisign: str) -> None:
    """Root key holders may sign with minisign itself: `minisign -S -x root/N.root.json.<KEYID>.minisig`."""
    root = registry / "index" / "root"
    run(cli, "root", "renew", "--dir", root)
    for name in ("root-1", "root-2"):
        key_id = run(cli, "key", "show", registry / "keys" / f"{name}.pub").stdout.split()[2]
        out = subprocess.run(
            [
                minisign,
                "-S",
                "-s",
                str(registry / "keys" / f"{name}.key"),
                "-m",
                str(root / "2.root.json"),
                "-x",
                str(root / f"2.root.json.{key_id}.minisig"),
            ],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
    assert (
        as_json(run(cli, "root", "verify", "--dir", root, "--format", "json"))["results"][0]["data"][
            "version"
        ]
        == 2
    )


def test_real_process_exit_codes(tmp_path: Path) -> None:
    """The installed entry point: 0 valid, 1 invalid, 2 usage; errors are one paragraph, no traceback."""
    import sys

    from registry_tool.signing import SecretKey, sign_bytes

    key = SecretKey.generate()
    (tmp_path / "k.pub").write_text(key.public_key.to_text())
    (tmp_path / "f").write_bytes(b"data")
    (tmp_path / "f.minisig").write_text(sign_bytes(key, b"data", trusted_comment="c"))

    def rt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "registry_tool", *args], capture_output=True, text=True)

    assert rt("verify", str(tmp_path / "f"), "--pubkey", str(tmp_path / "k.pub")).returncode == 0
    (tmp_path / "f").write_bytes(b"date")
    bad = rt("verify", str(tmp_path / "f"), "--pubkey", str(tmp_path / "k.pub"))
    assert bad.returncode == 1 and "does not match the data" in bad.stdout and "Traceback" not in bad.stderr
    usage = rt("verify", str(tmp_path / "f"))
    assert usage.returncode == 2 and usage.stderr.startswith("error: ") and "Traceback" not in usage.stderr


def test_signed_yank_is_reported(cli: object, registry: Path, release: Path) -> None:
    root = registry / "index" / "root"
    delegate_alice(cli, registry, "hello")
    run(cli, "sign", release, "--key", registry / "alice.key")
    (release / "yank.toml").write_text('[yank]\nname = "hello"\nversion = "1.0.0"\nreason = "CVE-2026-1"\n')
    res = as_json(run(cli, "verify", release, "--root", root, "--format", "json", code=1))
    assert res["results"][0]["findings"][0]["rule"] == "threshold-not-met"  # an unsigned yank is an error
    run(cli, "sign", release, "--yank", "--key", registry / "alice.key")
    res = as_json(run(cli, "verify", release, "--root", root, "--format", "json"))
    assert [f["rule"] for f in res["results"][0]["findings"]] == ["yanked"]


def _second_release(release: Path) -> Path:
    other = release.parent / "1.1.0"
    other.mkdir()
    (other / "hello.wasm").write_bytes(b"\x00asm\x01\x00\x00\x00")
    (other / "plugin.toml").write_text(
        '[plugin]\nname = "hello"\nversion = "1.1.0"\n\n[artifact]\nfile = "hello.wasm"\n'
    )
    return other


def test_verify_every_release_of_an_index(
    cli: object, registry: Path, release: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`verify INDEX --root`: a result per release, one root-chain walk, one parse per manifest."""
    from registry_tool.format import toml
    from registry_tool.trust import check

    root = registry / "index" / "root"
    delegate_alice(cli, registry, "hello")
    other = _second_release(release)
    for folder in (release, other):
        run(cli, "sign", folder, "--key", registry / "alice.key")
    walks: list[Path] = []
    real_walk = check.verify_root_dir
    monkeypatch.setattr(check, "verify_root_dir", lambda d, *a, **k: walks.append(d) or real_walk(d, *a, **k))
    parses: list[str] = []
    real_loads = toml.loads
    monkeypatch.setattr(toml, "loads", lambda s, **k: parses.append(s) or real_loads(s, **k))
    for target in (registry / "index", registry / "index" / "plugins", release.parent):
        walks.clear()
        parses.clear()
        res = as_json(run(cli, "verify", target, "--root", root, "--format", "json"))
        assert [r["data"]["version"] for r in res["results"]] == ["1.0.0", "1.1.0"]
        assert len(walks) == 1
        manifests = [p for p in parses if p.startswith(("# hello", "[plugin]"))]
        assert len(manifests) == 2


def test_verify_all_reports_each_bad_release(cli: object, registry: Path, release: Path) -> None:
    root = registry / "index" / "root"
    delegate_alice(cli, registry, "hello")
    other = _second_release(release)
    for folder in (release, other):
        run(cli, "sign", folder, "--key", registry / "alice.key")
    (other / "hello.wasm").write_bytes(b"\x00asm\x01\x00\x00\x01")
    (release.parent / "2.0.0").mkdir()  # a version folder with no manifest
    res = as_json(run(cli, "verify", registry / "index", "--root", root, "--format", "json", code=1))
    verdicts = {Path(r["subject"]).name: [f["rule"] for f in r["findings"]] for r in res["results"]}
    assert verdicts == {"1.0.0": [], "1.1.0": ["artifact-mismatch"], "2.0.0": ["check-failed"]}
    run(cli, "verify", registry / "index", "--root", root, "--published-at", "2020-01-01T00:00:00Z", code=2)
    run(cli, "verify", registry / "keys", "--root", root, code=2)  # not an index, site or plugin folder


def test_verify_all_with_a_broken_root_chain(cli: object, registry: Path, release: Path) -> None:
    root = registry / "index" / "root"
    delegate_alice(cli, registry, "hello")
    run(cli, "sign", release, "--key", registry / "alice.key")
    (root / "2.root.json").write_bytes((root / "2.root.json").read_bytes().replace(b"alice", b"mallory"))
    res = as_json(run(cli, "verify", registry / "index", "--root", root, "--format", "json", code=1))
    assert [r["subject"] for r in res["results"]] == [str(root)]
    assert res["results"][0]["findings"]


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_root_verify_refuses_a_root_version_that_is_not_a_regular_file(
    cli: object, registry: Path, kind: str
) -> None:
    """root/2.root.json as a directory or FIFO next to a signature file is not 'no version 2'."""
    import os

    root = registry / "index" / "root"
    second = root / "2.root.json"
    if kind == "directory":
        second.mkdir()
    else:
        os.mkfifo(second)
    (root / "2.root.json.minisig").write_text("untrusted comment: x\nRWQ\ntrusted comment: x\nAAAA\n")
    result = run(cli, "root", "verify", "--dir", root, code=1)
    assert "2.root.json is not a regular file" in result.output
