"""The command line, the composite action's script and the pre-commit hooks, run for real."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from registry_tool.ci.scaffold import render_template
from tests.world import run_tool as world_run_tool
from tests.world import tool_shim

from .conftest import SPIN, IndexRepo, manifest_text
from .sarif import SARIF_SUBSET

REPO = Path(__file__).resolve().parents[2]


def run_tool(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return world_run_tool(*args, cwd=cwd, env=env)


def test_ci_check_cli_exit_codes_and_outputs(index_repo: IndexRepo, tmp_path: Path) -> None:
    index_repo.release("alpha", "1.1.0", signer=index_repo.keys.bob)
    index_repo.commit()
    sarif, summary = tmp_path / "out.sarif", tmp_path / "summary.md"
    proc = run_tool(
        index_repo.path,
        "ci",
        "check",
        "--base",
        "origin/main",
        "--format",
        "github",
        "--sarif-file",
        str(sarif),
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert proc.returncode == 1, proc.stderr
    assert "::error file=index/plugins/alpha/1.1.0/plugin.toml.minisig,line=1," in proc.stdout
    import jsonschema

    jsonschema.validate(json.loads(sarif.read_text()), SARIF_SUBSET)
    assert "| `plugins/alpha/1.1.0` | ❌ fail |" in summary.read_text()
    proc = run_tool(index_repo.path, "ci", "check", "--base", "origin/main", "--format", "json", "index")
    assert proc.returncode == 1 and json.loads(proc.stdout)["summary"]["failed"] == 1


def test_ci_check_cli_passes_a_good_pr(index_repo: IndexRepo) -> None:
    index_repo.release("alpha", "1.1.0")
    index_repo.commit()
    proc = run_tool(index_repo.path, "ci", "check", "--base", "origin/main")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok   plugins/alpha/1.1.0" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--base", "no-such-branch"], "does not name a commit"),
        (["--base", "--upload-pack=evil"], "looks like an option"),
        (["--base", "origin/main", "--shard", "3/2"], "need 1 <= i <= n"),
        (["--base", "origin/main", "--shard", "x"], "not of the form i/n"),
        (["--base", "origin/main", "/"], "not inside the git checkout"),
    ],
)
def test_ci_check_usage_errors_exit_2(index_repo: IndexRepo, args: list[str], message: str) -> None:
    proc = run_tool(index_repo.path, "ci", "check", *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_ci_check_outside_git_exits_2(tmp_path: Path) -> None:
    proc = run_tool(tmp_path, "ci", "check", "--base", "main")
    assert proc.returncode == 2 and "not in a git checkout" in proc.stderr


def test_a_branch_sharing_no_history_with_the_base_is_the_pull_requests_fault(
    index_repo: IndexRepo, tmp_path: Path
) -> None:
    # An orphan branch (a complete clone): exit 1 and "rebase", not exit 2 and "fetch the base branch".
    from .conftest import git

    git(index_repo.path, "checkout", "-q", "--orphan", "orphan")
    index_repo.release("alpha", "1.1.0")
    index_repo.commit()
    proc = run_tool(index_repo.path, "ci", "check", "--base", "origin/main")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "shares no commit with the base" in proc.stderr and "rebase" in proc.stderr
    # A shallow clone lacks the history instead: the job's checkout, exit 2 and its fix.
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{index_repo.path}", str(shallow))
    git(shallow, "fetch", "-q", "--depth", "1", "origin", "main:base")
    proc = run_tool(shallow, "ci", "check", "--base", "base")
    assert proc.returncode == 2 and "fetch-depth: 0" in proc.stderr, proc.stderr


def _action_script() -> str:
    doc = yaml.safe_load((REPO / "action.yml").read_text())
    return next(s["run"] for s in doc["runs"]["steps"] if s.get("id") == "check")


@pytest.mark.parametrize(("good", "fmt"), [(True, "github"), (False, "json")])
def test_action_script_mirrors_exit_code_and_writes_summary(
    index_repo: IndexRepo, tmp_path: Path, good: bool, fmt: str
) -> None:
    index_repo.release("alpha", "1.1.0", signer=None if good else index_repo.keys.bob)
    index_repo.commit()
    runner_temp = tmp_path / "runner"
    tool_shim(runner_temp / "registry-tool-venv" / "bin")
    output, summary = tmp_path / "output", tmp_path / "summary.md"
    env = {
        **os.environ,
        "RUNNER_TEMP": str(runner_temp),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "BASE_REF": "origin/main",
        "FORMAT": fmt,
        "INDEX_PATHS": "index",
        "ALLOW_ESCALATION": "false",
        "SHARD": "1/1",
        "SARIF_FILE": str(tmp_path / "r.sarif"),
    }
    proc = subprocess.run(
        ["bash", "-e", "-c", _action_script()], cwd=index_repo.path, env=env, capture_output=True, text=True
    )
    expected = 0 if good else 1
    assert proc.returncode == expected, proc.stdout + proc.stderr
    assert output.read_text().strip() == f"exit-code={expected}"
    assert "### registry-tool ci check: " + ("passed" if good else "failed") in summary.read_text()
    assert json.loads((tmp_path / "r.sarif").read_text())["version"] == "2.1.0"


def test_action_script_refuses_an_empty_base(tmp_path: Path) -> None:
    output = tmp_path / "output"
    env = {**os.environ, "BASE_REF": "", "GITHUB_OUTPUT": str(output), "RUNNER_TEMP": str(tmp_path)}
    proc = subprocess.run(["bash", "-e", "-c", _action_script()], env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "base-ref is empty" in proc.stdout
    assert output.read_text().strip() == "exit-code=2"


def _author_repo(tmp_path: Path, wat: str) -> Path:
    """A plugin author's repository: their registry's registry.toml at the root, one release."""
    import wasmtime

    from registry_tool.signing import pin_artifact

    repo = tmp_path / "author"
    release = repo / "plugins" / "alpha" / "1.0.0"
    release.mkdir(parents=True)
    values = {"NAME": "reg", "HOST": "ferrite", "BASE_URL": "https://example.invalid/"}
    (repo / "registry.toml").write_text(render_template("registry.toml", values))
    (release / "alpha.wasm").write_bytes(wasmtime.wat2wasm(wat))
    (release / "plugin.toml").write_text(manifest_text("alpha", "1.0.0"))
    pin_artifact(release)
    return repo


@pytest.mark.parametrize("hook_id", ["registry-tool-validate", "registry-tool-smoke"])
def test_pre_commit_hooks_run_on_changed_manifests(tmp_path: Path, hook_id: str) -> None:
    from .conftest import ADD

    hook = next(
        h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text()) if h["id"] == hook_id
    )
    good = _author_repo(tmp_path / "good", ADD)
    # pre-commit runs `entry` + the matching file names, from the repository root.
    argv = [*hook["entry"].split(), "plugins/alpha/1.0.0/plugin.toml"]
    shims = tool_shim(tmp_path / "bin").parent
    env = {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(argv, cwd=good, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bad = _author_repo(tmp_path / "bad", SPIN)
    if hook_id == "registry-tool-validate":
        manifest = bad / "plugins/alpha/1.0.0/plugin.toml"
        manifest.write_text(manifest.read_text().replace('version = "1.0.0"', 'version = "1.0"'))
    proc = subprocess.run(argv, cwd=bad, capture_output=True, text=True, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr


def test_side_files_are_never_written_through_a_link(index_repo: IndexRepo, tmp_path: Path) -> None:
    # The check runs in the pull request's checkout: a link it commits by the SARIF file's name
    # (to .git/config, or out of the checkout) is replaced, and the link's target is left alone.
    index_repo.release("alpha", "1.1.0")
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (index_repo.path / "registry-tool.sarif").symlink_to(victim)
    (index_repo.path / "summary.md").symlink_to(victim)
    index_repo.commit()
    proc = run_tool(
        index_repo.path, "ci", "check", "--base", "origin/main", "--sarif-file", "registry-tool.sarif"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sarif = index_repo.path / "registry-tool.sarif"
    assert not sarif.is_symlink() and json.loads(sarif.read_text())["version"] == "2.1.0"
    assert victim.read_text() == "precious\n"
    proc = run_tool(index_repo.path, "ci", "check", "--base", "origin/main", "--summary-file", "summary.md")
    assert proc.returncode == 2 and "--summary-file summary.md is a symbolic link" in proc.stderr, proc.stderr
    assert victim.read_text() == "precious\n"


def test_errors_on_stderr_hold_no_workflow_command(tmp_path: Path) -> None:
    # An error names a path the pull request chose; the log must not read "##[...]" in it as a command.
    proc = run_tool(tmp_path, "validate", "x ##[warning title=approved]by @owner")
    assert proc.returncode == 2, proc.stderr
    assert "x ##\u200b[warning title=approved]by @owner" in proc.stderr and "##[" not in proc.stderr


def test_a_sarif_file_that_is_a_fifo_or_device_is_written_to_never_replaced(
    index_repo: IndexRepo, tmp_path: Path
) -> None:
    # Renaming a new file over the name replaced /dev/full on a root runner (a sweep of every command).
    index_repo.release("alpha", "1.1.0")
    index_repo.commit()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    proc = run_tool(index_repo.path, "ci", "check", "--base", "origin/main", "--sarif-file", str(fifo))
    assert proc.returncode == 2 and "--sarif-file" in proc.stderr, proc.stderr  # nobody reads it
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    proc = run_tool(index_repo.path, "ci", "check", "--base", "origin/main", "--sarif-file", os.devnull)
    assert proc.returncode == 0 and stat.S_ISCHR(os.lstat(os.devnull).st_mode), proc.stderr


def test_the_actions_approval_input_says_what_the_check_takes() -> None:
    from registry_tool.ci.model import APPROVAL_MIN_HEX

    doc = yaml.safe_load((REPO / "action.yml").read_text())
    assert f"({APPROVAL_MIN_HEX} to 40 hex digits)" in doc["inputs"]["allow-escalation-at"]["description"]
