"""Start-up cost is paid only for the command that runs (behavioural checks, never timings).

`registry-tool --help` must not import typer, rich, the verifiers' heavy dependencies or any
command area; a command imports only the area that defines it.  The launcher's static help and
command table must agree with the full typer app.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from registry_tool import _cli, _launch

REPO = Path(__file__).resolve().parents[2]

# Not needed to print the help: each costs from 10 ms to several hundred at import.
HEAVY = (
    "typer",
    "click",
    "rich",
    "pydantic",
    "markdown_it",
    "pygments",
    "wasmtime",
    "jsonschema",
    "fastjsonschema",
    "cryptography",
    "requests",
    "tomlkit",
    "semantic_version",
    "registry_tool._cli",
    "registry_tool.registry",
    "registry_tool.sandbox",
    "registry_tool.client",
    "registry_tool.manifest",
)


def _modules_after(*argv: str) -> tuple[int, str, set[str]]:
    """Run the real entry point in a fresh interpreter; return its exit code, stdout and sys.modules."""
    probe = (
        "import json, sys, io, contextlib\n"
        "from registry_tool._launch import main\n"
        f"sys.argv = ['registry-tool', *{list(argv)!r}]\n"
        "out = io.StringIO()\n"
        "code = 0\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as exc:\n"
        "        code = exc.code if isinstance(exc.code, int) else 1\n"
        "print(json.dumps([code, out.getvalue(), sorted(sys.modules)]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    code, out, modules = json.loads(proc.stdout.splitlines()[-1])
    return code, out, set(modules)


def _loaded(modules: set[str], package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in modules)


def test_help_imports_no_heavy_module() -> None:
    code, out, modules = _modules_after("--help")
    assert code == 0
    assert out == _launch.HELP
    assert [p for p in HEAVY if _loaded(modules, p)] == []


def test_version_imports_no_heavy_module() -> None:
    code, out, modules = _modules_after("--version")
    assert (code, out) == (0, "registry-tool 0.1.0\n")
    assert [p for p in HEAVY if _loaded(modules, p)] == []


def test_a_command_imports_only_its_area() -> None:
    code, out, modules = _modules_after("validate", "index/plugins/adler32/1.0.0", "--format", "json")
    assert code == 0, out
    assert json.loads(out)["ok"] is True
    others = [f"registry_tool._cli.{a}" for a in _cli.AREAS if a != "validate"]
    assert [m for m in others if m in modules] == []
    # What validate does not need: the builder, the client, the network, rich and the sandbox runner.
    for package in ("registry_tool.registry", "registry_tool.client", "requests", "rich", "cryptography"):
        assert not _loaded(modules, package), package


def test_static_help_is_what_typer_prints() -> None:
    """The launcher's --help text is the full app's help on an 80-column terminal (click wraps at 78)."""
    app = _cli.app
    if not app.registered_commands:
        _cli._register_areas()
    result = CliRunner().invoke(app, ["--help"], terminal_width=78)
    assert result.exit_code == 0
    assert result.output == _launch.HELP


def test_every_command_is_registered_by_its_area() -> None:
    full = typer.main.get_group(_full_app())
    assert set(full.list_commands(None)) == set(_launch.COMMAND_AREAS)  # type: ignore[arg-type]
    for command, area in _launch.COMMAND_AREAS.items():
        one = typer.Typer()
        importlib.import_module(f"registry_tool._cli.{area}").register(one)
        one.callback()(lambda: None)
        assert command in typer.main.get_group(one).list_commands(None), command  # type: ignore[arg-type]


def test_unknown_commands_go_to_the_full_app() -> None:
    assert _launch.area_for(["nosuch"]) is None
    assert _launch.area_for(["--debug", "verify", "x"]) == "keys"
    assert _launch.area_for(["--debug"]) is None
    code, _, modules = _modules_after("nosuch")
    assert code == 2
    assert all(f"registry_tool._cli.{a}" in modules for a in _cli.AREAS)


def _full_app() -> typer.Typer:
    app = typer.Typer()
    app.callback()(lambda: None)
    for area in _cli.AREAS:
        importlib.import_module(f"registry_tool._cli.{area}").register(app)
    return app
