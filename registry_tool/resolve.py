"""Dependency resolution: which releases to install together (pure, no I/O).

Shared by the client (install, update, remove), ``ci check`` and ``build``.

The client asks this module for a *plan*: given what the user requested, what is installed
(with the dependency edges the lockfile recorded) and a way to list a plugin's releases, pick
one release per plugin so that every requirement holds, using resolvelib (pip's resolver)
for the backtracking search.  Rules, each with a test in tests/test_resolve.py:

* a range never selects a yanked release; only the user's exact pin (``name@1.2.3``) or a
  version already installed may keep one;
* releases whose host range excludes the host version are never candidates;
* installed versions are preferred when they satisfy every requirement (installing B does not
  silently upgrade an installed A); ``update`` passes ``prefer_installed=False``;
* a requirement of an installed plugin that the plan would break is added to the search and
  resolved again, so a plan never leaves the directory incoherent;
* an optional dependency is followed only when that plugin is installed or requested;
* a cycle in the chosen graph is refused: plugins are loaded in dependency order;
* a conflict names every requirement involved ("a 1.0.0 needs b ^1, c 2.0.0 needs b ^2"),
  not a stack of versions.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from resolvelib import AbstractProvider, BaseReporter, Resolver
from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep
from semantic_version import Version

from registry_tool.errors import CheckFailed, UsageError


class UnknownPluginError(UsageError):
    """A requirement names a plugin the index does not hold."""

    code = "dependency-unknown"


class DependencyConflictError(UsageError):
    """No set of releases satisfies every requirement."""

    code = "dependency-conflict"


class DependencyCycleError(CheckFailed):
    """The chosen releases depend on each other in a cycle."""

    code = "dependency-cycle"


@dataclass(frozen=True)
class Dependency:
    """One edge declared by a release: ``name`` within ``range`` ("" accepts any version)."""

    name: str
    range: str = ""
    optional: bool = False


@dataclass(frozen=True)
class Candidate:
    """One release as the resolver sees it (built from a verified plugin document)."""

    name: str
    version: str
    dependencies: tuple[Dependency, ...] = ()
    yanked: bool = False
    host_ok: bool = True  # the release's host range admits the host version (or there is none)
    permissions: tuple[str, ...] = ()

    def __str__(self) -> str:
        """``name version``, as messages show a release."""
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class Need:
    """A requirement: ``name`` within ``range``, asked by ``parent`` (None: the user)."""

    name: str
    range: str = ""
    parent: Candidate | None = None
    exact: bool = False  # an exact pin by the user: the only way to newly select a yanked release
    #: The plugin a user names in ``install``: it gets the highest release its range allows or the
    #: install is a conflict (conformance decision 16.1); ``update`` re-resolves without it.
    highest: bool = False

    def describe(self) -> str:
        """Who needs what, as messages say it (``you need x ^1`` or ``a 1.0.0 needs x ^1``)."""
        who = "you" if self.parent is None else str(self.parent)
        return (
            f"{who} need{'s' if self.parent is not None else ''} {self.name} {self.range or '(any version)'}"
        )


class ReleaseIndex(Protocol):
    """Lists a plugin's releases (the client reads them from verified plugin documents)."""

    def releases(self, name: str) -> Sequence[Candidate]:
        """Every release of ``name``; raise (e.g. ``UnknownPluginError``) for an unknown plugin."""
        ...


RangeMatcher = Callable[[str, str], bool]  # (range, version) -> matches


@dataclass(frozen=True)
class Installed:
    """What the lockfile says about an installed plugin."""

    version: str
    dependencies: tuple[Dependency, ...] = ()


@dataclass
class Plan:
    """The resolved set, and how it differs from what is installed."""

    selected: dict[str, Candidate]
    required_by: dict[str, tuple[str, ...]]
    added: list[str] = field(default_factory=list)
    upgraded: list[tuple[str, str, str]] = field(default_factory=list)  # name, from, to
    downgraded: list[tuple[str, str, str]] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def order(self) -> list[str]:
        """Names in dependency order (dependencies first); the graph is acyclic."""
        out: list[str] = []
        seen: set[str] = set()
        # Depth first with an explicit stack: a chain of a thousand plugins is no RecursionError.
        for start in sorted(self.selected):
            if start in seen:
                continue
            seen.add(start)
            stack = [(start, self._next(start))]
            while stack:
                name, deps = stack[-1]
                for dep in deps:
                    if dep not in seen:
                        seen.add(dep)
                        stack.append((dep, self._next(dep)))
                        break
                else:
                    stack.pop()
                    out.append(name)
        return out

    def _next(self, name: str) -> Iterator[str]:
        return (
            d.name for d in _followed(self.selected[name], self.selected.keys()) if d.name in self.selected
        )

    @property
    def permissions(self) -> frozenset[str]:
        """The union of permissions of every selected release (asked for once)."""
        return frozenset(p for c in self.selected.values() for p in c.permissions)


