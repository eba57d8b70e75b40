"""Attack: a new release carries an unsigned file named like a per-key signature.

``files`` lets signature files through; it accepted any 16 characters as the key id, so
``plugin.toml.payload-payload-.minisig`` (arbitrary bytes) was published unflagged.
"""

from __future__ import annotations

import pytest

from .conftest import IndexRepo
from .test_check_e2e import A, errors


@pytest.mark.parametrize(
    "name",
    ["plugin.toml.payload-payload-.minisig", "alpha.wasm.0123456789abcdeg.minisig", "plugin.toml.minisig.x"],
)
def test_file_named_like_a_signature_but_not_one_is_unexpected(index_repo: IndexRepo, name: str) -> None:
    release = index_repo.release("alpha", "1.1.0")
    (release / name).write_bytes(b"\0" * 1024)
    index_repo.commit()
    found = [f for f in errors(index_repo.check()) if f.rule == "unexpected-file"]
    assert [f.file for f in found] == [f"{A}/1.1.0/{name}"]


def test_real_key_id_signature_names_are_accepted(index_repo: IndexRepo) -> None:
    release = index_repo.release("alpha", "1.1.0")
    key_id = index_repo.keys.alice.key_id
    (release / "plugin.toml.minisig").rename(release / f"plugin.toml.{key_id}.minisig")
    index_repo.commit()
    assert errors(index_repo.check()) == []


def test_a_signature_filed_under_another_keys_id_is_refused(index_repo: IndexRepo) -> None:
    """No client would find it: verifiers fetch F.<KEYID>.minisig by the id of a key that signed F."""
    release = index_repo.release("alpha", "1.1.0")
    wrong = index_repo.keys.bob.key_id
    (release / "plugin.toml.minisig").rename(release / f"plugin.toml.{wrong}.minisig")
    index_repo.commit()
    found = [f for f in errors(index_repo.check()) if f.rule == "signature-name"]
    assert [f.file for f in found] == [f"{A}/1.1.0/plugin.toml.{wrong}.minisig"]
    assert index_repo.keys.alice.key_id in found[0].message


def test_a_root_version_signed_under_the_unkeyed_name_is_refused(index_repo: IndexRepo) -> None:
    """Root versions use only ``N.root.json.<KEYID>.minisig`` (trust.md section 4): every client
    fetches those names alone, so a version signed only as ``N.root.json.minisig`` passed ci check
    and the build and stopped every Go and Rust host's refresh."""
    from registry_tool.trust.editing import edit_root_dir, renew, sign_root_dir

    root_dir = index_repo.index / "root"
    edit_root_dir(root_dir, renew())
    signed = sign_root_dir(root_dir, index_repo.keys.root)
    unkeyed = signed.with_name(signed.name.split(".minisig")[0].rsplit(".", 1)[0] + ".minisig")
    signed.rename(unkeyed)
    index_repo.commit()
    found = [f for f in errors(index_repo.check()) if f.rule == "root-signature"]
    assert len(found) == 1, [f.text() for f in errors(index_repo.check())]
    assert "[signature-name]" in found[0].message and unkeyed.name in found[0].message
    assert index_repo.keys.root.key_id in (found[0].fix or "")
