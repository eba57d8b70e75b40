"""Attacks and mistakes the build must refuse, each leaving the published SITE untouched."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from registry_tool.errors import CheckFailed
from registry_tool.format import meta_path
from registry_tool.registry.build import BuildOptions, BuildRefusedError, UnsafeIndexPathError, build_site
from registry_tool.registry.document import read_site_dir
from registry_tool.signing import sign_release

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
Index = Any


def build(index: Index, out: Path, **kw: Any) -> Any:
    opts: dict[str, Any] = {"now": NOW, "verify_now": NOW, "smoke": False, "keys": [index.keys.index]}
    opts.update(kw)
    return build_site(BuildOptions(index=index.path, out=out, **opts))


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def refused(index: Index, site: Path, **kw: Any) -> list[tuple[str, str, str]]:
    """Build must raise; returns (subject, rule, message) of every error; SITE must be unchanged."""
    before = tree(site) if site.exists() else None
    with pytest.raises(CheckFailed) as err:
        build(index, site, **kw)
    assert (tree(site) if site.exists() else None) == before
    assert not list(site.parent.glob(f".{site.name}.build-*")), "staging folder left behind"
    if isinstance(err.value, BuildRefusedError):
        return [(r.subject, f.rule, f.text()) for r, f in err.value.report.findings()]
    return [("", err.value.code, err.value.what)]


def _flip_signature_byte(index: Index) -> None:
    sig = index.release_dir("alpha", "1.1.0") / "plugin.toml.minisig"
    lines = sig.read_text().splitlines()
    line = list(lines[1])
    line[20] = "A" if line[20] != "A" else "B"
    lines[1] = "".join(line)
    sig.write_text("\n".join(lines) + "\n")


def _tamper_manifest(index: Index) -> None:
    path = index.release_dir("alpha", "1.1.0") / "plugin.toml"
    path.write_text(path.read_text().replace("adds two numbers", "adds two numbers!"))


def _outside_delegation(index: Index) -> None:
    # bob is delegated "beta" only; he signs a release of "alpha-evil".
    index.add_release("alpha-evil", "1.0.0", signer=index.keys.bob)


def _unknown_key(index: Index) -> None:
    index.add_release("alpha", "1.3.0", signer=index.keys.index2)


def _index_key_as_maintainer(index: Index) -> None:
    index.add_release("alpha", "1.3.0", signer=index.keys.index)


def _unsigned(index: Index) -> None:
    folder = index.release_dir("alpha", "1.1.0")
    (folder / "plugin.toml.minisig").unlink()


def _wasm_swapped(index: Index) -> None:
    a = index.release_dir("alpha", "1.0.0") / "alpha.wasm"
    b = index.release_dir("alpha", "1.1.0") / "alpha.wasm"
    a.write_bytes(b.read_bytes())  # a valid module, signed elsewhere: mix and match


def _signature_of_other_release(index: Index) -> None:
    src = index.release_dir("alpha", "1.0.0")
    dst = index.release_dir("alpha", "1.1.0")
    (dst / "plugin.toml").write_bytes((src / "plugin.toml").read_bytes())
    (dst / "plugin.toml.minisig").write_bytes((src / "plugin.toml.minisig").read_bytes())


def _unsigned_yank(index: Index) -> None:
    (index.release_dir("alpha", "1.0.0") / "yank.toml").write_text(
        '[yank]\nname = "alpha"\nversion = "1.0.0"\nreason = "forged"\n'
    )


def _yank_by_other_maintainer(index: Index) -> None:
    index.yank("alpha", "1.0.0", "not bob's to yank", signer=index.keys.bob)


CASES: dict[str, tuple[Callable[[Index], None], str, str]] = {
    "bad signature": (_flip_signature_byte, "alpha 1.1.0", ""),
    "manifest changed after signing": (_tamper_manifest, "alpha 1.1.0", "does not match"),
    "maintainer outside delegation": (_outside_delegation, "alpha-evil 1.0.0", ""),
    "unknown key": (_unknown_key, "alpha 1.3.0", ""),
    "index key signs a release": (_index_key_as_maintainer, "alpha 1.3.0", ""),
    "unsigned release": (_unsigned, "alpha 1.1.0", ""),
    "wasm swapped for another release's": (_wasm_swapped, "alpha 1.0.0", "sha256"),
    "signature of another release": (_signature_of_other_release, "alpha 1.1.0", ""),
    "unsigned yank": (_unsigned_yank, "alpha 1.0.0", ""),
    "yank by a maintainer of another plugin": (_yank_by_other_maintainer, "alpha 1.0.0", ""),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_release(index: Index, tmp_path: Path, case: str) -> None:
    site = tmp_path / "site"
    build(index, site)
    mutate, subject, fragment = CASES[case]
    mutate(index)
    problems = refused(index, site, now=LATER, verify_now=LATER)
    subjects = {s for s, _, _ in problems}
    assert subject in subjects, problems
    assert fragment in " ".join(m for _, _, m in problems)


def test_a_signature_file_that_is_not_utf8_is_refused(index: Index, tmp_path: Path) -> None:
    """Every verifier refuses it (trust.md 3.3), so the build never publishes it."""
    sig = index.release_dir("alpha", "1.1.0") / "plugin.toml.minisig"
    first, rest = sig.read_bytes().split(b"\n", 1)
    sig.write_bytes(first + b"\xff\n" + rest)
    problems = refused(index, tmp_path / "site")
    assert any(s == "alpha 1.1.0" and "not UTF-8" in m for s, _, m in problems)


def test_every_bad_release_is_reported_at_once(index: Index, tmp_path: Path) -> None:
    _flip_signature_byte(index)
    _outside_delegation(index)
    problems = refused(index, tmp_path / "site")
    assert {"alpha 1.1.0", "alpha-evil 1.0.0"} <= {s for s, _, _ in problems}


def test_revoked_key_signs_nothing_new(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    build(index, site)
    index.revoke(index.keys.alice, keep_prior_releases=False, at=NOW + timedelta(minutes=30))
    problems = refused(index, site, previous=str(site), now=LATER, verify_now=LATER)
    assert {"alpha 1.0.0", "alpha 1.1.0", "alpha-tools 0.1.0"} <= {s for s, _, _ in problems}
    assert any("revoked" in m for _, _, m in problems)


def test_revoked_key_keeps_prior_releases_only_when_the_root_says_so(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    build(index, site)
    index.revoke(index.keys.alice, keep_prior_releases=True, at=NOW + timedelta(minutes=30))
    # Releases published before the revocation stay; with --previous their publish time is known.
    result = build(index, site, previous=str(site), now=LATER, verify_now=LATER)
    assert result.document.plugins["alpha"]["1.0.0"].published_at == "2026-11-21T12:00:00Z"
    # Without the publish history they count as new, so the revoked key's signature is refused.
    problems = refused(index, tmp_path / "fresh", now=LATER, verify_now=LATER)
    assert any("revoked" in m for _, _, m in problems)
    # And a release the revoked key signs after the revocation is refused even with history.
    index.add_release("alpha", "1.5.0", variant=6)
    problems = refused(index, site, previous=str(site), now=LATER + timedelta(hours=1), verify_now=LATER)
    assert {s for s, _, _ in problems} == {"alpha 1.5.0"}


def test_a_document_clock_before_a_revocation_does_not_date_a_new_release_before_it(
    index: Index, tmp_path: Path
) -> None:
    # SOURCE_DATE_EPOCH (the document clock) is a commit's date, chosen by whoever made the commit:
    # a release signed after its key was revoked (keeping prior releases) passed as published before.
    site = tmp_path / "site"
    build(index, site)
    index.revoke(index.keys.alice, keep_prior_releases=True, at=NOW + timedelta(minutes=30))
    index.add_release("alpha", "1.5.0", variant=6)
    problems = refused(index, site, previous=str(site), now=NOW + timedelta(minutes=20), verify_now=LATER)
    assert {s for s, _, _ in problems} == {"alpha 1.5.0"}
    assert any("revoked" in m for _, _, m in problems)


def test_a_document_clock_before_a_revocation_is_not_recorded_as_the_publication_time(
    index: Index, tmp_path: Path
) -> None:
    # Judged at the real clock but recorded at SOURCE_DATE_EPOCH, a release signed by a revoked
    # key (keep_prior_releases) and a valid one passed; once the valid key was revoked too, later
    # builds and every client counted the revoked key's signature, made after its revocation.
    site = tmp_path / "site"
    build(index, site)
    mallory = index.keys.mallory

    def delegate(doc: dict[str, Any]) -> None:
        doc["keys"][mallory.key_id] = {"public_key": mallory.public_key.to_base64()}
        doc["maintainers"]["mallory"] = {"keyids": [mallory.key_id], "plugins": ["alpha"]}

    index.edit_root(delegate)
    index.revoke(index.keys.alice, keep_prior_releases=True, at=NOW + timedelta(minutes=30))
    folder = index.add_release("alpha", "1.5.0", variant=6)  # alice's, after her revocation
    sign_release(folder, mallory, timestamp=index.timestamp)
    built = build(index, site, previous=str(site), now=NOW + timedelta(minutes=20), verify_now=LATER)
    assert built.document.plugins["alpha"]["1.5.0"].published_at == LATER.strftime("%Y-%m-%dT%H:%M:%SZ")
    index.revoke(mallory, keep_prior_releases=False, at=LATER + timedelta(hours=1))
    later = LATER + timedelta(hours=2)
    problems = refused(index, site, previous=str(site), now=later, verify_now=later)
    assert {s for s, _, _ in problems} == {"alpha 1.5.0"}


def test_without_a_revocation_between_the_clocks_the_document_clock_is_recorded(
    index: Index, tmp_path: Path
) -> None:
    built = build(index, tmp_path / "site", now=NOW, verify_now=LATER)  # reproducible
    assert built.document.plugins["alpha"]["1.0.0"].published_at == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_releases_a_revoked_key_signed_can_be_withdrawn(index: Index, tmp_path: Path) -> None:
    """The incident path: the owners revoke a stolen key without keeping its releases and remove
    them from the index.  Restoring them cannot pass (their signatures no longer count), so their
    removal is a warning, not published-release-removed."""
    import shutil

    site = tmp_path / "site"
    build(index, site)
    index.revoke(index.keys.alice, keep_prior_releases=False, at=NOW + timedelta(minutes=30))
    for name, version in (("alpha", "1.0.0"), ("alpha", "1.1.0"), ("alpha-tools", "0.1.0")):
        shutil.rmtree(index.release_dir(name, version))
    result = build(index, site, previous=str(site), now=LATER, verify_now=LATER)
    assert "alpha" not in result.document.plugins and "alpha-tools" not in result.document.plugins
    withdrawn = [w for w in result.warnings if w.rule == "published-release-withdrawn"]
    assert {w.file for w in withdrawn} == {
        "plugins/alpha/1.0.0",
        "plugins/alpha/1.1.0",
        "plugins/alpha-tools/0.1.0",
    }
    assert all("revoked" in w.message for w in withdrawn)
    assert "beta" in result.document.plugins  # the others stay


def test_a_release_whose_signature_still_counts_cannot_be_removed(index: Index, tmp_path: Path) -> None:
    import shutil

    site = tmp_path / "site"
    build(index, site)
    # Kept prior releases still verify: removing one is still a refusal.
    index.revoke(index.keys.alice, keep_prior_releases=True, at=NOW + timedelta(minutes=30))
    shutil.rmtree(index.release_dir("alpha", "1.0.0"))
    problems = refused(index, site, previous=str(site), now=LATER, verify_now=LATER)
    assert [(s, r) for s, r, _ in problems] == [("previous registry", "published-release-removed")]


def test_changed_bytes_of_a_published_release(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    build(index, site)
    # The maintainer rebuilds 1.0.0 with different code and re-signs it: valid, but published is final.
    folder = index.release_dir("alpha", "1.0.0")
    other = index.release_dir("alpha-tools", "0.1.0") / "alpha-tools.wasm"
    (folder / "alpha.wasm").write_bytes(other.read_bytes())
    sign_release(folder, index.keys.alice)
    problems = refused(index, site, previous=str(site), now=LATER, verify_now=LATER)
    assert {(s, r) for s, r, _ in problems} == {("previous registry", "published-release-changed")}
    assert {m.split(" changed")[0] for _, _, m in problems} == {
        "plugins/alpha/1.0.0/plugin.toml: plugins/alpha/1.0.0/plugin.toml",
        "plugins/alpha/1.0.0/alpha.wasm: plugins/alpha/1.0.0/alpha.wasm",
    }


def test_published_release_removed(index: Index, tmp_path: Path) -> None:
    import shutil

    site = tmp_path / "site"
    build(index, site)
    shutil.rmtree(index.release_dir("beta", "2.0.0"))
    problems = refused(index, site, previous=str(site), now=LATER, verify_now=LATER)
    assert [(s, r) for s, r, _ in problems] == [("previous registry", "published-release-removed")]
    assert "yank.toml instead" in str(problems)


def test_a_published_release_the_build_refuses_is_not_called_missing(index: Index, tmp_path: Path) -> None:
    """It was reported twice: refused with its reason, and "missing from the index: restore it"."""
    site = tmp_path / "site"
    build(index, site)
    _flip_signature_byte(index)  # alpha 1.1.0, published, no longer verifies
    problems = refused(index, site, previous=str(site), now=LATER, verify_now=LATER)
    assert {s for s, _, _ in problems} == {"alpha 1.1.0"}, problems
    assert "published-release-removed" not in {r for _, r, _ in problems}


def test_backport_below_the_newest_published_version(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    build(index, site)
    index.add_release("alpha", "1.0.5", variant=7)
    problems = refused(index, site, previous=str(site), now=LATER, verify_now=LATER)
    assert [r for _, r, _ in problems] == ["version-goes-down"]


def test_previous_registry_with_a_forged_signature(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    build(index, site)
    doc = site / "registry.json"
    doc.write_bytes(doc.read_bytes().replace(b'"releases":4', b'"releases":5', 1))
    problems = refused(index, site, previous=str(site), now=LATER, verify_now=LATER)
    assert (
        problems[0][1] in {"check-failed", "bad-signature", "threshold-not-met"}
        or "signature" in problems[0][2]
    )


def test_previous_registry_with_a_modified_plugin_document(index: Index, tmp_path: Path) -> None:
    """Below the signed top document every file is pinned by digest: a modified one is refused."""
    site = tmp_path / "site"
    build(index, site)
    for path in (site / "meta").rglob("*.json"):
        data = path.read_bytes()
        if b'"registry-plugin"' in data:
            path.write_bytes(data.replace(b"adds two numbers", b"adds two numberz", 1))  # same size
            break
    problems = refused(index, site, previous=str(site), now=LATER, verify_now=LATER)
    assert problems[0][1] == "digest-mismatch", problems


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("..evil", "1.0.0"),
        (".hidden", "1.0.0"),
        ("Alpha", "1.0.0"),
        ("a", "1.0.0"),
        ("alpha", "1.0"),
        ("alpha", "01.0.0"),
        ("alpha", "1.0.0+build"),
        ("alpha", "..1.0.0"),
        ("alpha", "1.0.0 "),
        ("al pha", "1.0.0"),
    ],
)
def test_path_traversal_and_unsafe_names(index: Index, tmp_path: Path, name: str, version: str) -> None:
    folder = index.path / "plugins" / name / version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.toml").write_text("[plugin]\n")
    problems = refused(index, tmp_path / "site")
    assert problems[0][1] == UnsafeIndexPathError.code


def test_versions_differing_only_in_case(index: Index, tmp_path: Path) -> None:
    """1.2.0-RC1 and 1.2.0-rc1 are two versions to semver and one folder to macOS and Windows."""
    index.add_release("alpha", "1.2.0-RC1")
    index.add_release("alpha", "1.2.0-rc1", variant=1)
    problems = refused(index, tmp_path / "site")
    assert problems[0][1] == UnsafeIndexPathError.code
    assert "1.2.0-RC1 and 1.2.0-rc1" in problems[0][2] and "case" in problems[0][2]


def test_yank_signatures_without_a_yank_are_not_published(index: Index, tmp_path: Path) -> None:
    """Nothing verifies them without a yank.toml: published, they were unsigned files on the site."""
    folder = index.release_dir("alpha", "1.1.0")
    (folder / "yank.toml.minisig").write_bytes(b"<html>junk</html>")
    (folder / "yank.toml.0123456789ABCDEF.minisig").write_bytes(b"junk")
    build(index, tmp_path / "site")
    published = {p.name for p in (tmp_path / "site" / "plugins" / "alpha" / "1.1.0").iterdir()}
    assert not any(name.startswith("yank.toml") for name in published), published


def test_symlinked_release_folder(index: Index, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, index.path / "plugins" / "alpha" / "9.9.9")
    problems = refused(index, tmp_path / "site")
    assert problems[0][1] == UnsafeIndexPathError.code and "symlink" in problems[0][2]


def test_symlinked_wasm_file(index: Index, tmp_path: Path) -> None:
    wasm = index.release_dir("alpha", "1.0.0") / "alpha.wasm"
    secret = tmp_path / "secret.bin"
    secret.write_bytes(wasm.read_bytes())
    wasm.unlink()
    os.symlink(secret, wasm)
    problems = refused(index, tmp_path / "site")
    assert problems[0][1] == UnsafeIndexPathError.code


def test_manifest_name_differs_from_folder(index: Index, tmp_path: Path) -> None:
    src = index.release_dir("alpha", "1.1.0")
    dst = index.path / "plugins" / "alpha-tools" / "1.1.0"
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    problems = refused(index, tmp_path / "site")
    assert "alpha-tools 1.1.0" in {s for s, _, _ in problems}


def test_root_chain_with_a_gap(index: Index, tmp_path: Path) -> None:
    (index.path / "root" / "2.root.json").rename(index.path / "root" / "5.root.json")
    problems = refused(index, tmp_path / "site")
    assert problems[0][1] == "root-chain"


def test_expired_root(index: Index, tmp_path: Path) -> None:
    problems = refused(index, tmp_path / "site", verify_now=NOW + timedelta(days=400))
    assert "expired" in problems[0][2]


@pytest.mark.parametrize(
    ("where", "make", "expected"),
    [
        ("plugins/zeta", "link-to-dir", "is a symlink"),  # a plugin folder that is a link
        ("plugins/zeta", "link-to-file", "is a symlink"),  # a link to a file is not a plain file
        ("plugins/alpha/9.9.9", "link-to-file", "is a symlink"),
        ("plugins/zeta", "fifo", "is not a folder"),  # neither a plain file nor a folder
        ("plugins/alpha/9.9.9", "fifo", "is not a folder"),
        ("plugins/Beta", "dir", "plugin name 'Beta' in"),
        ("plugins/alpha/v1", "dir", "version 'v1' in"),
    ],
)
def test_scan_refuses_links_special_files_and_bad_names(
    index: Index, tmp_path: Path, where: str, make: str, expected: str
) -> None:
    path = index.path / where
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("x")
    if make == "link-to-dir":
        os.symlink(outside, path)
    elif make == "link-to-file":
        os.symlink(outside / "f", path)
    elif make == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    problems = refused(index, tmp_path / "site")
    assert problems[0][1] == UnsafeIndexPathError.code and expected in problems[0][2], problems


@pytest.mark.parametrize("where", [b"", b"data/"])
def test_a_file_name_that_is_not_utf8_is_refused(index: Index, tmp_path: Path, where: bytes) -> None:
    """Such a name cannot be published, and the build cache's keys are UTF-8: the scan says so."""
    folder = bytes(index.release_dir("alpha", "1.1.0"))
    if where:
        os.mkdir(folder + b"/" + where)
    with open(folder + b"/" + where + b"input-\xff.bin", "wb") as fh:
        fh.write(b"x")
    problems = refused(index, tmp_path / "site")
    assert problems[0][1] == UnsafeIndexPathError.code and "not UTF-8" in problems[0][2], problems


