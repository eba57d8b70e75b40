"""The checks of one release that does not exist at the base ref (and of yanks).

Each check is a step: it adds findings with the TOML line of the offending key, and its
verdict lands in ``data["checks"]`` for the job summary.  A step that raises a library error
becomes that error's finding; one that crashes fails closed as ``internal-error``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from semantic_version import Version

from registry_tool import _toml as toml
from registry_tool._files import read_bounded
from registry_tool.ci.gitdiff import GitRepo
from registry_tool.ci.model import APPROVAL_LABEL, CheckOptions, ReleaseKey
from registry_tool.ci.squatting import look_alikes
from registry_tool.ci.trustgate import TrustGate, Verdict, uncounted_findings
from registry_tool.errors import INTERNAL_ERROR_RULE, RegistryToolError
from registry_tool.manifest import RegistryConfig, inspect_wasm, load_manifest, validate_release
from registry_tool.manifest.dependencies import IndexTree, check_dependencies
from registry_tool.manifest.model import MAX_MANIFEST_BYTES, parse_manifest
from registry_tool.manifest.source import TomlSyntaxError, parse_toml
from registry_tool.report import CheckResult, Finding, Severity
from registry_tool.sandbox import TestOutcome, smoke_release

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


class IndexContext(Protocol):
    """What a release check needs from the index being checked."""

    repo: GitRepo
    options: CheckOptions

    def path(self, *parts: str) -> str:
        """A path in the index, repository-relative."""
        ...

    def rebase_map(self, rel_dir: str) -> list[tuple[Path, str]]:
        """(temporary folder, repository path) pairs that turn exported paths back into the repository's."""
        ...

    def base_versions(self, name: str) -> list[Version]:
        """The versions of plugin ``name`` at the base ref."""
        ...

    def export_base(self, rel_dir: str) -> Path:
        """``rel_dir`` as it is at the base ref, exported to a temporary folder."""
        ...

    def case_twins(self, name: str, version: str) -> list[str]:
        """The other release folders of ``name`` that differ from ``version`` only in case."""
        ...

    def plugin_names(self) -> set[str]:
        """Every plugin name at the base ref and in the pull request."""
        ...


