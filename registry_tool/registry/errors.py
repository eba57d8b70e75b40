"""What ``build`` and ``resign`` refuse, one class per rule id (``code``).

Every class is a ``RegistryToolError`` (what, where, fix): the CLI maps ``CheckFailed`` to exit
code 1 (the index or the published site is bad) and ``UsageError`` to exit code 2.
"""

from __future__ import annotations

from registry_tool.errors import CheckFailed, Location, UsageError

# Re-exported: the build raises it (the rules are manifest.tree's, shared with validate).
from registry_tool.manifest.errors import UnsafeIndexPathError as UnsafeIndexPathError
from registry_tool.report import Report, Severity


class BuildRefusedError(CheckFailed):
    """The index has problems; carries the full report so every problem is shown at once."""

    code = "build-refused"

    def __init__(self, report: Report) -> None:
        """Summarise ``report`` (its error findings) in the message; keep it for the reporters."""
        problems = [(r, f) for r, f in report.findings() if f.severity is Severity.error]
        first = problems[0][1] if problems else None
        bad = sum(1 for r in report.results if not r.ok)
        what = f"build refused: {len(problems)} problem(s) in {bad} subject(s)"
        if first:
            what += f"; first: {first.text()}"
        super().__init__(what, where=Location(first.file) if first and first.file else None)
        self.report = report


class RollbackError(CheckFailed):
    """The registry version (or the root version) would not increase over the published one."""

    code = "rollback"


class PublishedReleaseChangedError(CheckFailed):
    """A release of ``--previous`` has other manifest or module bytes in the index."""

    code = "published-release-changed"


class PublishedReleaseRemovedError(CheckFailed):
    """A release of ``--previous`` is missing from the index (yank it instead)."""

    code = "published-release-removed"


class RootChainError(CheckFailed):
    """``root/`` does not hold the versions 1..N a client walks."""

    code = "root-chain"


class UnpinnedConfigError(CheckFailed):
    """registry.toml differs from the digest the root pins (a change that skipped the root threshold)."""

    code = "config-unauthorised"


class IndexKeyError(UsageError):
    """The key given with --key is not an index key of the current root."""

    code = "not-an-index-key"
