"""Every signature file a pull request adds must be a valid signature by a delegated maintainer.

Judged file by file (a copied key id over a zeroed signature is junk however it is named), under
the base root or the root the same pull request adds (a co-signer it onboards counts; a key it
revokes does not), and never for a ``--full`` re-check of published releases (their co-signers
may have left since).
"""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from registry_tool.ci.model import Shard
from registry_tool.errors import INTERNAL_ERROR_RULE, RegistryToolError
from registry_tool.signing import SecretKey, sign_bytes
from registry_tool.signing.minisign import Signature
from registry_tool.signing.release import sign_yank
from registry_tool.trust.editing import (
    add_maintainer,
    edit_root_dir,
    renew,
    revoke,
    set_plugin_threshold,
    sign_root_dir,
)

from .conftest import IndexRepo
from .test_check_e2e import A, errors


def _cosign(folder: Path, key: SecretKey) -> str:
    comment = (folder / "plugin.toml.minisig").read_text().splitlines()[2].removeprefix("trusted comment: ")
    name = f"plugin.toml.{key.key_id}.minisig"
    (folder / name).write_text(
        sign_bytes(key, (folder / "plugin.toml").read_bytes(), trusted_comment=comment)
    )
    return name


def _onboard_carol(index_repo: IndexRepo) -> None:
    root_dir = index_repo.index / "root"
    edit_root_dir(root_dir, add_maintainer("carol", [index_repo.keys.mallory.public_key], ["alpha"]))
    sign_root_dir(root_dir, index_repo.keys.root)


def test_a_copied_key_id_over_a_junk_signature_is_refused(index_repo: IndexRepo) -> None:
    folder = index_repo.release("alpha", "1.1.0")
    lines = (folder / "plugin.toml.minisig").read_text().splitlines()
    raw = bytearray(base64.b64decode(lines[1]))
    raw[10:] = b"\x00" * 64  # 'ED' and alice's key number, then no signature
    lines[0] = "untrusted comment: " + "SMUGGLED PAYLOAD " * 10
    lines[1] = base64.b64encode(bytes(raw)).decode()
    (folder / "plugin.toml.0123456789ABCDEF.minisig").write_text("\n".join(lines) + "\n")
    index_repo.commit()
    found = errors(index_repo.check())
    # Filed under an id that is not the key number it claims: refused before its bytes are checked.
    assert [(f.rule, f.file) for f in found] == [
        ("signature-name", f"{A}/1.1.0/plugin.toml.0123456789ABCDEF.minisig")
    ]


def test_a_co_signer_the_same_pull_request_onboards_counts(index_repo: IndexRepo) -> None:
    _onboard_carol(index_repo)
    _cosign(index_repo.release("alpha", "1.1.0"), index_repo.keys.mallory)
    index_repo.commit()
    report = index_repo.check()
    assert report.ok, [f.text() for f in errors(report)]


def test_a_full_recheck_keeps_a_published_co_signature_by_a_key_revoked_since(index_repo: IndexRepo) -> None:
    _onboard_carol(index_repo)
    index_repo.commit("root: carol")
    _cosign(index_repo.release("alpha", "1.1.0"), index_repo.keys.mallory)
    index_repo.commit("co-signed")
    assert index_repo.check(base="HEAD~1").ok
    root_dir = index_repo.index / "root"
    edit_root_dir(
        root_dir, revoke(index_repo.keys.mallory.key_id, now=datetime.now(UTC), keep_prior_releases=True)
    )
    sign_root_dir(root_dir, index_repo.keys.root)
    index_repo.commit("carol leaves")
    report = index_repo.check(base="HEAD", full=True)
    assert report.ok, [f.text() for f in errors(report)]


def test_a_yank_by_a_key_the_same_pull_request_revokes_is_refused(index_repo: IndexRepo) -> None:
    """Judged by the base root alone it passed, and the next build refused the index."""
    root_dir = index_repo.index / "root"
    edit_root_dir(
        root_dir, revoke(index_repo.keys.alice.key_id, now=datetime.now(UTC), keep_prior_releases=True)
    )
    sign_root_dir(root_dir, index_repo.keys.root)
    index_repo.yank("alpha", "1.0.0", index_repo.keys.alice)
    index_repo.commit()
    found = errors(index_repo.check())
    assert [(f.rule, f.file) for f in found] == [("signature", f"{A}/1.0.0/yank.toml.minisig")]
    assert "that this pull request adds" in found[0].message


