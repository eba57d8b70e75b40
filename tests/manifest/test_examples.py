"""The example trees: every negative case fails with its specific rule and message, at the right line."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from registry_tool.manifest import validate_paths
from registry_tool.manifest.validate import RULES
from registry_tool.report import Finding, Report, Severity

Materialise = Callable[[Path], tuple[Path, Path]]
Expect = Callable[[Path], list[Any]]


def key_of(field: str) -> str:
    """The last TOML key of a dotted field: 'tests[0].call' -> 'call', 'tests[1]' -> 'tests'."""
    match = re.search(r"([A-Za-z0-9_-]+)(\[\d+\])?$", field)
    assert match, field
    return match.group(1)


def _matches(finding: Finding, rule: str, fragment: str, line: int | None) -> bool:
    text = f"{finding.message} Fix: {finding.fix or ''}"
    return finding.rule == rule and fragment in text and (line is None or finding.line == line)


def _assert_expected(case: Path, report: Report, expectations: Expect) -> None:
    findings = [f for _, f in report.findings()]
    for exp in expectations(case):
        assert any(_matches(f, exp.rule, exp.fragment, exp.line) for f in findings), (
            f"{case.name}: no finding {exp.rule}@{exp.line}: {exp.fragment!r} in\n"
            + "\n".join(f"  {f.rule}@{f.line}: {f.text()}" for f in findings)
        )


def test_enough_negative_cases(example_cases: dict[str, list[Path]]) -> None:
    assert len(example_cases["invalid"]) >= 30


def test_every_rule_has_an_example(example_cases: dict[str, list[Path]], expectations: Expect) -> None:
    all_cases = example_cases["invalid"] + example_cases["valid"]
    covered = {e.rule for case in all_cases for e in expectations(case)}
    # These are reached through the library API and tested in test_model.py; "limits" is a
    # fallback the schema patterns make unreachable from a file.
    assert set(RULES) - covered <= {"manifest-missing", "manifest-too-large", "limits"}


def test_invalid_case_fails_with_its_message(
    invalid_case: Path, materialised: Materialise, expectations: Expect
) -> None:
    case = invalid_case
    assert expectations(case), f"{case.name} has no expected.txt"
    path, config = materialised(case)
    report = validate_paths([path], config_path=config)
    assert not report.ok
    assert report.exit_code == 1
    _assert_expected(case, report, expectations)


def test_invalid_findings_point_at_the_key_line(
    invalid_case: Path, materialised: Materialise, expectations: Expect
) -> None:
    case = invalid_case
    """Every finding with a field and a line points at a line that spells that key or table."""
    path, config = materialised(case)
    report = validate_paths([path], config_path=config)
    for _, f in report.findings():
        if f.field and f.line and f.file:
            text = Path(f.file).read_text(encoding="utf-8").splitlines()[f.line - 1]
            assert key_of(f.field) in text, f"{f.rule} {f.field} -> line {f.line}: {text!r}"


def test_valid_case_passes(valid_case: Path, materialised: Materialise, expectations: Expect) -> None:
    case = valid_case
    path, config = materialised(case)
    report = validate_paths([path], config_path=config)
    errors = [f.text() for _, f in report.findings() if f.severity is Severity.error]
    assert report.ok, errors
    assert len(report.results) >= 2  # registry.toml + at least one release
    _assert_expected(case, report, expectations)


def test_cli_exit_1_and_json_for_each_invalid_case(
    invalid_case: Path, materialised: Materialise, expectations: Expect, cli: object
) -> None:
    case = invalid_case
    path, config = materialised(case)
    result = CliRunner().invoke(cli, ["validate", str(path), "--config", str(config), "--format", "json"])  # type: ignore[arg-type]
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["summary"]["errors"] >= 1
    rules = {f["rule"] for r in doc["results"] for f in r["findings"]}
    assert {e.rule for e in expectations(case)} <= rules