@pytest.mark.parametrize("where", ["plugins/README.md", "plugins/alpha/NOTES.txt", "plugins/.gitkeep"])
def test_scan_skips_plain_files(index: Index, tmp_path: Path, where: str) -> None:
    (index.path / where).write_text("not a release\n")
    result = build(index, tmp_path / "site")
    assert not (tmp_path / "site" / where).exists()
    assert result.document.plugins


@pytest.mark.parametrize("extra", ["2.root.json\n", "1.root.json.0123456789ABCDEF.minisig\n"])
def test_root_file_names_with_a_trailing_newline_are_not_published(
    index: Index, tmp_path: Path, extra: str
) -> None:
    """`$` matches before a final newline: root file names must match in full."""
    root_dir = index.path / "root"
    (root_dir / extra).write_bytes((root_dir / "1.root.json").read_bytes())
    site = tmp_path / "site"
    build(index, site)
    assert all("\n" not in p.name for p in site.rglob("*"))


def test_registry_toml_edited_after_the_root_pinned_it_is_refused(index: Index, tmp_path: Path) -> None:
    """Attack: registry.toml changed without the root threshold (e.g. pushed past the PR check)."""
    from registry_tool.registry.errors import UnpinnedConfigError
    from registry_tool.trust.editing import edit_root_dir, pin_registry_config, sign_root_dir

    config = index.path / "registry.toml"
    edit_root_dir(index.path / "root", pin_registry_config(config.read_bytes()), now=NOW)
    sign_root_dir(index.path / "root", index.keys.root)
    build(index, tmp_path / "site")  # the pinned bytes build
    config.write_text(config.read_text().replace('"ferrite:keys"', '"ferrite:net"'))
    with pytest.raises(UnpinnedConfigError, match="the root pins"):
        build(index, tmp_path / "site2")
    assert not (tmp_path / "site2").exists()