@dataclass
class _Check:
    """One release on ``_Provider._viable``'s stack.

    Its dependencies left, and for the one being checked, its allowed releases and how many of
    them were found not viable.
    """

    candidate: Candidate
    deps: Iterator[Dependency]
    dep: Dependency | None = None
    need: Need | None = None
    pool: Sequence[Candidate] = ()
    #: The dependency's allowed releases not yet looked at, read lazily: the first viable one ends
    #: the check (a list of all of them cost each of 1,500 releases a pass over 1,500 others).
    allowed: Iterator[Candidate] = field(default_factory=lambda: iter(()))
    current: Candidate | None = None


def _followed(candidate: Candidate, present: Container[str]) -> Iterator[Dependency]:
    """Required dependencies, and optional ones whose plugin is present."""
    for dep in candidate.dependencies:
        if not dep.optional or dep.name in present:
            yield dep


class _Present:
    """Installed or requested: looked up by name, never copied (installed may hold thousands)."""

    def __init__(self, installed: Mapping[str, Installed], requested: set[str]) -> None:
        self.installed, self.requested = installed, requested

    def __contains__(self, name: object) -> bool:
        return name in self.requested or name in self.installed


class _Provider(AbstractProvider):  # type: ignore[type-arg]
    def __init__(
        self,
        index: ReleaseIndex,
        matches: RangeMatcher,
        installed: Mapping[str, Installed],
        requested: set[str],
        prefer_installed: bool,
        locked: Mapping[str, str],
    ) -> None:
        self.index = index
        self.matches = matches
        self.installed = installed
        self.present = _Present(installed, requested)
        self.prefer_installed = prefer_installed
        self.locked = locked
        self._cache: dict[str, Sequence[Candidate]] = {}
        self._descending: dict[str, Sequence[Candidate]] = {}
        self._viable_cache: dict[tuple[str, str], bool] = {}
        self._match_cache: dict[tuple[str, str], bool] = {}
        # (name, version) -> why it was ruled out, and the dependency release the reason goes through
        self._why: dict[tuple[str, str], tuple[str, Candidate | None]] = {}

    def _allowed_newest_first(self, need: Need) -> Iterator[Candidate]:
        """The releases ``need`` allows, highest first, read lazily (bound to this ``need``)."""
        return (r for r in self._newest_first(need.name) if self._allowed(r, [need]))

    def _newest_first(self, name: str) -> Sequence[Candidate]:
        if name not in self._descending:
            self._descending[name] = sorted(
                self.releases(name), key=lambda c: Version(c.version), reverse=True
            )
        return self._descending[name]

    def releases(self, name: str) -> Sequence[Candidate]:
        if name not in self._cache:
            self._cache[name] = self.index.releases(name)
        return self._cache[name]

    def identify(self, requirement_or_candidate: Any) -> str:
        return str(requirement_or_candidate.name)

    def get_preference(
        self, identifier: Any, resolutions: Any, candidates: Any, information: Any, backtrack_causes: Any
    ) -> Any:
        # Pinned plugins first, then the most constrained: fewer backtracks.
        return (identifier not in self.locked, sum(1 for _ in candidates[identifier]))

    def _allowed(self, c: Candidate, needs: list[Need]) -> bool:
        if self.locked.get(c.name, c.version) != c.version:
            return False
        if not c.host_ok:
            return False
        if c.yanked:
            keeps = self.installed.get(c.name)
            if not (
                any(n.exact and n.parent is None for n in needs)
                or (keeps is not None and keeps.version == c.version)
                or self.locked.get(c.name) == c.version
            ):
                return False
        return all(self._satisfies(n, c) for n in needs)

    def _satisfies(self, need: Need, c: Candidate) -> bool:
        if not need.range:
            # "any version": a prerelease is never picked implicitly.
            return not Version(c.version).prerelease or self.locked.get(c.name) == c.version
        key = (need.range, c.version)  # a graph repeats a few ranges over the same versions
        hit = self._match_cache.get(key)
        if hit is None:
            hit = self._match_cache[key] = self.matches(need.range, c.version)
        return hit

    def find_matches(self, identifier: Any, requirements: Any, incompatibilities: Any) -> Any:
        needs = list(requirements[identifier])
        bad = {c.version for c in incompatibilities[identifier]}
        if any(n.highest for n in needs):
            # A requested plugin gets the highest release its requirement allows (conformance
            # decision 16.1), never a lower one because the highest one's dependencies cannot be
            # met: that is a dependency-conflict, not a quiet downgrade of what was asked for.
            allowed = [c for c in self.releases(identifier) if self._allowed(c, needs)]
            best = max(allowed, key=lambda c: Version(c.version), default=None)
            return [best] if best is not None and best.version not in bad and self._viable(best) else []
        pool = [
            c
            for c in self.releases(identifier)
            if c.version not in bad and self._allowed(c, needs) and self._viable(c)
        ]
        keeps = self.installed.get(identifier)

        def rank(c: Candidate) -> tuple[bool, Version]:
            preferred = self.prefer_installed and keeps is not None and keeps.version == c.version
            return (preferred, Version(c.version))

        return sorted(pool, key=rank, reverse=True)

    def _viable(self, c: Candidate) -> bool:
        """False when one of ``c``'s dependencies matches no usable (itself viable) release at all.

        Such a release can never be in a plan; pruning it here keeps resolvelib from
        backtracking through every combination above it (seconds for a deep 50-plugin graph).
        Transitively: a release all of whose matches are ruled out is ruled out too, and a cycle
        counts as viable while it is being checked (``_cycle`` refuses it later).  Depth first
        with an explicit stack: a chain of thousands of plugins is no RecursionError.
        """
        key = (c.name, c.version)
        if key in self._viable_cache:
            return self._viable_cache[key]
        self._viable_cache[key] = True
        stack = [_Check(c, _followed(c, self.present))]
        while stack:
            check = stack[-1]
            if check.dep is None:  # the next dependency of check.candidate
                dep = next(check.deps, None)
                if dep is None:
                    stack.pop()  # every dependency has a viable match: stays viable
                    continue
                try:
                    pool = self.releases(dep.name)
                except UnknownPluginError:
                    self._rule_out(
                        check.candidate,
                        f"{check.candidate} needs {dep.name}, which is not in the registry",
                        None,
                    )
                    stack.pop()
                    continue
                need = Need(dep.name, dep.range, parent=check.candidate)
                check.dep, check.need, check.pool = dep, need, pool
                # Highest first, as the resolver prefers: most ranges (>=, ^, ~, *) match there.
                check.allowed = self._allowed_newest_first(need)
            # The allowed releases in order, until one is viable (a finished check left its verdict).
            while True:
                match = check.current if check.current is not None else next(check.allowed, None)
                check.current = match
                if match is None:
                    assert check.need is not None
                    allowed = [r for r in check.pool if self._allowed(r, [check.need])]
                    via = max(allowed, key=lambda r: Version(r.version)) if allowed else None
                    range_ = check.dep.range or "(any version)"
                    why = f"{check.candidate} needs {check.dep.name} {range_}" + (
                        "" if via else ", which no usable release matches"
                    )
                    self._rule_out(check.candidate, why, via)
                    stack.pop()
                    break
                known = self._viable_cache.get((match.name, match.version))
                if known is None:
                    self._viable_cache[(match.name, match.version)] = True
                    stack.append(_Check(match, _followed(match, self.present)))
                    break
                check.current = None
                if known:
                    check.dep = None
                    break
        return self._viable_cache[key]

    def _rule_out(self, c: Candidate, why: str, via: Candidate | None) -> None:
        self._viable_cache[(c.name, c.version)] = False
        self._why[(c.name, c.version)] = (why, via)

    def explain(self, name: str) -> str | None:
        """Why the newest ruled-out release of ``name`` cannot be used: the chain to the root cause."""
        ruled = [c for c in self.releases(name) if self._why.get((c.name, c.version))]
        if not ruled:
            return None
        c: Candidate | None = max(ruled, key=lambda r: Version(r.version))
        steps: list[str] = []
        while c is not None and len(steps) < 64:
            why, via = self._why[(c.name, c.version)]
            steps.append(why)
            c = via if via is not None and (via.name, via.version) in self._why else None
        return " -> ".join(steps)

    def is_satisfied_by(self, requirement: Any, candidate: Any) -> bool:
        return self._allowed(candidate, [requirement])

    def get_dependencies(self, candidate: Any) -> Any:
        return [Need(d.name, d.range, parent=candidate) for d in _followed(candidate, self.present)]


