"""Change detection with git: exotic file names, merge-base semantics, refs that look like options."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry_tool.ci.gitdiff import Change, ChangeKind, GitError, GitRepo

from .conftest import git


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "config", "user.email", "t@example.invalid")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / "keep.txt").write_text("keep\n")
    (tmp_path / "index" / "gone.txt").write_text("gone\n")
    (tmp_path / "index" / "edit.txt").write_text("v1\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "base")
    git(tmp_path, "checkout", "-q", "-b", "pr")
    return GitRepo.discover(tmp_path / "index")


def _commit(repo: GitRepo) -> None:
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "change")


def test_added_modified_deleted_with_exotic_names(repo: GitRepo) -> None:
    weird = ["new file.txt", "ünïcode.txt", "line\nbreak.txt", "tab\there.txt", '"quoted".txt']
    for name in weird:
        (repo.root / "index" / name).write_text("x\n")
    (repo.root / "index" / "edit.txt").write_text("v2\n")
    (repo.root / "index" / "gone.txt").unlink()
    (repo.root / "outside.txt").write_text("not in the pathspec\n")
    _commit(repo)
    changes = repo.changes("main", ["index"])
    expected = {Change(f"index/{n}", ChangeKind.added) for n in weird}
    expected |= {Change("index/edit.txt", ChangeKind.modified), Change("index/gone.txt", ChangeKind.deleted)}
    assert set(changes) == expected
    assert changes == sorted(changes)


def test_renames_are_a_removal_plus_an_addition(repo: GitRepo) -> None:
    git(repo.root, "mv", "index/keep.txt", "index/moved.txt")
    _commit(repo)
    assert repo.changes("main", ["index"]) == [
        Change("index/keep.txt", ChangeKind.deleted),
        Change("index/moved.txt", ChangeKind.added),
    ]


def test_diff_is_against_the_merge_base(repo: GitRepo) -> None:
    # A commit that lands on main after the PR branched is not the PR's change.
    git(repo.root, "checkout", "-q", "main")
    (repo.root / "index" / "later.txt").write_text("main moved on\n")
    _commit(repo)
    git(repo.root, "checkout", "-q", "pr")
    (repo.root / "index" / "mine.txt").write_text("pr\n")
    _commit(repo)
    assert repo.changes("main", ["index"]) == [Change("index/mine.txt", ChangeKind.added)]


def test_show_and_list_at_ref(repo: GitRepo) -> None:
    (repo.root / "index" / "edit.txt").write_text("v2\n")
    _commit(repo)
    assert repo.show("main", "index/edit.txt") == b"v1\n"
    assert repo.show("main", "index/missing.txt") is None
    assert repo.list_files("main", "index") == ["index/edit.txt", "index/gone.txt", "index/keep.txt"]
    dest = repo.root.parent / "export"
    repo.export("main", "index", dest)
    assert (dest / "edit.txt").read_text() == "v1\n"


@pytest.mark.parametrize("ref", ["--output=/tmp/x", "-p", "nope", "main~99"])
def test_bad_refs_are_usage_errors(repo: GitRepo, ref: str) -> None:
    with pytest.raises(GitError) as info:
        repo.resolve(ref)
    assert info.value.exit_code == 2


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="not in a git checkout"):
        GitRepo.discover(tmp_path)


def test_uncommitted_changes_are_listed(repo: GitRepo) -> None:
    assert repo.uncommitted(["index"]) == []
    (repo.root / "index" / "edit.txt").write_text("dirty\n")
    (repo.root / "index" / "new dir").mkdir()
    (repo.root / "index" / "new dir" / "untracked.txt").write_text("x\n")
    git(repo.root, "mv", "index/keep.txt", "index/renamed.txt")
    (repo.root / "elsewhere.txt").write_text("not in the pathspec\n")
    assert repo.uncommitted(["index"]) == [
        "index/edit.txt",
        "index/new dir/untracked.txt",
        "index/renamed.txt",
    ]
