"""``ci check``: judge an index pull request by what it changes between REF and HEAD.

Everything a PR could use to authorise itself is read AS IT IS AT REF (the base): the root
(who may sign what), registry.toml (permissions, limits, backport policy) and every existing
release.  The HEAD side is the working tree of the checkout.  Only changed releases are
looked at, so the cost is O(changed) whatever the size of the index, except for the rare pull
request that changes what judges every release: a new root changing delegations, thresholds or
revocations re-verifies the published signatures, a new registry.toml re-validates every release.

Rule ids (stable; documented in docs/ci.md) are the keys of ``RULES``; findings from the
manifest, signing and trust parts keep their own rule ids.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from semantic_version import Version

from registry_tool.ci.gitdiff import Change, ChangeKind, GitRepo
from registry_tool.ci.model import APPROVAL_MIN_HEX, RULES, CheckOptions, ReleaseKey, Shard, SmokeFn
from registry_tool.ci.release import (
    NewRelease,
    check_yank,
    finding_from_error,
    precedence,
    signature_findings,
)
from registry_tool.ci.trustgate import RootChange, TrustGate
from registry_tool.errors import INTERNAL_ERROR_RULE, RegistryToolError, UsageError
from registry_tool.manifest import RegistryConfig, load_registry_config
from registry_tool.manifest.config import MAX_CONFIG_BYTES
from registry_tool.manifest.dependencies import IndexTree, stranded_dependents
from registry_tool.manifest.errors import RegistryConfigError
from registry_tool.manifest.model import Manifest
from registry_tool.report import CheckResult, Finding, Report, Severity
from registry_tool.sandbox import TestOutcome
from registry_tool.trust.root import Root

__all__ = ["RULES", "CheckOptions", "ReleaseKey", "Shard", "SmokeFn", "check_pull_request", "crash_report"]

# What a yank may add to a published release: yank.toml and its signatures (plain or per key id, as
# signing.signature_paths finds them); any other name is an unsigned file in an immutable folder.
from registry_tool.format.rules import is_signature_of, is_yank_file, root_file_version, root_number


def check_pull_request(checkout: Path, index_dirs: list[Path], options: CheckOptions) -> Report:
    """Check what HEAD changes under each index directory since ``options.base``."""
    repo = GitRepo.discover(checkout)
    base = repo.resolve(options.base)
    now = options.now or datetime.now(UTC)
    report = Report(command="ci check")
    if options.allow_escalation_at is not None:
        options, approval = _bind_approval(repo, options)
        if approval.findings and options.shard.first:
            report.results.append(approval)
    if options.shard.first and not options.full:
        workflows = _workflow_changes(repo, base)
        if workflows.findings:
            report.results.append(workflows)
    rels = [_repo_relative(repo, d) for d in index_dirs or [_default_index(repo, base)]]
    report.default_file = registry_toml_of(rels[0])
    if options.shard.first:
        dirty = _uncommitted(repo, [scope for rel in rels for scope in index_scope(rel)])
        if dirty.findings:
            report.results.append(dirty)
        if not options.full:
            stale = _base_moved(repo, base, [scope for rel in rels for scope in index_scope(rel)])
            if stale.findings:
                report.results.append(stale)
        attributes = _attribute_changes(repo, base, rels)
        if attributes.findings:
            report.results.append(attributes)
    for rel in rels:
        with _IndexCheck(repo, base, rel, options, now) as check:
            report.results.extend(check.run())
    return report


# A publication time before any revocation: what counts then counts for every release.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)

_APPROVED_COMMIT = re.compile(f"[0-9a-f]{{{APPROVAL_MIN_HEX},40}}")


def _bind_approval(repo: GitRepo, options: CheckOptions) -> tuple[CheckOptions, CheckResult]:
    """``--allow-escalation-at SHA`` approves escalations of exactly that HEAD commit."""
    result = CheckResult(subject="escalation approval")
    approved = (options.allow_escalation_at or "").strip().lower()
    head = repo.resolve("HEAD")
    if not _APPROVED_COMMIT.fullmatch(approved):
        # A shorter prefix is cheap to grind a later commit for; anything else is no commit.
        raise UsageError(
            f"--allow-escalation-at {approved[:60]!r} names no commit: it takes {APPROVAL_MIN_HEX} to 40 "
            "hex digits of the approved head commit",
            fix=f"pass the approved commit's first {APPROVAL_MIN_HEX} or more hex digits, as the label "
            f"allow-escalation@<sha> gives them (HEAD is {head[:APPROVAL_MIN_HEX]})",
        )
    if head.startswith(approved):
        return replace(options, allow_escalation=True), result
    result.findings.append(
        Finding(
            rule="approval-stale",
            message=f"the escalation approval names commit {approved[:40]!r}, but HEAD is {head[:12]}: "
            "commits pushed after an approval are not approved with it",
            severity=Severity.warning,
            fix=f"a registry maintainer reviews the new commits and approves {head[:12]} "
            f"(label allow-escalation@{head[:APPROVAL_MIN_HEX]}: at least {APPROVAL_MIN_HEX} hex digits)",
        )
    )
    return options, result


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
                line=change.line,
                fix="send workflow changes in their own pull request",
            )
        )
    return result


def index_scope(rel: str) -> list[str]:
    """The paths that are the index ``rel`` (repository-relative; "" for the repository root).

    An index at the repository root shares it with README, .github/...: only its own parts count.
    """
    return [rel] if rel else ["plugins", "root", "registry.toml"]


_BEHIND_SHOWN = 5


def _base_moved(repo: GitRepo, base: str, pathspecs: list[str]) -> CheckResult:
    """HEAD must hold the base's index: the check reads the index at HEAD as base plus the PR.

    Dependencies are resolved, published releases re-validated under a new registry.toml or root,
    and permission graphs compared in HEAD's tree.  A branch that left the base before other
    releases landed lacks them there, and its verdict would not be the merged index's.
    """
    result = CheckResult(subject="pull request base")
    moved = repo.behind(base, pathspecs)
    if moved:
        shown = ", ".join(moved[:_BEHIND_SHOWN]) + (
            f" and {len(moved) - _BEHIND_SHOWN} more" if len(moved) > _BEHIND_SHOWN else ""
        )
        result.findings.append(
            Finding(
                rule="base-moved",
                message=f"the base {base[:12]} changed {len(moved)} index file(s) since this branch left "
                f"it ({shown}): HEAD's index lacks them, so this check would not judge the index the "
                "pull request merges into",
                file=moved[0],
                line=None,
                fix="merge the base branch into the pull request (or rebase onto it) and push; the "
                "check then runs on the index as it will be after the merge",
            )
        )
    return result


def _uncommitted(repo: GitRepo, pathspecs: list[str]) -> CheckResult:
    """The diff is REF...HEAD but files are read from the working tree: they must agree."""
    result = CheckResult(subject="working tree")
    paths = repo.uncommitted(pathspecs)
    if paths:
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        result.findings.append(
            Finding(
                rule="uncommitted-changes",
                message=f"{len(paths)} uncommitted change(s): files are read from the working tree, the "
                f"diff is taken from the commits, so this check is not the pull request's: {shown}",
                severity=Severity.warning,
                fix="commit or stash them, then run the check again",
            )
        )
    return result


def _default_index(repo: GitRepo, base: str) -> Path:
    """``index/`` when the base has index/registry.toml, else the repository root.

    Deleting it (or replacing ``index/`` with a link) in the PR must not move the check to the
    repository root, where nothing changed.
    """
    if repo.show(base, "index/registry.toml") is not None:
        return repo.root / "index"
    return repo.root / "index" if (repo.root / "index" / "registry.toml").is_file() else repo.root


def _repo_relative(repo: GitRepo, path: Path) -> str:
    # Resolve the parent only: an index folder replaced by a link to elsewhere is still the
    # index folder of this checkout (whose link the check reports), not "outside the checkout".
    absolute = Path(os.path.normpath(path if path.is_absolute() else Path.cwd() / path))
    absolute = absolute.parent.resolve() / absolute.name if absolute.name else absolute.resolve()
    try:
        rel = absolute.relative_to(repo.root.resolve()).as_posix()
    except ValueError:
        raise UsageError(f"{path} is not inside the git checkout {repo.root}", where=str(path)) from None
    return "" if rel == "." else rel


# Attributes that make git rewrite a file's bytes between the repository and the checkout: any of
# them on an index file breaks its signature (or the digest of a .wasm) for whoever checks it out.
_REWRITING_ATTRIBUTES = ("text", "eol", "crlf", "filter", "ident", "working-tree-encoding")


def _attribute_changes(repo: GitRepo, base: str, rels: list[str]) -> CheckResult:
    """Check that no git attribute makes git convert index files on checkout.

    A changed .gitattributes is checked against every tracked index file, anywhere (attributes
    apply to subfolders: ``index/** text eol=crlf`` breaks every signature); the files the pull
    request adds or changes are checked whatever .gitattributes it touches, since a pattern that
    matched nothing when it landed (``index/plugins/x/2.0.0/*.wasm``) applies to the release that
    comes later.
    """
    result = CheckResult(subject="git attributes")
    scopes = [scope for rel in rels for scope in index_scope(rel)]
    changed = [c for c in repo.changes(base, [":(glob)**/.gitattributes"])]
    if changed:
        files = repo.tracked_files(scopes)
    else:
        files = [c.path for c in repo.changes(base, scopes) if c.kind is not ChangeKind.deleted]
    for path, attribute, value in repo.check_attributes(files, _REWRITING_ATTRIBUTES):
        if value in ("unspecified", "unset") or (attribute == "text" and value == "unset"):
            continue
        source = "a changed .gitattributes" if changed else "a .gitattributes"
        result.findings.append(
            Finding(
                rule="index-attributes",
                message=f"{path} gets git attribute {attribute}={value} from {source}: "
                "git would rewrite its bytes on checkout and break its signature or digest",
                file=changed[0].path if changed else path,
                line=1,
                fix="index files are stored byte for byte; drop attributes that match them "
                "(or mark them `-text`)",
            )
        )
        if len(result.findings) >= 20:
            break  # one rule, enough examples
    return result


class _IndexCheck:
    """One index directory: classify the changes, then check each group."""

    def __init__(self, repo: GitRepo, base: str, index: str, options: CheckOptions, now: datetime) -> None:
        self.repo, self.base, self.index, self.options, self.now = repo, base, index, options, now
        self.prefix = f"{index}/" if index else ""
        self._tmp = tempfile.TemporaryDirectory(prefix="registry-tool-ci-")
        self.tmp = Path(self._tmp.name)
        self._plugin_names: set[str] | None = None
        self._new_names: set[str] = set()
        self._new_versions: defaultdict[str, set[str]] = defaultdict(set)

    def __enter__(self) -> _IndexCheck:
        return self

    def __exit__(self, *exc: object) -> None:
        self._tmp.cleanup()

    # ------------------------------------------------------------------ layout

    def path(self, *parts: str) -> str:
        """Repo-relative POSIX path of ``parts`` inside the index."""
        return self.prefix + "/".join(parts)

    def run(self) -> list[CheckResult]:
        scope = index_scope(self.index)
        if self.options.full:
            head = self.repo.list_files("HEAD", self.path("plugins"))
            changes = [Change(p, ChangeKind.added) for p in head]
        else:
            changes = self.repo.changes(self.base, scope)
        releases: dict[ReleaseKey, list[Change]] = defaultdict(list)
        root_changes: list[Change] = []
        config_changes: list[Change] = []
        index_level = CheckResult(subject=f"{self.index or '.'} (index files)")
        links = self.repo.gitlinks("HEAD", scope)  # the working tree shows a submodule as a folder
        for change in changes:
            if change.path in links and change.kind is not ChangeKind.deleted:
                index_level.findings.append(self._gitlink(change))
                continue
            parts = PurePosixPath(change.path[len(self.prefix) :]).parts
            if parts == ("plugins", ".gitkeep"):
                continue  # init's placeholder for the empty folder: the build never reads it
            if len(parts) >= 4 and parts[0] == "plugins":
                releases[ReleaseKey(parts[1], parts[2])].append(change)
            elif parts and parts[0] == "root":
                root_changes.append(change)
            elif parts == ("registry.toml",):
                config_changes.append(change)
            elif change.path == self.index:
                index_level.findings.append(self._index_replaced(change))
            else:
                index_level.findings.append(self._outside(change))
        # Every shard sees every name the PR adds: squatting between two new names is found too.
        self._new_names = {
            k.name for k, cs in releases.items() if any(c.kind is not ChangeKind.deleted for c in cs)
        }
        for k, cs in releases.items():
            if any(c.kind is not ChangeKind.deleted for c in cs):
                self._new_versions[k.name].add(k.version)
        results: list[CheckResult] = []
        gate = TrustGate.at_ref(self.repo, self.base, self.path("root"), self.now)
        config = self._base_config()
        too_many = self._too_many_releases(releases, config)
        if too_many is not None:
            # No shard smoke-runs a part of a pull request that cannot pass; the first reports it.
            return [too_many] if self.options.shard.first else []
        # Every shard judges the root change (it is small): a root the pull request adds also
        # judges its releases.  Only the first shard reports it.
        head_root: Root | None = gate.root
        if root_changes:
            try:
                root_result = self._check_root(gate, root_changes)
                accepted = root_result.data.pop("accepted_root", None)
                head_root = accepted if isinstance(accepted, Root) else head_root
                results.append(root_result)
            except RegistryToolError:
                raise
            except Exception as err:
                crashed = CheckResult(subject="root", file=self.path("root"))
                crashed.findings.append(internal_error_finding("the root check", err, self.path("root")))
                results.append(crashed)
                head_root = None
        if self.options.shard.first:
            for change in config_changes:
                index_level.findings.extend(self._config_change(change, head_root))
            if not config_changes and head_root is not None and head_root.version > gate.root.version:
                index_level.findings.extend(self._pin_without_config(head_root))
            if index_level.findings:
                results.append(index_level)
        else:
            results.clear()
        # Releases are judged by the base root; with a new root in the same pull request, by that
        # one too: a release signed by a key the new root revokes would otherwise pass here and
        # stop the next build.
        later = (
            TrustGate(head_root, self.now, "that this pull request adds")
            if head_root is not None and head_root.version > gate.root.version
            else None
        )
        if later is not None and self.options.shard.first:
            orphaned = self._orphaned_by_revocation(gate.root, later, set(releases))
            if orphaned.findings:
                results.append(orphaned)
        for position, key in enumerate(sorted(releases, key=lambda k: (k.name, k.version))):
            if self.options.shard.owns(position):
                results.append(self._check_release(key, releases[key], gate, config, later))
        return results

    def _orphaned_by_revocation(self, base: Root, later: TrustGate, changed: set[ReleaseKey]) -> CheckResult:
        """Published releases the new root no longer accepts: the next build would refuse them.

        A revocation without keeping prior releases, a removed delegation, a raised threshold: such
        a release must be re-signed in the same pull request.  Runs only when the roots differ in
        what judges releases.  A release one of whose signers the new root revokes *keeping* prior
        releases is not judged here: that depends on its publication time, which only the registry
        records.
        """
        result = CheckResult(subject="root (published releases)", file=self.path("root"))
        if _release_rules(base) == _release_rules(later.root):
            return result
        kept = {r.key.key_id for r in later.root.revoked if r.keep_prior_releases}
        folder = self.path("plugins") + "/"
        for path in self.repo.list_files("HEAD", self.path("plugins")):
            parts = path[len(folder) :].split("/")
            if len(parts) != 3 or parts[2] not in ("plugin.toml", "yank.toml"):
                continue
            name, version, signed = parts
            rel = self.path("plugins", name, version, signed)
            if ReleaseKey(name, version) in changed and rel not in self._base_files(name, version):
                continue  # a new release or a new yank: judged under both roots as such
            verdict = later.verify_release(self.repo.root / rel, rel, name, version)
            if not verdict.findings:
                continue
            if signed == "plugin.toml":
                if kept & _signature_key_ids(self.repo.root / rel):
                    continue
                what = f"{name} {version}"
                fix = (
                    "have a current maintainer of the plugin re-sign it in this pull request (add "
                    "their plugin.toml signature), withdraw it (remove the release folder in this pull "
                    "request: docs/trust.md, incident response), or revoke with keep_prior_releases when "
                    "the key's earlier releases can be trusted"
                )
            else:
                # A yank's signatures never count once their key is revoked, keep_prior_releases or
                # not (trust.md 5.3): the build would refuse the index until the yank is re-signed.
                what = f"the yank of {name} {version}"
                fix = (
                    "have a current maintainer of the plugin re-sign the yank in this pull request "
                    f"(`registry-tool sign {self.path('plugins', name, version)} --yank --key KEY` adds "
                    "their yank.toml signature)"
                )
            result.findings.append(
                Finding(
                    rule="root-revocation",
                    message=f"{what} would no longer verify under root version "
                    f"{later.root.version}: {verdict.findings[0].message}",
                    file=rel,
                    line=1,
                    fix=fix,
                )
            )
        return result

    def _base_files(self, name: str, version: str) -> set[str]:
        return set(self.repo.list_files(self.base, self.path("plugins", name, version)))

    def _too_many_releases(
        self, releases: dict[ReleaseKey, list[Change]], config: RegistryConfig
    ) -> CheckResult | None:
        """The pull request adds more new releases than the base's ``[ci] max_new_releases``."""
        if self.options.full:
            return None
        # A folder counts once it adds anything but what a published release may take (a yank, a
        # plugin.toml signature): folders without a plugin.toml cost a tree walk and a finding each.
        new = [
            key
            for key, changes in releases.items()
            if any(c.kind is ChangeKind.added and not _may_join_published(c.path) for c in changes)
        ]
        if len(new) <= config.max_new_releases:
            return None
        result = CheckResult(subject=f"{self.index or '.'} (index files)")
        first = min(new, key=lambda k: (k.name, k.version))
        result.findings.append(
            Finding(
                rule="too-many-releases",
                message=f"this pull request adds {len(new)} releases; registry.toml at the base allows "
                f"{config.max_new_releases} per pull request ([ci] max_new_releases), and each is "
                "smoke-run",
                file=self.path("plugins", first.name, first.version, "plugin.toml"),
                line=1,
                fix=f"split it into pull requests of at most {config.max_new_releases} releases, or have a "
                "registry maintainer raise [ci] max_new_releases in a separate pull request",
            )
        )
        return result

    def _outside(self, change: Change) -> Finding:
        return Finding(
            rule="file-outside-plugin",
            message=f"{change.path} ({change.kind.name}) is outside every plugin release folder",
            file=change.path,
            line=change.line,
            fix=f"put plugin files under {self.path('plugins', '<name>', '<version>')}/ and send other "
            "changes in a separate pull request for the registry maintainers",
        )

    def _gitlink(self, change: Change) -> Finding:
        return Finding(
            rule="unexpected-file",
            message=f"{change.path} is a git submodule (gitlink): a recursive checkout would put another "
            "repository's files there, unchecked",
            file=change.path,
            line=1,
            fix="commit the files themselves; the index holds no submodules",
        )

    def _index_replaced(self, change: Change) -> Finding:
        return Finding(
            rule="unexpected-file",
            message=f"{change.path} ({change.kind.name}) replaces the index folder with a file or "
            "symbolic link",
            file=change.path,
            line=1,
            fix="restore the index folder; the check reads nothing behind links",
        )

    def _pin_without_config(self, head_root: Root) -> list[Finding]:
        """A new root pinning a registry.toml the pull request does not bring stops every build.

        The build obeys the newest root's pin; the config it pins must arrive in the same pull
        request as that root (or be the file already at HEAD).
        """
        pinned = head_root.registry_config_sha256
        rel = self.path("registry.toml")
        try:
            digest = hashlib.sha256(_read_config_file(self.repo.root / rel)).hexdigest()
        except ValueError:
            digest = None
        if pinned is None or digest == pinned:
            return []
        return [
            Finding(
                rule="config-pin",
                message=f"root version {head_root.version} pins registry.toml sha256 {pinned}, but "
                f"{rel} at HEAD "
                + (f"has sha256 {digest}" if digest else "cannot be read")
                + ": the build refuses an index whose registry.toml is not the one its root pins",
                file=self.path("root", f"{head_root.version}.root.json"),
                line=1,
                fix="change registry.toml in this pull request too (the new root and the file it pins "
                f"land together), or pin the current file: `registry-tool root pin-config {rel} --dir "
                f"{self.path('root')}` then `registry-tool root sign`",
            )
        ]

    def _config_change(self, change: Change, head_root: Root | None) -> list[Finding]:
        """Check a change of registry.toml, which defines the vocabulary, the limits and backports.

        A change must load (or every later check, validate and build fails: the registry is
        bricked) and must be pinned by a root that passed the root threshold (so it needs the root
        keys).
        """
        rel = change.path

        def invalid(message: str, line: int | None = 1, fix: str | None = None) -> Finding:
            return Finding(
                rule="config-invalid",
                message=message,
                file=rel,
                line=line,
                fix=fix or "restore registry.toml; after merge every check, validate and build would fail",
            )

        path = self.repo.root / rel
        if change.kind is ChangeKind.deleted or not os.path.lexists(path):
            return [invalid(f"{rel} was deleted", line=None)]
        try:
            data = _read_config_file(path)
        except ValueError as err:
            return [invalid(f"{rel} {err}")]
        target = self.tmp / "head" / "registry.toml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        try:
            config = load_registry_config(target)
        except RegistryConfigError as err:
            return [
                invalid(f"{rel} would not load: {f.message}", line=f.line or 1, fix=f.fix)
                for f in err.findings or [Finding("config", err.what)]
            ]
        digest = hashlib.sha256(data).hexdigest()
        if head_root is None or head_root.registry_config_sha256 != digest:
            pinned = head_root.registry_config_sha256 if head_root else None
            return [
                Finding(
                    rule="config-unauthorised",
                    message=f"{rel} changed to sha256 {digest}, but the root "
                    + (f"pins {pinned}" if pinned else "pins no registry.toml")
                    + ": permissions, limits and policy change only with the root threshold",
                    file=rel,
                    line=1,
                    fix="the root key holders pin it in a new root version: `registry-tool root pin-config "
                    f"{rel} --dir {self.path('root')}` then `registry-tool root sign`, in this pull "
                    "request or before it",
                )
            ]
        version = head_root.version
        base_name = self._base_config().name
        if config.name != base_name:
            # Every signed document names the registry: the build refuses a previous publication
            # of another name, and clients refuse a registry whose name changed.
            return [invalid(f"{rel} renames the registry from {base_name!r} to {config.name!r}", line=1)]
        broken = self._published_failing(config)
        if broken:
            return broken
        return [
            Finding(
                rule="config-change",
                message=f"registry.toml changed; root version {version} pins it (sha256 {digest[:16]}…); "
                "this check still used the base version",
                severity=Severity.notice,
                file=rel,
                line=1,
                fix="reviewers read the new permissions and limits; releases in the same pull request "
                "are judged by the base's",
            )
        ]

    def _published_failing(self, config: RegistryConfig) -> list[Finding]:
        """The releases at HEAD that the build would refuse under ``config`` (a new registry.toml).

        Published releases are immutable: a lower limit, another host range or a withdrawn
        permission that one of them fails would stop every build until the config is reverted.
        """
        from registry_tool.manifest.validate import NEW_RELEASE_RULES, check_release

        found: list[Finding] = []
        folder = self.path("plugins") + "/"
        base = self._base_config()
        changed: list[tuple[str, Manifest]] = []
        for path in self.repo.list_files("HEAD", self.path("plugins")):
            parts = path[len(folder) :].split("/")
            if len(parts) != 3 or parts[2] != "plugin.toml":
                continue
            rel_dir = self.path("plugins", parts[0], parts[1])
            checked = check_release(self.repo.root / rel_dir, config)
            errors = [
                f
                for f in checked.result.findings
                if f.severity is Severity.error and f.rule not in NEW_RELEASE_RULES
            ]
            manifest = checked.manifest
            if not errors and manifest is not None and _limits_changed(manifest, base, config):
                changed.append((rel_dir, manifest))
            if errors and len(found) == _MAX_CONFIG_FINDINGS:
                found.append(
                    Finding(
                        rule="config-invalid",
                        message="more releases would fail every build under the new registry.toml "
                        f"(the first {_MAX_CONFIG_FINDINGS} are listed)",
                        file=self.path("registry.toml"),
                        line=1,
                        fix="keep registry.toml compatible with every published release",
                    )
                )
                break
            if errors:
                found.append(
                    Finding(
                        rule="config-invalid",
                        message=f"{parts[0]} {parts[1]} would fail every build under the new "
                        f"registry.toml: [{errors[0].rule}] {errors[0].message}",
                        file=f"{rel_dir}/plugin.toml",
                        line=1,
                        fix="keep registry.toml compatible with every published release (they are "
                        "immutable): raise limits, keep host versions and permissions they use",
                    )
                )
        return found or self._smoke_under(config, base, changed)

    def _smoke_under(
        self, config: RegistryConfig, base: RegistryConfig, changed: list[tuple[str, Manifest]]
    ) -> list[Finding]:
        """Smoke-run the releases whose effective limits the new registry.toml changes.

        Validation cannot tell whether a test still passes under other limits: a lower fuel,
        memory, time or stack may cut it short, and a higher one may let a test that expects
        ``out_of_fuel`` or ``memory_limit`` (or a module that checks ``memory.grow``) run on.  The
        next build's smoke run would refuse a published (immutable) release that no longer passes.
        """
        if not changed:
            return []
        rel = self.path("registry.toml")
        if len(changed) > base.max_new_releases:
            return [
                Finding(
                    rule="config-invalid",
                    message=f"the new registry.toml changes the limits of {len(changed)} releases, each to "
                    f"be smoke-run again; at most {base.max_new_releases} per pull request "
                    "([ci] max_new_releases at the base)",
                    file=rel,
                    line=1,
                    fix="raise [ci] max_new_releases first (its own pull request, pinned by the root) so "
                    "this one may re-run them all, or keep the limits published releases run under",
                )
            ]
        found: list[Finding] = []
        for rel_dir, manifest in changed:
            try:
                outcomes = (self.options.smoke or _smoke_release)(manifest, config)
            except RegistryToolError as err:
                outcomes, failed = [], err.what
            else:
                failed = next(
                    (f"test '{o.name}' ended in {o.outcome.value}" for o in outcomes if not o.passed), ""
                )
            if failed:
                found.append(
                    Finding(
                        rule="config-invalid",
                        message=f"{manifest.name} {manifest.version} would fail its smoke tests under the "
                        f"new registry.toml's limits: {failed}",
                        file=f"{rel_dir}/plugin.toml",
                        line=1,
                        fix="keep the limits published releases were published under (they are "
                        "immutable): restore [limits.default] / [limits.max]",
                    )
                )
        return found

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

    def plugin_names(self) -> set[str]:
        """Plugin names at the base and those this pull request adds (squatting compares with all)."""
        if self._plugin_names is None:
            self._plugin_names = set(self.repo.list_dirs(self.base, self.path("plugins"))) | self._new_names
        return self._plugin_names

    def case_twins(self, name: str, version: str) -> list[str]:
        """Release folders of ``name`` (at the base or in the pull request) equal to ``version`` but for case.

        A checkout or mirror on a case-insensitive file system merges them.
        """
        folded = version.lower()
        others = set(self.repo.list_dirs(self.base, self.path("plugins", name))) | self._new_versions[name]
        return sorted(v for v in others if v != version and v.lower() == folded)

    def export_base(self, rel_dir: str) -> Path:
        dest = self.tmp / "base" / rel_dir
        self.repo.export(self.base, rel_dir, dest)
        return dest

    def base_versions(self, name: str) -> list[Version]:
        found: list[Version] = []
        for entry in self.repo.list_dirs(self.base, self.path("plugins", name)):
            try:
                found.append(Version(entry))
            except ValueError:
                continue  # not a release folder; validate reports it elsewhere
        return sorted(found, key=precedence)  # Version's own order is partial (+build is incomparable)

    # ------------------------------------------------------------------ root

    def _check_root(self, gate: TrustGate, changes: list[Change]) -> CheckResult:
        root_dir = self.path("root")
        result = CheckResult(subject="root", file=root_dir)
        published = set(self.repo.list_files(self.base, root_dir))
        for change in changes:
            name = PurePosixPath(change.path).name
            # Only files directly in root/ are root metadata: a nested root/x/3.root.json is none.
            nested = PurePosixPath(change.path).parent != PurePosixPath(root_dir)
            version = None if nested else root_number(name)
            if change.path not in published and version is None:
                result.findings.append(
                    Finding(
                        rule="unexpected-file",
                        message=f"{change.path} is not root metadata (<N>.root.json) or a signature of it"
                        + (" directly in the root folder" if nested else ""),
                        file=change.path,
                        line=1,
                        fix="remove the file from the root folder",
                    )
                )
            elif change.path not in published and version is not None and version <= gate.root.version:
                result.findings.append(
                    Finding(
                        rule="root-immutable",
                        message=f"{change.path} adds a file to published root version {version}",
                        file=change.path,
                        line=1,
                        fix="never edit a published root version; add the next version N+1 instead",
                    )
                )
            elif (
                change.path not in published
                and version is not None
                and root_file_version(name) is None  # a signature of a version above the base's
                and not (self.repo.root / root_dir / f"{version}.root.json").is_file()
            ):
                # Merged alone, it would sit among the files of root version N before N exists and
                # break (or be read into) the owners' real N later.
                result.findings.append(
                    Finding(
                        rule="root-signature",
                        message=f"{change.path} signs root version {version}, which this pull request "
                        "does not add",
                        file=change.path,
                        line=1,
                        fix=f"add {version}.root.json with its signatures in one pull request, or remove "
                        "the file",
                    )
                )
            if change.path in published:
                result.findings.append(
                    Finding(
                        rule="root-immutable",
                        message=f"published root file {change.path} was {change.kind.name}",
                        file=change.path,
                        line=change.line,
                        fix="never edit a published root version; add the next version N+1 instead",
                    )
                )
        try:
            links = _symlinks(self.repo.root, root_dir)
        except OSError as err:
            fix = "the root folder holds only <N>.root.json files and their signatures"
            result.findings.append(_unreadable(root_dir, err, root_dir, None, fix))
            result.data["root_change"] = "root folder cannot be read"
            return result
        if links:
            fix = "commit root metadata itself; links could point outside the root folder"
            result.findings.extend(_link_findings(links, fix))
            result.data["root_change"] = "root folder holds symbolic links (not read)"
            return result
        change_info: RootChange = gate.check_new_root(self.repo.root / root_dir, root_dir)
        result.findings.extend(change_info.findings)
        result.data["root_change"] = change_info.summary
        if result.ok and change_info.accepted is not None:
            result.data["accepted_root"] = change_info.accepted  # popped by run(), never reported
        return result

    # ------------------------------------------------------------------ releases

    def _check_release(
        self,
        key: ReleaseKey,
        changes: list[Change],
        gate: TrustGate,
        config: RegistryConfig,
        later: TrustGate | None = None,
    ) -> CheckResult:
        rel_dir = self.path("plugins", key.name, key.version)
        manifest_rel = f"{rel_dir}/plugin.toml"
        result = CheckResult(subject=key.subject, file=manifest_rel)
        result.data.update({"plugin": key.name, "version": key.version, "checks": {}})
        published = set(self.repo.list_files(self.base, rel_dir))
        head_dir = self.repo.root / rel_dir
        try:
            links = _symlinks(self.repo.root, rel_dir)
        except OSError as err:
            # One release's unreadable path (git checks out paths longer than PATH_MAX) is its finding.
            fix = "keep the release folder flat: plugin.toml, the module, test data and signatures"
            result.findings.append(_unreadable(rel_dir, err, manifest_rel, 1, fix))
            return result
        if links:
            result.findings.extend(
                _link_findings(links, "commit the file itself; links could point outside the release")
            )
            # Git still says what was removed (nothing is read behind the link to know it).
            result.findings.extend(
                self._immutable(c) for c in changes if c.kind is ChangeKind.deleted and c.path in published
            )
            return result
        try:
            if published and not self.options.full:
                self._check_published(key, changes, published, [gate, later], result)
            elif (head_dir / "plugin.toml").is_file():
                NewRelease(self, key, rel_dir, gate, config, result, later).run()
            else:
                result.findings.extend(self._outside(c) for c in changes)
        except RegistryToolError as err:
            result.findings.append(finding_from_error(err, self.repo.root, self.rebase_map(rel_dir)))
        except Exception as err:
            # One release's crash must not lose the rest of the pull request's findings.
            result.findings.append(internal_error_finding(f"the check of {key.subject}", err, manifest_rel))
        return result

    def _check_published(
        self,
        key: ReleaseKey,
        changes: list[Change],
        published: set[str],
        gates: list[TrustGate | None],
        result: CheckResult,
    ) -> None:
        result.data["kind"] = "published"
        rel_dir = self.path("plugins", key.name, key.version)
        if self._withdrawn(key, rel_dir, changes, published, gates, result):
            return
        # A yank adds yank.toml and its signatures, directly in the release folder, once: with a
        # yank at the base, any further file (a "signature" too) is a change to a published release.
        yank_at_base = f"{rel_dir}/yank.toml" in published
        yank_changed = False
        signatures_added: dict[str, set[str]] = {"plugin.toml": set(), "yank.toml": set()}
        for change in changes:
            path = PurePosixPath(change.path)
            added_here = change.path not in published and path.parent == PurePosixPath(rel_dir)
            if added_here and not yank_at_base and is_yank_file(path.name):
                yank_changed = True
                continue
            # A current maintainer re-signing a release (or its yank) whose signer the root revoked:
            # the bytes stay, and the new signature must count.
            signed = next((s for s in signatures_added if is_signature_of(path.name, s)), None)
            if added_here and signed is not None and (signed == "plugin.toml" or yank_at_base):
                signatures_added[signed].add(path.name)
                continue
            result.findings.append(self._immutable(change))
        if yank_changed:
            result.data["kind"] = "yank"
            result.findings.extend(check_yank(self.repo.root, rel_dir, key, gates))
            result.data["checks"]["yank signature"] = result.ok
            head_index = self.repo.root / self.index if self.index else self.repo.root
            stranded = stranded_dependents(IndexTree(head_index), key.name, matching=key.version)
            if stranded:
                # A yank is a security response: never refused for this, but the dependents'
                # maintainers (and the reviewers) are told that clients can no longer install them.
                result.findings.append(
                    Finding(
                        rule="yank-strands-dependents",
                        message=f"yanking {key.subject} leaves {'; '.join(stranded[:5])}"
                        + (f" and {len(stranded) - 5} more" if len(stranded) > 5 else "")
                        + " with no release that is not yanked: clients cannot install "
                        + ("it" if len(stranded) == 1 else "them"),
                        severity=Severity.warning,
                        file=f"{rel_dir}/yank.toml",
                        line=1,
                        fix=f"publish a release of {key.name} the dependents accept, or ask their "
                        "maintainers to widen their ranges",
                    )
                )
        for signed, added in signatures_added.items():
            if not added:
                continue
            refused = self._needless_signatures(key, rel_dir, signed, added, published, gates)
            if refused:
                result.findings.extend(refused)
                continue
            result.data["kind"] = "re-signed"
            # Only the files this pull request adds must count: the published ones are the reason
            # for re-signing (a revoked key's signature no longer counts under the new root).
            # Judged by the newest root (a valid new root in this pull request may bring the
            # re-signer's delegation: the base root may already refuse the release).
            newest: list[TrustGate | None] = [gates[1] if gates[1] is not None else gates[0]]
            found = signature_findings(
                self.repo.root / rel_dir / signed,
                f"{rel_dir}/{signed}",
                key,
                newest,
                files_must_count=True,
                only=frozenset(added),
            )
            result.findings.extend(found)
            check = "signature" if signed == "plugin.toml" else "yank signature"
            result.data["checks"][check] = result.data["checks"].get(check, True) and not found

    def _needless_signatures(
        self,
        key: ReleaseKey,
        rel_dir: str,
        signed: str,
        added: set[str],
        published: set[str],
        gates: list[TrustGate | None],
    ) -> list[Finding]:
        """Refusals of signatures added to a published file that needs none, or by a key that signed it.

        A published release takes a new signature only to replace ones the newest root no longer
        counts (a revoked signer, a removed delegation, a raised threshold), and only from a key
        that has not signed the file: otherwise anyone could add a copy of a published signature
        under the other name, with an untrusted comment of their own, to an immutable release.
        """
        from registry_tool._files import read_bounded
        from registry_tool.format.rules import MAX_SIGNATURE_BYTES
        from registry_tool.signing.minisign import Signature

        def key_of(raw: bytes) -> str:
            return Signature.parse(raw.decode("utf-8")).key_id

        # The published bytes come from the base: the pull request may have renamed or removed
        # them (its other findings say so), and nothing it wrote is read in their place.
        folder = self.repo.root / rel_dir
        own = sorted(p for p in published if PurePosixPath(p).parent == PurePosixPath(rel_dir))
        names = [PurePosixPath(p).name for p in own if is_signature_of(PurePosixPath(p).name, signed)]
        base_bytes = {name: self.repo.show(self.base, f"{rel_dir}/{name}") for name in [signed, *names]}
        signers = set()
        for name in names:
            try:
                signers.add(key_of(base_bytes[name] or b""))
            except (ValueError, RegistryToolError):
                continue  # published bytes: the build judges them
        findings: list[Finding] = []

        def refuse(name: str, why: str) -> None:
            findings.append(
                Finding(
                    rule="release-changed",
                    message=f"{rel_dir}/{name} was added to a published release: {why}; published releases "
                    "are immutable",
                    file=f"{rel_dir}/{name}",
                    line=1,
                    fix="remove the file: a published release takes a new signature only from a current "
                    "maintainer, once the root no longer counts the ones it has (docs/trust.md)",
                )
            )

        for name in sorted(added):
            try:
                key_id = key_of(
                    read_bounded(folder / name, MAX_SIGNATURE_BYTES, "signature", follow_symlinks=False)
                )
            except (OSError, ValueError, RegistryToolError):
                continue  # junk: the signature check refuses it
            if key_id in signers:
                # Published, or added twice by this pull request (a copy under the other name).
                refuse(name, f"key {key_id} has signed {signed} already")
            signers.add(key_id)
        if findings:
            return findings
        newest = gates[1] if gates[1] is not None else gates[0]
        if newest is not None and names and all(b is not None for b in base_bytes.values()):
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / signed
                for name, data in base_bytes.items():
                    assert data is not None
                    (Path(tmp) / name).write_bytes(data)
                verdict = newest.verify_release(copy, f"{rel_dir}/{signed}", key.name, key.version)
            if not verdict.findings:
                for name in sorted(added):
                    refuse(
                        name, f"its {signed} signatures still count under root version {newest.root.version}"
                    )
        return findings

    def _withdrawn(
        self,
        key: ReleaseKey,
        rel_dir: str,
        changes: list[Change],
        published: set[str],
        gates: list[TrustGate | None],
        result: CheckResult,
    ) -> bool:
        """A published release removed whole whose signatures no longer count: a withdrawal.

        The owners' incident path for what a stolen key signed: revoke the key (without keeping
        its releases) and remove them.  Judged by the newest root as if the release predated
        every revocation (its publication time is not in the index), so a release a revocation
        keeps still counts and stays immutable here, even one the build (which knows the time)
        no longer counts: the owners first turn that revocation's keep_prior_releases off.  A
        withdrawal that would strand a dependent that still verifies is refused.
        """
        deleted = {c.path for c in changes if c.kind is ChangeKind.deleted}
        newest = gates[1] if gates[1] is not None else gates[0]
        if newest is None or deleted != published or os.path.lexists(self.repo.root / rel_dir):
            return False
        base = self.export_base(rel_dir)
        verdict = newest.verify_release(
            base / "plugin.toml", f"{rel_dir}/plugin.toml", key.name, key.version, published_at=_EARLIEST
        )
        if not verdict.findings or newest.root.is_expired(newest.now):
            # Only what the root says of the signatures makes a release withdrawable: an expired
            # root says nothing of them (every release would fail the same way until it is renewed).
            return False
        result.data["kind"] = "withdrawn"
        head_index = self.repo.root / self.index if self.index else self.repo.root
        stranded = stranded_dependents(IndexTree(head_index), key.name)
        if stranded:
            # The dependents still verify, so they cannot go; with the release gone, every later
            # build would refuse them (dependency-unknown / dependency-unsatisfiable).
            result.findings.append(
                Finding(
                    rule="release-removed",
                    message=f"{key.subject} no longer verifies and may be withdrawn, but "
                    f"{'; '.join(stranded[:5])} depend{'s' if len(stranded) == 1 else ''} on it and "
                    "nothing else satisfies them: every "
                    "later build would refuse them",
                    file=f"{rel_dir}/plugin.toml",
                    fix=f"publish, in the same pull request, a release of {key.name} the dependents "
                    "accept, signed by a current maintainer (or withdraw the dependents too, where "
                    "they no longer verify either)",
                )
            )
            return True
        result.findings.append(
            Finding(
                rule="release-withdrawn",
                message=f"{key.subject} is removed, and its signatures no longer count: "
                + verdict.findings[0].message,
                severity=Severity.warning,
                file=f"{rel_dir}/plugin.toml",
            )
        )
        return True

    def _immutable(self, change: Change) -> Finding:
        removed = change.kind is ChangeKind.deleted
        what = {ChangeKind.deleted: "removed", ChangeKind.added: "added"}.get(change.kind, "modified")
        if removed:
            line = None
        elif change.kind is ChangeKind.added:
            line = 1  # nothing at the base to compare with (no git process per added file)
        else:
            old = self.repo.show(self.base, change.path)
            line = _first_changed_line(old, self.repo.root / change.path)
            if line == 0:  # the same bytes: git saw the file's mode (or type) change
                line, what = 1, "changed in mode only (its bytes are the same)"
        return Finding(
            rule="release-removed" if removed else "release-changed",
            message=f"{change.path} belongs to a published release and was {what}; published releases "
            "are immutable",
            file=change.path,
            line=line,
            fix="restore the file; publish a new version instead, or yank this one with a signed yank.toml "
            "(a release a stolen key signed is withdrawn once its signatures no longer count: a root "
            "version that revokes the key without keep_prior_releases, docs/trust.md)",
        )

    def rebase_map(self, rel_dir: str) -> list[tuple[Path, str]]:
        return [
            (self.tmp / "base" / rel_dir, rel_dir + " (base)"),
            (self.tmp / "base", self.prefix + "(base)"),
        ]


def internal_error_finding(what: str, err: BaseException, file: str | None = None) -> Finding:
    """A crash as a finding: fails closed (exit 3), names the exception, keeps other findings."""
    text = " ".join(str(err).split())
    text = text[:300] + ("…" if len(text) > 300 else "")
    return Finding(
        rule=INTERNAL_ERROR_RULE,
        message=f"{what} crashed: {type(err).__name__}: {text}",
        file=file,
        line=1 if file else None,
        fix="report this to the registry-tool maintainers; the pull request cannot pass until it runs",
    )


def registry_toml_of(index: str) -> str:
    """The repository-relative registry.toml of an index folder ("" is the repository root)."""
    return f"{index.rstrip('/')}/registry.toml" if index.strip("/.") else "registry.toml"


def crash_report(err: BaseException, default_file: str | None = None) -> Report:
    """The report of a ``ci check`` that crashed before it had one: still JSON, SARIF, summary."""
    report = Report(command="ci check", default_file=default_file)
    result = CheckResult(subject="ci check")
    result.findings.append(internal_error_finding("ci check", err))
    report.results.append(result)
    return report


def _read_config_file(path: Path) -> bytes:
    """The bytes of a regular file, not through a link, at most MAX_CONFIG_BYTES.

    A ValueError says why not (a link to /dev/zero or a FIFO would otherwise hang or exhaust the
    runner).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        raise ValueError(
            "is a symbolic link" if path.is_symlink() else f"cannot be read: {err.strerror}"
        ) from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ValueError("is not a regular file")
        data = fh.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ValueError(f"is larger than {MAX_CONFIG_BYTES} bytes")
    return data


_MAX_CONFIG_FINDINGS = 20  # a host-range change could name every release of the index


def _release_rules(root: Root) -> tuple[object, ...]:
    """What in a root judges release signatures: delegations, thresholds, revocations."""
    return (
        sorted(
            (m.id, tuple(sorted(k.raw for k in m.keys)), tuple(m.plugins)) for m in root.maintainers.values()
        ),
        sorted(root.plugin_thresholds.items()),
        sorted((r.key.raw, r.keep_prior_releases, r.revoked_at, tuple(r.plugins)) for r in root.revoked),
    )


def _signature_key_ids(manifest: Path) -> set[str]:
    """The key ids the signature files of ``manifest`` claim (unverified: only to skip a judgement)."""
    from registry_tool._files import read_bounded
    from registry_tool.format import MAX_SIGNATURE_BYTES
    from registry_tool.signing.minisign import Signature
    from registry_tool.signing.release import signature_paths

    ids = set()
    for path in signature_paths(manifest):
        try:
            ids.add(Signature.parse(read_bounded(path, MAX_SIGNATURE_BYTES, "signature")).key_id)
        except (OSError, RegistryToolError):
            continue
    return ids


def _smoke_release(manifest: Manifest, config: RegistryConfig) -> list[TestOutcome]:
    from registry_tool.sandbox import smoke_release

    return list(smoke_release(manifest, config))


def _limits_changed(manifest: Manifest, before: RegistryConfig, after: RegistryConfig) -> bool:
    """Does any effective sandbox limit of ``manifest`` differ from ``before`` to ``after``?"""
    if not manifest.tests:
        return False
    from registry_tool.sandbox.harness import limits_for

    old, new = limits_for(manifest, before), limits_for(manifest, after)
    names = ("fuel", "memory", "wall_time", "table_elements", "instances", "stack", "compile_timeout")
    return any(getattr(new, n) != getattr(old, n) for n in names)


#: Folder levels below a release (or the root folder) the check walks: releases are flat (a module,
#: test data, signatures); a deeper tree is refused before anything recurses into it.
MAX_FOLDER_DEPTH = 16


def _may_join_published(path: str) -> bool:
    """A name a published release may take: yank.toml, its signatures, a plugin.toml signature."""
    name = PurePosixPath(path).name
    return is_yank_file(name) or is_signature_of(name, "plugin.toml")


def _symlinks(root: Path, rel_dir: str) -> list[str]:
    """Repo-relative paths of symlinks on the way to, or inside, ``rel_dir``.

    Raises:
        OSError: a folder cannot be read (a path too long, no permission: not skipped unseen) or
            lies more than ``MAX_FOLDER_DEPTH`` levels below ``rel_dir``.
    """
    found: list[str] = []
    parts = PurePosixPath(rel_dir).parts
    for i in range(1, len(parts) + 1):
        if (root.joinpath(*parts[:i])).is_symlink():
            return ["/".join(parts[:i])]
    # Iterative: os.walk and rglob recurse, and a thousand nested folders exhaust Python's stack.
    todo = [(root / rel_dir, 0)] if (root / rel_dir).is_dir() else []
    while todo:
        folder, depth = todo.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_symlink():
                    found.append(Path(entry.path).relative_to(root).as_posix())
                elif entry.is_dir(follow_symlinks=False):
                    if depth + 1 > MAX_FOLDER_DEPTH:
                        raise OSError(f"folders nested deeper than {MAX_FOLDER_DEPTH} levels")
                    todo.append((Path(entry.path), depth + 1))
    return sorted(found)


def _unreadable(folder: str, err: OSError, file: str, line: int | None, fix: str) -> Finding:
    """A folder the walk could not read (too deep, a path too long, no permission)."""
    return Finding(
        rule="unexpected-file",
        message=f"{folder} holds a path that cannot be read ({err.strerror or err})",
        file=file,
        line=line,
        fix=fix,
    )


def _link_findings(links: list[str], fix: str) -> list[Finding]:
    """One finding per symlink.

    Callers read nothing behind a link (it could lead to /dev/zero, ~/.ssh, /proc/self/environ or
    another release).
    """
    return [
        Finding(rule="unexpected-file", message=f"{link} is a symbolic link", file=link, line=1, fix=fix)
        for link in links
    ]


_LINE_SCAN_BYTES = 1 << 20


def _first_changed_line(old: bytes | None, new_path: Path) -> int:
    """The first line where the file differs from the base (line 1 for binaries), 0 for none.

    Only the first MiB is compared: published files are small text or a module (line 1 anyway).
    """
    try:
        with new_path.open("rb") as fh:
            new = fh.read(_LINE_SCAN_BYTES)
    except OSError:
        return 1
    old = old[:_LINE_SCAN_BYTES] if old is not None else None
    if old == new and len(new) < _LINE_SCAN_BYTES:
        return 0
    if old is None or b"\0" in old[:8000] or b"\0" in new[:8000]:
        return 1
    for lineno, (a, b) in enumerate(zip(old.splitlines(), new.splitlines(), strict=False), start=1):
        if a != b:
            return lineno
    # One is a prefix of the other: the first line only one of them has (at most the last line).
    return min(min(len(old.splitlines()), len(new.splitlines())) + 1, max(1, len(new.splitlines())))
