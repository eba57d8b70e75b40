"""`registry-tool validate`: exit codes 0/1/2, the three formats, annotation escaping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
INDEX = REPO / "index"
CONFIG = REPO / "tests" / "examples" / "registry.toml"
ADD = '(module (memory (export "memory") 1) (func (export "add") (param i32 i32) (result i32) local.get 0))'
MANIFEST = """[plugin]
name = "example"
version = "1.0.0"
description = "An example"
authors = ["tests"]
license = "MIT"
abi = "core"
min_host_version = "0.2.0"

[artifact]
file = "{file}"

[exports]
functions = ["add"]

[[tests]]
call = "add"
args = [1, 2]
expect = [3]
"""


def release(root: Path, name: str = "rel", file: str = "module.wasm", wasm: bool = True) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "plugin.toml").write_text(MANIFEST.format(file=file))
    if wasm:
        (d / "module.wasm").write_bytes(bytes(wasmtime.wat2wasm(ADD)))
    return d


def run(cli: object, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), env=env)  # type: ignore[arg-type]


def test_sample_index_passes_in_a_real_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "registry_tool", "validate", "index/"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("validate_email", "adler32", "uppercase", "count_vowels", "visit_counter", "healthcheck"):
        assert f"ok   index/plugins/{name}/1.0.0" in proc.stdout
    assert "passed" in proc.stdout


def test_plugins_dir_and_release_dirs_and_manifest_file_are_accepted(cli: object) -> None:
    for target in ("plugins", "plugins/adler32/1.0.0", "plugins/adler32/1.0.0/plugin.toml"):
        result = run(cli, "validate", str(INDEX / target), "--format", "json")
        assert result.exit_code == 0, result.output
        subjects = [r["subject"] for r in json.loads(result.stdout)["results"]]
        assert subjects[0].endswith("registry.toml")
        assert any("adler32" in s for s in subjects[1:])


def test_exit_1_text_output(cli: object, tmp_path: Path) -> None:
    bad = release(tmp_path, file="missing.wasm", wasm=False)
    result = run(cli, "validate", str(bad), "--config", str(CONFIG))
    assert result.exit_code == 1
    assert "FAIL" in result.stdout
    assert "artifact.file 'missing.wasm' does not exist" in result.stdout
    assert "plugin.toml:11" in result.stdout  # file:line of the key
    assert "validate: 2 checked, 1 failed: failed" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "does-not-exist"],
        ["validate"],
        ["validate", "index", "--format", "yaml"],
        ["validate", "/"],
    ],
    ids=["missing-path", "no-path", "bad-format", "no-registry-toml"],
)
def test_exit_2_usage_and_environment(cli: object, args: list[str]) -> None:
    result = run(cli, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_exit_2_dir_without_releases(cli: object, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run(cli, "validate", str(tmp_path / "empty"), "--config", str(CONFIG))
    assert result.exit_code == 2
    assert "no plugin.toml found" in result.stderr
    assert "Fix:" in result.stderr


def test_json_format_is_stable_and_documented(cli: object, tmp_path: Path) -> None:
    good = release(tmp_path, "good")
    bad = release(tmp_path, "bad", file="../escape.wasm")
    result = run(cli, "validate", str(good), str(bad), "--config", str(CONFIG), "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert set(doc) == {"format_version", "command", "ok", "summary", "results"}
    assert doc["format_version"] == 1 and doc["command"] == "validate" and doc["ok"] is False
    assert doc["summary"] == {"subjects": 3, "failed": 1, "errors": 1, "warnings": 0}
    config_result, good_result, bad_result = doc["results"]
    assert config_result["ok"] and config_result["data"]["name"] == "ferrite-plugins"
    assert good_result["ok"] and good_result["data"]["artifact"]["size"] > 0
    assert good_result["data"]["exports"] == ["memory", "add"]
    finding = next(f for f in bad_result["findings"] if f["severity"] == "error")
    assert set(finding) == {"rule", "severity", "message", "file", "line", "column", "field", "fix"}
    assert (
        finding["rule"] == "artifact-path" and finding["field"] == "artifact.file" and finding["line"] == 11
    )


def test_github_annotations_escape_percent_newline_comma_colon(cli: object, tmp_path: Path) -> None:
    weird = release(tmp_path, "50%,x:y\nz", file="100%,a:b.wasm", wasm=False)
    summary = tmp_path / "summary.md"
    result = run(
        cli,
        "validate",
        str(weird),
        "--config",
        str(CONFIG),
        "--format",
        "github",
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert result.exit_code == 1
    annotations = [ln for ln in result.stdout.splitlines() if ln.startswith("::")]
    error = next(ln for ln in annotations if ln.startswith("::error "))
    props, _, message = error[len("::error ") :].partition("::")
    file_prop = next(p for p in props.split(",") if p.startswith("file="))
    # Property values escape % , : and newlines; the message escapes % and newlines only.
    assert "50%25%2Cx%3Ay%0Az" in file_prop
    assert "line=11" in props
    assert "title=artifact-path%3A " in props
    assert "'100%25,a:b.wasm' is not a plain file name" in message
    assert "\n" not in error
    table = summary.read_text()
    assert "### registry-tool validate: failed" in table
    assert "| Subject | Result | Errors | Warnings |" in table


def test_github_format_without_summary_env(cli: object, tmp_path: Path) -> None:
    good = release(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    env["GITHUB_STEP_SUMMARY"] = ""
    result = run(cli, "validate", str(good), "--config", str(CONFIG), "--format", "github", env=env)
    assert result.exit_code == 0
    assert "::notice " in result.stdout  # digest not pinned yet
    assert "::error" not in result.stdout


def test_symlinked_release_dir_is_reported_not_skipped(cli: object, tmp_path: Path) -> None:
    index = tmp_path / "index"
    (index / "plugins").mkdir(parents=True)
    (index / "registry.toml").write_text(CONFIG.read_text())
    real = release(tmp_path / "elsewhere", "1.0.0")
    (index / "plugins" / "example").symlink_to(real.parent, target_is_directory=True)
    result = run(cli, "validate", str(index), "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    finding = doc["results"][1]["findings"][0]
    assert finding["rule"] == "symlink" and "is a symbolic link" in finding["message"]


@pytest.mark.parametrize("target", ["1.1.0", "nowhere"], ids=["self-loop", "dangling"])
def test_a_release_dir_link_leading_nowhere_is_reported_not_skipped(
    cli: object, tmp_path: Path, target: str
) -> None:
    """os.walk counts a link to itself or to nothing as a file: it must still be reported."""
    index = tmp_path / "index"
    real = release(index / "plugins" / "example", "1.0.0")
    (index / "registry.toml").write_text(CONFIG.read_text())
    (real.parent / "1.1.0").symlink_to(target)
    result = run(cli, "validate", str(index), "--format", "json")
    assert result.exit_code == 1
    findings = [f for r in json.loads(result.stdout)["results"] for f in r["findings"]]
    assert any(f["rule"] == "symlink" and "1.1.0" in f["message"] for f in findings)


def test_sarif_format_carries_rule_and_line(cli: object, tmp_path: Path) -> None:
    bad = release(tmp_path, file="/abs/module.wasm")
    result = run(cli, "validate", str(bad), "--config", str(CONFIG), "--format", "sarif")
    assert result.exit_code == 1
    sarif = json.loads(result.stdout)
    hit = next(r for r in sarif["runs"][0]["results"] if r["ruleId"] == "artifact-path")
    assert hit["level"] == "error"
    assert hit["locations"][0]["physicalLocation"]["region"]["startLine"] == 11


def test_a_dangling_link_in_a_skipped_folder_name_is_not_reported(cli: object, tmp_path: Path) -> None:
    """.venv, node_modules and dot names are skipped as folders; so are links by those names."""
    index = tmp_path / "index"
    release(index / "plugins" / "example", "1.0.0")
    (index / "registry.toml").write_text(CONFIG.read_text())
    (index / ".venv").symlink_to("/nonexistent")
    (index / "node_modules").symlink_to("/nonexistent")
    result = run(cli, "validate", str(index), "--format", "json")
    findings = [f for r in json.loads(result.stdout)["results"] for f in r["findings"]]
    assert not [f for f in findings if f["rule"] == "symlink"], findings
