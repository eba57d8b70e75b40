"""Sandboxed smoke runs of plugin modules under fuel, memory, time and process limits (issue 3).

``smoke_paths`` / ``smoke_release`` are the entry points; ``run_job`` runs prepared ``Case`` objects
without any TOML (used by tests and other tools).  See docs/sandbox.md.
"""

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