def _tamper_plugin_document_keeping_its_times(site: Path) -> Path:
    """Change a plugin document SITE's top document pins; same size, same mtime: only the ctime and
    the bytes tell."""
    for data in read_site_dir(site).encoded.values():
        if b"adds two numbers" in data:
            path = site / meta_path(hashlib.sha256(data).hexdigest())
            st = path.stat()
            path.write_bytes(data.replace(b"adds two numbers", b"adds two numberz", 1))
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
            return path
    raise AssertionError("no plugin document to tamper with in the site")


def test_previous_site_tampered_between_cached_builds_is_refused(index: Index, tmp_path: Path) -> None:
    """The build cache's record of the last publication never vouches for a file changed since."""
    site, cache = tmp_path / "site", tmp_path / "cache.json"
    build(index, site, cache_path=cache)
    _tamper_plugin_document_keeping_its_times(site)
    problems = refused(index, site, previous=str(site), cache_path=cache, now=LATER, verify_now=LATER)
    assert problems[0][1] == "digest-mismatch", problems


def test_previous_site_tampered_after_a_cached_rebuild_is_refused(index: Index, tmp_path: Path) -> None:
    """The same after an in-place rebuild (the record then describes files kept, not written)."""
    site, cache = tmp_path / "site", tmp_path / "cache.json"
    build(index, site, cache_path=cache)
    index.add_release("alpha", "1.2.0", variant=5)
    build(index, site, previous=str(site), cache_path=cache, now=LATER, verify_now=LATER)
    _tamper_plugin_document_keeping_its_times(site)
    later = LATER + timedelta(hours=1)
    problems = refused(index, site, previous=str(site), cache_path=cache, now=later, verify_now=later)
    assert problems[0][1] == "digest-mismatch", problems