class NewRelease:
    """Every check of a release that does not exist at the base."""

    def __init__(
        self,
        owner: IndexContext,
        key: ReleaseKey,
        rel_dir: str,
        gate: TrustGate,
        config: RegistryConfig,
        result: CheckResult,
        later: TrustGate | None = None,
    ) -> None:
        """Prepare the checks of ``key`` in ``rel_dir`` under the base root ``gate`` and ``config``.

        ``later``: the root the pull request adds, which must accept the signatures too.
        """
        self.o, self.key, self.rel_dir, self.gate, self.config, self.result = (
            owner,
            key,
            rel_dir,
            gate,
            config,
            result,
        )
        self.gates = [gate, later]  # signatures count under the base root and the PR's new root
        self.dir = owner.repo.root / rel_dir
        self.manifest_rel = f"{rel_dir}/plugin.toml"
        self.checks: dict[str, bool] = result.data["checks"]
        result.data["kind"] = "recheck" if owner.options.full else "new"
        with (self.dir / "plugin.toml").open("rb") as fh:
            self.raw = fh.read(MAX_MANIFEST_BYTES + 1)
        self.lines: Callable[[str], int | None] = lambda _field: None
        self.doc: dict[str, Any] = {}
        if len(self.raw) > MAX_MANIFEST_BYTES:
            return  # validate refuses it (manifest-too-large); nothing parses it whole
        self.doc = _toml(self.raw)
        # A syntax error: validate reports it with its position.
        with contextlib.suppress(TomlSyntaxError):
            self.lines = parse_toml(self.dir / "plugin.toml", self.raw).line_of

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
        """Add a finding on the release's manifest (the TOML line of ``field`` when given)."""
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
        """Run check ``name``: its errors become findings, a crash an internal error; record the verdict."""
        before = sum(1 for f in self.result.findings if f.severity is Severity.error)
        try:
            fn()
        except RegistryToolError as err:
            self.result.findings.append(
                finding_from_error(err, self.o.repo.root, self.o.rebase_map(self.rel_dir))
            )
        except Exception as err:  # fail closed with a finding, not a traceback
            self.add(
                INTERNAL_ERROR_RULE,
                f"the {name} check crashed: {type(err).__name__}: {_one_line(err)}",
                fix="report this to the registry-tool maintainers; the release cannot pass until it runs",
            )
        after = sum(1 for f in self.result.findings if f.severity is Severity.error)
        self.checks[name] = after == before

    def run(self) -> None:
        """Run every check of the release, in order."""
        self.step("files", self.files)
        self.step("manifest", self.validate)
        self.step("digest", self.digest)
        self.checks["digest"] = not any(f.rule in _DIGEST_RULES for f in self.result.findings)
        self.step("signature", self.signature)
        self.step("version order", self.version_order)
        self.step("name", self.name_squatting)
        if self.checks["manifest"]:
            self.step("dependencies", self.dependencies)
        previous = self.previous_release()
        self.step("escalation", lambda: self.escalation(previous))
        if self.checks["manifest"] and self.checks["digest"]:
            self.step("smoke", lambda: self.smoke(previous))
        if (self.dir / "yank.toml").exists():
            self.step("yank signature", self.yank)

    # -- the checks

    def yank(self) -> None:
        """Check a yank.toml that comes with the release."""
        self.result.findings.extend(
            check_yank(
                self.o.repo.root,
                self.rel_dir,
                self.key,
                self.gates,
                files_must_count=not self.o.options.full,
            )
        )

    def files(self) -> None:
        """Every file in the release folder is covered by its signature (no links, no strays)."""
        allowed = {"plugin.toml", "yank.toml"}
        artifact = self.doc.get("artifact", {})
        if isinstance(artifact, dict) and isinstance(artifact.get("file"), str):
            allowed.add(PurePosixPath(artifact["file"]).as_posix())
        for test in self.doc.get("tests", []) if isinstance(self.doc.get("tests"), list) else []:
            for key in ("input_file", "expect_file"):
                if isinstance(test, dict) and isinstance(test.get(key), str):
                    allowed.add(PurePosixPath(test[key]).as_posix())
        # Signatures of plugin.toml and (with one) yank.toml only: the signature step verifies each.
        signed = {"plugin.toml"} | ({"yank.toml"} if (self.dir / "yank.toml").is_file() else set())
        for path in sorted(self.dir.rglob("*")):
            rel = path.relative_to(self.dir).as_posix()
            repo_rel = f"{self.rel_dir}/{rel}"
            if path.is_dir() or rel in allowed or _is_signature_of(rel, signed):
                continue
            self.add(
                "unexpected-file",
                f"{repo_rel} is not referenced by plugin.toml, so no signature covers it",
                file=repo_rel,
                line=1,
                fix="remove the file, or reference it from plugin.toml and re-sign",
            )

    def validate(self) -> None:
        """Run ``validate`` on the release with the base's registry.toml."""
        checked = validate_release(self.dir, self.config)
        rebase = self.o.rebase_map(self.rel_dir)
        self.result.findings.extend(rebase_finding(f, self.o.repo.root, rebase) for f in checked.findings)
        self.result.data["validate"] = checked.data

    def digest(self) -> None:
        """Fail closed on the pin: validate reports mismatches, but only as one rule among many."""
        if any(f.rule in _DIGEST_RULES for f in self.result.findings):
            return
        artifact = self.doc.get("artifact", {})
        file = artifact.get("file") if isinstance(artifact, dict) else None
        if not isinstance(file, str) and any(f.severity is Severity.error for f in self.result.findings):
            return  # plugin.toml did not parse or names no file: validate said so ("the artifact None")
        data = _artifact_bytes(self.dir, self.doc, self.config)
        if data is None:
            self.add(
                "artifact-digest",
                f"the artifact {file!r} is missing (or not a regular file inside the release folder)",
                field="artifact.file",
                fix="commit the .wasm file named by [artifact] file",
            )
            return
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
        """Enough maintainers delegated by the root at the base signed the manifest."""
        self.result.findings.extend(
            signature_findings(
                self.dir / "plugin.toml",
                self.manifest_rel,
                self.key,
                self.gates,
                files_must_count=not self.o.options.full,
                data=self.result.data,
            )
        )

    def version_order(self) -> None:
        """The new version is above the published ones (or a permitted backport) and unique."""
        twins = self.o.case_twins(self.key.name, self.key.version)
        if twins:
            # Distinct to semver ("RC1" < "rc1"), one folder to macOS and Windows: a maintainer's
            # checkout or a mirror there merges the two releases' files.
            self.add(
                "version-case",
                f"version {self.key.version} of {self.key.name} differs only in case from "
                + ", ".join(twins)
                + "; a case-insensitive file system (macOS, Windows) merges their folders",
                field="plugin.version",
                fix="choose a version that differs from every other release of the plugin in more than "
                "case (pre-release labels in lower case, e.g. 1.2.0-rc.1)",
            )
        if self.o.options.full:
            return  # a re-check judges releases as they are, not the order they arrived in
        try:
            mine = Version(self.key.version)
        except ValueError:
            return  # validate reports a non-semver version
        existing = self.o.base_versions(self.key.name)
        # Precedence ignores +build: 1.0.0+x is 1.0.0 to every resolver (and semantic_version finds the
        # two incomparable, so a plain < would call it "not lower").
        same = [v for v in existing if precedence(v) == precedence(mine)]
        if same:
            self.add(
                "version-duplicate",
                f"version {mine} has the precedence of the published {same[0]} of {self.key.name} "
                "(they differ only in build metadata)",
                field="plugin.version",
                fix=f"publish a version above {existing[-1]}; a published version is never replaced",
            )
            return
        if existing and precedence(mine) < precedence(existing[-1]) and not self.config.allow_backports:
            self.add(
                "version-backwards",
                f"version {mine} is lower than the published {existing[-1]} of {self.key.name}",
                field="plugin.version",
                fix=f"publish a version above {existing[-1]}, or set [index] allow_backports = true in "
                "registry.toml (a registry maintainer's decision)",
            )

    def name_squatting(self) -> None:
        """A new plugin name must not pass for an existing one (unless one maintainer owns both)."""
        name = self.key.name
        if self.o.base_versions(name):
            return  # not a new name
        for other, reason in look_alikes(name, self.o.plugin_names() - {name}):
            owners = [m.id for m in self.gate.root.maintainers.values() if m.covers(name) and m.covers(other)]
            if owners:
                continue  # one maintainer's own family of names (delegated by the root)
            self.add(
                "name-squatting",
                f"plugin name '{name}' {reason} of the existing plugin '{other}', and no maintainer "
                "is delegated both",
                field="plugin.name",
                fix=f"choose a clearly different name, or have the root delegate both '{name}' and "
                f"'{other}' to the same maintainer",
            )

    def previous_release(self) -> Path | None:
        """The highest published version below this one, exported from the base."""
        try:
            mine = Version(self.key.version)
        except ValueError:
            return None
        existing = self.o.base_versions(self.key.name)
        if not existing:
            return None
        lower = [v for v in existing if precedence(v) < precedence(mine)]
        if not lower and self.o.options.full:
            return None
        # A backport below every published version is compared with its nearest neighbour.
        prev = lower[-1] if lower else existing[0]
        self.result.data["previous"] = str(prev)
        return self.o.export_base(self.o.path("plugins", self.key.name, str(prev)))

    def dependencies(self) -> None:
        """Dependencies resolve against the index at the PR's base plus the PR (the checkout)."""
        self.graph_permissions: frozenset[str] = frozenset()
        manifest, _ = parse_manifest(self.dir / "plugin.toml", self.raw, self.manifest_rel)
        if manifest is None or not manifest.dependencies:
            return
        verdict = check_dependencies(manifest, IndexTree(self.dir.parents[2]), relfile=self.manifest_rel)
        self.result.findings.extend(verdict.findings)
        self.graph_permissions = verdict.graph_permissions
        if verdict.graph:
            self.result.data["dependency_graph"] = list(verdict.graph)

    def _previous_graph_permissions(self, previous: Path) -> frozenset[str]:
        raw = _previous_manifest(previous)
        manifest, _ = parse_manifest(previous / "plugin.toml", raw, "plugin.toml")
        if manifest is None or not manifest.dependencies:
            return frozenset()
        # Resolved against the same index as the new release: what installing it grants today.
        index = IndexTree(self.dir.parents[2])
        return check_dependencies(manifest, index, relfile="plugin.toml").graph_permissions

    def escalation(self, previous: Path | None) -> None:
        """Permissions and imports the previous version did not have."""
        through: frozenset[str] = getattr(self, "graph_permissions", frozenset()) - _granted(self.doc)
        if previous is None:
            # Not an escalation, but reviewers must see what a new plugin asks for.
            for perm in sorted(through):
                self.add(
                    "new-permission",
                    f"the plugin is new (no release of it is published): installing this release also "
                    f"grants '{perm}' to a dependency",
                    field="dependencies",
                    severity=Severity.notice,
                    fix="a reviewer confirms the plugin's dependencies need it",
                )
            requested = sorted(_granted(self.doc))
            self.result.data["escalations"] = [f"new plugin requests permission {p}" for p in requested]
            for perm in requested:
                self.add(
                    "new-permission",
                    "the plugin is new (no release of it is published): this release requests "
                    f"permission '{perm}'",
                    field=f"permissions.{perm}",
                    severity=Severity.notice,
                    fix="a reviewer confirms the plugin needs it",
                )
            return
        old_doc = _toml(_previous_manifest(previous))
        severity = Severity.warning if self.o.options.allow_escalation else Severity.error
        if self.o.options.full:
            severity = Severity.notice  # published escalations were approved when they merged
        options = self.o.options
        approved = ""
        fix = (
            "a registry maintainer reviews the new capability and approves this head commit: label "
            f"{APPROVAL_LABEL} (--allow-escalation-at)"
        )
        if options.allow_escalation and options.allow_escalation_at is not None:
            approved = " (approved for this head commit with --allow-escalation-at)"
            fix = "approved: nothing to do; a later push needs a new approval"
        elif options.allow_escalation:
            approved = " (approved with --allow-escalation)"
            fix = "approved for any commit (--allow-escalation): nothing to do"
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
        # Installing a release installs its dependency graph: a permission that arrives through a
        # dependency is an escalation of the dependent too (no smuggling network in through B).
        before = _granted(old_doc) | self._previous_graph_permissions(previous)
        for perm in sorted(through - before - _granted(self.doc)):
            escalations.append(f"permission {perm} (through a dependency)")
            self.add(
                "permission-escalation",
                f"ESCALATION: installing this release also grants '{perm}' to a dependency, which "
                f"{self.result.data['previous']} did not{approved}",
                field="dependencies",
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
        """Run the release's tests in the sandbox and compare figures with ``previous``."""
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
        """Warn when a test's fuel or peak memory grew beyond the registry's threshold."""
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


def signature_findings(
    signed: Path,
    rel: str,
    key: ReleaseKey,
    gates: list[TrustGate | None],
    *,
    files_must_count: bool,
    only: frozenset[str] | None = None,
    data: dict[str, Any] | None = None,
) -> list[Finding]:
    """The signature check of ``signed`` under the base root, then the root the pull request adds.

    With ``files_must_count`` (what a pull request adds, not a ``--full`` re-check of published
    releases), each signature file must be a valid signature by a maintainer the base root or
    the new root delegates for the plugin (a co-signer the same pull request adds counts);
    ``only`` limits that rule to the files it names (the ones a pull request adds).
    """
    verdicts: list[Verdict] = []
    findings: list[Finding] = []
    for gate in gates:
        if gate is None or findings:
            continue  # judged by the new root only when the base root accepts it
        verdict = gate.verify_release(signed, rel, key.name, key.version)
        if data is not None and not verdicts:
            data["signers"] = verdict.signers
        verdicts.append(verdict)
        findings.extend(verdict.findings)
    if files_must_count and not findings:  # a failed check already names the signatures it refused
        findings.extend(uncounted_findings(str(PurePosixPath(rel).parent), verdicts, only))
    return findings


def check_yank(
    root: Path,
    rel_dir: str,
    key: ReleaseKey,
    gates: list[TrustGate | None],
    *,
    files_must_count: bool = True,
) -> list[Finding]:
    """The findings about ``rel_dir``'s yank.toml: well-formed, about this release, signed.

    ``gates``: the base root's, then the root the pull request adds (or None).
    """
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
    from registry_tool.manifest.validate import yank_findings

    findings = yank_findings(yank, yank_rel, key.name, key.version)
    findings.extend(signature_findings(yank, yank_rel, key, gates, files_must_count=files_must_count))
    return findings


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:300] + ("…" if len(text) > 300 else "")


