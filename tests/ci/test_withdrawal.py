"""Withdrawing what a stolen key signed: the owners revoke the key and remove its releases.

A published release removed whole is a withdrawal (a warning) only when its signatures no longer
count under the newest root; anything else about a published release stays immutable.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import pytest

from registry_tool.report import Severity
from registry_tool.trust.editing import edit_root_dir, revoke, sign_root_dir

from .conftest import IndexRepo, git
from .test_check_e2e import A, errors


def _revoke_alice(index_repo: IndexRepo, keep_prior: bool) -> None:
    root_dir = index_repo.index / "root"
    edit_root_dir(
        root_dir,
        revoke(
            index_repo.keys.alice.key_id,
            now=datetime.now(UTC),
            keep_prior_releases=keep_prior,
            reason="stolen",
        ),
    )
    sign_root_dir(root_dir, index_repo.keys.root)


def test_a_release_a_revoked_key_signed_can_be_removed(index_repo: IndexRepo) -> None:
    _revoke_alice(index_repo, keep_prior=False)
    shutil.rmtree(index_repo.index / "plugins" / "alpha" / "1.0.0")
    index_repo.commit()
    report = index_repo.check()
    assert report.ok, [f.text() for f in errors(report)]
    (withdrawn,) = [f for r in report.results for f in r.findings if f.rule == "release-withdrawn"]
    assert withdrawn.severity is Severity.warning and withdrawn.file == f"{A}/1.0.0/plugin.toml"
    assert "revoked" in withdrawn.message


@pytest.mark.parametrize("revocation", ["none", "keeps prior releases"])
def test_a_release_whose_signature_still_counts_stays_immutable(
    index_repo: IndexRepo, revocation: str
) -> None:
    if revocation != "none":
        _revoke_alice(index_repo, keep_prior=True)
    shutil.rmtree(index_repo.index / "plugins" / "alpha" / "1.0.0")
    index_repo.commit()
    assert {f.rule for f in errors(index_repo.check())} == {"release-removed"}


def test_part_of_a_withdrawn_release_cannot_go(index_repo: IndexRepo) -> None:
    _revoke_alice(index_repo, keep_prior=False)
    (index_repo.index / "plugins" / "alpha" / "1.0.0" / "plugin.toml.minisig").unlink()
    index_repo.commit()
    assert "release-removed" in {f.rule for f in errors(index_repo.check())}


def test_a_withdrawal_that_strands_a_dependent_is_refused(index_repo: IndexRepo) -> None:
    """beta 1.1.0 (bob's, still valid) needs alpha ^1.0: with alpha 1.0.0 withdrawn, every later
    build refused beta 1.1.0, which cannot go either (its signature counts)."""
    index_repo.release("beta", "1.1.0", signer=index_repo.keys.bob, dependencies={"alpha": "^1.0"})
    index_repo.commit("beta needs alpha")
    git(index_repo.path, "update-ref", "refs/remotes/origin/main", "HEAD")
    _revoke_alice(index_repo, keep_prior=False)
    shutil.rmtree(index_repo.index / "plugins" / "alpha" / "1.0.0")
    index_repo.commit()
    (found,) = [f for f in errors(index_repo.check()) if f.rule == "release-removed"]
    assert "beta 1.1.0 (needs alpha ^1.0)" in found.message


def test_an_expired_root_makes_nothing_withdrawable(index_repo: IndexRepo) -> None:
    """Every release fails under an expired root: that says nothing of its signatures, so removing
    one stays a removal (the build would refuse it once the root is renewed)."""
    from datetime import timedelta

    shutil.rmtree(index_repo.index / "plugins" / "alpha" / "1.0.0")
    index_repo.commit()
    report = index_repo.check(now=datetime.now(UTC) + timedelta(days=3650))
    assert "release-removed" in {f.rule for f in errors(report)}
    assert not [f for r in report.results for f in r.findings if f.rule == "release-withdrawn"]
