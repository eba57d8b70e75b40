"""Reporters: the same Report rendered as text, JSON, GitHub annotations and SARIF."""

from __future__ import annotations

import io
import json

import pytest

from registry_tool.errors import CheckFailed, Location, UsageError
from registry_tool.report import (
    CheckResult,
    Finding,
    OutputFormat,
    Report,
    Severity,
    escape_data,
    escape_property,
    github_annotation,
    render,
    to_sarif,
)


def _report() -> Report:
    bad = CheckResult(
        subject="plugins/a,b/1.0.0",
        findings=[
            Finding(
                rule="digest-mismatch",
                message="sha256 100% wrong:\nsecond line, with comma",
                file="index/plugins/a:b/1.0.0/plugin.toml",
                line=12,
                column=3,
                fix="run `registry-tool sign`",
            ),
            Finding(rule="regression", message="fuel grew 40%", severity=Severity.warning),
        ],
    )
    good = CheckResult(subject="plugins/ok/2.0.0", data={"tests": 3})
    return Report(command="validate", results=[bad, good])


@pytest.mark.parametrize(
    ("raw", "data", "prop"),
    [
        ("plain", "plain", "plain"),
        ("100%", "100%25", "100%25"),
        ("a\nb\rc", "a%0Ab%0Dc", "a%0Ab%0Dc"),
        ("k:v,w", "k:v,w", "k%3Av%2Cw"),
        ("%0A", "%250A", "%250A"),
    ],
)
def test_workflow_command_escaping(raw: str, data: str, prop: str) -> None:
    assert escape_data(raw) == data
    assert escape_property(raw) == prop


def test_annotation_is_one_line_with_escaped_properties() -> None:
    report = _report()
    result, finding = next(iter(report.findings()))
    line = github_annotation(finding, result.subject)
    assert "\n" not in line
    assert line.startswith("::error file=index/plugins/a%3Ab/1.0.0/plugin.toml,line=12,col=3,title=")
    assert "title=digest-mismatch%3A plugins/a%2Cb/1.0.0::" in line
    assert line.endswith("::sha256 100%25 wrong:%0Asecond line, with comma. Fix: run `registry-tool sign`")


