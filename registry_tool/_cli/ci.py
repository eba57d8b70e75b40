"""CLI commands for the ci area: ``ci check`` (index pull requests) and ``init`` (scaffold an index)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from registry_tool._cli import FormatOption, emit, handle_errors
from registry_tool.errors import RegistryToolError
from registry_tool.report import CheckResult, OutputFormat, Report, inert_log_text

ci_app = typer.Typer(help="Checks for index repositories in CI.", no_args_is_help=True, rich_markup_mode=None)


@ci_app.command("check")
@handle_errors
def check_command(
    base: Annotated[
        str,
        typer.Option(
            "--base", help="Base ref or commit; the root and registry.toml are read as they are there."
        ),
    ],
    index: Annotated[
        list[Path] | None,
        typer.Argument(help="Index directories to check (default: ./index if it has registry.toml, else .)."),
    ] = None,
    fmt: FormatOption = OutputFormat.text,
    allow_escalation: Annotated[
        bool,
        typer.Option("--allow-escalation", help="New permissions/imports were approved: report, don't fail."),
    ] = False,
    allow_escalation_at: Annotated[
        str | None,
        typer.Option(
            "--allow-escalation-at",
            help="New permissions/imports were approved for this commit (32-40 hex digits): honoured only "
            "when it is HEAD.",
        ),
    ] = None,
    shard: Annotated[
        str, typer.Option("--shard", help="Check only shard i of n of the changed releases, e.g. 2/4.")
    ] = "1/1",
    sarif_file: Annotated[
        Path | None, typer.Option("--sarif-file", help="Also write SARIF 2.1.0 here (for code scanning).")
    ] = None,
    full: Annotated[
        bool, typer.Option("--all", help="Re-check every release at HEAD, not only the changed ones.")
    ] = False,
    summary_file: Annotated[
        Path | None, typer.Option("--summary-file", help="Also append the Markdown summary here.")
    ] = None,
) -> None:
    """Check what HEAD changes in an index since --base.

    Signatures, digests, smoke runs, immutability, version order, permission escalation,
    regressions. Exit 1 when the pull request must not merge.
    """
    from registry_tool._cli import internal_message
    from registry_tool.ci.check import CheckOptions, Shard, check_pull_request, crash_report, registry_toml_of
    from registry_tool.ci.summary import write_outputs

    # Every outcome, an error or a crash included, writes the report and its side files (SARIF,
    # summary), so the pull request shows why it is red.
    try:
        options = CheckOptions(
            base=base,
            allow_escalation=allow_escalation,
            allow_escalation_at=allow_escalation_at,
            shard=Shard.parse(shard),
            full=full,
        )
        report = check_pull_request(Path.cwd(), list(index or []), options)
    except RegistryToolError as err:
        typer.echo(inert_log_text(f"error: {err.diagnostics()}"), err=True)
        report = Report.from_error("ci check", err)
    except Exception as err:
        typer.echo(inert_log_text(internal_message("ci check", err)), err=True)
        report = crash_report(err)
    if report.default_file is None:  # stopped before it knew the index: the one named, or the default's
        named = index[0].as_posix() if index else ("index" if Path("index/registry.toml").is_file() else "")
        report.default_file = registry_toml_of(named)
    write_outputs(
        report,
        fmt,
        sys.stdout,
        sarif_file=sarif_file,
        summary_file=summary_file,
        step_summary=os.environ.get("GITHUB_STEP_SUMMARY"),
    )
    sys.stdout.flush()
    raise typer.Exit(report.exit_code)


@handle_errors
def init_command(
    directory: Annotated[
        Path, typer.Argument(help="Directory of the new index repository (created if missing).")
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="Registry name (default: the directory name).")
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Name of the host application the plugins extend.")
    ] = "host",
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", help="Where Pages serves the site (default: https://OWNER.github.io/NAME/)."
        ),
    ] = None,
    keys_dir: Annotated[
        Path | None,
        typer.Option(
            "--keys-dir",
            help="Where to write the new secret keys (default: DIR.keys next to DIR, outside git).",
        ),
    ] = None,
    tool_ref: Annotated[
        str | None,
        typer.Option(
            "--tool-ref",
            help="Full commit id of registry-tool the workflows run (default: the commit installed).",
        ),
    ] = None,
    action_repo: Annotated[
        str | None,
        typer.Option("--action-repo", help="GitHub OWNER/NAME of registry-tool (default: the upstream)."),
    ] = None,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Scaffold an index repository: registry.toml, a fresh signed root, PR-check and publish workflows."""
    from registry_tool.ci.scaffold import ACTION_REPO, ToolPin, detect_tool_pin, init_index

    tool = ToolPin(action_repo or ACTION_REPO, tool_ref) if tool_ref else detect_tool_pin(action_repo)
    result = init_index(directory, name=name, host=host, base_url=base_url, keys_dir=keys_dir, tool=tool)
    emit(Report("init", [CheckResult(subject=str(result.directory), data=result.to_json())]), fmt)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(ci_app, name="ci")
    app.command("init")(init_command)
