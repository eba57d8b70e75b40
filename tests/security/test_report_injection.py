"""Attack: text a pull request or a module controls must not become workflow commands or markup.

``--format github`` prints annotations and then the text report on the same stream, which the
Actions runner scans line by line (split on CR and LF, trimmed) for ``::command``.  Finding
messages embed PR-controlled strings (file names from ``git diff -z``, test names, manifest
values), so the text part must be inert too; so must the Markdown job summary.
"""

from __future__ import annotations

import io
import re

import pytest

from registry_tool.report import CheckResult, Finding, OutputFormat, Report, markdown_summary, render

ATTACKS = [
    "plugins/x/1.0.0/a\n::error file=plugin.toml,line=1::forged",
    "name\r::stop-commands::token",
    "name\n    ::add-mask::secret",
    "name\u2028::notice::x",
    "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07",
    "\x1b[2K\x1b[1Agood",
    "abc\u202edef",
]


def _report(text: str) -> Report:
    finding = Finding(rule="file-outside-plugin", message=f"{text} is outside", file=text, fix=text)
    # A failed smoke test's facts: its name and output reach the text through the smoke view.
    test = {"name": text, "outcome": "trap", "passed": False, "stdout": text, "stderr": text}
    result = CheckResult(subject=text, findings=[finding], data={"tests": [test]})
    return Report(command="smoke", results=[result])


def _command_lines(text: str) -> list[str]:
    return [ln for ln in text.replace("\r", "\n").split("\n") if ln.strip().startswith("::")]


@pytest.mark.parametrize("text", ATTACKS)
def test_github_output_has_only_genuine_annotations(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    out = io.StringIO()
    render(_report(text), OutputFormat.github, out)
    lines = _command_lines(out.getvalue())
    assert len(lines) == 1 and lines[0].startswith("::error file="), lines
    assert "\x1b" not in out.getvalue()


@pytest.mark.parametrize("text", ATTACKS)
def test_text_output_has_no_control_characters(text: str) -> None:
    out = io.StringIO()
    render(_report(text), OutputFormat.text, out)
    body = out.getvalue()
    assert not any(c in body for c in "\x1b\r\u2028\u202e")
    assert _command_lines(body) == []


@pytest.mark.parametrize(
    "text",
    [
        "x`<img src=https://evil.example/p.png>`",
        "<!-- hide the rest",
        "</details>\n\n### registry-tool ci check: passed",
        "[click](https://evil.example)",
        "a\r| forged | row |",
    ],
)
def test_markdown_summary_cells_are_inert(text: str) -> None:
    # Inside a code span (one line, no backtick) nothing is markup: look at what is outside them.
    spans = re.findall(r"`[^`\n]*`", markdown_summary(_report(text)))
    summary = re.sub(r"`[^`\n]*`", "CODE", markdown_summary(_report(text)))
    assert all("\\|" in span or "|" not in span for span in spans)
    assert "<img" not in summary and "<!--" not in summary and not re.search(r"(?<!\\)\]\(", summary)
    assert summary.count("</details>") == 1 and "\r" not in summary
    assert [ln for ln in summary.splitlines() if ln.startswith("#")] == [summary.splitlines()[0]]


@pytest.mark.parametrize(
    "path",
    [
        "index/plugins/a/1.0.0/x#plugin.toml",
        "index/plugins/a/1.0.0/x?y",
        "index/plugins/a/1.0.0/100%zz",
        "index/plugins/a/1.0.0/new\nline",
        "index/plugins/a/1.0.0/sp ace",
    ],
)
def test_sarif_uri_is_a_percent_encoded_relative_reference(path: str) -> None:
    from urllib.parse import unquote, urlsplit

    from registry_tool.report import to_sarif

    report = Report(command="ci check", results=[CheckResult("s", [Finding("r", "m", file=path)])])
    [result] = to_sarif(report, "0")["runs"][0]["results"]
    uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    parts = urlsplit(uri)
    # Otherwise '#', '?' cut the path (annotation on another file) and a bad '%' is an invalid URI.
    assert (parts.scheme, parts.query, parts.fragment) == ("", "", "")
    assert unquote(parts.path) == path and re.fullmatch(r"([A-Za-z0-9/._~!$&'()*+,;=:@-]|%[0-9A-F]{2})*", uri)
