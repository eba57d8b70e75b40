"""The ``registry-tool`` process entry: start-up cost is paid only for the command that runs.

Importing typer (and through it pydantic, which typer uses to coerce every parameter) costs
several times Python's own start-up, so this module (which imports only the standard library)
answers ``--help`` and ``--version`` from the text below, runs the plain form of ``validate``
itself (see ``FAST_COMMANDS``), and for anything else registers only the area that defines the
command before handing the whole command line to the typer app.  Anything it does not recognise
(unknown commands, global options, unusual spellings, ``--help`` of a command) goes to typer,
so typer stays the only source of usage errors and help.

``HELP``, ``COMMAND_AREAS`` and the options in ``FAST_COMMANDS`` are checked against the typer
app by ``tests/core/test_startup.py``: adding a command or renaming an option without updating
them fails that test.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

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
  --debug        Show tracebacks for errors.
  -v, --verbose  Log what the tool does to stderr (-v info, -vv debug); or set
                 REGISTRY_TOOL_LOG.
  --version      Show version.
  --help         Show this message and exit.

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

# Root options that take no value and may precede the command (see registry_tool._cli._root;
# --verbose counts: -v, -vv).
_ROOT_FLAGS = frozenset({"--debug", "-v", "-vv", "-vvv", "--verbose"})

#: Set, it asks for logging, which the typer layer configures: such runs never take the fast path.
LOG_ENV = "REGISTRY_TOOL_LOG"


class Option(NamedTuple):
    """One option taking a value: its spellings and help, declared once.

    The typer command declares its option with ``typer.Option(*option.flags, help=option.help)``
    and the launcher's fast path reads the same spellings.
    """

    dest: str
    flags: tuple[str, ...]
    help: str


class FastCommand(NamedTuple):
    """A command the launcher runs without typer when its command line is plain.

    Plain means: the command name first (no global options), then positional arguments and the
    options below as ``--name VALUE``, ``-n VALUE`` or ``--name=VALUE``; anything else (``--``,
    ``--help``, an unknown or repeated-looking spelling, a value starting with ``-``, no
    positional argument) is left to typer.
    """

    options: tuple[Option, ...]
    run: Callable[[list[str], dict[str, str]], None]  # ends the process, or returns: typer runs it


#: ``--format``: shared by every checking command (``registry_tool._cli.FormatOption``).
FORMAT = Option("format", ("--format", "-f"), "Output format: text, json, github (annotations), sarif.")
VALIDATE_PATHS_HELP = "Index directory, plugins/ directory, release directories or plugin.toml files."
VALIDATE_CONFIG = Option(
    "config",
    ("--config", "-c"),
    "registry.toml to use (default: found by walking up from each path).",
)


def parse_plain(args: Sequence[str], options: Sequence[Option]) -> tuple[list[str], dict[str, str]] | None:
    """Positional arguments and ``{dest: value}`` of a plain command line, or None if it is not plain."""
    by_flag = {flag: option.dest for option in options for flag in option.flags}
    positional: list[str] = []
    values: dict[str, str] = {}
    rest = iter(args)
    for arg in rest:
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        flag, eq, value = arg.partition("=")
        dest = by_flag.get(flag)
        if dest is None or (eq and not flag.startswith("--")):
            return None  # --help, --, an unknown option, -c=VALUE (click reads "=VALUE"): typer decides
        if not eq:
            value = next(rest, "")
        if not value or value.startswith("-"):
            return None
        values[dest] = value
    return (positional, values) if positional else None


def _run_validate(paths: list[str], values: dict[str, str]) -> None:
    """``registry-tool validate`` without typer: the library call and the report, nothing else.

    Any exception (a usage error, an unreadable path, a bug) leaves the command to the typer
    layer, which runs it again and reports it under the CLI's error contract; only a report
    is written from here (a renderer that fails half-way is a bug either way: the report may
    then be printed twice).
    """
    from pathlib import Path

    from registry_tool.report import OutputFormat, render

    try:
        fmt = OutputFormat(values.get(FORMAT.dest, OutputFormat.text.value))
    except ValueError:
        return None  # typer names the valid choices
    from registry_tool.manifest.cache import use_verdicts
    from registry_tool.manifest.validate import validate_paths

    use_verdicts()  # a short-lived process: remembered verdicts spare it importing the provers
    config = values.get(VALIDATE_CONFIG.dest)
    try:
        report = validate_paths([Path(p) for p in paths], config_path=Path(config) if config else None)
        render(report, fmt, sys.stdout)
        sys.stdout.flush()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    except Exception:
        return None
    raise SystemExit(report.exit_code)


FAST_COMMANDS: Mapping[str, FastCommand] = {
    "validate": FastCommand((VALIDATE_CONFIG, FORMAT), _run_validate),
}


def area_for(argv: list[str]) -> str | None:
    """The one area the command line needs, or None when the full app must parse it."""
    for arg in argv:
        if arg in _ROOT_FLAGS:
            continue
        return COMMAND_AREAS.get(arg)
    return None


def run_fast(argv: list[str]) -> None:
    """Run a plain ``FAST_COMMANDS`` command line to its end (SystemExit); return if it is not one."""
    command = FAST_COMMANDS.get(argv[0]) if argv else None
    if command is None or os.environ.get(LOG_ENV):
        return
    parsed = parse_plain(argv[1:], command.options)
    if parsed is not None:
        command.run(*parsed)


def main() -> None:
    """The ``registry-tool`` console script."""
    argv = sys.argv[1:]
    if sys.stdout is None:  # started with standard output closed (`>&-`): reports have nowhere to go
        if sys.stderr is not None:
            sys.stderr.write(
                "error: standard output is closed, so the report cannot be written. "
                "Fix: run registry-tool with standard output open (redirect it to a file or /dev/null).\n"
            )
        raise SystemExit(2)
    if argv == ["--help"]:
        sys.stdout.write(HELP)
        sys.stdout.flush()
        raise SystemExit(0)
    if argv == ["--version"]:
        from registry_tool import __version__

        sys.stdout.write(f"registry-tool {__version__}\n")
        sys.stdout.flush()
        raise SystemExit(0)
    run_fast(argv)
    # typer 0.29 coerces every parameter through pydantic; pydantic then scans every installed
    # distribution's entry points for plugins (~0.1 s). The CLI uses no pydantic plugin.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "1")
    from registry_tool._cli import main as typer_main

    typer_main(area_for(argv))
