"""Publishing into an existing site: O(changed) writes, atomic as a client sees it, crash-safe."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from registry_tool.format import REGISTRY_JSON, FileRef, Limits, Release, SmokeFigure, TopDocument
from registry_tool.registry import build as build_mod
from registry_tool.registry import publish as publish_mod
from registry_tool.registry.build import BuildOptions, BuildResult, build_site
from registry_tool.registry.document import Publication, read_publication, read_site_dir, release_as_written

from .site_check import assert_valid_site, read_site

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
Index = Any  # conftest.Index


def build(index: Index, out: Path, **kw: object) -> BuildResult:
    opts = {"now": NOW, "verify_now": NOW, "smoke": False, "keys": [index.keys.index]}
    opts.update(kw)
    return build_site(BuildOptions(index=index.path, out=out, **opts))  # type: ignore[arg-type]


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def inodes(folder: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every file and folder: a rewritten or re-created entry gets new ones."""
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*")
    }


def test_rebuild_touches_only_changed_files(index: Index, tmp_path: Path) -> None:
    site, cache = tmp_path / "site", tmp_path / "cache.json"
    build(index, site, cache_path=cache)
    before = inodes(site)
    index.add_release("beta", "2.1.0", variant=7)
    result = build(index, site, previous=str(site), cache_path=cache, now=LATER)
    after = inodes(site)
    # Every unchanged file and release folder is the same entry: not rewritten, re-created or re-linked.
    watched = {p for p in before if p in after and ((site / p).is_file() or p.count("/") == 2)}
    assert {p for p in watched if after[p] != before[p]} == {REGISTRY_JSON, f"{REGISTRY_JSON}.minisig"}
    written = {p for p in after if p not in before and (site / p).is_file()}
    # The new release's 3 files, beta's plugin document, the tree's leaf, the catalog.
    assert len(written) == 6, sorted(written)
    assert result.site_files["written"] == len(written) + 2  # + registry.json and its signature
    assert result.site_files["removed"] == 0
    assert_valid_site(site, index)
    assert read_site(site) == result.document


def test_one_change_rebuild_keeps_the_previous_metadata_for_readers_in_flight(
    index: Index, tmp_path: Path
) -> None:
    """A client that read the previous top document just before the publish still finds its documents."""
    site = tmp_path / "site"
    build(index, site)
    old_top = TopDocument.parse((site / REGISTRY_JSON).read_bytes())
    index.add_release("beta", "2.1.0", variant=7)
    build(index, site, previous=str(site), now=LATER)

    def read(rel: str, cap: int) -> bytes:
        return (site / rel).read_bytes()[: cap + 1]

    assert "2.1.0" not in read_publication(old_top, read).plugins["beta"]
    # One generation later the documents only the first publication pinned are collected.
    index.add_release("beta", "2.2.0", variant=8)
    build(index, site, previous=str(site), now=LATER + timedelta(hours=1))
    with pytest.raises(OSError):
        read_publication(old_top, read)
    assert_valid_site(site, index)


STEPS = ["releases", "root", "meta", "catalog", "top-ready", "top-signatures", "top", "collect"]