def precedence(version: Version) -> Version:
    """``version`` without build metadata: what semver orders by."""
    return version.truncate("prerelease")


def _previous_manifest(previous: Path) -> bytes:
    """The previous release's plugin.toml, bounded like every manifest a check reads.

    One over the cap (refused as its own release) reads as empty: every permission of the new
    release then counts as new, which fails closed.
    """
    try:
        return read_bounded(
            previous / "plugin.toml", MAX_MANIFEST_BYTES, "plugin.toml", follow_symlinks=False
        )
    except (OSError, RegistryToolError):
        return b""


def _toml(raw: bytes) -> dict[str, Any]:
    try:
        return toml.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # bad UTF-8 or TOML, a 4301-digit integer, deep nesting
        return {}  # validate_release reports the syntax error with its position


def _granted(doc: dict[str, Any]) -> set[str]:
    perms = doc.get("permissions", {})
    return {k for k, v in perms.items() if v is True} if isinstance(perms, dict) else set()


def _imports(release_dir: Path, doc: dict[str, Any], config: RegistryConfig) -> set[tuple[str, str]]:
    data = _artifact_bytes(release_dir, doc, config)
    if data is None:
        return set()  # validate and the digest step refuse the release
    info = inspect_wasm(data, config.features)
    return {(i.module, i.name) for i in info.imports}


