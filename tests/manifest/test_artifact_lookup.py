"""The artifact lookup and display paths take shortcuts for plain files; every other shape is
decided as before (links followed, escapes refused, folders and missing files reported)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from registry_tool.manifest import load_registry_config
from registry_tool.manifest.validate import _display_resolved, validate_release

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _release(materialised: Callable[[Path], tuple[Path, Path]]) -> tuple[Path, Path]:
    return materialised(EXAMPLES / "valid" / "core-numeric")


def _rules(release: Path, config: Path) -> list[str]:
    result = validate_release(release, load_registry_config(config))
    return [f.rule for f in result.findings if f.severity.value == "error"]


def _point_artifact_at(release: Path, file: str) -> None:
    manifest = release / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('file = "module.wasm"', f'file = "{file}"'))


def test_plain_file_is_valid(materialised: Callable[[Path], tuple[Path, Path]]) -> None:
    release, config = _release(materialised)
    assert _rules(release, config) == []


def test_link_to_a_file_inside_the_release_is_followed(
    materialised: Callable[[Path], tuple[Path, Path]],
) -> None:
    release, config = _release(materialised)
    os.symlink("module.wasm", release / "alias.wasm")
    _point_artifact_at(release, "alias.wasm")
    assert _rules(release, config) == []


def test_link_out_of_the_release_is_refused(materialised: Callable[[Path], tuple[Path, Path]]) -> None:
    release, config = _release(materialised)
    outside = release.parent / "outside.wasm"
    shutil.copyfile(release / "module.wasm", outside)
    os.symlink(outside, release / "alias.wasm")
    _point_artifact_at(release, "alias.wasm")
    assert _rules(release, config) == ["artifact-path"]


def test_file_in_a_subfolder_is_not_a_publishable_name(
    materialised: Callable[[Path], tuple[Path, Path]],
) -> None:
    # The build publishes the module as plugins/<name>/<version>/<file name>: a subfolder passed
    # validate and then stopped every build of the index.
    release, config = _release(materialised)
    (release / "out").mkdir()
    (release / "module.wasm").rename(release / "out" / "module.wasm")
    _point_artifact_at(release, "out/module.wasm")
    assert _rules(release, config) == ["artifact-path"]


@pytest.mark.parametrize("name", ["my plugin.wasm", "módulo.wasm", "a+b.wasm", "🧩.wasm"])
def test_a_name_the_build_cannot_publish_is_refused(
    materialised: Callable[[Path], tuple[Path, Path]], name: str
) -> None:
    release, config = _release(materialised)
    (release / "module.wasm").rename(release / name)
    _point_artifact_at(release, name)
    assert _rules(release, config) == ["artifact-path"]


@pytest.mark.parametrize("make", ["folder", "missing", "dangling-link"])
def test_not_a_file_is_missing(materialised: Callable[[Path], tuple[Path, Path]], make: str) -> None:
    release, config = _release(materialised)
    if make == "folder":
        (release / "thing.wasm").mkdir()
    elif make == "dangling-link":
        os.symlink("nowhere.wasm", release / "thing.wasm")
    _point_artifact_at(release, "thing.wasm")
    assert _rules(release, config) == ["artifact-missing"]


@pytest.mark.parametrize(
    "relative", [".", "plugins/x/1.0.0", "plugins/x/1.0.0/plugin.toml", "a b/c", None, "../sibling"]
)
def test_display_path_matches_relative_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, relative: str | None
) -> None:
    """The string shortcut answers exactly what ``Path.relative_to(cwd)`` does."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    target = (cwd / relative).resolve() if relative is not None else Path("/")
    try:
        expected = target.relative_to(cwd.resolve()).as_posix()
    except ValueError:
        expected = "fallback"
    assert _display_resolved(target, "fallback") == expected
    # A sibling whose name starts with the cwd's is not inside it.
    assert _display_resolved(Path(str(cwd.resolve()) + "x/y"), "fallback") == "fallback"