@pytest.mark.parametrize("step", STEPS)
def test_crash_mid_publish_leaves_old_site_valid(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    site = tmp_path / "site"
    build(index, site)
    before = tree(site)
    old_version = TopDocument.parse(before[REGISTRY_JSON]).version
    index.add_release("beta", "2.1.0", variant=7)
    seen: list[str] = []

    def checkpoint(name: str) -> None:
        seen.append(name)
        if name == step:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(publish_mod, "checkpoint", checkpoint)
    with pytest.raises(OSError, match="No space left"):
        build(index, site, previous=str(site), now=LATER)
    assert step in seen
    top = assert_valid_site(site, index)
    if STEPS.index(step) < STEPS.index("top-signatures"):
        assert tree(site) == before  # nothing a reader can see changed, nothing left behind
        assert top.version == old_version
    else:  # the signatures were renamed in: the build completes the top document instead
        assert top.version > old_version
    assert not list(tmp_path.glob(".site.build-*"))
    monkeypatch.undo()
    result = build(index, site, previous=str(site), now=LATER + timedelta(hours=1))
    assert "2.1.0" in result.document.plugins["beta"]
    assert_valid_site(site, index)


def test_reader_never_sees_a_top_document_pinning_files_not_yet_written(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    build(index, site)
    index.add_release("beta", "2.1.0", variant=7)
    index.add_release("alpha", "1.2.0", variant=8)
    checked: list[str] = []

    def checkpoint(name: str) -> None:
        # Whatever top document a reader gets at any step, everything it pins is there.  Between
        # the signatures' rename and the top document's (one step, two renames) the pair differs.
        assert_valid_site(site, index, signatures=name != "top-signatures")
        checked.append(name)

    monkeypatch.setattr(publish_mod, "checkpoint", checkpoint)
    build(index, site, previous=str(site), now=LATER)
    assert checked == STEPS


KILLED = textwrap.dedent(
    """
    import os, pickle, sys
    from pathlib import Path
    from registry_tool.registry import publish
    def die(name):
        if name == "top-signatures":
            os._exit(9)
    publish.checkpoint = die
    from registry_tool.registry.build import build_site
    build_site(pickle.loads(Path(sys.argv[1]).read_bytes()))
    """
)


def test_kill_between_signature_and_top_rename_is_completed_by_the_next_build(
    index: Index, tmp_path: Path
) -> None:
    import pickle

    site = tmp_path / "site"
    build(index, site)
    index.add_release("beta", "2.1.0", variant=7)
    opts = BuildOptions(
        index=index.path,
        out=site,
        keys=[index.keys.index],
        now=LATER,
        verify_now=NOW,
        smoke=False,
        previous=str(site),
    )
    (tmp_path / "opts.pickle").write_bytes(pickle.dumps(opts))
    proc = subprocess.run([sys.executable, "-c", KILLED, str(tmp_path / "opts.pickle")], check=False)
    assert proc.returncode == 9
    assert list(tmp_path.glob(".site.build-*")), "the killed build should have left its journal"
    result = build(index, site, previous=str(site), now=LATER + timedelta(hours=1))
    assert not list(tmp_path.glob(".site.build-*"))
    assert result.previous_version == int(LATER.strftime("%Y%m%d%H%M%S"))  # the killed build's
    assert "2.1.0" in result.document.plugins["beta"]
    assert_valid_site(site, index)


def test_a_published_file_changed_without_previous_is_replaced_atomically(
    index: Index, tmp_path: Path
) -> None:
    """Without --previous a release may change its bytes: the site is then re-staged and swapped."""
    site = tmp_path / "site"
    build(index, site)
    release_dir = index.release_dir("alpha", "1.0.0")
    for f in release_dir.iterdir():
        f.unlink()
    index.add_release("alpha", "1.0.0", variant=9)
    build(index, site, now=LATER)
    assert_valid_site(site, index)
    assert (site / "plugins/alpha/1.0.0/alpha.wasm").read_bytes() == (release_dir / "alpha.wasm").read_bytes()


def test_removed_release_and_yank_files_are_collected(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    build(index, site)
    index.yank("alpha", "1.0.0", "broken")
    build(index, site, now=LATER)
    assert (site / "plugins/alpha/1.0.0/yank.toml").is_file()
    for f in (index.release_dir("alpha", "1.0.0")).glob("yank.toml*"):
        f.unlink()
    import shutil

    shutil.rmtree(index.release_dir("alpha-tools", "0.1.0"))
    build(index, site, now=LATER + timedelta(hours=1))
    assert not list((site / "plugins/alpha/1.0.0").glob("yank.toml*"))
    # A removed release stays one more build (readers of the replaced top document fetch it).
    assert (site / "plugins/alpha-tools").exists()
    build(index, site, now=LATER + timedelta(hours=2))
    assert not (site / "plugins/alpha-tools").exists()
    assert_valid_site(site, index)


def test_registry_package_does_not_import_the_builder() -> None:
    code = (
        "import sys, registry_tool.registry; "
        "print(sorted(m for m in sys.modules if m.startswith('registry_tool.registry.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_resign_rewrites_only_the_top_document(index: Index, tmp_path: Path) -> None:
    from registry_tool.registry import resign_site

    site = tmp_path / "site"
    build(index, site)
    before = inodes(site)
    resign_site(site, [index.keys.index], LATER, verify_now=NOW)
    after = inodes(site)
    changed = {p for p in before if after.get(p) != before[p]}
    assert changed == {REGISTRY_JSON, f"{REGISTRY_JSON}.minisig"}
    assert_valid_site(site, index)


def test_site_files_left_by_nobody_are_not_trusted(index: Index, tmp_path: Path) -> None:
    """A metadata file at a content address with other bytes (tampered, torn) is rewritten."""
    site = tmp_path / "site"
    build(index, site)
    index.add_release("beta", "2.1.0", variant=7)
    # Pre-compute where the new documents will go by building elsewhere, then plant garbage there.
    other = tmp_path / "other"
    build(index, other, previous=str(site), now=LATER)
    planted = sorted(
        p.relative_to(other).as_posix()
        for p in (other / "meta").rglob("*.json")
        if not (site / p.relative_to(other)).exists()
    )
    assert planted
    for rel in planted:
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(b"{}")
    os.sync()
    build(index, site, previous=str(site), now=LATER)
    assert_valid_site(site, index)


def test_cached_rebuild_decodes_its_own_plugin_documents_without_reparsing(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Documents the cache recorded are not parsed by the rules again; unchanged ones are not even read."""
    from registry_tool.registry import document as document_mod

    site, cache = tmp_path / "site", tmp_path / "cache.json"
    build(index, site, cache_path=cache)
    full = read_site_dir(site)

    def no_parse(*args: object, **kw: object) -> object:
        raise AssertionError("a plugin document this tool wrote was parsed again")

    read_paths: list[str] = []
    real_fetch = document_mod.fetch_pinned

    def fetch_spy(read: Any, pin: Any) -> bytes:
        read_paths.append(pin.path)
        return real_fetch(read, pin)

    monkeypatch.setattr(document_mod.PluginDocument, "parse", no_parse)
    monkeypatch.setattr(document_mod, "fetch_pinned", fetch_spy)
    loaded: list[Publication] = []
    real = build_mod.load_previous

    def spy(*args: Any, **kw: Any) -> Publication:
        loaded.append(real(*args, **kw))
        return loaded[-1]

    monkeypatch.setattr(build_mod, "load_previous", spy)
    index.add_release("beta", "2.1.0", variant=7)
    result = build(index, site, previous=str(site), cache_path=cache, now=LATER)
    assert full.pins["beta"].path in read_paths  # the changed plugin's document is read by its pin
    assert full.pins["alpha"].path not in read_paths  # the unchanged one is carried over unread
    monkeypatch.undo()
    assert result.document.pins == {} and result.document.plugins["alpha"] == full.plugins["alpha"]
    assert loaded == [full]
    assert loaded[0].documents == full.documents
    assert {n: loaded[0].document_bytes(n) for n in full.plugins} == full.encoded
    assert_valid_site(site, index)
    assert read_site(site) == result.document


def test_release_as_written_inverts_to_json() -> None:
    """The record's reader rebuilds exactly the release the build wrote (every field, yank and smoke)."""
    sha = "ab" * 32
    release = Release(
        name="alpha",
        version="1.0.0",
        description="d",
        license="MIT",
        abi="core",
        host=">=0.2.0",
        exports=("run", "add"),
        permissions=("net",),
        limits=Limits(1, 2, 3),
        manifest=FileRef("plugins/alpha/1.0.0/plugin.toml", sha, 10),
        wasm=FileRef("plugins/alpha/1.0.0/a.wasm", sha, 20),
        signers=("K1",),
        published_at="2026-11-21T12:00:00Z",
        yanked="broken",
        smoke=(SmokeFigure("t", 5, None),),
        authors=("a",),
        keywords=("k",),
        homepage="https://example.org",
        repository=None,
        dependencies={"beta": "^1.0"},
    )
    assert release_as_written("alpha", "1.0.0", json.loads(json.dumps(release.to_json()))) == release
    plain = dataclasses.replace(release, yanked=None, smoke=None, dependencies={})
    assert release_as_written("alpha", "1.0.0", json.loads(json.dumps(plain.to_json()))) == plain


@pytest.mark.parametrize(
    "planted",
    ["root", "meta", "plugins", "plugins/alpha", "meta/{hh}"],
)
@pytest.mark.parametrize("previous", [True, False])
def test_a_link_planted_in_the_site_is_refused_and_nothing_outside_is_touched(
    index: Index, tmp_path: Path, planted: str, previous: bool
) -> None:
    """Whoever can write SITE must not make the builder write or delete elsewhere through a link."""
    import shutil

    from registry_tool.registry.site import UnsafeSiteError

    site = tmp_path / "site"
    build(index, site)
    top = json.loads((site / REGISTRY_JSON).read_bytes())
    hh = top["catalog"]["sha256"][:2]
    planted = planted.format(hh=hh)
    victim = tmp_path / "victim"
    shutil.copytree(site / planted, victim)
    (victim / "precious.txt").write_bytes(b"keep me")
    (victim / "sub").mkdir(exist_ok=True)
    (victim / "sub" / "deep.txt").write_bytes(b"keep me too")
    (victim / "1.0.0").mkdir(exist_ok=True)
    (victim / "1.0.0" / "precious.txt").write_bytes(b"and me")
    shutil.rmtree(site / planted)
    (site / planted).symlink_to(victim, target_is_directory=True)
    before = tree(victim)
    index.add_release("beta", "2.1.0", variant=7)
    with pytest.raises(UnsafeSiteError, match="symbolic link"):
        build(index, site, now=LATER, **({"previous": str(site)} if previous else {}))
    assert tree(victim) == before


def test_resign_renews_only_a_top_document_its_key_signed_before() -> None:
    """A chain planted in SITE could make a forged top document verify; resign must not sign it."""
    from registry_tool.registry.resign import ResignRefusedError, _require_own_signature
    from registry_tool.signing import SecretKey, sign_bytes

    genuine, forger = SecretKey.generate(), SecretKey.generate()
    data = b'{"forged":true}\n'
    forged = [sign_bytes(forger, data, trusted_comment="t")]
    with pytest.raises(ResignRefusedError, match="no valid signature by the key"):
        _require_own_signature(data, forged, [genuine], "registry.json")
    _require_own_signature(data, [*forged, sign_bytes(genuine, data, trusted_comment="t")], [genuine], "x")


def test_a_build_failing_after_its_journal_then_killed_leaves_no_journal_to_complete(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The undo withdraws the ready marker first: the next build must not publish over undone files."""
    site = tmp_path / "site"
    build(index, site)
    before = tree(site)
    index.add_release("beta", "2.1.0", variant=7)

    def checkpoint(name: str) -> None:
        if name == "top-ready":
            raise KeyboardInterrupt

    monkeypatch.setattr(publish_mod, "checkpoint", checkpoint)
    # Killed before the staging folder is cleaned up: the journal stays on disk.
    real_rmtree = build_mod.shutil.rmtree

    def rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path).name.startswith(".site.build-"):
            return  # the kill: the staging folder and its journal stay
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(build_mod.shutil, "rmtree", rmtree)
    with pytest.raises(KeyboardInterrupt):
        build(index, site, previous=str(site), now=LATER)
    monkeypatch.undo()
    assert list(tmp_path.glob(".site.build-*")), "the journal folder should be left behind"
    assert tree(site) == before
    result = build(index, site, previous=str(site), now=LATER + timedelta(hours=1))
    assert "2.1.0" in result.document.plugins["beta"]
    assert_valid_site(site, index)
