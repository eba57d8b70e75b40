"""`root sign` signs only a valid next step, and shows what it changes before it signs.

A root signature covers bytes, not a file name: a document saying version 2 signed as
3.root.json is a valid version 2 for any mirror to serve (a fork from root 1).  And what a signer
is shown is the summary `root verify` and `ci check` show for the same step (trust.summary).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from registry_tool.signing import SecretKey
from registry_tool.signing.release import signature_paths
from registry_tool.trust import Root
from registry_tool.trust.editing import (
    RootEditError,
    add_maintainer,
    dump_root,
    edit_root_dir,
    init_root_dir,
    new_root,
    review_root_version,
    revoke,
    sign_root_dir,
    verify_root_dir,
)
from registry_tool.trust.summary import root_changes

Doc = dict[str, Any]


@pytest.fixture
def root_dir(tmp_path: Path, k: dict[str, SecretKey], now: datetime) -> Path:
    """root/1 (root r1, index ix) and root/2 (alice: m1 -> hello, hello-*), both signed by r1."""
    root = tmp_path / "root"
    init_root_dir(
        root, new_root("demo", [k["r1"].public_key], [k["ix"].public_key], expires=now + timedelta(days=365))
    )
    sign_root_dir(root, k["r1"], now=now)
    edit_root_dir(root, add_maintainer("alice", [k["m1"].public_key], ["hello", "hello-*"]), now=now)
    sign_root_dir(root, k["r1"], now=now)
    assert verify_root_dir(root, now).version == 2
    return root


def _write_v3(root_dir: Path, edit: Any, *, version: int = 3) -> Path:
    doc: Doc = json.loads((root_dir / "2.root.json").read_bytes())
    doc["version"] = version
    edit(doc)
    path = root_dir / "3.root.json"
    path.write_bytes(dump_root(doc))
    return path


def test_a_document_of_another_version_is_not_signed(
    root_dir: Path, k: dict[str, SecretKey], now: datetime
) -> None:
    """The fork of finding 2: 3.root.json holds a "version": 2 that adds the attacker's root key."""

    def fork(doc: Doc) -> None:
        doc["keys"][k["x"].key_id] = {"public_key": k["x"].public_key.to_base64()}
        doc["roles"]["root"]["keyids"].append(k["x"].key_id)

    path = _write_v3(root_dir, fork, version=2)
    with pytest.raises(RootEditError, match="holds root version 2, not 3"):
        sign_root_dir(root_dir, k["r1"], now=now)
    assert signature_paths(path) == []


def _impostor_of_m1(doc: Doc, k: dict[str, SecretKey]) -> None:
    impostor = SecretKey.from_seed(b"\x66" * 32, k["m1"].keynum)
    doc["keys"][impostor.key_id]["public_key"] = impostor.public_key.to_base64()


@pytest.mark.parametrize("case", ["key-swap", "wider-revocation", "renamed"])
def test_an_invalid_next_step_is_not_signed(
    root_dir: Path, k: dict[str, SecretKey], now: datetime, case: str
) -> None:
    def edit(doc: Doc) -> None:
        if case == "key-swap":
            _impostor_of_m1(doc, k)
        elif case == "wider-revocation":
            revoke(k["m1"].key_id, now=now, keep_prior_releases=True)(doc)
            doc["revoked"][0]["plugins"] = ["*"]
        else:
            doc["registry"] = "other"

    path = _write_v3(root_dir, edit)
    with pytest.raises(RootEditError, match=r"not a valid next step after version 2: \[root-continuity\]"):
        sign_root_dir(root_dir, k["r1"], now=now)
    assert signature_paths(path) == []


def test_the_step_is_judged_against_an_authentic_previous_version(
    root_dir: Path, k: dict[str, SecretKey], now: datetime
) -> None:
    """A planted 2.root.json (the summary would read against it) makes the signer stop."""
    v2 = root_dir / "2.root.json"
    doc = json.loads(v2.read_bytes())
    doc["keys"][k["x"].key_id] = {"public_key": k["x"].public_key.to_base64()}
    doc["roles"]["root"]["keyids"].append(k["x"].key_id)
    v2.write_bytes(dump_root(doc))
    _write_v3(root_dir, lambda d: None)
    with pytest.raises(RootEditError, match=r"version 2 does not verify: \[bad-signature\]"):
        sign_root_dir(root_dir, k["r1"], now=now)


