"""`registry-tool client ...` as a person uses it, against the site served on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from registry_tool._cli import client as client_cli

from .client_world import World, wait_for

app = typer.Typer()
client_cli.register(app)


@app.callback()
def _root() -> None:
    pass


def run(world: World, *args: str, code: int = 0) -> Any:
    """Run one client command in-process; check its exit code; return the result."""
    result = CliRunner().invoke(app, ["client", *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def state(world: World) -> list[str]:
    return ["--state-dir", str(world.state_dir)]


def registry(world: World) -> list[str]:
    return ["--registry", world.url, "--state-dir", str(world.state_dir)]


def lock_json(world: World) -> dict[str, Any]:
    result = run(world, "list", "--dir", str(world.plugins), "--format", "json")
    return {p["name"]: p for p in json.loads(result.output)["plugins"]}


def test_person_trusts_searches_installs_lists_verifies_updates_removes(world: World) -> None:
    d = ["--dir", str(world.plugins)]
    root = world.site / "root" / "1.root.json"
    out = run(world, "trust", world.url, "--root", str(root), "--state-dir", str(world.state_dir)).output
    assert "root version 3" in out  # pinned v1, walked to v3

    out = run(world, "search", "multiplies", *registry(world)).output
    assert out.split() == ["beta", "2.0.0", "multiplies", "numbers"]  # 2.1.0 is yanked
    info = json.loads(run(world, "info", "alpha", *registry(world), "--format", "json").output)
    assert [r["version"] for r in info["releases"]] == ["1.0.0", "1.1.0", "2.0.0"]

    # alpha 2.0.0 needs the 'keys' permission: no terminal, no --allow, no install.
    failed = run(world, "install", "alpha", *registry(world), *d, code=2)
    assert "needs permission(s) keys, which were not approved" in failed.output
    assert not (world.plugins / "registry-tool.lock.json").exists()
    out = run(world, "install", "alpha", "beta@~2.0", *registry(world), *d, "--allow", "keys").output
    assert "installed alpha 2.0.0" in out and "installed beta 2.0.0" in out
    locked = lock_json(world)
    assert locked["alpha"]["permissions"] == ["keys"] and locked["beta"]["permissions"] == []
    assert run(world, "verify", *d, *state(world)).exit_code == 0

    # Back to the 1.x line, then a 1.2.0 that wants 'network' appears: update asks again.
    run(world, "install", "alpha@^1.0", *registry(world), *d)
    assert lock_json(world)["alpha"]["version"] == "1.1.0"
    world.add_release("alpha", "1.2.0", permissions=("network",))
    world.build()
    lock_before = (world.plugins / "registry-tool.lock.json").read_bytes()
    failed = run(world, "update", *d, "--state-dir", str(world.state_dir), code=2)
    assert "asks for more permissions than were granted: network" in failed.output
    assert (world.plugins / "registry-tool.lock.json").read_bytes() == lock_before
    out = run(world, "update", *d, "--state-dir", str(world.state_dir), "--allow", "network").output
    assert "updated alpha 1.1.0 -> 1.2.0" in out
    assert not (world.plugins / "alpha" / "1.1.0").exists()  # the old version's files are gone

    run(world, "remove", "alpha", *d)
    assert list(lock_json(world)) == ["beta"] and not (world.plugins / "alpha").exists()


def test_verify_reports_tampering(trusted: World) -> None:
    d = ["--dir", str(trusted.plugins)]
    run(trusted, "install", "beta", *registry(trusted), *d)
    wasm = trusted.plugins / "beta" / "2.0.0" / "beta.wasm"
    wasm.write_bytes(wasm.read_bytes() + b"\0")
    out = run(trusted, "verify", *d, *state(trusted), "--format", "json", code=1).output
    finding = json.loads(out)["results"][0]["findings"][0]
    assert finding["rule"] == "installed-tampered" and "differs from the lockfile" in finding["message"]


def test_locked_install_restores_exact_files(trusted: World) -> None:
    d = ["--dir", str(trusted.plugins)]
    run(trusted, "install", "alpha@1.0.0", "beta", *registry(trusted), *d)
    lock = (trusted.plugins / "registry-tool.lock.json").read_bytes()
    for sub in ("alpha", "beta"):
        subprocess.run(["rm", "-rf", str(trusted.plugins / sub)], check=True)
    trusted.add_release("alpha", "1.0.1")
    trusted.build()  # newer releases exist; --locked ignores them
    run(trusted, "install", "--locked", *d, "--state-dir", str(trusted.state_dir))
    assert (trusted.plugins / "registry-tool.lock.json").read_bytes() == lock
    assert run(trusted, "verify", *d, *state(trusted)).exit_code == 0


def test_trust_with_wrong_fingerprint(world: World) -> None:
    out = run(
        world, "trust", world.url, "--root-fingerprint", "0" * 64, "--state-dir", str(world.state_dir), code=1
    )
    assert "not the fingerprint" in out.output
    assert not world.state_dir.exists() or not any(world.state_dir.glob("*.json"))


def test_commands_need_a_pinned_root(world: World) -> None:
    out = run(world, "search", *registry(world), code=2).output
    assert "no trusted root" in out and "client trust" in out


# --------------------------------------------------------------------------- processes


def cli(world: World, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "registry_tool",
            "client",
            *args,
            *registry(world),
            "--dir",
            str(world.plugins),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_killed_install_leaves_old_plugin(trusted: World) -> None:
    trusted.open().install("alpha@1.0.0", trusted.plugins)
    lock = (trusted.plugins / "registry-tool.lock.json").read_bytes()
    old = (trusted.plugins / "alpha/1.0.0/alpha.wasm").read_bytes()
    trusted.server.slow("/plugins/alpha/1.1.0/alpha.wasm", delay=0.2)
    proc = cli(trusted, "install", "alpha@1.1.0")
    # A process start-up on a loaded machine can take many seconds: wait long, return early.
    assert wait_for(lambda: "/plugins/alpha/1.1.0/alpha.wasm" in trusted.server.requests, timeout=120)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (trusted.plugins / "registry-tool.lock.json").read_bytes() == lock
    assert (trusted.plugins / "alpha/1.0.0/alpha.wasm").read_bytes() == old
    assert not (trusted.plugins / "alpha/1.1.0/alpha.wasm").exists()
    # The next writer cleans up whatever the killed process left, and the old plugin still verifies.
    trusted.server.hooks.clear()
    trusted.open().install("beta", trusted.plugins)
    assert not list(trusted.plugins.glob(".part-*"))
    assert run(trusted, "verify", "--dir", str(trusted.plugins), *state(trusted)).exit_code == 0


def test_concurrent_installs_are_serialised(trusted: World) -> None:
    # Each manifest takes a second to arrive: unserialised, both processes would be inside it at once.
    for path in ("/plugins/alpha/1.1.0/plugin.toml", "/plugins/beta/2.0.0/plugin.toml"):
        trusted.server.delayed(path, 1.0)
    procs = [cli(trusted, "install", "alpha@^1"), cli(trusted, "install", "beta")]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    assert sorted(lock_json(trusted)) == ["alpha", "beta"]
    assert run(trusted, "verify", "--dir", str(trusted.plugins), *state(trusted)).exit_code == 0
    # Under the lock, one release's files were fetched entirely before the other's.
    order = [p.split("/")[2] for p in trusted.server.requests if p.startswith("/plugins/")]
    first = order[0]
    assert order == sorted(order, key=lambda name: name != first), order


def test_json_errors_on_stdout(trusted: World) -> None:
    d = ["--dir", str(trusted.plugins)]
    result = run(trusted, "install", "alpha", *registry(trusted), *d, "--format", "json", code=2)
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["command"] == "client install"
    assert doc["error"]["rule"] == "approval-required" and "--allow keys" in doc["error"]["fix"]
    result = run(trusted, "install", "nope", *registry(trusted), *d, "--format", "json", code=2)
    assert json.loads(result.stdout)["error"]["rule"] == "plugin-not-found"


@pytest.mark.parametrize("answer, code", [("y\n", 0), ("n\n", 2), ("\n", 2)])
def test_terminal_prompt_approves(
    trusted: World, monkeypatch: pytest.MonkeyPatch, answer: str, code: int
) -> None:
    monkeypatch.setattr(client_cli, "_interactive", lambda: True)
    args = ["client", "install", "alpha", *registry(trusted), "--dir", str(trusted.plugins)]
    result = CliRunner().invoke(app, args, input=answer)
    assert result.exit_code == code, result.output
    assert "alpha 2.0.0 asks for permission(s): keys" in result.output
    assert (trusted.plugins / "registry-tool.lock.json").exists() == (code == 0)


def test_trust_root_file_checked_against_fingerprint(world: World) -> None:
    root = world.site / "root" / "1.root.json"
    good = hashlib.sha256(root.read_bytes()).hexdigest()
    base = ["trust", world.url, "--state-dir", str(world.state_dir)]
    run(world, *base, code=2)
    refused = run(world, *base, "--root", str(root), "--root-fingerprint", "f" * 64, code=1)
    # The file given is what did not match (it said "the root served by URL": nothing was served).
    assert "the root file given has sha256" in refused.output and "served by" not in refused.output
    assert not any(world.state_dir.glob("*.json")) if world.state_dir.exists() else True
    out = json.loads(
        run(world, *base, "--root", str(root), "--root-fingerprint", good, "--format", "json").stdout
    )
    assert out["trusted"][0]["root_version"] == 3
    # The fingerprint reported is the one --root-fingerprint takes (it was the newest root's, which
    # --root-fingerprint then refused as a forged root).
    assert out["trusted"][0]["root_fingerprint"] == good
    newest = hashlib.sha256((world.site / "root" / "3.root.json").read_bytes()).hexdigest()
    assert out["trusted"][0]["trusted_root_sha256"] == newest != good
    again = json.loads(run(world, *base, "--root-fingerprint", good.upper(), "--format", "json").stdout)
    assert again["trusted"][0]["root_fingerprint"] == good
