"""Attack: a yank PR smuggles arbitrary files into a published release as "yank signatures".

Only ``yank.toml``, ``yank.toml.minisig`` and ``yank.toml.<16 hex key id>.minisig`` may be added to a
published release; any other name that merely starts with ``yank.toml.`` and ends in ``.minisig``
is an unsigned file in an immutable folder (the same rule new releases use for signatures).
"""

from __future__ import annotations

import pytest

from .conftest import IndexRepo
from .test_check_e2e import A, errors


@pytest.mark.parametrize(
    "name", ["yank.toml.payload.minisig", "yank.toml.../../x.minisig", "yank.toml..minisig"]
)
def test_extra_file_named_like_a_yank_signature_fails(index_repo: IndexRepo, name: str) -> None:
    index_repo.yank("alpha", "1.0.0", index_repo.keys.alice)
    path = index_repo.index / "plugins/alpha/1.0.0" / name.replace("/", "_")
    path.write_bytes(b"\0" * 4096)
    index_repo.commit()
    found = errors(index_repo.check())
    assert [f.file for f in found] == [f"{A}/1.0.0/{path.name}"], [f.text() for f in found]
    assert found[0].rule == "release-changed"


def test_key_id_yank_signature_is_accepted(index_repo: IndexRepo) -> None:
    index_repo.yank("alpha", "1.0.0", index_repo.keys.alice)
    d = index_repo.index / "plugins/alpha/1.0.0"
    sig = d / "yank.toml.minisig"
    key_id = index_repo.keys.alice.key_id
    sig.rename(d / f"yank.toml.{key_id}.minisig")
    index_repo.commit()
    assert errors(index_repo.check()) == []


def test_yank_name_with_a_trailing_newline_is_not_a_yank_file(index_repo: IndexRepo) -> None:
    # Python's `$` also matches before a final newline.
    index_repo.yank("alpha", "1.0.0", index_repo.keys.alice)
    (index_repo.index / "plugins/alpha/1.0.0/yank.toml\n").write_bytes(b"payload")
    index_repo.commit()
    found = errors(index_repo.check())
    assert [(f.rule, f.file) for f in found] == [("release-changed", f"{A}/1.0.0/yank.toml\n")]


@pytest.mark.parametrize("name", ["3.root.json\n", "3.root.json.minisig\n"])
def test_root_name_with_a_trailing_newline_is_an_unexpected_file(index_repo: IndexRepo, name: str) -> None:
    (index_repo.index / "root" / name).write_bytes(b"{}")
    index_repo.commit()
    found = errors(index_repo.check())
    assert ("unexpected-file", f"index/root/{name}") in [(f.rule, f.file) for f in found]
