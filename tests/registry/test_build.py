"""The build end to end: an index of signed releases in, a site that verifies independently out."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from registry_tool.registry import build as build_mod
from registry_tool.registry.build import BuildOptions, BuildRefusedError, RollbackError, build_site
from registry_tool.registry.cache import BuildCache

from .site_check import read_site

MINISIGN = shutil.which("minisign")
NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)  # the same clock as conftest's signatures
LATER = NOW + timedelta(hours=1)
Index = Any  # conftest.Index (pytest's importlib mode cannot import conftest by name)


def build(index: Index, out: Path, **kw: object) -> build_mod.BuildResult:
    opts = {"now": NOW, "verify_now": NOW, "smoke": False, "keys": [index.keys.index]}
    opts.update(kw)
    return build_site(BuildOptions(index=index.path, out=out, **opts))  # type: ignore[arg-type]


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def write_pub(index: Index, folder: Path) -> Path:
    pub = folder / "index.pub"
    pub.write_text(index.keys.index.public_key.to_text(), encoding="utf-8")
    return pub


def test_site_verifies_independently(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = build(index, site)
    pub = read_site(site)
    assert pub == result.document
    # Every digest and size recomputed from the served files.
    listed = set()
    for rel in pub.releases():
        for ref in (rel.manifest, rel.wasm):
            data = (site / ref.path).read_bytes()
            assert hashlib.sha256(data).hexdigest() == ref.sha256
            assert len(data) == ref.size
            assert ref.path.startswith(f"plugins/{rel.name}/{rel.version}/")
            listed.add(ref.path)
        assert rel.signers == (index.keys.bob.key_id if rel.name == "beta" else index.keys.alice.key_id,)
        assert rel.published_at == "2026-11-21T12:00:00Z" and rel.yanked is None
    assert sorted((r.name, r.version) for r in pub.releases()) == sorted(index.releases)
    # Root chain copied byte for byte; every release file and signature is served.
    for src in (index.path / "root").iterdir():
        assert (site / "root" / src.name).read_bytes() == src.read_bytes()
    served = set(tree(site))
    for name, version in index.releases:
        for f in ("plugin.toml", "plugin.toml.minisig", f"{name}.wasm"):
            assert f"plugins/{name}/{version}/{f}" in served
    assert {p for p in served if p.startswith("plugins/") and not p.endswith(".minisig")} == listed
    assert pub.version == 20261121120000 and pub.root_version == 3
    assert (pub.generated_at, pub.expires_at) == ("2026-11-21T12:00:00Z", "2026-11-28T12:00:00Z")
    # Metadata documents are content-addressed: the name is the digest of the bytes.
    for path in (site / "meta").rglob("*.json"):
        assert path.name == hashlib.sha256(path.read_bytes()).hexdigest() + ".json"
        assert path.parent.name == path.name[:2]
    for path in [site / "registry.json", *(site / "meta").rglob("*.json")]:
        assert str(tmp_path) not in path.read_text()  # no absolute paths


@pytest.mark.skipif(MINISIGN is None, reason="minisign binary not installed (scripts/setup-system.sh)")
def test_registry_signature_verifies_with_minisign_binary(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    build(index, site)
    pub = write_pub(index, tmp_path)
    ok = subprocess.run(
        [MINISIGN, "-Vm", str(site / "registry.json"), "-p", str(pub)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "registry:test-plugins" in ok.stdout
    # And it notices one flipped byte.
    data = bytearray((site / "registry.json").read_bytes())
    data[10] ^= 1
    (site / "registry.json").write_bytes(bytes(data))
    bad = subprocess.run([MINISIGN, "-Vm", str(site / "registry.json"), "-p", str(pub)], capture_output=True)
    assert bad.returncode != 0


@pytest.mark.parametrize("cache", [False, True])
def test_rebuild_is_byte_identical(index: Index, tmp_path: Path, cache: bool) -> None:
    cache_path = tmp_path / "cache.json" if cache else None
    first = build(index, tmp_path / "a", cache_path=cache_path)
    # Later real clock, same document clock (SOURCE_DATE_EPOCH): same bytes, signatures included.
    second = build(index, tmp_path / "b", cache_path=cache_path, verify_now=LATER)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert first.counts["verified"] == 4
    assert second.counts == ({"verified": 0, "cached": 4, "smoked": 0} if cache else first.counts)


def test_incremental_build_reverifies_only_the_changed_release(index: Index, tmp_path: Path) -> None:
    cache_path = tmp_path / "cache.json"
    site = tmp_path / "site"
    build(index, site, cache_path=cache_path)
    index.add_release("alpha", "1.2.0", variant=4)
    result = build(index, site, cache_path=cache_path, previous=str(site), now=LATER, verify_now=LATER)
    assert result.counts == {"verified": 1, "cached": 4, "smoked": 0}
    fresh = build(index, tmp_path / "fresh", previous=None, now=LATER, verify_now=LATER)
    # The cached build and a from-scratch build agree on every entry except publish times.
    doc, ref = result.document, fresh.document
    assert doc.plugins["alpha"]["1.2.0"] == ref.plugins["alpha"]["1.2.0"]
    assert doc.plugins["alpha"]["1.0.0"].published_at == "2026-11-21T12:00:00Z"
    assert ref.plugins["alpha"]["1.0.0"].published_at == "2026-11-21T13:00:00Z"


def test_cache_never_serves_a_changed_release(index: Index, tmp_path: Path) -> None:
    """Same stat fingerprint cannot be forged here, so change bytes and keep size: content key must miss."""
    cache_path = tmp_path / "cache.json"
    build(index, tmp_path / "a", cache_path=cache_path)
    wasm = index.release_dir("beta", "2.0.0") / "beta.wasm"
    data = bytearray(wasm.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes, no re-signing: the pin no longer matches
    wasm.write_bytes(bytes(data))
    with pytest.raises(BuildRefusedError) as err:
        build(index, tmp_path / "b", cache_path=cache_path)
    assert "beta 2.0.0" in [r.subject for r in err.value.report.results]


def test_corrupt_cache_is_ignored(index: Index, tmp_path: Path) -> None:
    cache_path = tmp_path / "cache.json"
    cache_path.write_text("{not json", encoding="utf-8")
    result = build(index, tmp_path / "site", cache_path=cache_path)
    assert result.counts["verified"] == 4
    assert len(BuildCache(cache_path)) == 4  # rewritten in the current format


def test_published_at_and_immutability_carry_over(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    first = build(index, site)
    index.add_release("alpha", "2.0.0", variant=5)
    second = build(index, site, previous=str(site), now=LATER, verify_now=LATER)
    assert second.document.version == first.document.version + 10000  # timestamp of LATER
    assert second.document.plugins["alpha"]["1.0.0"].published_at == "2026-11-21T12:00:00Z"
    assert second.document.plugins["alpha"]["2.0.0"].published_at == "2026-11-21T13:00:00Z"
    assert second.previous_version == first.document.version


def test_registry_version_is_previous_plus_one_when_the_clock_lags(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    first = build(index, site, registry_version=90_000_000_000_000)
    second = build(index, site, previous=str(site))
    assert second.document.version == first.document.version + 1


def test_version_going_down_is_refused(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    first = build(index, site)
    before = tree(site)
    for version in (first.document.version, first.document.version - 1):
        with pytest.raises(RollbackError, match="not above the published version"):
            build(index, site, previous=str(site), registry_version=version, now=LATER)
    assert tree(site) == before


def test_yanked_release_is_served_and_marked(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    build(index, site)
    index.yank("alpha", "1.0.0", "CVE-2026-0001: adds wrongly")
    result = build(index, site, previous=str(site), now=LATER, verify_now=LATER)
    rel = result.document.plugins["alpha"]["1.0.0"]
    assert rel.yanked == "CVE-2026-0001: adds wrongly"
    assert (site / "plugins/alpha/1.0.0/yank.toml").is_file()
    assert (site / "plugins/alpha/1.0.0/yank.toml.minisig").is_file()
    assert (site / "plugins/alpha/1.0.0/alpha.wasm").is_file()


def test_a_yank_reason_the_plugin_document_cannot_hold_is_refused(index: Index, tmp_path: Path) -> None:
    index.yank("alpha", "1.0.0", "x" * 5000)
    with pytest.raises(BuildRefusedError) as err:
        build(index, tmp_path / "site")
    assert "above the 4096 the plugin document allows" in str(err.value.report.results[0].findings[0].message)


def test_site_files_are_world_readable(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    build(index, site)
    assert site.stat().st_mode & 0o005 == 0o005


def test_refuses_to_replace_a_foreign_folder(index: Index, tmp_path: Path) -> None:
    from registry_tool.registry.site import UnsafeSiteError

    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("precious", encoding="utf-8")
    with pytest.raises(UnsafeSiteError, match="refusing to replace"):
        build(index, home)
    assert (home / "thesis.tex").read_text() == "precious"


def test_a_folder_whose_registry_json_is_no_top_document_is_left_alone(index: Index, tmp_path: Path) -> None:
    """A folder with a registry.json of its own is no site: the build failed on a missing root/
    (and an update in place would have kept a planted page served on the registry's origin); a
    swap would delete the folder's other files (review: a project with an npm registry.json)."""
    from registry_tool.registry.site import UnsafeSiteError

    site = tmp_path / "site"
    site.mkdir()
    (site / "registry.json").write_text('{"npm": "https://registry.npmjs.org/"}')
    (site / "thesis.tex").write_text("precious")
    with pytest.raises(UnsafeSiteError, match=r"not a registry\.json a build wrote"):
        build(index, site)
    assert (site / "thesis.tex").read_text() == "precious" and not (site / "root").exists()


def test_building_over_a_site_without_previous_warns_when_its_version_goes_down(
    index: Index, tmp_path: Path
) -> None:
    """Built over without --previous, a site went down from a version clients had seen, silently
    (every client then refused it as a rollback)."""
    site = tmp_path / "site"
    assert not build(index, site, registry_version=30_000_000_000_000).warnings
    warned = build(index, site).warnings
    assert [w.rule for w in warned] == ["version-below-site"]
    assert "30000000000000" in warned[0].message and "--previous" in (warned[0].fix or "")
    assert not build(index, site, registry_version=30_000_000_000_001).warnings


def test_key_outside_the_index_role_is_refused(index: Index, tmp_path: Path) -> None:
    from registry_tool.registry.errors import IndexKeyError

    with pytest.raises(IndexKeyError, match="not an index key"):
        build(index, tmp_path / "site", keys=[index.keys.index2])
    assert not (tmp_path / "site").exists()


def test_a_revoked_index_key_is_told_to_use_a_new_key(index: Index, tmp_path: Path) -> None:
    # It was told to add it back with `root rotate-keys`, which refuses a revoked key.
    from registry_tool.registry.errors import IndexKeyError
    from registry_tool.trust.editing import revoke, rotate_keys

    index.edit_root(rotate_keys("index", add=[index.keys.index2.public_key]))
    index.edit_root(revoke(index.keys.index.key_id, now=NOW, keep_prior_releases=False))
    with pytest.raises(IndexKeyError, match="revoked in root v") as err:
        build(index, tmp_path / "site", keys=[index.keys.index])
    assert "never added again" in (err.value.fix or "") and err.value.exit_code == 2
    assert build(index, tmp_path / "site", keys=[index.keys.index2]).document


def test_smoke_figures_are_recorded_and_cached(index: Index, tmp_path: Path) -> None:
    cache_path = tmp_path / "cache.json"
    first = build(index, tmp_path / "a", smoke=True, cache_path=cache_path)
    assert first.counts["smoked"] == 4
    (figure,) = first.document.plugins["alpha"]["1.0.0"].smoke or ()
    assert figure.name == "one plus two" and figure.fuel and figure.fuel > 0 and figure.peak_memory == 65536
    second = build(index, tmp_path / "b", smoke=True, cache_path=cache_path)
    assert second.counts == {"verified": 0, "cached": 4, "smoked": 0}
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    # --no-smoke records null even when the cache holds figures (same bytes as an uncached build).
    third = build(index, tmp_path / "c", smoke=False, cache_path=cache_path)
    assert third.document.plugins["alpha"]["1.0.0"].smoke is None
    build(index, tmp_path / "d", smoke=False)
    assert tree(tmp_path / "c") == tree(tmp_path / "d")


def test_failing_smoke_test_refuses_the_build(index: Index, tmp_path: Path) -> None:
    from registry_tool.signing import sign_release

    folder = index.release_dir("alpha", "1.1.0")
    manifest = folder / "plugin.toml"
    manifest.write_text(manifest.read_text().replace("expect = [3]", "expect = [4]"))
    sign_release(folder, index.keys.alice)
    with pytest.raises(BuildRefusedError) as err:
        build(index, tmp_path / "site", smoke=True)
    ((subject, message),) = [(r.subject, f.message) for r, f in err.value.report.findings()]
    assert subject == "alpha 1.1.0" and "wrong_output" in message
    assert not (tmp_path / "site").exists()
    build(index, tmp_path / "site", smoke=False)  # the same index builds when smoke is skipped


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes_give_the_same_site_and_the_same_refusals(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    from registry_tool.registry import workers

    monkeypatch.setattr(workers, "MIN_PER_JOB", 1)  # small index: use the workers anyway
    monkeypatch.setattr(workers, "MIN_PER_FORKED_JOB", 1)
    monkeypatch.setattr(workers, "start_method", lambda: method)
    monkeypatch.setattr(workers, "PARENT_WORKS", False)  # every release verified by a worker
    for i in range(4):
        index.add_release("alpha", f"3.0.{i}", variant=10 + i)
    build(index, tmp_path / "serial")
    build(index, tmp_path / "parallel", jobs=2)
    assert tree(tmp_path / "serial") == tree(tmp_path / "parallel")
    # Files the workers wrote are recorded for the cache like the ones the parent writes.
    cache = tmp_path / "cache.json"
    build(index, tmp_path / "cached", jobs=2, cache_path=cache)
    again = build(index, tmp_path / "cached", jobs=2, cache_path=cache)
    assert again.counts["cached"] == len(list(again.document.releases()))
    assert tree(tmp_path / "serial") == tree(tmp_path / "cached")
    (index.release_dir("alpha", "3.0.2") / "plugin.toml.minisig").unlink()
    with pytest.raises(BuildRefusedError) as err:
        build(index, tmp_path / "refused", jobs=2)
    assert [r.subject for r in err.value.report.results] == ["alpha 3.0.2"]
    assert err.value.report.results[0].findings[0].file  # where survives the process boundary


def test_index_threshold_two_needs_both_keys(index: Index, tmp_path: Path) -> None:
    from registry_tool.trust import ThresholdNotMetError
    from registry_tool.trust.editing import edit_root_dir, rotate_keys, sign_root_dir

    root_dir = index.path / "root"
    edit_root_dir(root_dir, rotate_keys("index", add=[index.keys.index2.public_key], threshold=2), now=NOW)
    sign_root_dir(root_dir, index.keys.root)
    with pytest.raises(ThresholdNotMetError):
        build(index, tmp_path / "one")
    assert not (tmp_path / "one").exists()
    result = build(index, tmp_path / "two", keys=[index.keys.index, index.keys.index2])
    assert result.document.root_version == 4
    names = {p.name for p in (tmp_path / "two").glob("registry.json*")}
    assert names == {
        "registry.json",
        "registry.json.minisig",
        f"registry.json.{index.keys.index2.key_id}.minisig",
    }


def test_progress_reports_every_release_once(index: Index, tmp_path: Path) -> None:
    seen: list[tuple[int, int, str]] = []
    build(index, tmp_path / "site", progress=lambda done, total, what: seen.append((done, total, what)))
    assert [d for d, _, _ in seen[:-1]] == [1, 2, 3, 4] and all(t == 4 for _, t, _ in seen)
    assert seen[-1] == (4, 4, "signing")


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # builds the whole sample index
@pytest.mark.skipif(not (REPO / "index" / "root").is_dir(), reason="the sample index is not signed yet")
def test_sample_index_builds_and_verifies(tmp_path: Path) -> None:
    """The bundled sample index (all ABIs, smoke tests on), checked with independent tools."""
    from registry_tool.signing import SecretKey

    index = tmp_path / "index"
    shutil.copytree(REPO / "index", index, ignore=shutil.ignore_patterns("src"))
    key = SecretKey.load((REPO / "samples" / "keys" / "index.key").read_bytes(), None)
    opts = {"index": index, "keys": [key], "now": NOW, "verify_now": None, "smoke": True}
    first = build_site(BuildOptions(out=tmp_path / "a", **opts))  # type: ignore[arg-type]
    build_site(BuildOptions(out=tmp_path / "b", **opts))  # type: ignore[arg-type]
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    site = tmp_path / "a"
    assert read_site(site) == first.document
    abis = set()
    for rel in first.document.releases():
        abis.add(rel.abi)
        for ref in (rel.manifest, rel.wasm):
            data = (site / ref.path).read_bytes()
            assert (hashlib.sha256(data).hexdigest(), len(data)) == (ref.sha256, ref.size)
        assert rel.smoke is not None and all(s.fuel is not None for s in rel.smoke), rel.name
    assert abis >= {"core", "wasi-command", "extism"}
    if MINISIGN:
        pub = REPO / "samples" / "keys" / "index.pub"
        ok = subprocess.run(
            [MINISIGN, "-Vm", str(site / "registry.json"), "-p", str(pub)], capture_output=True
        )
        assert ok.returncode == 0, ok.stderr
        from registry_tool.signing import PublicKey

        pubs = {PublicKey.parse(p.read_text()).key_id: p for p in (REPO / "samples" / "keys").glob("*.pub")}
        for rel in first.document.releases():
            # Every maintainer signature on the site verifies with minisign too.
            (signer,) = rel.signers
            cmd = [MINISIGN, "-Vm", str(site / rel.manifest.path), "-p", str(pubs[signer])]
            assert subprocess.run(cmd, capture_output=True).returncode == 0, rel.name


def test_cache_is_not_fooled_by_a_restored_mtime(index: Index, tmp_path: Path) -> None:
    """Old mtimes make the stat path trusted; tampering then restoring the mtime still misses."""
    import os
    import time

    old = time.time() - 3600  # a checkout an hour old (the real clock: the cache compares with it)
    for path in index.path.rglob("*"):
        os.utime(path, (old, old))
    cache_path = tmp_path / "cache.json"
    build(index, tmp_path / "a", cache_path=cache_path)
    assert build(index, tmp_path / "b", cache_path=cache_path).counts["cached"] == 4
    wasm = index.release_dir("alpha", "1.0.0") / "alpha.wasm"
    data = bytearray(wasm.read_bytes())
    data[-1] ^= 0x01
    wasm.write_bytes(bytes(data))
    os.utime(wasm, (old, old))  # same size, same mtime: only ctime and content differ
    with pytest.raises(BuildRefusedError) as err:
        build(index, tmp_path / "c", cache_path=cache_path)
    assert [r.subject for r in err.value.report.results] == ["alpha 1.0.0"]


def test_one_change_rebuild_writes_only_the_changed_metadata(index: Index, tmp_path: Path) -> None:
    """Unchanged plugin documents keep their bytes and paths (untouched); the new ones are few."""
    site = tmp_path / "site"
    first = build(index, site, cache_path=tmp_path / "cache.json")
    before = {p.relative_to(site).as_posix(): p.stat().st_ino for p in (site / "meta").rglob("*.json")}
    assert first.site_files["swapped"] and first.site_files["kept"] == 0
    index.add_release("beta", "2.1.0", variant=7)
    second = build(index, site, previous=str(site), cache_path=tmp_path / "cache.json", now=LATER)
    after = {p.relative_to(site).as_posix(): p.stat().st_ino for p in (site / "meta").rglob("*.json")}
    new = set(after) - set(before)
    # beta's plugin document, the tree's single leaf, the catalog: whatever the registry's size.
    assert len(new) == 3 and not second.site_files["swapped"]
    for path in set(after) & set(before):
        assert after[path] == before[path], f"{path} was rewritten although unchanged"
    assert read_site(site) == second.document
