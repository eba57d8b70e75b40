"""``registry-tool init DIR``: scaffold a new index repository.

The repository gets registry.toml, a fresh root (version 1, signed by its new root key), the
PR-check and publish workflows and a README.  The new secret keys are written OUTSIDE the
repository (``DIR.keys`` by default, mode 0600) so a careless ``git add -A`` cannot publish them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from registry_tool.errors import UsageError
from registry_tool.format.rules import is_plugin_name
from registry_tool.signing.minisign import SecretKey

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
# The GitHub repository of registry-tool, whose composite action (action.yml) the workflows use.
ACTION_REPO = "registry-tool/registry-tool"
_COMMIT = re.compile(r"[0-9a-f]{40}")
_REPO_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}")
SECRET_NAME = "REGISTRY_INDEX_KEY"  # noqa: S105 (the secret's name, not its value)

# template file -> path in the new repository
_FILES = {
    "registry.toml": "index/registry.toml",
    "github/workflows/pr-check.yml": ".github/workflows/pr-check.yml",
    "github/workflows/publish.yml": ".github/workflows/publish.yml",
    "README.md": "README.md",
    "gitignore": ".gitignore",
}


class ScaffoldError(UsageError):
    """The target directory or the options do not allow a new index here."""

    code = "init"


@dataclass(frozen=True)
class InitResult:
    """What ``init_index`` created: the repository, where the keys went, their ids, the files."""

    directory: Path
    keys_dir: Path
    root_key_id: str
    index_key_id: str
    files: tuple[str, ...]
    git_initialised: bool
    base_url: str = ""
    base_url_placeholder: bool = False  # no --base-url: registry.toml holds OWNER's Pages URL

    def to_json(self) -> dict[str, Any]:
        """The facts of the new index (``registry_tool.views`` turns them into the next steps)."""
        return {
            "directory": str(self.directory),
            "keys_dir": str(self.keys_dir),
            "root_key_id": self.root_key_id,
            "index_key_id": self.index_key_id,
            "files": list(self.files),
            "git_initialised": self.git_initialised,
            "base_url": self.base_url,
            "base_url_placeholder": self.base_url_placeholder,
            "secret_name": SECRET_NAME,
        }


@dataclass(frozen=True)
class ToolPin:
    """Where the generated workflows get the checker: a GitHub repository at one full commit id.

    Never a package name: ``registry-tool`` is not a name this project controls on the package
    index, and whoever registers it would run code in every registry's CI, publish job included.
    """

    repo: str
    commit: str

    def __post_init__(self) -> None:
        """Refuse a repository that is not OWNER/NAME or a commit that is not a full hex id."""
        if not _REPO_SLUG.fullmatch(self.repo):
            raise ScaffoldError(f"--action-repo {self.repo!r} is not OWNER/NAME", fix="e.g. " + ACTION_REPO)
        if not _COMMIT.fullmatch(self.commit):
            raise ScaffoldError(
                f"--tool-ref {self.commit!r} is not a full commit id",
                fix="pass the 40 lower-case hex digits of a registry-tool commit (tags and branches move)",
            )

    @property
    def uses(self) -> str:
        """``OWNER/NAME@COMMIT``: a `uses:` reference, and the tail of a pip VCS URL."""
        return f"{self.repo}@{self.commit}"


def detect_tool_pin(repo: str | None = None) -> ToolPin | None:
    """The commit this registry-tool was installed from, if it can tell.

    pip's record of a ``git+https://github.com/OWNER/NAME@COMMIT`` install (PEP 610
    direct_url.json), else the git checkout the package runs from (a development install).
    """
    import json
    from importlib import metadata

    try:
        direct = json.loads(metadata.distribution("registry-tool").read_text("direct_url.json") or "{}")
    except (metadata.PackageNotFoundError, ValueError):
        direct = {}
    commit = direct.get("vcs_info", {}).get("commit_id") if isinstance(direct, dict) else None
    if isinstance(commit, str) and _COMMIT.fullmatch(commit):
        url = str(direct.get("url", ""))
        found = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)(?:\.git)?/?", url)
        return ToolPin(repo or (found.group(1) if found else ACTION_REPO), commit)
    package = Path(__file__).resolve().parents[1]

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(package), *args], capture_output=True, text=True, check=False)

    try:
        # Only a checkout that tracks this very package (not some repository it happens to sit in).
        if git("ls-files", "--error-unmatch", "__init__.py").returncode != 0:
            return None
        commit = git("rev-parse", "HEAD").stdout.strip()
    except OSError:
        return None
    return ToolPin(repo or ACTION_REPO, commit) if _COMMIT.fullmatch(commit) else None


def render_template(name: str, values: dict[str, str]) -> str:
    """A template with its ``@@KEY@@`` placeholders filled (``${{ }}`` in workflows stays as is)."""
    text = (TEMPLATE_DIR / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    if "@@" in text:
        raise AssertionError(f"unfilled placeholder in template {name}")
    return text


def init_index(
    directory: Path,
    *,
    name: str | None = None,
    host: str = "host",
    base_url: str | None = None,
    keys_dir: Path | None = None,
    now: datetime | None = None,
    tool: ToolPin | None = None,
) -> InitResult:
    """Create the index repository in ``directory`` (which must be missing or empty).

    ``tool`` pins the checker the workflows run (default: the commit this registry-tool was
    installed from).
    """
    from registry_tool import __version__
    from registry_tool.manifest import load_registry_config
    from registry_tool.trust.editing import DEFAULT_ROOT_VALIDITY, init_root_dir, new_root, sign_root_dir

    directory = directory.resolve()
    name = name or directory.name.lower()
    _check_target(directory, name, host)
    if base_url is not None and not re.fullmatch(r"https?://[^\s\"'<>\\]+/", base_url, re.ASCII):
        # Checked before anything is written: registry.toml's schema would refuse it after the
        # scaffold was half written, and a second `init` refused the folder as not empty.
        raise ScaffoldError(
            f"--base-url {base_url!r} is not an http(s) URL ending in '/'",
            fix="give the URL the site will be served from, e.g. https://owner.github.io/name/",
        )
    keys_dir = (keys_dir or directory.with_name(directory.name + ".keys")).resolve()
    if keys_dir.is_relative_to(directory):
        raise ScaffoldError(
            f"--keys-dir {keys_dir} is inside the new repository",
            fix="keep secret keys outside the repository, e.g. the default DIR.keys",
        )
    for existing in ("root.key", "index.key"):
        if (keys_dir / existing).exists():
            raise ScaffoldError(
                f"{keys_dir / existing} already exists",
                fix="choose another --keys-dir; keys are never overwritten",
            )
    tool = tool or detect_tool_pin()
    if tool is None:
        raise ScaffoldError(
            "cannot tell which registry-tool commit is running, and the workflows must pin one",
            fix=f"pass --tool-ref with the full commit id of github.com/{ACTION_REPO} to run in CI "
            "(install with `pip install git+https://github.com/...@COMMIT` to have it detected)",
        )
    existed, keys_existed = directory.exists(), keys_dir.exists()

    def write() -> InitResult:
        values = {
            "TOOL_PIN": tool.uses,
            "NAME": name,
            "HOST": host,
            "BASE_URL": base_url or f"https://OWNER.github.io/{name}/",
            "REGISTRY_TOOL_VERSION": __version__,
        }
        written: list[str] = []
        for template, target in _FILES.items():
            path = directory / target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render_template(template, values), encoding="utf-8")
            written.append(target)
        (directory / "index" / "plugins").mkdir(parents=True, exist_ok=True)
        (directory / "index" / "plugins" / ".gitkeep").write_bytes(b"")
        load_registry_config(directory / "index" / "registry.toml")  # the template must stay valid

        root_key, index_key = SecretKey.generate(), SecretKey.generate()
        _write_secret(keys_dir, "root.key", root_key.dump(None, comment=f"{name} root key"))
        _write_secret(keys_dir, "index.key", index_key.dump(None, comment=f"{name} index key"))
        (keys_dir / "root.pub").write_text(root_key.public_key.to_text(), encoding="utf-8")
        (keys_dir / "index.pub").write_text(index_key.public_key.to_text(), encoding="utf-8")

        expires = (now or datetime.now(UTC)) + DEFAULT_ROOT_VALIDITY
        root_dir = directory / "index" / "root"
        init_root_dir(
            root_dir, new_root(name, [root_key.public_key], [index_key.public_key], expires=expires)
        )
        sig = sign_root_dir(root_dir, root_key)
        written += ["index/root/1.root.json", f"index/root/{sig.name}"]
        return InitResult(
            directory=directory,
            keys_dir=keys_dir,
            root_key_id=root_key.key_id,
            index_key_id=index_key.key_id,
            files=tuple(written),
            git_initialised=_git_init(directory),
            base_url=values["BASE_URL"],
            base_url_placeholder=base_url is None,
        )

    try:
        return write()
    except BaseException:
        # Nothing half-written stays behind: a second `init` would refuse the folder as not empty.
        if existed:
            for child in directory.iterdir():
                if child.name == ".git":
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        else:
            shutil.rmtree(directory, ignore_errors=True)
        if not keys_existed:
            shutil.rmtree(keys_dir, ignore_errors=True)
        else:  # only the files init creates (it refused to start when a key was there)
            for key_file in ("root.key", "index.key", "root.pub", "index.pub"):
                with contextlib.suppress(OSError):
                    (keys_dir / key_file).unlink()
        raise


def _check_target(directory: Path, name: str, host: str) -> None:
    if directory.exists() and not directory.is_dir():
        raise ScaffoldError(f"{directory} is a file", where=str(directory), fix="pass a new directory")
    if directory.is_dir() and any(p.name != ".git" for p in directory.iterdir()):
        raise ScaffoldError(
            f"{directory} is not empty", where=str(directory), fix="run init on a new or empty directory"
        )
    for label, value in (("--name", name), ("--host", host)):
        if not is_plugin_name(value):
            raise ScaffoldError(
                f"{label} {value!r} is not a valid name",
                fix="use 2-64 characters: lower-case letters, digits, '-' and '_', starting with a letter",
            )


def _write_secret(keys_dir: Path, name: str, data: bytes) -> None:
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # O_EXCL: never overwrite a key; 0600 from creation, not chmod'ed after the bytes are written.
    fd = os.open(keys_dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _git_init(directory: Path) -> bool:
    try:
        inside = subprocess.run(
            ["git", "rev-parse", "--is-inside-work-tree"], cwd=directory, capture_output=True, check=False
        )
        if inside.returncode == 0:
            return False
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=directory, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return False  # git missing or failing: the files are there, the user can `git init` themselves
    return True