def _conflict(err: ResolutionImpossible, provider: _Provider) -> DependencyConflictError:  # type: ignore[type-arg]
    causes = sorted({info.requirement.describe() for info in err.causes})
    names = sorted({info.requirement.name for info in err.causes})
    available = []
    for name in names:
        versions = sorted((c.version for c in provider.releases(name)), key=Version)
        available.append(f"{name}: {', '.join(versions) or 'no releases'}")
    ruled_out = [why for why in map(provider.explain, names) if why]
    if ruled_out:
        causes.append("ruled out: " + "; ".join(ruled_out))
    return DependencyConflictError(
        "no set of releases satisfies every requirement: " + "; ".join(causes),
        fix="available "
        + "; ".join(available)
        + ". Relax a range, or remove/upgrade the plugin that asks for it",
    )


def _cycle(selected: Mapping[str, Candidate]) -> list[str] | None:
    """A dependency cycle among ``selected`` (its names, first repeated at the end), or None.

    Depth first with an explicit stack (1: on the path, 2: done), so a long chain is no
    RecursionError.
    """
    state: dict[str, int] = {}

    def deps(name: str) -> Iterator[str]:
        return (d.name for d in _followed(selected[name], selected.keys()) if d.name in selected)

    for start in sorted(selected):
        if start in state:
            continue
        state[start] = 1
        path, pending = [start], [deps(start)]
        while pending:
            for dep in pending[-1]:
                if state.get(dep) == 1:
                    return [*path[path.index(dep) :], dep]
                if dep not in state:
                    state[dep] = 1
                    path.append(dep)
                    pending.append(deps(dep))
                    break
            else:
                pending.pop()
                state[path.pop()] = 2
    return None


