"""Attack: escalations pushed after a maintainer approved the pull request ride on that approval.

The `allow-escalation` label used to survive later pushes.  Approval now names the head commit
(`--allow-escalation-at SHA`, from the label `allow-escalation@<sha32>`): a push makes it stale.
"""

from __future__ import annotations

import pytest

from registry_tool.errors import UsageError
from registry_tool.report import Severity

from .conftest import KEYS_ADD, IndexRepo, git
from .sarif import assert_valid_sarif


def _escalating_release(index_repo: IndexRepo, version: str) -> None:
    index_repo.release("alpha", version, KEYS_ADD, permissions={"keys": True})
    index_repo.commit()


def _error_rules(report: object) -> set[str]:
    return {f.rule for _, f in report.findings() if f.severity is Severity.error}  # type: ignore[attr-defined]


def test_approval_of_the_head_commit_allows_the_escalation(index_repo: IndexRepo) -> None:
    _escalating_release(index_repo, "1.1.0")
    head = git(index_repo.path, "rev-parse", "HEAD").strip()
    report = index_repo.check(allow_escalation_at=head[:32])
    assert report.ok, [f.text() for _, f in report.findings()]
    [escalation] = [f for _, f in report.findings() if f.rule == "permission-escalation"]
    # Named by what approved it, and no fix asking for the approval it has.
    assert "approved for this head commit with --allow-escalation-at" in escalation.message
    assert "nothing to do" in (escalation.fix or "")


def test_push_after_the_approval_voids_it(index_repo: IndexRepo) -> None:
    _escalating_release(index_repo, "1.1.0")
    approved = git(index_repo.path, "rev-parse", "HEAD").strip()
    _escalating_release(index_repo, "1.2.0")  # pushed after the maintainer looked
    report = index_repo.check(allow_escalation_at=approved[:32])
    assert {"permission-escalation", "import-escalation"} <= _error_rules(report)
    stale = [f for _, f in report.findings() if f.rule == "approval-stale"]
    assert stale and approved[:32] in stale[0].message
    uris = {
        r["ruleId"]: r["locations"][0]["physicalLocation"]
        for r in assert_valid_sarif(report)["runs"][0]["results"]
    }
    assert uris["approval-stale"] == {
        "artifactLocation": {"uri": "index/registry.toml"},
        "region": {"startLine": 1},
    }


def test_approval_that_is_not_a_commit_id_is_a_usage_error(index_repo: IndexRepo) -> None:
    """It was a warning and exit 0 when nothing escalated: the option takes 32-40 hex digits."""
    _escalating_release(index_repo, "1.1.0")
    for bogus in ("", "HEAD", "main", "0123", "xyz", "g" * 32):
        with pytest.raises(UsageError, match="names no commit") as err:
            index_repo.check(allow_escalation_at=bogus)
        assert err.value.exit_code == 2


def test_a_short_prefix_of_the_head_commit_approves_nothing(index_repo: IndexRepo) -> None:
    """Attack: the label stays across pushes, so a 12-digit prefix is 48 bits to grind a commit for.

    A new commit sharing the approved commit's first 12 hex digits takes about 2^48 SHA-1 tries
    (hours on one GPU); only 32 digits or more bind the approval.
    """
    _escalating_release(index_repo, "1.1.0")
    head = git(index_repo.path, "rev-parse", "HEAD").strip()
    for prefix in (12, 20, 31):
        with pytest.raises(UsageError) as err:
            index_repo.check(allow_escalation_at=head[:prefix])
        assert head[:32] in (err.value.fix or ""), prefix
    assert index_repo.check(allow_escalation_at=head).ok
