"""Attack: a pull request's plugin.toml names a file of the runner as its artifact.

``[artifact] file = "/proc/self/environ"`` (or ``../../x``, or a name too long for the file
system) is refused by validate, but the checker's digest and permission-escalation steps used to
read the file anyway: the report then carried the sha256 of a runner file (a way to test guesses
of its secrets), ``/proc/self/pagemap`` crashed the check (exit 3), and a 5,000-character name
ended it in ENAMETOOLONG.  Only a regular file inside the release folder is ever read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import wasmtime

from registry_tool.report import Report

from .conftest import IndexRepo


def _with_artifact(index_repo: IndexRepo, file: str) -> Path:
    release = index_repo.release("alpha", "1.1.0")
    manifest = release / "plugin.toml"
    text = manifest.read_text()
    assert 'file = "alpha.wasm"' in text
    manifest.write_text(text.replace('file = "alpha.wasm"', f"file = {json.dumps(file)}"))
    index_repo.commit()
    return release


def _findings(report: Report) -> list[tuple[str, str]]:
    return [(f.rule, f.message) for r in report.results for f in r.findings]


# A module outside the release whose one import would show in the escalation step's findings if
# the checker read it.
PROBE = '(module (import "env" "probe_read_by_the_checker" (func)))'


def test_an_absolute_artifact_path_outside_the_release_is_never_read(
    index_repo: IndexRepo, tmp_path: Path
) -> None:
    outside = tmp_path / "runner-file.wasm"
    outside.write_bytes(wasmtime.wat2wasm(PROBE))
    _with_artifact(index_repo, str(outside))
    report = index_repo.check()
    assert not report.ok
    text = json.dumps(report.to_json())
    assert "probe_read_by_the_checker" not in text and "not a WebAssembly" not in text
    assert hashlib.sha256(outside.read_bytes()).hexdigest() not in text
    assert any(rule == "artifact-path" for rule, _ in _findings(report))


def test_a_relative_escape_to_another_repository_file_is_never_read(index_repo: IndexRepo) -> None:
    outside = index_repo.index / "registry.toml"
    _with_artifact(index_repo, "../../../registry.toml")
    report = index_repo.check()
    assert not report.ok
    text = json.dumps(report.to_json())
    assert hashlib.sha256(outside.read_bytes()).hexdigest() not in text and "not a WebAssembly" not in text


@pytest.mark.parametrize("file", ["/proc/self/pagemap", "a" * 5000], ids=["pagemap", "name-too-long"])
def test_unreadable_artifact_names_are_findings_not_a_crash(index_repo: IndexRepo, file: str) -> None:
    _with_artifact(index_repo, file)
    report = index_repo.check()
    assert not report.ok
    rules = {rule for rule, _ in _findings(report)}
    assert "internal-error" not in rules, _findings(report)
    assert rules & {"artifact-path", "artifact-digest", "artifact-missing"}
