"""Attack: inputs a pull request or a previous site controls crash a parser with a traceback.

Each case once escaped as an exception no caller handled (AttributeError from semantic_version,
OverflowError, TypeError, "embedded null byte", Python's 4300-digit integer limit, lone
surrogates).  Each must now be a finding or a ``RegistryToolError`` naming the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime

from registry_tool.errors import RegistryToolError
from registry_tool.format import TopDocument
from registry_tool.format.errors import DocumentError
from registry_tool.format.strictjson import load_strict
from registry_tool.manifest import load_registry_config, validate_release
from registry_tool.manifest.units import UnitError, parse_duration, parse_size
from registry_tool.manifest.versions import RangeError, parse_range
from registry_tool.signing.release import manifest_identity
from registry_tool.trust.root import Root, RootFormatError

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "index" / "registry.toml"
ADD = '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
HUGE_INT = "9" * 4400

MANIFEST = """[plugin]
name = "example"
version = "1.0.0"
description = "An example"
authors = ["tests"]
license = "MIT"
abi = "core"

[compatibility]
host = {host}

[artifact]
file = {file}

[exports]
functions = ["add"]

[limits]
memory = {memory}

[[tests]]
call = "add"
args = [1, 2]
expect = [3]
"""


def _release(
    tmp_path: Path, *, host: str = '">=0.2.0, <1.0.0"', file: str = '"m.wasm"', memory: str = '"1MiB"'
) -> Path:
    d = tmp_path / "plugins" / "example" / "1.0.0"
    d.mkdir(parents=True)
    (d / "plugin.toml").write_text(MANIFEST.format(host=host, file=file, memory=memory))
    (d / "m.wasm").write_bytes(wasmtime.wat2wasm(ADD))
    return d


def _rules(release: Path) -> set[str]:
    result = validate_release(release, load_registry_config(CONFIG))
    assert not result.ok
    return {f.rule for f in result.findings}


@pytest.mark.parametrize("text", ["a - b", "1 - b", "a - 1.0.0"])
def test_hyphen_range_of_non_versions_is_a_range_error(text: str) -> None:
    from registry_tool.client.install import Requirement

    with pytest.raises(RangeError):
        parse_range(text)
    with pytest.raises(RegistryToolError):
        Requirement.parse(f"example@{text}")


def test_manifest_with_hyphen_range_of_non_versions_is_a_finding(tmp_path: Path) -> None:
    assert _rules(_release(tmp_path, host='"a - b"'))


def test_registry_toml_with_hyphen_range_of_non_versions_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "registry.toml"
    bad.write_text(CONFIG.read_text().replace('versions = ">=0.2.0, <1.0.0"', 'versions = "a - b"'))
    with pytest.raises(RegistryToolError, match="inconsistent"):
        load_registry_config(bad)


HUGE_RANGE = f'">=0.2.0, <{HUGE_INT}.0.0"'


def test_manifest_host_range_with_a_number_past_pythons_digit_limit_is_a_finding(tmp_path: Path) -> None:
    """int() of over 4,300 digits raises ValueError: the range check must never call it on one."""
    assert _rules(_release(tmp_path, host=HUGE_RANGE))


def test_registry_toml_host_range_with_a_number_past_pythons_digit_limit_is_a_config_error(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "registry.toml"
    bad.write_text(CONFIG.read_text().replace('versions = ">=0.2.0, <1.0.0"', f"versions = {HUGE_RANGE}"))
    with pytest.raises(RegistryToolError):
        load_registry_config(bad)


@pytest.mark.parametrize("stack", ["0", '"2MiB"', "2097153"])
def test_a_stack_limit_wasmtime_would_panic_on_is_a_finding(tmp_path: Path, stack: str) -> None:
    """Zero, or above wasmtime's 2 MiB async stack, aborted the smoke worker (blamed on the module)."""
    release = _release(tmp_path)
    manifest = release / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('memory = "1MiB"', f'memory = "1MiB"\nstack = {stack}'))
    result = validate_release(release, load_registry_config(CONFIG))
    bad = {f.rule for f in result.findings if "stack" in f.message}
    assert (bad == {"limits"}) == (stack != '"2MiB"'), result.findings


def test_a_version_past_pythons_digit_limit_is_no_version() -> None:
    from registry_tool.format import is_version

    assert not is_version(f"{HUGE_INT}.0.0")
    assert not is_version(f"1.{HUGE_INT}.0-rc.1")


@pytest.mark.parametrize("value", ["9" * 400, "9" * 400 + "MiB", 1e308, float("inf"), [1]])
def test_size_overflow_or_float_is_a_unit_error(value: object) -> None:
    with pytest.raises(UnitError):
        parse_size(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["9" * 400 + "s", float("inf"), float("nan"), 1e308])
def test_duration_overflow_is_a_unit_error(value: object) -> None:
    with pytest.raises(UnitError):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("memory", ['"' + "9" * 400 + '"', "1e308", "inf"])
