"""plugin.toml -> Manifest: the typed API the sandbox, signing and registry parts use."""

from __future__ import annotations

import base64
import contextlib
import os
import threading
import time
from pathlib import Path

import pytest

from registry_tool.errors import EXIT_CHECK_FAILED
from registry_tool.manifest import (
    Artifact,
    Limits,
    ManifestError,
    load_manifest,
    load_registry_config,
    validate_release,
)

REPO = Path(__file__).resolve().parents[2]
INDEX = REPO / "index"


def test_load_sample_manifest() -> None:
    m = load_manifest(INDEX / "plugins" / "validate_email" / "1.0.0" / "plugin.toml")
    assert (m.name, m.version, m.abi, m.license) == ("validate_email", "1.0.0", "core", "Apache-2.0")
    assert m.authors == ("ferritelabs",)
    assert m.host_range == ">=0.2.0"
    assert m.exports == ("validate_email",)
    assert m.permissions == frozenset()
    assert dict(m.declared_permissions) == {"keys": False, "network": False}
    assert m.declared_limits == Limits(fuel=50_000_000, memory=16 * 1024**2)
    assert m.release_dir == INDEX / "plugins" / "validate_email" / "1.0.0"
    assert m.wasm_path == m.release_dir / "validate_email.wasm"
    assert m.artifact.size == m.wasm_path.stat().st_size
    assert m.raw == m.path.read_bytes()
    assert m.line_of("plugin.name") == 2
    first = m.tests[0]
    assert (first.name, first.call, first.input, first.expect) == (
        "accepts a plain address",
        "validate_email",
        "user@example.com",
        "1",
    )
    assert first.line == m.line_of("tests[0]")
    assert m.tests[1].expect == (1,)


def test_release_dir_accepted_and_effective_limits_with_config() -> None:
    config = load_registry_config(INDEX)
    m = load_manifest(INDEX / "plugins" / "count_vowels" / "1.0.0", config)
    assert m.declared_limits == Limits()
    assert m.limits.fuel == config.default_limits.fuel
    assert m.limits.module_size == config.max_limits.module_size
    assert m.tests[1].config == {"vowels": "lo"}
    assert m.tests[2].expect_regex is not None


def test_compatibility_range_and_granted_permissions() -> None:
    m = load_manifest(INDEX / "plugins" / "adler32" / "1.0.0")
    assert m.host_range == ">=0.2.0, <0.9.0"
    assert m.tests[2].args == (40, 5, 7)
    assert load_manifest(INDEX / "plugins" / "visit_counter" / "1.0.0").permissions == {"keys"}


def test_test_spec_inputs_and_expectations(tmp_path: Path) -> None:
    (tmp_path / "in.bin").write_bytes(b"\x00\x01")
    (tmp_path / "out.bin").write_bytes(b"ok")
    (tmp_path / "plugin.toml").write_text(
        (INDEX / "plugins" / "adler32" / "1.0.0" / "plugin.toml").read_text()
        + '\n[[tests]]\ncall = "adler32"\ninput_base64 = "'
        + base64.b64encode(b"\xff\xfe").decode()
        + '"\nexpect_file = "out.bin"\n\n'
        + '[[tests]]\ncall = "adler32"\ninput_file = "in.bin"\nexpect_trap = "out_of_fuel"\n'
    )
    m = load_manifest(tmp_path)
    b64, from_file = m.tests[3], m.tests[4]
    assert b64.input_bytes() == b"\xff\xfe" and b64.expected_bytes() == b"ok"
    assert b64.name == "adler32#3"
    assert from_file.input_bytes() == b"\x00\x01" and from_file.expect_trap == "out_of_fuel"
    assert m.tests[0].input_bytes() == b"Wikipedia"
    assert m.tests[2].input_bytes() is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[plugin\n", "invalid TOML"),
        ("", "'plugin' is required"),
        ('[plugin]\nname = "x"\n', "is required"),
    ],
)
def test_load_manifest_raises_manifest_error(tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / "plugin.toml").write_text(text)
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path / "plugin.toml")
    assert info.value.exit_code == EXIT_CHECK_FAILED
    assert fragment in info.value.diagnostics()
    assert info.value.findings


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("", "add [plugin]"),
        ('[plugin]\nname = "x"\n', "add [plugin] version"),
        ("[plugin]\n[artifact]\n", "add [exports]"),
    ],
)
def test_a_missing_key_is_fixed_by_adding_it(tmp_path: Path, text: str, fix: str) -> None:
    (tmp_path / "plugin.toml").write_text(text)
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path / "plugin.toml")
    fixes = [f.fix or "" for f in info.value.findings]
    assert any(f.startswith(fix) for f in fixes), fixes


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest(tmp_path / "plugin.toml")
    result = validate_release(tmp_path, load_registry_config(INDEX))
    assert not result.ok and result.findings[0].rule == "manifest-missing"


def test_artifact_dataclass_is_frozen() -> None:
    art = Artifact("a.wasm", "0" * 64, 3)
    with pytest.raises(AttributeError):
        art.file = "b.wasm"  # type: ignore[misc]


def test_oversized_manifest_is_rejected_before_parsing(tmp_path: Path) -> None:
    (tmp_path / "plugin.toml").write_text("# " + "x" * 300_000 + "\n")
    result = validate_release(tmp_path, load_registry_config(INDEX))
    assert [f.rule for f in result.findings] == ["manifest-too-large"]


def test_validates_version_bound_is_the_formats() -> None:
    """Written twice (validate must not import the format package at start-up): kept equal here."""
    from registry_tool.format.rules import VERSION_NUMBER_MAX
    from registry_tool.manifest import validate

    assert validate._VERSION_NUMBER_MAX == VERSION_NUMBER_MAX


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_manifest_that_is_no_regular_file_is_refused_without_reading_it(tmp_path: Path, kind: str) -> None:
    """A FIFO blocked validate and smoke forever; a link to /dev/zero made smoke read until memory ran out.

    A writer opens the FIFO after a few seconds, so that reading it (the old way) ends instead of hanging.
    """
    manifest = tmp_path / "plugin.toml"
    if kind == "fifo":
        os.mkfifo(manifest)

        def unblock() -> None:
            time.sleep(3)
            with contextlib.suppress(OSError):
                os.close(os.open(manifest, os.O_WRONLY | os.O_NONBLOCK))

        threading.Thread(target=unblock, daemon=True).start()
    else:
        os.symlink("/dev/null", manifest)
    with pytest.raises(ManifestError, match="not a regular file"):
        load_manifest(manifest)
    result = validate_release(tmp_path, load_registry_config(INDEX))
    assert [f.rule for f in result.findings] == ["manifest-missing"] or "symlink" in [
        f.rule for f in result.findings
    ]
    assert "not a regular file" in result.findings[0].message or result.findings[0].rule == "symlink"