def test_previous_site_replaced_by_another_build_and_tampered_is_refused(
    index: Index, tmp_path: Path
) -> None:
    """Another build's publication copied over SITE, one of its documents changed: refused by its pin."""
    site, other, cache = tmp_path / "site", tmp_path / "other", tmp_path / "cache.json"
    build(index, site, cache_path=cache)
    build(index, other, now=NOW + timedelta(minutes=1))
    for path in other.rglob("*"):
        if path.is_file() and (path.parent == other or "meta" in path.parts):
            target = site / path.relative_to(other)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    _tamper_plugin_document_keeping_its_times(site)
    problems = refused(index, site, previous=str(site), cache_path=cache, now=LATER, verify_now=LATER)
    assert problems[0][1] == "digest-mismatch", problems


def test_a_release_signed_before_the_new_release_rules_still_builds(index: Index, tmp_path: Path) -> None:
    # text-field and limit-precision are for what is submitted (validate, ci check): an index
    # signed before they existed must still build, published as every verifier reads it.
    from tests.world import IndexTree, add_module, manifest_text

    text = manifest_text("alpha", "1.2.0", limits={"fuel": 1_000_000, "wall_time": "12.5ms"})
    text = text.replace('description = "adds two numbers"', 'description = "adds \\u202e two numbers"')
    IndexTree.add_release(index, "alpha", "1.2.0", manifest=text, module=add_module(3))
    build(index, tmp_path / "site")
    release = read_site_dir(tmp_path / "site").plugins["alpha"]["1.2.0"]
    assert release.limits.wall_time_ms == 13  # a half away from zero, as Go and Rust read it


