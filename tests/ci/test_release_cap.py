"""Attack: a pull request adding more releases than the CI runner can smoke-run in reasonable time.

Each new release is smoke-run (up to [limits.max] smoke_wall_time each), so thousands of releases in
one pull request would hold the runner for hours.  ``[ci] max_new_releases`` at the BASE caps them;
the cap in the pull request's own registry.toml changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from registry_tool.trust.editing import edit_root_dir, pin_registry_config, sign_root_dir

from .conftest import IndexRepo
from .test_check_e2e import errors


def _cap_at_base(index_repo: IndexRepo, cap: int) -> None:
    config = index_repo.index / "registry.toml"
    text = config.read_text()
    assert "max_new_releases = 100" in text  # the template's default
    config.write_text(text.replace("max_new_releases = 100", f"max_new_releases = {cap}"))
    root = index_repo.index / "root"
    edit_root_dir(root, pin_registry_config(config.read_bytes()), now=datetime.now(UTC))
    sign_root_dir(root, index_repo.keys.root)
    index_repo.commit("base: cap")


def test_more_new_releases_than_the_base_allows_is_refused_before_any_smoke_run(
    index_repo: IndexRepo,
) -> None:
    _cap_at_base(index_repo, 2)
    for version in ("1.1.0", "1.2.0", "1.3.0"):
        index_repo.release("alpha", version)
    index_repo.commit()
    report = index_repo.check(base="HEAD~1")
    assert [f.rule for f in errors(report)] == ["too-many-releases"]
    finding = errors(report)[0]
    assert "adds 3 releases" in finding.message and "allows 2" in finding.message
    assert finding.file is not None and finding.file.endswith("alpha/1.1.0/plugin.toml")
    assert index_repo.smoked == []


def test_releases_up_to_the_cap_are_checked(index_repo: IndexRepo) -> None:
    _cap_at_base(index_repo, 2)
    for version in ("1.1.0", "1.2.0"):
        index_repo.release("alpha", version)
    index_repo.commit()
    report = index_repo.check(base="HEAD~1")
    assert report.ok, [f.text() for f in errors(report)]
    assert {"alpha/1.1.0", "alpha/1.2.0"} <= set(index_repo.smoked)


def test_the_pull_requests_own_cap_is_not_used(index_repo: IndexRepo) -> None:
    _cap_at_base(index_repo, 1)
    config = index_repo.index / "registry.toml"
    config.write_text(config.read_text().replace("max_new_releases = 1", "max_new_releases = 50"))
    for version in ("1.1.0", "1.2.0"):
        index_repo.release("alpha", version)
    index_repo.commit()
    report = index_repo.check(base="HEAD~1")
    assert "too-many-releases" in {f.rule for f in errors(report)}


def test_new_release_folders_count_without_a_plugin_toml(index_repo: IndexRepo) -> None:
    """Attack: thousands of folders holding one stray file each dodged the cap (each costs a tree walk)."""
    _cap_at_base(index_repo, 2)
    for i in range(3):
        folder = index_repo.index / "plugins" / "alpha" / f"0.0.{i}"
        folder.mkdir(parents=True)
        (folder / "x").write_text("not a release\n")
    index_repo.commit()
    report = index_repo.check(base="HEAD~1")
    assert [f.rule for f in errors(report)] == ["too-many-releases"]
    assert "adds 3 releases" in errors(report)[0].message


def test_yanks_and_re_signatures_of_published_releases_do_not_count(index_repo: IndexRepo) -> None:
    _cap_at_base(index_repo, 1)
    index_repo.yank("alpha", "1.0.0", index_repo.keys.alice)
    index_repo.yank("beta", "1.0.0", index_repo.keys.bob)
    index_repo.commit()
    report = index_repo.check(base="HEAD~1")
    assert "too-many-releases" not in {f.rule for f in errors(report)}, [f.text() for f in errors(report)]
