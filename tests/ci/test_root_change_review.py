"""What `ci check` says about a root change, and the root steps it refuses.

The root-change warning is trust.summary.root_changes (the lines `root sign` showed each signer
and `root verify` shows), every step of a multi-version change is described, a key id rebound to
another public key is refused and shown, and a revocation dated ahead is refused.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from registry_tool.report import Finding, Report
from registry_tool.signing import SecretKey, sign_bytes
from registry_tool.trust import Root
from registry_tool.trust.editing import (
    add_maintainer,
    dump_root,
    edit_root_dir,
    renew,
    revoke,
    set_plugin_threshold,
    sign_root_dir,
)
from registry_tool.trust.summary import root_changes

from .conftest import IndexRepo


def only_rule(report: Report, rule: str) -> list[Finding]:
    return [f for _, f in report.findings() if f.rule == rule]


def _root(index_repo: IndexRepo, version: int) -> Root:
    return Root.parse((index_repo.index / "root" / f"{version}.root.json").read_bytes())


def test_the_warning_is_the_shared_summary(index_repo: IndexRepo) -> None:
    keys, root_dir = index_repo.keys, index_repo.index / "root"
    edit_root_dir(root_dir, add_maintainer("carol", [keys.mallory.public_key], ["gamma", "delta*"]))
    edit_root_dir(root_dir, set_plugin_threshold("gamma", 1))
    edit_root_dir(
        root_dir, revoke(keys.bob.key_id, now=datetime.now(UTC), keep_prior_releases=True, reason="lost")
    )
    sign_root_dir(root_dir, keys.root)
    index_repo.commit()
    report = index_repo.check()
    (change,) = only_rule(report, "root-change")
    expected = "; ".join(root_changes(_root(index_repo, 2), _root(index_repo, 3)))
    assert change.message == f"ROOT CHANGE: root 2 -> 3: {expected}"
    assert f"key {keys.bob.key_id} revoked in version 3 as of " in change.message
    assert "releases of beta published before then stay valid; reason 'lost'" in change.message
    assert f"key {keys.mallory.key_id} ({keys.mallory.public_key.to_base64()}) added" in change.message


def test_every_step_of_a_multi_version_change_is_described(index_repo: IndexRepo) -> None:
    """Version 3 adds a maintainer, version 4 only renews: the warning must not show version 4 alone."""
    keys, root_dir = index_repo.keys, index_repo.index / "root"
    edit_root_dir(root_dir, add_maintainer("carol", [keys.mallory.public_key], ["gamma"]))
    sign_root_dir(root_dir, keys.root)
    edit_root_dir(root_dir, renew(), expires=datetime.now(UTC) + timedelta(days=200))
    sign_root_dir(root_dir, keys.root)
    index_repo.commit()
    report = index_repo.check()
    assert report.ok, [f.text() for _, f in report.findings()]
    (change,) = only_rule(report, "root-change")
    assert change.message.startswith("ROOT CHANGE: root 2 -> 4: [version 3] ")
    assert "maintainer 'carol' added" in change.message
    assert "[version 4] expires " in change.message


def test_a_key_id_rebound_to_another_key_is_refused_and_shown(index_repo: IndexRepo) -> None:
    """Finding 1: alice's key id, the attacker's public key; signed by the root key (as a careless
    owner would with plain minisign), the step is still refused."""
    keys, root_dir = index_repo.keys, index_repo.index / "root"
    impostor = SecretKey.from_seed(b"\x66" * 32, keys.alice.keynum)
    doc = json.loads((root_dir / "2.root.json").read_bytes())
    doc["version"] = 3
    doc["keys"][keys.alice.key_id]["public_key"] = impostor.public_key.to_base64()
    data = dump_root(doc)
    (root_dir / "3.root.json").write_bytes(data)
    for key in (keys.root, impostor):
        (root_dir / f"3.root.json.{key.key_id}.minisig").write_text(
            sign_bytes(key, data, trusted_comment="v3")
        )
    index_repo.commit()
    report = index_repo.check()
    assert not report.ok
    (bad,) = only_rule(report, "root-signature")
    assert "[root-continuity]" in bad.message and f"binds key id {keys.alice.key_id}" in bad.message
    (change,) = only_rule(report, "root-change")
    assert "(INVALID)" in change.message
    assert f"KEY ID {keys.alice.key_id} NOW NAMES ANOTHER PUBLIC KEY" in change.message


def test_a_revocation_dated_ahead_is_refused(index_repo: IndexRepo) -> None:
    """Finding 3: the chain accepts a revoked_at up to the version's expiry; until then the key
    still signs what the revocation keeps, so a pull request may not bring one."""
    keys, root_dir = index_repo.keys, index_repo.index / "root"
    ahead = datetime.now(UTC) + timedelta(days=2)
    edit_root_dir(root_dir, revoke(keys.bob.key_id, now=ahead, keep_prior_releases=True))
    sign_root_dir(root_dir, keys.root)  # the library signs in the caller's time; `root sign` refuses
    index_repo.commit()
    report = index_repo.check()
    assert not report.ok
    (bad,) = [f for f in only_rule(report, "root-signature") if "ahead" in f.message]
    assert bad.file == "index/root/3.root.json" and "REVOKED_AT IS IN THE FUTURE" in bad.message
    (change,) = only_rule(report, "root-change")
    assert "REVOKED_AT IS IN THE FUTURE" in change.message
