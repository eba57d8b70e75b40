"""The build's decisions, pure: data in, a plan out, no I/O.

Given what verification derived from every release and the previously published registry, decide
whether the publication is allowed (immutability, versions only going up, dependencies
satisfiable), which registry version it gets, and what the documents are.  ``publish`` then puts
the plan on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import PurePosixPath

from semantic_version import Version

from registry_tool.errors import UsageError
from registry_tool.format import (
    MANIFEST,
    REGISTRY_JSON,
    CatalogEntry,
    Metadata,
    Pin,
    PluginDocument,
    RegistryInfo,
    Release,
    TopDocument,
    build_metadata,
    format_time,
    release_from_json,
)
from registry_tool.format.ranges import RangeSyntaxError, parse_range
from registry_tool.manifest import RegistryConfig
from registry_tool.registry.document import Publication
from registry_tool.registry.errors import (
    BuildRefusedError,
    PublishedReleaseChangedError,
    PublishedReleaseRemovedError,
    RollbackError,
)
from registry_tool.registry.verify import ReleaseEntry
from registry_tool.report import CheckResult, Finding, Report, Severity

#: Every release of a build: (name, version) -> its entry (without ``published_at``).
Entries = Mapping[tuple[str, str], ReleaseEntry]


#: A published release gone from the index that no longer verifies under the current root.
WITHDRAWN_RULE = "published-release-withdrawn"


@dataclass(frozen=True)
class CarriedDocument:
    """A published plugin document a build keeps as it is.

    Attributes:
        pin: Its pin.
        catalog: Its catalog entry.
        releases: How many releases it lists.
        whole: The plugin's releases are not in the build's entries at all (kept whole): what the
            dependency check reads of them comes from ``versions``, ``yanked`` and ``dependencies``.
        versions: Its versions (``whole`` only).
        yanked: Its yanked versions (``whole`` only).
        dependencies: (version, ((dependency, range), ...)) of its releases with dependencies
            (``whole`` only).
    """

    pin: Pin
    catalog: CatalogEntry
    releases: int
    whole: bool = False
    versions: tuple[str, ...] = ()
    yanked: tuple[str, ...] = ()
    dependencies: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()


@dataclass(frozen=True)
class Plan:
    """What a build publishes.

    Attributes:
        document: The top document and every plugin's releases (``published_at`` filled in).
        metadata: Every metadata document's bytes, the tree and catalog pins.
    """

    document: Publication
    metadata: Metadata
    yanked: int = 0
    # Warnings about what is published (a dependency only yanked releases satisfy).
    warnings: list[Finding] = field(default_factory=list)

    @property
    def version(self) -> int:
        """The registry version of this publication."""
        return self.document.version


def plan_publication(
    config: RegistryConfig,
    root_version: int,
    entries: Entries,
    previous: Publication | None,
    now: datetime,
    requested_version: int | None,
    refused: Sequence[CheckResult] = (),
    carried: Mapping[str, CarriedDocument] | None = None,
    withdrawn: Callable[[Release], str | None] | None = None,
    first_published: str | None = None,
) -> Plan:
    """Decide the publication: refusals first, then the version, then the documents.

    Args:
        config: The registry's configuration (name, validity, backport rule).
        root_version: The newest root's version (signs this publication).
        entries: Every release the build verified or took from the cache.
        previous: The published registry (``--previous``), or None for a first build.
        now: The document clock (``generated_at``; the timestamp version).
        requested_version: ``--registry-version``, or None.
        refused: The releases verification refused (reported together with the plan's refusals).
        carried: Plugins whose published document is kept as it is.  The caller vouches that
            their releases are exactly the ones that document was encoded from (the build cache's
            fingerprint or plugin print), so they are neither compared nor encoded again.
        withdrawn: Why a published release no longer verifies under the current root (its
            signers' keys revoked or gone), or None while it does: such a release may be gone
            from the index (the owners' way to withdraw what a stolen key signed).
        first_published: The ``published_at`` of releases published for the first time (the
            time their signatures were judged at); default ``generated_at``.

    Returns:
        The plan.

    Raises:
        BuildRefusedError: A published release was removed or changed, a version went down, or a
            dependency cannot be satisfied (every problem in one report).
        RollbackError: The version would not go up.
    """
    carried = carried or {}
    if carried and previous is None:
        raise ValueError("documents can only be carried over from a previous publication")
    report = Report(command="build", results=list(refused))
    warnings: list[Finding] = []  # withdrawn releases first, then dependency warnings
    if previous is not None:
        problems: list[Finding] = []
        # A published release the build refused is reported with its reasons, not as missing.
        refused_keys = frozenset((r.data.get("plugin"), r.data.get("version")) for r in refused)
        for finding in immutability_findings(
            previous, entries, config.allow_backports, frozenset(carried), withdrawn, refused_keys
        ):
            (problems if finding.severity is Severity.error else warnings).append(finding)
        if problems:
            report.results.append(CheckResult(subject="previous registry", findings=problems))
    for result in dependency_results(entries, {n: c for n, c in carried.items() if c.whole}):
        if any(f.severity is Severity.error for f in result.findings):
            report.results.append(result)
        else:
            warnings.extend(result.findings)
    if report.results:
        raise BuildRefusedError(report)
    version = next_version(previous, now, requested_version)
    generated_at = format_time(now)
    by_plugin: dict[str, dict[str, ReleaseEntry]] = {}
    yanked = sum(len(c.yanked) for c in carried.values() if c.whole)
    for (name, ver), entry in sorted(entries.items()):
        yanked += entry.get("yanked") is not None
        if name not in carried:
            by_plugin.setdefault(name, {})[ver] = entry
    grouped: dict[str, Mapping[str, Release]] = {}
    encoded: dict[str, bytes] = {}  # plugin documents whose bytes the previous publication holds
    for name in carried:
        assert previous is not None  # checked above
        grouped[name] = previous.plugins[name]
    for name, versions in by_plugin.items():
        published = previous.plugins.get(name, {}) if previous else {}
        releases: dict[str, Release] = {}
        for ver, entry in versions.items():
            old = published.get(ver)
            if old is not None and _unchanged(old, entry):
                releases[ver] = old  # parsed by the verifier's rules when --previous was read
                continue
            full = dict(entry, published_at=old.published_at if old else first_published or generated_at)
            # Read back with the verifier's rules: the build never publishes what a client would refuse.
            releases[ver] = release_from_json(name, ver, full, where=f"plugins/{name}/{ver}")
        grouped[name] = releases
        data = previous.document_bytes(name) if previous is not None else None
        if data is not None and releases == published:
            encoded[name] = data
    meta = build_metadata(
        (PluginDocument(n, dict(v)) for n, v in grouped.items() if n not in carried),
        encoded=encoded,
        carried={name: (c.pin, c.catalog, c.releases) for name, c in carried.items()},
    )
    top = TopDocument(
        version=version,
        generated_at=generated_at,
        expires_at=format_time(now + timedelta(seconds=config.index_validity)),
        root_version=root_version,
        registry=RegistryInfo(
            config.name, config.description, config.base_url, config.host_name, config.host_versions
        ),
        tree=meta.tree,
        catalog=meta.catalog,
        plugin_count=len(grouped),
        release_count=meta.releases,
    )
    TopDocument.parse(top.to_bytes())  # and never signs a top document a client would refuse
    return Plan(Publication(top, dict(sorted(grouped.items()))), meta, yanked, warnings)


def _unchanged(old: Release, entry: ReleaseEntry) -> bool:
    """The published release is exactly this entry (``published_at`` is carried over anyway)."""
    published = old.to_json()
    del published["published_at"]
    return bool(published == entry)


def immutability_findings(
    previous: Publication,
    entries: Entries,
    allow_backports: bool,
    carried: frozenset[str] = frozenset(),
    withdrawn: Callable[[Release], str | None] | None = None,
    refused: frozenset[tuple[object, object]] = frozenset(),
) -> list[Finding]:
    """Published releases may be yanked, never removed or changed; new versions may not go backwards.

    Plugins in ``carried`` keep their published document: the caller established their entries
    are the ones it was encoded from, so there is nothing to compare.  A removed release that
    ``withdrawn`` says no longer verifies is a warning, not a refusal: no client would install it.
    A release in ``refused`` ((name, version) the build refused, with its own findings) is in
    the index: it is not reported as missing.
    """
    out: list[Finding] = []
    for old in (
        r for n in sorted(previous.plugins) if n not in carried for r in _sorted(previous.plugins[n])
    ):
        new = entries.get((old.name, old.version))
        if new is None and (old.name, old.version) in refused:
            continue
        if new is None:
            where = f"plugins/{old.name}/{old.version}"
            why = withdrawn(old) if withdrawn is not None else None
            if why is not None:
                out.append(
                    Finding(
                        WITHDRAWN_RULE,
                        f"release {old.name} {old.version}, published in registry v{previous.version}, is "
                        f"withdrawn: {why}",
                        file=where,
                        severity=Severity.warning,
                    )
                )
                continue
            out.append(
                Finding(
                    PublishedReleaseRemovedError.code,
                    f"release {old.name} {old.version} was published in registry v{previous.version} "
                    "and is missing from the index",
                    file=where,
                    fix="restore it; to withdraw a release, add a maintainer-signed yank.toml instead "
                    "(what a stolen key signed goes once the root revokes the key without keeping prior "
                    "releases)",
                )
            )
            continue
        for kind, ref in (("manifest", old.manifest), ("wasm", old.wasm)):
            got = new[kind]
            if (got["path"], got["sha256"], got["size"]) != (ref.path, ref.sha256, ref.size):
                out.append(
                    Finding(
                        PublishedReleaseChangedError.code,
                        f"{ref.path} changed since it was published (sha256 {ref.sha256[:16]}…, "
                        f"now {got['sha256'][:16]}…)",
                        file=f"plugins/{old.name}/{old.version}/{PurePosixPath(got['path']).name}",
                        fix="published releases are immutable: restore the bytes and publish a new version",
                    )
                )
    if not allow_backports:
        # Only plugins that gain a version need their newest published one (semver parsing is
        # the slow part of this check at 10,000 releases).
        added = sorted(key for key in entries if key[0] not in carried and previous.get(*key) is None)
        newest = {
            name: max(Version(v) for v in previous.plugins[name])
            for name in {name for name, _ in added}
            if previous.plugins.get(name)
        }
        for name, version in added:
            if name in newest and Version(version) < newest[name]:
                out.append(
                    Finding(
                        "version-goes-down",
                        f"new release {name} {version} is older than the published {newest[name]}",
                        file=f"plugins/{name}/{version}",
                        fix="publish a higher version, or set [index] allow_backports = true "
                        "in registry.toml",
                    )
                )
    return out


def _sorted(versions: Mapping[str, Release]) -> list[Release]:
    return [versions[v] for v in sorted(versions)]


def _matches(spec: str, version: str) -> bool:
    try:
        return parse_range(spec).matches(version)
    except RangeSyntaxError:
        return False  # the manifest check names the bad range; here it simply matches nothing


def dependency_results(
    entries: Entries, whole: Mapping[str, CarriedDocument] | None = None
) -> list[CheckResult]:
    """Refuse dependencies no client could ever install.

    Every published required dependency must name a plugin of this build and match one of its
    non-yanked releases.  ``whole`` holds the plugins kept whole (their releases not in ``entries``).
    """
    whole = whole or {}
    usable: dict[str, list[str]] = {}
    every: dict[str, list[str]] = {}
    for (name, version), entry in entries.items():
        usable.setdefault(name, [])
        every.setdefault(name, []).append(version)
        if not entry.get("yanked"):
            usable[name].append(version)
    edges: list[tuple[str, str, Mapping[str, str]]] = [
        (name, version, entry["dependencies"])
        for (name, version), entry in entries.items()
        if entry.get("dependencies")
    ]
    for name, kept in whole.items():
        yanked = set(kept.yanked)
        usable[name] = [v for v in kept.versions if v not in yanked]
        every[name] = list(kept.versions)
        edges.extend((name, version, dict(deps)) for version, deps in kept.dependencies)
    results = []
    # Only releases with dependencies are looked at (most have none), in name/version order.
    for name, version, dependencies in sorted(edges, key=lambda edge: edge[:2]):
        findings = []
        for dep, spec in sorted(dict(dependencies).items()):
            where = f"plugins/{name}/{version}/{MANIFEST}"
            if dep not in usable:
                findings.append(
                    Finding(
                        "dependency-unknown",
                        f"{name} {version} depends on {dep}, which is not a plugin of this index",
                        file=where,
                        fix=f"publish {dep} first, or remove dependencies.{dep}",
                    )
                )
            elif not any(_matches(spec, v) for v in usable[dep]):
                # Only yanked releases match: a warning, so that a yank (a security response) never
                # stops the publication; clients refuse to install the dependent meanwhile.  ci check
                # refuses a new release whose dependency only yanked releases satisfy.
                only_yanked = any(_matches(spec, v) for v in every.get(dep, ()))
                findings.append(
                    Finding(
                        "dependency-unsatisfiable",
                        f"{name} {version} needs {dep} {spec}, which matches no non-yanked release "
                        f"(available: {', '.join(sorted(usable[dep], key=Version)) or 'none'})"
                        + (
                            "; the matching ones are yanked, so clients cannot install it"
                            if only_yanked
                            else ""
                        ),
                        severity=Severity.warning if only_yanked else Severity.error,
                        file=where,
                        fix=f"widen the range of dependencies.{dep}, or publish a matching {dep} release",
                    )
                )
        if findings:
            results.append(CheckResult(subject=f"{name} {version}", findings=findings))
    return results


def next_version(previous: Publication | TopDocument | None, now: datetime, requested: int | None) -> int:
    """Previous + 1, or the UTC timestamp as YYYYMMDDHHMMSS when larger; never <= previous.

    Raises:
        RollbackError: ``requested`` is not above the previous version.
        UsageError: ``requested`` is not positive.
    """
    floor = int(now.strftime("%Y%m%d%H%M%S"))
    if previous is not None:
        floor = max(floor, previous.version + 1)
    version = requested if requested is not None else floor
    if previous is not None and version <= previous.version:
        raise RollbackError(
            f"registry version {version} is not above the published version {previous.version}",
            where=REGISTRY_JSON,
            fix=f"omit --registry-version, or pass one above {previous.version}",
        )
    if version < 1:
        raise UsageError(f"registry version {version} must be positive", fix="pass a positive version")
    return version
