"""Attack: a pull request smuggles files past ci check into a published release or the root folder.

Each case passed (exit 0) before: junk "yank signatures" added to a yanked release, a nested
``yank.toml`` taken for a yank, a nested ``root/x/3.root.json`` (every later check then crashed),
a validly signed root step committed under another number (a gap: every later build refused the
index), and "signature" files in a new release that nothing verified (90 MB read whole).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from registry_tool.ci import check as check_module
from registry_tool.signing import sign_bytes
from registry_tool.trust.editing import add_maintainer, edit_root_dir, revoke, sign_root_dir

from .conftest import IndexRepo
from .test_check_e2e import A, errors


def _yank_at_base(index_repo: IndexRepo) -> Path:
    index_repo.yank("alpha", "1.0.0", index_repo.keys.alice)
    index_repo.commit("base: yank")
    return index_repo.index / "plugins/alpha/1.0.0"


@pytest.mark.parametrize(
    "name", ["yank.toml.0123456789ABCDEF.minisig", "yank.toml.minisig.new", "evil/dir/yank.toml"]
)
def test_no_file_may_be_added_to_a_release_yanked_at_the_base(index_repo: IndexRepo, name: str) -> None:
    folder = _yank_at_base(index_repo)
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"<html>not a signature</html>\n")
    index_repo.commit()
    found = errors(index_repo.check(base="HEAD~1"))
    # A keyed yank signature is the one file a yanked release takes, and only when the root no
    # longer counts the yank's own (a revoked signer): this yank's count.
    assert [(f.rule, f.file) for f in found] == [("release-changed", f"{A}/1.0.0/{name}")]


def test_a_nested_yank_toml_is_not_a_yank(index_repo: IndexRepo) -> None:
    folder = index_repo.index / "plugins/alpha/1.0.0"
    nested = folder / "evil" / "dir"
    nested.mkdir(parents=True)
    index_repo.yank("alpha", "1.0.0", index_repo.keys.alice)
    for name in ("yank.toml", "yank.toml.minisig"):
        shutil.copy(folder / name, nested / name)
    index_repo.commit()
    found = errors(index_repo.check())
    assert {(f.rule, f.file) for f in found} == {
        ("release-changed", f"{A}/1.0.0/evil/dir/yank.toml"),
        ("release-changed", f"{A}/1.0.0/evil/dir/yank.toml.minisig"),
    }


def test_a_yank_signature_that_does_not_count_is_refused(index_repo: IndexRepo) -> None:
    index_repo.yank("alpha", "1.0.0", index_repo.keys.alice)
    folder = index_repo.index / "plugins/alpha/1.0.0"
    (folder / "yank.toml.0123456789ABCDEF.minisig").write_bytes(b"\0" * 3000)
    index_repo.commit()
    found = errors(index_repo.check())
    assert [(f.rule, f.file) for f in found] == [
        ("signature", f"{A}/1.0.0/yank.toml.0123456789ABCDEF.minisig")
    ]
    assert "not a signature that counts" in found[0].message


@pytest.mark.parametrize(
    ("name", "content", "rule"),
    [
        ("alpha.wasm.minisig", b"garbage\n", "unexpected-file"),
        ("yank.toml.minisig", b"garbage\n", "unexpected-file"),  # no yank.toml in the release
        ("plugin.toml.0123456789ABCDEF.minisig", b"garbage\n", "signature"),
        ("plugin.toml.0123456789ABCDEF.minisig", b"x" * (20 * 1024), "signature"),  # over 16 KiB
    ],
)
def test_new_release_signature_files_must_count(
    index_repo: IndexRepo, name: str, content: bytes, rule: str
) -> None:
    folder = index_repo.release("alpha", "1.1.0")
    (folder / name).write_bytes(content)
    index_repo.commit()
    found = errors(index_repo.check())
    assert [(f.rule, f.file) for f in found] == [(rule, f"{A}/1.1.0/{name}")], [f.text() for f in found]


def test_a_second_valid_signature_by_an_undelegated_key_is_refused(index_repo: IndexRepo) -> None:
    folder = index_repo.release("alpha", "1.1.0")
    mallory = index_repo.keys.mallory
    comment = (folder / "plugin.toml.minisig").read_text().splitlines()[2].removeprefix("trusted comment: ")
    text = sign_bytes(mallory, (folder / "plugin.toml").read_bytes(), trusted_comment=comment)
    (folder / f"plugin.toml.{mallory.key_id}.minisig").write_text(text)
    index_repo.commit()
    found = errors(index_repo.check())
    assert [(f.rule, f.file) for f in found] == [
        ("signature", f"{A}/1.1.0/plugin.toml.{mallory.key_id}.minisig")
    ]


def test_a_nested_root_file_is_refused_and_ignored_at_the_base(index_repo: IndexRepo) -> None:
    nested = index_repo.index / "root" / "sub"
    nested.mkdir()
    (nested / "3.root.json").write_text("anything at all")
    index_repo.commit()
    found = errors(index_repo.check())
    assert [(f.rule, f.file) for f in found] == [("unexpected-file", "index/root/sub/3.root.json")]
    # Merged anyway (by hand): the next pull request is still judged by root 2, no crash.
    index_repo.release("alpha", "1.1.0")
    index_repo.commit()
    report = index_repo.check(base="HEAD~1")
    assert report.ok, [f.text() for f in errors(report)]


def test_a_signed_root_step_under_another_number_is_refused(index_repo: IndexRepo) -> None:
    root_dir = index_repo.index / "root"
    edit_root_dir(root_dir, add_maintainer("carol", [index_repo.keys.mallory.public_key], ["gamma"]))
    sign_root_dir(root_dir, index_repo.keys.root)
    for path in root_dir.glob("3.root.json*"):
        path.rename(root_dir / ("7" + path.name[1:]))
    index_repo.commit()
    found = errors(index_repo.check())
    assert [(f.rule, f.file) for f in found] == [("root-signature", "index/root/7.root.json")]
    assert "no version 3" in found[0].message


def test_an_unreadable_path_is_the_releases_finding_not_a_crash(
    index_repo: IndexRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_repo.release("alpha", "1.1.0")
    index_repo.release("alpha", "1.2.0")
    index_repo.commit()
    real = check_module._symlinks

    def too_long(root: Path, rel_dir: str) -> list[str]:
        if rel_dir.endswith("alpha/1.1.0"):
            raise OSError(36, "File name too long")
        return real(root, rel_dir)

    monkeypatch.setattr(check_module, "_symlinks", too_long)
    report = index_repo.check()
    found = errors(report)
    assert [(f.rule, f.file) for f in found] == [("unexpected-file", f"{A}/1.1.0/plugin.toml")]
    assert "File name too long" in found[0].message
    assert any("1.2.0" in r.subject and r.ok for r in report.results)


def _remove_deep(top: Path) -> None:
    """shutil.rmtree recurses too (the fixture's clean-up would crash)."""
    import subprocess

    subprocess.run(["rm", "-rf", str(top)], check=True)


def test_a_thousand_nested_folders_are_the_releases_finding_not_a_crash(index_repo: IndexRepo) -> None:
    """A deep tree exhausted Python's stack in the walk (os.walk recurses): the whole check crashed.

    Only that release is refused; another release's own finding in the same pull request is kept.
    """
    index_repo.release("alpha", "1.1.0")
    deep = index_repo.index / "plugins" / "alpha" / "1.1.0"
    for _ in range(1000):
        deep = deep / "d"
        deep.mkdir()  # one by one: mkdir(parents=True) recurses too
    (deep / "x").write_text("deep\n")
    beta = index_repo.release("beta", "1.1.0", signer=index_repo.keys.bob)
    (beta / "plugin.toml.minisig").unlink()
    index_repo.commit()
    try:
        found = errors(index_repo.check())
    finally:
        _remove_deep(index_repo.index / "plugins" / "alpha" / "1.1.0" / "d")
    assert (("unexpected-file", f"{A}/1.1.0/plugin.toml")) in [(f.rule, f.file) for f in found]
    assert any("nested deeper than" in f.message for f in found)
    assert any(f.rule == "signature" and "beta" in (f.file or "") for f in found)
    assert "internal-error" not in {f.rule for f in found}


def test_a_deep_tree_in_the_root_folder_is_a_finding_not_a_crash(index_repo: IndexRepo) -> None:
    deep = index_repo.index / "root"
    for _ in range(1000):
        deep = deep / "d"
        deep.mkdir()
    (deep / "3.root.json").write_text("{}")
    index_repo.commit()
    try:
        found = errors(index_repo.check())
    finally:
        _remove_deep(index_repo.index / "root" / "d")
    assert "internal-error" not in {f.rule for f in found}
    assert any(f.rule == "unexpected-file" and "nested deeper than" in f.message for f in found)


def test_a_release_signed_by_a_key_the_same_pull_request_revokes_is_refused(index_repo: IndexRepo) -> None:
    """Judged by the base root alone it passed, and the next build refused the index."""
    root_dir = index_repo.index / "root"
    edit_root_dir(
        root_dir, revoke(index_repo.keys.alice.key_id, now=datetime.now(UTC), keep_prior_releases=True)
    )
    sign_root_dir(root_dir, index_repo.keys.root)
    index_repo.release("alpha", "1.1.0")
    index_repo.commit()
    found = errors(index_repo.check())
    assert [(f.rule, f.file) for f in found] == [("signature", f"{A}/1.1.0/plugin.toml.minisig")]
    assert "root version 3 that this pull request adds" in found[0].message
