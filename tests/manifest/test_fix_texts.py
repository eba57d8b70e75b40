"""Fixes a maintainer can follow with the toolchain that built the refused module (asc, Go, clang)."""

from __future__ import annotations

from registry_tool.manifest.abi import LinkDecision, import_refusal, module_kind
from registry_tool.manifest.wasm import feature_fix


def test_a_shared_memory_refused_for_threads_is_not_sent_to_threads_true() -> None:
    """threads = true would not run it either: the sandbox refuses shared memories."""
    fix = feature_fix("threads must be enabled for shared memories (at offset 0x5f)")
    assert "without shared memory" in fix and "set threads = true" not in fix


def test_the_data_count_section_names_bulk_memory_and_each_toolchains_flag() -> None:
    fix = feature_fix("data count section requires the bulk-memory proposal to be enabled (at offset 0xc1)")
    assert "bulk_memory = true" in fix and "asc --disable bulk-memory" in fix and "Go" in fix


def test_an_imported_memory_is_told_to_build_with_its_own() -> None:
    refusal = import_refusal("core", "env", "memory", LinkDecision(None, "no"), False, None)
    assert "--importMemory" in refusal.fix and "ask the registry for a permission" not in refusal.fix


def test_the_core_wasi_fix_says_what_go_can_do() -> None:
    refusal = import_refusal(
        "core", "wasi_snapshot_preview1", "fd_write", LinkDecision(None, "no"), False, None
    )
    assert "Go (GOOS=wasip1) always imports WASI" in refusal.fix


def test_an_abi_starting_with_a_vowel_reads_an() -> None:
    kind = module_kind("extism", [], ["proxy_abi_version_0_2_1"], [])
    assert kind is not None and "not an extism plugin" in kind.message
