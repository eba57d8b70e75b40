"""SITE's files against tampering, readers in flight and sibling folders the build did not make."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from registry_tool.format import REGISTRY_JSON, TopDocument
from registry_tool.registry import site as site_io
from registry_tool.registry.build import BuildOptions, BuildResult, build_site
from registry_tool.registry.document import read_publication

from .test_publish import assert_valid_site

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
Index = Any  # conftest.Index


def build(index: Index, out: Path, **kw: object) -> BuildResult:
    opts = {"now": NOW, "verify_now": NOW, "smoke": False, "keys": [index.keys.index]}
    opts.update(kw)
    return build_site(BuildOptions(index=index.path, out=out, **opts))  # type: ignore[arg-type]


def _tamper_in_place_keeping_mtime(path: Path) -> None:
    """Flip one byte in place (same inode, same size), then set atime/mtime back to the nanosecond.

    Waits (without relying on luck) until the file's ctime differs from its ctime before: a
    coarse kernel clock can give a write within the same tick the same ctime.
    """
    before = os.lstat(path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    while True:
        with open(path, "r+b") as fh:
            fh.write(data)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        after = os.lstat(path)
        if after.st_ctime_ns != before.st_ctime_ns:
            break
        time.sleep(0.01)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )


@pytest.mark.parametrize("with_change", [False, True])
def test_release_file_tampered_in_place_with_mtime_restored_is_repaired(
    index: Index, tmp_path: Path, with_change: bool
) -> None:
    """A cached rebuild never keeps a published file whose bytes changed, whatever its mtime says."""
    site, cache = tmp_path / "site", tmp_path / "cache.json"
    build(index, site, cache_path=cache)
    build(index, site, cache_path=cache, previous=str(site), now=LATER)  # the cache now holds site prints
    published = site / "plugins/alpha/1.0.0/alpha.wasm"
    _tamper_in_place_keeping_mtime(published)
    if with_change:
        index.add_release("beta", "2.1.0", variant=7)
    build(index, site, cache_path=cache, previous=str(site), now=LATER + timedelta(hours=1))
    assert published.read_bytes() == (index.release_dir("alpha", "1.0.0") / "alpha.wasm").read_bytes()
    assert_valid_site(site, index)


def _reader(site: Path) -> Any:
    def read(rel: str, cap: int) -> bytes:
        return (site / rel).read_bytes()[: cap + 1]

    return read


def test_a_build_without_previous_keeps_the_generation_readers_are_fetching(
    index: Index, tmp_path: Path
) -> None:
    """A reader holding the replaced top document still finds every document and file it pins."""
    site = tmp_path / "site"
    build(index, site)
    old_top = TopDocument.parse((site / REGISTRY_JSON).read_bytes())
    old_docs = read_publication(old_top, _reader(site))
    shutil.rmtree(index.release_dir("alpha-tools", "0.1.0"))  # allowed without --previous
    index.add_release("beta", "2.1.0", variant=7)
    build(index, site, now=LATER)  # in place, no --previous
    assert read_publication(old_top, _reader(site)) == old_docs
    for release in old_docs.releases():
        assert (site / release.wasm.path).is_file(), release.wasm.path
    assert_valid_site(site, index)
    # The next build collects what only the first generation used.
    index.add_release("beta", "2.2.0", variant=8)
    build(index, site, now=LATER + timedelta(hours=1))
    with pytest.raises(OSError):
        read_publication(old_top, _reader(site))
    assert not (site / "plugins/alpha-tools").exists()
    assert_valid_site(site, index)


def test_a_whole_site_swap_keeps_the_generation_readers_are_fetching(index: Index, tmp_path: Path) -> None:
    """The same when the build must swap the whole site (a release's bytes changed without --previous)."""
    site = tmp_path / "site"
    build(index, site)
    old_top = TopDocument.parse((site / REGISTRY_JSON).read_bytes())
    old_docs = read_publication(old_top, _reader(site))
    release_dir = index.release_dir("alpha", "1.0.0")
    for f in release_dir.iterdir():
        f.unlink()
    index.add_release("alpha", "1.0.0", variant=9)
    shutil.rmtree(index.release_dir("alpha-tools", "0.1.0"))
    result = build(index, site, now=LATER)
    assert result.site_files["swapped"]
    assert read_publication(old_top, _reader(site)) == old_docs
    assert (site / old_docs.plugins["alpha-tools"]["0.1.0"].wasm.path).is_file()
    assert_valid_site(site, index)
    build(index, site, now=LATER + timedelta(hours=1))
    assert not (site / "plugins/alpha-tools").exists()
    assert_valid_site(site, index)


def test_sibling_folders_resembling_staging_folders_are_never_touched(index: Index, tmp_path: Path) -> None:
    """Only folders a build of this SITE made (exact name shape and marker) are recovered or removed."""
    site = tmp_path / "site"
    planted = [
        tmp_path / ".site.build-x",  # another name shape
        tmp_path / ".site.build-abcd1234",  # the exact shape, but no marker: a user's folder
        tmp_path / ".site.build-x.build-abcd1234",  # the staging shape of a site named "site.build-x"
    ]
    for folder in planted:
        folder.mkdir()
        (folder / "keep.txt").write_text("mine")
    (planted[2] / ".registry-tool-staging").write_text("registry-tool staging folder of site.build-x\n")
    (planted[1] / "top").mkdir()
    (planted[1] / "top" / ".ready").write_text("")
    (planted[1] / "top" / REGISTRY_JSON).write_text("{}")
    build(index, site)
    index.add_release("beta", "2.1.0", variant=7)
    build(index, site, previous=str(site), now=LATER)
    for folder in planted:
        assert (folder / "keep.txt").read_text() == "mine", folder
    assert_valid_site(site, index)  # the planted "journal" was not completed over SITE
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".site.")) == sorted(
        [".site.lock", *(p.name for p in planted)]
    )


