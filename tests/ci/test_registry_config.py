"""Attack: a pull request bricks the registry or rewrites its rules through registry.toml.

registry.toml defines the permission vocabulary, the limits and the backport policy.  Invalid
TOML, a schema-invalid file, a deleted one or a link to /dev/zero used to pass with a warning and
break every later check, validate and build after merge; a valid edit (map ``keys`` onto
``ferrite:net``, allow backports, raise fuel ninefold) needed only a reviewer.  Now a change must
load, and must be pinned (its sha256) by a root that passed the root threshold.

Also here: a .gitattributes that makes git rewrite index files on checkout, and an ``index/``
folder replaced by a link (every published release is reported removed, exit 1).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from registry_tool.report import Severity
from registry_tool.trust.editing import edit_root_dir, pin_registry_config, sign_root_dir
from tests.world import TOOL

from .conftest import IndexRepo, git

REPO = Path(__file__).resolve().parents[2]


def _errors(report: object) -> list[object]:
    return [f for _, f in report.findings() if f.severity is Severity.error]  # type: ignore[attr-defined]


def _rules(report: object) -> set[str]:
    return {f.rule for f in _errors(report)}  # type: ignore[attr-defined]


def _loosen(index_repo: IndexRepo) -> Path:
    config = index_repo.index / "registry.toml"
    text = config.read_text()
    text = text.replace("allow_backports = false", "allow_backports = true")
    text = text.replace('module = "ferrite:keys"', 'module = "ferrite:net"')
    config.write_text(text)
    return config


def _pin(index_repo: IndexRepo, config: Path) -> None:
    root = index_repo.index / "root"
    edit_root_dir(root, pin_registry_config(config.read_bytes()), now=datetime.now(UTC))
    sign_root_dir(root, index_repo.keys.root)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[registry\nname = ", "would not load"),
        (b'[registry]\nname = "x"\n', "would not load"),
        (b"\xff\xfe not utf-8", "would not load"),
    ],
    ids=["invalid-toml", "schema-invalid", "not-utf8"],
)
def test_pr_breaking_registry_toml_is_refused(index_repo: IndexRepo, content: bytes, message: str) -> None:
    (index_repo.index / "registry.toml").write_bytes(content)
    index_repo.commit()
    report = index_repo.check()
    invalid = [f for f in _errors(report) if f.rule == "config-invalid"]  # type: ignore[attr-defined]
    assert invalid and message in invalid[0].message  # type: ignore[attr-defined]
    assert not report.ok


def test_pr_deleting_registry_toml_is_refused(index_repo: IndexRepo) -> None:
    (index_repo.index / "registry.toml").unlink()
    index_repo.commit()
    assert "config-invalid" in _rules(index_repo.check())


def test_pr_deleting_registry_toml_is_refused_with_the_default_index(index_repo: IndexRepo) -> None:
    # Without explicit paths the check used to fall back to the repository root: nothing changed there.
    (index_repo.index / "registry.toml").unlink()
    index_repo.commit()
    proc = subprocess.run(
        [*TOOL, "ci", "check", "--base", "origin/main", "--format", "json"],
        cwd=index_repo.path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and '"config-invalid"' in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("target", ["/dev/zero", "fifo", "outside"])
def test_pr_linking_registry_toml_elsewhere_is_refused_unread(
    index_repo: IndexRepo, tmp_path: Path, target: str
) -> None:
    config = index_repo.index / "registry.toml"
    outside = tmp_path / "outside.toml"
    outside.write_bytes(config.read_bytes())
    if target == "fifo":
        os.mkfifo(tmp_path / "fifo")
    config.unlink()
    config.symlink_to(
        {"/dev/zero": "/dev/zero", "fifo": str(tmp_path / "fifo"), "outside": str(outside)}[target]
    )
    index_repo.commit()
    report = index_repo.check()
    (finding,) = [f for f in _errors(report) if f.rule == "config-invalid"]  # type: ignore[attr-defined]
    assert "symbolic link" in finding.message  # type: ignore[attr-defined]


def test_unpinned_registry_toml_change_needs_the_root_threshold(index_repo: IndexRepo) -> None:
    _loosen(index_repo)
    index_repo.commit()
    report = index_repo.check()
    (finding,) = [f for f in _errors(report) if f.rule == "config-unauthorised"]  # type: ignore[attr-defined]
    assert "pins no registry.toml" in finding.message and "root pin-config" in (finding.fix or "")  # type: ignore[attr-defined]


def test_registry_toml_change_pinned_by_a_root_signed_with_the_threshold_passes(
    index_repo: IndexRepo,
) -> None:
    config = _loosen(index_repo)
    _pin(index_repo, config)
    index_repo.commit()
    report = index_repo.check()
    assert report.ok, [f.text() for _, f in report.findings()]  # type: ignore[attr-defined]
    notices = [f for _, f in report.findings() if f.rule == "config-change"]
    assert notices and hashlib.sha256(config.read_bytes()).hexdigest()[:16] in notices[0].message


def test_a_pinned_registry_toml_that_published_releases_fail_is_refused(index_repo: IndexRepo) -> None:
    """Published releases are immutable: a host range none of them fits stopped every build."""
    config = index_repo.index / "registry.toml"
    config.write_text(
        config.read_text().replace('versions = ">=0.1.0, <1.0.0"', 'versions = ">=2.0.0, <3.0.0"')
    )
    _pin(index_repo, config)
    index_repo.commit()
    found = _errors(index_repo.check())
    assert found and {f.rule for f in found} == {"config-invalid"}  # type: ignore[attr-defined]
    assert any("alpha 1.0.0 would fail every build" in f.message for f in found)  # type: ignore[attr-defined]


def test_a_pinned_registry_toml_may_not_rename_the_registry(index_repo: IndexRepo) -> None:
    config = index_repo.index / "registry.toml"
    text = config.read_text()
    name = text.split('name = "', 1)[1].split('"', 1)[0]
    config.write_text(text.replace(f'name = "{name}"', 'name = "renamed-registry"', 1))
    _pin(index_repo, config)
    index_repo.commit()
    found = _errors(index_repo.check())
    assert [f.rule for f in found] == ["config-invalid"]  # type: ignore[attr-defined]
    assert "renames the registry" in found[0].message  # type: ignore[attr-defined]


def test_registry_toml_pinned_by_an_unsigned_root_is_refused(index_repo: IndexRepo) -> None:
    config = _loosen(index_repo)
    edit_root_dir(index_repo.index / "root", pin_registry_config(config.read_bytes()), now=datetime.now(UTC))
    index_repo.commit()
    rules = _rules(index_repo.check())
    assert {"root-signature", "config-unauthorised"} <= rules


def test_registry_toml_pin_of_other_bytes_is_refused(index_repo: IndexRepo) -> None:
    config = _loosen(index_repo)
    _pin(index_repo, config)
    config.write_text(config.read_text() + "\n# edited after pinning\n")
    index_repo.commit()
    report = index_repo.check()
    (finding,) = [f for f in _errors(report) if f.rule == "config-unauthorised"]  # type: ignore[attr-defined]
    assert "but the root pins" in finding.message  # type: ignore[attr-defined]


def test_a_root_pinning_a_registry_toml_the_pull_request_does_not_bring_is_refused(
    index_repo: IndexRepo, tmp_path: Path
) -> None:
    """Pin first, change later: merged alone, the new root stopped every build (not the pinned file)."""
    config = index_repo.index / "registry.toml"
    original = config.read_bytes()
    planned = _loosen(index_repo).read_bytes()
    config.write_bytes(original)
    root = index_repo.index / "root"
    edit_root_dir(root, pin_registry_config(planned), now=datetime.now(UTC))
    sign_root_dir(root, index_repo.keys.root)
    index_repo.commit()
    report = index_repo.check()
    (finding,) = [f for f in _errors(report) if f.rule == "config-pin"]  # type: ignore[attr-defined]
    assert hashlib.sha256(planned).hexdigest() in finding.message  # type: ignore[attr-defined]
    assert finding.file.endswith("root/3.root.json")  # type: ignore[attr-defined]
    # What the check prevents: the merged index does not build.
    from registry_tool.registry.build import BuildOptions, build_site
    from registry_tool.registry.errors import UnpinnedConfigError

    with pytest.raises(UnpinnedConfigError):
        build_site(
            BuildOptions(
                index=index_repo.index,
                out=tmp_path / "site",
                keys=[index_repo.keys.index],
                now=datetime.now(UTC),
                smoke=False,
            )
        )
    # The same root with the file it pins passes.
    config.write_bytes(planned)
    index_repo.commit()
    assert "config-pin" not in _rules(index_repo.check())


def test_root_pin_config_cli_writes_a_root_the_check_accepts(index_repo: IndexRepo, tmp_path: Path) -> None:
    config = _loosen(index_repo)
    root = index_repo.index / "root"
    key = tmp_path / "root.key"
    key.write_bytes(index_repo.keys.root.dump(None))
    for args in (
        ["root", "pin-config", str(config), "--dir", str(root)],
        ["root", "sign", "--dir", str(root), "--key", str(key)],
    ):
        proc = subprocess.run([*TOOL, *args], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    index_repo.commit()
    assert index_repo.check().ok


def test_gitattributes_rewriting_index_files_is_refused(index_repo: IndexRepo) -> None:
    (index_repo.path / ".gitattributes").write_text("index/** text eol=crlf\n")
    index_repo.commit()
    report = index_repo.check()
    found = [f for f in _errors(report) if f.rule == "index-attributes"]  # type: ignore[attr-defined]
    assert found and found[0].file == ".gitattributes"  # type: ignore[attr-defined]
    assert "eol=crlf" in found[0].message or "text=set" in found[0].message  # type: ignore[attr-defined]


def test_gitattributes_landed_before_the_release_it_rewrites_is_refused_with_the_release(
    index_repo: IndexRepo,
) -> None:
    """Two steps: a pattern that matches no file yet lands, then the release it matches comes."""
    (index_repo.path / ".gitattributes").write_text("index/plugins/alpha/1.1.0/* text eol=crlf\n")
    index_repo.commit("attributes first")
    assert "index-attributes" not in _rules(index_repo.check())  # nothing it rewrites yet
    git(index_repo.path, "update-ref", "refs/remotes/origin/main", "HEAD")  # it landed
    index_repo.release("alpha", "1.1.0")
    index_repo.commit("the release")
    found = [f for f in _errors(index_repo.check()) if f.rule == "index-attributes"]  # type: ignore[attr-defined]
    assert found and all(f.file.startswith("index/plugins/alpha/1.1.0/") for f in found)  # type: ignore[attr-defined]
    assert "from a .gitattributes" in found[0].message  # type: ignore[attr-defined]


def test_gitattributes_for_other_files_passes(index_repo: IndexRepo) -> None:
    (index_repo.path / ".gitattributes").write_text("*.md text eol=lf\nindex/** -text\n")
    index_repo.commit()
    assert index_repo.check().ok


def test_index_folder_replaced_by_a_symlink_reports_every_release_removed(
    index_repo: IndexRepo, tmp_path: Path
) -> None:
    copy = tmp_path / "index-copy"
    shutil.copytree(index_repo.index, copy)
    shutil.rmtree(index_repo.index)
    index_repo.index.symlink_to(copy)
    index_repo.commit()
    proc = subprocess.run(
        [*TOOL, "ci", "check", "--base", "origin/main", "--format", "json", "index"],
        cwd=index_repo.path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr
    import json

    doc = json.loads(proc.stdout)
    removed = {r["subject"] for r in doc["results"] for f in r["findings"] if f["rule"] == "release-removed"}
    assert removed == {"plugins/alpha/1.0.0", "plugins/beta/1.0.0"}
    default = subprocess.run(
        [*TOOL, "ci", "check", "--base", "origin/main", "--format", "json"],
        cwd=index_repo.path,
        capture_output=True,
        text=True,
    )
    assert default.returncode == 1 and '"release-removed"' in default.stdout


def test_a_registry_toml_whose_lower_limits_a_published_release_no_longer_runs_under_is_refused(
    index_repo: IndexRepo,
) -> None:
    """Only a smoke run can tell: validation passed, and the next build's smoke run refused the
    published (immutable) release, stopping every build."""
    from tests.world import manifest_text as world_manifest
    from tests.world import wasm

    from .conftest import ADD

    text = world_manifest(
        "alpha",
        "1.1.0",
        license="MIT",
        keywords=None,
        host=">=0.1.0, <1.0.0",
        limits={"memory": "1MiB", "wall_time": "10s"},  # no fuel: [limits.default] decides
        test=("adds", [2, 3], [5]),
    )
    index_repo.tree.add_release(
        "alpha", "1.1.0", manifest=text, module=wasm(ADD), signer=index_repo.keys.alice
    )
    index_repo.commit("alpha 1.1.0, published")
    config = index_repo.index / "registry.toml"
    lowered = config.read_text().replace("fuel = 500_000_000", "fuel = 1", 1)
    assert lowered != config.read_text()
    config.write_text(lowered)
    _pin(index_repo, config)
    index_repo.commit()
    found = _errors(index_repo.check(base="HEAD~1"))
    assert [f.rule for f in found] == ["config-invalid"], [f.text() for f in found]  # type: ignore[attr-defined]
    assert "alpha 1.1.0 would fail its smoke tests" in found[0].message  # type: ignore[attr-defined]
    assert "out_of_fuel" in found[0].message  # type: ignore[attr-defined]
    # A lower default that the release still runs under passes.
    config.write_text(lowered.replace("fuel = 1\n", "fuel = 10_000\n", 1))
    _pin(index_repo, config)
    index_repo.commit()
    assert "config-invalid" not in _rules(index_repo.check(base="HEAD~2"))


def test_a_registry_toml_whose_higher_limits_change_a_published_releases_outcome_is_refused(
    index_repo: IndexRepo,
) -> None:
    """A test that expects ``out_of_fuel`` under the published default passes under a higher one:
    the next build's smoke run refuses the published release, as it does under a lower one."""
    from tests.world import manifest_text as world_manifest
    from tests.world import wasm

    from .conftest import SLOW_ADD

    config = index_repo.index / "registry.toml"
    low = config.read_text().replace("fuel = 500_000_000", "fuel = 20_000", 1)
    assert low != config.read_text()
    config.write_text(low)
    _pin(index_repo, config)
    text = world_manifest(
        "alpha", "1.1.0", license="MIT", keywords=None, host=">=0.1.0, <1.0.0", test=("spins", [2, 3], [5])
    ).replace("expect = [5]", 'expect_trap = "out_of_fuel"')
    index_repo.tree.add_release(
        "alpha", "1.1.0", manifest=text, module=wasm(SLOW_ADD.format(n=100_000)), signer=index_repo.keys.alice
    )
    index_repo.commit("alpha 1.1.0, published under fuel 20,000")
    config.write_text(low.replace("fuel = 20_000", "fuel = 500_000_000", 1))
    _pin(index_repo, config)
    index_repo.commit()
    found = _errors(index_repo.check(base="HEAD~1"))
    assert [f.rule for f in found] == ["config-invalid"], [f.text() for f in found]  # type: ignore[attr-defined]
    assert "alpha 1.1.0 would fail its smoke tests" in found[0].message  # type: ignore[attr-defined]