def test_a_renewed_root_with_releases_passes_in_every_shard(index_repo: IndexRepo) -> None:
    root_dir = index_repo.index / "root"
    edit_root_dir(root_dir, renew())
    sign_root_dir(root_dir, index_repo.keys.root)
    index_repo.release("alpha", "1.1.0")
    index_repo.release("beta", "1.1.0", signer=index_repo.keys.bob)
    index_repo.commit()
    for i in (1, 2):
        report = index_repo.check(shard=Shard(i, 2))
        assert report.ok, [f.text() for f in errors(report)]


def _revoke_alice_and_delegate_carol(index_repo: IndexRepo) -> None:
    root_dir = index_repo.index / "root"
    keys = index_repo.keys
    edit_root_dir(root_dir, revoke(keys.alice.key_id, now=datetime.now(UTC), keep_prior_releases=False))
    edit_root_dir(root_dir, add_maintainer("carol", [keys.mallory.public_key], ["alpha"]))
    sign_root_dir(root_dir, keys.root)


def test_a_current_maintainer_may_re_sign_a_published_release(index_repo: IndexRepo) -> None:
    """The root revokes alice without keeping her releases: the build then needs a signature that
    counts, and adding one to the published release is the only change a published release takes."""
    _revoke_alice_and_delegate_carol(index_repo)
    _cosign(index_repo.index / "plugins/alpha/1.0.0", index_repo.keys.mallory)
    index_repo.commit()
    report = index_repo.check()
    assert report.ok, [f.text() for f in errors(report)]
    (alpha,) = [r for r in report.results if r.subject == "plugins/alpha/1.0.0"]
    assert alpha.data["kind"] == "re-signed"


def test_a_re_signature_that_does_not_count_is_refused(index_repo: IndexRepo) -> None:
    _revoke_alice_and_delegate_carol(index_repo)  # alpha 1.0.0 needs a signature that counts
    folder = index_repo.index / "plugins/alpha/1.0.0"
    (folder / "plugin.toml.0123456789ABCDEF.minisig").write_bytes(b"junk\n")
    index_repo.commit()
    found = errors(index_repo.check())
    assert {f.rule for f in found} == {"signature", "root-revocation"}, [f.text() for f in found]


def test_a_re_signature_by_a_key_the_pull_request_does_not_delegate_is_refused(index_repo: IndexRepo) -> None:
    _revoke_alice_and_delegate_carol(index_repo)
    _cosign(index_repo.index / "plugins/alpha/1.0.0", index_repo.keys.bob)  # bob: beta's maintainer only
    index_repo.commit()
    found = errors(index_repo.check())
    assert "signature" in [f.rule for f in found], [f.text() for f in found]


@pytest.mark.parametrize("signed", ["plugin.toml", "yank.toml"])
def test_a_signature_a_published_file_does_not_need_is_refused(index_repo: IndexRepo, signed: str) -> None:
    """Review: a copy of a published signature under the other name, with an untrusted comment of
    the pull request's own, passed as a re-signature (nothing revoked, no key needed) and was
    published; so did a new maintainer's signature on a release whose signatures all count."""
    import dataclasses

    from registry_tool.signing.minisign import Signature

    if signed == "yank.toml":
        index_repo.yank("alpha", "1.0.0", index_repo.keys.alice)
        index_repo.commit("base: alice yanks alpha 1.0.0")
    folder = index_repo.index / "plugins/alpha/1.0.0"
    [published] = [
        p for p in folder.iterdir() if p.name.startswith(f"{signed}.") and p.name.endswith(".minisig")
    ]
    copy = (
        f"{signed}.minisig"
        if published.name != f"{signed}.minisig"
        else f"{signed}.{index_repo.keys.alice.key_id}.minisig"
    )
    sig = dataclasses.replace(Signature.parse(published.read_text()), untrusted_comment="<script>x</script>")
    (folder / copy).write_text(sig.to_text())
    index_repo.commit()
    found = errors(index_repo.check(base="HEAD~1"))
    assert [(f.rule, f.file) for f in found] == [("release-changed", f"{A}/1.0.0/{copy}")], [
        f.text() for f in found
    ]
    assert "has signed" in found[0].message
    # A current maintainer's signature the release does not need: refused too.
    (folder / copy).unlink()
    _onboard_carol(index_repo)
    if signed == "plugin.toml":
        added = _cosign(folder, index_repo.keys.mallory)
    else:
        added = sign_yank(folder, index_repo.keys.mallory).name
    index_repo.commit("carol co-signs")
    found = errors(index_repo.check(base="HEAD~2"))
    assert ("release-changed", f"{A}/1.0.0/{added}") in [(f.rule, f.file) for f in found], [
        f.text() for f in found
    ]


