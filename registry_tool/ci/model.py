"""The options, rule ids and small value types of ``ci check`` (shared by its modules)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from registry_tool.errors import UsageError
from registry_tool.manifest import RegistryConfig
from registry_tool.manifest.model import Manifest
from registry_tool.rules import RULES as CATALOGUE
from registry_tool.rules import rule_ids
from registry_tool.sandbox import TestOutcome

# Rule id -> one-line description, for the rules ci check reports itself (docs/ci.md#rule-ids);
# written once, in the catalogue.
RULES: dict[str, str] = {rule: CATALOGUE[rule].summary for rule in rule_ids("ci")}

# (manifest, registry config) -> outcomes; injected so tests can count calls and fake nothing else.
SmokeFn = Callable[[Manifest, RegistryConfig], list[TestOutcome]]


#: An escalation approval names the head commit by at least this many hex digits.  The label
#: ``allow-escalation@<digits>`` stays on a pull request across pushes, so a prefix is what an
#: author would grind a new commit id against: 12 digits (48 bits) is hours on one GPU; 32 (128
#: bits) is out of reach, and the label still fits GitHub's 50 characters.
APPROVAL_MIN_HEX = 32
APPROVAL_LABEL = f"allow-escalation@<first {APPROVAL_MIN_HEX} hex digits of the head commit>"


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``: a deterministic split of the changed releases."""

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Parse ``i/n`` (a ``UsageError`` for anything else)."""
        try:
            i, n = (int(p) for p in text.split("/"))
        except ValueError:
            raise UsageError(f"--shard {text!r} is not of the form i/n", fix="e.g. --shard 1/4") from None
        if not 1 <= i <= n:
            raise UsageError(f"--shard {text!r}: need 1 <= i <= n", fix="shards are numbered from 1 to n")
        return cls(i, n)

    def owns(self, position: int) -> bool:
        """Whether the release at ``position`` of the sorted changed releases is this shard's."""
        # Round-robin over the sorted releases: balanced, and the same split on every runner.
        return position % self.count == self.index - 1

    @property
    def first(self) -> bool:
        """Index-wide checks (root, config, stray files) run once, in shard 1."""
        return self.index == 1


@dataclass(frozen=True)
class CheckOptions:
    """What ``check_pull_request`` checks against (base ref), approves and skips."""

    base: str
    allow_escalation: bool = False
    # Approval of escalations for one commit: honoured only when HEAD is that commit, so an
    # escalation pushed after the approval is not approved with it.
    allow_escalation_at: str | None = None
    shard: Shard = field(default_factory=Shard)
    now: datetime | None = None
    smoke: SmokeFn | None = None  # None: registry_tool.sandbox.smoke_release
    # Re-check every release at HEAD as if new (e.g. after a rule change), not only the changed ones.
    full: bool = False


@dataclass(frozen=True)
class ReleaseKey:
    """A release by plugin name and version."""

    name: str
    version: str

    @property
    def subject(self) -> str:
        """The release's folder, ``plugins/<name>/<version>``, as a report subject."""
        return f"plugins/{self.name}/{self.version}"