def test_an_oversized_signature_file_is_refused_unread(index: Index, tmp_path: Path) -> None:
    """A 2 GiB sparse "signature" in the index was read whole, held in memory and published."""
    sig = index.release_dir("alpha", "1.0.0") / "plugin.toml.0123456789ABCDEF.minisig"
    with sig.open("wb") as fh:
        fh.truncate(2 * 1024**3)  # sparse: no disk used
    found = refused(index, tmp_path / "site")
    assert any("more than the 16 KiB a signature file may have" in message for _, _, message in found), found


def test_a_folder_named_like_a_root_version_is_refused_with_a_fix_that_fits(
    index: Index, tmp_path: Path
) -> None:
    """The fix said "replace the symlink" for a folder too."""
    (index.path / "root" / "9.root.json").mkdir()
    with pytest.raises(UnsafeIndexPathError) as err:
        build(index, tmp_path / "site")
    assert "not a regular file (a folder)" in err.value.what
    assert "replace it by the file itself" in (err.value.fix or "")


def test_a_missing_artifact_under_a_reserved_name_is_a_finding_not_a_crash(
    index: Index, tmp_path: Path
) -> None:
    """The build tolerates a reserved artifact name in an indexed release (a rule for new ones), so
    validation must go on to find the file missing: the build read it anyway and exited 2."""
    folder = index.release_dir("alpha", "1.1.0")
    manifest = folder / "plugin.toml"
    (folder / "alpha.wasm").rename(folder / "PLUGIN.TOML")
    manifest.write_text(manifest.read_text().replace('file = "alpha.wasm"', 'file = "PLUGIN.TOML"'))
    for sig in folder.glob("plugin.toml*.minisig"):
        sig.unlink()
    sign_release(folder, index.keys.signer_for("alpha"))
    (folder / "PLUGIN.TOML").unlink()
    problems = refused(index, tmp_path / "site")
    assert "artifact-missing" in [rule for _, rule, _ in problems], problems