# Read cap when registry.toml sets no limits.max.module_size (validate then has no size rule).
_MODULE_READ_CAP = 1 << 30


def _artifact_bytes(release_dir: Path, doc: dict[str, Any], config: RegistryConfig) -> bytes | None:
    """The bytes of ``[artifact] file`` when it names a regular file inside the release folder.

    plugin.toml comes from the pull request: "/proc/self/environ", "../../x", a link, a device
    or a name too long must never make the checker read (or hash, or crash on) a file of the
    runner.  None for all of those; validate reports the path itself.
    """
    from registry_tool._files import read_bounded

    artifact = doc.get("artifact", {})
    file = artifact.get("file") if isinstance(artifact, dict) else None
    if not isinstance(file, str) or not file or PurePosixPath(file).is_absolute():
        return None
    try:
        base = release_dir.resolve()
        target = (base / file).resolve()
        if not target.is_relative_to(base) or (base / file).is_symlink():
            return None
        cap = config.max_limits.module_size or _MODULE_READ_CAP
        # No link followed at the last step, no wait on a FIFO, nothing but a regular file.
        return read_bounded(target, cap, "module", follow_symlinks=False)
    except (OSError, RuntimeError, ValueError, RegistryToolError):
        return None


def _is_signature_of(rel: str, signed: set[str]) -> bool:
    """``F.minisig`` or ``F.<KEYID>.minisig`` of a signed file (the format module's one rule)."""
    from registry_tool.format import is_signature_of

    return any(is_signature_of(rel, base) for base in signed)


def rebase_finding(finding: Finding, repo_root: Path, rebase: list[tuple[Path, str]]) -> Finding:
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


def finding_from_error(err: RegistryToolError, repo_root: Path, rebase: list[tuple[Path, str]]) -> Finding:
    """``err`` as a finding whose file is repository-relative (temporary exports renamed)."""
    return rebase_finding(Finding.from_error(err), repo_root, rebase)
