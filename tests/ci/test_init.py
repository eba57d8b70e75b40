"""`registry-tool init`: the scaffolded repository is valid, its keys are safe, its own PR check works."""

from __future__ import annotations

import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import wasmtime

from registry_tool.ci.check import CheckOptions, check_pull_request
from registry_tool.ci.scaffold import ScaffoldError, init_index
from registry_tool.manifest import load_registry_config
from registry_tool.signing import SecretKey, sign_release
from registry_tool.trust.editing import add_maintainer, edit_root_dir, sign_root_dir, verify_root_dir

from .conftest import ADD, git, manifest_text
from .test_workflows import _actionlint

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
    root = verify_root_dir(d / "index" / "root", datetime.now(UTC))
    assert root.version == 1 and root.roles["index"].keys[0].key_id == result.index_key_id
    # Secret keys live outside the repository, readable by the owner only.
    assert not result.keys_dir.is_relative_to(d)
    for name in ("root.key", "index.key"):
        mode = stat.S_IMODE((result.keys_dir / name).stat().st_mode)
        assert mode == 0o600, oct(mode)
    assert not list(d.rglob("*.key"))
    workflows = (d / ".github/workflows/pr-check.yml").read_text()
    assert "@@" not in workflows and "registry-tool==" in workflows
    assert result.git_initialised and (d / ".git").is_dir()


def test_init_prints_exact_next_steps(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(REPO / ".venv/bin/registry-tool"), "init", str(tmp_path / "reg"), "--host", "ferrite"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "gh secret set REGISTRY_INDEX_KEY < " + str(tmp_path / "reg.keys" / "index.key") in out
    assert "Settings > Pages > Build and deployment > Source: GitHub Actions" in out
    assert "REGISTRY_INDEX_KEY" in (tmp_path / "reg" / "README.md").read_text()
    again = subprocess.run(
        [str(REPO / ".venv/bin/registry-tool"), "init", str(tmp_path / "reg")], capture_output=True, text=True
    )
    assert again.returncode == 2 and "not empty" in again.stderr


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"name": "Bad Name"}, "not a valid name"), ({"host": "x"}, "not a valid name")],
)
def test_init_rejects_bad_names(tmp_path: Path, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ScaffoldError, match=message):
        init_index(tmp_path / "reg", **kwargs)


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
        proc = subprocess.run(
            [
                str(REPO / ".venv/bin/check-jsonschema"),
                "--builtin-schema",
                "vendor.github-workflows",
                str(wf),
            ],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stdout


def test_init_repository_passes_its_own_pr_check_on_a_fresh_plugin(tmp_path: Path) -> None:
    result = init_index(tmp_path / "reg", host="ferrite")
    d = result.directory
    for key, value in (
        ("user.email", "ci@example.invalid"),
        ("user.name", "ci"),
        ("commit.gpgsign", "false"),
    ):
        git(d, "config", key, value)
    # The owners delegate a plugin to a maintainer (a root change on main, signed by the root key).
    root_key = SecretKey.load((result.keys_dir / "root.key").read_bytes(), None)
    maintainer = SecretKey.generate()
    edit_root_dir(d / "index/root", add_maintainer("alice", [maintainer.public_key], ["hello"]))
    sign_root_dir(d / "index/root", root_key)
    git(d, "add", "-A")
    git(d, "commit", "-q", "-m", "new index")
    git(d, "checkout", "-q", "-b", "add-hello")
    release = d / "index/plugins/hello/1.0.0"
    release.mkdir(parents=True)
    (release / "hello.wasm").write_bytes(wasmtime.wat2wasm(ADD))
    (release / "plugin.toml").write_text(manifest_text("hello", "1.0.0"))
    sign_release(release, maintainer)
    git(d, "add", "-A")
    git(d, "commit", "-q", "-m", "add hello 1.0.0")
    report = check_pull_request(d, [], CheckOptions(base="main"))
    assert report.ok, [f.text() for _, f in report.findings()]
    assert [r.subject for r in report.results] == ["plugins/hello/1.0.0"]
    assert report.results[0].data["tests"][0]["outcome"] == "passed"
