"""The conformance runner compares and fails correctly (against tests/conformance/fake_verifier.py).

A small suite is built in a temporary folder from the real base site and one overlay site; its
cases are either answered correctly by the fake verifier (must PASS) or expect something the
fake does not do (must FAIL, each for the stated reason), so a runner that passed everything,
ignored exit codes, mis-resolved overlays or mis-served faults would fail these tests.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "conformance"
RUNNER = SUITE / "run.py"
FAKE = [sys.executable, str(Path(__file__).with_name("fake_verifier.py"))]
NOW = "2026-11-27T12:00:00Z"
BASE = "sites/base"
OLD = "sites/base-old"
WASM = "plugins/validate_email/1.1.0/validate_email.wasm"
MANIFEST = "plugins/validate_email/1.1.0/plugin.toml"


def step(op: str, expect: dict[str, Any] | None = None, site: str = BASE, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"op": op, **kw}
    if op in ("pin", "refresh", "install"):
        out["site"] = site
    if op == "pin":
        out["root"] = f"{site}/root/1.root.json"
    if op in ("pin", "refresh", "install", "verify"):
        out["now"] = NOW
    if expect is not None:
        out["expect"] = expect
    return out


def ok(**kw: Any) -> dict[str, Any]:
    return {"ok": True, **kw}


def err(cls: str) -> dict[str, Any]:
    return {"ok": False, "error": cls}


PIN = step("pin", ok(root_version=1))
V = 20261127000000
INSTALLED = ok(name="validate_email", version="1.1.0")
INSTALL = step("install", INSTALLED, spec="validate_email")
LOCAL_WASM = "validate_email/1.1.0/validate_email.wasm"

PASSING: dict[str, list[dict[str, Any]]] = {
    "p-refresh": [PIN, step("refresh", ok(registry_version=V, root_version=1))],
    "p-overlay-site": [PIN, step("refresh", ok(registry_version=20261126000000), site=OLD)],
    "p-fault-404": [PIN, step("refresh", err("network"), serve={"registry.json": "404"})],
    "p-fault-500": [PIN, step("refresh", err("network"), serve={"registry.json": "500"})],
    "p-fault-endless": [PIN, step("refresh", err("endless-data"), serve={"registry.json": "endless"})],
    "p-fault-slow": [
        PIN,
        step("refresh", err("slow-retrieval"), serve={"registry.json": "slow"}, deadline_ms=500),
    ],
    "p-fault-reset": [PIN, step("refresh", err("network"), serve={"registry.json": "reset"})],
    "p-not-pinned": [step("refresh", err("not-pinned"))],
    "p-may-fetch": [PIN, step("refresh", ok(registry_version=V), may_fetch=[r"registry\.json"])],
    "p-install-tamper": [
        PIN,
        INSTALL,
        step("verify", ok(plugins=["validate_email"])),
        step(
            "lockfile",
            expect={"lockfile_version": 3, "plugins": {"validate_email": {"version": "1.1.0"}}},
            lines=1,
        ),
        step("tamper", path=LOCAL_WASM, action="append"),
        step("verify", err("installed-tampered")),
    ],
    "p-relock": [
        PIN,
        INSTALL,
        step("tamper", path=LOCAL_WASM, action="flip", relock=True),
        step("verify", ok(plugins=["validate_email"])),
    ],
    "p-symlink": [
        PIN,
        INSTALL,
        step("symlink", path=LOCAL_WASM, target="outside"),
        step("verify", err("unsafe-path")),
    ],
    "p-lockfile-garbage": [
        PIN,
        INSTALL,
        step("tamper", path="registry-tool.lock.json", action="write", content="{"),
        step("verify", err("lockfile")),
    ],
    "p-absent": [PIN, step("absent", path="validate_email/9.9.9")],
    "p-lockfile-as-version-2": [
        PIN,
        INSTALL,
        step("tamper", path="registry-tool.lock.json", action="as-version-2"),
        step("verify", ok(plugins=["validate_email"])),
    ],
    "p-lockfile-change-line": [
        PIN,
        INSTALL,
        step(
            "tamper",
            path="registry-tool.lock.json",
            action="json-set",
            pointer=["plugins", "validate_email", "wasm_sha256"],
            value="0" * 64,
            change=True,
        ),
        step("lockfile", expect={"plugins": {"validate_email": {"wasm_sha256": "0" * 64}}}, lines=2),
        step("verify", err("installed-tampered")),
    ],
    "p-lockfile-tail-ignored": [
        PIN,
        INSTALL,
        step("tamper", path="registry-tool.lock.json", action="append-text", content='{"plugins":{}}'),
        step("verify", ok(plugins=["validate_email"])),
    ],
}
FAILING: dict[str, tuple[list[dict[str, Any]], str]] = {
    "f-wrong-class": (
        [PIN, step("refresh", err("rollback"), serve={"registry.json": "404"})],
        "error: expected 'rollback', got 'network'",
    ),
    "f-wrong-version": ([PIN, step("refresh", ok(registry_version=V + 1))], "registry_version: expected"),
    "f-wrong-exit-code": (
        [PIN, step("install", err("not-found"), spec="exit-one")],
        "exit code 1, expected 2",
    ),
    "f-unknown-class": ([PIN, step("install", {"ok": False}, spec="weird-class")], "is not an error class"),
    "f-should-fail": (
        [PIN, INSTALL, step("verify", err("installed-tampered"))],
        "ok: expected False, got True",
    ),
    "f-lockfile-content": (
        [PIN, INSTALL, step("lockfile", expect={"plugins": {"validate_email": {"version": "1.0.0"}}})],
        "expected '1.0.0', got '1.1.0'",
    ),
    "f-may-fetch": (
        [PIN, step("refresh", ok(registry_version=V), may_fetch=[r"root/.*"])],
        "fetched ['registry.json']",
    ),
    "f-present": ([PIN, INSTALL, step("absent", path=LOCAL_WASM)], "still exists"),
    "f-lockfile-lines": (
        [PIN, INSTALL, step("lockfile", expect={}, lines=2)],
        "the lockfile has 1 line(s), expected 2",
    ),
    "f-lockfile-not-canonical": (
        [
            PIN,
            INSTALL,
            step("tamper", path="registry-tool.lock.json", action="as-version-2"),
            step("lockfile", expect={"plugins": {"validate_email": {"version": "1.1.0"}}}),
        ],
        "line 1 is not written as json.dumps",
    ),
    "f-lockfile-unfinished-tail": (
        [
            PIN,
            INSTALL,
            step("tamper", path="registry-tool.lock.json", action="append-text", content="{"),
            step("lockfile", expect={"plugins": {"validate_email": {"version": "1.1.0"}}}),
        ],
        "does not end with a newline",
    ),
}


def _table(suite: Path) -> dict[str, Any]:
    files = {"manifest": ("validate_email/1.1.0/plugin.toml", MANIFEST), "wasm": (LOCAL_WASM, WASM)}
    return {
        "validate_email": {"answer": INSTALLED, "files": files},
        "exit-one": {"answer": err("not-found"), "exit": 1},
        "weird-class": {"answer": err("weird"), "exit": 1},
    }


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("suite")
    for site in (BASE, OLD):
        shutil.copytree(SUITE / site, folder / site)
    (folder / "cases").mkdir()
    cases = {**PASSING, **{k: v[0] for k, v in FAILING.items()}}
    for case_id, steps in cases.items():
        doc = {"id": case_id, "description": case_id, "threat": "test", "requires": [], "steps": steps}
        (folder / "cases" / f"{case_id}.json").write_text(json.dumps(doc))
    (folder / "table.json").write_text(json.dumps(_table(folder)))
    return folder


def run(
    suite: Path, *args: str, verifier: list[str] = FAKE, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {"FAKE_TABLE": str(suite / "table.json"), "PATH": "/usr/bin:/bin", **(env or {})}
    return subprocess.run(
        [sys.executable, str(RUNNER), "--suite", str(suite), *args, "--", *verifier],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_runner_passes_correct_answers_and_fails_wrong_ones(suite: Path) -> None:
    proc = run(suite, "-j", "2")
    lines = proc.stdout.splitlines()
    assert lines[-1] == f"{len(PASSING)} passed, {len(FAILING)} failed", proc.stdout
    assert proc.returncode == 1
    for case_id in PASSING:
        assert f"PASS {case_id}" in lines, proc.stdout
    for case_id, (_, reason) in FAILING.items():
        line = next((x for x in lines if x.startswith(f"FAIL {case_id}:")), None)
        assert line is not None and reason in line, (case_id, proc.stdout)


def test_runner_exits_zero_when_everything_passes(suite: Path) -> None:
    proc = run(suite, "--filter", "^p-(refresh|overlay|not-pinned)")
    assert proc.stdout.splitlines()[-1] == "3 passed, 0 failed", proc.stdout
    assert proc.returncode == 0


def test_runner_fails_output_that_is_not_json(suite: Path) -> None:
    proc = run(suite, "--filter", "^p-refresh$", verifier=[sys.executable, "-c", "print('hello')"])
    assert "stdout is not one JSON object" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "0 passed, 1 failed"
    assert proc.returncode == 1


def test_runner_lists_and_skips(suite: Path) -> None:
    proc = run(suite, "--list", verifier=[])
    assert proc.returncode == 0
    assert sorted(line.split("\t")[0] for line in proc.stdout.splitlines()) == sorted({**PASSING, **FAILING})


def test_suite_cases_reference_existing_sites_and_files() -> None:
    """Every case of the committed suite names sites, roots and served paths that exist."""
    runner = _runner()
    cases = runner.load_cases(SUITE)
    assert len(cases) >= 100
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids))
    for c in cases:
        assert c["threat"] and c["description"] and c["steps"], c["id"]
        for s in c["steps"]:
            if "site" not in s:
                continue
            files = runner.site_files(SUITE, s["site"])
            assert "registry.json" in files, (c["id"], s["site"])
            if s["op"] == "pin":
                assert s["root"].removeprefix(s["site"] + "/") in files, c["id"]
            for path, fault in s.get("serve", {}).items():
                assert fault in ("slow", "endless", "404", "500", "reset"), c["id"]
                assert path in files, (c["id"], path)
            if "expect" in s and s["expect"].get("ok") is False:
                assert s["expect"]["error"] in runner.ERROR_CLASSES, c["id"]


def test_suite_site_pins_match_served_bytes() -> None:
    """The base site's top document pins the tree and catalog it serves (writer self-check)."""
    files = {p: f.read_bytes() for p, f in _resolve(BASE).items()}
    top = json.loads(files["registry.json"])
    for member in ("tree", "catalog"):
        pin = top[member]
        data = files[f"meta/{pin['sha256'][:2]}/{pin['sha256']}.json"]
        assert hashlib.sha256(data).hexdigest() == pin["sha256"] and len(data) == pin["size"]