def resolve(
    requests: Sequence[Need],
    index: ReleaseIndex,
    matches: RangeMatcher,
    *,
    installed: Mapping[str, Installed] | None = None,
    prefer_installed: bool = True,
    locked: Mapping[str, str] | None = None,
    max_rounds: int = 2000,
    dependents: Callable[[str], Iterable[str]] | None = None,
) -> Plan:
    """Resolve ``requests`` and their dependency graph into a ``Plan`` (or raise).

    ``installed`` maps installed plugin names to their lockfile data; their recorded
    dependency edges are kept satisfied.  ``locked`` pins names to exact versions
    (``install --locked``).  ``dependents`` (name -> the installed plugins whose recorded
    dependencies name it, a superset is fine) lets the check of installed edges look only at
    the plugins around the plan instead of every installed plugin: with it, the cost of a
    resolution does not grow with the plugins installed.  ``installed`` is only read.
    """
    installed = installed if installed is not None else {}
    locked = dict(locked or {})
    roots = list(requests)
    requested = {n.name for n in roots}
    rounds = 0
    while True:
        rounds += 1
        if rounds > 1 and rounds > len(installed) + 1:  # pragma: no cover - each round adds an edge
            raise DependencyConflictError("dependency resolution did not settle", fix="pin versions exactly")
        provider = _Provider(index, matches, installed, requested, prefer_installed, locked)
        try:
            result = Resolver(provider, BaseReporter()).resolve(roots, max_rounds=max_rounds)
        except ResolutionImpossible as err:
            raise _conflict(err, provider) from None
        except ResolutionTooDeep:
            raise DependencyConflictError(
                f"dependency resolution gave up after {max_rounds} rounds",
                fix="pin the plugins you need exactly (name@1.2.3) to narrow the search",
            ) from None
        except RecursionError:
            # resolvelib (1.2) walks back to the root without a visited set: after backing out of
            # a branch that holds a dependency cycle, that walk never ends.
            raise DependencyCycleError(
                "dependency resolution met a dependency cycle it could not back out of",
                fix="plugins are loaded in dependency order, so a cycle cannot be installed; "
                "pin versions exactly, or ask the maintainers to break the cycle",
            ) from None
        selected: dict[str, Candidate] = dict(result.mapping)
        # Installed plugins outside the plan keep their versions: their recorded edges must hold.
        owners = (
            sorted(installed.items())
            if dependents is None
            else sorted(
                (owner, installed[owner])
                for owner in {o for name in selected for o in dependents(name)}
                if owner in installed
            )
        )
        broken = [
            Need(dep.name, dep.range, parent=Candidate(owner, info.version, info.dependencies))
            for owner, info in owners
            if owner not in selected
            for dep in info.dependencies
            if dep.name in selected and dep.range and not matches(dep.range, selected[dep.name].version)
        ]
        if not broken:
            break
        roots.extend(broken)

    loop = _cycle(selected)
    if loop:
        raise DependencyCycleError(
            "dependency cycle: " + " -> ".join(f"{n} {selected[n].version}" for n in loop),
            fix="plugins are loaded in dependency order, so a cycle cannot be installed; "
            "ask the maintainers to break it",
        )

    parents: dict[str, set[str]] = {name: set() for name in selected}
    for cand in selected.values():
        for dep in _followed(cand, selected.keys()):
            if dep.name in parents:
                parents[dep.name].add(cand.name)
    plan = Plan(selected, {name: tuple(sorted(p)) for name, p in parents.items()})
    for name in sorted(selected):
        new = selected[name].version
        old = installed.get(name)
        if old is None:
            plan.added.append(name)
        elif old.version == new:
            plan.kept.append(name)
        elif Version(new) > Version(old.version):
            plan.upgraded.append((name, old.version, new))
        else:
            plan.downgraded.append((name, old.version, new))
    return plan