def test_a_revocation_dated_ahead_is_not_signed(
    root_dir: Path, k: dict[str, SecretKey], now: datetime
) -> None:
    """Until revoked_at the revoked key still signs what the revocation keeps: no future dates."""
    ahead = now + timedelta(days=30)
    _write_v3(root_dir, revoke(k["m1"].key_id, now=ahead, keep_prior_releases=True))
    with pytest.raises(RootEditError, match="IN THE FUTURE"):
        sign_root_dir(root_dir, k["r1"], now=now)
    assert sign_root_dir(root_dir, k["r1"], now=ahead).is_file()


def test_a_valid_step_is_signed_with_its_changes(
    root_dir: Path, k: dict[str, SecretKey], now: datetime
) -> None:
    edit_root_dir(root_dir, revoke(k["m1"].key_id, now=now, keep_prior_releases=True, reason="lost"), now=now)
    review = review_root_version(root_dir, now=now)
    prev, new = (
        Root.parse((root_dir / "2.root.json").read_bytes()),
        Root.parse((root_dir / "3.root.json").read_bytes()),
    )
    assert review.changes == root_changes(prev, new, now=now)
    assert any(
        "releases of hello, hello-* published before then stay valid; reason 'lost'" in c
        for c in review.changes
    )
    sign_root_dir(root_dir, k["r1"], reviewed=review)
    assert verify_root_dir(root_dir, now).version == 3


def test_editing_refuses_a_version_no_one_could_sign(
    root_dir: Path, k: dict[str, SecretKey], now: datetime
) -> None:
    """A key added and revoked within one unsigned version: the revocation names plugins the
    version before never delegated to it."""
    edit_root_dir(root_dir, add_maintainer("bob", [k["m2"].public_key], ["other"]), now=now)
    with pytest.raises(RootEditError, match="did not delegate to it"):
        edit_root_dir(root_dir, revoke(k["m2"].key_id, now=now, keep_prior_releases=True), now=now)


# --------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def cli() -> object:
    from registry_tool import _cli

    if not _cli.app.registered_commands:
        _cli._register_areas()
    return _cli.app


def _run(cli: object, *args: str | Path, code: int = 0) -> Any:
    result = CliRunner().invoke(cli, [str(a) for a in args])  # type: ignore[arg-type]
    assert result.exit_code == code, (result.exit_code, result.output)
    return result


def test_cli_shows_the_changes_before_it_loads_the_key(cli: object, tmp_path: Path) -> None:
    root = tmp_path / "root"
    _run(
        cli,
        "root",
        "init",
        "--registry",
        "demo",
        "--dir",
        root,
        "--generate-keys",
        tmp_path / "keys",
        "--unencrypted",
    )
    _run(cli, "root", "sign", "--key", tmp_path / "keys" / "root-1.key", "--dir", root)
    for name in ("alice", "bob"):
        _run(cli, "key", "generate", tmp_path / name, "--unencrypted")
    pubkeys = ["--pubkey", tmp_path / "alice.pub", "--pubkey", tmp_path / "bob.pub"]
    _run(
        cli,
        "root",
        "add-maintainer",
        "alice",
        *pubkeys,
        "--plugin",
        "hello",
        "--threshold",
        "2",
        "--dir",
        root,
    )

    # A key file that does not exist: the command fails at loading it, after the summary.
    failed = _run(cli, "root", "sign", "--key", tmp_path / "missing.key", "--dir", root, code=2)
    assert "changes against version 1" in failed.stderr
    assert "maintainer 'alice' added" in failed.stderr
    assert "plugin threshold 'hello': 1 -> 2" in failed.stderr
    assert signature_paths(root / "2.root.json") == []

    signed = _run(
        cli, "root", "sign", "--key", tmp_path / "keys" / "root-1.key", "--dir", root, "--format", "json"
    )
    changes = json.loads(signed.stdout)["results"][0]["data"]["changes"]
    for line in changes:
        assert line in signed.stderr
    alice = Root.parse((root / "2.root.json").read_bytes()).maintainers["alice"].keys[0]
    assert f"key {alice.key_id} ({alice.to_base64()}) added" in changes

    # root verify shows the same lines for the newest step, and the whole state.
    data = json.loads(_run(cli, "root", "verify", "--dir", root, "--format", "json").stdout)["results"][0][
        "data"
    ]
    assert data["changes"] == changes and data["changes_from"] == 1
    assert data["plugin_thresholds"] == {"hello": 2}
    assert data["keys"][alice.key_id] == alice.to_base64()
    text = _run(cli, "root", "verify", "--dir", root).stdout
    assert all(line in text for line in changes)

    _run(cli, "key", "generate", tmp_path / "carol", "--unencrypted")
    _run(
        cli,
        "root",
        "add-maintainer",
        "carol",
        "--pubkey",
        tmp_path / "carol.pub",
        "--plugin",
        "world*",
        "--dir",
        root,
    )
    _run(cli, "root", "sign", "--key", tmp_path / "keys" / "root-1.key", "--dir", root)
    key_id = Root.parse((root / "3.root.json").read_bytes()).maintainers["carol"].keys[0].key_id
    _run(cli, "root", "revoke", key_id, "--keep-prior-releases", "--reason", "laptop lost", "--dir", root)
    signed = _run(cli, "root", "sign", "--key", tmp_path / "keys" / "root-1.key", "--dir", root)
    text = _run(cli, "root", "verify", "--dir", root).stdout
    revoked = f"key {key_id} revoked in version 4 as of "
    assert revoked in signed.stderr and revoked in text
    assert "releases of world* published before then stay valid; reason 'laptop lost'" in text


