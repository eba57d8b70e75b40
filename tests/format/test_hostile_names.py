"""One hostile-name corpus, run against every entry point that takes a name, version, file name or time.

The rules live once in registry_tool.format; each entry point (build, client, ci, trust, signing,
the documents) must refuse every corpus entry, so a part that stops importing the rule fails here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from registry_tool.errors import RegistryToolError
from registry_tool.format import (
    DocumentError,
    PluginDocument,
    Requirement,
    TopDocument,
    is_file_name,
    is_plugin_name,
    is_root_file,
    is_signature_of,
    is_version,
    is_yank_file,
    parse_time_strict,
    root_file_version,
)

HOSTILE_NAMES = [
    "alpha\n", "alpha\r", "alpha\r\n", "\nalpha", "alpha ", " alpha", "al pha", "al\tpha", "al\0pha",
    "../alpha", "alpha/..", "a/b", "a\\b", "..", ".", "", "a", "Alpha", "ALPHA", "-alpha", "_alpha", "1alpha",
    "alpha.", "al.pha", "al%2fpha", "\uff41lpha", "alpha\u200b", "alph\u0430", "a" * 65, "alpha\x1b[31m",
]  # fmt: skip
HOSTILE_VERSIONS = [
    "1.0.0\n", "1.0.0 ", " 1.0.0", "1.0", "1", "01.0.0", "1.00.0", "v1.0.0", "1.0.0+build", "1.0.0-",
    "1.0.0-01", "1.0.0-a..b", "1.0.0/..", "../1.0.0", "", "\u0661.0.0",
    # Other scripts' digits after an ASCII one, in a number or a pre-release part.
    "1\u0661.0.0", "1.0.0-\u0661a", "1.0.0-a.\u0661", "1.0.1\uff10",
]  # fmt: skip
HOSTILE_FILES = ["", ".", "..", "a/b", "a\\b", "a\n", "a\0b", "a b", "x" * 256, "é.wasm", "a.wasm\n"]
HOSTILE_TIMES = [
    "2026-1-5T1:2:3Z", "2026-11-21T12:00:00", "2026-11-21T12:00:00.5Z", "2026-11-21T12:00:00Z\n",
    "2026-11-21 12:00:00Z", "2026-02-30T00:00:00Z", "2026-11-21T12:00:00+00:00", "\uff12026-11-21T12:00:00Z",
]  # fmt: skip
HOSTILE_ROOT_FILES = [
    "1.root.json\n", "01.root.json", "0.root.json", "1.root.json.minisig\n", "-1.root.json",
    "1.root.json.abcdef0123456789.minisig", "1.root.json.ABCDEF012345678.minisig", "1.root.jsonx",
]  # fmt: skip
HOSTILE_SIGNATURES = [
    "plugin.toml.minisig\n", "plugin.toml.x.minisig", "plugin.toml.abcdef0123456789.minisig",
    "plugin.toml..minisig", "plugin.toml.ABCDEF0123456789.minisig.bak",
]  # fmt: skip


def refuses(check: Callable[[str], Any], value: str) -> bool:
    """True when ``check`` refuses ``value`` (returns False/None or raises one of our errors)."""
    try:
        return check(value) in (False, None)
    except (RegistryToolError, ValueError):
        return True


# --------------------------------------------------------------------------- plugin names


def _build_scan(tmp: Path) -> Callable[[str], Any]:
    from registry_tool.registry.build import scan_releases

    def check(name: str) -> Any:
        if "/" in name or name in ("", ".", ".."):
            return None  # not a folder name: the path would leave plugins/ (nothing for the scan to see)
        index = tmp / "index"
        folder = index / "plugins" / name / "1.0.0"
        try:
            folder.mkdir(parents=True)
        except (OSError, ValueError):
            return None  # the file system itself refuses the name
        try:
            return scan_releases(index)
        finally:
            import shutil

            shutil.rmtree(index)

    return check


def _root_threshold(name: str) -> Any:
    from registry_tool.signing import SecretKey
    from registry_tool.trust import Root
    from registry_tool.trust.editing import new_root

    key = SecretKey.from_seed(bytes(32), b"\x01" * 8)
    doc = json.loads(
        new_root("reg", [key.public_key], [key.public_key], expires=datetime.now(UTC) + timedelta(1))
    )
    doc["plugin_thresholds"] = {name: 1}
    return Root.parse(json.dumps(doc).encode())


def _scaffold(tmp: Path) -> Callable[[str], Any]:
    from registry_tool.ci.scaffold import _check_target

    return lambda name: _check_target(tmp / "new", name, "ferrite")


def _plugin_document(name: str) -> Any:
    raw = {"_type": "registry-plugin", "format_version": 2, "name": name, "versions": {}}
    return PluginDocument.parse(json.dumps(raw).encode())


def _lockfile(tmp: Path) -> Callable[[str], Any]:
    from registry_tool.client.install import LOCKFILE, read_lockfile

    def check(name: str) -> Any:
        (tmp / "lock").mkdir(exist_ok=True)
        entry = {"version": "1.0.0", "registry": "https://x.example/", "requested": "", "required_by": [],
                 "dependencies": {}, "abi": "core", "manifest": f"{name}/1.0.0/plugin.toml",
                 "manifest_sha256": "0" * 64, "manifest_size": 1, "wasm": f"{name}/1.0.0/a.wasm",
                 "wasm_sha256": "0" * 64, "wasm_size": 1, "signatures": [], "signers": [],
                 "permissions": [], "published_at": "2026-11-21T12:00:00Z"}  # fmt: skip
        doc = {"lockfile_version": 2, "plugins": {name: entry}}
        (tmp / "lock" / LOCKFILE).write_text(json.dumps(doc))
        lock = read_lockfile(tmp / "lock")
        return lock.plugins or None

    return check


@pytest.mark.parametrize(
    "entry",
    ["format", "requirement", "build-scan", "trust-root", "ci-init", "plugin-document", "lockfile"],
)
def test_every_entry_point_refuses_every_hostile_plugin_name(entry: str, tmp_path: Path) -> None:
    checks: dict[str, Callable[[str], Any]] = {
        "format": is_plugin_name,
        "requirement": Requirement.parse,
        "build-scan": _build_scan(tmp_path),
        "trust-root": _root_threshold,
        "ci-init": _scaffold(tmp_path),
        "plugin-document": _plugin_document,
        "lockfile": _lockfile(tmp_path),
    }
    check = checks[entry]
    accepted = [n for n in HOSTILE_NAMES if not refuses(check, n)]
    assert accepted == [], f"{entry} accepted {accepted!r}"
    if entry not in ("plugin-document", "trust-root", "ci-init"):  # need more than a name to pass
        assert not refuses(check, "alpha"), f"{entry} refused a valid name"


@pytest.mark.parametrize("version", HOSTILE_VERSIONS)
def test_every_entry_point_refuses_every_hostile_version(version: str, tmp_path: Path) -> None:
    assert not is_version(version)
    assert refuses(lambda v: Requirement.parse(f"alpha@{v}").range.exact, version)  # never an exact pin
    raw = {"_type": "registry-plugin", "format_version": 2, "name": "alpha", "versions": {version: {}}}
    with pytest.raises(DocumentError):
        PluginDocument.parse(json.dumps(raw).encode())
    from registry_tool.registry.build import scan_releases

    folder = tmp_path / "index" / "plugins" / "alpha" / version
    if "/" in version or version in ("", ".", ".."):
        return
    try:
        folder.mkdir(parents=True)
    except (OSError, ValueError):
        return
    assert refuses(lambda _: scan_releases(tmp_path / "index"), version)


def test_file_names_root_files_signatures_and_times() -> None:
    assert [f for f in HOSTILE_FILES if is_file_name(f)] == []
    assert [f for f in HOSTILE_ROOT_FILES if is_root_file(f)] == []
    assert [f for f in HOSTILE_ROOT_FILES if root_file_version(f) is not None] == []
    assert [s for s in HOSTILE_SIGNATURES if is_signature_of(s, "plugin.toml")] == []
    assert [y for y in ["yank.toml\n", "yank.toml.x.minisig", "yank.tomlx"] if is_yank_file(y)] == []
    from registry_tool.ci.trustgate import _root_versions

    assert _root_versions([f"root/{f}" for f in HOSTILE_ROOT_FILES]) == []
    from registry_tool.trust.root import parse_time

    for text in HOSTILE_TIMES:
        assert parse_time_strict(text) is None, text
        with pytest.raises(RegistryToolError):
            parse_time(text)
        top = {"format_version": 2, "generated_at": text}
        with pytest.raises(DocumentError):
            TopDocument.parse(json.dumps(top).encode())
    assert is_root_file("12.root.json.0123456789ABCDEF.minisig") and root_file_version("12.root.json") == 12
