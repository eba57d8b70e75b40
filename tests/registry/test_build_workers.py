"""The build's worker processes: what they verify with, and that they give the parent's answers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from registry_tool.registry import build as build_mod
from registry_tool.registry import workers
from registry_tool.registry.build import BuildOptions, BuildRefusedError, build_site
from registry_tool.trust.editing import edit_root_dir, pin_registry_config, sign_root_dir

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)  # the same clock as conftest's signatures
Index = Any  # conftest.Index (pytest's importlib mode cannot import conftest by name)


def build(index: Index, out: Path, **kw: Any) -> build_mod.BuildResult:
    opts: dict[str, Any] = {"now": NOW, "verify_now": NOW, "smoke": False, "keys": [index.keys.index]}
    opts.update(kw)
    return build_site(BuildOptions(index=index.path, out=out, **opts))


def _use_workers(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    """Workers for a small index too, started by ``method`` (fork or spawn)."""
    monkeypatch.setattr(workers, "MIN_PER_JOB", 1)
    monkeypatch.setattr(workers, "MIN_PER_FORKED_JOB", 1)
    monkeypatch.setattr(workers, "start_method", lambda: method)


@pytest.fixture(params=["fork", "spawn"])
def only_workers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every release of a small index goes to a worker process (the parent verifies none)."""
    _use_workers(monkeypatch, request.param)
    monkeypatch.setattr(workers, "PARENT_WORKS", False)


def _swap_after_scan(monkeypatch: pytest.MonkeyPatch, path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` once the parent has checked its inputs (when it scans the index)."""
    real = build_mod.scan_releases

    def scan_then_swap(index: Path, *args: Any) -> Any:
        path.write_bytes(data)
        return real(index, *args)

    monkeypatch.setattr(build_mod, "scan_releases", scan_then_swap)


def test_workers_never_use_a_registry_toml_swapped_after_the_pin_check(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, only_workers: None
) -> None:
    """Attack: registry.toml replaced between the parent's pin check and the workers' start.

    The root pins a config whose fuel maximum every release exceeds; the swapped-in file (not
    pinned) allows them.  The workers must verify under the pinned bytes: the build is refused.
    """
    config = index.path / "registry.toml"
    permissive = config.read_bytes()
    pinned = permissive.replace(b"fuel = 50_000_000", b"fuel = 1_000").replace(
        b"fuel = 1_000_000_000", b"fuel = 1_000"
    )
    assert pinned != permissive
    config.write_bytes(pinned)
    edit_root_dir(index.path / "root", pin_registry_config(pinned), now=NOW)
    sign_root_dir(index.path / "root", index.keys.root)
    _swap_after_scan(monkeypatch, config, permissive)
    with pytest.raises(BuildRefusedError) as err:
        build(index, tmp_path / "site", jobs=2)
    rules = {f.rule for _, f in err.value.report.findings()}
    assert rules == {"limit-exceeded"}, rules
    assert config.read_bytes() == permissive  # the swap did happen before the workers started
    assert not (tmp_path / "site").exists()


def test_workers_verify_with_the_parents_root_chain(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, only_workers: None
) -> None:
    """A root file replaced after the parent verified the chain is not what the workers trust."""
    first = index.path / "root" / "1.root.json"
    _swap_after_scan(monkeypatch, first, b"{}")
    result = build(index, tmp_path / "site", jobs=2)
    assert result.counts["verified"] == len(list(result.document.releases()))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_parent_and_workers_together_give_the_serial_site(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """Releases split between the parent and a worker (in any proportion) give the same site."""
    _use_workers(monkeypatch, method)
    for i in range(6):
        index.add_release("alpha", f"4.0.{i}", variant=20 + i)
    serial = build(index, tmp_path / "serial")
    mixed = build(index, tmp_path / "mixed", jobs=2)
    assert mixed.document == serial.document
    files = sorted(p.relative_to(tmp_path / "serial") for p in (tmp_path / "serial").rglob("*"))
    assert files == sorted(p.relative_to(tmp_path / "mixed") for p in (tmp_path / "mixed").rglob("*"))
    for name in files:
        a, b = tmp_path / "serial" / name, tmp_path / "mixed" / name
        assert a.is_dir() == b.is_dir()
        if a.is_file():
            assert a.read_bytes() == b.read_bytes(), name


def test_workers_are_spawned_while_any_other_thread_runs() -> None:
    """A fork copies one thread: a lock another thread holds (Python's, or a native pool's such as
    wasmtime's, which threading does not list) would never be released in the child."""
    import threading

    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        assert workers._os_threads() >= 2
        assert workers.start_method() == "spawn"
    finally:
        stop.set()
        other.join()


def test_workers_are_spawned_once_wasmtime_runs_its_thread_pool() -> None:
    """Native threads are invisible to threading: after a parallel compile, only /proc tells."""
    import subprocess
    import sys

    script = (
        "import threading, wasmtime\n"
        "from registry_tool.registry import workers\n"
        "funcs = ' '.join(f'(func (export \"f{i}\") (result i32) i32.const {i})' for i in range(300))\n"
        "wasmtime.Module(wasmtime.Engine(), wasmtime.wat2wasm(f'(module {funcs})'))\n"
        "assert threading.active_count() == 1, threading.active_count()\n"
        "print(workers.start_method())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["spawn"]


def test_spawned_workers_never_import_from_the_working_directory(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build runs in the index's checkout: `python -c`, which starts a spawned worker, puts the
    working directory first on sys.path, and a multiprocessing/ package there ran in the worker
    (which can read the index key's file).  A forked worker imports nothing."""
    _use_workers(monkeypatch, "spawn")
    monkeypatch.setattr(workers, "PARENT_WORKS", False)
    marker = tmp_path / "ran"
    fake = tmp_path / "checkout" / "multiprocessing"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.chdir(fake.parent)
    result = build(index, tmp_path / "site", jobs=2)
    assert not marker.exists()
    assert result.counts["verified"] == len(list(result.document.releases()))