def test_a_revocation_that_leaves_a_published_release_unsigned_is_refused(index_repo: IndexRepo) -> None:
    """Merged as it is, the next build refuses alpha 1.0.0 (alice's) until someone re-signs it."""
    _revoke_alice_and_delegate_carol(index_repo)
    index_repo.commit()
    found = errors(index_repo.check())
    assert [(f.rule, f.file) for f in found] == [("root-revocation", f"{A}/1.0.0/plugin.toml")]
    assert "alpha 1.0.0 would no longer verify under root version 3" in found[0].message


def test_a_revocation_keeping_prior_releases_leaves_them_be(index_repo: IndexRepo) -> None:
    root_dir = index_repo.index / "root"
    edit_root_dir(
        root_dir, revoke(index_repo.keys.alice.key_id, now=datetime.now(UTC), keep_prior_releases=True)
    )
    sign_root_dir(root_dir, index_repo.keys.root)
    index_repo.commit()
    report = index_repo.check()
    assert report.ok, [f.text() for f in errors(report)]


def test_a_revocation_with_a_yank_of_the_release_it_orphans_is_refused(index_repo: IndexRepo) -> None:
    """The yank does not judge the release's own signatures: the build then refused the index."""
    _revoke_alice_and_delegate_carol(index_repo)
    index_repo.yank("alpha", "1.0.0", index_repo.keys.mallory)  # carol's key
    index_repo.commit()
    found = errors(index_repo.check())
    assert ("root-revocation", f"{A}/1.0.0/plugin.toml") in [(f.rule, f.file) for f in found]


def test_a_raised_plugin_threshold_that_published_releases_miss_is_refused(index_repo: IndexRepo) -> None:
    root_dir = index_repo.index / "root"
    edit_root_dir(root_dir, add_maintainer("carol", [index_repo.keys.mallory.public_key], ["alpha"]))
    edit_root_dir(root_dir, set_plugin_threshold("alpha", 2))
    sign_root_dir(root_dir, index_repo.keys.root)
    index_repo.commit()
    found = errors(index_repo.check())
    assert [(f.rule, f.file) for f in found] == [("root-revocation", f"{A}/1.0.0/plugin.toml")]


def test_a_release_orphaned_at_the_base_is_re_signed_with_the_delegation_in_one_pull_request(
    index_repo: IndexRepo,
) -> None:
    root_dir = index_repo.index / "root"
    edit_root_dir(
        root_dir, revoke(index_repo.keys.alice.key_id, now=datetime.now(UTC), keep_prior_releases=False)
    )
    sign_root_dir(root_dir, index_repo.keys.root)
    index_repo.commit("base: alice revoked, alpha 1.0.0 orphaned")
    edit_root_dir(root_dir, add_maintainer("carol", [index_repo.keys.mallory.public_key], ["alpha"]))
    sign_root_dir(root_dir, index_repo.keys.root)
    _cosign(index_repo.index / "plugins/alpha/1.0.0", index_repo.keys.mallory)
    index_repo.commit()
    report = index_repo.check(base="HEAD~1")
    assert report.ok, [f.text() for f in errors(report)]


