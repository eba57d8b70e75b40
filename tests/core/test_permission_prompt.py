"""The permission prompt talks on stderr only: stdout carries the report (--format json)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest

from registry_tool._cli import client as client_cli


@pytest.mark.parametrize(("answer", "granted"), [("y\n", True), ("yes\n", True), ("\n", False), ("", False)])
def test_the_prompt_writes_nothing_to_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], answer: str, granted: bool
) -> None:
    monkeypatch.setattr(client_cli, "_interactive", lambda: True)
    monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    release = SimpleNamespace(name="visit_counter", version="1.0.0")
    assert client_cli._prompt(release, frozenset({"keys"})) is granted
    out, err = capsys.readouterr()
    assert out == "" and "Grant them and install?" in err