def test_cli_refuses_to_sign_the_fork(cli: object, tmp_path: Path) -> None:
    root = tmp_path / "root"
    _run(
        cli,
        "root",
        "init",
        "--registry",
        "demo",
        "--dir",
        root,
        "--generate-keys",
        tmp_path / "keys",
        "--unencrypted",
    )
    _run(cli, "root", "sign", "--key", tmp_path / "keys" / "root-1.key", "--dir", root)
    _run(cli, "root", "renew", "--dir", root)
    _run(cli, "root", "sign", "--key", tmp_path / "keys" / "root-1.key", "--dir", root)
    (root / "3.root.json").write_bytes((root / "2.root.json").read_bytes())
    failed = _run(cli, "root", "sign", "--key", tmp_path / "keys" / "root-1.key", "--dir", root, code=2)
    assert "holds root version 2, not 3" in failed.stderr
    assert signature_paths(root / "3.root.json") == []


def test_root_sign_never_writes_through_a_planted_link(
    root_dir: Path, k: dict[str, SecretKey], now: datetime, tmp_path: Path
) -> None:
    """A pull request's link at a root signature's name made the owner's `root sign` overwrite the
    link's target, any file the owner can write."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    edit_root_dir(root_dir, add_maintainer("bob", [k["x"].public_key], ["other"]), now=now)
    planted = root_dir / f"3.root.json.{k['r1'].key_id}.minisig"
    planted.symlink_to(victim)
    sign_root_dir(root_dir, k["r1"], now=now)
    assert victim.read_text() == "precious\n"
    assert not planted.is_symlink() and verify_root_dir(root_dir, now).version == 3


def test_a_root_key_the_version_revokes_cannot_sign_it(
    tmp_path: Path, k: dict[str, SecretKey], now: datetime
) -> None:
    """A stolen root key out-voted by the others: its signature on its own revocation counts for nothing."""
    root = tmp_path / "root"
    keys = [k["r1"].public_key, k["r2"].public_key, k["r3"].public_key]
    init_root_dir(
        root,
        new_root("demo", keys, [k["ix"].public_key], root_threshold=2, expires=now + timedelta(days=365)),
    )
    for signer in ("r1", "r2"):
        sign_root_dir(root, k[signer], now=now)
    edit_root_dir(root, revoke(k["r3"].key_id, now=now, keep_prior_releases=False), now=now)
    with pytest.raises(RootEditError, match="revoked by root version 2"):
        sign_root_dir(root, k["r3"], now=now)
    assert not list(root.glob(f"2.root.json.{k['r3'].key_id}.minisig"))
    for signer in ("r1", "r2"):
        sign_root_dir(root, k[signer], now=now)
    assert verify_root_dir(root, now).version == 2
