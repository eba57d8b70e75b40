"""Attack: a pull request branched before other releases landed is judged on an index without them.

The check reads the index at HEAD as "the base plus the pull request": dependency graphs, the
permissions they bring, and the published releases a new root or registry.toml must still accept.
A branch that left the base earlier lacks what landed since, so a dependency on a release that
gained a permission passed unapproved (and a merge queue's run approves escalations).  A base
that changed index files since the branch point is `base-moved`: merge or rebase first.
"""

from __future__ import annotations

from .conftest import KEYS_ADD, IndexRepo, git
from .test_check_e2e import errors


def _land_on_main(index_repo: IndexRepo) -> None:
    """beta 1.1.0 (asking for `keys`) lands on main after the pull request's branch left it."""
    git(index_repo.path, "checkout", "-q", "-b", "main-now", "origin/main")
    index_repo.release("beta", "1.1.0", KEYS_ADD, signer=index_repo.keys.bob, permissions={"keys": True})
    index_repo.commit("beta 1.1.0")
    git(index_repo.path, "checkout", "-q", "pr")


def test_a_branch_behind_index_changes_of_its_base_is_refused(index_repo: IndexRepo) -> None:
    _land_on_main(index_repo)
    index_repo.release("alpha", "1.1.0", dependencies={"beta": "^1.0"})
    index_repo.commit()
    found = errors(index_repo.check(base="main-now"))
    assert "base-moved" in {f.rule for f in found}, [f.text() for f in found]
    (moved,) = [f for f in found if f.rule == "base-moved"]
    assert "index/plugins/beta/1.1.0/plugin.toml" in moved.message
    # Up to date with the base, the same change is judged on the merged index: the escalation shows.
    git(index_repo.path, "merge", "-q", "--no-edit", "main-now")
    rules = {f.rule for f in errors(index_repo.check(base="main-now"))}
    assert "base-moved" not in rules and "permission-escalation" in rules, rules


def test_a_base_that_moved_outside_the_index_is_fine(index_repo: IndexRepo) -> None:
    git(index_repo.path, "checkout", "-q", "-b", "main-now", "origin/main")
    (index_repo.path / "README.md").write_text("docs moved on\n")
    index_repo.commit("docs")
    git(index_repo.path, "checkout", "-q", "pr")
    index_repo.release("alpha", "1.1.0")
    index_repo.commit()
    report = index_repo.check(base="main-now")
    assert report.ok, [f.text() for f in errors(report)]


def test_an_index_at_the_repository_root_is_judged_on_its_own_parts(index_repo: IndexRepo) -> None:
    """With the index at the repository root, a base that moved only README.md was base-moved."""
    from datetime import UTC, datetime

    from registry_tool.ci.check import CheckOptions, check_pull_request
    from tests.world import IndexTree, wasm

    from .conftest import ADD, manifest_text

    path = index_repo.path
    git(path, "checkout", "-q", "main")
    for child in list((path / "index").iterdir()):
        git(path, "mv", f"index/{child.name}", child.name)
    git(path, "commit", "-q", "-m", "the index at the repository root")
    git(path, "checkout", "-q", "-b", "main-now", "main")
    (path / "README.md").write_text("docs moved on\n")
    index_repo.commit("docs")
    git(path, "checkout", "-q", "-b", "pr-root", "main")
    IndexTree(path, index_repo.keys, datetime.now(UTC)).add_release(
        "alpha",
        "1.1.0",
        manifest=manifest_text("alpha", "1.1.0"),
        module=wasm(ADD),
        signer=index_repo.keys.alice,
    )
    index_repo.commit("alpha 1.1.0")
    report = check_pull_request(path, [path], CheckOptions(base="main-now", smoke=lambda m, c: []))
    assert report.ok, [f.text() for f in errors(report)]
