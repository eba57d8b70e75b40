"""``validate`` refuses what the build's scan refuses below ``plugins/``, at the same path.

A maintainer runs ``validate`` before pushing; an index it passes must not stop the build.  Every
case here makes the scan raise ``UnsafeIndexPathError`` (the build stops) and must make
``validate`` fail with a finding on that path, given the index, and given the release or plugin
folder that holds it.  The controls hold things the build skips or publishes: both pass them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from registry_tool.manifest.validate import display_path, validate_paths
from registry_tool.registry.errors import UnsafeIndexPathError
from registry_tool.registry.scan import scan_releases
from registry_tool.report import Severity

Index = Any
PAST_2261 = 10_413_792_000  # 2300-01-01 in seconds: more nanoseconds than a signed 64-bit number holds


def _non_utf8(folder: Path, name: bytes, *, is_dir: bool = False) -> None:
    path = os.fsencode(folder) + b"/" + name
    if is_dir:
        os.mkdir(path)
    else:
        with open(path, "wb") as fh:
            fh.write(b"x")


def _dated(path: Path) -> None:
    if not path.exists():
        path.write_text("notes\n")
    os.utime(path, (PAST_2261, PAST_2261))


def _twins(plugin: Path) -> None:
    (plugin / "1.2.0-rc1").mkdir()
    (plugin / "1.2.0-RC1").mkdir()


# (what, change(plugins folder, release folder alpha/1.0.0), the folder to validate besides the index)
Change = Callable[[Path, Path], object]
REFUSED: list[tuple[str, Change, str]] = [
    ("a file name that is not UTF-8", lambda p, r: _non_utf8(r, b"\xff\xfe.txt"), "release"),
    ("a folder name that is not UTF-8", lambda p, r: _non_utf8(r, b"d\xff", is_dir=True), "release"),
    ("a link to a file in the release", lambda p, r: os.symlink("plugin.toml", r / "README"), "release"),
    (
        "a link to a folder in the release",
        lambda p, r: ((r / "d").mkdir(), os.symlink("d", r / "e")),
        "release",
    ),
    ("a FIFO in the release", lambda p, r: os.mkfifo(r / "fifo"), "release"),
    ("a file dated past 2261", lambda p, r: _dated(r / "notes.txt"), "release"),
    ("the release folder dated past 2261", lambda p, r: _dated(r), "release"),
    ("a plugin folder name the build refuses", lambda p, r: (p / "Alpha2").mkdir(), "index"),
    ("a folder that is no version", lambda p, r: (p / "alpha" / "latest").mkdir(), "plugin"),
    ("versions that differ only in case", lambda p, r: _twins(p / "alpha"), "plugin"),
    (
        "a link to a file in a plugin folder",
        lambda p, r: os.symlink("1.0.0/plugin.toml", p / "alpha" / "x"),
        "plugin",
    ),
    ("a FIFO in plugins/", lambda p, r: os.mkfifo(p / "fifo"), "index"),
    ("a FIFO in a plugin folder", lambda p, r: os.mkfifo(p / "alpha" / "fifo"), "plugin"),
]

PASSED: list[tuple[str, Change]] = [
    (
        "a README in plugins/ and in a plugin folder",
        lambda p, r: ((p / "README.md").touch(), (p / "alpha" / "README.md").touch()),
    ),
    (
        "an extra file and a subfolder in the release",
        lambda p, r: ((r / "NOTES.md").touch(), (r / "data").mkdir(), (r / "data" / "a.bin").touch()),
    ),
]


def _errors(paths: list[Path]) -> list[tuple[str, str | None]]:
    report = validate_paths(paths)
    return [(f.rule, f.file) for _, f in report.findings() if f.severity == Severity.error]


@pytest.mark.parametrize(("what", "change", "level"), REFUSED, ids=[c[0] for c in REFUSED])
def test_validate_refuses_what_the_scan_refuses(index: Index, what: str, change: Change, level: str) -> None:
    plugins = index.path / "plugins"
    release = plugins / "alpha" / "1.0.0"
    assert not _errors([index.path]), "the index is valid before the change"
    change(plugins, release)
    with pytest.raises(UnsafeIndexPathError) as err:
        scan_releases(index.path)
    assert err.value.where is not None and err.value.where.file
    where = display_path(Path(err.value.where.file))
    for folder in {"index": [index.path], "plugin": [index.path, plugins / "alpha"]}.get(
        level, [index.path, release]
    ):
        errors = _errors([folder])
        assert any(file == where and rule in {"unsafe-path", "symlink"} for rule, file in errors), (
            folder,
            errors,
        )


@pytest.mark.parametrize(("what", "change"), PASSED, ids=[c[0] for c in PASSED])
def test_validate_and_the_scan_pass_what_the_build_publishes_or_skips(
    index: Index, what: str, change: Change
) -> None:
    plugins = index.path / "plugins"
    change(plugins, plugins / "alpha" / "1.0.0")
    assert scan_releases(index.path)
    assert not _errors([index.path])


def test_validate_refuses_a_plugins_entry_that_is_no_folder(index: Index) -> None:
    """The build published an empty registry for it; it refuses it now, and validate with it."""
    import shutil

    plugins = index.path / "plugins"
    shutil.rmtree(plugins)
    plugins.write_text("not a folder\n")
    with pytest.raises(UnsafeIndexPathError):
        scan_releases(index.path)
    assert ("unsafe-path", display_path(plugins)) in _errors([index.path])
