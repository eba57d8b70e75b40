"""Attack: a pull request's manifest holds thousands of tests; the check refuses it without running one."""

from __future__ import annotations

from registry_tool.signing import sign_release

from .conftest import IndexRepo, manifest_text


def test_pr_with_thousands_of_tests_is_refused_before_any_smoke_run(index_repo: IndexRepo) -> None:
    release = index_repo.release("alpha", "1.1.0")
    text = manifest_text("alpha", "1.1.0")
    test = text[text.index("[[tests]]") :]
    (release / "plugin.toml").write_text(text + "\n" + "\n".join([test] * 2000))
    sign_release(release, index_repo.keys.alice)
    index_repo.commit()
    report = index_repo.check()
    assert any(f.rule == "smoke-budget" for _, f in report.findings())
    assert not report.ok and index_repo.smoked == []
