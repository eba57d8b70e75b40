"""The command line: a thin typer layer over the library.

Each area has its own module with a ``register(app)`` function; commands there parse
options, call one library function, and hand the result to ``emit``.  Errors from the
library are ``RegistryToolError`` and end as one paragraph on stderr with the
documented exit code (``--debug`` shows the traceback instead).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from functools import wraps
from typing import Annotated, NoReturn, ParamSpec, TypeVar

import typer
from typer.exceptions import TyperException

from registry_tool import __version__
from registry_tool.errors import EXIT_INTERNAL, EXIT_USAGE, INTERNAL_ERROR_RULE, RegistryToolError
from registry_tool.report import CheckResult, Finding, OutputFormat, Report, render

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="registry-tool",
    help="Static plugin registry and signing toolkit for WebAssembly plugins.\n\n"
    "Exit codes: 0 ok, 1 the checked thing is bad, 2 usage or environment error, 3 internal error.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain click help and errors: rich help rendering alone costs ~0.3 s of start-up.
    rich_markup_mode=None,
    add_completion=False,
)

_state = {"debug": False}

FormatOption = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", help="Output format: text, json, github (annotations), sarif."),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"registry-tool {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    _state["debug"] = debug


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn library errors into one paragraph on stderr and the documented exit code."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except RegistryToolError as err:
            if _state["debug"]:
                traceback.print_exc()
            typer.echo(f"error: {err.diagnostics()}", err=True)
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except OSError as err:
            # Environment problems (permissions, disk full, ...) are exit 2, not a traceback.
            if _state["debug"]:
                traceback.print_exc()
            where = f"{err.filename}: " if getattr(err, "filename", None) else ""
            typer.echo(f"error: {where}{err.strerror or err}.", err=True)
            raise typer.Exit(EXIT_USAGE) from None
        except (typer.Exit, typer.Abort, TyperException):
            raise  # typer's own control flow (typer.Exit is a RuntimeError)
        except Exception as err:
            internal_error(err, kwargs.get("fmt"), command=_command_name(fn))

    return wrapper


def _command_name(fn: Callable[..., object]) -> str:
    return fn.__name__.removesuffix("_command").removesuffix("_cmd").replace("_", " ")


def internal_error(err: BaseException, fmt: object = None, *, command: str = "registry-tool") -> NoReturn:
    """An unexpected exception: a bug, never a verdict.  One paragraph on stderr, the report in
    the requested format on stdout (so JSON/SARIF readers still get a document), exit 3."""
    if _state["debug"]:
        traceback.print_exception(err)
    what = f"{type(err).__name__}: {_short(err)}"
    typer.echo(
        f"internal error: {what}. Fix: report this to the registry-tool maintainers "
        "(run again with --debug for the traceback).",
        err=True,
    )
    if isinstance(fmt, OutputFormat):
        result = CheckResult(subject=command)
        result.findings.append(
            Finding(
                rule=INTERNAL_ERROR_RULE,
                message=f"the command crashed: {what}",
                fix="report this to the registry-tool maintainers; nothing was checked",
            )
        )
        try:
            render(Report(command=command, results=[result]), fmt, sys.stdout)
            sys.stdout.flush()
        except Exception:  # noqa: S110 (the exit code below still says what happened)
            pass
    raise typer.Exit(EXIT_INTERNAL) from None


def _short(err: BaseException) -> str:
    """The exception's message on one line, cut short (a RecursionError's can be huge)."""
    text = " ".join(str(err).split())
    return text[:300] + ("…" if len(text) > 300 else "")


def emit(report: Report, fmt: OutputFormat) -> None:
    """Print a report in the chosen format and exit with its code."""
    render(report, fmt, sys.stdout)
    sys.stdout.flush()
    raise typer.Exit(report.exit_code)


AREAS = ("validate", "smoke", "keys", "build", "client", "ci")


def _register_areas(only: str | None = None) -> None:
    """Register every area's commands, or only the area ``only`` (what one command needs to run)."""
    import importlib

    for name in AREAS if only is None else (only,):
        importlib.import_module(f"registry_tool._cli.{name}").register(app)


def main(area: str | None = None) -> None:
    _register_areas(area)
    app()
