"""The job summary: one section per release with checks, smoke figures and escalations; inert markup."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from registry_tool.ci.summary import md, release_details, write_outputs
from registry_tool.report import CheckResult, Finding, OutputFormat, Report, Severity

from .conftest import KEYS_ADD, SLOW_ADD, IndexRepo


def _release(name: str = "alpha", test: str = "adds") -> CheckResult:
    return CheckResult(
        subject=f"plugins/{name}/1.1.0",
        findings=[Finding(rule="fuel-regression", message="grew", severity=Severity.warning)],
        data={
            "plugin": name,
            "version": "1.1.0",
            "kind": "new",
            "previous": "1.0.0",
            "signers": ["ABCDEF0123456789"],
            "checks": {"signature": True, "smoke": True},
            "tests": [
                {
                    "name": test,
                    "outcome": "passed",
                    "passed": True,
                    "fuel_consumed": 1500,
                    "peak_memory_bytes": 65536,
                }
            ],
            "regressions": [
                {"test": test, "metric": "fuel_consumed", "previous": 4, "new": 1500, "growth": 374}
            ],
            "escalations": ["permission keys"],
        },
    )


def test_release_section_has_checks_figures_and_escalations() -> None:
    text = release_details(Report("ci check", [_release()]))
    assert "#### ✅ alpha 1.1.0 (new, previous 1.0.0)" in text
    assert "| signature | ✅ ok |" in text
    assert "| adds | ✅ passed | 1,500 | 64 KiB | ⚠️ fuel regression |" in text
    assert "- ⚠️ permission keys" in text and "Signed by: ABCDEF0123456789" in text


@pytest.mark.parametrize(
    "hostile",
    ["a | b", "<img src=x onerror=alert(1)>", "line\nbreak", "[click](https://evil.example)", "`code`"],
)
def test_untrusted_text_cannot_break_the_table(hostile: str) -> None:
    text = release_details(Report("ci check", [_release(test=hostile)]))
    row = next(line for line in text.splitlines() if "passed" in line and line.startswith("| "))
    assert len(re.split(r"(?<!\\)\|", row)) == 7  # still five cells between the outer pipes
    assert "<img" not in text and "[click](" not in text and "`code`" not in text
    assert md(hostile).count("\n") == 0


def test_github_outputs_write_overview_then_details(
    index_repo: IndexRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_repo.release("alpha", "1.1.0", SLOW_ADD.format(n=2000))
    index_repo.release("alpha_keys", "1.0.0", KEYS_ADD, permissions={"keys": True})
    index_repo.commit()
    report = index_repo.check()
    summary, sarif, side = tmp_path / "step.md", tmp_path / "out.sarif", tmp_path / "side.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))  # where the shared reporter writes
    out = io.StringIO()
    write_outputs(
        report, OutputFormat.github, out, sarif_file=sarif, summary_file=side, step_summary=str(summary)
    )
    text = summary.read_text()
    assert text.index("| Subject | Result |") < text.index("#### ✅ alpha 1.1.0 (new, previous 1.0.0)")
    assert "⚠️ fuel regression" in text
    assert "#### ✅ alpha_keys 1.0.0 (new)" in text and "new plugin requests permission keys" in text
    assert side.read_text() == text
    assert "::warning file=index/plugins/alpha/1.1.0/plugin.toml" in out.getvalue()
    assert '"version": "2.1.0"' in sarif.read_text()
