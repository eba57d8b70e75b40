"""Verifying the releases the cache cannot answer: in this process, or in a pool of workers.

Workers are spawned processes (the parent may run threads: the progress bar, sandbox pools);
each loads the config and the root chain once, verifies a few large chunks of releases and
writes their files straight into the staging folder, so file bytes never cross the result pipe.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from registry_tool.errors import RegistryToolError
from registry_tool.manifest import RegistryConfig, load_registry_config
from registry_tool.registry.publish import write_release
from registry_tool.registry.scan import IndexRelease, RootChain, load_root_chain
from registry_tool.registry.verify import PreparedRelease, prepare_release
from registry_tool.report import Finding

#: A release's outcome: what verification derived, or why it refused.
Outcome = PreparedRelease | list[Finding]

_CHUNKS_PER_JOB = 4  # enough for an even spread when releases differ in cost
#: Below this many cache misses per worker, starting worker processes (spawn: a fresh interpreter
#: importing wasmtime and verifying the root chain) costs more than it saves.
MIN_PER_JOB = 64


@dataclass(frozen=True)
class _WorkerState:
    config: RegistryConfig
    chain: RootChain
    now: datetime


_STATE: list[_WorkerState] = []  # the worker process's state, set by its initializer


def _worker_init(index: Path, verify_now: datetime) -> None:
    _STATE[:] = [_WorkerState(load_registry_config(index), load_root_chain(index, verify_now), verify_now)]


def _prepare_and_write(
    rel: IndexRelease,
    published: datetime,
    state: _WorkerState,
    smoke: bool,
    staged: str,
) -> Outcome:
    """Verify one release and write its files into the staging folder; refusals as findings."""
    try:
        prep = prepare_release(rel, state.config, state.chain, published, state.now, smoke)
    except RegistryToolError as err:
        found = getattr(err, "findings", None)
        return list(found) if found else [Finding.from_error(err)]
    # Written now, not kept: 10,000 releases of 1 MiB would otherwise sit in memory.
    write_release(staged, rel, prep.data)
    prep.data, prep.written = {}, True
    return prep


def _worker_chunk(chunk: list[tuple[IndexRelease, datetime]], smoke: bool, staged: str) -> list[Outcome]:
    """A chunk of releases in a worker process (errors come back as findings: exceptions may not pickle)."""
    return [_prepare_and_write(rel, published, _STATE[0], smoke, staged) for rel, published in chunk]


def prepare_all(
    todo: list[tuple[IndexRelease, datetime]],
    *,
    index: Path,
    config: RegistryConfig,
    chain: RootChain,
    verify_now: datetime,
    smoke: bool,
    jobs: int,
    staged: Path,
    tick: Callable[[str], None],
) -> list[Outcome]:
    """``prepare_release`` for every release of ``todo``, in order, writing each into ``staged``.

    Args:
        todo: The releases with their publication times.
        index: The index folder (workers load the config and root chain from it).
        config: The registry's configuration (this process).
        chain: The verified root chain (this process).
        verify_now: The clock for expiry checks.
        smoke: Run the smoke tests.
        jobs: Worker processes; they start only when each gets at least ``MIN_PER_JOB`` releases.
        staged: The staging folder.
        tick: Called with ``"name version"`` once per release done.

    Returns:
        One outcome per release of ``todo``.
    """
    if jobs <= 1 or len(todo) < MIN_PER_JOB * jobs:
        here = _WorkerState(config, chain, verify_now)
        out: list[Outcome] = []
        for rel, published in todo:
            out.append(_prepare_and_write(rel, published, here, smoke, str(staged)))
            tick(f"{rel.name} {rel.version}")
        return out
    # A few large tasks, not one per release: each task costs a round trip and pickling.
    size = -(-len(todo) // (jobs * _CHUNKS_PER_JOB))
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    with ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(index, verify_now),
    ) as pool:
        futures = [pool.submit(_worker_chunk, chunk, smoke, str(staged)) for chunk in chunks]
        results: list[Outcome] = []
        for chunk, future in zip(chunks, futures, strict=True):
            results.extend(future.result())
            for rel, _ in chunk:
                tick(f"{rel.name} {rel.version}")
        return results