def test_github_format_appends_step_summary(tmp_path, monkeypatch) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("previous step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    out = io.StringIO()
    render(_report(), OutputFormat.github, out)
    text = summary.read_text()
    assert text.startswith("previous step\n")
    assert "| `plugins/a,b/1.0.0` | ❌ fail | 1 | 1 |" in text
    assert "| `plugins/ok/2.0.0` | ✅ ok | 0 | 0 |" in text
    assert out.getvalue().count("::error ") == 1
    assert out.getvalue().count("::warning ") == 1


def test_github_format_without_summary_env(monkeypatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    out = io.StringIO()
    render(_report(), OutputFormat.github, out)
    assert "::error " in out.getvalue()


def test_json_format_is_stable() -> None:
    out = io.StringIO()
    render(_report(), OutputFormat.json, out)
    doc = json.loads(out.getvalue())
    assert doc["format_version"] == 1
    assert doc["command"] == "validate"
    assert doc["ok"] is False
    assert doc["summary"] == {"subjects": 2, "failed": 1, "errors": 1, "warnings": 1}
    first = doc["results"][0]
    assert set(first) == {"subject", "file", "ok", "findings", "data"}
    assert set(first["findings"][0]) == {
        "rule",
        "severity",
        "message",
        "file",
        "line",
        "column",
        "field",
        "fix",
    }
    assert doc["results"][1]["data"] == {"tests": 3}


def test_text_format_lists_findings_and_verdict() -> None:
    out = io.StringIO()
    render(_report(), OutputFormat.text, out)
    text = out.getvalue()
    assert "FAIL plugins/a,b/1.0.0" in text
    assert "index/plugins/a:b/1.0.0/plugin.toml:12:3" in text
    assert "validate: 2 checked, 1 failed: failed" in text


def test_sarif_structure() -> None:
    sarif = to_sarif(_report(), "0.0.0")
    assert sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["digest-mismatch", "regression"]
    first, second = run["results"]
    region = first["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 12, "startColumn": 3}
    assert first["level"] == "error"
    assert second["level"] == "warning"
    assert "locations" not in second


def test_exit_codes_follow_the_verdict() -> None:
    assert _report().exit_code == 1
    assert Report(command="x", results=[CheckResult(subject="ok")]).exit_code == 0
    assert Report(command="x").exit_code == 0


def test_error_diagnostics_say_what_where_and_fix() -> None:
    err = CheckFailed(
        "artifact sha256 does not match",
        where=Location(file="plugin.toml", line=9, field="artifact.sha256"),
        fix="re-run registry-tool sign",
    )
    assert err.diagnostics() == (
        "plugin.toml:9, field 'artifact.sha256': artifact sha256 does not match. "
        "Fix: re-run registry-tool sign."
    )
    assert err.exit_code == 1
    assert UsageError("no such file", where="x.toml").exit_code == 2
    finding = Finding.from_error(err)
    assert (finding.file, finding.line, finding.field) == ("plugin.toml", 9, "artifact.sha256")


def test_sarif_rules_come_from_the_catalogue_with_a_help_link() -> None:
    from registry_tool.rules import RULES

    report = _report()
    rules = {r["id"]: r for r in to_sarif(report, "0")["runs"][0]["tool"]["driver"]["rules"]}
    digest = RULES["digest-mismatch"]
    assert rules["digest-mismatch"]["shortDescription"]["text"] == digest.summary
    assert rules["digest-mismatch"]["helpUri"].endswith("/blob/main/docs/manifest.md#rules")
    # An id missing from the catalogue still gets a rule (the catalogue test keeps that from shipping).
    assert rules["regression"]["shortDescription"]["text"] == "regression"
    run = to_sarif(report, "0")["runs"][0]
    ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert all(ids[res["ruleIndex"]] == res["ruleId"] for res in run["results"])


def test_sarif_from_a_real_validate_run_parses_as_sarif_2_1_0() -> None:
    """An independent SARIF 2.1.0 object model (sarif-pydantic) accepts what validate writes."""
    import subprocess
    import sys
    from pathlib import Path

    from sarif_pydantic import Sarif

    case = Path(__file__).resolve().parents[1] / "examples" / "invalid" / "digest-mismatch"
    done = subprocess.run(
        [sys.executable, "-m", "registry_tool", "validate", str(case), "--format", "sarif"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    sarif = Sarif.model_validate(json.loads(done.stdout))
    [run] = sarif.runs
    assert run.tool.driver.name == "registry-tool"
    assert run.results and all(r.rule_id for r in run.results)
    located = [r for r in run.results if r.locations]
    regions = [loc.physical_location.region for r in located for loc in r.locations]
    assert regions and all(region.start_line >= 1 for region in regions)


@pytest.mark.parametrize(
    ("data", "first", "second", "files"),
    [
        (
            {
                "previous_version": None,
                "releases": 1,
                "plugins": 1,
                "site_files": {"written": 3, "swapped": True},
            },
            "(no previous registry)",
            "1 release of 1 plugin,",
            "written 3; the whole site staged and swapped in",
        ),
        (
            {
                "previous_version": 7,
                "releases": 2,
                "plugins": 3,
                "site_files": {"written": 1, "swapped": False},
            },
            "(previous 7)",
            "2 releases of 3 plugins,",
            "written 1",
        ),
    ],
)
def test_build_lines_read_as_text(data: dict[str, object], first: str, second: str, files: str) -> None:
    """No Python values in the text ("previous None", "swapped True") and counts in the right number."""
    from registry_tool.report import CheckResult
    from registry_tool.views import _build_lines

    facts = {"registry_version": 8, "root_version": 2, "expires_at": "2026-12-05T00:00:00Z"}
    result = CheckResult(subject="build", data={**facts, **data})
    head, counts, _, site = _build_lines(result)
    assert first in head and second in counts and site == f"site files: {files}"
    assert "None" not in " ".join((head, counts, site)) and "True" not in site


def test_a_tab_in_a_tests_output_is_whitespace_in_the_text_report() -> None:
    """A Go stack trace's tab indent showed as \\x09 (the docs: controls but newline and tab escaped)."""
    result = CheckResult(subject="p@1.0.0")
    result.data = {
        "tests": [{"name": "t", "outcome": "trap", "passed": False, "stderr": "main.go\n\t/x/main.go:22"}]
    }
    out = io.StringIO()
    render(Report(command="smoke", results=[result]), OutputFormat.text, out)
    assert "\\x09" not in out.getvalue() and "/x/main.go:22" in out.getvalue()


def test_the_job_summary_stays_within_githubs_limit(tmp_path) -> None:
    """GitHub drops a whole step summary over 1 MiB: a pull request with 30,000 junk files left
    the maintainers no summary at all (15 MB)."""
    from registry_tool.report import STEP_SUMMARY_MAX, append_step_summary

    summary = tmp_path / "summary.md"
    rows = "".join(f"| `plugins/junk/1.0.0/f{i}` | ❌ fail | 1 | 0 |\n" for i in range(30_000))
    append_step_summary(str(summary), rows)
    append_step_summary(str(summary), "\n#### details\n" + rows)  # the second append of ci check
    data = summary.read_bytes()
    assert len(data) <= STEP_SUMMARY_MAX
    assert data.count(b"1 MiB limit") == 1 and data.startswith(b"| `plugins/junk/1.0.0/f0` |")
    assert all(line.startswith((b"| `plugins", b"*The summary")) for line in data.splitlines() if line)
