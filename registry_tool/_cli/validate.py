"""`registry-tool validate`: check plugin releases and registry.toml before a PR (thin wrapper).

Its plain command lines are run by ``registry_tool._launch`` without typer (start-up time); the
options are declared once, in ``_launch``, and used here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from registry_tool._cli import FormatOption, emit, handle_errors
from registry_tool._launch import VALIDATE_CONFIG, VALIDATE_PATHS_HELP
from registry_tool.report import OutputFormat


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.command("validate")(validate)


@handle_errors
def validate(
    paths: Annotated[list[Path], typer.Argument(help=VALIDATE_PATHS_HELP)],
    config: Annotated[Path | None, typer.Option(*VALIDATE_CONFIG.flags, help=VALIDATE_CONFIG.help)] = None,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Validate plugin manifests, their wasm modules and the registry configuration."""
    from registry_tool.manifest import validate_paths

    emit(validate_paths(paths, config_path=config), fmt)