@pytest.mark.parametrize("kind", ["file", "dangling-link"])
def test_a_plugins_entry_that_is_no_folder_is_refused(index: Index, tmp_path: Path, kind: str) -> None:
    """It published an empty registry (every plugin gone) and exited 0."""
    import shutil

    plugins = index.path / "plugins"
    shutil.rmtree(plugins)
    if kind == "file":
        plugins.write_text("not a folder\n")
    else:
        os.symlink(tmp_path / "nowhere", plugins)
    problems = refused(index, tmp_path / "site")
    assert [rule for _, rule, _ in problems] == [UnsafeIndexPathError.code], problems


def test_a_previous_site_that_cannot_be_reached_is_the_environment_and_a_bad_one_is_the_input(
    index: Index, tmp_path: Path
) -> None:
    """README: no site there or a network failure exits 2; a site that is there but bad exits 1."""
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for previous in (str(tmp_path / "nowhere"), f"http://127.0.0.1:{port}/"):
        with pytest.raises(CheckFailed) as err:
            build(index, tmp_path / "out", previous=previous)
        assert (err.value.code, err.value.exit_code) == ("previous-registry", 2), previous
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "registry.json").write_text("{ not json")
    with pytest.raises(CheckFailed) as err:
        build(index, tmp_path / "out", previous=str(bad))
    assert err.value.exit_code == 1


def test_a_root_version_signed_under_the_unkeyed_name_is_refused(index: Index, tmp_path: Path) -> None:
    """Root versions use only the keyed name: no client fetches ``N.root.json.minisig``, so the
    build never counts it (it published a root version every Go and Rust host refused)."""
    root = index.path / "root"
    keyed = sorted(root.glob("2.root.json.*.minisig"))
    keyed[0].rename(root / "2.root.json.minisig")
    problems = refused(index, tmp_path / "site")
    assert problems[0][1] == "signature-name"
    assert "2.root.json.minisig" in problems[0][2]
