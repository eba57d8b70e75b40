"""Results are data; reporters turn them into text, JSON, GitHub annotations or SARIF.

Every command (validate, smoke, verify, ci check, the client's, ...) produces a ``Report``
made of ``CheckResult`` objects, each holding ``Finding`` objects, plus facts about the whole
command in ``Report.data``.  Data holds facts only: how a command's facts read as text or as
extra Markdown summary columns is a ``View`` (``registry_tool.views``), looked up by command
name, so a new output format is one more reporter and a new command one more view.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from registry_tool.errors import (
    EXIT_CHECK_FAILED,
    EXIT_INTERNAL,
    EXIT_OK,
    INTERNAL_ERROR_RULE,
    Location,
    RegistryToolError,
    printable,
)

JSON_FORMAT_VERSION = 1


class OutputFormat(StrEnum):
    """The ``--format`` choices every command accepts."""

    text = "text"
    json = "json"
    github = "github"
    sarif = "sarif"


class Severity(StrEnum):
    """How bad a finding is: only errors make a result fail."""

    error = "error"
    warning = "warning"
    notice = "notice"


@dataclass(frozen=True)
class Finding:
    """One problem (or remark) about one subject, with a stable rule id."""

    rule: str
    message: str
    severity: Severity = Severity.error
    file: str | None = None
    line: int | None = None
    column: int | None = None
    field: str | None = None
    fix: str | None = None

    @classmethod
    def from_error(cls, err: RegistryToolError, severity: Severity = Severity.error) -> Finding:
        """The finding that reports ``err`` under its rule id (``err.code``)."""
        where = err.where or Location()
        return cls(
            rule=err.code,
            message=err.what,
            severity=severity,
            file=where.file,
            line=where.line,
            column=where.column,
            field=where.field,
            fix=err.fix,
        )

    def text(self) -> str:
        """One line: location, message and fix."""
        loc = str(Location(self.file, self.line, self.column, self.field))
        msg = self.message.rstrip(".") + "."
        if self.fix:
            msg += f" Fix: {self.fix.rstrip('.')}."
        return f"{loc}: {msg}" if loc else msg

    def to_json(self) -> dict[str, Any]:
        """The stable JSON object of a finding."""
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "field": self.field,
            "fix": self.fix,
        }


@dataclass
class CheckResult:
    """The verdict on one subject (a plugin directory, a file, a release)."""

    subject: str
    findings: list[Finding] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    file: str | None = None

    @property
    def ok(self) -> bool:
        """True when no finding is an error."""
        return not any(f.severity is Severity.error for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        """The stable JSON object of a result."""
        return {
            "subject": self.subject,
            "file": self.file,
            "ok": self.ok,
            "findings": [f.to_json() for f in self.findings],
            "data": self.data,
        }


# Keys of the JSON envelope; a command's own facts (Report.data) may not take them.
_ENVELOPE = frozenset({"format_version", "command", "ok", "summary", "results", "error", "notices"})


@dataclass
class Report:
    """What one command found: results per subject plus facts about the whole command.

    Attributes:
        command: The command's name as typed (``validate``, ``client install``).
        results: One ``CheckResult`` per subject checked or acted on.
        data: Facts about the whole command (an install plan, the directory written), printed as
            top-level JSON keys next to the envelope's.
        notices: Remarks for the person running the command (a downgrade): stderr in text mode,
            ``notices`` in JSON.
        error: The finding of the error that stopped the command, when one did.
        error_exit_code: That error's exit code (2 for usage or environment, 1 for a bad input).
        summary_columns, rule_descriptions, docs_page: ignored; kept so that callers written
            before views and the rule catalogue still construct reports (to be removed).
        default_file: Where SARIF places a finding that names no file, nor does its result
            (GitHub code scanning refuses a whole upload with one result without a location).
    """

    command: str
    results: list[CheckResult] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    error: Finding | None = None
    error_exit_code: int | None = None
    summary_columns: dict[str, Callable[[CheckResult], str]] = field(default_factory=dict)
    rule_descriptions: dict[str, str] = field(default_factory=dict)
    docs_page: str = ""
    default_file: str | None = None

    @classmethod
    def from_error(cls, command: str, err: RegistryToolError) -> Report:
        """The report of a command that an error stopped: one result holding the error's finding."""
        finding = Finding.from_error(err)
        result = CheckResult(subject=command, findings=[finding], file=finding.file)
        return cls(command=command, results=[result], error=finding, error_exit_code=err.exit_code)

    @property
    def ok(self) -> bool:
        """True when no result failed and no error stopped the command."""
        return self.error is None and all(r.ok for r in self.results)

    @property
    def exit_code(self) -> int:
        """0 ok, 1 the checked thing is bad, 2 usage or environment, 3 the tool crashed."""
        # A crash is the tool's failure, not the input's: exit 3, still non-zero (fails closed).
        if any(f.rule == INTERNAL_ERROR_RULE for _, f in self.findings()):
            return EXIT_INTERNAL
        if self.error_exit_code is not None:
            return self.error_exit_code
        return EXIT_OK if self.ok else EXIT_CHECK_FAILED

    def findings(self) -> Iterable[tuple[CheckResult, Finding]]:
        """Every (result, finding) pair, in order."""
        for result in self.results:
            for finding in result.findings:
                yield result, finding

    def to_json(self) -> dict[str, Any]:
        """The stable JSON document (``format_version`` 1)."""
        errors = sum(1 for _, f in self.findings() if f.severity is Severity.error)
        warnings = sum(1 for _, f in self.findings() if f.severity is Severity.warning)
        clash = _ENVELOPE.intersection(self.data)
        if clash:
            raise ValueError(f"report data may not use the envelope's keys {sorted(clash)}")
        doc: dict[str, Any] = {
            "format_version": JSON_FORMAT_VERSION,
            "command": self.command,
            "ok": self.ok,
            "summary": {
                "subjects": len(self.results),
                "failed": sum(1 for r in self.results if not r.ok),
                "errors": errors,
                "warnings": warnings,
            },
            "results": [r.to_json() for r in self.results],
            **self.data,
        }
        if self.notices:
            doc["notices"] = list(self.notices)
        if self.error is not None:
            e = self.error
            where = str(Location(e.file, e.line, e.column, e.field))
            doc["error"] = {"rule": e.rule, "message": e.message, "where": where, "fix": e.fix}
        return doc


