"""Attack: file names a pull request chooses reach every output of the check.

git allows any byte but NUL and '/' in a name: newlines (a forged ``::command`` line in the log),
escape sequences, and bytes that are not UTF-8 (lone surrogates once decoded).  The check must
still flag the file, on the file, and every format must render without crashing.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from registry_tool.ci.summary import write_outputs
from registry_tool.report import OutputFormat

from .conftest import IndexRepo

NAMES = [
    b"a\n::error file=index::forged",
    b"b\r  ::stop-commands::hide",
    b"c\x1b]0;title\x07",
    b"d\xff\xfe not utf-8",
    # The legacy form, read by the runner wherever "##[" appears in a line (and Azure's ##vso[).
    b"e ##[warning title=Maintainer approval]approved by @owner",
    b"f ##vso[task.setvariable variable=x]y",
]


def _legacy_commands(text: str) -> list[str]:
    """Lines a runner reads as a legacy ``##[...]`` command (in an annotation: in its message)."""
    found = []
    for ln in text.replace("\r", "\n").split("\n"):
        # An annotation parses as a "::" command first; only its message is text the log shows.
        shown = ln.split("::", 2)[2] if ln.startswith("::") and ln.count("::") >= 2 else ln
        if "##[" in shown.lower() or "##vso[" in shown.lower():
            found.append(ln)
    return found


def _command_lines(text: str) -> list[str]:
    return [ln for ln in text.replace("\r", "\n").split("\n") if ln.strip().startswith("::")]


@pytest.mark.parametrize("name", NAMES)
def test_hostile_name_is_flagged_and_inert_in_every_format(
    index_repo: IndexRepo, name: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    index_repo.release("alpha", "1.1.0")
    with open(os.fsencode(index_repo.index / "plugins" / "alpha" / "1.1.0") + b"/" + name, "wb") as fh:
        fh.write(b"x")
    index_repo.commit()
    report = index_repo.check()
    flagged = [f for _, f in report.findings() if f.rule == "unexpected-file"]
    assert len(flagged) == 1 and not report.ok
    out = io.StringIO()
    sarif, summary = tmp_path / "out.sarif", tmp_path / "summary.md"
    write_outputs(
        report, OutputFormat.github, out, sarif_file=sarif, summary_file=summary, step_summary=str(summary)
    )
    lines = _command_lines(out.getvalue())
    assert len(lines) == 1 and lines[0].startswith("::error file="), lines
    assert "\x1b" not in out.getvalue() + summary.read_text()
    json.loads(sarif.read_text())
    assert not _legacy_commands(out.getvalue())
    for fmt in (OutputFormat.text, OutputFormat.json, OutputFormat.sarif):
        rendered = io.StringIO()
        write_outputs(report, fmt, rendered)
        rendered.getvalue().encode("utf-8")  # what the CLI writes to stdout must encode
        assert not _legacy_commands(rendered.getvalue()), fmt
        assert not _command_lines(rendered.getvalue()), fmt
    if b"##" in name:  # JSON escapes the bracket: the value read back is the name as it is
        rendered = io.StringIO()
        write_outputs(report, OutputFormat.json, rendered)
        files = [f.get("file", "") for r in json.loads(rendered.getvalue())["results"] for f in r["findings"]]
        assert any(f.endswith("/" + name.decode()) for f in files), files
