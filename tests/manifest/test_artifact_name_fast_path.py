"""The artifact-path rule's shortcut for plain file names never lets an unsafe name through."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from registry_tool.manifest import validate


class _Findings:
    def __init__(self) -> None:
        self.rules: list[str] = []

    def add(self, rule: str, *args: Any, **kwargs: Any) -> None:
        self.rules.append(rule)


def _shortcut(name: str) -> bool:
    return bool(validate._PLAIN_NAME.fullmatch(name)) and name not in (".", "..")


# Names built from the characters that matter to the rule: separators, drive and UNC prefixes,
# dots, controls, and the plain alphabet.
PIECES = st.sampled_from([*"aZ09_.+-/\\:\x00\n\x7f ~", "C:", "..", "\\\\"])
NAMES = st.lists(PIECES, max_size=8).map("".join)


@given(NAMES)
@settings(max_examples=500, deadline=None)
def test_a_name_the_shortcut_skips_is_one_the_full_rule_accepts(name: str) -> None:
    findings = _Findings()
    refused = validate._refused_path(findings, name)  # type: ignore[arg-type]
    if _shortcut(name):
        assert not refused and not findings.rules, name


def test_the_shortcut_does_not_take_traversal_absolute_or_windows_names() -> None:
    for name in ("..", ".", "/etc/passwd", "..\\x", "C:x.wasm", "\\\\server\\x", "a/b.wasm", "a\nb", ""):
        assert not _shortcut(name), name
    for name in ("plugin.wasm", "my-plugin_1.0.x.wasm", "..."):
        assert _shortcut(name), name
    for name in ("a+b.wasm", "a b.wasm", "x" * 256):  # not publishable names (format 2)
        assert not _shortcut(name), name


def test_the_shortcut_is_the_published_file_name_rule() -> None:
    from registry_tool.format.rules import FILE_NAME_RE

    assert validate._PLAIN_NAME.pattern == FILE_NAME_RE.pattern
