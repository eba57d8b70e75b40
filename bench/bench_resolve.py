"""Benchmark (not a test): resolving a 50-plugin dependency graph in a 10k-release registry.

A synthetic registry of PLUGINS plugins x VERSIONS releases (10,000 by default) where an
application plugin needs a graph of 50 plugins (a layered DAG: each plugin depends on three
plugins of the next layer, with caret ranges on its own major, some releases yanked, some incompatible
with the host).  Prints, measured side by side in one run:

* **resolve**: ``registry_tool.resolve.resolve`` over an index that answers from memory, i.e.
  the resolver's own cost (the client adds one plugin-document fetch per plugin reached, and
  reads only those: the other 9,950 plugins are never listed);
* **floor**: picking the highest matching release per reached plugin with no backtracking
  (one range check per release of a reached plugin), what any resolver must at least do;
* **conflict**: the same graph with one unsatisfiable edge deep down: time to the readable
  error (resolvelib backtracks through every alternative first).

    .venv/bin/python bench/bench_resolve.py [PLUGINS] [VERSIONS]
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from semantic_version import NpmSpec, Version

from registry_tool.resolve import (
    Candidate,
    Dependency,
    DependencyConflictError,
    Need,
    UnknownPluginError,
    resolve,
)

GRAPH = 50


class MemoryIndex:
    def __init__(self, table: dict[str, list[Candidate]]) -> None:
        self.table = table
        self.reads = 0

    def releases(self, name: str) -> Sequence[Candidate]:
        self.reads += 1
        if name not in self.table:
            raise UnknownPluginError(name)
        return self.table[name]


_SPECS: dict[str, NpmSpec] = {}


def matches(spec: str, version: str) -> bool:
    parsed = _SPECS.get(spec)
    if parsed is None:
        parsed = _SPECS[spec] = NpmSpec(spec)
    return bool(parsed.match(Version(version)))


def registry(plugins: int, versions: int, *, broken: bool = False) -> dict[str, list[Candidate]]:
    rng = random.Random(7)
    table: dict[str, list[Candidate]] = {}
    layers = [[f"g{layer}_{i}" for i in range(10)] for layer in range(5)]  # 50 graph plugins
    graph = {name: (layer, i) for layer, names in enumerate(layers) for i, name in enumerate(names)}
    for p in range(plugins):
        name = layers[p // 10][p % 10] if p < GRAPH else f"p{p}"
        releases = []
        for v in range(versions):
            major, minor = 1 + v // 5, v % 5
            deps: tuple[Dependency, ...] = ()
            if name in graph and graph[name][0] < 4:
                layer = graph[name][0]
                i = graph[name][1]
                picks = [layers[layer + 1][(i + k) % 10] for k in (0, 1, 3)]
                # A release of major M needs major M of the next layer: consistent, so a solution
                # exists, but yanked / host-incompatible releases still force choices.
                deps = tuple(Dependency(d, f"^{major}") for d in picks)
            releases.append(
                Candidate(
                    name,
                    f"{major}.{minor}.0",
                    deps,
                    yanked=rng.random() < 0.05,
                    host_ok=rng.random() > 0.05,
                )
            )
        table[name] = releases
    app_deps = tuple(Dependency(n, "") for n in layers[0])
    if broken:  # a deep edge no release satisfies
        last = table[layers[3][0]]
        table[layers[3][0]] = [
            Candidate(
                c.name, c.version, (*c.dependencies, Dependency(layers[4][0], "^999")), c.yanked, c.host_ok
            )
            for c in last
        ]
    table["app"] = [Candidate("app", "1.0.0", app_deps)]
    return table


def timed(fn: object, repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def floor(index: MemoryIndex) -> None:
    seen: set[str] = set()
    todo = ["app"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        best = max(index.releases(name), key=lambda c: Version(c.version))
        for dep in best.dependencies:
            for c in index.releases(dep.name):
                if dep.range:
                    matches(dep.range, c.version)
            todo.append(dep.name)


def main() -> None:
    plugins = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    versions = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    ok = MemoryIndex(registry(plugins, versions))
    plan = resolve([Need("app")], ok, matches)
    reached = ok.reads
    t_resolve = timed(lambda: resolve([Need("app")], MemoryIndex(ok.table), matches))
    t_floor = timed(lambda: floor(MemoryIndex(ok.table)))
    bad = MemoryIndex(registry(plugins, versions, broken=True))

    def conflict() -> None:
        with contextlib.suppress(DependencyConflictError):
            resolve([Need("app")], bad, matches)

    t_conflict = timed(conflict, repeat=3)
    print(f"registry: {plugins:,} plugins x {versions} = {plugins * versions:,} releases")
    print(f"graph: {len(plan.selected) - 1} dependencies chosen, {reached} plugins' releases read")
    print("| resolve | floor | resolve/floor | conflict |")
    print("|---:|---:|---:|---:|")
    print(
        f"| {t_resolve * 1000:.1f} ms | {t_floor * 1000:.1f} ms | {t_resolve / t_floor:.1f} "
        f"| {t_conflict * 1000:.1f} ms |"
    )


if __name__ == "__main__":
    main()