def _yanked_by_alice_then_alice_revoked(index_repo: IndexRepo, keep_prior_releases: bool) -> None:
    """Base: alice's yank of alpha 1.0.0.  Pull request: alice revoked, carol (mallory's key) delegated."""
    index_repo.yank("alpha", "1.0.0", index_repo.keys.alice)
    index_repo.commit("base: alice yanks alpha 1.0.0")
    # Published before the revocation (which keeps prior releases, or not).
    index_repo.tree.build(index_repo.path.parent / "site", now=datetime.now(UTC) - timedelta(minutes=1))
    root_dir = index_repo.index / "root"
    keys = index_repo.keys
    now = datetime.now(UTC)
    edit_root_dir(root_dir, revoke(keys.alice.key_id, now=now, keep_prior_releases=keep_prior_releases))
    edit_root_dir(root_dir, add_maintainer("carol", [keys.mallory.public_key], ["alpha"]))
    sign_root_dir(root_dir, keys.root)
    if not keep_prior_releases:  # alice's releases need carol's signatures too
        _cosign(index_repo.index / "plugins/alpha/1.0.0", keys.mallory)


@pytest.mark.parametrize("keep_prior_releases", [True, False])
def test_a_revocation_that_leaves_a_published_yank_unsigned_is_refused(
    index_repo: IndexRepo, keep_prior_releases: bool
) -> None:
    """A yank's signature never counts once its key is revoked: the check passed, then every build
    refused the index, and re-signing the yank was refused as a change to a published release."""
    _yanked_by_alice_then_alice_revoked(index_repo, keep_prior_releases)
    index_repo.commit()
    found = errors(index_repo.check(base="HEAD~1"))
    assert [(f.rule, f.file) for f in found] == [("root-revocation", f"{A}/1.0.0/yank.toml")], [
        f.text() for f in found
    ]
    assert "the yank of alpha 1.0.0 would no longer verify" in found[0].message
    assert "--yank" in (found[0].fix or "")
    # Merged anyway, the build refuses the index, and says to re-sign the yank (not the release).
    with pytest.raises(RegistryToolError) as refused:
        index_repo.tree.build(index_repo.path.parent / "site", previous=index_repo.path.parent / "site")
    assert "yank.toml" in str(refused.value) and "re-sign the yank" in str(refused.value), str(refused.value)


@pytest.mark.parametrize("keep_prior_releases", [True, False])
def test_a_current_maintainer_may_re_sign_a_published_yank(
    index_repo: IndexRepo, keep_prior_releases: bool
) -> None:
    _yanked_by_alice_then_alice_revoked(index_repo, keep_prior_releases)
    signature = sign_yank(index_repo.index / "plugins/alpha/1.0.0", index_repo.keys.mallory)  # carol's key
    assert signature.name == f"yank.toml.{index_repo.keys.mallory.key_id}.minisig"
    index_repo.commit()
    report = index_repo.check(base="HEAD~1")
    assert report.ok, [f.text() for f in errors(report)]
    (alpha,) = [r for r in report.results if r.subject == "plugins/alpha/1.0.0"]
    assert alpha.data["kind"] == "re-signed"
    # And the index builds: the yank counts by carol's signature alone.
    index_repo.tree.build(index_repo.path.parent / "site", previous=index_repo.path.parent / "site")


def test_a_yank_re_signature_by_a_key_without_the_delegation_is_refused(index_repo: IndexRepo) -> None:
    _yanked_by_alice_then_alice_revoked(index_repo, keep_prior_releases=True)
    sign_yank(index_repo.index / "plugins/alpha/1.0.0", index_repo.keys.bob)  # beta's maintainer
    index_repo.commit()
    found = errors(index_repo.check(base="HEAD~1"))
    assert {(f.rule, f.file.rsplit("/", 1)[0]) for f in found} == {
        ("root-revocation", f"{A}/1.0.0"),
        ("signature", f"{A}/1.0.0"),
    }, [f.text() for f in found]


def test_a_yank_signature_without_a_published_yank_is_still_refused(index_repo: IndexRepo) -> None:
    folder = index_repo.index / "plugins/alpha/1.0.0"
    (folder / f"yank.toml.{index_repo.keys.alice.key_id}.minisig").write_text("junk\n")
    index_repo.commit()
    assert not index_repo.check().ok


