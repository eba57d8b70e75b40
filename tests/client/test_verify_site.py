"""Verifying every release a registry serves, as the client would install each, in one command."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from registry_tool.client import verify_site

from .client_world import NOW, World


def clock() -> object:
    return NOW + timedelta(minutes=5)


def _root(world: World) -> bytes:
    return (world.site / "root/1.root.json").read_bytes()


def test_every_served_release_verifies_over_http_and_from_the_folder(world: World) -> None:
    for where in (world.url, str(world.site)):
        report = verify_site(where, root_bytes=_root(world), clock=clock)  # type: ignore[arg-type]
        assert report.ok, report.to_json()
        assert sorted(r.subject for r in report.results) == [
            "alpha 1.0.0", "alpha 1.1.0", "alpha 2.0.0", "beta 2.0.0", "beta 2.1.0",
        ]  # fmt: skip


def test_a_tampered_module_fails_its_release_only(world: World) -> None:
    wasm = world.site / "plugins/alpha/1.1.0/alpha.wasm"
    data = bytearray(wasm.read_bytes())
    data[-1] ^= 1
    wasm.write_bytes(bytes(data))
    report = verify_site(str(world.site), root_bytes=_root(world), clock=clock)  # type: ignore[arg-type]
    failed = {r.subject: [f.rule for f in r.findings] for r in report.results if not r.ok}
    assert failed == {"alpha 1.1.0": ["digest-mismatch"]}


def test_a_manifest_of_another_version_served_for_a_release_fails_it(world: World) -> None:
    """The files of alpha 1.0.0 served under 1.1.0 (manifest, signature and module, all genuine)."""
    old, new = world.site / "plugins/alpha/1.0.0", world.site / "plugins/alpha/1.1.0"
    for f in old.iterdir():
        (new / f.name).write_bytes(f.read_bytes())
    report = verify_site(str(world.site), root_bytes=_root(world), clock=clock)  # type: ignore[arg-type]
    failed = {r.subject: [f.rule for f in r.findings] for r in report.results if not r.ok}
    assert failed == {"alpha 1.1.0": ["digest-mismatch"]}


def test_a_tampered_top_document_fails_the_whole_site(world: World) -> None:
    top = world.site / "registry.json"
    doc = json.loads(top.read_text())
    doc["version"] += 1
    top.write_text(json.dumps(doc))
    report = verify_site(str(world.site), root_bytes=_root(world), clock=clock)  # type: ignore[arg-type]
    assert not report.ok
    assert [f.rule for r in report.results for f in r.findings] == ["index-signature"]


def test_cli_verify_site_exit_codes(world: World, tmp_path: Path) -> None:
    import typer

    from registry_tool._cli import client as client_cli

    app = typer.Typer()
    client_cli.register(app)
    app.callback()(lambda: None)
    args = ["client", "verify-site", str(world.site), "--root", str(world.site / "root/1.root.json")]
    ok = CliRunner().invoke(app, [*args, "--format", "json"])
    assert ok.exit_code == 0, ok.output
    assert len(json.loads(ok.output)["results"]) == 5
    wasm = world.site / "plugins/beta/2.0.0/beta.wasm"
    wasm.write_bytes(wasm.read_bytes() + b"\0")
    bad = CliRunner().invoke(app, [*args, "--format", "json"])
    assert bad.exit_code == 1, bad.output


def test_an_outage_is_an_environment_error_not_a_verdict_on_the_registry(sim_world: World) -> None:
    """A release file the server cannot deliver (503) stops the check with exit 2, not a finding."""
    import pytest

    from registry_tool.client.errors import HttpStatusError

    sim_world.sim.withhold("plugins/beta/2.0.0/beta.wasm", 503)  # type: ignore[union-attr]
    with pytest.raises(HttpStatusError) as err:
        verify_site(
            sim_world.url,
            root_bytes=_root(sim_world),
            fetcher=sim_world.fetcher,
            clock=clock,  # type: ignore[arg-type]
        )
    assert err.value.exit_code == 2
