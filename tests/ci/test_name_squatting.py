"""Attack: a new plugin takes a name that passes for an existing one (`validate_emai1`).

Names that fold to the same thing (`-`/`_`), share a UTS #39 confusable skeleton (1/l, 0/o, rn/m)
or are one edit apart are an error, unless the root delegates both names to one maintainer.
"""

from __future__ import annotations

import pytest

from registry_tool.ci.squatting import look_alike, skeleton
from registry_tool.report import Severity

from .conftest import IndexRepo


@pytest.mark.parametrize(
    "squatter",
    [
        "validate-email",
        "validate_emai1",
        "va1idate_email",
        "validate_emial",
        "validate_emails",
        "vaiidate_email",
    ],
)
def test_look_alikes_of_validate_email(squatter: str) -> None:
    assert look_alike(squatter, "validate_email")


@pytest.mark.parametrize(
    ("new", "existing"),
    [
        ("c0unter", "counter"),
        ("rnath_utils", "math_utils"),
        ("adler-32", "adler_32"),
        ("adler32x", "adler32"),
    ],
)
def test_confusable_skeletons_and_near_names(new: str, existing: str) -> None:
    assert look_alike(new, existing)


@pytest.mark.parametrize(
    ("new", "existing"),
    [("json_diff", "json_path"), ("beta", "bets"), ("uppercase", "lowercase"), ("sha256", "sha512")],
)
def test_distinct_names_pass(new: str, existing: str) -> None:
    assert look_alike(new, existing) is None


def test_skeleton_uses_the_unicode_confusables() -> None:
    assert skeleton("Va1idate-emai1") == "validate_email"
    assert skeleton("c0rn") == "com"


def _squatting(report: object) -> list[object]:
    return [
        f
        for _, f in report.findings()  # type: ignore[attr-defined]
        if f.rule == "name-squatting" and f.severity is Severity.error
    ]


def test_pr_squatting_an_existing_plugin_is_refused(index_repo: IndexRepo) -> None:
    index_repo.release("a1pha", "1.0.0", signer=index_repo.keys.mallory)
    index_repo.commit()
    (finding,) = _squatting(index_repo.check())
    assert "'a1pha'" in finding.message and "'alpha'" in finding.message  # type: ignore[attr-defined]
    assert finding.field == "plugin.name"  # type: ignore[attr-defined]


def test_two_new_look_alikes_in_one_pr_are_refused(index_repo: IndexRepo) -> None:
    index_repo.release("gamma_tool", "1.0.0", signer=index_repo.keys.mallory)
    index_repo.release("gamma-tool", "1.0.0", signer=index_repo.keys.mallory)
    index_repo.commit()
    assert len(_squatting(index_repo.check())) == 2


def test_same_maintainer_may_own_look_alike_names(index_repo: IndexRepo) -> None:
    # alice is delegated alpha*: alpha_ is her own neighbour of alpha.
    index_repo.release("alpha_", "1.0.0")
    index_repo.commit()
    report = index_repo.check()
    assert not _squatting(report)
    assert report.ok, [f.text() for _, f in report.findings()]