def test_a_staging_folder_holds_a_marker_that_is_never_published(tmp_path: Path) -> None:
    site = tmp_path / "site"
    staged = site_io.staging_dir(site)
    assert site_io.staging_folders(site) == [staged]
    (staged / REGISTRY_JSON).write_text("{}")
    site_io.swap_into_place(staged, site)
    assert sorted(p.name for p in site.iterdir()) == [REGISTRY_JSON]


def _plant_victim(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "precious.txt").write_bytes(b"keep me")
    (victim / "sub" / "deep.txt").write_bytes(b"keep me too")
    return victim, {p.name: p.read_bytes() for p in victim.rglob("*") if p.is_file()}


@pytest.mark.parametrize("previous", [True, False])
def test_a_link_added_to_an_unchanged_release_folder_is_refused_as_a_full_build_refuses_it(
    index: Index, tmp_path: Path, previous: bool
) -> None:
    """The folder's recorded print moved (an entry was added): it is searched, the link refused."""
    from registry_tool.registry.site import UnsafeSiteError

    site, cache = tmp_path / "site", tmp_path / "cache.json"
    build(index, site, cache_path=cache)
    victim, before = _plant_victim(tmp_path)
    (site / "plugins/alpha/1.0.0/extra").symlink_to(victim, target_is_directory=True)
    index.add_release("beta", "2.1.0", variant=7)
    with pytest.raises(UnsafeSiteError, match="symbolic link"):
        build(index, site, cache_path=cache, now=LATER, **({"previous": str(site)} if previous else {}))
    assert {p.name: p.read_bytes() for p in victim.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("previous", [True, False])
def test_a_link_inside_a_release_folder_the_build_writes_into_is_refused(
    index: Index, tmp_path: Path, previous: bool
) -> None:
    """A release folder the build writes into (a file gone missing) is searched for links first."""
    from registry_tool.registry.site import UnsafeSiteError

    site, cache = tmp_path / "site", tmp_path / "cache.json"
    build(index, site, cache_path=cache)
    victim, before = _plant_victim(tmp_path)
    (site / "plugins/alpha/1.0.0/plugin.toml").unlink()
    (site / "plugins/alpha/1.0.0/extra").symlink_to(victim, target_is_directory=True)
    index.add_release("beta", "2.1.0", variant=7)
    with pytest.raises(UnsafeSiteError, match="symbolic link"):
        build(index, site, cache_path=cache, now=LATER, **({"previous": str(site)} if previous else {}))
    assert {p.name: p.read_bytes() for p in victim.rglob("*") if p.is_file()} == before


def test_a_link_in_a_release_folder_kept_for_readers_is_never_carried_over(
    index: Index, tmp_path: Path
) -> None:
    """Files of the replaced generation carried into a swapped site are searched for links first."""
    from registry_tool.registry.site import UnsafeSiteError

    site = tmp_path / "site"
    build(index, site)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not for the web")
    (site / "plugins/alpha-tools/0.1.0/leak").symlink_to(secret)
    shutil.rmtree(index.release_dir("alpha-tools", "0.1.0"))
    release_dir = index.release_dir("alpha", "1.0.0")
    for f in release_dir.iterdir():
        f.unlink()
    index.add_release("alpha", "1.0.0", variant=9)  # forces a whole-site swap
    with pytest.raises(UnsafeSiteError, match="symbolic link"):
        build(index, site, now=LATER)
    assert not any(
        p.is_symlink() for p in tmp_path.rglob("*") if p != site / "plugins/alpha-tools/0.1.0/leak"
    )
