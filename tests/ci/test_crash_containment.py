"""Attack: an input that crashes the checker loses every finding and every report.

A ~1,200-deep nested plugin.toml used to end ``ci check`` in a RecursionError traceback: no JSON,
no annotations, no SARIF, and the other releases' findings gone.  Now a crash inside one release
is that release's ``internal-error`` finding, a crash anywhere else is a report with one, and the
exit code is 3 (the tool failed; not 1, the input is bad) -- non-zero either way, so it fails closed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from registry_tool.errors import EXIT_INTERNAL
from tests.world import run_tool

from .conftest import IndexRepo

REPO = Path(__file__).resolve().parents[2]


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_tool(*args, cwd=cwd)


def test_deeply_nested_manifest_keeps_every_other_finding(index_repo: IndexRepo, tmp_path: Path) -> None:
    index_repo.release("alpha", "1.1.0", signer=index_repo.keys.bob)  # wrong signer: its own finding
    deep = index_repo.index / "plugins" / "alpha" / "1.2.0"
    deep.mkdir(parents=True)
    (deep / "plugin.toml").write_text("x = " + "[" * 1200 + "]" * 1200 + "\n")
    index_repo.commit()
    sarif = tmp_path / "out.sarif"
    proc = _run(
        index_repo.path,
        "ci",
        "check",
        "--base",
        "origin/main",
        "--format",
        "json",
        "--sarif-file",
        str(sarif),
        "index",
    )
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr
    assert proc.returncode == 1, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    by_subject = {r["subject"]: r for r in doc["results"]}
    assert not by_subject["plugins/alpha/1.2.0"]["ok"]
    assert any(f["rule"] == "signature" for f in by_subject["plugins/alpha/1.1.0"]["findings"])
    assert json.loads(sarif.read_text())["runs"]


def test_a_crash_in_one_release_is_its_finding_and_exit_3(
    index_repo: IndexRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import registry_tool.ci.check as check

    real = check.NewRelease

    class Crashing(real):  # type: ignore[misc,valid-type]
        def run(self) -> None:
            if self.key.version == "1.2.0":
                raise RecursionError("maximum recursion depth exceeded")
            super().run()

    monkeypatch.setattr(check, "NewRelease", Crashing)
    index_repo.release("alpha", "1.1.0", signer=index_repo.keys.bob)
    index_repo.release("alpha", "1.2.0")
    index_repo.commit()
    report = index_repo.check()
    by_subject = {r.subject: r for r in report.results}
    crashed = by_subject["plugins/alpha/1.2.0"].findings
    assert [f.rule for f in crashed] == ["internal-error"] and "RecursionError" in crashed[0].message
    assert any(f.rule == "signature" for f in by_subject["plugins/alpha/1.1.0"].findings)
    assert report.exit_code == EXIT_INTERNAL


def _cli() -> object:
    from registry_tool._cli import _register_areas, app

    if not app.registered_commands:
        _register_areas()
    return app


def test_ci_check_crash_outside_releases_still_writes_json_and_sarif(
    index_repo: IndexRepo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import registry_tool.ci.check as check

    def boom(*_args: object, **_kwargs: object) -> object:
        raise RecursionError("maximum recursion depth exceeded while calling a Python object")

    monkeypatch.setattr(check, "check_pull_request", boom)
    monkeypatch.chdir(index_repo.path)
    sarif = tmp_path / "out.sarif"
    result = CliRunner().invoke(
        _cli(),  # type: ignore[arg-type]
        ["ci", "check", "--base", "origin/main", "--format", "json", "--sarif-file", str(sarif)],
    )
    assert result.exit_code == EXIT_INTERNAL, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert doc["results"][0]["findings"][0]["rule"] == "internal-error"
    assert "internal-error" in sarif.read_text()


def test_every_command_turns_a_crash_into_exit_3_and_a_report(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import registry_tool.manifest as manifest

    def boom(*_args: object, **_kwargs: object) -> object:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(manifest, "validate_paths", boom)
    result = CliRunner().invoke(_cli(), ["validate", "--format", "json", str(tmp_path)])  # type: ignore[arg-type]
    assert result.exit_code == EXIT_INTERNAL
    assert "internal error: ZeroDivisionError" in result.stderr
    doc = json.loads(result.stdout)
    assert doc["results"][0]["findings"][0]["rule"] == "internal-error"
    text = CliRunner().invoke(_cli(), ["validate", str(tmp_path)])  # type: ignore[arg-type]
    assert text.exit_code == EXIT_INTERNAL and "Traceback" not in text.output
