"""``ci check``: judge an index pull request by what it changes between REF and HEAD.

Everything a PR could use to authorise itself is read AS IT IS AT REF (the base): the root
(who may sign what), registry.toml (permissions, limits, backport policy) and every existing
release.  The HEAD side is the working tree of the checkout.  Only changed releases are
looked at, so the cost is O(changed) whatever the size of the index.

Rule ids (stable; documented in docs/ci.md) are the keys of ``RULES``; findings from the
manifest, signing and trust parts keep their own rule ids.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import tomllib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from semantic_version import Version

from registry_tool.ci.gitdiff import Change, ChangeKind, GitRepo
from registry_tool.ci.summary import SUMMARY_COLUMNS
from registry_tool.ci.trustgate import RootChange, TrustGate
from registry_tool.errors import RegistryToolError, UsageError
from registry_tool.manifest import (
    RegistryConfig,
    inspect_wasm,
    load_manifest,
    load_registry_config,
    validate_release,
)
from registry_tool.manifest.model import Manifest
from registry_tool.manifest.source import TomlSyntaxError, parse_toml
from registry_tool.report import CheckResult, Finding, Report, Severity
from registry_tool.sandbox import TestOutcome, smoke_release

RULES: dict[str, str] = {
    "release-changed": "A file of a release that exists at the base was modified (releases are immutable).",
    "release-removed": "A release (or one of its files) that exists at the base was removed.",
    "version-backwards": "A new release is lower than the highest existing version of the plugin.",
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
    "config-change": "registry.toml changed; the check used the base version, the new one needs review.",
    "file-outside-plugin": "A changed file is not inside a plugin release folder plugins/<name>/<version>/.",
    "workflow-change": "The PR changes CI workflows or the action (its own check may be affected).",
    "internal-error": "A check crashed; the release fails closed until it runs.",
    "unexpected-file": "A file in a release folder is not covered by the release's signature.",
}

_ROOT_PATH = re.compile(r"^([1-9][0-9]*)\.root\.json(?:\.[0-9A-F]{16})?(?:\.minisig)?$")

# validate's rules about the artifact pin, plus ours.
_DIGEST_RULES = frozenset(
    {
        "digest-mismatch",
        "size-mismatch",
        "artifact-missing",
        "artifact-path",
        "artifact-size",
        "artifact-digest",
    }
)

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


def check_pull_request(checkout: Path, index_dirs: list[Path], options: CheckOptions) -> Report:
    """Check what HEAD changes under each index directory since ``options.base``."""
    repo = GitRepo.discover(checkout)
    base = repo.resolve(options.base)
    now = options.now or datetime.now(UTC)
    report = Report(command="ci check")
    if options.shard.first and not options.full:
        workflows = _workflow_changes(repo, base)
        if workflows.findings:
            report.results.append(workflows)
    for index_dir in index_dirs or [_default_index(repo)]:
        rel = _repo_relative(repo, index_dir)
        with _IndexCheck(repo, base, rel, options, now) as check:
            report.results.extend(check.run())
    report.summary_columns.update(SUMMARY_COLUMNS)
    return report


def _workflow_changes(repo: GitRepo, base: str) -> CheckResult:
    """A PR that edits CI can change what this very run checks: reviewers must know."""
    result = CheckResult(subject="CI configuration")
    for change in repo.changes(base, [".github", "action.yml"]):
        result.findings.append(
            Finding(
                rule="workflow-change",
                message=f"{change.path} ({change.kind.name}) changes CI; this run may already use the "
                "changed workflow, so its verdict needs a maintainer's review",
                severity=Severity.warning,
                file=change.path,
                line=1 if change.kind is not ChangeKind.deleted else None,
                fix="send workflow changes in their own pull request",
            )
        )
    return result


def _default_index(repo: GitRepo) -> Path:
    return repo.root / "index" if (repo.root / "index" / "registry.toml").is_file() else repo.root


def _repo_relative(repo: GitRepo, path: Path) -> str:
    absolute = (path if path.is_absolute() else Path.cwd() / path).resolve()
    try:
        rel = absolute.relative_to(repo.root.resolve()).as_posix()
    except ValueError:
        raise UsageError(f"{path} is not inside the git checkout {repo.root}", where=str(path)) from None
    return "" if rel == "." else rel


class _IndexCheck:
    """One index directory: classify the changes, then check each group."""

    def __init__(self, repo: GitRepo, base: str, index: str, options: CheckOptions, now: datetime) -> None:
        self.repo, self.base, self.index, self.options, self.now = repo, base, index, options, now
        self.prefix = f"{index}/" if index else ""
        self._tmp = tempfile.TemporaryDirectory(prefix="registry-tool-ci-")
        self.tmp = Path(self._tmp.name)

    def __enter__(self) -> _IndexCheck:
        return self

    def __exit__(self, *exc: object) -> None:
        self._tmp.cleanup()

    # ------------------------------------------------------------------ layout

    def path(self, *parts: str) -> str:
        """Repo-relative POSIX path of ``parts`` inside the index."""
        return self.prefix + "/".join(parts)

    def run(self) -> list[CheckResult]:
        if self.options.full:
            head = self.repo.list_files("HEAD", self.path("plugins"))
            changes = [Change(p, ChangeKind.added) for p in head]
        else:
            changes = self.repo.changes(self.base, [self.index or "."])
        releases: dict[ReleaseKey, list[Change]] = defaultdict(list)
        root_changes: list[Change] = []
        index_level = CheckResult(subject=f"{self.index or '.'} (index files)")
        for change in changes:
            parts = PurePosixPath(change.path[len(self.prefix) :]).parts
            if len(parts) >= 4 and parts[0] == "plugins":
                releases[ReleaseKey(parts[1], parts[2])].append(change)
            elif parts and parts[0] == "root":
                root_changes.append(change)
            elif parts == ("registry.toml",):
                index_level.findings.append(self._config_change(change))
            else:
                index_level.findings.append(self._outside(change))
        results: list[CheckResult] = []
        gate = TrustGate.at_ref(self.repo, self.base, self.path("root"), self.now)
        config = self._base_config()
        if self.options.shard.first:
            if root_changes:
                results.append(self._check_root(gate, root_changes))
            if index_level.findings:
                results.append(index_level)
        for position, key in enumerate(sorted(releases, key=lambda k: (k.name, k.version))):
            if self.options.shard.owns(position):
                results.append(self._check_release(key, releases[key], gate, config))
        return results

    def _outside(self, change: Change) -> Finding:
        return Finding(
            rule="file-outside-plugin",
            message=f"{change.path} ({change.kind.name}) is outside every plugin release folder",
            file=change.path,
            line=1 if change.kind is not ChangeKind.deleted else None,
            fix=f"put plugin files under {self.path('plugins', '<name>', '<version>')}/ and send other "
            "changes in a separate pull request for the registry maintainers",
        )

    def _config_change(self, change: Change) -> Finding:
        return Finding(
            rule="config-change",
            message="registry.toml changed: this check used the base version; the change itself needs a "
            "registry maintainer's review",
            severity=Severity.warning,
            file=change.path,
            line=1,
            fix="send registry configuration changes in their own pull request",
        )

    # ------------------------------------------------------------------ base state

    def _base_config(self) -> RegistryConfig:
        """registry.toml as it is at REF (a PR cannot loosen the rules it is judged by)."""
        rel = self.path("registry.toml")
        data = self.repo.show(self.base, rel)
        if data is None:
            raise UsageError(
                f"{rel} does not exist at {self.base[:12]}",
                where=rel,
                fix="commit registry.toml to the base branch before opening plugin pull requests",
            )
        target = self.tmp / "base" / "registry.toml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return load_registry_config(target)

    def _export_base(self, rel_dir: str) -> Path:
        dest = self.tmp / "base" / rel_dir
        self.repo.export(self.base, rel_dir, dest)
        return dest

    def _base_versions(self, name: str) -> list[Version]:
        found: list[Version] = []
        for entry in self.repo.list_dirs(self.base, self.path("plugins", name)):
            try:
                found.append(Version(entry))
            except ValueError:
                continue  # not a release folder; validate reports it elsewhere
        return sorted(found)

    # ------------------------------------------------------------------ root

    def _check_root(self, gate: TrustGate, changes: list[Change]) -> CheckResult:
        root_dir = self.path("root")
        result = CheckResult(subject="root", file=root_dir)
        published = set(self.repo.list_files(self.base, root_dir))
        for change in changes:
            match = _ROOT_PATH.match(PurePosixPath(change.path).name)
            if change.path not in published and match is None:
                result.findings.append(
                    Finding(
                        rule="unexpected-file",
                        message=f"{change.path} is not root metadata (<N>.root.json) or a signature of it",
                        file=change.path,
                        line=1,
                        fix="remove the file from the root folder",
                    )
                )
            elif change.path not in published and match and int(match.group(1)) <= gate.root.version:
                result.findings.append(
                    Finding(
                        rule="root-immutable",
                        message=f"{change.path} adds a file to published root version {match.group(1)}",
                        file=change.path,
                        line=1,
                        fix="never edit a published root version; add the next version N+1 instead",
                    )
                )
            if change.path in published:
                result.findings.append(
                    Finding(
                        rule="root-immutable",
                        message=f"published root file {change.path} was {change.kind.name}",
                        file=change.path,
                        line=1 if change.kind is not ChangeKind.deleted else None,
                        fix="never edit a published root version; add the next version N+1 instead",
                    )
                )
        change_info: RootChange = gate.check_new_root(self.repo.root / root_dir, root_dir)
        result.findings.extend(change_info.findings)
        result.data["root_change"] = change_info.summary
        return result

    # ------------------------------------------------------------------ releases

    def _check_release(
        self, key: ReleaseKey, changes: list[Change], gate: TrustGate, config: RegistryConfig
    ) -> CheckResult:
        rel_dir = self.path("plugins", key.name, key.version)
        manifest_rel = f"{rel_dir}/plugin.toml"
        result = CheckResult(subject=key.subject, file=manifest_rel)
        result.data.update({"plugin": key.name, "version": key.version, "checks": {}})
        published = set(self.repo.list_files(self.base, rel_dir))
        head_dir = self.repo.root / rel_dir
        links = _symlinks(self.repo.root, rel_dir)
        if links:
            # Never follow a link out of the checkout (to /dev/zero, ~/.ssh, another release...).
            result.findings.extend(
                Finding(
                    rule="unexpected-file",
                    message=f"{link} is a symbolic link",
                    file=link,
                    line=1,
                    fix="commit the file itself; links could point outside the release",
                )
                for link in links
            )
            return result
        try:
            if published and not self.options.full:
                self._check_published(key, changes, published, gate, result)
            elif (head_dir / "plugin.toml").is_file():
                _NewRelease(self, key, rel_dir, gate, config, result).run()
            else:
                result.findings.extend(self._outside(c) for c in changes)
        except RegistryToolError as err:
            result.findings.append(_finding_from_error(err, self.repo.root, self._rebase_map(rel_dir)))
        return result

    def _check_published(
        self,
        key: ReleaseKey,
        changes: list[Change],
        published: set[str],
        gate: TrustGate,
        result: CheckResult,
    ) -> None:
        result.data["kind"] = "published"
        yank_changed = False
        for change in changes:
            name = PurePosixPath(change.path).name
            if name == "yank.toml" or (name.startswith("yank.toml.") and name.endswith(".minisig")):
                if change.path in published:
                    result.findings.append(self._immutable(change))
                else:
                    yank_changed = True
                continue
            result.findings.append(self._immutable(change))
        if yank_changed:
            result.data["kind"] = "yank"
            rel_dir = self.path("plugins", key.name, key.version)
            result.findings.extend(_check_yank(self.repo.root, rel_dir, key, gate))
            result.data["checks"]["yank signature"] = result.ok

    def _immutable(self, change: Change) -> Finding:
        removed = change.kind is ChangeKind.deleted
        line = (
            None
            if removed
            else _first_changed_line(self.repo.show(self.base, change.path), self.repo.root / change.path)
        )
        return Finding(
            rule="release-removed" if removed else "release-changed",
            message=f"{change.path} belongs to a published release and was "
            + {ChangeKind.deleted: "removed", ChangeKind.added: "added"}.get(change.kind, "modified")
            + "; published releases are immutable",
            file=change.path,
            line=line,
            fix="restore the file; publish a new version instead, or yank this one with a signed yank.toml",
        )

    def _rebase_map(self, rel_dir: str) -> list[tuple[Path, str]]:
        return [
            (self.tmp / "base" / rel_dir, rel_dir + " (base)"),
            (self.tmp / "base", self.prefix + "(base)"),
        ]


class _NewRelease:
    """Every check of a release that does not exist at the base."""

    def __init__(
        self,
        owner: _IndexCheck,
        key: ReleaseKey,
        rel_dir: str,
        gate: TrustGate,
        config: RegistryConfig,
        result: CheckResult,
    ) -> None:
        self.o, self.key, self.rel_dir, self.gate, self.config, self.result = (
            owner,
            key,
            rel_dir,
            gate,
            config,
            result,
        )
        self.dir = owner.repo.root / rel_dir
        self.manifest_rel = f"{rel_dir}/plugin.toml"
        self.raw = (self.dir / "plugin.toml").read_bytes()
        self.doc = _toml(self.raw)
        try:
            self.lines: Callable[[str], int | None] = parse_toml(self.dir / "plugin.toml", self.raw).line_of
        except TomlSyntaxError:
            self.lines = lambda _field: None  # validate reports the syntax error with its position
        self.checks: dict[str, bool] = result.data["checks"]
        result.data["kind"] = "recheck" if owner.options.full else "new"

    def add(
        self,
        rule: str,
        message: str,
        *,
        field: str | None = None,
        fix: str | None = None,
        severity: Severity = Severity.error,
        file: str | None = None,
        line: int | None = None,
    ) -> None:
        self.result.findings.append(
            Finding(
                rule=rule,
                message=message,
                severity=severity,
                file=file or self.manifest_rel,
                line=line if line is not None else (self.lines(field) if field else None) or 1,
                field=field,
                fix=fix,
            )
        )

    def step(self, name: str, fn: Callable[[], None]) -> None:
        before = sum(1 for f in self.result.findings if f.severity is Severity.error)
        try:
            fn()
        except RegistryToolError as err:
            self.result.findings.append(
                _finding_from_error(err, self.o.repo.root, self.o._rebase_map(self.rel_dir))
            )
        except Exception as err:  # fail closed with a finding, not a traceback
            self.add(
                "internal-error",
                f"the {name} check crashed: {type(err).__name__}: {err}",
                fix="report this to the registry-tool maintainers; the release cannot pass until it runs",
            )
        after = sum(1 for f in self.result.findings if f.severity is Severity.error)
        self.checks[name] = after == before

    def run(self) -> None:
        self.step("files", self.files)
        self.step("manifest", self.validate)
        self.step("digest", self.digest)
        self.checks["digest"] = not any(f.rule in _DIGEST_RULES for f in self.result.findings)
        self.step("signature", self.signature)
        self.step("version order", self.version_order)
        previous = self.previous_release()
        self.step("escalation", lambda: self.escalation(previous))
        if self.checks["manifest"] and self.checks["digest"]:
            self.step("smoke", lambda: self.smoke(previous))
        if (self.dir / "yank.toml").exists():
            self.step("yank signature", self.yank)

    # -- the checks

    def yank(self) -> None:
        self.result.findings.extend(_check_yank(self.o.repo.root, self.rel_dir, self.key, self.gate))

    def files(self) -> None:
        allowed = {"plugin.toml", "yank.toml"}
        artifact = self.doc.get("artifact", {})
        if isinstance(artifact, dict) and isinstance(artifact.get("file"), str):
            allowed.add(PurePosixPath(artifact["file"]).as_posix())
        for test in self.doc.get("tests", []) if isinstance(self.doc.get("tests"), list) else []:
            for key in ("input_file", "expect_file"):
                if isinstance(test, dict) and isinstance(test.get(key), str):
                    allowed.add(PurePosixPath(test[key]).as_posix())
        for path in sorted(self.dir.rglob("*")):
            rel = path.relative_to(self.dir).as_posix()
            repo_rel = f"{self.rel_dir}/{rel}"
            if path.is_dir() or rel in allowed or _is_signature_of(rel, allowed):
                continue
            self.add(
                "unexpected-file",
                f"{repo_rel} is not referenced by plugin.toml, so no signature covers it",
                file=repo_rel,
                line=1,
                fix="remove the file, or reference it from plugin.toml and re-sign",
            )

    def validate(self) -> None:
        checked = validate_release(self.dir, self.config)
        rebase = self.o._rebase_map(self.rel_dir)
        self.result.findings.extend(_rebase_finding(f, self.o.repo.root, rebase) for f in checked.findings)
        self.result.data["validate"] = checked.data

    def digest(self) -> None:
        """Fail closed on the pin: validate reports mismatches, but only as one rule among many."""
        if any(f.rule in _DIGEST_RULES for f in self.result.findings):
            return
        artifact = self.doc.get("artifact", {})
        file = artifact.get("file") if isinstance(artifact, dict) else None
        wasm = self.dir / file if isinstance(file, str) else None
        if wasm is None or not wasm.is_file() or wasm.is_symlink():
            self.add(
                "artifact-digest",
                f"the artifact {file!r} is missing",
                field="artifact.file",
                fix="commit the .wasm file named by [artifact] file",
            )
            return
        data = wasm.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if artifact.get("sha256") != digest:
            self.add(
                "artifact-digest",
                f"{file} has sha256 {digest}, plugin.toml pins {artifact.get('sha256')!r}",
                field="artifact.sha256",
                fix="pin the artifact and re-sign: `registry-tool sign` on the release",
            )
        elif artifact.get("size") != len(data):
            self.add(
                "artifact-digest",
                f"{file} is {len(data)} bytes, plugin.toml pins {artifact.get('size')!r}",
                field="artifact.size",
                fix="run `registry-tool sign` on the release",
            )
        self.result.data["artifact_sha256"] = digest

    def signature(self) -> None:
        verdict = self.gate.verify_release(
            self.dir / "plugin.toml", self.manifest_rel, self.key.name, self.key.version
        )
        self.result.findings.extend(verdict.findings)
        self.result.data["signers"] = verdict.signers

    def version_order(self) -> None:
        if self.o.options.full:
            return  # a re-check judges releases as they are, not the order they arrived in
        try:
            mine = Version(self.key.version)
        except ValueError:
            return  # validate reports a non-semver version
        existing = self.o._base_versions(self.key.name)
        if existing and mine < existing[-1] and not self.config.allow_backports:
            self.add(
                "version-backwards",
                f"version {mine} is lower than the published {existing[-1]} of {self.key.name}",
                field="plugin.version",
                fix=f"publish a version above {existing[-1]}, or set [index] allow_backports = true in "
                "registry.toml (a registry maintainer's decision)",
            )

    def previous_release(self) -> Path | None:
        """The highest published version below this one, exported from the base."""
        try:
            mine = Version(self.key.version)
        except ValueError:
            return None
        existing = self.o._base_versions(self.key.name)
        if not existing:
            return None
        lower = [v for v in existing if v < mine]
        if not lower and self.o.options.full:
            return None
        # A backport below every published version is compared with its nearest neighbour.
        prev = lower[-1] if lower else existing[0]
        self.result.data["previous"] = str(prev)
        return self.o._export_base(self.o.path("plugins", self.key.name, str(prev)))

    def escalation(self, previous: Path | None) -> None:
        if previous is None:
            # Not an escalation, but reviewers must see what a new plugin asks for.
            requested = sorted(_granted(self.doc))
            self.result.data["escalations"] = [f"new plugin requests permission {p}" for p in requested]
            for perm in requested:
                self.add(
                    "new-permission",
                    f"the new plugin requests permission '{perm}'",
                    field=f"permissions.{perm}",
                    severity=Severity.notice,
                    fix="a reviewer confirms the plugin needs it",
                )
            return
        old_doc = _toml((previous / "plugin.toml").read_bytes())
        severity = Severity.warning if self.o.options.allow_escalation else Severity.error
        if self.o.options.full:
            severity = Severity.notice  # published escalations were approved when they merged
        approved = " (approved with --allow-escalation)" if self.o.options.allow_escalation else ""
        fix = (
            "a registry maintainer reviews the new capability and re-runs the check with the approval label "
            "(--allow-escalation)"
        )
        escalations: list[str] = []
        for perm in sorted(_granted(self.doc) - _granted(old_doc)):
            escalations.append(f"permission {perm}")
            self.add(
                "permission-escalation",
                f"ESCALATION: permission '{perm}' is new since {self.result.data['previous']}{approved}",
                field=f"permissions.{perm}",
                fix=fix,
                severity=severity,
            )
        new_imports = _imports(self.dir, self.doc, self.config) - _imports(previous, old_doc, self.config)
        for module, name in sorted(new_imports):
            escalations.append(f"import {module}.{name}")
            self.add(
                "import-escalation",
                f"ESCALATION: the module imports {module}.{name}, which "
                f"{self.result.data['previous']} did not{approved}",
                field="artifact.file",
                fix=fix,
                severity=severity,
            )
        self.result.data["escalations"] = escalations

    def smoke(self, previous: Path | None) -> None:
        outcomes = self._run_smoke(self.dir)
        tests = [o.to_json() for o in outcomes]
        self.result.data["tests"] = tests
        for i, outcome in enumerate(outcomes):
            if not outcome.passed:
                self.add(
                    "smoke-failed",
                    f"test '{outcome.name}' ended in {outcome.outcome.value}, expected {outcome.expected}"
                    + (f": {outcome.detail}" if outcome.detail else ""),
                    field=f"tests[{i}]",
                    fix="run `registry-tool smoke` on the release locally and fix the plugin or the test",
                )
        if previous is None or not all(o.passed for o in outcomes):
            return
        try:
            before = {o.name: o for o in self._run_smoke(previous)}
        except RegistryToolError:
            return  # the previous release no longer runs under today's rules: nothing to compare
        self.regressions(outcomes, before)

    def regressions(self, outcomes: list[TestOutcome], before: dict[str, TestOutcome]) -> None:
        threshold = float(self.config.regression_threshold)
        for i, outcome in enumerate(outcomes):
            old = before.get(outcome.name)
            if old is None:
                continue
            for rule, attr, unit in (
                ("fuel-regression", "fuel_consumed", "fuel"),
                ("memory-regression", "peak_memory_bytes", "bytes of peak memory"),
            ):
                new_v, old_v = getattr(outcome, attr), getattr(old, attr)
                if not new_v or not old_v or new_v <= old_v * (1 + threshold):
                    continue
                growth = new_v / old_v - 1
                self.add(
                    rule,
                    f"test '{outcome.name}' uses {new_v:,} {unit}, {growth:.0%} more than "
                    f"{self.result.data['previous']} ({old_v:,}); threshold {threshold:.0%}",
                    field=f"tests[{i}]",
                    severity=Severity.warning,
                    fix="check for an accidental slowdown or leak; the warning does not block the merge",
                )
                self.result.data.setdefault("regressions", []).append(
                    {"test": outcome.name, "metric": attr, "previous": old_v, "new": new_v, "growth": growth}
                )

    def _run_smoke(self, release_dir: Path) -> list[TestOutcome]:
        manifest = load_manifest(release_dir / "plugin.toml", self.config)
        if self.o.options.smoke is not None:
            return self.o.options.smoke(manifest, self.config)
        return list(smoke_release(manifest, self.config))


# ---------------------------------------------------------------------------- helpers


def _check_yank(root: Path, rel_dir: str, key: ReleaseKey, gate: TrustGate) -> list[Finding]:
    yank_rel = f"{rel_dir}/yank.toml"
    yank = root / yank_rel
    if not yank.is_file():
        return [
            Finding(
                rule="yank-invalid",
                message="a yank signature was added without yank.toml",
                file=yank_rel,
                fix="add yank.toml with [yank] name, version and reason",
            )
        ]
    try:
        src = parse_toml(yank, yank.read_bytes())
    except TomlSyntaxError as err:
        return [
            Finding(
                rule="yank-invalid",
                message=f"yank.toml is not valid TOML: {err}",
                file=yank_rel,
                line=err.line,
                column=err.column,
                fix="correct the TOML syntax",
            )
        ]
    findings: list[Finding] = []
    table = src.data.get("yank")
    table = table if isinstance(table, dict) else {}
    for field_, expected in (("name", key.name), ("version", key.version)):
        if table.get(field_) != expected:
            findings.append(
                Finding(
                    rule="yank-invalid",
                    message=f"yank.{field_} is {table.get(field_)!r}, expected {expected!r}",
                    file=yank_rel,
                    line=src.line_of(f"yank.{field_}") or 1,
                    field=f"yank.{field_}",
                    fix="a yank names exactly the release folder it is in",
                )
            )
    if not isinstance(table.get("reason"), str) or not table["reason"].strip():
        findings.append(
            Finding(
                rule="yank-invalid",
                message="yank.reason is missing",
                file=yank_rel,
                line=src.line_of("yank") or 1,
                field="yank.reason",
                fix='say why, e.g. reason = "CVE-2026-1234: ..."',
            )
        )
    verdict = gate.verify_release(yank, yank_rel, key.name, key.version)
    findings.extend(verdict.findings)
    return findings


def _symlinks(root: Path, rel_dir: str) -> list[str]:
    """Repo-relative paths of symlinks on the way to, or inside, ``rel_dir``."""
    found: list[str] = []
    parts = PurePosixPath(rel_dir).parts
    for i in range(1, len(parts) + 1):
        if (root.joinpath(*parts[:i])).is_symlink():
            return ["/".join(parts[:i])]
    for dirpath, dirnames, filenames in os.walk(root / rel_dir, followlinks=False):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            if path.is_symlink():
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


def _toml(raw: bytes) -> dict[str, Any]:
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}  # validate_release reports the syntax error with its position


def _granted(doc: dict[str, Any]) -> set[str]:
    perms = doc.get("permissions", {})
    return {k for k, v in perms.items() if v is True} if isinstance(perms, dict) else set()


def _imports(release_dir: Path, doc: dict[str, Any], config: RegistryConfig) -> set[tuple[str, str]]:
    artifact = doc.get("artifact", {})
    file = artifact.get("file") if isinstance(artifact, dict) else None
    if not isinstance(file, str) or not (release_dir / file).is_file():
        return set()
    info = inspect_wasm((release_dir / file).read_bytes(), config.features)
    return {(i.module, i.name) for i in info.imports}


def _is_signature_of(rel: str, signed: set[str]) -> bool:
    for base in signed:
        if rel == f"{base}.minisig":
            return True
        rest = rel[len(base) :] if rel.startswith(base + ".") else ""
        if rest.endswith(".minisig") and len(rest) == len(".0123456789ABCDEF.minisig"):
            return True
    return False


def _first_changed_line(old: bytes | None, new_path: Path) -> int:
    """The first line where the file differs from the base (line 1 for binaries)."""
    try:
        new = new_path.read_bytes()
    except OSError:
        return 1
    if old is None or b"\0" in old[:8000] or b"\0" in new[:8000]:
        return 1
    for lineno, (a, b) in enumerate(zip(old.splitlines(), new.splitlines(), strict=False), start=1):
        if a != b:
            return lineno
    return min(len(old.splitlines()), len(new.splitlines())) + 1


def _rebase_finding(finding: Finding, repo_root: Path, rebase: list[tuple[Path, str]]) -> Finding:
    """Findings of other parts name files as they saw them; annotations need repo-relative paths."""
    if not finding.file:
        return finding
    path = Path(finding.file)
    absolute = (path if path.is_absolute() else Path.cwd() / path).resolve()
    for prefix, label in rebase:
        try:
            return replace(finding, file=f"{label}/{absolute.relative_to(prefix.resolve()).as_posix()}")
        except ValueError:
            continue
    try:
        return replace(finding, file=absolute.relative_to(repo_root.resolve()).as_posix())
    except ValueError:
        return finding


def _finding_from_error(err: RegistryToolError, repo_root: Path, rebase: list[tuple[Path, str]]) -> Finding:
    return _rebase_finding(Finding.from_error(err), repo_root, rebase)
