"""The Markdown job summary of ``ci check``: an overview table, then one section per release.

The overview rows come from the shared reporter (its view in ``registry_tool.views``); the per-release
sections (checks, smoke figures against the previous version, escalations) are ours.  Test names,
messages and plugin names come from the pull request, so every cell is escaped: no table breaks,
no HTML, no links a contributor could smuggle into the maintainers' view.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any, TextIO

from registry_tool.report import (
    CheckResult,
    OutputFormat,
    Report,
    Severity,
    append_step_summary,
    json_text,
    markdown_summary,
    render,
    to_sarif,
)
from registry_tool.views import kib, md


def _release_section(result: CheckResult) -> list[str]:
    data: dict[str, Any] = result.data
    previous = data.get("previous")
    mark = "✅" if result.ok else "❌"
    head = f"#### {mark} {md(data['plugin'])} {md(data['version'])} ({data.get('kind', '?')}"
    head += f", previous {md(previous)})" if previous else ")"
    lines = [head, ""]
    if data.get("signers"):
        lines += [f"Signed by: {', '.join(md(k) for k in data['signers'])}", ""]
    checks: dict[str, bool] = data.get("checks", {})
    if checks:
        lines += ["| Check | Result |", "|---|---|"]
        lines += [f"| {name} | {'✅ ok' if ok else '❌ failed'} |" for name, ok in checks.items()]
        lines.append("")
    tests = data.get("tests") or []
    if tests:
        label = f"vs {md(previous)}" if previous else ""
        lines += [f"| Test | Outcome | Fuel | Peak memory | {label} |", "|---|---|---|---|---|"]
        regressions = {(r["test"], r["metric"]) for r in data.get("regressions", [])}
        for t in tests:
            flags = " ".join(
                f"⚠️ {metric.split('_')[0]} regression"
                for metric in ("fuel_consumed", "peak_memory_bytes")
                if (t["name"], metric) in regressions
            )
            outcome = ("✅ " if t.get("passed") else "❌ ") + md(t["outcome"])
            fuel = "-" if t.get("fuel_consumed") is None else f"{t['fuel_consumed']:,}"
            lines.append(
                f"| {md(t['name'])} | {outcome} | {fuel} | {kib(t.get('peak_memory_bytes'))} | {flags} |"
            )
        lines.append("")
    escalations = data.get("escalations") or []
    if escalations:
        lines += ["**Escalations (need a maintainer's approval):**", ""]
        lines += [f"- ⚠️ {md(e)}" for e in escalations]
        lines.append("")
    problems = [f for f in result.findings if f.severity is not Severity.notice]
    if problems:
        lines += [f"- **{f.severity.value}** `{f.rule}`: {md(f.text())}" for f in problems]
        lines.append("")
    return lines


def release_details(report: Report) -> str:
    """One section per release (checks, smoke figures, escalations) and per root change."""
    lines: list[str] = []
    for result in report.results:
        if "plugin" in result.data:
            lines += _release_section(result)
        elif result.data.get("root_change"):
            lines += [f"#### ⚠️ Root change: {md(result.data['root_change'])}", ""]
            lines += [f"- **{f.severity.value}** `{f.rule}`: {md(f.text())}" for f in result.findings]
            lines.append("")
    return "\n".join(lines) + ("\n" if lines else "")


def write_outputs(
    report: Report,
    fmt: OutputFormat,
    out: TextIO,
    *,
    sarif_file: Path | None = None,
    summary_file: Path | None = None,
    step_summary: str | None = None,
) -> None:
    """Render ``report`` to ``out`` and to the side files the workflows ask for.

    With the github format the shared reporter appends the overview table to ``step_summary``
    ($GITHUB_STEP_SUMMARY); the per-release sections are appended right after it.
    """
    from registry_tool import __version__

    details = release_details(report)
    if sarif_file is not None:
        _side_file(sarif_file, "--sarif-file", "w", json_text(to_sarif(report, __version__)))
    if summary_file is not None:
        _side_file(summary_file, "--summary-file", "a", markdown_summary(report) + "\n" + details)
    render(report, fmt, out)
    if fmt is OutputFormat.github and step_summary:
        append_step_summary(step_summary, "\n" + details)


def _side_file(path: Path, option: str, mode: str, text: str) -> None:
    """Write (``w``) or append (``a``) a file an option names; one that cannot be is a usage error.

    Never through a symbolic link at the file's own name: the check runs in the pull request's
    checkout, which may hold one there (to .git/config, or out of the checkout).  A new file
    replaces it; appending to one is refused.  A folder on the way is not checked: the workflows
    name a file outside the checkout ($RUNNER_TEMP).
    """
    from registry_tool._files import write_replacing
    from registry_tool.errors import UsageError

    try:
        try:
            kind = os.lstat(path).st_mode
        except FileNotFoundError:
            kind = stat.S_IFREG
        if mode == "w" and (stat.S_ISREG(kind) or stat.S_ISLNK(kind)):
            write_replacing(path, text.encode("utf-8"))
        elif mode == "w":
            # A device (/dev/null: the report discarded) or a FIFO is written to, never replaced
            # (renaming over /dev/null replaced the device for the whole machine); a folder refuses.
            flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            with os.fdopen(os.open(path, flags), "w", encoding="utf-8") as fh:
                fh.write(text)
        else:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            with os.fdopen(os.open(path, flags, 0o644), "a", encoding="utf-8") as fh:
                fh.write(text)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UsageError(
                f"{option} {path} is a symbolic link, which is never written through",
                where=str(path),
                fix=f"remove the link, or give {option} a file outside the checkout (under $RUNNER_TEMP)",
            ) from None
        raise UsageError(
            f"cannot write {option} {path}: {err.strerror or err}",
            where=str(path),
            fix=f"give {option} a file in an existing folder you may write",
        ) from None
