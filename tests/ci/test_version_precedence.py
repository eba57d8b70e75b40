"""Attack: build metadata gives a published version a second folder with the same precedence.

Semver ignores ``+build`` for precedence, so ``1.0.0+evil`` IS ``1.0.0`` to every resolver: adding it
next to the published ``1.0.0`` republishes that version with other bytes (an immutability bypass).
``semantic_version`` also finds the two incomparable (neither <, > nor ==), so the plain
``<`` check let it through as "not backwards".
"""

from __future__ import annotations

import pytest

from .conftest import IndexRepo
from .test_check_e2e import A, errors, line_of


@pytest.mark.parametrize("version", ["1.0.0+evil", "1.0.0+1"])
def test_same_precedence_as_a_published_version_fails(index_repo: IndexRepo, version: str) -> None:
    release = index_repo.release("alpha", version)
    index_repo.commit()
    report = index_repo.check()
    rules = {f.rule for f in errors(report)}
    assert "version-duplicate" in rules, [f.text() for f in errors(report)]
    finding = next(f for f in errors(report) if f.rule == "version-duplicate")
    assert "1.0.0" in finding.message
    assert (finding.file, finding.line) == (
        f"{A}/{version}/plugin.toml",
        line_of(release / "plugin.toml", "version"),
    )


def test_build_metadata_on_a_higher_version_is_refused(index_repo: IndexRepo) -> None:
    """The build refuses a '+' in a release folder (format rule): ci check must not pass one."""
    release = index_repo.release("alpha", "1.1.0+build.5")
    index_repo.commit()
    report = index_repo.check()
    finding = next(f for f in errors(report) if f.rule == "semver")
    assert "build metadata" in finding.message
    assert (finding.file, finding.line) == (
        f"{A}/1.1.0+build.5/plugin.toml",
        line_of(release / "plugin.toml", "version"),
    )


@pytest.mark.parametrize(
    ("published", "new"),
    [
        ("1.1.0-rc1", "1.1.0-RC1"),
        ("2.0.0-Beta", "2.0.0-beta"),
    ],
)
def test_version_differing_only_in_case_is_refused(index_repo: IndexRepo, published: str, new: str) -> None:
    index_repo.release("alpha", published)
    index_repo.commit("base")
    release = index_repo.release("alpha", new)
    index_repo.commit()
    report = index_repo.check(base="HEAD~1")
    finding = next(f for f in errors(report) if f.rule == "version-case")
    assert published in finding.message and "case" in finding.message
    assert (finding.file, finding.line) == (
        f"{A}/{new}/plugin.toml",
        line_of(release / "plugin.toml", "version"),
    )


def test_two_new_versions_differing_only_in_case_are_refused(index_repo: IndexRepo) -> None:
    index_repo.release("alpha", "1.2.0-rc1")
    index_repo.release("alpha", "1.2.0-RC1")
    index_repo.commit()
    report = index_repo.check()
    flagged = {f.file for f in errors(report) if f.rule == "version-case"}
    assert flagged == {f"{A}/1.2.0-rc1/plugin.toml", f"{A}/1.2.0-RC1/plugin.toml"}


def test_case_is_compared_only_among_one_plugins_versions(index_repo: IndexRepo) -> None:
    index_repo.release("alpha", "1.2.0-rc1")
    index_repo.commit()
    report = index_repo.check()
    assert report.ok, [f.text() for f in errors(report)]
