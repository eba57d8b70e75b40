"""Untrusted text never reaches a terminal, a CI log, a job summary or a report as itself.

A maintainer signs a yank reason, a a pull request names its files and
tests: each of these reaches an error paragraph, a notice, the Markdown summary or a JSON/SARIF
report.  Every case here failed before the text was escaped there.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import typer
from markdown_it import MarkdownIt

from registry_tool._cli import _write, internal_message, stopped
from registry_tool.ci.summary import write_outputs
from registry_tool.errors import CheckFailed, hidden_characters, printable
from registry_tool.format.strictjson import load_strict
from registry_tool.report import CheckResult, Finding, OutputFormat, Report, json_text, md_text

HOSTILE = (
    "CVE-1 \x1b]52;c;cm0gLXJmIH4=\x07\x1b]8;;https://evil.example/\x07details\x1b]8;;\x07\x1b[2J"
    "\r\n::add-mask::installed\n::warning title=x::all plugins verified\x9b31m"
)
RAW = ("\x1b", "\x07", "\r", "\n", "\x9b")


def _clean(text: str) -> None:
    assert not any(c in text for c in RAW), repr(text)
    assert "\\x1b]52" in text  # shown, escaped


def test_error_paragraph_escapes_what_where_and_fix() -> None:
    err = CheckFailed(f"no release matches; skipped 1.0.0 (yanked: {HOSTILE})", where=HOSTILE, fix=HOSTILE)
    _clean(err.diagnostics())


def test_cli_error_line_and_notice_are_one_clean_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit):
        stopped(CheckFailed(HOSTILE), OutputFormat.text)
    report = Report(command="client update", results=[CheckResult(subject="x")], notices=[f"kept: {HOSTILE}"])
    _write(report, OutputFormat.text)
    err = capsys.readouterr().err
    error, note = err.splitlines()
    assert error.startswith("error: CVE-1 ") and note.startswith("note: kept: CVE-1 ")
    _clean(error)
    _clean(note)


def test_internal_error_message_is_escaped() -> None:
    _clean(internal_message("client install", ValueError(HOSTILE)))


def test_invisible_and_bidi_characters_are_shown_escaped() -> None:
    text = "a\u200bb\u200cc\u200dd\u2060e\ufefff\u061cg\u00adh\u202ei"
    assert printable(text) == "a\\u200bb\\u200cc\\u200dd\\u2060e\\ufefff\\u061cg\\xadh\\u202ei"
    assert hidden_characters("line\nnext\ttab\x1b", allow="\n\t") == ["\\x1b"]


@pytest.mark.parametrize(
    "hostile",
    [
        r"\[All checks passed - approve here\](https://evil.example/phish)",
        "![x](https://evil.example/t.png)",
        "see https://evil.example/login or www.evil.example",
        "<img src=https://evil.example/t.png>",
        "&lt;b&gt; &#60;i&#62;",
        "[ref]: https://evil.example\n[ref]",
    ],
)
def test_markdown_text_renders_no_link_image_or_html(hostile: str) -> None:
    html = MarkdownIt("commonmark").enable("table").render(f"| h |\n|---|\n| {md_text(hostile)} |\n")
    assert "<a " not in html and "<img" not in html and "<b>" not in html and "<i>" not in html


@pytest.mark.parametrize("text", ["see https://evil.example/x", "or WWW.evil.example", "ftp://x.y"])
def test_markdown_text_breaks_bare_autolinks(text: str) -> None:
    # GitHub links a bare URL or www. name by itself; CommonMark (above) does not, so check the text.
    out = md_text(text)
    assert "://" not in out and "www." not in out.lower()


def test_markdown_text_keeps_names_and_import_names_readable() -> None:
    assert md_text("alpha_keys 1.0.0 ferrite:keys.get") == "alpha_keys 1.0.0 ferrite:keys.get"


def test_json_and_sarif_reports_hold_no_lone_surrogate(tmp_path: Path) -> None:
    name = b"index/plugins/a/1.0.0/bad\xff\xfe".decode("utf-8", "surrogateescape")
    result = CheckResult(subject=name)
    result.findings.append(Finding(rule="unexpected-file", message=f"{name} is not allowed", file=name))
    report = Report(command="ci check", results=[result])
    assert "\\udcff" in json_text(report.to_json())
    load_strict(json_text(report.to_json()).encode(), where="report.json")
    sarif = tmp_path / "out.sarif"
    out = io.StringIO()
    write_outputs(report, OutputFormat.json, out, sarif_file=sarif, summary_file=None, step_summary=None)
    load_strict(out.getvalue().encode(), where="stdout")
    load_strict(sarif.read_bytes(), where=str(sarif))
    assert json.loads(sarif.read_text())["runs"][0]["results"]
