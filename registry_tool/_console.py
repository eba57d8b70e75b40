"""The ``registry-tool`` console script: the launcher, or how to install the command line.

The base install is the verifying client for hosts; the command line needs the ``[cli]`` extra.
Without it, ``registry-tool`` says so and exits 2 (an environment error) instead of a traceback.
"""

from __future__ import annotations

import sys

from registry_tool._launch import main as _launch

# Top-level modules the command line imports that only the [cli] extra installs (click: typer's).
CLI_MODULES = frozenset(
    {"typer", "click", "rich", "rapidfuzz", "confusable_homoglyphs", "license_expression", "wasmtime"}
)


def main() -> None:
    """Run the command line; exit 2 with the install command when the ``[cli]`` extra is missing."""
    try:
        _launch()
    except ModuleNotFoundError as err:
        missing = (err.name or "").partition(".")[0]
        if missing not in CLI_MODULES:
            raise
        sys.stderr.write(
            f"registry-tool: the command line needs the [cli] extra ({missing} is not installed)\n"
            "  fix: pip install 'registry-tool[cli]'\n"
        )
        raise SystemExit(2) from None
