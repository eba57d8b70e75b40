"""Attack: module-controlled names (imports) must reach reports only as inert text.

A wasm import name is arbitrary UTF-8: it can carry a newline followed by a GitHub workflow
command (indented, since the runner trims a line before looking for ``::``) or terminal escape
sequences.  The link_error detail names the import, so the detail must be neutralised.
"""

from __future__ import annotations

import io

import pytest

from registry_tool.report import CheckResult, Finding, OutputFormat, Report, render
from registry_tool.sandbox import Case
from registry_tool.sandbox.outcome import Outcome, neutralise

from .conftest import Runner, wat

HOSTILE_NAMES = [
    "x\\0a::error file=plugin.toml::forged",
    "x\\0a   ::notice::all checks passed",
    "x\\0d::stop-commands::hide",
    "x\\1b]0;pwned\\07\\1b[2J",
    "x\\e2\\80\\ae reversed",  # U+202E RIGHT-TO-LEFT OVERRIDE
]


def _command_lines(text: str) -> list[str]:
    # The runner splits on \r and \n and trims each line before matching "::".
    return [line for line in text.replace("\r", "\n").split("\n") if line.strip().startswith("::")]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_import_name_is_neutralised_in_the_detail(run: Runner, name: str) -> None:
    module = wat(f'(module (import "env" "{name}" (func)) (func (export "f")))')
    [outcome] = run(module, Case("t", call="f"))
    assert outcome.outcome is Outcome.link_error
    assert "\n" not in outcome.detail and "\r" not in outcome.detail
    assert "\x1b" not in outcome.detail and "\u202e" not in outcome.detail
    report = Report(command="smoke")
    report.results.append(
        CheckResult(subject="p@1.0.0", findings=[Finding(rule="smoke-link-error", message=outcome.detail)])
    )
    out = io.StringIO()
    render(report, OutputFormat.github, out)
    assert len(_command_lines(out.getvalue())) == 1  # only the genuine annotation


@pytest.mark.parametrize(
    "text",
    ["  ::error::forged", "ok\n\t::warning::forged", "a\n\u3000::notice::x", "::debug::x"],
)
def test_neutralise_breaks_indented_workflow_commands(text: str) -> None:
    assert _command_lines(neutralise(text)) == []
    assert _command_lines(neutralise(text.encode())) == []
