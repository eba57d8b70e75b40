"""Sandboxed smoke runs of plugin modules under fuel, memory, time and process limits.

``smoke_paths`` / ``smoke_release`` are the entry points; ``run_job`` runs prepared ``Case`` objects
without any TOML (used by tests and other tools).  See docs/sandbox.md.

Names are imported on first use: the worker process (``python -m registry_tool.sandbox.worker``)
imports this package too, and needs none of the parent's modules (harness, reports).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry_tool._lazy import lazy_exports

if TYPE_CHECKING:
    from registry_tool.sandbox.abis import Case, ImportPolicy, ImportRule
    from registry_tool.sandbox.engine import EngineSpec, Limits, ModuleCache, default_cache_dir
    from registry_tool.sandbox.harness import (
        SmokeSetupError,
        case_from_spec,
        job_for,
        release_result,
        run_job,
        smoke_paths,
        smoke_release,
    )
    from registry_tool.sandbox.outcome import Outcome, TestOutcome, neutralise
    from registry_tool.sandbox.worker import Job

_WHERE = {
    "Case": "abis",
    "ImportPolicy": "abis",
    "ImportRule": "abis",
    "EngineSpec": "engine",
    "Limits": "engine",
    "ModuleCache": "engine",
    "default_cache_dir": "engine",
    "SmokeSetupError": "harness",
    "case_from_spec": "harness",
    "job_for": "harness",
    "release_result": "harness",
    "run_job": "harness",
    "smoke_paths": "harness",
    "smoke_release": "harness",
    "Outcome": "outcome",
    "TestOutcome": "outcome",
    "neutralise": "outcome",
    "Job": "worker",
}

__all__ = [
    "Case",
    "EngineSpec",
    "ImportPolicy",
    "ImportRule",
    "Job",
    "Limits",
    "ModuleCache",
    "Outcome",
    "SmokeSetupError",
    "TestOutcome",
    "case_from_spec",
    "default_cache_dir",
    "job_for",
    "neutralise",
    "release_result",
    "run_job",
    "smoke_paths",
    "smoke_release",
]

__getattr__ = lazy_exports(__name__, _WHERE)
