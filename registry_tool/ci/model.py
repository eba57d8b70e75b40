"""The options, rule ids and small value types of ``ci check`` (shared by its modules)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from registry_tool.errors import UsageError
from registry_tool.manifest import RegistryConfig
from registry_tool.manifest.model import Manifest
from registry_tool.sandbox import TestOutcome

RULES: dict[str, str] = {
    "release-changed": "A file of a release that exists at the base was modified (releases are immutable).",
    "release-removed": "A release (or one of its files) that exists at the base was removed.",
    "version-backwards": "A new release is lower than the highest existing version of the plugin.",
    "version-duplicate": "A new release has the precedence of a published version (differs only in +build).",
    "artifact-digest": "The artifact's sha256/size differ from what plugin.toml pins.",
    "signature": "The release (or yank) is not signed by enough maintainers authorised by the root at base.",
    "permission-escalation": "A new version declares permissions its previous version did not.",
    "import-escalation": "A new version's module imports functions its previous version did not.",
    "smoke-failed": "A [[tests]] entry did not end in its expected outcome in the sandbox.",
    "fuel-regression": "Fuel use grew more than [ci] regression_threshold over the previous version.",
    "memory-regression": "Peak memory grew more than [ci] regression_threshold over the previous version.",
    "new-permission": "A plugin's first release requests permissions (a notice for reviewers).",
    "root-change": "The PR changes the root of trust (new keys, thresholds or delegations).",
    "root-signature": "A new root version lacks a threshold of valid signatures (root chain rules).",
    "root-immutable": "A published root version was modified or removed.",
    "yank-invalid": "yank.toml is malformed or names another release.",
    "config-change": "registry.toml changed and the root pins the new version (a notice for reviewers).",
    "config-invalid": "registry.toml was deleted, is a link or special file, or would not load.",
    "config-unauthorised": "registry.toml changed but no root that passed the root threshold pins it.",
    "index-attributes": "A changed .gitattributes makes git rewrite index files on checkout.",
    "file-outside-plugin": "A changed file is not inside a plugin release folder plugins/<name>/<version>/.",
    "workflow-change": "The PR changes CI workflows or the action (its own check may be affected).",
    "internal-error": "A check crashed; the release fails closed until it runs.",
    "name-squatting": "A new plugin name looks like an existing one and no maintainer is delegated both.",
    "approval-stale": "The escalation approval names another commit than HEAD (a push after approving).",
    "uncommitted-changes": "The working tree differs from HEAD; those changes were not checked.",
    "unexpected-file": "A file in a release folder is not covered by the release's signature.",
}

# (manifest, registry config) -> outcomes; injected so tests can count calls and fake nothing else.
SmokeFn = Callable[[Manifest, RegistryConfig], list[TestOutcome]]


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``: a deterministic split of the changed releases."""

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            i, n = (int(p) for p in text.split("/"))
        except ValueError:
            raise UsageError(f"--shard {text!r} is not of the form i/n", fix="e.g. --shard 1/4") from None
        if not 1 <= i <= n:
            raise UsageError(f"--shard {text!r}: need 1 <= i <= n", fix="shards are numbered from 1 to n")
        return cls(i, n)

    def owns(self, position: int) -> bool:
        # Round-robin over the sorted releases: balanced, and the same split on every runner.
        return position % self.count == self.index - 1

    @property
    def first(self) -> bool:
        """Index-wide checks (root, config, stray files) run once, in shard 1."""
        return self.index == 1


@dataclass(frozen=True)
class CheckOptions:
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
    name: str
    version: str

    @property
    def subject(self) -> str:
        return f"plugins/{self.name}/{self.version}"
