"""The command line: a thin typer layer over the library.

Each area has its own module with a ``register(app)`` function; commands there parse
options, call one library function, and hand the resulting ``Report`` to ``emit``, which
renders it in the ``--format`` asked for.  Errors from the library are ``RegistryToolError``
and end as one paragraph on stderr, the report (with the error's finding) on stdout and the
documented exit code; any other exception is an internal error, exit 3 (``--debug`` or
``REGISTRY_TOOL_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from typer.exceptions import TyperException

from registry_tool import __version__
from registry_tool.errors import EXIT_INTERNAL, INTERNAL_ERROR_RULE, RegistryToolError, UsageError, printable
from registry_tool.report import CheckResult, Finding, OutputFormat, Report, inert_log_text, render

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

DEBUG_ENV = "REGISTRY_TOOL_DEBUG"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"registry-tool {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            show_default=False,
            help="Log what the tool does to stderr (-v info, -vv debug); or set REGISTRY_TOOL_LOG.",
        ),
    ] = 0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    from registry_tool._logging import ENV_LEVEL, configure, level_for

    _state["debug"] = debug
    try:
        level = level_for(verbose)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint=ENV_LEVEL) from None
    configure(level)


def command_name() -> str:
    """The running command as typed after the program name (``root add-maintainer``)."""
    # typer.Context derives from click's Context or (newer typer) from typer's vendored copy of
    # click: the current-context stack lives in the ``globals`` module beside that class.
    core = next(c.__module__ for c in typer.Context.__mro__ if c.__module__.endswith(".core"))
    globals_ = importlib.import_module(core.removesuffix(".core") + ".globals")
    ctx = globals_.get_current_context(silent=True)
    if ctx is None:
        return "registry-tool"
    path = str(ctx.command_path).split(" ", 1)
    return path[1] if len(path) > 1 else path[0]


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn errors into one paragraph on stderr, the command's report and the documented exit code.

    A ``RegistryToolError`` exits with its own code (1 the checked thing is bad, 2 usage or
    environment), an ``OSError`` with 2, anything else is an internal error (3).  With
    ``--format json|github|sarif`` the report is still written to stdout, holding the error's
    finding, so a script or code scanning always gets a document.
    """

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        fmt = kwargs.get("fmt")
        try:
            return fn(*args, **kwargs)
        except RegistryToolError as err:
            stopped(err, fmt)
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # The reader left (`| head`): nothing to tell it.  The rest of the output goes nowhere,
            # so the interpreter's last flush cannot fail again; exit 2 (the environment) silently.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(2) from None
        except OSError as err:
            # Environment problems (permissions, disk full, ...) are exit 2, not a traceback.
            stopped(_environment_error(err), fmt, cause=err)
        except (typer.Exit, typer.Abort, TyperException):
            raise  # typer's own control flow (typer.Exit is a RuntimeError)
        except RuntimeError as err:
            if not str(err).startswith("Symlink loop from "):
                internal_error(err, fmt, command=command_name())
            # Python 3.11's Path.resolve() raises this, not an OSError, on a link loop.
            where = str(err)[len("Symlink loop from ") :]
            loop = OSError(errno.ELOOP, "Too many levels of symbolic links", where)
            stopped(_environment_error(loop), fmt, cause=err)
        except UnicodeEncodeError as err:
            if "surrogate" not in str(err.reason):
                internal_error(err, fmt, command=command_name())
            # Bytes that are not UTF-8 in an argument, a file name or an environment value reach
            # Python as lone surrogates; written where text must be UTF-8 (a trusted comment, a
            # document, a URL) they raise here: the input's fault, not the tool's.
            shown = err.object[max(0, err.start - 20) : err.end + 20]
            stopped(
                UsageError(
                    f"a name or value is not UTF-8 text (near {printable(shown)!r}): it cannot be "
                    "written where registry-tool writes UTF-8",
                    fix="rename the file, or give the argument or environment value in UTF-8",
                ),
                fmt,
                cause=err,
            )
        except ModuleNotFoundError as err:
            from registry_tool._console import CLI_MODULES

            missing = (err.name or "").partition(".")[0]
            if missing not in CLI_MODULES:
                internal_error(err, fmt, command=command_name())
            # A command imports what only it needs when it runs (start-up stays fast): an install
            # without the [cli] extra gets here, not to the console script's own check.
            stopped(
                UsageError(
                    f"this command needs {missing}, which the [cli] extra installs (it is not installed)",
                    fix="pip install 'registry-tool[cli]'",
                ),
                fmt,
                cause=err,
            )
        except Exception as err:
            internal_error(err, fmt, command=command_name())

    return wrapper


def _environment_error(err: OSError) -> UsageError:
    """An ``OSError`` no command turned into its own error: what failed, on which path, and a fix."""
    path = err.filename if isinstance(err.filename, str | bytes) else None
    shown = printable(os.fsdecode(path))[:300] if path is not None else None
    reason = err.strerror or str(err)
    fixes = {
        errno.ENOENT: "check the path: a folder on the way to it is missing",
        errno.ENOTDIR: "check the path: a part of it that should be a folder is a file",
        errno.EISDIR: "give a file, not a folder",
        errno.EEXIST: "something is already there (a file where a folder is needed?): choose another path",
        errno.EACCES: "give a path you may read and write, or change its permissions",
        errno.EPERM: "give a path you may read and write, or change its permissions",
        errno.ENOSPC: "free some disk space and run the command again",
        errno.EROFS: "give a path on a writable file system",
        errno.ENAMETOOLONG: "give a shorter path",
        errno.ELOOP: "the path goes through a symbolic link loop: fix or remove the link",
    }
    fix = fixes.get(err.errno or 0, "check the path and the machine's state, then run the command again")
    return UsageError(reason, where=shown, fix=fix)


