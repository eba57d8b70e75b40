"""Verifying the releases the cache cannot answer: in this process, helped by worker processes.

With ``jobs`` N > 1 and enough releases the build runs up to N - 1 worker processes and verifies
releases itself meanwhile, so the first releases are done while the workers start, and a build
never waits for a worker it could have done without.  Where the platform forks and this process
runs no other thread, workers are forked: they share the parent's imports and state and answer
within milliseconds (``manifest.wasm`` gives a forked child its own engines: wasmtime's thread pool
does not survive a fork).  Otherwise (another thread could hold a lock the child would need: a
sandbox pool, a host's threads) they are spawned, fresh interpreters that take about 0.4 s.
Workers get no release before they answer a first (empty) task: until then the parent does the
work.  Each task is a slice of releases sent as plain tuples (names and paths); a worker writes
their files straight into the staging folder, so file bytes never cross the result pipe.

A worker verifies with exactly what the parent checked: the registry.toml bytes whose digest the
root pins (parsed again from those bytes, never re-read from the index) and the root chain the
parent verified (pickled).  A registry.toml or root file changed on disk after the parent's
checks is never used.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from registry_tool.errors import RegistryToolError
from registry_tool.manifest.config import RegistryConfig, parse_registry_config
from registry_tool.registry.publish import write_release
from registry_tool.registry.scan import IndexRelease, RootChain
from registry_tool.registry.verify import PreparedRelease, ReleaseEntry, prepare_release
from registry_tool.report import Finding

#: A release's outcome: what verification derived, or why it refused.
Outcome = PreparedRelease | list[Finding]

#: Cache misses per verifying process before a spawned worker starts: a spawned worker (a fresh
#: interpreter importing the build and wasmtime) answers its first task about 0.4 s after the
#: start, while the parent verifies and writes a release in about 1 ms; on 2 cores shared with
#: other jobs (load average 3) such a worker at 1,000 releases made the build slower in 4 of 5
#: interleaved rounds (2.0-2.3 s against 1.5-2.0 s), so it starts from 1,000 releases per process.
MIN_PER_JOB = 1000
#: The same for a forked worker, which is ready in a few milliseconds.
MIN_PER_FORKED_JOB = 250
#: Releases per worker task: large enough that the round trip is noise, small enough that the
#: parent never waits long for the last task at the end.
_TASK_MAX = 64
_TASK_MIN = 8
#: The parent verifies releases too (False: only the workers do; tests use it to prove what a
#: worker does).
PARENT_WORKS = True

#: A release as a worker task carries it: name, version, folder, files (see ``IndexRelease``).
_Sent = tuple[str, str, str, list[tuple[str, str]], datetime]
#: What comes back: the entry and files of a ``PreparedRelease``, or the refusal's findings.
_Back = tuple[ReleaseEntry, dict[str, tuple[str, int]]] | list[Finding]


@dataclass(frozen=True)
class _WorkerState:
    config: RegistryConfig
    chain: RootChain
    now: datetime
    plugins: Path  # the index's plugins/ folder, resolved


_STATE: list[_WorkerState] = []  # the worker process's state, set by its initializer


def _worker_init(
    config_path: Path, config_raw: bytes, chain: RootChain, verify_now: datetime, plugins: Path
) -> None:
    # The parent's checked bytes, not the file: registry.toml may have changed since the pin check.
    _STATE[:] = [_WorkerState(parse_registry_config(config_path, config_raw), chain, verify_now, plugins)]


def _ready() -> bool:
    """The first task of a worker: answered once its initializer ran (it is ready for releases)."""
    return bool(_STATE)


def _prepare_and_write(
    rel: IndexRelease,
    published: datetime,
    state: _WorkerState,
    smoke: bool,
    staged: str,
) -> Outcome:
    """Verify one release and write its files into the staging folder; refusals as findings."""
    try:
        prep = prepare_release(
            rel, state.config, state.chain, published, state.now, smoke, plugins=state.plugins
        )
    except RegistryToolError as err:
        found = getattr(err, "findings", None)
        return list(found) if found else [Finding.from_error(err)]
    # Written now, not kept: 10,000 releases of 1 MiB would otherwise sit in memory.
    write_release(staged, rel, prep.data)
    prep.data, prep.written = {}, True
    return prep


def _worker_task(task: list[_Sent], smoke: bool, staged: str) -> list[_Back]:
    """Releases in a worker process (errors come back as findings: exceptions may not pickle)."""
    out: list[_Back] = []
    for name, version, path, files, published in task:
        done = _prepare_and_write(
            IndexRelease(name, version, path, files), published, _STATE[0], smoke, staged
        )
        out.append(done if isinstance(done, list) else (done.entry, done.files))
    return out


def _received(back: _Back) -> Outcome:
    if isinstance(back, list):
        return back
    return PreparedRelease(entry=back[0], files=back[1], written=True)


def prepare_all(
    todo: list[tuple[IndexRelease, datetime]],
    *,
    config: RegistryConfig,
    chain: RootChain,
    verify_now: datetime,
    plugins: Path,
    smoke: bool,
    jobs: int,
    staged: Path,
    tick: Callable[[str], None],
) -> list[Outcome]:
    """``prepare_release`` for every release of ``todo``, in order, writing each into ``staged``.

    Args:
        todo: The releases with their publication times.
        config: The registry's configuration, checked against the root's pin (workers parse its bytes).
        chain: The verified root chain (workers get this very chain).
        verify_now: The clock for expiry checks.
        plugins: The index's ``plugins/`` folder with every symbolic link resolved.
        smoke: Run the smoke tests.
        jobs: Processes verifying at most, this one included; only as many start as get
            ``MIN_PER_JOB`` releases each.
        staged: The staging folder.
        tick: Called with ``"name version"`` once per release done (always in this thread).

    Returns:
        One outcome per release of ``todo``.
    """
    here = _WorkerState(config, chain, verify_now, plugins)
    results: list[Outcome | None] = [None] * len(todo)

    def mine(i: int) -> None:
        rel, published = todo[i]
        results[i] = _prepare_and_write(rel, published, here, smoke, str(staged))
        tick(f"{rel.name} {rel.version}")

    method = start_method()
    processes = min(jobs, len(todo) // (MIN_PER_FORKED_JOB if method == "fork" else MIN_PER_JOB))
    if processes <= 1:
        for i in range(len(todo)):
            mine(i)
        return [r for r in results if r is not None]
    # Workers take slices from the front of ``todo``, the parent takes releases from the back.
    front, back = 0, len(todo)
    helpers = processes - 1
    # The pool's locks start multiprocessing's resource tracker; a spawning pool starts its
    # processes on these submits.
    with _safe_path(method):
        pool = ProcessPoolExecutor(
            max_workers=helpers,
            mp_context=multiprocessing.get_context(method),
            initializer=_worker_init,
            initargs=(config.path, config.raw, chain, verify_now, plugins),
        )
        probes = [pool.submit(_ready) for _ in range(helpers)]
    ready = 0
    pending: dict[Future[list[_Back]], tuple[int, int]] = {}

    def exchange() -> None:
        """Collect finished tasks and give every ready worker up to two tasks in flight."""
        nonlocal front, ready
        for probe in [p for p in probes if p.done()]:
            probes.remove(probe)
            probe.result()  # a worker that failed to start fails the build
            ready += 1
        for future in [f for f in pending if f.done()]:
            start, end = pending.pop(future)
            for i, sent_back in zip(range(start, end), future.result(), strict=True):
                results[i] = _received(sent_back)
                tick(f"{todo[i][0].name} {todo[i][0].version}")
        while len(pending) < 2 * ready and front < back:
            size = max(_TASK_MIN, min(_TASK_MAX, (back - front) // (4 * processes)))
            end = min(front + size, back)
            task = [
                (rel.name, rel.version, rel.folder, rel.files, published)
                for rel, published in todo[front:end]
            ]
            pending[pool.submit(_worker_task, task, smoke, str(staged))] = (front, end)
            front = end

    try:
        while front < back:
            exchange()
            if front < back and PARENT_WORKS:
                back -= 1
                mine(back)
            elif front < back:
                _wait_any(probes, pending)
        while pending:
            _wait_any([], pending)
            exchange()
    finally:
        # A worker still starting when the parent is done gets no task; it is not waited for.
        pool.shutdown(wait=not probes, cancel_futures=True)
    done = [r for r in results if r is not None]
    assert len(done) == len(todo)
    return done


def start_method() -> str:
    """``fork`` where the platform forks safely and this is the process's only thread, else ``spawn``."""
    # macOS forks, but its system libraries are not fork-safe (CPython spawns there by default).
    if sys.platform == "linux" and threading.active_count() == 1 and _os_threads() == 1:
        return "fork"
    return "spawn"


@contextlib.contextmanager
def _safe_path(method: str) -> Iterator[None]:
    """PYTHONSAFEPATH=1 for the processes a spawning pool starts meanwhile.

    multiprocessing starts them with ``python -c``, which puts the working directory (in CI the
    pull request's tree) first on sys.path before anything is imported: a ``multiprocessing/``
    package there would run in the build's workers, which can read the index key's file.
    """
    if method == "fork" or os.environ.get("PYTHONSAFEPATH"):
        yield
        return
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        yield
    finally:
        os.environ.pop("PYTHONSAFEPATH", None)


def _os_threads() -> int:
    """Threads of this process as Linux counts them: native ones too (wasmtime's pool, a host's)."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0  # unknown: not known to be alone


def _wait_any(probes: list[Future[bool]], pending: dict[Future[list[_Back]], tuple[int, int]]) -> None:
    waiting: list[Future[Any]] = [*probes, *pending]
    if waiting:
        wait(waiting, return_when=FIRST_COMPLETED)
