"""The install contract: what the base install and each extra provide, and the import layers.

- Every third-party package registry_tool imports is declared: in the base dependencies, or in
  the extra of the part that imports it (the command line and ``ci`` in ``[cli]``, the sandbox in
  ``[sandbox]``).
- ``import registry_tool.client`` works with the base dependencies alone (a host embedding the
  verifying client), and the console script then says how to install the command line.
- The import contracts in pyproject.toml (``make layers``) catch a forbidden import.
"""

from __future__ import annotations

import ast
import functools
import os
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "registry_tool"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]

# Which extras a file's imports may come from, by path prefix (first match); the rest: base only.
EXTRAS_BY_PATH = (
    ("registry_tool/_cli/", ("cli",)),
    ("registry_tool/ci/", ("cli",)),
    ("registry_tool/sandbox/", ("sandbox",)),
    ("registry_tool/registry/", ("cli", "sandbox")),
    # validate (a maintainer's command) checks SPDX expressions and modules with wasmtime; the
    # client reads a component's imports with wasmtime, and says to install [sandbox] without it.
    ("registry_tool/manifest/validate.py", ("cli", "sandbox")),
    ("registry_tool/manifest/cache.py", ("cli", "sandbox")),
    ("registry_tool/manifest/wasm.py", ("sandbox",)),
    ("registry_tool/manifest/_component_probe.py", ("sandbox",)),  # run by wasm.py for components
)
# Known exceptions, each to remove when its import goes: the text reporter needs rich (report.py
# belongs to the library; presentation through rich is the command line's).
KNOWN = {("registry_tool/report.py", "rich")}


def _names(requirements: list[str]) -> set[str]:
    out: set[str] = set()
    for text in requirements:
        req = Requirement(text)
        if canonicalize_name(req.name) == "registry-tool":
            for extra in req.extras:
                out |= _names(PROJECT["optional-dependencies"][extra])
        else:
            out.add(canonicalize_name(req.name))
    return out


def _third_party_imports(path: Path) -> set[str]:
    """Top-level modules ``path`` imports anywhere (function-local imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.partition(".")[0]
            if top not in sys.stdlib_module_names and top != "registry_tool":
                found.add(top)
    return found


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())


@functools.cache
def _distribution(module: str) -> str:
    dists = _packages_distributions().get(module)
    assert dists, f"{module} is imported by registry_tool but no installed distribution provides it"
    return canonicalize_name(dists[0])


def test_every_imported_package_is_declared_where_it_is_imported() -> None:
    base = _names(PROJECT["dependencies"])
    undeclared = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        extras = next((e for prefix, e in EXTRAS_BY_PATH if rel.startswith(prefix)), ())
        allowed = base.union(*(_names(PROJECT["optional-dependencies"][e]) for e in extras))
        for module in sorted(_third_party_imports(path)):
            if (rel, module) not in KNOWN and _distribution(module) not in allowed:
                undeclared.append(f"{rel} imports {module} ({_distribution(module)})")
    assert not undeclared, "declare in pyproject.toml (base or the right extra):\n" + "\n".join(undeclared)


def test_the_cli_and_sandbox_are_extras_and_all_holds_them() -> None:
    extras = PROJECT["optional-dependencies"]
    base = _names(PROJECT["dependencies"])
    assert {"typer", "rich"} <= _names(extras["cli"])
    assert not {"typer", "rich", "click"} & base
    assert "wasmtime" in _names(extras["sandbox"])
    # validate, ci check and build check every module with wasmtime: the command line needs it.
    assert {"wasmtime", "license-expression"} <= _names(extras["cli"])
    assert _names(extras["all"]) == _names(extras["cli"]) | _names(extras["sandbox"])
    assert PROJECT["scripts"]["registry-tool"] == "registry_tool._console:main"


def _closure(names: set[str]) -> set[str]:
    """The installed distributions ``names`` need, transitively (no extras)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(name) or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


