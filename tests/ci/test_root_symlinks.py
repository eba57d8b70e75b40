"""Attack: a symlink in the PR's root folder makes the check read a file of the runner's choosing.

``root/3.root.json -> /dev/zero`` reads forever (memory exhaustion of the runner); a link to
``/proc/self/environ`` or a dotfile feeds the runner's own data to the parser and its messages.
Release folders already refuse links; the root folder must too, without following them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from registry_tool.report import Severity

from .conftest import IndexRepo


@pytest.mark.parametrize("link", ["3.root.json", "3.root.json.minisig"])
def test_symlink_in_the_root_folder_is_refused_unread(
    index_repo: IndexRepo, tmp_path: Path, link: str
) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text('{"not": "root"}')
    root = index_repo.index / "root"
    if link.endswith(".minisig"):
        (root / "3.root.json").write_bytes((root / "2.root.json").read_bytes())
    (root / link).symlink_to(outside)
    index_repo.commit()
    report = index_repo.check()
    refused = [
        f
        for _, f in report.findings()
        if f.rule == "unexpected-file" and f.file == f"index/root/{link}" and f.severity is Severity.error
    ]
    assert refused and "symbolic link" in refused[0].message
    assert not report.ok


def test_root_folder_replaced_by_a_symlink_is_refused(index_repo: IndexRepo, tmp_path: Path) -> None:
    root = index_repo.index / "root"
    copy = tmp_path / "root-copy"
    copy.mkdir()
    for path in root.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
        path.unlink()
    root.rmdir()
    root.symlink_to(copy)
    index_repo.commit()
    report = index_repo.check()
    assert any(
        f.rule == "unexpected-file" and f.file == "index/root" and "symbolic link" in f.message
        for _, f in report.findings()
    )
    assert not report.ok


@pytest.mark.parametrize("name", ["3.root.json", "3.root.json.minisig"])
def test_a_folder_named_like_root_metadata_is_a_finding_not_a_crash(index_repo: IndexRepo, name: str) -> None:
    """A directory (or a gitlink, checked out as one) named 3.root.json used to end the check in
    IsADirectoryError (exit 3); the root files are read bounded, as regular files only."""
    root = index_repo.index / "root"
    if name.endswith(".minisig"):
        (root / "3.root.json").write_bytes((root / "2.root.json").read_bytes())
    (root / name).mkdir()
    (root / name / "x").write_text("x")
    index_repo.commit()
    report = index_repo.check()
    assert not report.ok
    assert not [f for _, f in report.findings() if f.rule == "internal-error"]


@pytest.mark.parametrize(
    "name", ["3.root.json.minisig", "3.root.json.0123456789ABCDEF.minisig", "9.root.json.minisig"]
)
def test_a_signature_of_a_root_version_the_pull_request_does_not_add_is_refused(
    index_repo: IndexRepo, name: str
) -> None:
    """Merged alone, a planted future signature would sit among the files of root version N before
    the owners add N (refused then as a change to a published file, or read into their N)."""
    (index_repo.index / "root" / name).write_text("untrusted comment: junk\n")
    index_repo.commit()
    report = index_repo.check()
    assert not report.ok
    assert any(f.rule == "root-signature" and f.file == f"index/root/{name}" for _, f in report.findings())