def test_a_manifest_that_does_not_parse_is_reported_once_not_as_a_missing_artifact_none(
    index_repo: IndexRepo,
) -> None:
    folder = index_repo.release("alpha", "1.1.0")
    (folder / "plugin.toml").write_text("[plugin\nname = 'alpha'\n")
    index_repo.commit()
    found = errors(index_repo.check())
    assert found and not [f.text() for f in found if "None" in f.text()], [f.text() for f in found]


def test_renaming_a_published_signature_is_release_removed_not_a_crash(index_repo: IndexRepo) -> None:
    """Review: the needless-signature check read the renamed file and crashed (internal-error, exit 3)."""
    folder = index_repo.index / "plugins/alpha/1.0.0"
    plain = folder / "plugin.toml.minisig"
    plain.rename(folder / f"plugin.toml.{index_repo.keys.alice.key_id}.minisig")
    index_repo.commit()
    found = errors(index_repo.check())
    rules = [(f.rule, f.file) for f in found]
    assert INTERNAL_ERROR_RULE not in {f.rule for f in found}, [f.text() for f in found]
    assert ("release-removed", f"{A}/1.0.0/plugin.toml.minisig") in rules, rules


def test_removing_the_published_manifest_while_re_signing_is_no_crash(index_repo: IndexRepo) -> None:
    _revoke_alice_and_delegate_carol(index_repo)
    folder = index_repo.index / "plugins/alpha/1.0.0"
    _cosign(folder, index_repo.keys.mallory)
    (folder / "plugin.toml").unlink()
    index_repo.commit()
    found = errors(index_repo.check())
    assert INTERNAL_ERROR_RULE not in {f.rule for f in found}, [f.text() for f in found]


def test_two_added_copies_of_one_new_yank_signature_are_refused(index_repo: IndexRepo) -> None:
    """Base: alice's yank, signed under the keyed name only.  PR: alice revoked, carol delegated,
    carol re-signs the yank (plain name), plus a copy of carol's signature under carol's keyed
    name with an untrusted comment of the pull request's own."""
    from datetime import UTC, datetime

    from registry_tool.trust.editing import add_maintainer, edit_root_dir, revoke, sign_root_dir

    keys = index_repo.keys
    folder = index_repo.index / "plugins/alpha/1.0.0"
    plain = index_repo.yank("alpha", "1.0.0", keys.alice)
    plain.rename(folder / f"yank.toml.{keys.alice.key_id}.minisig")
    index_repo.commit("base: alice yanks alpha 1.0.0 (keyed name)")
    root_dir = index_repo.index / "root"
    edit_root_dir(root_dir, revoke(keys.alice.key_id, now=datetime.now(UTC), keep_prior_releases=True))
    edit_root_dir(root_dir, add_maintainer("carol", [keys.mallory.public_key], ["alpha"]))
    sign_root_dir(root_dir, keys.root)
    new = sign_yank(folder, keys.mallory)
    assert new.name == "yank.toml.minisig"
    sig = dataclasses.replace(Signature.parse(new.read_text()), untrusted_comment="<script>x</script>")
    (folder / f"yank.toml.{keys.mallory.key_id}.minisig").write_text(sig.to_text())
    index_repo.commit()
    found = errors(index_repo.check(base="HEAD~1"))
    assert {f.rule for f in found} & {"release-changed", "signature-name"}, [f.text() for f in found]


def test_ci_check_refuses_a_new_release_whose_artifact_is_html(index_repo: IndexRepo) -> None:
    from registry_tool.signing.release import sign_release
    from tests.world import wasm

    from .conftest import ADD, manifest_text

    folder = index_repo.index / "plugins/alpha/1.1.0"
    folder.mkdir(parents=True)
    text = manifest_text("alpha", "1.1.0").replace('file = "alpha.wasm"', 'file = "readme.html"')
    assert 'file = "readme.html"' in text
    (folder / "plugin.toml").write_text(text)
    (folder / "readme.html").write_bytes(wasm(ADD))
    sign_release(folder, index_repo.keys.alice)
    index_repo.commit()
    found = errors(index_repo.check())
    assert [(f.rule, f.file) for f in found] == [("artifact-extension", f"{A}/1.1.0/plugin.toml")], [
        f.text() for f in found
    ]
