"""CLI commands for the smoke area (thin wrappers over the library)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
