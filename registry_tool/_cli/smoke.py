"""CLI commands for the smoke area (thin wrappers over the library)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from registry_tool._cli import FormatOption, emit, handle_errors
from registry_tool._launch import VALIDATE_CONFIG
from registry_tool.report import OutputFormat


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.command("smoke")(smoke)


@handle_errors
def smoke(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Index, plugins/<name> or plugins/<name>/<version> directories.", show_default=False
        ),
    ],
    fmt: FormatOption = OutputFormat.text,
    config: Annotated[Path | None, typer.Option(*VALIDATE_CONFIG.flags, help=VALIDATE_CONFIG.help)] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Plugins to run in parallel.")] = 1,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not read or write the compiled-module cache.")
    ] = False,
    compile_timeout: Annotated[
        float | None,
        typer.Option(
            "--compile-timeout",
            min=1,
            max=315_360_000,  # ten years, as registry.toml's durations
            help="Seconds compiling one module may take (default: registry.toml [limits.max] "
            "compile_time, else 300).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run every plugin's [[tests]] in the sandbox (fuel, memory, time and process limits)."""
    from registry_tool.sandbox import smoke_paths

    if compile_timeout is not None and compile_timeout != compile_timeout:  # NaN passes any range test
        from registry_tool.errors import UsageError

        raise UsageError("--compile-timeout nan is not a number of seconds", fix="give e.g. 300")
    report = smoke_paths(
        paths, jobs=jobs, cache=not no_cache, compile_timeout=compile_timeout, config_path=config
    )
    emit(report, fmt)