def stopped(err: RegistryToolError, fmt: object, *, cause: BaseException | None = None) -> NoReturn:
    """A command stopped by ``err``: the paragraph on stderr, the report on stdout, its exit code."""
    if _debugging():
        traceback.print_exception(cause or err)
    typer.echo(inert_log_text(f"error: {err.diagnostics()}"), err=True)  # a CI log shows it
    if isinstance(fmt, OutputFormat) and fmt is not OutputFormat.text:
        _write(Report.from_error(command_name(), err), fmt)
    raise typer.Exit(err.exit_code)


def _debugging() -> bool:
    return _state["debug"] or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def internal_error(err: BaseException, fmt: object = None, *, command: str = "registry-tool") -> NoReturn:
    """An unexpected exception: a bug, never a verdict.

    One paragraph on stderr, the report in the requested format on stdout (so JSON/SARIF readers
    still get a document), exit 3.
    """
    if _debugging():
        traceback.print_exception(err)
    what = f"{type(err).__name__}: {_short(err)}"
    typer.echo(inert_log_text(internal_message(command, err)), err=True)
    if isinstance(fmt, OutputFormat):
        result = CheckResult(subject=command)
        result.findings.append(
            Finding(
                rule=INTERNAL_ERROR_RULE,
                message=f"the command crashed: {what}",
                fix="report this to the registry-tool maintainers; nothing was checked",
            )
        )
        with contextlib.suppress(Exception):  # the exit code below still says what happened
            _write(Report(command=command, results=[result]), fmt)
    raise typer.Exit(EXIT_INTERNAL) from None


def internal_message(command: str, err: BaseException) -> str:
    """The one paragraph an internal error prints: what crashed, that it is a bug, how to report it."""
    return (
        f"internal error: {type(err).__name__}: {_short(err)} (in `registry-tool {command}`); nothing "
        "was concluded about the input. This is a bug in registry-tool: please report it to the "
        "registry-tool maintainers with the command line and the traceback that --debug (or "
        f"{DEBUG_ENV}=1) prints."
    )


def _short(err: BaseException) -> str:
    """The exception's message on one line, cut short (a RecursionError's can be huge)."""
    text = " ".join(printable(str(err)).split())
    return text[:300] + ("…" if len(text) > 300 else "")


def _write(report: Report, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.text:
        for notice in report.notices:
            # Notices quote yank reasons and server text.
            typer.echo(inert_log_text(f"note: {printable(notice)}"), err=True)
    render(report, fmt, sys.stdout)
    sys.stdout.flush()


def emit(report: Report, fmt: OutputFormat) -> NoReturn:
    """Print a report in the chosen format and exit with its code (notices go to stderr in text)."""
    _write(report, fmt)
    raise typer.Exit(report.exit_code)


AREAS = ("validate", "smoke", "keys", "build", "client", "ci")


def _register_areas(only: str | None = None) -> None:
    """Register every area's commands, or only the area ``only`` (what one command needs to run)."""
    for name in AREAS if only is None else (only,):
        importlib.import_module(f"registry_tool._cli.{name}").register(app)


def main(area: str | None = None) -> None:
    """Run the typer app with ``area``'s commands (all when None).

    A command line click refuses (a missing argument, an unknown option, a bad value) never reaches
    a command: click prints its usage error and exits 2.  With ``--format json|github|sarif`` the
    report is then written too, so a script reading stdout always gets a document.
    """
    _register_areas(area)
    core = next(c.__module__ for c in typer.Context.__mro__ if c.__module__.endswith(".core"))
    usage_error = importlib.import_module(core.removesuffix(".core") + ".exceptions").UsageError
    refused: list[str] = []
    show = usage_error.show

    def show_and_keep(self: Any, file: Any = None) -> None:
        refused.append(self.format_message())
        show(self, file)

    usage_error.show = show_and_keep
    try:
        app(prog_name="registry-tool")  # also under `python -m registry_tool` (click would say "-m ...")
    except SystemExit as done:
        fmt = _format_asked(sys.argv[1:])
        if refused and done.code == 2 and fmt is not None and fmt is not OutputFormat.text:
            err = UsageError(
                f"the command line is not valid: {refused[-1]}", fix="see `registry-tool COMMAND --help`"
            )
            with contextlib.suppress(Exception):
                _write(Report.from_error(_command_in(sys.argv[1:]), err), fmt)
        raise
    finally:
        usage_error.show = show


def _format_asked(argv: list[str]) -> OutputFormat | None:
    """The ``-f/--format`` value of a command line click refused, when it is a known one."""
    for i, arg in enumerate(argv):
        value = None
        if arg in ("-f", "--format") and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--format="):
            value = arg.split("=", 1)[1]
        elif arg.startswith("-f") and len(arg) > 2 and not arg.startswith("--"):
            value = arg[2:]
        if value is not None:
            with contextlib.suppress(ValueError):
                return OutputFormat(value)
    return None


def _command_in(argv: list[str]) -> str:
    """The command words of a command line (``client install``), for a report's ``command``."""
    groups = {group.name for group in app.registered_groups}  # key, root, client, ci
    words: list[str] = []
    for arg in argv:
        if arg.startswith("-") or len(words) == (2 if words and words[0] in groups else 1):
            break
        words.append(arg)
    return " ".join(words) or "registry-tool"
