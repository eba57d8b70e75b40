"""Every workflow, the composite action and the pre-commit hooks: schema-valid, lint-clean, hardened.

The hardening rules are checked on the parsed YAML, so a future edit that adds an unpinned
action, drops ``persist-credentials: false`` or expands a PR-controlled string in a shell
command fails here, not in a security review.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from registry_tool.ci.scaffold import TEMPLATE_DIR, ToolPin, render_template
from tests.world import check_jsonschema_command

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
PIN = ToolPin("registry-tool/registry-tool", "0123456789abcdef0123456789abcdef01234567")
VALUES = {
    "NAME": "reg",
    "HOST": "ferrite",
    "BASE_URL": "https://example.invalid/reg/",
    "REGISTRY_TOOL_VERSION": "0.1.0",
    "TOOL_PIN": PIN.uses,
}


def _render_templates() -> list[Path]:
    """The workflow templates as `init` writes them (the placeholders are not YAML-meaningful)."""
    out = Path(tempfile.mkdtemp(prefix="registry-tool-templates-")) / ".github" / "workflows"
    out.mkdir(parents=True)
    rendered = []
    for template in sorted(TEMPLATE_DIR.glob("**/*.yml")):
        target = out / template.name
        target.write_text(render_template(str(template.relative_to(TEMPLATE_DIR)), VALUES), encoding="utf-8")
        rendered.append(target)
    return rendered


TEMPLATE_WORKFLOWS = _render_templates()
ALL_WORKFLOWS = WORKFLOWS + TEMPLATE_WORKFLOWS
ACTION = REPO / "action.yml"
HOOKS = REPO / ".pre-commit-hooks.yaml"

SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
# Contexts an outsider controls in a pull_request run (GitHub's script-injection list, plus inputs
# of the composite action, which come from whatever the caller passes).
UNTRUSTED = re.compile(r"\$\{\{[^}]*\b(github\.event|github\.head_ref|inputs\.|matrix\.|env\.)", re.S)


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(REPO)) if p.is_relative_to(REPO) else f"template:{p.name}" for p in paths]


def _check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema against one of its built-in GitHub schemas."""
    return subprocess.run(
        [*check_jsonschema_command(), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
    )


def _load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _steps(doc: dict[Any, Any]) -> list[dict[str, Any]]:
    if "runs" in doc:
        return list(doc["runs"]["steps"])
    return [step for job in doc["jobs"].values() for step in job.get("steps", [])]


def test_expected_files_exist() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {"pr-check.yml", "publish.yml", "ci.yml"} <= names
    assert {p.name for p in TEMPLATE_WORKFLOWS} >= {"pr-check.yml", "publish.yml"}
    assert ACTION.is_file() and HOOKS.is_file()


@pytest.mark.parametrize("path", ALL_WORKFLOWS, ids=_ids(ALL_WORKFLOWS))
def test_workflow_matches_github_schema(path: Path) -> None:
    proc = _check_jsonschema("vendor.github-workflows", path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_action_matches_github_schema() -> None:
    proc = _check_jsonschema("vendor.github-actions", ACTION)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    # The schema test above must be able to fail: `runs-on` misspelled, `steps` not a list.
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    run-on: ubuntu-24.04\n    steps: {}\n")
    proc = _check_jsonschema("vendor.github-workflows", bad)
    assert proc.returncode == 1


def _actionlint() -> str | None:
    found = shutil.which("actionlint")
    fallback = Path.home() / "go" / "bin" / "actionlint"
    return found or (str(fallback) if fallback.is_file() else None)


@pytest.mark.skipif(_actionlint() is None, reason="actionlint is not installed")
@pytest.mark.parametrize("path", ALL_WORKFLOWS, ids=_ids(ALL_WORKFLOWS))
def test_actionlint_clean(path: Path) -> None:
    proc = subprocess.run([str(_actionlint()), "-no-color", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(_actionlint() is None, reason="actionlint is not installed")
def test_actionlint_catches_injection(tmp_path: Path) -> None:
    wf = tmp_path / ".github" / "workflows" / "bad.yml"
    wf.parent.mkdir(parents=True)
    wf.write_text(
        "on: pull_request\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n'
    )
    proc = subprocess.run([str(_actionlint()), "-no-color", str(wf)], capture_output=True, text=True)
    assert proc.returncode == 1 and "untrusted" in proc.stdout


@pytest.mark.parametrize("path", [*ALL_WORKFLOWS, ACTION], ids=_ids([*ALL_WORKFLOWS, ACTION]))
def test_every_action_pinned_by_sha_with_version_comment(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    uses = [s["uses"] for s in _steps(_load(path)) if "uses" in s]
    assert uses, "expected at least one action"
    for ref in uses:
        assert SHA_PIN.match(ref), f"{ref} is not pinned by a full commit SHA"
        assert re.search(re.escape(ref) + r" # v\d", text), f"{ref} lacks a '# vX' comment"


@pytest.mark.parametrize("path", [*ALL_WORKFLOWS, ACTION], ids=_ids([*ALL_WORKFLOWS, ACTION]))
def test_no_untrusted_expression_in_shell(path: Path) -> None:
    for step in _steps(_load(path)):
        if "run" in step:
            assert not UNTRUSTED.search(step["run"]), f"expression in run: {step['run']!r}"
            assert "${{" not in step["run"], "pass values through env, not ${{ }} in run"


@pytest.mark.parametrize("path", ALL_WORKFLOWS, ids=_ids(ALL_WORKFLOWS))
def test_least_privilege_and_no_persisted_credentials(path: Path) -> None:
    doc = _load(path)
    assert doc.get("permissions") == {}, "top-level permissions must be {} (jobs opt in)"
    allowed = {
        "contents": {"read"},
        "security-events": {"write"},
        "pages": {"read", "write"},
        "id-token": {"write"},
    }
    for name, job in doc["jobs"].items():
        perms = job.get("permissions")
        assert isinstance(perms, dict), f"job {name} must declare its permissions"
        for scope, level in perms.items():
            assert level in allowed.get(scope, set()), f"job {name}: {scope}: {level} is not needed"
        # Write access to deploy, and the OIDC token, only where nothing from the PR/index runs.
        if perms.get("pages") == "write" or "id-token" in perms:
            assert all("run" not in step for step in job.get("steps", [])), f"job {name} runs scripts"
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_the_check_detects_injection_and_unpinned_actions() -> None:
    # The rules used above, applied to known-bad snippets, must fire.
    assert UNTRUSTED.search('echo "${{ github.event.pull_request.head.ref }}"')
    assert UNTRUSTED.search("echo ${{ inputs.paths }}")
    assert not SHA_PIN.match("actions/checkout@v4")
    assert not SHA_PIN.match("actions/checkout@11bd719")


def _on(doc: dict[Any, Any]) -> dict[str, Any]:
    # PyYAML (YAML 1.1) reads the bare key `on` as the boolean True.
    on = doc.get("on", doc.get(True))
    assert isinstance(on, dict)
    return on


PR_CHECKS = [REPO / ".github/workflows/pr-check.yml", TEMPLATE_WORKFLOWS[0].parent / "pr-check.yml"]


@pytest.mark.parametrize("path", PR_CHECKS, ids=["repository", "template"])
def test_pr_check_runs_the_tool_and_uploads_sarif(path: Path) -> None:
    doc = _load(path)
    steps = _steps(doc)
    text = " ".join(s.get("run", "") + str(s.get("with", "")) + s.get("uses", "") for s in steps)
    assert "registry-tool ci check" in text or PIN.uses in text
    assert "--sarif-file" in text or "sarif-file" in text
    uploads = [s for s in steps if "upload-sarif" in s.get("uses", "")]
    # Outside the checkout: a file or link the pull request commits by that name is never read or written.
    assert uploads and uploads[0]["with"]["sarif_file"] == "${{ runner.temp }}/registry-tool.sarif"
    assert uploads[0]["if"] == "always() && steps.sarif.outputs.found == 'true'"
    probe = next(s for s in steps if s.get("id") == "sarif")
    assert '[ -f "$RUNNER_TEMP/registry-tool.sarif" ]' in probe["run"] and "always()" in probe["if"]
    assert "$RUNNER_TEMP/registry-tool.sarif" in text or "${{ runner.temp }}/registry-tool.sarif" in text


@pytest.mark.parametrize("path", PR_CHECKS, ids=["repository", "template"])
def test_pr_cannot_neuter_its_own_check(path: Path) -> None:
    """Attack: GitHub runs a `pull_request` workflow from the PR, which can rewrite it to pass."""
    doc = _load(path)
    on = _on(doc)
    assert set(on) == {"pull_request_target", "merge_group"}, "the base's workflow, and the merge queue"
    text = path.read_text(encoding="utf-8")
    assert "secrets." not in text, "no secret in the job that reads pull request data"
    (job,) = doc["jobs"].values()
    assert job["permissions"] == {"contents": "read", "security-events": "write"}
    checkouts = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    assert len(checkouts) == 1
    checkout = checkouts[0]["with"]
    assert checkout["persist-credentials"] is False
    assert checkout["ref"] == "${{ github.event.pull_request.head.sha || github.event.merge_group.head_sha }}"
    assert "path" not in checkout or checkout["path"] not in ("", ".")


@pytest.mark.parametrize("path", PR_CHECKS, ids=["repository", "template"])
def test_pr_tree_is_data_only(path: Path) -> None:
    """Nothing from the checkout runs: no build or script from it, every `python -m` isolated (-I)."""
    for step in _steps(_load(path)):
        script = step.get("run", "")
        assert not re.search(r"(^|\s)(\./|bash |sh |make\b|npm |pip install \.|pip install -e)", script), (
            script
        )
        for line in script.splitlines():
            if re.search(r"python\S*\s+-m\b", line) or re.search(r"python\S*\s+-I\s+-m\b", line):
                assert " -I -m " in line, f"`python -m` imports from the working directory: {line}"
        uses = step.get("uses", "")
        assert not uses.startswith("./"), "a local action would come from the pull request"


@pytest.mark.parametrize("path", PR_CHECKS, ids=["repository", "template"])
def test_required_check_never_stays_pending(path: Path) -> None:
    """Attack: a `paths:` filter skips the workflow, and a required check then waits forever."""
    for trigger in _on(_load(path)).values():
        assert not (isinstance(trigger, dict) and ("paths" in trigger or "paths-ignore" in trigger))


@pytest.mark.parametrize("path", PR_CHECKS, ids=["repository", "template"])
def test_merge_queue_checks_against_the_base_it_lands_on(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "github.event.merge_group.base_sha" in text and "github.event.merge_group.head_sha" in text


def _approval_script(path: Path) -> str:
    (step,) = [s for s in _steps(_load(path)) if s.get("id") == "approval"]
    assert "LABELS" in step["env"] and "labels.*.name" in step["env"]["LABELS"]
    return str(step["run"])


@pytest.mark.parametrize("path", PR_CHECKS, ids=["repository", "template"])
@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ('["allow-escalation"]', ""),  # a bare label approves nothing: it would survive later pushes
        ('["bug", "allow-escalation@0123456789abcdef0123456789abcdef"]', "0123456789abcdef0123456789abcdef"),
        ('["allow-escalation@0123456789ABCDEF0123456789ABCDEF"]', ""),
        ('["allow-escalation@0123456789ab"]', ""),  # 48 bits: a commit could be ground to match
        ('["allow-escalation@0123456789abcdef0123456789abcdef; rm -rf /"]', ""),
        ("[]", ""),
    ],
)
def test_escalation_approval_names_a_commit(path: Path, labels: str, expected: str, tmp_path: Path) -> None:
    """The label's commit goes to --allow-escalation-at, which the tool honours only for HEAD."""
    output = tmp_path / "output"
    proc = subprocess.run(
        ["bash", "-e", "-c", _approval_script(path)],
        env={"LABELS": labels, "GITHUB_OUTPUT": str(output), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert output.read_text() == f"sha={expected}\n"


@pytest.mark.parametrize("path", [*TEMPLATE_WORKFLOWS, REPO / "action.yml"], ids=["pr", "publish", "action"])
def test_checker_never_installed_by_package_name(path: Path) -> None:
    """Attack: `pip install registry-tool==0.1.0` installs whatever the first registrant uploads."""
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"registry-tool\s*(==|>=|~=|\s*$)", text, re.M)
    assert "pip install" not in text or PIN.uses in text or "$ACTION_PATH" in text


@pytest.mark.parametrize(
    "path",
    [*TEMPLATE_WORKFLOWS, *WORKFLOWS, REPO / "action.yml", REPO / ".pre-commit-hooks.yaml"],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_every_install_of_the_command_line_has_the_cli_extra(path: Path) -> None:
    """The bare package is the host's client: `ci check` said "needs the [cli] extra" (exit 2) on
    every pull request of an index `init` scaffolded, and the pre-commit hooks could not run."""
    text = path.read_text(encoding="utf-8")
    installs = re.findall(r"pip install -q (\S+)", text) + re.findall(r"additional_dependencies: (.*)", text)
    tool = [i for i in installs if "registry-tool" in i or "ACTION_PATH" in i or "base" in i or "." in i]
    if "pip install" in text or path.name == ".pre-commit-hooks.yaml":
        assert tool, f"{path} installs no registry-tool"  # (a template pr-check uses the action)
    for install in tool:
        assert "[cli]" in install, f"{path}: {install} installs the command line without its [cli] extra"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("wasmtime") for d in extras["cli"])  # validate, ci check, build need it


def test_generated_workflows_pin_the_checker_by_commit() -> None:
    pr, publish = (TEMPLATE_WORKFLOWS[0].parent / n for n in ("pr-check.yml", "publish.yml"))
    uses = [s["uses"] for s in _steps(_load(pr)) if "registry-tool" in s.get("uses", "")]
    assert uses == [PIN.uses]
    assert f'"registry-tool[cli] @ git+https://github.com/{PIN.uses}"' in publish.read_text(encoding="utf-8")


def test_publish_keeps_the_key_secret() -> None:
    for path in (REPO / ".github/workflows/publish.yml", TEMPLATE_WORKFLOWS[0].parent / "publish.yml"):
        doc = _load(path)
        on = _on(doc)
        assert on["push"]["branches"] == ["main"] and on["schedule"]
        steps = _steps(doc)
        key_steps = [s for s in steps if "secrets." in str(s.get("env", ""))]
        assert len(key_steps) == 1, "the secret is exposed to exactly one step"
        script = key_steps[0]["run"]
        assert "umask 077" in script.split("printf")[0], "umask must be set before the key is written"
        assert not re.search(r"echo[^\n]*\$REGISTRY_INDEX_KEY\b", script), "never echo the key"
        assert any("rm -f" in s.get("run", "") and s.get("if") == "always()" for s in steps)
        uses = [s.get("uses", "").split("@")[0] for s in steps]
        for action in ("actions/configure-pages", "actions/upload-pages-artifact", "actions/deploy-pages"):
            assert action in uses
        runs = " ".join(s.get("run", "") for s in steps)
        assert "registry-tool build" in runs
        # Built and uploaded outside the checkout: a `site` folder or link merged into the index
        # repository is neither written through nor published.
        assert '--out "$RUNNER_TEMP/site"' in runs
        upload = next(s for s in steps if "upload-pages-artifact" in s.get("uses", ""))
        assert upload["with"]["path"] == "${{ runner.temp }}/site"


def test_ci_runs_the_readme_test_command() -> None:
    runs = [s.get("run", "") for s in _steps(_load(REPO / ".github/workflows/ci.yml"))]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make test" in readme and "make test" in runs


def test_action_inputs_and_exit_code() -> None:
    doc = _load(ACTION)
    assert doc["runs"]["using"] == "composite"
    assert {"base-ref", "format", "paths"} <= set(doc["inputs"])
    script = _steps(doc)[-1]["run"]
    assert 'exit "$code"' in script and "GITHUB_OUTPUT" in script
    assert "--summary-file" in script


def _hook_regex(hook: dict[str, Any]) -> re.Pattern[str]:
    return re.compile(hook["files"])


def test_pre_commit_hooks() -> None:
    hooks = yaml.safe_load(HOOKS.read_text(encoding="utf-8"))
    by_id = {h["id"]: h for h in hooks}
    assert set(by_id) == {"registry-tool-validate", "registry-tool-smoke"}
    for hook in hooks:
        assert {"id", "name", "entry", "language"} <= set(hook)
        assert hook["language"] == "python"  # pre-commit installs this repository as the package
        assert hook["entry"].split()[0] == "registry-tool"
        files = _hook_regex(hook)
        assert files.search("plugins/x/1.0.0/plugin.toml") and files.search("plugin.toml")
        assert not files.search("plugin.toml.minisig") and not files.search("myplugin.toml")
    assert by_id["registry-tool-validate"]["entry"] == "registry-tool validate"
    assert by_id["registry-tool-smoke"]["entry"] == "registry-tool smoke"


def test_docs_list_every_rule_id() -> None:
    from registry_tool.ci.check import RULES

    docs = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    missing = [rule for rule in RULES if f"| `{rule}` |" not in docs]
    assert not missing, f"docs/ci.md lacks rules {missing}"
