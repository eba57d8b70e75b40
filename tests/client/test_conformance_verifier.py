"""The Python verifier of the conformance protocol: JSON on stdout, error classes, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest

from registry_tool.client import errors as ce
from registry_tool.client.conformance import CLASSES, USAGE_CLASSES, error_class, run
from registry_tool.format import format_time
from registry_tool.trust import ExpiredRootError, UnauthorizedSignerError

from .client_world import NOW, World

T = format_time(NOW + timedelta(minutes=5))


def step(*argv: str) -> tuple[int, dict[str, Any]]:
    lines: list[str] = []
    code = run(list(argv), lines.append)
    assert len(lines) == 1
    return code, json.loads(lines[0])


def pin(world: World) -> tuple[int, dict[str, Any]]:
    root = str(world.site / "root/1.root.json")
    return step("pin", "--state", str(world.state_dir), "--url", world.url, "--root", root, "--now", T)


def install(world: World, spec: str, *extra: str) -> tuple[int, dict[str, Any]]:
    base = ["install", "--state", str(world.state_dir), "--url", world.url, "--dir", str(world.plugins)]
    return step(*base, "--spec", spec, "--now", T, *extra)


def test_pin_refresh_install_verify(world: World) -> None:
    assert pin(world) == (0, {"ok": True, "root_version": 1})
    code, out = step("refresh", "--state", str(world.state_dir), "--url", world.url, "--now", T)
    assert (
        code == 0
        and out["ok"]
        and out["registry_version"] == json.loads((world.site / "registry.json").read_bytes())["version"]
    )
    code, out = install(world, "alpha@^2", "--allow", "keys", "--host-version", "0.3.1")
    assert code == 0 and (out["name"], out["version"]) == ("alpha", "2.0.0")
    assert len(out["wasm_sha256"]) == len(out["manifest_sha256"]) == 64
    verify = ["verify", "--state", str(world.state_dir), "--dir", str(world.plugins), "--now", T]
    assert step(*verify) == (0, {"ok": True, "plugins": ["alpha"]})
    wasm = world.plugins / "alpha/2.0.0/alpha.wasm"
    wasm.write_bytes(wasm.read_bytes() + b"\0")
    code, out = step(*verify)
    assert (code, out["ok"], out["error"]) == (1, False, "installed-tampered")


def test_refusals_carry_their_class_and_exit_code(world: World) -> None:
    code, out = step("refresh", "--state", str(world.state_dir), "--url", world.url, "--now", T)
    assert (code, out["error"]) == (2, "not-pinned")
    pin(world)
    assert install(world, "alpha@2.0.0")[1]["error"] == "permission-required"
    assert install(world, "gamma")[0:1] == (2,) and install(world, "gamma")[1]["error"] == "not-found"
    assert install(world, "alpha@^9")[1]["error"] == "no-matching-version"
    assert install(world, "alpha@1.2.3 - 2")[1]["error"] == "bad-requirement"
    later = format_time(NOW + timedelta(days=8))
    code, out = step("refresh", "--state", str(world.state_dir), "--url", world.url, "--now", later)
    assert (code, out["error"]) == (1, "freeze")
    assert out["message"] and "\n" not in out["message"]


def test_module_entry_point_speaks_the_protocol(world: World) -> None:
    root = str(world.site / "root/1.root.json")
    argv = ["pin", "--state", str(world.state_dir), "--url", world.url, "--root", root, "--now", T]
    done = subprocess.run(
        [sys.executable, "-m", "registry_tool.client.conformance", *argv], capture_output=True, text=True
    )
    assert done.returncode == 0 and json.loads(done.stdout) == {"ok": True, "root_version": 1}


@pytest.mark.parametrize(
    "err, phase, expected",
    [
        (ExpiredRootError("x"), "session", "root-expired"),
        (UnauthorizedSignerError("x"), "session", "root-chain"),
        (UnauthorizedSignerError("x"), "release", "maintainer-signature"),
        (ce.DownloadTooLargeError("x"), "release", "endless-data"),
        (ce.HttpStatusError("x"), "release", "network"),
    ],
)
def test_error_table(err: Exception, phase: str, expected: str) -> None:
    assert error_class(err, phase) == expected
    assert USAGE_CLASSES <= CLASSES
