"""Index-level dependency rules (ci check and build): names exist, ranges match, the graph resolves."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry_tool.manifest.dependencies import IndexTree, check_dependencies
from registry_tool.manifest.model import Manifest, parse_manifest


def manifest_text(name: str, version: str, deps: dict[str, str], perms: tuple[str, ...] = ()) -> str:
    lines = [
        "[plugin]",
        f'name = "{name}"',
        f'version = "{version}"',
        'description = "x"',
        'authors = ["t"]',
        'license = "MIT"',
        'abi = "core"',
        'min_host_version = "0.2.0"',
        "[artifact]",
        'file = "m.wasm"',
        "[exports]",
        'functions = ["f"]',
    ]
    if perms:
        lines += ["[permissions]", *(f"{p} = true" for p in perms)]
    if deps:
        lines += ["[dependencies]", *(f'{k} = "{v}"' for k, v in deps.items())]
    return "\n".join(lines) + "\n"


def publish(
    index: Path,
    name: str,
    version: str,
    deps: dict[str, str] | None = None,
    *,
    perms: tuple[str, ...] = (),
    yanked: bool = False,
) -> None:
    folder = index / "plugins" / name / version
    folder.mkdir(parents=True)
    (folder / "plugin.toml").write_text(manifest_text(name, version, deps or {}, perms), encoding="utf-8")
    if yanked:
        (folder / "yank.toml").write_text('[yank]\nreason = "bad"\n', encoding="utf-8")


def release(tmp: Path, name: str, version: str, deps: dict[str, str]) -> Manifest:
    path = tmp / "new" / name / version / "plugin.toml"
    path.parent.mkdir(parents=True)
    raw = manifest_text(name, version, deps).encode()
    path.write_bytes(raw)
    m, findings = parse_manifest(path, raw, "plugin.toml")
    assert m is not None, findings
    return m


def rules(verdict: object) -> list[str]:
    return [f.rule for f in verdict.findings]  # type: ignore[attr-defined]


def test_resolvable_graph_reports_its_permissions(tmp_path: Path) -> None:
    publish(tmp_path, "schema", "1.2.0", {"fetch": "^1"})
    publish(tmp_path, "fetch", "1.0.0", perms=("network",))
    verdict = check_dependencies(
        release(tmp_path, "app", "1.0.0", {"schema": "^1.2"}), IndexTree(tmp_path), relfile="p"
    )
    assert verdict.findings == []
    assert verdict.graph_permissions == {"network"}  # the smuggled permission is visible
    assert verdict.graph == ("fetch 1.0.0", "schema 1.2.0")


def test_permissions_of_unselected_releases_count_at_every_depth(tmp_path: Path) -> None:
    """schema 1.3.0 is resolved (no dependency), but a client whose host version it excludes gets
    schema 1.2.0, which brings fetch with network: two hops away from app, never resolved here."""
    publish(tmp_path, "schema", "1.2.0", {"fetch": "^1"})
    publish(tmp_path, "schema", "1.3.0")
    publish(tmp_path, "fetch", "1.0.0", {"store": "^1"}, perms=("network",))
    publish(tmp_path, "store", "1.0.0", perms=("keys",))
    verdict = check_dependencies(
        release(tmp_path, "app", "1.0.0", {"schema": "^1.2"}), IndexTree(tmp_path), relfile="p"
    )
    assert verdict.findings == []
    assert verdict.graph == ("schema 1.3.0",)
    assert verdict.graph_permissions == {"network", "keys"}


def test_unknown_dependency_name(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    verdict = check_dependencies(
        release(tmp_path, "app", "1.0.0", {"ghost": "^1"}), IndexTree(tmp_path), relfile="p"
    )
    assert rules(verdict) == ["dependency-unknown"]
    assert verdict.findings[0].line == 14


def test_range_matching_only_yanked_releases(tmp_path: Path) -> None:
    publish(tmp_path, "lib", "1.0.0", yanked=True)
    publish(tmp_path, "lib", "2.0.0")
    verdict = check_dependencies(
        release(tmp_path, "app", "1.0.0", {"lib": "^1"}), IndexTree(tmp_path), relfile="p"
    )
    assert rules(verdict) == ["dependency-unsatisfiable"]
    assert "available: 1.0.0, 2.0.0" in (verdict.findings[0].fix or "")


def test_conflicting_graph(tmp_path: Path) -> None:
    publish(tmp_path, "left", "1.0.0", {"base": "^1"})
    publish(tmp_path, "right", "1.0.0", {"base": "^2"})
    publish(tmp_path, "base", "1.0.0")
    publish(tmp_path, "base", "2.0.0")
    m = release(tmp_path, "app", "1.0.0", {"left": "^1", "right": "^1"})
    verdict = check_dependencies(m, IndexTree(tmp_path), relfile="p")
    assert rules(verdict) == ["dependency-conflict"]
    assert "left 1.0.0 needs base ^1" in verdict.findings[0].message


def test_cycle_through_the_index(tmp_path: Path) -> None:
    publish(tmp_path, "lib", "1.0.0", {"app": "^1"})
    verdict = check_dependencies(
        release(tmp_path, "app", "1.0.0", {"lib": "^1"}), IndexTree(tmp_path), relfile="p"
    )
    assert rules(verdict) == ["dependency-cycle"]


def test_release_under_check_replaces_the_index_copy(tmp_path: Path) -> None:
    # The PR changes app 1.0.0's own folder; the index copy must not be read in its place.
    publish(tmp_path, "app", "1.0.0", {"ghost": "^1"})
    publish(tmp_path, "lib", "1.0.0")
    verdict = check_dependencies(
        release(tmp_path, "app", "1.0.0", {"lib": "^1"}), IndexTree(tmp_path), relfile="p"
    )
    assert verdict.findings == [] and verdict.graph == ("lib 1.0.0",)


def test_validate_parses_dependency_ranges_with_the_client_grammar(tmp_path: Path) -> None:
    """A range the client cannot parse ("v1": the manifest's looser grammar accepts it) is refused
    by validate, not discovered at install time."""
    import shutil

    from registry_tool.manifest import validate_paths

    root = Path(__file__).resolve().parents[2] / "index"
    release_dir = tmp_path / "plugins" / "email_domain" / "1.0.0"
    shutil.copytree(root / "plugins" / "email_domain" / "1.0.0", release_dir)
    shutil.copy(root / "registry.toml", tmp_path / "registry.toml")
    manifest = release_dir / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('validate_email = "^1.0"', 'validate_email = "v1"'))
    report = validate_paths([release_dir], config_path=tmp_path / "registry.toml")
    found = [f for r in report.results for f in r.findings if f.rule == "dependency"]
    assert found and "v1" in found[0].message


def test_the_permission_walk_asks_each_range_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """1,000 versions of a plugin, each needing the same range of the next: every version repeated
    the scan of every release the range covers (10,000 releases of a chain took 91 s)."""
    from registry_tool.manifest import dependencies
    from registry_tool.resolve import Candidate, Dependency

    per = 1000
    plugins = {
        f"p{i}": [
            Candidate(f"p{i}", f"1.{j}.0", (Dependency(f"p{i + 1}", "^1.0"),) if i < 2 else ())
            for j in range(per)
        ]
        for i in range(3)
    }

    class Index:
        def releases(self, name: str) -> list[Candidate]:
            return plugins[name]

    calls = [0]
    real = dependencies.range_matches

    def counted(spec: str, version: str) -> bool:
        calls[0] += 1
        return real(spec, version)

    monkeypatch.setattr(dependencies, "range_matches", counted)
    top = Candidate("app", "1.0.0", (Dependency("p0", "^1.0"),))
    dependencies._any_selectable_permissions([top], Index(), "app")  # type: ignore[arg-type]
    assert calls[0] <= 3 * per  # each (plugin, range) once: linear in the releases


def test_a_dependency_release_over_the_manifest_cap_is_not_read(tmp_path: Path) -> None:
    """A pull request's huge plugin.toml (a comment of 400 MB packs small in git) that only another
    release's range reaches: bounded like every manifest a check reads, and no candidate."""
    from registry_tool.manifest.dependencies import _read_candidate
    from registry_tool.manifest.model import MAX_MANIFEST_BYTES

    release = tmp_path / "plugins" / "zzbig" / "1.0.0"
    release.mkdir(parents=True)
    head = '[plugin]\nname = "zzbig"\nversion = "1.0.0"\n'
    (release / "plugin.toml").write_text(head + "#" + "a" * MAX_MANIFEST_BYTES + "\n")
    assert _read_candidate("zzbig", release) is None
    (release / "plugin.toml").write_text(head)
    candidate = _read_candidate("zzbig", release)
    assert candidate is not None and candidate.version == "1.0.0"


@pytest.mark.parametrize(
    "top",
    [
        "dependencies = [1]",
        'dependencies = "x"',
        "dependencies = 3",
        'permissions = "x"',
        "permissions = [true]",
        "[dependencies]\nlib = 5",
        "[dependencies]\nlib = [1]",
    ],
)
def test_a_dependency_release_with_ill_typed_tables_is_no_candidate(tmp_path: Path, top: str) -> None:
    """Found by fuzzing: ci check of a release depending on one with `dependencies = [1]` exited 3
    (AttributeError in the dependency and escalation checks), on the innocent release."""
    publish(tmp_path, "lib", "1.0.0")
    manifest = tmp_path / "plugins" / "lib" / "1.0.0" / "plugin.toml"
    text = manifest.read_text()
    manifest.write_text(f"{top}\n{text}" if not top.startswith("[") else f"{text}{top}\n")
    verdict = check_dependencies(
        release(tmp_path, "app", "1.0.0", {"lib": "^1"}), IndexTree(tmp_path), relfile="p"
    )
    assert rules(verdict) == ["dependency-unknown"], rules(verdict)  # lib has no readable release