def test_manifest_with_overflowing_memory_is_a_finding(tmp_path: Path, memory: str) -> None:
    assert _rules(_release(tmp_path, memory=memory))


def test_nul_in_artifact_file_is_a_finding(tmp_path: Path) -> None:
    assert _rules(_release(tmp_path, file='"m\\u0000.wasm"'))


def test_artifact_file_naming_a_symlink_loop_is_a_finding(tmp_path: Path) -> None:
    """A pull request can commit a link to itself: Python 3.11's resolve() raises RuntimeError."""
    release = _release(tmp_path, file='"loop.wasm"')
    (release / "loop.wasm").symlink_to("loop.wasm")
    assert "artifact-path" in _rules(release)


@pytest.mark.parametrize("name", ["tests/loop", "a" * 300, "tests/" + "b" * 300 + "/in.bin"])
def test_test_input_file_loop_or_overlong_name_is_a_finding(tmp_path: Path, name: str) -> None:
    release = _release(tmp_path)
    (release / "tests").mkdir()
    (release / "tests" / "loop").symlink_to("loop")
    text = (release / "plugin.toml").read_text()
    (release / "plugin.toml").write_text(text.replace('call = "add"', f'call = "add"\ninput_file = "{name}"'))
    assert "test-spec" in _rules(release)


@pytest.mark.parametrize("pattern", ["(?<=a+)b", "(unclosed", "a{2,1}", "x**"])
def test_an_expect_regex_python_cannot_compile_is_a_finding(tmp_path: Path, pattern: str) -> None:
    """Else validate passes it and the smoke run reports a crashed engine for the manifest's typo."""
    release = _release(tmp_path)
    text = (release / "plugin.toml").read_text().replace("expect = [3]", f"expect_regex = '{pattern}'")
    (release / "plugin.toml").write_text(text.replace("args = [1, 2]", 'input = "x"'))
    result = validate_release(release, load_registry_config(CONFIG))
    assert any(f.rule == "test-spec" and "expect_regex" in f.message for f in result.findings)


def test_manifest_integer_beyond_python_digit_limit_is_a_finding(tmp_path: Path) -> None:
    release = _release(tmp_path, memory=HUGE_INT)
    assert "toml-syntax" in _rules(release)


def test_release_signing_loader_refuses_huge_integer() -> None:
    data = f'[plugin]\nname = "x"\nversion = "1.0.0"\nbig = {HUGE_INT}\n'.encode()
    with pytest.raises(RegistryToolError, match="too long"):
        manifest_identity(data, where="plugin.toml")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"a": ' + HUGE_INT + "}", "beyond"),
        ('{"a": 99999999999999999}', "beyond"),
        ('{"a": "\\ud800"}', "lone surrogate"),
        ('{"\\udfff": 1}', "lone surrogate"),
        ('{"a": 1e999}', "out of range"),
        ('{"a": 1, "a": 2}', "duplicate"),
        ('{"a": NaN}', "constant"),
        ("[" * 100_000 + "]" * 100_000, "nested"),
        ('\ufeff{"a": 1}', "byte order mark"),
    ],
)
def test_strict_json_loader_refuses(text: str, reason: str) -> None:
    with pytest.raises(DocumentError, match=reason):
        load_strict(text.encode(), where="registry.json")


def test_strict_json_loader_refuses_invalid_utf8_and_oversize() -> None:
    with pytest.raises(DocumentError, match="UTF-8"):
        load_strict(b'{"a": "\xff"}', where="x")
    with pytest.raises(DocumentError, match="cap"):
        load_strict(b"[1, 2, 3]", where="x", cap=4)
    assert load_strict(b'{"a": [1, 2.5, "x"]}', where="x") == {"a": [1, 2.5, "x"]}


@pytest.mark.parametrize("payload", ['{"format_version": ' + HUGE_INT + "}", '{"registry": "\\ud800"}'])
def test_registry_json_refuses_huge_integers_and_lone_surrogates(payload: str) -> None:
    """`build --previous` and `resign` parse a previous site before checking its signature."""
    with pytest.raises(DocumentError):
        TopDocument.parse(payload.encode())


def test_root_parse_refuses_huge_integers() -> None:
    with pytest.raises(RootFormatError, match="beyond"):
        Root.parse(('{"version": ' + HUGE_INT + "}").encode())


def test_validate_cli_reports_crash_inputs_in_one_paragraph(tmp_path: Path) -> None:
    release = _release(tmp_path, host='"a - b"', memory="1e308")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "registry_tool",
            "validate",
            "--config",
            str(CONFIG),
            "--format",
            "json",
            str(release),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert json.loads(proc.stdout)["ok"] is False


def test_client_host_version_banana_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "registry_tool",
            "client",
            "install",
            "x",
            "--host-version",
            "banana",
            "--registry",
            "http://127.0.0.1:9/",
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "banana" in proc.stderr
