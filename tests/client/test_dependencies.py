"""Installing a plugin with its dependency graph: plan, one approval, atomic commit, remove, update."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from registry_tool.client import remove_many
from registry_tool.client.errors import (
    ApprovalRequiredError,
    LockfileMismatchError,
    PluginRequiredError,
)
from registry_tool.client.install import DEPENDENCY_ONLY, LOCKFILE, read_lockfile
from registry_tool.client.plugin_fs import PluginDir
from registry_tool.errors import CheckFailed
from registry_tool.registry.build import BuildRefusedError
from registry_tool.resolve import DependencyConflictError, DependencyCycleError
from tests.world.lockfile import fold, line, read_lock, write_lock

from .client_world import NOW, World


def lock_json(world: World) -> dict[str, Any]:
    return read_lock(world.plugins)["plugins"]  # type: ignore[no-any-return]


@pytest.fixture
def deps(trusted: World) -> World:
    """alphalib 1.0.0, 1.1.0, 2.0.0; alphaapp 1.0.0 needs alphalib ^1 (built and served)."""
    for version in ("1.0.0", "1.1.0", "2.0.0"):
        trusted.add_release("alphalib", version)
    trusted.add_release("alphaapp", "1.0.0", dependencies='alphalib = "^1"')
    trusted.build()
    return trusted


def test_install_brings_its_dependency_and_records_the_graph(deps: World) -> None:
    result = deps.open().install_plan(["alphaapp"], deps.plugins)
    assert result.plan.added == ["alphaapp", "alphalib"]
    assert result.plan.order() == ["alphalib", "alphaapp"]
    lock = lock_json(deps)
    assert lock["alphalib"]["version"] == "1.1.0"  # newest in ^1, not 2.0.0
    assert lock["alphalib"]["requested"] == DEPENDENCY_ONLY  # installed only as a dependency
    assert lock["alphalib"]["required_by"] == ["alphaapp"]
    assert lock["alphaapp"]["requested"] == ""  # a plain NAME, as the shared lockfile format records it
    assert lock["alphaapp"]["dependencies"] == {"alphalib": "^1"}


def test_installed_dependency_is_kept_not_upgraded(deps: World) -> None:
    deps.open().install("alphalib@1.0.0", deps.plugins)
    result = deps.open().install_plan(["alphaapp"], deps.plugins)
    assert (result.plan.added, result.plan.kept) == (["alphaapp"], ["alphalib"])
    assert lock_json(deps)["alphalib"]["version"] == "1.0.0"
    assert lock_json(deps)["alphalib"]["requested"] == "1.0.0"  # still asked for by the user


def test_yanked_dependency_is_never_chosen_by_a_range(deps: World) -> None:
    deps.yank("alphalib", "1.1.0", "broken")
    deps.build()
    deps.open().install("alphaapp", deps.plugins)
    assert lock_json(deps)["alphalib"]["version"] == "1.0.0"


def test_dependency_permission_escalation_needs_approval(deps: World) -> None:
    """Installing alphaapp must not smuggle in alphalib's `keys`: the union is asked for once."""
    deps.add_release("alphalib", "1.2.0", permissions=("keys",))
    deps.build()
    before = deps.snapshot()
    with pytest.raises(ApprovalRequiredError, match=r"alphalib 1\.2\.0"):
        deps.open().install("alphaapp", deps.plugins)
    deps.assert_failed_closed(before)
    asked: list[frozenset[str]] = []

    def prompt(release: Any, missing: frozenset[str]) -> bool:
        asked.append(missing)
        return True

    deps.open().install("alphaapp", deps.plugins, prompt=prompt)
    assert asked == [frozenset({"keys"})]
    assert lock_json(deps)["alphalib"]["permissions"] == ["keys"]


def test_partial_failure_of_a_download_installs_nothing(deps: World) -> None:
    deps.open().install("alpha@1.0.0", deps.plugins)
    before = deps.snapshot()
    wasm = deps.site / "plugins/alphalib/1.1.0/alphalib.wasm"
    data = bytearray(wasm.read_bytes())
    data[-1] ^= 1  # same size, another module: nothing of the plan may be written
    wasm.write_bytes(bytes(data))
    with pytest.raises(CheckFailed, match="alphalib"):
        deps.open().install("alphaapp", deps.plugins)
    deps.assert_failed_closed(before)


