"""The dependency resolver: every rule of registry_tool.client.resolve, against a table index."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from semantic_version import NpmSpec, Version

from registry_tool.resolve import (
    Candidate,
    Dependency,
    DependencyConflictError,
    DependencyCycleError,
    Installed,
    Need,
    UnknownPluginError,
    resolve,
)


def matches(spec: str, version: str) -> bool:
    return bool(NpmSpec(spec).match(Version(version)))


class TableIndex:
    """name -> releases; counts lookups so tests can check what was read."""

    def __init__(self, table: dict[str, list[Candidate]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    def releases(self, name: str) -> Sequence[Candidate]:
        self.lookups.append(name)
        if name not in self.table:
            raise UnknownPluginError(f"plugin {name!r} is not in the registry")
        return self.table[name]


def rel(name: str, version: str, *deps: str, **kw: object) -> Candidate:
    parsed = []
    for d in deps:
        optional = d.endswith("?")
        n, _, r = d.rstrip("?").partition("@")
        parsed.append(Dependency(n, r, optional=optional))
    return Candidate(name, version, tuple(parsed), **kw)  # type: ignore[arg-type]


def test_single_plugin_without_dependencies() -> None:
    plan = resolve([Need("a")], TableIndex({"a": [rel("a", "1.0.0"), rel("a", "1.1.0")]}), matches)
    assert {n: c.version for n, c in plan.selected.items()} == {"a": "1.1.0"}
    assert plan.added == ["a"]


def test_diamond_dependencies_share_one_version() -> None:
    index = TableIndex(
        {
            "app": [rel("app", "1.0.0", "left@^1", "right@^1")],
            "left": [rel("left", "1.0.0", "base@>=1.1.0 <2.0.0")],
            "right": [rel("right", "1.0.0", "base@~1.2.0")],
            "base": [rel("base", "1.1.0"), rel("base", "1.2.5"), rel("base", "1.3.0"), rel("base", "2.0.0")],
        }
    )
    plan = resolve([Need("app")], index, matches)
    assert plan.selected["base"].version == "1.2.5"
    assert plan.required_by["base"] == ("left", "right")
    assert plan.order().index("base") < plan.order().index("left") < plan.order().index("app")


def test_conflict_names_each_requirement() -> None:
    index = TableIndex(
        {
            "app": [rel("app", "1.0.0", "left@^1", "right@^1")],
            "left": [rel("left", "1.0.0", "base@^1")],
            "right": [rel("right", "1.0.0", "base@^2")],
            "base": [rel("base", "1.0.0"), rel("base", "2.0.0")],
        }
    )
    with pytest.raises(DependencyConflictError) as info:
        resolve([Need("app")], index, matches)
    text = info.value.diagnostics()
    assert "left 1.0.0 needs base ^1" in text and "right 1.0.0 needs base ^2" in text
    assert "base: 1.0.0, 2.0.0" in text


def test_backtracks_to_an_older_dependency() -> None:
    index = TableIndex(
        {
            "top": [rel("top", "1.0.0", "app@>=1")],
            "app": [rel("app", "1.0.0", "lib@^1"), rel("app", "2.0.0", "lib@^2")],
            "lib": [rel("lib", "1.4.0")],
        }
    )
    plan = resolve([Need("top")], index, matches)
    assert plan.selected["app"].version == "1.0.0"


def test_a_requested_plugin_gets_its_highest_allowed_release_or_a_conflict() -> None:
    # Conformance decision 16.1 (and the Go and Rust verifiers): app 2.0.0 needs lib ^2, which no
    # release meets, so installing app is a dependency-conflict, not a quiet app 1.0.0.
    index = TableIndex(
        {
            "app": [rel("app", "1.0.0", "lib@^1"), rel("app", "2.0.0", "lib@^2")],
            "lib": [rel("lib", "1.4.0")],
        }
    )
    with pytest.raises(DependencyConflictError, match=r"app 2\.0\.0 needs lib \^2"):
        resolve([Need("app", highest=True)], index, matches)
    assert resolve([Need("app", "^1", highest=True)], index, matches).selected["app"].version == "1.0.0"
    # update re-resolves what is installed without that rule: app moves as far as lib allows.
    assert resolve([Need("app")], index, matches).selected["app"].version == "1.0.0"


def test_cycle_is_refused() -> None:
    index = TableIndex({"a": [rel("a", "1.0.0", "b@^1")], "b": [rel("b", "1.0.0", "a@^1")]})
    with pytest.raises(DependencyCycleError, match=r"a 1\.0\.0 -> b 1\.0\.0 -> a 1\.0\.0"):
        resolve([Need("a")], index, matches)


def test_self_dependency_is_a_cycle() -> None:
    with pytest.raises(DependencyCycleError):
        resolve([Need("a")], TableIndex({"a": [rel("a", "1.0.0", "a@^1")]}), matches)


def test_yanked_dependency_never_chosen_by_a_range() -> None:
    index = TableIndex(
        {
            "app": [rel("app", "1.0.0", "lib@^1")],
            "lib": [rel("lib", "1.0.0"), rel("lib", "1.1.0", yanked=True)],
        }
    )
    assert resolve([Need("app")], index, matches).selected["lib"].version == "1.0.0"


def test_only_yanked_dependency_is_a_conflict() -> None:
    index = TableIndex({"app": [rel("app", "1.0.0", "lib@^1")], "lib": [rel("lib", "1.1.0", yanked=True)]})
    with pytest.raises(DependencyConflictError, match=r"app 1\.0\.0 needs lib"):
        resolve([Need("app")], index, matches)


def test_exact_user_pin_may_select_a_yanked_release() -> None:
    index = TableIndex({"lib": [rel("lib", "1.1.0", yanked=True)]})
    plan = resolve([Need("lib", "1.1.0", exact=True)], index, matches)
    assert plan.selected["lib"].version == "1.1.0"


def test_installed_yanked_version_is_kept() -> None:
    index = TableIndex({"app": [rel("app", "1.0.0", "lib@^1")], "lib": [rel("lib", "1.1.0", yanked=True)]})
    plan = resolve([Need("app")], index, matches, installed={"lib": Installed("1.1.0")})
    assert plan.selected["lib"].version == "1.1.0" and plan.kept == ["lib"]


def test_host_incompatible_releases_are_skipped() -> None:
    index = TableIndex(
        {
            "app": [rel("app", "1.0.0", "lib@^1")],
            "lib": [rel("lib", "1.0.0"), rel("lib", "1.5.0", host_ok=False)],
        }
    )
    assert resolve([Need("app")], index, matches).selected["lib"].version == "1.0.0"


def test_installed_version_preferred_then_updated() -> None:
    index = TableIndex(
        {"app": [rel("app", "1.0.0", "lib@^1")], "lib": [rel("lib", "1.0.0"), rel("lib", "1.2.0")]}
    )
    installed = {"lib": Installed("1.0.0")}
    kept = resolve([Need("app")], index, matches, installed=installed)
    assert kept.selected["lib"].version == "1.0.0" and kept.kept == ["lib"] and kept.added == ["app"]
    updated = resolve([Need("app")], index, matches, installed=installed, prefer_installed=False)
    assert updated.upgraded == [("lib", "1.0.0", "1.2.0")]


def test_installed_dependents_constrain_the_plan() -> None:
    # "other" is installed and needs lib ^1; installing app must not move lib to 2.x under it.
    index = TableIndex(
        {
            "app": [rel("app", "1.0.0", "lib@>=1.0.0"), rel("app", "0.9.0", "lib@>=1.0.0")],
            "lib": [rel("lib", "1.0.0"), rel("lib", "2.0.0")],
        }
    )
    installed = {"other": Installed("1.0.0", (Dependency("lib", "^1"),)), "lib": Installed("1.0.0")}
    plan = resolve([Need("app")], index, matches, installed=installed, prefer_installed=False)
    assert plan.selected["lib"].version == "1.0.0"


def test_installed_dependent_that_cannot_hold_is_a_conflict() -> None:
    index = TableIndex(
        {"app": [rel("app", "1.0.0", "lib@^2")], "lib": [rel("lib", "1.0.0"), rel("lib", "2.0.0")]}
    )
    installed = {"other": Installed("1.0.0", (Dependency("lib", "^1"),)), "lib": Installed("1.0.0")}
    with pytest.raises(DependencyConflictError, match=r"other 1\.0\.0 needs lib"):
        resolve([Need("app")], index, matches, installed=installed)


def test_optional_dependency_followed_only_when_present() -> None:
    index = TableIndex(
        {"app": [rel("app", "1.0.0", "extra@^1?")], "extra": [rel("extra", "1.0.0"), rel("extra", "2.0.0")]}
    )
    alone = resolve([Need("app")], index, matches)
    assert set(alone.selected) == {"app"} and "extra" not in index.lookups
    with_extra = resolve([Need("app"), Need("extra")], index, matches)
    assert with_extra.selected["extra"].version == "1.0.0"


def test_locked_versions_are_reproduced_exactly() -> None:
    index = TableIndex(
        {"app": [rel("app", "1.0.0", "lib@^1")], "lib": [rel("lib", "1.0.0"), rel("lib", "1.9.0")]}
    )
    plan = resolve([Need("app")], index, matches, locked={"app": "1.0.0", "lib": "1.0.0"})
    assert plan.selected["lib"].version == "1.0.0"


def test_unknown_requested_plugin_is_reported_by_the_index() -> None:
    with pytest.raises(UnknownPluginError, match="ghost"):
        resolve([Need("ghost")], TableIndex({"app": [rel("app", "1.0.0")]}), matches)


def test_unknown_dependency_rules_its_release_out_with_a_reason() -> None:
    index = TableIndex({"app": [rel("app", "1.0.0", "ghost@^1")]})
    with pytest.raises(
        DependencyConflictError, match=r"app 1\.0\.0 needs ghost, which is not in the registry"
    ):
        resolve([Need("app")], index, matches)


def test_release_with_an_unsatisfiable_edge_is_skipped_for_an_older_one() -> None:
    index = TableIndex(
        {
            "top": [rel("top", "1.0.0", "app@^1")],
            "app": [rel("app", "1.0.0", "lib@^1"), rel("app", "1.1.0", "lib@^1", "gone@^3")],
            "lib": [rel("lib", "1.0.0")],
            "gone": [rel("gone", "1.0.0")],
        }
    )
    assert resolve([Need("top")], index, matches).selected["app"].version == "1.0.0"


def test_deep_conflict_explains_the_ruled_out_releases() -> None:
    table = {f"p{i}": [rel(f"p{i}", f"1.{v}.0", f"p{i + 1}@^1") for v in range(4)] for i in range(10)}
    table["p10"] = [rel("p10", f"1.{v}.0", "leaf@^9") for v in range(4)]
    table["leaf"] = [rel("leaf", "1.0.0")]
    with pytest.raises(DependencyConflictError) as info:
        resolve([Need("p0")], TableIndex(table), matches)
    what = info.value.what
    assert "p0 1.3.0 needs p1 ^1 -> p1 1.3.0 needs p2 ^1 -> " in what
    assert what.endswith("p10 1.3.0 needs leaf ^9, which no usable release matches")


def test_union_of_permissions() -> None:
    index = TableIndex(
        {
            "app": [rel("app", "1.0.0", "net@^1", permissions=("keys",))],
            "net": [rel("net", "1.0.0", permissions=("network",))],
        }
    )
    assert resolve([Need("app")], index, matches).permissions == {"keys", "network"}


def test_fifty_plugin_chain_resolves() -> None:
    table = {f"p{i}": [rel(f"p{i}", f"1.{v}.0", f"p{i + 1}@^1") for v in range(5)] for i in range(49)}
    table["p49"] = [rel("p49", "1.0.0")]
    plan = resolve([Need("p0")], TableIndex(table), matches)
    assert len(plan.selected) == 50 and plan.order()[0] == "p49"


def _reverse(installed: dict[str, Installed]) -> dict[str, set[str]]:
    users: dict[str, set[str]] = {}
    for owner, info in installed.items():
        for dep in info.dependencies:
            users.setdefault(dep.name, set()).add(owner)
    return users


def test_installed_edges_through_the_reverse_index_give_the_same_plan() -> None:
    """What a client passes (the lockfile's reverse index) decides exactly as the full scan."""
    index = TableIndex(
        {
            "app": [rel("app", "1.0.0", "lib@>=1.0.0"), rel("app", "0.9.0", "lib@>=1.0.0")],
            "lib": [rel("lib", "1.0.0"), rel("lib", "2.0.0")],
        }
    )
    installed = {"other": Installed("1.0.0", (Dependency("lib", "^1"),)), "lib": Installed("1.0.0")}
    installed.update({f"p{i}": Installed("1.0.0") for i in range(50)})  # plugins nowhere near the plan
    users = _reverse(installed)
    looked_up: list[str] = []

    def dependents(name: str) -> set[str]:
        looked_up.append(name)
        return users.get(name, set())

    full = resolve([Need("app")], index, matches, installed=installed, prefer_installed=False)
    fast = resolve(
        [Need("app")], index, matches, installed=installed, prefer_installed=False, dependents=dependents
    )
    assert fast.selected == full.selected and fast.selected["lib"].version == "1.0.0"
    assert set(looked_up) <= {"app", "lib"}  # only the plan's names, never the 50 others


def test_installed_edge_broken_is_found_through_the_reverse_index() -> None:
    index = TableIndex(
        {"app": [rel("app", "1.0.0", "lib@^2")], "lib": [rel("lib", "1.0.0"), rel("lib", "2.0.0")]}
    )
    installed = {"other": Installed("1.0.0", (Dependency("lib", "^1"),)), "lib": Installed("1.0.0")}
    users = _reverse(installed)
    with pytest.raises(DependencyConflictError, match=r"other 1\.0\.0 needs lib"):
        resolve([Need("app")], index, matches, installed=installed, dependents=lambda n: users.get(n, set()))
    # An index that does not name the dependent misses the edge: the index is what is consulted.
    plan = resolve([Need("app")], index, matches, installed=installed, dependents=lambda n: set())
    assert plan.selected["lib"].version == "2.0.0"


def _chain(n: int, *, loop: bool = False) -> TableIndex:
    """p0000 -> p0001 -> ... -> p{n-1} (and back to p0000 with ``loop``): what a hostile index can publish."""
    names = [f"p{i:04d}" for i in range(n)]
    table = {}
    for i, name in enumerate(names):
        nxt = names[i + 1] if i + 1 < n else (names[0] if loop else None)
        table[name] = [rel(name, "1.0.0", *([f"{nxt}@^1"] if nxt else []))]
    return TableIndex(table)


@pytest.mark.parametrize("n", [200, 700, 3000])
def test_a_long_dependency_chain_is_resolved_or_refused_by_name_never_a_recursion_error(n: int) -> None:
    try:
        plan = resolve([Need("p0000")], _chain(n), matches)
    except DependencyConflictError as err:  # resolvelib takes a round per plugin
        assert n > 2000 and "gave up after 2000 rounds" in err.what
        return
    assert len(plan.selected) == n
    order = plan.order()
    assert order[0] == f"p{n - 1:04d}" and order[-1] == "p0000"


def test_order_and_cycle_check_walk_long_chains_without_recursion() -> None:
    from registry_tool.resolve import Plan, _cycle

    n = 5000
    selected = {name: releases[0] for name, releases in _chain(n).table.items()}
    assert _cycle(selected) is None
    assert Plan(selected, {}).order() == [f"p{i:04d}" for i in reversed(range(n))]
    looped = {name: releases[0] for name, releases in _chain(n, loop=True).table.items()}
    found = _cycle(looped)
    assert found is not None and found[0] == found[-1] == "p0000" and len(found) == n + 1


def test_a_cycle_behind_a_backed_out_branch_is_a_named_refusal() -> None:
    """resolvelib's walk back to the root has no visited set: after the search backs out of a
    branch holding a cycle (c 3.0.0 -> b -> a -> b), it recursed until RecursionError."""
    index = TableIndex(
        {
            "c": [rel("c", "3.0.0", "b"), rel("c", "0.2.0")],
            "b": [rel("b", "1.0.0", "c@<3.0.0", "a")],
            "a": [rel("a", "1.0.0", "b")],
        }
    )
    with pytest.raises((DependencyCycleError, DependencyConflictError)):
        resolve([Need("c")], index, matches)


def test_a_maintainer_with_many_releases_costs_the_resolver_linear_work() -> None:
    """xx 1.i.0 needs yy >=1.i.0, 1,500 of each: every xx release was checked against every yy
    release (2.25 M range matches, 16 s and 290 MB for one install)."""
    n = 1500
    index = TableIndex(
        {
            "xapp": [rel("xapp", "1.0.0", "xx@*")],
            "xx": [rel("xx", f"1.{i}.0", f"yy@>=1.{i}.0") for i in range(n)],
            "yy": [rel("yy", f"1.{i}.0") for i in range(n)],
        }
    )
    calls = 0

    def counted(spec: str, version: str) -> bool:
        nonlocal calls
        calls += 1
        return matches(spec, version)

    plan = resolve([Need("xapp")], index, counted)
    assert {n: c.version for n, c in plan.selected.items()} == {
        "xapp": "1.0.0",
        "xx": f"1.{n - 1}.0",
        "yy": f"1.{n - 1}.0",
    }
    assert calls < 20 * n, calls
