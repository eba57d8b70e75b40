"""`registry-tool init`: the scaffolded repository is valid, its keys are safe, its own PR check works."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import wasmtime

from registry_tool.ci.scaffold import ScaffoldError, ToolPin, detect_tool_pin, init_index
from registry_tool.manifest import load_registry_config
from registry_tool.trust.editing import verify_root_dir
from tests.world import TOOL

from .conftest import ADD, git, manifest_text
from .test_workflows import _actionlint, _check_jsonschema

REPO = Path(__file__).resolve().parents[2]


def test_init_creates_a_valid_index(tmp_path: Path) -> None:
    result = init_index(tmp_path / "my-plugins", host="ferrite")
    d = result.directory
    for rel in (
        "index/registry.toml",
        ".github/workflows/pr-check.yml",
        ".github/workflows/publish.yml",
        "README.md",
        ".gitignore",
        "index/root/1.root.json",
    ):
        assert (d / rel).is_file(), rel
    config = load_registry_config(d / "index")
    assert config.name == "my-plugins" and "keys" in config.permissions
    # An Extism plugin's HTTP goes through the host: network, like the host's own net module.
    assert not config.import_allowed("extism", set(), "extism:host/env", "http_request")
    assert config.import_allowed("extism", {"network"}, "extism:host/env", "http_request")
    assert config.import_allowed("extism", {"network"}, "ferrite:net", "fetch")
    root = verify_root_dir(d / "index" / "root", datetime.now(UTC))
    assert root.version == 1 and root.roles["index"].keys[0].key_id == result.index_key_id
    # Secret keys live outside the repository, readable by the owner only.
    assert not result.keys_dir.is_relative_to(d)
    for name in ("root.key", "index.key"):
        mode = stat.S_IMODE((result.keys_dir / name).stat().st_mode)
        assert mode == 0o600, oct(mode)
    assert not list(d.rglob("*.key"))
    workflows = (d / ".github/workflows/pr-check.yml").read_text()
    assert "@@" not in workflows and "registry-tool==" not in workflows
    assert re.search(r"uses: registry-tool/registry-tool@[0-9a-f]{40} # v", workflows)
    assert result.git_initialised and (d / ".git").is_dir()


def test_init_prints_exact_next_steps(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*TOOL, "init", str(tmp_path / "reg"), "--host", "ferrite"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "gh secret set REGISTRY_INDEX_KEY < " + str(tmp_path / "reg.keys" / "index.key") in out
    assert "Settings > Pages > Build and deployment > Source: GitHub Actions" in out
    assert "REGISTRY_INDEX_KEY" in (tmp_path / "reg" / "README.md").read_text()
    # No --base-url: the placeholder is published (the catalog's install line names OWNER's
    # Pages) unless changed before the first commit, after which it takes a root change.
    assert "Set base_url in" in out and "https://OWNER.github.io/reg/" in out
    given = subprocess.run(
        [*TOOL, "init", str(tmp_path / "r2"), "--host", "ferrite", "--base-url", "https://example.org/r/"],
        capture_output=True,
        text=True,
    )
    assert given.returncode == 0 and "Set base_url" not in given.stdout, given.stderr
    again = subprocess.run([*TOOL, "init", str(tmp_path / "reg")], capture_output=True, text=True)
    assert again.returncode == 2 and "not empty" in again.stderr


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad Name"}, "not a valid name"),
        ({"host": "x"}, "not a valid name"),
        ({"base_url": "javascript:x"}, "not an http"),
        ({"base_url": "https://x.org/reg"}, "ending in '/'"),
        ({"base_url": "https://x.org/\n"}, "not an http"),
    ],
)
def test_init_rejects_bad_names(tmp_path: Path, kwargs: dict[str, str], message: str) -> None:
    """Before anything is written: a half-written scaffold made a second `init` refuse the folder."""
    with pytest.raises(ScaffoldError, match=message):
        init_index(tmp_path / "reg", **kwargs)
    assert not (tmp_path / "reg").exists()


def test_init_refuses_keys_inside_the_repo(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="inside the new repository"):
        init_index(tmp_path / "reg", keys_dir=tmp_path / "reg" / "keys")
    assert not (tmp_path / "reg" / "keys").exists()


def test_init_never_overwrites_keys(tmp_path: Path) -> None:
    (tmp_path / "reg.keys").mkdir()
    (tmp_path / "reg.keys" / "root.key").write_text("precious")
    with pytest.raises(ScaffoldError, match="already exists"):
        init_index(tmp_path / "reg")
    assert (tmp_path / "reg.keys" / "root.key").read_text() == "precious"


@pytest.mark.skipif(_actionlint() is None, reason="actionlint is not installed")
def test_scaffolded_workflows_are_lint_clean(tmp_path: Path) -> None:
    d = init_index(tmp_path / "reg").directory
    for wf in (d / ".github/workflows").glob("*.yml"):
        proc = subprocess.run([str(_actionlint()), "-no-color", str(wf)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout
        proc = _check_jsonschema("vendor.github-workflows", wf)
        assert proc.returncode == 0, proc.stdout


def test_init_repository_passes_its_own_pr_check_on_a_fresh_plugin(tmp_path: Path) -> None:
    """The printed next steps, run as printed (CLI), give a repository whose PR check passes."""

    def run(*args: str, cwd: Path) -> str:
        proc = subprocess.run([*TOOL, *args], cwd=cwd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    steps = run("init", "reg", "--host", "ferrite", cwd=tmp_path)
    d, keys = tmp_path / "reg", tmp_path / "reg.keys"
    for key, value in (
        ("user.email", "ci@example.invalid"),
        ("user.name", "ci"),
        ("commit.gpgsign", "false"),
    ):
        git(d, "config", key, value)
    git(d, "add", "-A")
    git(d, "commit", "-q", "-m", "New plugin index")
    assert "registry-tool root add-maintainer alice --pubkey alice.pub --plugin 'alice_*'" in steps
    run("key", "generate", str(tmp_path / "alice"), "--unencrypted", cwd=d)
    run(
        "root",
        "add-maintainer",
        "alice",
        "--pubkey",
        str(tmp_path / "alice.pub"),
        "--plugin",
        "alice_*",
        "--dir",
        "index/root",
        cwd=d,
    )
    run("root", "sign", "--dir", "index/root", "--key", str(keys / "root.key"), cwd=d)
    git(d, "add", "-A")
    git(d, "commit", "-q", "-m", "delegate alice_* to alice")
    git(d, "checkout", "-q", "-b", "add-plugin")
    release = d / "index/plugins/alice_add/1.0.0"
    release.mkdir(parents=True)
    (release / "alice_add.wasm").write_bytes(wasmtime.wat2wasm(ADD))
    (release / "plugin.toml").write_text(manifest_text("alice_add", "1.0.0"))
    run("sign", "index/plugins/alice_add/1.0.0", "--key", str(tmp_path / "alice.key"), cwd=d)
    git(d, "add", "-A")
    git(d, "commit", "-q", "-m", "add alice_add 1.0.0")
    out = run("ci", "check", "--base", "main", "--format", "json", cwd=d)
    doc = json.loads(out)
    assert doc["ok"] and [r["subject"] for r in doc["results"]] == ["plugins/alice_add/1.0.0"]
    assert doc["results"][0]["data"]["tests"][0]["outcome"] == "passed"
    # --all re-checks every release after a rule change: init's plugins/.gitkeep was "outside every
    # plugin release folder", so it failed on every index init made; so did a PR deleting it.
    assert json.loads(run("ci", "check", "--base", "main", "--all", "--format", "json", cwd=d))["ok"]
    git(d, "rm", "-q", "index/plugins/.gitkeep")
    git(d, "commit", "-q", "-m", "the folder holds a plugin now")
    assert json.loads(run("ci", "check", "--base", "main", "--format", "json", cwd=d))["ok"]


def test_init_pins_the_checker_to_an_explicit_commit(tmp_path: Path) -> None:
    pin = ToolPin("someone/registry-tool-fork", "a" * 40)
    d = init_index(tmp_path / "reg", tool=pin).directory
    pr = (d / ".github/workflows/pr-check.yml").read_text()
    publish = (d / ".github/workflows/publish.yml").read_text()
    assert f"uses: someone/registry-tool-fork@{'a' * 40} # v" in pr
    assert f"git+https://github.com/someone/registry-tool-fork@{'a' * 40}" in publish


@pytest.mark.parametrize(("repo", "commit"), [("x", "a" * 40), ("o/n", "v0.1.0"), ("o/n", "A" * 40)])
def test_init_refuses_a_pin_that_can_move(repo: str, commit: str) -> None:
    with pytest.raises(ScaffoldError):
        ToolPin(repo, commit)


def test_init_without_a_known_commit_asks_for_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import registry_tool.ci.scaffold as scaffold

    monkeypatch.setattr(scaffold, "detect_tool_pin", lambda repo=None: None)
    with pytest.raises(ScaffoldError, match="--tool-ref"):
        init_index(tmp_path / "reg")


def test_detected_pin_is_the_running_checkout() -> None:
    pin = detect_tool_pin()
    assert pin is not None
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert pin.commit == head.stdout.strip()


def test_init_that_fails_midway_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the templates were written left a scaffold a second `init` refused."""
    import registry_tool.ci.scaffold as scaffold

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(scaffold, "_write_secret", fail)
    target, keys = tmp_path / "reg", tmp_path / "reg.keys"
    with pytest.raises(OSError):
        init_index(target, host="ferrite", tool=ToolPin("owner/repo", "0" * 40))
    assert not target.exists() and not keys.exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / ".git").mkdir()
    with pytest.raises(OSError):
        init_index(tmp_path / "mine", host="ferrite", tool=ToolPin("owner/repo", "0" * 40))
    assert [p.name for p in (tmp_path / "mine").iterdir()] == [".git"]
