"""Silent or misleading answers of `registry-tool client`, and bad input that used to crash it.

Each case runs the command as a person or script would (in-process through typer, against the
site served on 127.0.0.1) and checks the exit code, the message and, with --format json, that
stdout is one JSON object.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from registry_tool._cli import client as client_cli
from registry_tool.client import FetchPolicy, HttpFetcher
from registry_tool.client.errors import DeadlineExceededError
from registry_tool.client.install import LOCKFILE
from registry_tool.trust.editing import init_root_dir, new_root, revoke, sign_root_dir
from tests.world.files import hostile_file
from tests.world.lockfile import fold, line

from .client_world import NOW, World, new_key

app = typer.Typer()
client_cli.register(app)


@app.callback()
def _root() -> None:
    pass


def run(*args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(app, ["client", *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def reg(world: World) -> list[str]:
    return ["--registry", world.url, "--state-dir", str(world.state_dir), "--dir", str(world.plugins)]


# --------------------------------------------------------------------------- item 3


def test_trust_with_another_root_on_a_pinned_registry_names_replace(trusted: World, tmp_path: Path) -> None:
    other = tmp_path / "other-root"
    root_key, index_key = new_key(), new_key()
    expires = NOW + timedelta(days=30)
    init_root_dir(
        other, new_root("client-tests", [root_key.public_key], [index_key.public_key], expires=expires)
    )
    sign_root_dir(other, root_key)
    state_before = trusted.state()
    out = run(
        "trust",
        trusted.url,
        "--root",
        str(other / "1.root.json"),
        "--state-dir",
        str(trusted.state_dir),
        code=2,
    )
    assert "already trusted" in out.output and "--replace" in out.output
    assert trusted.state() == state_before


def test_trust_again_with_the_first_root_of_the_chain_is_fine(trusted: World) -> None:
    root1 = trusted.site / "root" / "1.root.json"
    out = run("trust", trusted.url, "--root", str(root1), "--state-dir", str(trusted.state_dir))
    assert "root version 3" in out.output


def test_explicit_downgrade_says_so(trusted: World) -> None:
    run("install", "alpha@1.1.0", *reg(trusted))
    out = run("install", "alpha@1.0.0", *reg(trusted), "--format", "json")
    doc = json.loads(out.stdout)
    assert doc["notices"] == ["downgrading alpha from 1.1.0 to 1.0.0"]
    text = run("install", "alpha@1.1.0", *reg(trusted))
    assert "note:" not in text.output
    text = run("install", "alpha@1.0.0", *reg(trusted))
    assert "note: downgrading alpha from 1.1.0 to 1.0.0" in text.stderr


def _drop_alpha_1_1_0(trusted: World) -> None:
    def drop(raw: dict[str, Any]) -> None:
        del raw["versions"]["1.1.0"]

    trusted.forge_plugin("alpha", drop)


def test_update_of_a_withdrawn_version_pinned_exactly_is_an_error_not_up_to_date(trusted: World) -> None:
    """A withdrawn release (one a stolen key signed) kept by update would be reported as up to date."""
    run("install", "alpha@1.1.0", *reg(trusted))
    trusted.edit_root(revoke(trusted.keys.alice.key_id, now=NOW, keep_prior_releases=False))
    trusted.publish_root()
    _drop_alpha_1_1_0(trusted)
    out = run("update", *reg(trusted), "--format", "json", code=1)
    doc = json.loads(out.stdout)
    assert doc["ok"] is False and doc["error"]["rule"] == "withdrawn-release", doc
    assert "client install alpha" in doc["error"]["fix"]
    text = run("update", *reg(trusted), code=1)
    assert "alpha 1.1.0 (installed) is no longer published" in text.stderr
    assert "up to date" not in text.output


def _yank_1_1_0(raw: dict[str, Any]) -> None:
    raw["versions"]["1.1.0"]["yanked"] = {"reason": "said by the index key alone"}


def _unresolvable_1_1_0(raw: dict[str, Any]) -> None:
    raw["versions"]["1.1.0"]["dependencies"] = {"nonexistent": "^9"}


@pytest.mark.parametrize("forge", [_yank_1_1_0, _unresolvable_1_1_0])
@pytest.mark.parametrize("command", [["update"], ["install", "alpha@^1"]])
def test_the_index_alone_cannot_move_a_named_plugin_down(
    trusted: World, forge: Any, command: list[str]
) -> None:
    # With 1.1.0 still listed, a yank or an unresolvable entry (neither signed by a maintainer)
    # moved it down to 1.0.0: what refusing a dropped release alone left open.
    run("install", "alpha@^1.0", *reg(trusted))
    trusted.forge_plugin("alpha", forge)
    out = CliRunner().invoke(app, ["client", *command, *reg(trusted), "--format", "json"])
    doc = json.loads(out.stdout)
    # Refused (a rollback, or the requested plugin's own conflict), or kept as it is.
    assert doc.get("updated", []) == [] and doc.get("installed", [None])[0] is None, doc
    if not doc["ok"]:
        assert doc["error"]["rule"] in ("dropped-release", "dependency-conflict"), doc
    listed = json.loads(run("list", "--dir", str(trusted.plugins), "--format", "json").stdout)
    assert [p["version"] for p in listed["plugins"]] == ["1.1.0"]
    if forge is _yank_1_1_0 and command == ["update"]:
        assert any("1.1.0 (installed) is yanked" in n for n in doc.get("notices", [])), doc
    # The user's own requirement still moves it: an exact pin, or a range that leaves it out.
    run("install", "alpha@~1.0.0", *reg(trusted))


def test_a_host_range_the_index_rewrote_does_not_move_a_named_plugin_down(trusted: World) -> None:
    # The host check read the entry's range (the index's word), not the one the maintainer signed.
    run("install", "alpha@^1.0", *reg(trusted), "--host-version", "0.3.0")
    trusted.forge_plugin("alpha", lambda raw: raw["versions"]["1.1.0"].update(host=">=99.0.0"))
    out = run("install", "alpha@^1", *reg(trusted), "--host-version", "0.3.0", "--format", "json", code=1)
    assert json.loads(out.stdout)["error"]["rule"] == "dropped-release"
    listed = json.loads(run("list", "--dir", str(trusted.plugins), "--format", "json").stdout)
    assert [p["version"] for p in listed["plugins"]] == ["1.1.0"]


def test_update_of_a_dropped_version_pinned_exactly_says_dropped_not_withdrawn(trusted: World) -> None:
    # Its signatures still count: the index alone dropped it (it was told "withdrawn", and to
    # install another version).
    run("install", "alpha@1.1.0", *reg(trusted))
    _drop_alpha_1_1_0(trusted)
    out = run("update", *reg(trusted), "--format", "json", code=1)
    doc = json.loads(out.stdout)
    assert doc["ok"] is False and doc["error"]["rule"] == "dropped-release", doc
    assert "signatures still count" in doc["error"]["message"]


def test_update_whose_installed_version_vanished_but_still_verifies_is_not_moved_down(
    trusted: World,
) -> None:
    # The index key alone dropped it (a build never drops a release whose signatures still
    # count): update said "updated alpha 1.1.0 -> 1.0.0", a rollback a stolen index key could
    # force on every client.  An exact pin of the lower version is the user's own choice.
    run("install", "alpha@^1.0", *reg(trusted))
    _drop_alpha_1_1_0(trusted)
    for command in (["update"], ["install", "alpha@^1"]):
        out = run(*command, *reg(trusted), "--format", "json", code=1)
        doc = json.loads(out.stdout)
        assert doc["ok"] is False and doc["error"]["rule"] == "dropped-release", doc
        assert "alpha@1.0.0" in doc["error"]["fix"]
    listed = json.loads(run("list", "--dir", str(trusted.plugins), "--format", "json").stdout)
    assert [p["version"] for p in listed["plugins"]] == ["1.1.0"]
    run("install", "alpha@1.0.0", *reg(trusted))


@pytest.mark.parametrize("command", ["list", "verify"])
def test_symlinked_lockfile_is_a_named_error_with_json(trusted: World, tmp_path: Path, command: str) -> None:
    run("install", "alpha@1.0.0", *reg(trusted))
    real = tmp_path / "lock.json"
    (trusted.plugins / LOCKFILE).rename(real)
    (trusted.plugins / LOCKFILE).symlink_to(real)
    out = run(
        command,
        "--dir",
        str(trusted.plugins),
        "--format",
        "json",
        code=1,
    )
    doc = json.loads(out.stdout)
    assert doc["ok"] is False and doc["error"]["rule"] == "unsafe-path"


def test_overall_deadline_stops_an_install_made_of_many_slow_files(trusted: World) -> None:
    """Each file gets the per-file deadline afresh; all of them together get the overall one.
    The clock is injected, so nothing depends on how fast this machine is."""
    now = [0.0]
    fetcher = HttpFetcher(FetchPolicy(deadline=60, total_deadline=100), clock=lambda: now[0])
    fetcher.fetch(trusted.url + "registry.json", max_size=1 << 20)  # starts the overall clock
    now[0] = 50.0  # within both deadlines
    fetcher.fetch(trusted.url + "root/1.root.json", max_size=1 << 20)
    now[0] = 100.0  # the per-file deadline would allow 60 s more; the overall one is spent
    requests_before = len(trusted.server.requests)
    with pytest.raises(DeadlineExceededError, match="overall deadline of 100 s"):
        fetcher.fetch(trusted.url + "root/2.root.json", max_size=1 << 20)
    assert len(trusted.server.requests) == requests_before  # refused before asking the server


def test_total_deadline_option_is_accepted(trusted: World) -> None:
    run("install", "alpha@1.0.0", *reg(trusted), "--total-deadline", "300")


# --------------------------------------------------------------------------- item f: bad URLs


@pytest.mark.parametrize(
    "url",
    [
        "http://[x/",
        "http://127.0.0.1:99999/",
        "http://",
        "ftp://example.org/",
        "http://u:s3cret@127.0.0.1:1/",
    ],
)
def test_bad_registry_url_in_trust_is_a_usage_error(world: World, url: str) -> None:
    root = world.site / "root" / "1.root.json"
    out = run(
        "trust", url, "--root", str(root), "--state-dir", str(world.state_dir), "--format", "json", code=2
    )
    assert json.loads(out.stdout)["ok"] is False
    assert "s3cret" not in out.stdout + out.stderr


@pytest.mark.parametrize("url", ["http://[x/", "http://127.0.0.1:99999/"])
def test_bad_registry_url_in_registry_option_is_a_usage_error(trusted: World, url: str) -> None:
    run("install", "alpha", "--registry", url, "--state-dir", str(trusted.state_dir), code=2)


def test_bad_registry_url_in_the_lockfile_is_a_usage_error(trusted: World) -> None:
    run("install", "alpha@1.0.0", *reg(trusted))
    path = trusted.plugins / LOCKFILE
    doc = fold(path.read_bytes())
    doc["plugins"]["alpha"]["registry"] = "http://127.0.0.1:99999/"
    path.write_bytes(line(doc))
    run("update", "--dir", str(trusted.plugins), "--state-dir", str(trusted.state_dir), code=2)
    out = run(
        "verify",
        "--dir",
        str(trusted.plugins),
        "--state-dir",
        str(trusted.state_dir),
        "--format",
        "json",
        code=2,
    )
    assert "cannot be parsed" in out.stdout and '"rule": "lockfile"' in out.stdout


def test_credentials_an_older_client_wrote_into_the_lockfile_are_refused_with_the_way_out(
    trusted: World,
) -> None:
    run("install", "alpha@1.0.0", *reg(trusted))
    path = trusted.plugins / LOCKFILE
    doc = fold(path.read_bytes())
    doc["plugins"]["alpha"]["registry"] = trusted.url.replace("://", "://ci:s3cret@")
    path.write_bytes(line(doc))
    where = ["--dir", str(trusted.plugins), "--state-dir", str(trusted.state_dir)]
    out = run("verify", *where, "--format", "json", code=2)
    assert '"rule": "lockfile"' in out.stdout and "s3cret" not in out.stdout + out.stderr
    assert "without `user:password@`" in out.stdout and "~/.netrc" in out.stdout


def test_an_entry_of_another_registry_before_a_trusted_one_is_no_crash(trusted: World) -> None:
    """An entry whose registry has no trusted root is judged by another trusted root, which the
    verifier then knows; the next entry, of that trusted registry, crashed with a KeyError."""
    run("install", "alpha@1.0.0", *reg(trusted))
    run("install", "beta", *reg(trusted))
    path = trusted.plugins / LOCKFILE
    doc = fold(path.read_bytes())
    doc["plugins"]["alpha"]["registry"] = "https://elsewhere.example/"  # sorted before beta
    path.write_bytes(line(doc))
    where = ["--dir", str(trusted.plugins), "--state-dir", str(trusted.state_dir)]
    out = run("verify", *where, "--format", "json")
    assert "other-trusted-root" in out.stdout


# --------------------------------------------------------------------------- items g, h: hostile local files


def test_state_file_nested_100000_deep_is_a_named_error(trusted: World) -> None:
    from registry_tool.client.store import StateStore

    path = StateStore(trusted.state_dir).path_for(trusted.url)
    path.write_text("[" * 100_000 + "]" * 100_000)
    out = run("install", "alpha", *reg(trusted), "--format", "json", code=2)
    assert json.loads(out.stdout)["error"]["rule"] == "state-file"


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge"])
def test_state_file_that_is_not_a_small_regular_file_is_refused(trusted: World, kind: str) -> None:
    from registry_tool.client.store import StateStore

    path = StateStore(trusted.state_dir).path_for(trusted.url)
    path.unlink()
    hostile_file(path, kind)
    out = run("install", "alpha", *reg(trusted), code=2)
    assert "trust state file" in out.output


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge"])
def test_root_option_that_is_not_a_small_regular_file_is_refused(
    world: World, tmp_path: Path, kind: str
) -> None:
    path = hostile_file(tmp_path / "root.json", kind)
    out = run("trust", world.url, "--root", str(path), "--state-dir", str(world.state_dir), code=2)
    assert "root file" in out.output


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge"])
def test_lockfile_that_is_not_a_small_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    hostile_file(tmp_path / LOCKFILE, kind)
    # A link or a FIFO in the plugin directory: unsafe-path (1); too large: lockfile (2).
    code = 2 if kind == "huge" else 1
    out = run("list", "--dir", str(tmp_path), "--format", "json", code=code)
    assert json.loads(out.stdout)["ok"] is False


def test_installed_wasm_that_is_a_fifo_is_reported_not_waited_on(trusted: World) -> None:
    run("install", "alpha@1.0.0", *reg(trusted))
    wasm = trusted.plugins / "alpha" / "1.0.0" / "alpha.wasm"
    wasm.unlink()
    os.mkfifo(wasm)
    out = run("verify", "--dir", str(trusted.plugins), "--format", "json", code=1)
    finding = json.loads(out.stdout)["results"][0]["findings"][0]
    assert finding["rule"] == "unsafe-path" and "FIFO" in finding["message"]  # as Go and Rust say


def test_killed_state_writer_tmp_file_is_removed_by_the_next_writer(trusted: World) -> None:
    from registry_tool.client.store import StateStore

    store = StateStore(trusted.state_dir)
    stale = store.path_for(trusted.url).with_name(f".{store.path_for(trusted.url).name}.dead.tmp")
    stale.write_text("{")
    out = run(
        "verify", "--dir", str(trusted.plugins), "--state-dir", str(trusted.state_dir), "--format", "json"
    )
    assert stale.name in out.stdout  # reported as a leftover
    run("install", "alpha@1.0.0", *reg(trusted))
    assert not stale.exists()


def test_cli_deadline_defaults_are_the_fetch_policy_defaults() -> None:
    from registry_tool.client import FetchPolicy

    policy = FetchPolicy()
    assert (policy.deadline, policy.total_deadline) == (client_cli.DEADLINE, client_cli.TOTAL_DEADLINE)
