"""resign renews only the newest registry.json its keys signed for a site (never an older one put back)."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from registry_tool._cli import _register_areas, app
from registry_tool.errors import UsageError
from registry_tool.format import TopDocument
from registry_tool.registry import resign_site
from registry_tool.registry.build import BuildOptions, build_site
from registry_tool.registry.resign import ResignRefusedError, read_signed, signer_state_dir
from tests.registry.conftest import NOW, Index

TOP = ("registry.json", "registry.json.minisig")


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The signer's records in a folder of this test (platformdirs reads XDG_STATE_HOME)."""
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


def build(index: Index, out: Path, now: Any = NOW, **kw: Any) -> Any:
    opts: dict[str, Any] = {"now": now, "verify_now": now, "smoke": False, "keys": [index.keys.index]}
    opts.update(kw)
    return build_site(BuildOptions(index=index.path, out=out, **opts))


def _copy_top(site: Path, to: Path) -> None:
    to.mkdir()
    for name in TOP:
        shutil.copy2(site / name, to / name)


def _put_back(saved: Path, site: Path) -> None:
    for name in TOP:
        shutil.copy2(saved / name, site / name)


def test_resign_refuses_an_older_genuine_top_document_put_back(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    build(index, site)
    _copy_top(site, tmp_path / "v1")
    index.add_release("alpha", "1.2.0", variant=4)
    build(index, site, now=NOW + timedelta(hours=1))
    _put_back(tmp_path / "v1", site)  # an attacker who can write SITE restores v1 and its signature
    before = {p: p.read_bytes() for p in site.rglob("*") if p.is_file()}
    with pytest.raises(ResignRefusedError, match="rollback") as refused:
        resign_site(site, [index.keys.index], NOW + timedelta(hours=2))
    assert refused.value.code == "resign-refused"
    assert refused.value.fix
    assert {p: p.read_bytes() for p in site.rglob("*") if p.is_file()} == before


def test_resign_refuses_an_older_document_after_its_own_renewal(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    build(index, site)
    _copy_top(site, tmp_path / "built")
    resign_site(site, [index.keys.index], NOW + timedelta(hours=1))
    _put_back(tmp_path / "built", site)
    with pytest.raises(ResignRefusedError, match="rollback"):
        resign_site(site, [index.keys.index], NOW + timedelta(hours=2))


def test_resign_renews_the_newest_document_again_and_again(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    first = build(index, site)
    one = resign_site(site, [index.keys.index], NOW + timedelta(days=1))
    two = resign_site(site, [index.keys.index], NOW + timedelta(days=2))
    assert first.document.top.version < one.document.version < two.document.version
    record = read_signed(site, [index.keys.index], two.document.registry.name)
    assert record is not None and record.version == two.document.version


def test_a_newer_build_than_the_record_is_renewed(index: Index, tmp_path: Path) -> None:
    """A site rebuilt elsewhere (no record here of its version) is newer than anything recorded."""
    site = tmp_path / "site"
    build(index, site)
    state = Path(os.environ["XDG_STATE_HOME"])
    kept = tmp_path / "kept-state"
    shutil.copytree(state, kept)
    build(index, site, now=NOW + timedelta(hours=1))
    shutil.rmtree(state)
    shutil.copytree(kept, state)  # the record of the first build only
    resign_site(site, [index.keys.index], NOW + timedelta(hours=2))


def test_a_site_rebuilt_from_scratch_is_renewed(index: Index, tmp_path: Path) -> None:
    """What the signer's own build published is the newest document, even with a lower version."""
    site = tmp_path / "site"
    build(index, site)
    resign_site(site, [index.keys.index], NOW + timedelta(days=1))
    shutil.rmtree(site)
    build(index, site)  # the same clock as the first build: a lower version than the renewal
    resign_site(site, [index.keys.index], NOW + timedelta(days=2))


def test_without_a_record_resign_needs_the_expected_version(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    built = build(index, site)
    shutil.rmtree(os.environ["XDG_STATE_HOME"])  # a fresh CI runner: no record of the build
    with pytest.raises(ResignRefusedError, match="no record") as refused:
        resign_site(site, [index.keys.index], NOW + timedelta(hours=1))
    assert "--expect-version" in (refused.value.fix or "")
    version = built.document.top.version
    with pytest.raises(ResignRefusedError, match="not the expected"):
        resign_site(site, [index.keys.index], NOW + timedelta(hours=1), expect_version=version - 1)
    result = resign_site(site, [index.keys.index], NOW + timedelta(hours=1), expect_version=version)
    assert result.previous.version == version
    # It recorded what it signed: the next run needs no expectation.
    resign_site(site, [index.keys.index], NOW + timedelta(hours=2))


def test_the_same_version_with_other_bytes_is_refused(index: Index, tmp_path: Path) -> None:
    """A record pins the digest too: a different document of the recorded version is not renewed."""
    site = tmp_path / "site"
    build(index, site)
    name = TopDocument.parse((site / "registry.json").read_bytes()).registry.name
    record = read_signed(site, [index.keys.index], name)
    assert record is not None
    files = list(signer_state_dir().glob("*.json"))
    assert len(files) == 1
    files[0].write_text(f'{{"version": {record.version}, "sha256": "{"0" * 64}"}}')
    with pytest.raises(ResignRefusedError, match="rollback"):
        resign_site(site, [index.keys.index], NOW + timedelta(hours=1))


def test_a_state_folder_others_can_write_is_not_trusted(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    build(index, site)
    signer_state_dir().chmod(0o777)
    with pytest.raises(UsageError, match="not a private folder"):
        resign_site(site, [index.keys.index], NOW + timedelta(hours=1))


def test_a_malformed_record_is_refused(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    build(index, site)
    for record in signer_state_dir().glob("*.json"):
        record.write_text("{")
    with pytest.raises(UsageError, match="malformed"):
        resign_site(site, [index.keys.index], NOW + timedelta(hours=1))


def test_cli_resign_expect_version(index: Index, tmp_path: Path) -> None:
    _register_areas()
    site = tmp_path / "site"
    built = build(index, site)
    shutil.rmtree(os.environ["XDG_STATE_HOME"])
    key = tmp_path / "index.key"
    key.write_bytes(index.keys.index.dump(None))
    env = {"SOURCE_DATE_EPOCH": str(int((NOW + timedelta(hours=1)).timestamp()))}
    runner = CliRunner()
    refused = runner.invoke(app, ["resign", str(site), "--key", str(key)], env=env)
    assert refused.exit_code == 1, refused.output
    assert "--expect-version" in refused.output
    version = str(built.document.top.version)
    ok = runner.invoke(app, ["resign", str(site), "--key", str(key), "--expect-version", version], env=env)
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize(
    "text",
    ['{"version": Infinity, "sha256": "00"}', '{"version": ' + "[" * 100_000 + "]" * 100_000 + "}"],
    ids=["infinity", "nested-100000"],
)
def test_a_signers_record_python_cannot_convert_is_a_usage_error(
    index: Index, tmp_path: Path, text: str
) -> None:
    """int(inf) raises OverflowError, json of 100,000 nested arrays RecursionError: both are named."""
    site = tmp_path / "site"
    build(index, site)
    name = TopDocument.parse((site / "registry.json").read_bytes()).registry.name
    (record,) = signer_state_dir().glob("*.json")
    record.write_text(text)
    with pytest.raises(UsageError, match="unreadable or malformed"):
        read_signed(site, [index.keys.index], name)


@pytest.mark.parametrize("validity", [timedelta(milliseconds=1), timedelta(milliseconds=400)])
def test_a_validity_under_one_second_is_a_usage_error(
    index: Index, tmp_path: Path, validity: timedelta
) -> None:
    """It was exit 1, blaming the document ("expires_at must be after generated_at")."""
    site = tmp_path / "site"
    build(index, site)
    with pytest.raises(UsageError, match="at least one second"):
        resign_site(site, [index.keys.index], NOW + timedelta(hours=1), validity=validity)


def test_a_record_the_build_cannot_write_is_one_warning_saying_its_fix_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from registry_tool.registry import resign

    def fail(*_args: Any) -> None:
        raise UsageError("cannot record the signed registry.json in /x", fix="make the folder writable")

    monkeypatch.setattr(resign, "record_signed", fail)
    with caplog.at_level("WARNING", logger="registry_tool"):
        resign.record_built(Path("/site"), [], "reg", 1, b"{}")
    [record] = caplog.records
    assert record.getMessage().count("make the folder writable") == 1, record.getMessage()
