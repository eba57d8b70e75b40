"""One-change rebuilds that keep unchanged plugins whole, tried against what a full build publishes.

A rebuild with the build cache and ``--previous SITE`` keeps a plugin whose index files, cache
context and SITE files all still have their recorded prints without looking at its releases again
(``build._kept_whole``), and carries a plugin document whose releases have the recorded content
keys without reading it (``build._carried``).  Each test here changes something a kept plugin
depends on and checks the rebuild notices, and the differential test checks every step publishes
the same bytes as a build without any cache.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from registry_tool.registry import build as build_mod
from registry_tool.registry import cache as cache_mod
from registry_tool.registry.build import BuildRefusedError
from registry_tool.registry.document import PublicationError
from registry_tool.report import Severity
from tests.world import IndexTree
from tests.world import manifest_text as world_manifest

from .conftest import add_wasm
from .rebuilds import build_at as _build
from .site_check import assert_valid_site

Index = Any  # conftest.Index


@pytest.fixture(autouse=True)
def _no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files here are written (or ``utime``-d, which moves ctime) moments before each build.

    With the real 2 s window nothing would be trusted by its stat print until the clock moved on;
    the tests of the window itself set it explicitly.
    """
    monkeypatch.setattr(cache_mod, "RACY_SECONDS", 0.0)


def _age(index: Index) -> None:
    """Index files written in the last ten minutes made an hour old (outside the cache's racy window).

    Only those: ``utime`` moves a file's ctime, which is part of its stat print.
    """
    now = time.time()
    for path in (index.path / "plugins").rglob("*"):
        if path.is_file() and path.stat().st_mtime > now - 600:
            os.utime(path, (now - 3600, now - 3600))


def _tree(site: Path) -> dict[str, bytes]:
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}


def _add_dependent(index: Index, name: str, version: str, deps: dict[str, str], variant: int) -> Path:
    return IndexTree.add_release(
        index,
        name,
        version,
        manifest=world_manifest(name, version, limits={"fuel": 1_000_000}, dependencies=deps),
        module=add_wasm(variant),
    )


def _spy_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    looked: list[str] = []
    real = build_mod.lookup

    def spy(rel: Any, *args: Any, **kw: Any) -> Any:
        looked.append(rel.key)
        return real(rel, *args, **kw)

    monkeypatch.setattr(build_mod, "lookup", spy)
    return looked


# --------------------------------------------------------------------------- same bytes as a full build

STEPS: list[tuple[str, Callable[[Index], None]]] = [
    ("nothing changed", lambda index: None),
    ("a release added", lambda index: index.add_release("alpha", "1.2.0", variant=4)),
    ("a plugin added", lambda index: index.add_release("alpha-gamma", "0.1.0", variant=5)),
    ("a release yanked", lambda index: index.yank("alpha", "1.0.0", "broken")),
    (
        "a dependent added",
        lambda index: _add_dependent(index, "alpha-delta", "1.0.0", {"beta": "^2.0.0"}, 6),
    ),
    ("every file touched (a fresh checkout)", lambda index: _touch_all(index)),
    ("nothing changed again", lambda index: None),
]


def _touch_all(index: Index) -> None:
    for path in (index.path / "plugins").rglob("*"):
        if path.is_file():
            path.write_bytes(path.read_bytes())  # new inode-time prints, the same bytes


