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


def test_build_metadata_on_a_higher_version_passes(index_repo: IndexRepo) -> None:
    index_repo.release("alpha", "1.1.0+build.5")
    index_repo.commit()
    report = index_repo.check()
    assert report.ok, [f.text() for f in errors(report)]