def _runner() -> ModuleType:
    """conformance/run.py as a module (a script beside its cases, not an installed package)."""
    spec = importlib.util.spec_from_file_location("conformance_run", RUNNER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def _resolve(site: str) -> dict[str, Path]:
    return _runner().site_files(SUITE, site)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- batch mode

OPS = ("pin", "refresh", "install", "verify")
VERIFIER_STEPS = sum(
    1 for steps in [*PASSING.values(), *(v[0] for v in FAILING.values())] for x in steps if x["op"] in OPS
)


def _outcomes(stdout: str) -> list[str]:
    """PASS/FAIL lines, sorted (parallel jobs print in any order)."""
    return sorted(line for line in stdout.splitlines() if line.startswith(("PASS ", "FAIL ")))


def test_batch_mode_gives_the_same_verdicts_with_one_process_per_job(suite: Path, tmp_path: Path) -> None:
    """A verifier that declares batch mode runs every step in at most one process per job."""
    pids = tmp_path / "pids"
    per_step = run(suite, "-j", "2")
    batched = run(suite, "-j", "2", env={"FAKE_BATCH": "1", "FAKE_PIDS": str(pids)})
    assert _outcomes(batched.stdout) == _outcomes(per_step.stdout), batched.stdout
    assert batched.stdout.splitlines()[-1] == f"{len(PASSING)} passed, {len(FAILING)} failed"
    assert batched.returncode == 1
    started = pids.read_text().split()
    assert started.count("capabilities") == 1
    assert 1 <= started.count("batch") <= 2
    assert set(started) == {"capabilities", "batch"}, started


def test_without_the_declaration_every_step_is_a_process(suite: Path, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    proc = run(suite, "-j", "2", env={"FAKE_PIDS": str(pids)})
    assert proc.stdout.splitlines()[-1] == f"{len(PASSING)} passed, {len(FAILING)} failed"
    started = pids.read_text().split()
    assert "batch" not in started
    assert len(started) - started.count("capabilities") == VERIFIER_STEPS


def test_no_batch_flag_forces_one_process_per_step(suite: Path, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    proc = run(
        suite, "--no-batch", "--filter", "^p-refresh$", env={"FAKE_BATCH": "1", "FAKE_PIDS": str(pids)}
    )
    assert proc.stdout.splitlines()[-1] == "1 passed, 0 failed", proc.stdout
    assert pids.read_text().split() == ["pin", "refresh"]


def test_a_batch_process_that_dies_fails_its_case_and_is_replaced(suite: Path, tmp_path: Path) -> None:
    """Isolation: a crash mid-batch costs only its own case; the next case gets a new process."""
    crash = tmp_path / "crash-suite"
    shutil.copytree(suite / "sites", crash / "sites")
    (crash / "cases").mkdir()
    cases = {
        "a-crash": [PIN, step("install", INSTALLED, spec="crash")],
        "b-after": [PIN, step("refresh", ok(registry_version=V))],
    }
    for case_id, steps in cases.items():
        doc = {"id": case_id, "description": case_id, "threat": "test", "requires": [], "steps": steps}
        (crash / "cases" / f"{case_id}.json").write_text(json.dumps(doc))
    (crash / "table.json").write_text((suite / "table.json").read_text())
    pids = tmp_path / "pids"
    proc = run(crash, "-j", "1", env={"FAKE_BATCH": "1", "FAKE_PIDS": str(pids)})
    lines = proc.stdout.splitlines()
    assert any(x.startswith("FAIL a-crash:") and "batch answer is not one JSON object" in x for x in lines)
    assert "PASS b-after" in lines, proc.stdout
    assert lines[-1] == "1 passed, 1 failed"
    assert pids.read_text().split().count("batch") == 2


# --------------------------------------------------------------------------- one list of error classes


def _classes_file() -> dict[str, int]:
    return json.loads((SUITE / "error-classes.json").read_text())["error_classes"]  # type: ignore[no-any-return]


def test_readme_table_lists_exactly_the_error_classes_file() -> None:
    import re

    table = re.findall(r"^\| `([a-z-]+)` \| ([12]) \|", (SUITE / "README.md").read_text(), re.M)
    assert {name: int(code) for name, code in table} == _classes_file()


def test_runner_and_python_adapter_read_the_error_classes_file() -> None:
    from registry_tool.client import conformance as adapter

    runner = _runner()
    classes = _classes_file()
    assert set(classes) == runner.ERROR_CLASSES == adapter.CLASSES
    assert {n for n, c in classes.items() if c == 2} == runner.USAGE_ERRORS == adapter.USAGE_CLASSES


def test_go_and_rust_verifiers_know_exactly_the_error_classes() -> None:
    """The verifiers' own class lists (source text) name every class of the file and no other."""
    import re

    go = set(re.findall(r'Class\w+\s+Class = "([a-z-]+)"', (ROOT / "verifiers/go/errors.go").read_text()))
    rust_src = (ROOT / "verifiers/rust/src/error.rs").read_text()
    as_str = rust_src[rust_src.index("pub fn as_str") : rust_src.index("pub fn exit_code")]
    rust = set(re.findall(r'=> "([a-z-]+)"', as_str))
    assert go == set(_classes_file()), go ^ set(_classes_file())
    assert rust == set(_classes_file()), rust ^ set(_classes_file())