def test_every_rebuild_publishes_what_a_build_without_cache_publishes(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Incremental (cache, --previous SITE) and from-scratch builds in lockstep: identical sites."""
    cached, plain, cache = tmp_path / "cached", tmp_path / "plain", tmp_path / "cache"
    _age(index)
    _build(index, cached, 0, cache)
    _build(index, plain, 0, None)
    kept = 0
    for at, (what, change) in enumerate(STEPS, start=1):
        change(index)
        _age(index)
        looked = _spy_lookups(monkeypatch)
        _build(index, cached, at, cache)
        monkeypatch.undo()
        kept += len(index.releases) - len(looked)
        _build(index, plain, at, None)
        assert _tree(cached) == _tree(plain), what
        assert_valid_site(cached, index)
    assert kept > 0  # some steps kept plugins whole


def test_an_unchanged_plugin_is_neither_looked_up_nor_read(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry_tool.registry import document as document_mod

    site, cache = tmp_path / "site", tmp_path / "cache"
    _age(index)
    _build(index, site, 0, cache)
    index.add_release("beta", "2.1.0", variant=7)
    _age(index)
    looked = _spy_lookups(monkeypatch)
    read: list[str] = []
    real_fetch = document_mod.fetch_pinned

    def fetch_spy(reader: Any, pin: Any) -> bytes:
        read.append(pin.path)
        return real_fetch(reader, pin)

    monkeypatch.setattr(document_mod, "fetch_pinned", fetch_spy)

    def no_strict_parse(*args: Any, **kw: Any) -> Any:
        raise AssertionError("a tree node this tool wrote was parsed by the rules again")

    monkeypatch.setattr(document_mod.NodeDocument, "parse", no_strict_parse)
    result = _build(index, site, 1, cache)
    assert sorted(looked) == ["beta/2.0.0", "beta/2.1.0"]  # alpha and alpha-tools kept whole
    assert result.counts == {"verified": 1, "cached": 4, "smoked": 0}
    monkeypatch.undo()
    published = result.document.plugins
    assert read  # the tree nodes are fetched by their pins
    assert published["alpha"]["1.1.0"].published_at == "2026-11-21T12:00:00Z"
    assert_valid_site(site, index)


# --------------------------------------------------------------------------- what a kept plugin still notices


def test_an_index_file_changed_in_place_with_its_mtime_restored_is_looked_at(
    index: Index, tmp_path: Path
) -> None:
    """Same size, mtime set back: the ctime in the stat print moves, so the plugin is not kept."""
    site, cache = tmp_path / "site", tmp_path / "cache"
    _age(index)
    _build(index, site, 0, cache)
    manifest = index.release_dir("alpha", "1.0.0") / "plugin.toml"
    st = manifest.stat()
    text = manifest.read_text()
    manifest.write_text(text.replace("adds two numbers", "adds two numberz"))
    os.utime(manifest, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert manifest.stat().st_size == st.st_size
    with pytest.raises(BuildRefusedError) as err:
        _build(index, site, 1, cache)
    assert "alpha 1.0.0" in {r.subject for r in err.value.report.results}


def test_a_site_release_file_changed_in_place_is_restored(index: Index, tmp_path: Path) -> None:
    """A kept plugin's published file tampered in SITE (mtime restored): the rebuild repairs SITE."""
    site, cache = tmp_path / "site", tmp_path / "cache"
    _age(index)
    _build(index, site, 0, cache)
    published = site / "plugins" / "alpha" / "1.0.0" / "alpha.wasm"
    good = published.read_bytes()
    st = published.stat()
    published.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    os.utime(published, ns=(st.st_atime_ns, st.st_mtime_ns))
    index.add_release("beta", "2.1.0", variant=7)
    _age(index)
    _build(index, site, 1, cache)  # the whole site is staged again, every release included
    assert published.read_bytes() == good
    assert_valid_site(site, index)


def test_a_plugin_document_changed_in_place_is_refused_as_before(index: Index, tmp_path: Path) -> None:
    site, cache = tmp_path / "site", tmp_path / "cache"
    _age(index)
    first = _build(index, site, 0, cache)
    assert first.document.pins == {}  # a plan's publication has no pins; read them from SITE
    from registry_tool.registry.document import read_site_dir

    doc = site / read_site_dir(site).pins["alpha"].path
    data = doc.read_bytes()
    st = doc.stat()
    doc.write_bytes(data.replace(b"adds two numbers", b"adds two numberz"))
    os.utime(doc, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(PublicationError):
        _build(index, site, 1, cache)


def test_a_kept_plugins_dependency_made_unsatisfiable_by_a_yank_is_a_warning(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alpha-delta (kept whole) needs beta ^2.0.0; yanking beta's only release is published (a yank is
    a security response: refusing the build kept the yanked release installable) with a warning."""
    site, cache = tmp_path / "site", tmp_path / "cache"
    _add_dependent(index, "alpha-delta", "1.0.0", {"beta": "^2.0.0"}, 6)
    _age(index)
    _build(index, site, 0, cache)
    index.yank("beta", "2.0.0", "broken")
    _age(index)
    looked = _spy_lookups(monkeypatch)
    result = _build(index, site, 1, cache)
    assert "alpha-delta/1.0.0" not in looked  # kept whole: its dependency comes from the record
    (warning,) = [f for f in result.warnings if f.rule == "dependency-unsatisfiable"]
    assert warning.severity is Severity.warning and "alpha-delta 1.0.0 needs beta ^2.0.0" in warning.message
    assert "yanked" in warning.message


def test_a_dependency_nothing_matches_is_refused(index: Index, tmp_path: Path) -> None:
    _add_dependent(index, "alpha-delta", "1.0.0", {"beta": "^9.0.0"}, 6)
    with pytest.raises(BuildRefusedError) as err:
        _build(index, tmp_path / "site", 0, tmp_path / "cache")
    codes = {f.rule for r in err.value.report.results for f in r.findings}
    assert "dependency-unsatisfiable" in codes


def test_files_modified_just_before_the_record_are_not_trusted(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within the racy window the stat print proves nothing: the plugin's releases are looked up.

    The files get an mtime an hour ahead (a checkout from a machine whose clock runs fast), which
    is inside the window whenever the record is written: no timing luck involved.
    """
    site, cache = tmp_path / "site", tmp_path / "cache"
    ahead = time.time() + 3600
    for path in (index.path / "plugins" / "alpha").rglob("*"):
        if path.is_file():
            os.utime(path, (ahead, ahead))
    _age_others = [
        p for p in (index.path / "plugins").rglob("*") if p.is_file() and "alpha" not in p.parts[-3]
    ]
    for path in _age_others:
        os.utime(path, (ahead - 7200, ahead - 7200))
    _build(index, site, 0, cache)
    looked = _spy_lookups(monkeypatch)
    _build(index, site, 1, cache)
    assert {"alpha/1.0.0", "alpha/1.1.0"} <= set(looked)
    assert "beta/2.0.0" not in looked  # kept whole: its files are an hour old


def test_a_smoke_setting_change_is_not_kept(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site, cache = tmp_path / "site", tmp_path / "cache"
    _age(index)
    _build(index, site, 0, cache)
    looked = _spy_lookups(monkeypatch)
    result = _build(index, site, 1, cache, smoke=True)  # entries now carry smoke figures
    assert len(looked) == 4
    assert result.counts["smoked"] == 4


def test_files_with_a_new_ctime_are_not_trusted_whatever_their_mtime(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``rsync -t``, ``cp -p`` and ``tar x`` set mtime back after writing: ctime still says when.

    The window is made an hour wide: the files' ctime (now) is inside it, their mtime (two hours
    ago) is not, so only a test that looks at ctime looks at alpha again.
    """
    site, cache = tmp_path / "site", tmp_path / "cache"
    old = time.time() - 7200
    for path in (index.path / "plugins").rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))
    _build(index, site, 0, cache)
    monkeypatch.setattr(cache_mod, "RACY_SECONDS", 3600.0)
    looked = _spy_lookups(monkeypatch)
    _build(index, site, 1, cache)
    assert {"alpha/1.0.0", "alpha/1.1.0"} <= set(looked)


def test_the_plugin_print_dates_from_before_the_scan(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The racy window is measured from before the build looked at any file, not from its end."""
    site, cache = tmp_path / "site", tmp_path / "cache"
    _age(index)
    scans: list[float] = []
    real = build_mod.scan_releases

    def timed(*args: Any) -> Any:
        scans.append(time.time())
        return real(*args)

    monkeypatch.setattr(build_mod, "scan_releases", timed)
    _build(index, site, 0, cache)
    record = cache_mod.BuildCache(cache).publication(site.resolve())
    assert record is not None
    wholes = [known.whole for known in record.documents.values()]
    assert wholes and all(w is not None and w.written_at <= scans[0] for w in wholes)


def test_registry_json_gone_before_publishing_never_publishes_a_partial_site(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SITE lost registry.json between the plan and publishing (another process: a mirror job, an
    rsync --delete).  The content leaves out the kept plugins, so it is never staged alone; the
    build starts again with every release, and then refuses a folder without registry.json."""
    from registry_tool.registry.site import UnsafeSiteError

    site, cache = tmp_path / "site", tmp_path / "cache"
    _age(index)
    _build(index, site, 0, cache)
    index.add_release("beta", "2.1.0", variant=7)
    _age(index)
    real = build_mod.plan_publication

    def plan_then_vanish(*args: Any, **kw: Any) -> Any:
        plan = real(*args, **kw)
        (site / "registry.json").unlink(missing_ok=True)
        return plan

    monkeypatch.setattr(build_mod, "plan_publication", plan_then_vanish)
    with pytest.raises(UnsafeSiteError):
        _build(index, site, 1, cache)
    assert (site / "plugins" / "alpha" / "1.0.0" / "alpha.wasm").is_file()  # nothing was staged over it
    assert not (site / "plugins" / "beta" / "2.1.0").exists()


def test_a_document_changed_before_its_print_is_recorded_is_not_trusted_later(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A print is recorded only for bytes read back and checked: the next build reads the document."""
    from registry_tool.registry.document import read_site_dir

    site, cache = tmp_path / "site", tmp_path / "cache"
    _age(index)
    _build(index, site, 0, cache)
    index.add_release("beta", "2.1.0", variant=7)
    _age(index)
    real = build_mod._record

    def tamper_then_record(out: Path, metadata: Any, *args: Any, **kw: Any) -> Any:
        doc = out / metadata.plugin_pins["beta"].path
        doc.write_bytes(doc.read_bytes().replace(b'"beta"', b'"betb"', 1))  # same size, another digest
        return real(out, metadata, *args, **kw)

    monkeypatch.setattr(build_mod, "_record", tamper_then_record)
    _build(index, site, 1, cache)
    monkeypatch.undo()
    with pytest.raises(PublicationError):
        read_site_dir(site)
    with pytest.raises(PublicationError):  # refused, as without a cache: "the published site was modified"
        _build(index, site, 2, cache)


def _side_by_side(index: Index, tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """(site built with the cache, site built without, the cache, an outside folder links point to)."""
    site, plain, cache = tmp_path / "site", tmp_path / "plain", tmp_path / "cache"
    outside = tmp_path / "outside"
    outside.mkdir()
    _age(index)
    _build(index, site, 0, cache)
    _build(index, plain, 0, None)
    return site, plain, cache, outside


@pytest.mark.parametrize(
    "where", ["plugins/alpha/9.9.9", "plugins/alpha/1.0.0/evil", "plugins/alpha/1.0.0/sub"]
)
def test_a_link_added_to_a_kept_plugins_folders_is_refused_as_a_full_build_refuses_it(
    index: Index, tmp_path: Path, where: str
) -> None:
    """The plugin folder's or a release folder's print moved: the plugin is not kept, the link refused."""
    from registry_tool.registry.site import UnsafeSiteError

    site, plain, cache, outside = _side_by_side(index, tmp_path)
    for root in (site, plain):
        (root / where).symlink_to(outside, target_is_directory=True)
    index.add_release("beta", "2.1.0", variant=7)
    _age(index)
    for root, with_cache in ((site, cache), (plain, None)):
        with pytest.raises(UnsafeSiteError):
            _build(index, root, 1, with_cache)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("where", ["plugins/alpha/1.0.0/junk.txt", "plugins/alpha/1.0.0/sub/junk.txt"])
def test_a_stray_file_in_a_kept_release_folder_is_removed_as_a_full_build_removes_it(
    index: Index, tmp_path: Path, where: str
) -> None:
    site, plain, cache, _ = _side_by_side(index, tmp_path)
    for root in (site, plain):
        (root / where).parent.mkdir(exist_ok=True)
        (root / where).write_text("not published")
    index.add_release("beta", "2.1.0", variant=7)
    _age(index)
    _build(index, site, 1, cache)
    _build(index, plain, 1, None)
    assert _tree(site) == _tree(plain) and not (site / where).exists()
    assert (
        not (site / "plugins/alpha/1.0.0/sub").exists() and not (plain / "plugins/alpha/1.0.0/sub").exists()
    )
    assert_valid_site(site, index)


def test_a_stray_folder_is_removed_so_nothing_later_hides_in_it(index: Index, tmp_path: Path) -> None:
    """A folder left in a release folder would keep later additions out of the folder's print."""
    from registry_tool.registry.site import UnsafeSiteError

    site, plain, cache, outside = _side_by_side(index, tmp_path)
    for root in (site, plain):
        (root / "plugins/alpha/1.0.0/junk").mkdir()
    index.add_release("beta", "2.1.0", variant=7)
    _age(index)
    _build(index, site, 1, cache)
    _build(index, plain, 1, None)
    assert (
        not (site / "plugins/alpha/1.0.0/junk").exists() and not (plain / "plugins/alpha/1.0.0/junk").exists()
    )
    for root in (site, plain):
        (root / "plugins/alpha/1.0.0/junk").mkdir()
        (root / "plugins/alpha/1.0.0/junk/evil").symlink_to(outside, target_is_directory=True)
    index.add_release("beta", "2.2.0", variant=8)
    _age(index)
    for root, with_cache in ((site, cache), (plain, None)):
        with pytest.raises(UnsafeSiteError):
            _build(index, root, 2, with_cache)


def test_a_byte_copy_of_another_release_is_checked_as_itself_not_answered_from_the_cache(
    index: Index, tmp_path: Path
) -> None:
    """The content key names the release: a copy of alpha 1.0.0 in beta's folder is refused as a full
    build refuses it (its name does not match its folder), never given alpha's cached verdict."""
    import shutil

    cache = tmp_path / "cache"
    _age(index)
    _build(index, tmp_path / "a", 0, cache)
    beta, alpha = index.release_dir("beta", "2.0.0"), index.release_dir("alpha", "1.0.0")
    for path in beta.iterdir():
        path.unlink()
    for path in alpha.iterdir():
        shutil.copy2(path, beta / path.name)
    refusals = []
    for out, with_cache in ((tmp_path / "cached", cache), (tmp_path / "plain", None)):
        with pytest.raises(BuildRefusedError) as err:
            _build(index, out, 1, with_cache)
        refusals.append(sorted((r.subject, f.rule) for r in err.value.report.results for f in r.findings))
    assert refusals[0] == refusals[1] and ("beta 2.0.0", "name-mismatch") in refusals[0], refusals


def test_a_kept_plugins_folder_replaced_by_a_link_is_refused(index: Index, tmp_path: Path) -> None:
    from registry_tool.registry.site import UnsafeSiteError

    site, cache = tmp_path / "site", tmp_path / "cache"
    _age(index)
    _build(index, site, 0, cache)
    moved = tmp_path / "moved-alpha"
    (site / "plugins" / "alpha").rename(moved)  # the files keep their inodes and ctimes
    (site / "plugins" / "alpha").symlink_to(moved, target_is_directory=True)
    index.add_release("beta", "2.1.0", variant=7)
    _age(index)
    with pytest.raises(UnsafeSiteError):
        _build(index, site, 1, cache)


def test_a_change_to_site_while_a_build_runs_is_not_recorded_as_checked(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A print is recorded only for what this build read or searched as it is: a writer that ignores
    the build's lock (a deploy job, a hand edit) is seen by the next build, which repairs SITE."""
    from registry_tool.registry import publish as publish_mod

    site, plain, cache = tmp_path / "site", tmp_path / "plain", tmp_path / "cache"
    _age(index)
    for at in (0, 1):
        _build(index, site, at, cache)
        _build(index, plain, at, None)
    index.add_release("alpha", "1.2.0", variant=4)  # alpha goes the long way
    _age(index)
    for root in (site, plain):
        os.utime(root / "plugins/alpha/1.0.0/plugin.toml")  # its print moved: compared by its bytes
    real_apply, real_checkpoint = publish_mod._apply, publish_mod.checkpoint

    def writer(root: Path) -> None:
        def apply(*args: Any, **kw: Any) -> Any:
            with open(root / "plugins/alpha/1.0.0/plugin.toml", "r+b") as fh:
                fh.write(b"#")  # after the build read it, before it records its print
            return real_apply(*args, **kw)

        def checkpoint(step: str) -> None:
            if step == "collect":  # after the build searched the folder
                (root / "plugins/alpha/1.0.0/late.txt").write_bytes(b"late")

        monkeypatch.setattr(publish_mod, "_apply", apply)
        monkeypatch.setattr(publish_mod, "checkpoint", checkpoint)

    for root, with_cache in ((site, cache), (plain, None)):
        writer(root)
        _build(index, root, 2, with_cache)
    monkeypatch.setattr(publish_mod, "_apply", real_apply)
    monkeypatch.setattr(publish_mod, "checkpoint", real_checkpoint)
    _build(index, site, 3, cache)
    _build(index, plain, 3, None)
    assert _tree(site) == _tree(plain)
    assert not (site / "plugins/alpha/1.0.0/late.txt").exists()
    assert_valid_site(site, index)


@pytest.mark.parametrize("where", ["plugins/alpha/1.0.0", "plugins/alpha"])
def test_a_site_folder_replaced_by_a_file_is_repaired_by_the_next_build(
    index: Index, tmp_path: Path, where: str
) -> None:
    """Nothing can be written into a file: the whole site is staged again (it failed with FileExistsError)."""
    import shutil

    site, plain, cache, _ = _side_by_side(index, tmp_path)
    for root in (site, plain):
        shutil.rmtree(root / where)
        (root / where).write_text("not a folder")
    index.add_release("alpha", "1.2.0", variant=4)
    _age(index)
    _build(index, site, 1, cache)
    _build(index, plain, 1, None)
    assert _tree(site) == _tree(plain) and (site / where).is_dir()
    assert_valid_site(site, index)
