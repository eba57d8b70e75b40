"""The library's single error root.

Every error a user can trigger is a ``RegistryToolError``: it carries *what* is wrong,
*where* (file, line, field) and *how to fix it*, and knows its exit code, so the CLI
can print one paragraph and never a traceback.  Exit codes are the same for every
command: 0 ok, 1 the checked thing is bad, 2 usage or environment error, 3 the tool itself
failed (an unexpected exception: a bug to report, never a verdict on the input).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3

# The rule id of a finding that stands for a crash of the tool rather than a verdict.
INTERNAL_ERROR_RULE = "internal-error"

# Controls (C0 incl. CR/LF/tab, DEL, C1), line/paragraph separators, bidi marks and overrides,
# zero-width and invisible format characters (tag characters, Hangul fillers, interlinear
# annotation), and lone surrogates (non-UTF-8 file names decoded with
# surrogateescape, which no output stream can encode): messages embed strings a pull request, a
# module, a maintainer or a server controls (file names, test names, yank reasons, HTTP headers),
# and one message is one line, so none of these may reach a terminal or a CI log as themselves.
UNPRINTABLE = _UNPRINTABLE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\xad\u061c\u115f\u1160\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\u3164"
    r"\ufeff\uffa0\ufff9-\ufffb\ud800-\udfff\U000e0000-\U000e007f]"
)


# What published text (a description, an author, a yank reason) may not hold: controls, line and
# paragraph separators, and the bidi embeddings, overrides and isolates that reorder what a reader
# sees (Trojan Source).  Narrower than _UNPRINTABLE: joiners (emoji sequences, Persian), marks and
# soft hyphens are text, and ``printable`` still escapes them where one line must stay one line.
_REFUSED_IN_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def hidden_characters(value: str, allow: str = "") -> list[str]:
    """The distinct control and bidi-override characters of ``value`` (but those in ``allow``), escaped.

    Text a maintainer publishes is refused with these: shown, each would be an escape at best and
    a terminal or log injection, or reordered text, at worst.
    """
    return [printable(c) for c in sorted(set(_REFUSED_IN_TEXT.findall(value))) if c not in allow]


def printable(value: str) -> str:
    r"""``value`` on one line, every control, bidi or invisible character shown as an escape (``\x1b``)."""
    return _UNPRINTABLE.sub(_escape, value)


def _escape(m: re.Match[str]) -> str:
    code = ord(m[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


@dataclass(frozen=True)
class Location:
    """Where a problem is: a file, optionally a line/column, optionally a field path."""

    file: str | None = None
    line: int | None = None
    column: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        """The location as ``file:line:column, field 'x'``."""
        parts: list[str] = []
        if self.file:
            where = self.file
            if self.line:
                where += f":{self.line}"
                if self.column:
                    where += f":{self.column}"
            parts.append(where)
        if self.field:
            parts.append(f"field '{self.field}'")
        return ", ".join(parts)


class RegistryToolError(Exception):
    """Root of every error the library raises on purpose.

    Subclasses are named after the failure (``ExpiredMetadataError``, ...), set
    ``exit_code`` and a stable ``code`` (used as rule id in reports).
    """

    exit_code: int = EXIT_USAGE
    code: str = "error"

    def __init__(
        self,
        what: str,
        *,
        where: Location | str | None = None,
        fix: str | None = None,
    ) -> None:
        """Describe the failure: ``what`` is wrong, ``where`` (a file or a Location), how to ``fix`` it."""
        super().__init__(what)
        self.what = what
        self.where = Location(file=where) if isinstance(where, str) else where
        self.fix = fix

    def diagnostics(self) -> str:
        """A one-paragraph, human-readable explanation: what, where, how to fix.

        Made ``printable``: the parts quote file names, yank reasons, server headers and other
        untrusted text, and every caller prints this paragraph to a terminal or a log.
        """
        text = self.what.rstrip(".") + "."
        if self.where and str(self.where):
            text = f"{self.where}: {text}"
        if self.fix:
            text += f" Fix: {self.fix.rstrip('.')}."
        return printable(text)

    def __str__(self) -> str:
        """The one-paragraph diagnostics."""
        return self.diagnostics()


class CheckFailed(RegistryToolError):
    """The thing being checked (manifest, signature, module, registry) is bad: exit 1."""

    exit_code = EXIT_CHECK_FAILED
    code = "check-failed"


class UsageError(RegistryToolError):
    """Bad invocation or environment (missing file, missing tool, bad option): exit 2."""

    exit_code = EXIT_USAGE
    code = "usage"
