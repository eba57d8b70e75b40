"""format.rules: the name rules every command and client shares."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("name", "reserved"),
    [
        ("plugin.toml", True),
        ("./plugin.toml", True),
        ("YANK.toml", True),
        ("plugin.toml.0123456789ABCDEF.minisig", True),
        ("yank.toml.minisig", True),
        ("data/plugin.toml", False),
        ("plugin.toml.bak", False),
        ("module.wasm", False),
    ],
)
def test_reserved_names_are_a_release_folders_own_metadata(name: str, reserved: bool) -> None:
    from registry_tool.format.rules import is_reserved_name

    assert is_reserved_name(name) is reserved