def test_partial_failure_of_a_write_rolls_back(deps: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write failing after the first release's files are in place: no new file stays, the
    lockfile is untouched (it is written once, last)."""
    deps.open().install("alpha@1.0.0", deps.plugins)
    before = deps.snapshot()
    real = PluginDir.write_atomic

    def failing(self: PluginDir, rel: str, data: bytes, **kwargs: Any) -> None:
        if rel.startswith("alphaapp/"):
            raise OSError("disk full")
        real(self, rel, data, **kwargs)

    monkeypatch.setattr(PluginDir, "write_atomic", failing)
    with pytest.raises(OSError, match="disk full"):
        deps.open().install("alphaapp", deps.plugins)
    monkeypatch.undo()
    deps.assert_failed_closed(before)
    assert not (deps.plugins / "alphalib").exists()


def test_conflict_names_both_requirements(deps: World) -> None:
    deps.add_release("alphatool", "1.0.0", dependencies='alphalib = "^2"')
    deps.build()
    deps.open().install("alphaapp", deps.plugins)
    before = deps.snapshot()
    with pytest.raises(DependencyConflictError) as err:
        deps.open().install("alphatool", deps.plugins)
    assert "alphaapp 1.0.0 needs alphalib ^1" in err.value.what
    assert "alphatool 1.0.0 needs alphalib ^2" in err.value.what
    assert err.value.exit_code == 2
    deps.assert_failed_closed(before)


def test_cycle_is_refused(trusted: World) -> None:
    trusted.add_release("alphaa", "1.0.0", dependencies='alphab = "^1"')
    trusted.add_release("alphab", "1.0.0", dependencies='alphaa = "^1"')
    trusted.build()
    with pytest.raises(DependencyCycleError, match=r"alphaa 1\.0\.0 -> alphab 1\.0\.0 -> alphaa"):
        trusted.open().install("alphaa", trusted.plugins)
    assert not trusted.plugins.joinpath(LOCKFILE).exists()


def test_table_form_and_optional_dependencies(trusted: World) -> None:
    """The index publishes required dependencies only; the client's index-vs-manifest check agrees."""
    trusted.add_release("alphalib", "1.0.0")
    trusted.add_release(
        "alphaapp",
        "1.0.0",
        dependencies='alphalib = { version = "^1" }\nalphaextra = { version = "^1", optional = true }',
    )
    trusted.build()
    trusted.open().install("alphaapp", trusted.plugins)
    lock = lock_json(trusted)
    assert lock["alphaapp"]["dependencies"] == {"alphalib": "^1"}
    assert sorted(lock) == ["alphaapp", "alphalib"]


def test_remove_refuses_a_required_plugin_unless_forced(deps: World) -> None:
    deps.open().install("alphaapp", deps.plugins)
    with pytest.raises(PluginRequiredError, match=r"required by installed plugin.*alphaapp"):
        remove_many(deps.plugins, ["alphalib"])
    assert "alphalib" in read_lockfile(deps.plugins).plugins
    remove_many(deps.plugins, ["alphalib"], force=True)
    assert sorted(read_lockfile(deps.plugins).plugins) == ["alphaapp"]


def test_remove_orphans(deps: World) -> None:
    deps.open().install("alphaapp", deps.plugins)
    deps.open().install("alpha@1.0.0", deps.plugins)
    assert [e.name for e in remove_many(deps.plugins, ["alpha"], orphans=True)] == ["alpha"]
    removed = remove_many(deps.plugins, ["alphaapp"], orphans=True)
    assert sorted(e.name for e in removed) == ["alphaapp", "alphalib"]
    assert read_lockfile(deps.plugins).plugins == {}
    assert not (deps.plugins / "alphalib").exists()


def test_update_resolves_the_whole_graph(deps: World) -> None:
    deps.open().install("alphaapp", deps.plugins)
    deps.add_release("alphalib", "1.2.0")
    deps.build()
    changes = deps.open().update(deps.plugins)
    assert [(old.name, old.version, new.version) for old, new in changes] == [("alphalib", "1.1.0", "1.2.0")]
    assert lock_json(deps)["alphalib"]["required_by"] == ["alphaapp"]


def test_install_locked_reproduces_the_graph_exactly(deps: World, tmp_path: Path) -> None:
    deps.open().install("alphaapp", deps.plugins)
    deps.add_release("alphalib", "1.2.0")
    deps.build()
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(deps.plugins / LOCKFILE, other / LOCKFILE)
    deps.open().install_locked(other)
    assert (other / LOCKFILE).read_bytes() == (deps.plugins / LOCKFILE).read_bytes()
    assert read_lockfile(other).plugins["alphalib"].version == "1.1.0"


def test_build_refuses_an_unknown_dependency(trusted: World) -> None:
    trusted.add_release("alphaapp", "1.0.0", dependencies='alphanone = "^1"')
    with pytest.raises(BuildRefusedError) as err:
        trusted.build()
    assert "dependency-unknown" in {f.rule for r in err.value.report.results for f in r.findings}


def test_a_dependency_only_yanked_releases_satisfy_is_published_with_a_warning_and_not_installed(
    trusted: World,
) -> None:
    """A yank must always publish (ci check refuses a new release depending on it); clients refuse
    to resolve the dependent."""
    trusted.add_release("alphalib", "1.0.0")
    trusted.add_release("alphalib", "2.0.0")
    trusted.yank("alphalib", "1.0.0", "broken")
    trusted.add_release("alphaapp", "1.0.0", dependencies='alphalib = "^1"')
    trusted.build()
    with pytest.raises(DependencyConflictError, match="alphalib \\^1, which no usable release matches"):
        trusted.open().install("alphaapp", trusted.plugins)


def test_cli_prints_the_plan_and_refuses_removing_a_dependency(deps: World) -> None:
    import typer
    from typer.testing import CliRunner

    from registry_tool._cli import client as client_cli

    app = typer.Typer()
    client_cli.register(app)
    app.callback()(lambda: None)
    where = ["--registry", deps.url, "--state-dir", str(deps.state_dir), "--dir", str(deps.plugins)]
    out = CliRunner().invoke(app, ["client", "install", "alphaapp", *where])
    assert out.exit_code == 0, out.output
    assert "added alphaapp 1.0.0" in out.output and "added alphalib 1.1.0" in out.output
    doc = json.loads(
        CliRunner().invoke(app, ["client", "install", "alphaapp", *where, "--format", "json"]).output
    )
    assert doc["plan"]["kept"] == ["alphaapp", "alphalib"] and doc["plan"]["added"] == []
    refused = CliRunner().invoke(app, ["client", "remove", "alphalib", "--dir", str(deps.plugins)])
    assert refused.exit_code == 2 and "--force" in refused.output
    done = CliRunner().invoke(app, ["client", "remove", "alphaapp", "--orphans", "--dir", str(deps.plugins)])
    assert done.exit_code == 0 and "removed alphalib 1.1.0" in done.output


def test_dependency_excluding_the_host_version_is_not_chosen(deps: World) -> None:
    deps.add_release("alphalib", "1.2.0", host=">=0.9.0")
    deps.build()
    deps.open().install("alphaapp", deps.plugins, host_version="0.3.0")
    assert lock_json(deps)["alphalib"]["version"] == "1.1.0"


def test_naming_a_dependency_makes_it_requested_so_orphans_keep_it(deps: World) -> None:
    deps.open().install("alphaapp", deps.plugins)
    deps.open().install("alphalib@^1", deps.plugins)
    assert lock_json(deps)["alphalib"]["requested"] == "^1"
    removed = remove_many(deps.plugins, ["alphaapp"], orphans=True)
    assert [e.name for e in removed] == ["alphaapp"]
    assert sorted(read_lockfile(deps.plugins).plugins) == ["alphalib"]


def test_install_locked_refuses_a_lockfile_missing_a_dependency(deps: World) -> None:
    deps.open().install("alphaapp", deps.plugins)
    raw = read_lock(deps.plugins)
    del raw["plugins"]["alphalib"]
    write_lock(deps.plugins, raw)
    with pytest.raises(LockfileMismatchError, match="alphalib, which the lockfile does not record"):
        deps.open().install_locked(deps.plugins)


@pytest.fixture
def diamond(trusted: World) -> World:
    """alphaleft and alpharight both need alphabase; alphatop needs alphaleft (a chain of two)."""
    trusted.add_release("alphabase", "1.0.0")
    trusted.add_release("alphaleft", "1.0.0", dependencies='alphabase = "^1"')
    trusted.add_release("alpharight", "1.0.0", dependencies='alphabase = "^1"')
    trusted.add_release("alphatop", "1.0.0", dependencies='alphaleft = "^1"')
    trusted.build()
    return trusted


def test_plain_install_is_recorded_as_requested_and_its_dependency_as_dependency_only(deps: World) -> None:
    deps.open().install("alphaapp", deps.plugins)
    lock = read_lockfile(deps.plugins).plugins
    assert (lock["alphaapp"].requested, lock["alphaapp"].dependency_only) == ("", False)
    assert (lock["alphalib"].requested, lock["alphalib"].dependency_only) == (DEPENDENCY_ONLY, True)


def test_orphans_without_names_removes_exactly_the_dependencies_nobody_needs(diamond: World) -> None:
    diamond.open().install_plan(["alphaleft", "alpharight"], diamond.plugins)
    remove_many(diamond.plugins, ["alphaleft"])
    # alphabase is still needed by alpharight: nothing is an orphan.
    assert remove_many(diamond.plugins, [], orphans=True) == []
    remove_many(diamond.plugins, ["alpharight"])
    assert [e.name for e in remove_many(diamond.plugins, [], orphans=True)] == ["alphabase"]
    assert read_lockfile(diamond.plugins).plugins == {}
    assert not (diamond.plugins / "alphabase").exists()


def test_shared_dependency_stays_while_one_dependent_remains(diamond: World) -> None:
    diamond.open().install("alphaleft", diamond.plugins)
    diamond.open().install("alpharight", diamond.plugins)
    removed = remove_many(diamond.plugins, ["alphaleft"], orphans=True)
    assert [e.name for e in removed] == ["alphaleft"]
    assert read_lockfile(diamond.plugins).plugins["alphabase"].required_by == ("alpharight",)
    removed = remove_many(diamond.plugins, ["alpharight"], orphans=True)
    assert sorted(e.name for e in removed) == ["alphabase", "alpharight"]


def test_orphans_are_found_transitively(diamond: World) -> None:
    """alphatop -> alphaleft -> alphabase: once alphatop is gone both become orphans, in one write."""
    diamond.open().install("alphatop", diamond.plugins)
    remove_many(diamond.plugins, ["alphatop"])
    removed = remove_many(diamond.plugins, [], orphans=True)
    assert sorted(e.name for e in removed) == ["alphabase", "alphaleft"]
    assert read_lockfile(diamond.plugins).plugins == {}


def test_plugins_the_user_installed_are_never_orphans(diamond: World) -> None:
    """A plain `install NAME` nobody depends on is not an orphan, nor is a dependency the user named."""
    diamond.open().install("alpharight", diamond.plugins)
    diamond.open().install("alphaleft", diamond.plugins)
    remove_many(diamond.plugins, ["alphaleft"])
    assert remove_many(diamond.plugins, [], orphans=True) == []
    assert sorted(read_lockfile(diamond.plugins).plugins) == ["alphabase", "alpharight"]


def test_explicit_install_of_a_former_dependency_promotes_it(deps: World) -> None:
    deps.open().install("alphaapp", deps.plugins)
    deps.open().install("alphalib", deps.plugins)  # already installed as planned: only relabelled
    entry = read_lockfile(deps.plugins).plugins["alphalib"]
    assert (entry.requested, entry.dependency_only) == ("", False)
    removed = remove_many(deps.plugins, ["alphaapp"], orphans=True)
    assert [e.name for e in removed] == ["alphaapp"]
    assert sorted(read_lockfile(deps.plugins).plugins) == ["alphalib"]


def test_update_keeps_a_dependency_marked_and_marks_a_new_one(deps: World) -> None:
    deps.open().install("alphaapp", deps.plugins)
    deps.add_release("alphaextra", "1.0.0")
    deps.add_release("alphalib", "1.2.0", dependencies='alphaextra = "^1"')
    deps.build()
    reg = deps.open()
    changes = reg.update(deps.plugins)
    assert [(old.name, new.version) for old, new in changes] == [("alphalib", "1.2.0")]
    # The new dependency is said too (it was installed silently, also in JSON).
    assert "installed alphaextra 1.0.0 (a dependency the plan needs)" in reg.notices
    lock = read_lockfile(deps.plugins).plugins
    assert lock["alphalib"].version == "1.2.0"
    assert lock["alphalib"].requested == DEPENDENCY_ONLY
    assert lock["alphaextra"].requested == DEPENDENCY_ONLY
    assert lock["alphaapp"].requested == ""


def test_cli_remove_orphans_without_names(diamond: World) -> None:
    import typer
    from typer.testing import CliRunner

    from registry_tool._cli import client as client_cli

    app = typer.Typer()
    client_cli.register(app)
    app.callback()(lambda: None)
    diamond.open().install("alphaleft", diamond.plugins)
    remove_many(diamond.plugins, ["alphaleft"])
    where = ["--dir", str(diamond.plugins)]
    refused = CliRunner().invoke(app, ["client", "remove", *where])
    assert refused.exit_code == 2
    done = CliRunner().invoke(app, ["client", "remove", "--orphans", *where])
    assert done.exit_code == 0, done.output
    assert "removed alphabase 1.0.0" in done.output


def test_required_by_written_wrong_by_another_client_is_derived_again_on_the_next_write(deps: World) -> None:
    """Later writes only re-derive the entries whose edges changed: never on a lockfile read from disk."""
    deps.open().install_plan(["alphaapp"], deps.plugins)
    path = deps.plugins / LOCKFILE
    doc = fold(path.read_bytes())
    doc["plugins"]["alphalib"]["required_by"] = []  # another implementation got it wrong
    path.write_bytes(line(doc))
    deps.open().install("alpha@1.0.0", deps.plugins)  # touches neither alphaapp nor alphalib
    assert lock_json(deps)["alphalib"]["required_by"] == ["alphaapp"]


def test_required_by_stays_derived_across_writes_in_one_process(deps: World) -> None:
    """The per-change derivation agrees with deriving every entry, write after write."""
    from registry_tool.client.install import with_required_by

    reg = deps.open()
    steps = [
        lambda: reg.install("alphalib@1.0.0", deps.plugins),
        lambda: reg.install("alpha@1.0.0", deps.plugins),
        lambda: reg.install_plan(["alphaapp"], deps.plugins),
        lambda: reg.update(deps.plugins, ["alphalib"]),
        lambda: remove_many(deps.plugins, ["alpha"]),
        lambda: remove_many(deps.plugins, ["alphaapp"]),
    ]
    for number, step in enumerate(steps):
        step()
        plugins = read_lockfile(deps.plugins).plugins
        assert plugins == with_required_by(plugins), number
        expected = ("alphaapp",) if 2 <= number <= 4 else ()
        assert plugins["alphalib"].required_by == expected, number


def test_install_locked_holds_every_dependency_to_its_own_entry(deps: World, tmp_path: Path) -> None:
    """Attack: a dependency republished at its locked version with other bytes and a permission.

    Only the named plugins were compared with what the registry serves, and every release was
    approved with the union of every entry's permissions (``keys``, granted to another plugin).
    """
    deps.add_release("alphakeyed", "1.0.0", permissions=("keys",))
    deps.build()
    deps.open().install("alphakeyed", deps.plugins, allow={"keys"})
    deps.open().install("alphaapp", deps.plugins)
    shutil.rmtree(deps.index / "plugins" / "alphalib" / "1.1.0")
    deps.add_release("alphalib", "1.1.0", permissions=("keys",))  # same version, other bytes
    deps.build(previous=False, now=NOW + timedelta(hours=1))  # an index key holder's republication
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(deps.plugins / LOCKFILE, other / LOCKFILE)
    with pytest.raises(LockfileMismatchError, match=r"alphalib 1\.1\.0"):
        deps.open().install_locked(other, ["alphaapp"])
    assert not (other / "alphalib").exists()
