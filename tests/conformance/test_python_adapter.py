"""The Python adapter's batch mode answers as one process per step would (conformance/README.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from registry_tool.client.conformance import batch, run

NOW = "2026-11-27T12:00:00Z"


def test_capabilities_declares_batch_mode() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "registry_tool.client.conformance", "capabilities"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {"ok": True, "batch": True}


def test_batch_answers_each_request_with_the_exit_code_of_its_own_process(tmp_path: Path) -> None:
    refresh = ["refresh", "--state", str(tmp_path), "--url", "http://127.0.0.1:9/", "--now", NOW]
    single: list[str] = []
    code = run(refresh, single.append)
    answers: list[str] = []
    requests = [json.dumps({"args": refresh}), "", "not json", json.dumps({"args": ["pin"]})]
    assert batch([r + "\n" for r in requests], answers.append) == 0
    first, bad, missing = (json.loads(a) for a in answers)
    assert first == {**json.loads(single[0]), "exit": code}
    assert (first["error"], first["exit"]) == ("not-pinned", 2)
    assert (bad["ok"], bad["exit"]) == (False, 2)
    assert (missing["ok"], missing["exit"]) == (False, 2)  # argparse refused: a usage error, no crash


def test_a_request_nested_too_deeply_is_answered_as_usage() -> None:
    """A line of 20,000 brackets killed the batch process with a RecursionError and no answer."""
    answers: list[str] = []
    batch(["[" * 20_000, '{"args": ["capabilities"]}'], answers.append)
    first = json.loads(answers[0])
    assert (first["ok"], first["error"], first["exit"]) == (False, "usage", 2)
    assert len(answers) == 2  # the batch goes on


def test_the_adapter_gates_each_module_by_its_own_permission() -> None:
    """Decision 11.7: ``ferrite:net`` needs ``network``.  Without the suite's vocabulary, a module
    granted ``keys`` could import ``ferrite:net`` too (any grant allowed any gated import), where
    the Go and Rust verifiers refuse it."""
    from registry_tool.client.conformance import _vocabulary
    from registry_tool.manifest.config import import_allowed

    vocabulary = _vocabulary()
    assert import_allowed(vocabulary, "core", {"keys"}, "ferrite:keys", "get")
    assert not import_allowed(vocabulary, "core", {"keys"}, "ferrite:net", "fetch")
    assert import_allowed(vocabulary, "core", {"keys", "network"}, "ferrite:net", "fetch")
    assert not import_allowed(vocabulary, "extism", {"keys"}, "extism:host/user", "f")
