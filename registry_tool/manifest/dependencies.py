"""Dependency rules that need the whole index: names that exist, ranges that match, a graph that resolves.

``validate`` checks what one release says about its dependencies on its own (rule
``dependency``).  ``ci check`` (against the index at the PR's base plus the PR) and ``build``
also need the other releases: every dependency must name a plugin of the index, its range must
match a release that is not yanked, and the release's whole graph must resolve with the same
resolver the client uses.  The permissions of that graph are what installing the release
really grants, so they are reported for the permission-escalation check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from semantic_version import Version

from registry_tool import _toml as toml
from registry_tool._files import read_bounded
from registry_tool.errors import RegistryToolError
from registry_tool.format.ranges import RangeSyntaxError
from registry_tool.format.ranges import parse_range as parse_format_range
from registry_tool.format.rules import PLUGIN_NAME_RE
from registry_tool.manifest.model import MAX_MANIFEST_BYTES, Manifest
from registry_tool.report import Finding
from registry_tool.resolve import (
    Candidate,
    Dependency,
    DependencyConflictError,
    DependencyCycleError,
    Need,
    UnknownPluginError,
    resolve,
)

MANIFEST = "plugin.toml"
YANK = "yank.toml"


def range_matches(spec: str, version: str) -> bool:
    """Whether ``version`` is inside the dependency range ``spec``.

    The format's range grammar and matching (``registry_tool.format.ranges``), exactly as the
    build and every client resolve: with another matcher here, ci check passed a release whose
    dependency the build then found unsatisfiable (pre-releases, the comma form).
    """
    try:
        return parse_format_range(spec).matches(version)
    except (RangeSyntaxError, ValueError):
        return False


class IndexTree:
    """The releases of an index folder (``plugins/<name>/<version>/plugin.toml``), read on demand.

    Only the plugins a dependency graph reaches are read, so checking one release costs what
    its graph costs, not what the index holds.
    """

    def __init__(self, index_dir: Path, extra: Sequence[Manifest] = ()) -> None:
        """Read releases under ``index_dir``; ``extra`` manifests count as present too."""
        self.plugins = index_dir / "plugins"
        self._extra = {(m.name, m.version): m for m in extra}
        self._cache: dict[str, list[Candidate]] = {}

    def releases(self, name: str) -> Sequence[Candidate]:
        """Every release of plugin ``name`` in the index (read once)."""
        if name in self._cache:
            return self._cache[name]
        found: dict[str, Candidate] = {}
        folder = self.plugins / name
        if PLUGIN_NAME_RE.fullmatch(name) and folder.is_dir() and not folder.is_symlink():
            for release in sorted(folder.iterdir()):
                cand = _read_candidate(name, release)
                if cand is not None:
                    found[cand.version] = cand
        for (n, v), m in self._extra.items():
            if n == name:
                found[v] = candidate_of(m)
        if not found:
            raise UnknownPluginError(f"plugin {name!r} is not in the index")
        self._cache[name] = list(found.values())
        return self._cache[name]

    def names(self) -> list[str]:
        """Every plugin folder of the index (real folders with a plugin name), sorted."""
        if not self.plugins.is_dir():
            return []
        return sorted(
            p.name
            for p in self.plugins.iterdir()
            if PLUGIN_NAME_RE.fullmatch(p.name) and p.is_dir() and not p.is_symlink()
        )


def stranded_dependents(index: IndexTree, name: str, matching: str | None = None) -> list[str]:
    """Releases of the index whose required dependency on ``name`` no release of it satisfies.

    What withdrawing ``name``'s releases would leave behind: the build refuses such a release
    (``dependency-unknown`` / ``dependency-unsatisfiable``), and a published one cannot go.  With
    ``matching`` (a version), only those whose range admits it: what yanking that version strands.
    Reads every plugin of the index: for the rare pull request that withdraws or yanks a release.
    """
    try:
        left = [r for r in index.releases(name) if not r.yanked]
    except UnknownPluginError:
        left = []
    stranded: list[str] = []
    for other in index.names():
        if other == name:
            continue
        for release in index.releases(other):
            for dep in release.dependencies:
                if (
                    dep.name == name
                    and not dep.optional
                    and (matching is None or range_matches(dep.range, matching))
                    and not any(range_matches(dep.range, r.version) for r in left)
                ):
                    stranded.append(f"{release} (needs {name} {dep.range})")
    return stranded


def candidate_of(m: Manifest, *, yanked: bool = False) -> Candidate:
    """A parsed manifest as the resolver sees it."""
    return Candidate(
        m.name,
        m.version,
        tuple(Dependency(d.name, d.range, d.optional) for d in m.dependencies),
        yanked=yanked,
        permissions=tuple(sorted(m.permissions)),
    )


def _read_candidate(name: str, release: Path) -> Candidate | None:
    manifest = release / MANIFEST
    if release.is_symlink() or not manifest.is_file() or manifest.is_symlink():
        return None
    try:
        # Bounded like every plugin.toml a check reads: a pull request may add a huge one that
        # only another release's dependency range reaches.
        raw = read_bounded(manifest, MAX_MANIFEST_BYTES, "plugin.toml", follow_symlinks=False)
        doc = toml.loads(raw.decode("utf-8"))
        plugin = doc["plugin"]
        if plugin["name"] != name or plugin["version"] != release.name:
            return None
        # Unvalidated TOML: any table here may be an array, a string or a number (validate
        # reports it; here it is no candidate, never a crash of the check that reached it).
        dependencies, permissions = doc.get("dependencies", {}), doc.get("permissions", {})
        if not isinstance(dependencies, dict) or not isinstance(permissions, dict):
            return None
        deps = []
        for dep_name, value in sorted(dependencies.items()):
            if isinstance(value, str):
                deps.append(Dependency(dep_name, value))
            elif isinstance(value, dict):
                deps.append(Dependency(dep_name, str(value["version"]), bool(value.get("optional", False))))
            else:
                return None
        perms = tuple(sorted(k for k, v in permissions.items() if v is True))
        Version(release.name)
    except (
        OSError,
        RegistryToolError,
        UnicodeDecodeError,
        toml.TOMLDecodeError,
        AttributeError,
        KeyError,
        TypeError,
        ValueError,
    ):
        return None  # validate reports the broken release itself
    return Candidate(name, release.name, tuple(deps), yanked=(release / YANK).exists(), permissions=perms)


@dataclass
class DependencyVerdict:
    """Findings for one release, and the permissions its resolved graph grants (itself excluded)."""

    findings: list[Finding]
    graph_permissions: frozenset[str] = frozenset()
    graph: tuple[str, ...] = ()  # "name version" of every dependency chosen


def check_dependencies(m: Manifest, index: IndexTree, *, relfile: str) -> DependencyVerdict:
    """Every index-level dependency rule for release ``m`` (which ``index`` may or may not hold)."""
    findings: list[Finding] = []

    def add(rule: str, dep: str, message: str, fix: str) -> None:
        findings.append(
            Finding(
                rule,
                message,
                file=relfile,
                line=m.line_of(f"dependencies.{dep}"),
                field=f"dependencies.{dep}",
                fix=fix,
            )
        )

    for dep in m.dependencies:
        if not PLUGIN_NAME_RE.fullmatch(dep.name) or dep.name == m.name:
            continue  # the single-release rule `dependency` reports these
        try:
            releases = index.releases(dep.name)
        except UnknownPluginError:
            add(
                "dependency-unknown",
                dep.name,
                f"dependency {dep.name!r} is not a plugin of this registry",
                "publish that plugin first, or fix the name",
            )
            continue
        usable = [r for r in releases if not r.yanked and range_matches(dep.range, r.version)]
        if not usable:
            available = ", ".join(sorted((r.version for r in releases), key=Version))
            add(
                "dependency-unsatisfiable",
                dep.name,
                f"no release of {dep.name} that is not yanked matches {dep.range!r}",
                f"available: {available}; widen the range",
            )
    if findings:
        return DependencyVerdict(findings)
    try:
        plan = resolve([Need(m.name, f"={m.version}", exact=True)], _WithSelf(index, m), range_matches)
    except (DependencyConflictError, DependencyCycleError) as err:
        findings.append(
            Finding(
                err.code,
                err.what,
                file=relfile,
                line=m.line_of("dependencies"),
                field="dependencies",
                fix=err.fix or "adjust the dependency ranges",
            )
        )
        return DependencyVerdict(findings)
    findings.extend(_cycles_through(m, index, relfile))
    deps = {n: c for n, c in plan.selected.items() if n != m.name}
    perms = frozenset(p for c in deps.values() for p in c.permissions) | _any_selectable_permissions(
        [candidate_of(m), *deps.values()], index, m.name
    )
    return DependencyVerdict(findings, perms, tuple(sorted(str(c) for c in deps.values())))


def _any_selectable_permissions(graph: Sequence[Candidate], index: IndexTree, own: str) -> frozenset[str]:
    """The permissions of every release the graph's ranges could select, at any depth.

    A client chooses by its own host version (a release whose host range excludes it is skipped),
    so another release a range matches may be installed instead of the one resolved here, and
    that release brings its own dependencies: the walk follows every selectable release, not only
    the resolved graph (a dependency's unresolved release two hops away can carry the permission).
    """
    found: set[str] = set()
    seen: set[tuple[str, str]] = set()
    asked: set[tuple[str, str]] = set()  # (plugin, range): the versions of a plugin repeat one range
    pending = list(graph)
    while pending:
        node = pending.pop()
        for dep in node.dependencies:
            if dep.optional or dep.name == own or (dep.name, dep.range) in asked:
                continue
            asked.add((dep.name, dep.range))
            try:
                releases = index.releases(dep.name)
            except UnknownPluginError:
                continue
            for release in releases:
                if release.yanked or not range_matches(dep.range, release.version):
                    continue
                if (release.name, release.version) in seen:
                    continue
                seen.add((release.name, release.version))
                found.update(release.permissions)
                pending.append(release)
    return frozenset(found)


def _cycles_through(m: Manifest, index: IndexTree, relfile: str) -> list[Finding]:
    """Dependencies of ``m`` that depend back on its plugin and, with ``m`` there, no longer resolve.

    A cycle through ``m``: publishing ``m`` would make those published releases uninstallable.
    ``index`` holds ``m`` (the checkout); only the plugins ``m`` names are looked at.
    """
    found: list[Finding] = []
    for dep in m.dependencies:
        try:
            others = index.releases(dep.name)
        except UnknownPluginError:
            continue
        for other in others:
            back = [d for d in other.dependencies if d.name == m.name and not d.optional]
            if other.yanked or not any(range_matches(d.range, m.version) for d in back):
                continue
            try:
                resolve([Need(other.name, f"={other.version}", exact=True)], index, range_matches)
            except DependencyCycleError as err:
                found.append(
                    Finding(
                        err.code,
                        f"with {m.name} {m.version} published, {other} can no longer be installed: "
                        f"{err.what}",
                        file=relfile,
                        line=m.line_of(f"dependencies.{dep.name}"),
                        field=f"dependencies.{dep.name}",
                        fix=f"do not depend on {dep.name} versions that depend on {m.name} back, or narrow "
                        "the range",
                    )
                )
    return found


class _WithSelf:
    """The index, with the release under check in place of whatever the index holds for it."""

    def __init__(self, index: IndexTree, m: Manifest) -> None:
        self.index, self.m = index, m

    def releases(self, name: str) -> Sequence[Candidate]:
        if name == self.m.name:
            return [candidate_of(self.m)]
        return self.index.releases(name)
