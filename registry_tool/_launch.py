"""The ``registry-tool`` process entry: start-up cost is paid only for the command that runs.

Importing typer and every command area costs several times Python's own start-up, so this
module (which imports nothing but the standard library's ``sys``) answers ``--help`` and
``--version`` from the text below, and for a command registers only the area that defines it
before handing the whole command line to the typer app.  Anything it does not recognise
(unknown commands, global options in other spellings) goes to the full app, so typer stays the
only parser and the only source of error messages.

``HELP`` and ``COMMAND_AREAS`` are checked against the full typer app by
``tests/core/test_startup.py``: adding a command without updating them fails that test.
"""

from __future__ import annotations

import sys

# Top-level command -> the registry_tool._cli module whose register() adds it.
COMMAND_AREAS = {
    "validate": "validate",
    "smoke": "smoke",
    "sign": "keys",
    "verify": "keys",
    "key": "keys",
    "root": "keys",
    "build": "build",
    "resign": "build",
    "init": "ci",
    "ci": "ci",
    "client": "client",
}

# Exactly what the full typer app prints for `registry-tool --help` (plain click formatting).
HELP = """\
Usage: registry-tool [OPTIONS] COMMAND [ARGS]...

  Static plugin registry and signing toolkit for WebAssembly plugins.

  Exit codes: 0 ok, 1 the checked thing is bad, 2 usage or environment error,
  3 internal error.

Options:
  --debug    Show tracebacks for errors.
  --version  Show version.
  --help     Show this message and exit.

Commands:
  validate  Validate plugin manifests, their wasm modules and the...
  smoke     Run every plugin's [[tests]] in the sandbox (fuel, memory,...
  sign      Sign a file (writes FILE.minisig) or a plugin release (pins...
  verify    Verify a signature with one public key, or a plugin release...
  build     Build the static signed registry SITE from INDEX (honours...
  resign    Re-sign SITE's registry.json with a new version and a fresh...
  init      Scaffold an index repository: registry.toml, a fresh signed...
  key       Generate and inspect minisign-compatible keys.
  root      Edit, sign and verify the registry's root metadata.
  client    Install plugins from a registry, verifying every signature...
  ci        Checks for index repositories in CI.
"""

# Root options that take no value and may precede the command (see registry_tool._cli._root).
_ROOT_FLAGS = frozenset({"--debug"})


def area_for(argv: list[str]) -> str | None:
    """The one area the command line needs, or None when the full app must parse it."""
    for arg in argv:
        if arg in _ROOT_FLAGS:
            continue
        return COMMAND_AREAS.get(arg)
    return None


def main() -> None:
    argv = sys.argv[1:]
    if argv == ["--help"]:
        sys.stdout.write(HELP)
        sys.stdout.flush()
        raise SystemExit(0)
    if argv == ["--version"]:
        from registry_tool import __version__

        sys.stdout.write(f"registry-tool {__version__}\n")
        sys.stdout.flush()
        raise SystemExit(0)
    # typer 0.29 coerces every parameter through pydantic; pydantic then scans every installed
    # distribution's entry points for plugins (~0.1 s). The CLI uses no pydantic plugin.
    import os

    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "1")
    from registry_tool._cli import main as typer_main

    typer_main(area_for(argv))