@pytest.fixture(scope="module")
def base_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv holding registry_tool and exactly its base dependencies (linked, no network)."""
    root = tmp_path_factory.mktemp("base-install")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    lib = root / "lib"
    lib.mkdir()
    for name in _closure(_names(PROJECT["dependencies"])):
        dist = metadata.distribution(name)
        for file in dist.files or []:
            top = file.parts[0]
            source = Path(str(dist.locate_file(top)))
            if top != ".." and top != "__pycache__" and source.exists() and not (lib / top).exists():
                (lib / top).symlink_to(source)
    (lib / "registry_tool").symlink_to(PACKAGE)
    python = root / "venv" / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "base.pth").write_text(f"{lib}\n", encoding="utf-8")
    return python


def _run(python: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_a_host_imports_the_verifying_client_with_the_base_install_only(base_only: Path) -> None:
    code = (
        "import importlib.util, registry_tool.client, registry_tool.format, registry_tool.trust\n"
        "assert importlib.util.find_spec('typer') is None and importlib.util.find_spec('rich') is None\n"
        "print(registry_tool.client.Registry.__name__)"
    )
    done = _run(base_only, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Registry"


def test_the_console_script_without_the_cli_extra_says_how_to_install_it(base_only: Path) -> None:
    code = (
        "import sys\n"
        "sys.argv = ['registry-tool', 'validate', '.']\n"
        "from registry_tool._console import main\n"
        "main()"
    )
    done = _run(base_only, code)
    assert done.returncode == 2, done.stderr
    assert "pip install 'registry-tool[cli]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_command_missing_a_cli_module_says_how_to_install_it() -> None:
    # A command imports wasmtime when it runs: without it validate was exit 3 ("internal error:
    # ModuleNotFoundError ... report this"), from the [cli] install the README documented.
    code = (
        "import sys\n"
        "sys.modules['wasmtime'] = None\n"  # `import wasmtime` raises ModuleNotFoundError
        f"sys.argv = ['registry-tool', 'validate', {str(REPO / 'index')!r}]\n"
        "from registry_tool._console import main\n"
        "main()"
    )
    done = _run(Path(sys.executable), code)
    assert done.returncode == 2, done.stderr
    assert "needs wasmtime" in done.stderr and "pip install 'registry-tool[cli]'" in done.stderr


def test_the_console_script_reraises_a_missing_module_that_is_not_the_cli(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from registry_tool import _console

    def broken() -> None:
        raise ModuleNotFoundError("No module named 'nosuchmodule'", name="nosuchmodule")

    monkeypatch.setattr(_console, "_launch", broken)
    with pytest.raises(ModuleNotFoundError):
        _console.main()


def test_the_layer_contracts_catch_a_pure_package_importing_the_client(tmp_path: Path) -> None:
    shutil.copytree(PACKAGE, tmp_path / "registry_tool", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    lint = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    clean = subprocess.run(lint, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    with (tmp_path / "registry_tool" / "format" / "rules.py").open("a", encoding="utf-8") as f:
        f.write("\nimport registry_tool.client.api  # noqa\n")
    broken = subprocess.run(lint, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert broken.returncode == 1
    assert "registry_tool.format is not allowed to import registry_tool.client" in broken.stdout


def test_a_host_with_the_base_install_only_verifies_and_installs_a_plugin_with_its_dependency(
    base_only: Path, tmp_path: Path
) -> None:
    """The base install is enough to trust a registry and install (no wasmtime, typer, rich, SPDX)."""
    site = tmp_path / "site"
    built = subprocess.run(
        [
            *(sys.executable, "-P", "-m", "registry_tool", "build", "index", "--out", str(site)),
            *("--key", "samples/keys/index.key", "--no-smoke", "--no-cache"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    code = (
        "import importlib.util, sys\n"
        "from pathlib import Path\n"
        "from registry_tool.client import Registry, trust\n"
        f"url, state, plugins = {site.as_uri() + '/'!r}, Path({str(tmp_path / 's')!r}), "
        f"Path({str(tmp_path / 'p')!r})\n"
        f"root = Path({str(REPO / 'index/root/1.root.json')!r}).read_bytes()\n"
        "trust(url, root_bytes=root, state_dir=state)\n"
        "entry = Registry.open(url, state_dir=state).install('email_domain', plugins)\n"
        "print(entry.name, sorted(p.name for p in plugins.iterdir() if p.is_dir()))\n"
        "for absent in ('wasmtime', 'typer', 'rich', 'license_expression'):\n"
        "    assert absent not in sys.modules and importlib.util.find_spec(absent) is None, absent\n"
    )
    done = _run(base_only, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "email_domain" and "validate_email" in done.stdout