# --------------------------------------------------------------------------- views


@dataclass(frozen=True)
class View:
    """How one command's facts read: text lines per result, Markdown columns, closing lines.

    Attributes:
        lines: Text lines shown under a result (from its ``data``).
        columns: Extra Markdown summary columns, header -> cell; cells escape their own untrusted
            parts (they may use ``<br>`` between items).
        header: Text lines about the whole report, before the results.
        footer: Text lines about the whole report (from ``Report.data``), before the verdict line.
        verdict: Whether the text report ends with the "N checked, M failed" line (always on failure).
        subjects: Whether a result that passed shows its subject line; without, its lines stand
            alone (commands that act rather than check: ``key generate``, ``client install``).
    """

    lines: Callable[[CheckResult], list[str]] | None = None
    columns: Mapping[str, Callable[[CheckResult], str]] = field(default_factory=dict)
    header: Callable[[Report], list[str]] | None = None
    footer: Callable[[Report], list[str]] | None = None
    verdict: bool = True
    subjects: bool = True


_PLAIN = View()


def view_for(command: str) -> View:
    """The view registered for ``command`` in ``registry_tool.views``, else a plain one."""
    from registry_tool.views import VIEWS

    return VIEWS.get(command, _PLAIN)


# --------------------------------------------------------------------------- text

# A line of the text report: (text, colour) parts; the colour is rich's style name, or None.
_Line = list[tuple[str, str | None]]
_SEVERITY_COLOURS = {Severity.error: "red", Severity.warning: "yellow", Severity.notice: "cyan"}


