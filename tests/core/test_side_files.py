"""Files a report is also written to: the job summary is a courtesy, an option's file is the user's.

An unwritable $GITHUB_STEP_SUMMARY (a folder, a path under a file) crashed the github reporter
with a traceback after the check had passed; it is a warning now, and the report and exit code
stand.  A --sarif-file or --summary-file that cannot be written is a usage error with a fix.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from registry_tool.ci.summary import write_outputs
from registry_tool.errors import UsageError
from registry_tool.report import CheckResult, OutputFormat, Report, render


def _report() -> Report:
    return Report(command="validate", results=[CheckResult(subject="x")])


@pytest.mark.parametrize("where", ["folder", "under-a-file"])
def test_an_unwritable_job_summary_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    (tmp_path / "file").write_text("x")
    target = tmp_path if where == "folder" else tmp_path / "file" / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    out = io.StringIO()
    render(_report(), OutputFormat.github, out)
    write_outputs(_report(), OutputFormat.github, io.StringIO(), step_summary=str(target))
    assert "validate" in out.getvalue() or out.getvalue()
    assert "job summary" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["sarif_file", "summary_file"])
def test_an_unwritable_side_file_option_is_a_usage_error(tmp_path: Path, option: str) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError) as err:
        write_outputs(_report(), OutputFormat.text, io.StringIO(), **{option: tmp_path / "file" / "out"})
    assert err.value.exit_code == 2 and err.value.fix