def _text_lines(report: Report) -> Iterable[_Line]:
    """The text report's lines, every untrusted part already made ``printable``."""
    view = view_for(report.command)
    for line in view.header(report) if view.header else ():
        yield [(printable(str(line)), None)]
    for result in report.results:
        indent = "     "
        if view.subjects or result.findings:
            mark = ("ok", "green") if result.ok else ("FAIL", "red")
            yield [mark, ("   " if result.ok else " ", None), (printable(result.subject), None)]
        else:
            indent = ""
        for finding in result.findings:
            severity = (finding.severity.value, _SEVERITY_COLOURS[finding.severity])
            yield [("     ", None), severity, (" " + printable(finding.text()), None)]
        for line in view.lines(result) if view.lines else ():
            # A tab (a Go stack trace's indent) is whitespace, not an escape: expanded, as a terminal would.
            yield [(indent + printable(str(line).expandtabs()), None)]
    for line in view.footer(report) if view.footer else ():
        yield [(printable(str(line)), None)]
    if view.verdict or not report.ok:
        failed = sum(1 for r in report.results if not r.ok)
        verdict = ("passed", "green") if report.ok else ("failed", "red")
        yield [(f"{report.command}: {len(report.results)} checked, {failed} failed: ", None), verdict]


def _colours(out: TextIO) -> bool:
    """Could rich colour ``out``: is it a terminal, or do FORCE_COLOR / TTY_COMPATIBLE say so?

    When the environment speaks, rich decides (as it always did); otherwise a stream that is not
    a terminal gets the plain text, which is what rich prints to it, without importing rich.
    """
    if "FORCE_COLOR" in os.environ or os.environ.get("TTY_COMPATIBLE"):
        return True
    isatty = getattr(out, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def render_text(report: Report, out: TextIO) -> None:
    """Human-readable report: a line per result, its findings and facts, then the verdict.

    Coloured by rich on a terminal; to anything else (a pipe, a file, a CI log) the same text
    without colour, written directly: importing rich costs more than the rest of a ``validate``.
    Untrusted text is never read as rich markup or emoji codes: it prints as it is, in colour
    or not.
    """
    if not _colours(out):
        for parts in _text_lines(report):
            out.write(inert_log_text("".join(text for text, _ in parts)) + "\n")
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(file=out, highlight=False, soft_wrap=True)
    for parts in _text_lines(report):
        # Styled text, not markup: nothing in it is parsed, so the colours are all that differ.
        console.print(Text.assemble(*((inert_log_text(t), c or "") for t, c in parts)))


# --------------------------------------------------------------------------- json


def json_text(document: Any) -> str:
    r"""A report document as JSON text, indented, keys sorted, every string well-formed Unicode.

    A file name that is not UTF-8 reaches a report as lone surrogates (``surrogateescape``); JSON
    can only carry them as ``\udcff`` escapes, which strict parsers refuse and JavaScript turns
    into U+FFFD, so they are written as the text report shows them (the ``printable`` escape).
    """
    text = json.dumps(_well_formed(document), indent=2, sort_keys=True) + "\n"
    # A CI log shows the document: "##[" (only ever inside a string) is written "##\u005b", the same
    # value, so no runner reads a legacy workflow command in it (see ``inert_log_text``).
    return _LEGACY_COMMAND_JSON.sub(r"\\u005b", text)


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _well_formed(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub(lambda m: printable(m[0]), value) if _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {_well_formed(k): _well_formed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_well_formed(v) for v in value]
    return value


def render_json(report: Report, out: TextIO) -> None:
    """The stable JSON document, indented, keys sorted."""
    out.write(json_text(report.to_json()))


# --------------------------------------------------------------------------- github


def escape_data(value: str) -> str:
    """Escape a workflow-command message (GitHub's ``escapeData``)."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """Escape a workflow-command property value (GitHub's ``escapeProperty``)."""
    return printable(escape_data(value).replace(":", "%3A").replace(",", "%2C"))


def github_annotation(finding: Finding, subject: str) -> str:
    """One workflow command (``::error file=...::message``) for one finding."""
    props: list[str] = []
    if finding.file:
        props.append(f"file={escape_property(finding.file)}")
        if finding.line:
            props.append(f"line={finding.line}")
            if finding.column:
                props.append(f"col={finding.column}")
    props.append(f"title={escape_property(f'{finding.rule}: {subject}')}")
    message = finding.message.rstrip(".") + "."
    if finding.fix:
        message += f" Fix: {finding.fix}"
    # After escaping CR/LF: other controls (ANSI colours, OSC links) would be rendered by the log viewer.
    return f"::{finding.severity.value} {','.join(props)}::{inert_log_text(printable(escape_data(message)))}"


# Untrusted text in a Markdown cell: no table breaks, no HTML (comments hide the rest), no links or images.
# Markdown that shows untrusted text as text: no links or images (brackets and the backslash that
# could un-escape them), no raw HTML or entities, no table breaks, no * or ~ emphasis (an intra-word
# _ never emphasises, and names hold it), and no autolinks
# (GitHub links a bare ``https://`` or ``www.`` by itself: that colon and that dot become entities).
_MD_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        "&": "&amp;",
        "|": "\\|",
        "<": "&lt;",
        ">": "&gt;",
        "\n": " ",
        "\r": " ",
        "`": "'",
        "[": "\\[",
        "]": "\\]",
        "*": "\\*",
        "~": "\\~",
    }
)
_MD_AUTOLINK = re.compile(r"(?<=www)\.|:(?=//)", re.IGNORECASE)


def md_text(value: object) -> str:
    """Untrusted text made inert in GitHub Markdown (a table cell, a list item, a heading)."""
    return printable(_MD_AUTOLINK.sub(lambda m: f"&#{ord(m[0])};", str(value).translate(_MD_ESCAPES)))


def _md_code(value: str) -> str:
    """Untrusted text as a code span (inert inside one but for backticks, pipes and line breaks)."""
    return (
        "`"
        + printable(value.replace("`", "'").replace("|", "\\|").replace("\n", " ").replace("\r", " "))
        + "`"
    )


def markdown_summary(report: Report) -> str:
    """The Markdown table GitHub shows as the job summary, then the findings."""
    extra = view_for(report.command).columns
    head = ["Subject", "Result", "Errors", "Warnings", *extra]
    lines = [f"### registry-tool {report.command}: {'passed' if report.ok else 'failed'}", ""]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for r in report.results:
        errs = sum(1 for f in r.findings if f.severity is Severity.error)
        warns = sum(1 for f in r.findings if f.severity is Severity.warning)
        cells = [_md_code(r.subject), "✅ ok" if r.ok else "❌ fail", str(errs), str(warns)]
        # Extra columns escape their own untrusted parts (they may use <br> between items).
        cells += [fn(r).replace("\n", " ").replace("\r", " ") for fn in extra.values()]
        lines.append("| " + " | ".join(cells) + " |")
    problems = [(r, f) for r, f in report.findings()]
    if problems:
        lines += ["", "<details><summary>Findings</summary>", ""]
        lines += [f"- **{f.severity.value}** {_md_code(r.subject)}: {md_text(f.text())}" for r, f in problems]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


# The runner reads a line as a workflow command when, trimmed, it starts with "::", and in the
# legacy form "##[name props]data" wherever "##[" appears in a line (GitHub's runner falls back to
# it; Azure Pipelines reads "##vso[" the same way).  Untrusted text a CI log shows is made inert.
_COMMAND_LINE = re.compile(r"^(\s*):(?=:)", re.M)
_LEGACY_COMMAND = re.compile(r"##(?=\[|vso\[)", re.I)
_LEGACY_COMMAND_JSON = re.compile(r"(?<=##)\[|(?<=##[vV][sS][oO])\[")


def inert_log_text(text: str) -> str:
    """``text`` with no line a CI runner reads as a workflow command (a zero-width space breaks each)."""
    return _LEGACY_COMMAND.sub("##\u200b", _COMMAND_LINE.sub("\\1:\u200b", text))


#: GitHub takes at most 1 MiB of job summary per step and drops all of a larger one.
STEP_SUMMARY_MAX = 1024 * 1024
_SUMMARY_CUT = "\n*The summary stops here (GitHub's 1 MiB limit); every finding is in the log.*\n"


def _fit_step_summary(text: str, present: int) -> str:
    """``text``, cut at a line so that the summary stays within ``STEP_SUMMARY_MAX`` bytes."""
    room = STEP_SUMMARY_MAX - present
    data = text.encode("utf-8")
    if len(data) <= room:
        return text
    room -= len(_SUMMARY_CUT.encode("utf-8"))
    if room <= 0:
        return ""
    kept = data[:room]
    return kept[: kept.rfind(b"\n") + 1].decode("utf-8", "ignore") + _SUMMARY_CUT


def append_step_summary(path: str, text: str) -> None:
    """Append to the job summary file the runner names ($GITHUB_STEP_SUMMARY).

    The summary is a courtesy: a file that cannot be written (a folder, a path under a file, a
    full disk) is a warning on stderr, and the report, the annotations and the exit code stand.
    """
    try:
        # Non-blocking: a FIFO nobody reads is refused (ENXIO), not waited on forever.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(_fit_step_summary(text, os.fstat(fd).st_size))
    except (OSError, ValueError) as err:  # ValueError: a NUL in the path
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        sys.stderr.write(
            f"warning: the job summary $GITHUB_STEP_SUMMARY ({path!r}) was not written: {reason}\n"
        )


def render_github(report: Report, out: TextIO) -> None:
    """Annotations, the Markdown job summary (when $GITHUB_STEP_SUMMARY is set), then the text report."""
    for result, finding in report.findings():
        out.write(github_annotation(finding, result.subject) + "\n")
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        append_step_summary(summary_path, markdown_summary(report))
    # The text report shares the log with the annotations: none of its lines may read as a command.
    text = io.StringIO()
    render_text(report, text)
    out.write(inert_log_text(text.getvalue()))


# --------------------------------------------------------------------------- sarif

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {Severity.error: "error", Severity.warning: "warning", Severity.notice: "note"}


def _artifact_uri(file: str) -> str:
    """``file`` as a SARIF artifact URI.

    Relative to the checkout (the working directory), as code scanning needs it, or a ``file://``
    URI for an absolute path outside it. A URI reference: '#', '?', '%' or a space in a file name
    must not cut or break the path.
    """
    path = Path(file)
    if path.is_absolute():
        try:
            file = path.relative_to(Path.cwd()).as_posix()
        except ValueError:
            return "file://" + quote(path.as_posix(), safe="/", errors="surrogateescape")
    return quote(file, safe="/", errors="surrogateescape")  # the name's own bytes


def to_sarif(report: Report, tool_version: str) -> dict[str, Any]:
    """SARIF 2.1.0 for GitHub code scanning: one driver rule (from the catalogue) per rule id."""
    from registry_tool.rules import PROJECT_URL, describe

    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for result, finding in report.findings():
        if finding.rule not in rules:
            rule = describe(finding.rule)
            rules[finding.rule] = {
                "id": finding.rule,
                "name": "".join(p.capitalize() for p in finding.rule.replace("_", "-").split("-")),
                "shortDescription": {"text": rule.summary},
                "helpUri": rule.help_uri,
                "defaultConfiguration": {"level": _SARIF_LEVEL[rule.severity]},
            }
        entry: dict[str, Any] = {
            "ruleId": finding.rule,
            "level": _SARIF_LEVEL[finding.severity],
            "message": {"text": f"{result.subject}: {finding.text()}"},
        }
        file = finding.file or result.file or report.default_file
        if file:
            location: dict[str, Any] = {"artifactLocation": {"uri": _artifact_uri(file)}}
            # GitHub code scanning requires a region; line 1 when unknown.
            location["region"] = {"startLine": (finding.line if finding.file else None) or 1}
            if finding.column and finding.file:
                location["region"]["startColumn"] = finding.column
            entry["locations"] = [{"physicalLocation": location}]
        results.append(entry)
    ordered = sorted(rules.values(), key=lambda r: str(r["id"]))
    index = {r["id"]: i for i, r in enumerate(ordered)}
    for entry in results:
        entry["ruleIndex"] = index[entry["ruleId"]]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "registry-tool",
                        "version": tool_version,
                        "informationUri": PROJECT_URL,
                        "rules": ordered,
                    }
                },
                "results": results,
            }
        ],
    }


def render_sarif(report: Report, out: TextIO) -> None:
    """The SARIF document, indented, keys sorted."""
    from registry_tool import __version__

    out.write(json_text(to_sarif(report, __version__)))


RENDERERS: dict[OutputFormat, Callable[[Report, TextIO], None]] = {
    OutputFormat.text: render_text,
    OutputFormat.json: render_json,
    OutputFormat.github: render_github,
    OutputFormat.sarif: render_sarif,
}


def render(report: Report, fmt: OutputFormat, out: TextIO) -> None:
    """Write ``report`` to ``out`` in format ``fmt``."""
    RENDERERS[fmt](report, out)
