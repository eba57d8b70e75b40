"""registry.toml: loading, the import predicate the sandbox reuses, limits and features."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import wasmtime

from registry_tool.errors import EXIT_CHECK_FAILED, EXIT_USAGE
from registry_tool.manifest import (
    Limits,
    RegistryConfigError,
    RegistryConfigNotFoundError,
    engine_config,
    find_registry_config,
    load_registry_config,
)
from registry_tool.manifest.wasm import WasmConfigError

REPO = Path(__file__).resolve().parents[2]
INDEX = REPO / "index"


@pytest.fixture(scope="module")
def config():  # type: ignore[no-untyped-def]
    return load_registry_config(INDEX)


def test_sample_config_values(config) -> None:  # type: ignore[no-untyped-def]
    assert config.name == "ferrite-plugins"
    assert config.host_name == "ferrite"
    assert config.allowed_abis == ("core", "wasi-command", "extism", "proxy-wasm", "component")
    assert config.default_limits == Limits(fuel=50_000_000, memory=16 * 1024**2, wall_time=2.0)
    assert config.max_limits.module_size == 32 * 1024**2
    assert config.max_limits.stack == 1024**2
    assert config.index_validity == 7 * 86400
    assert config.allow_backports is False
    assert config.regression_threshold == 0.25
    assert config.features["threads"] is False
    assert config.raw == (INDEX / "registry.toml").read_bytes()
    assert config.line_of("limits.max.fuel") is not None


@pytest.mark.parametrize(
    ("abi", "granted", "module", "name", "allowed"),
    [
        ("core", set(), "ferrite:keys", "get", False),
        ("core", {"keys"}, "ferrite:keys", "get", True),
        ("core", {"network"}, "ferrite:keys", "get", False),
        ("core", {"keys"}, "ferrite:net", "fetch", False),
        ("core", set(), "wasi_snapshot_preview1", "fd_write", False),
        ("core", set(), "env", "abort", False),
        ("wasi-command", set(), "wasi_snapshot_preview1", "fd_write", True),
        ("wasi-command", set(), "extism:host/env", "alloc", False),
        ("wasi-command", {"keys"}, "ferrite:keys", "set", True),
        ("extism", set(), "extism:host/env", "output_set", True),
        ("extism", set(), "wasi_snapshot_preview1", "fd_write", True),
        ("extism", set(), "extism:host/user", "lookup", False),
        ("extism", {"extism_user"}, "extism:host/user", "lookup", True),
        ("extism", set(), "extism:host/envx", "alloc", False),
        # The Extism host's HTTP functions are network (the sample vocabulary and `init`'s).
        ("extism", set(), "extism:host/env", "http_request", False),
        ("extism", {"keys"}, "extism:host/env", "http_status_code", False),
        ("extism", {"network"}, "extism:host/env", "http_request", True),
        ("extism", set(), "extism:host/env", "config_get", True),
        ("component", set(), "wasi:cli/environment@0.2.0", "", True),
        ("component", set(), "ferrite:keys", "", False),
        ("component", set(), "ferrite:keys/store@1.0.0", "", False),
        ("component", {"keys"}, "ferrite:keys/store@1.0.0", "", True),
        ("component", {"keys"}, "ferrite:keysx/store", "", False),
        ("unknown-abi", set(), "wasi_snapshot_preview1", "fd_write", False),
    ],
)
def test_import_allowed(config, abi, granted, module, name, allowed) -> None:  # type: ignore[no-untyped-def]
    assert config.import_allowed(abi, granted, module, name) is allowed


def test_allowed_imports_lists_base_and_granted_patterns(config) -> None:  # type: ignore[no-untyped-def]
    patterns = config.allowed_imports("wasi-command", {"keys"})
    assert [(p.module, p.name) for p in patterns] == [("wasi_snapshot_preview1", "*"), ("ferrite:keys", "*")]


def test_limits_over_and_exceeding() -> None:
    default = Limits(fuel=10, memory=100, wall_time=2.0)
    maximum = Limits(fuel=100, memory=1000, wall_time=10.0, module_size=5000)
    declared = Limits(fuel=500, memory=50)
    effective = declared.over(default).over(maximum)
    assert effective == Limits(fuel=500, memory=50, wall_time=2.0, module_size=5000)
    assert declared.exceeding(maximum) == [("fuel", 500, 100)]


def test_find_registry_config_walks_up() -> None:
    assert find_registry_config(INDEX / "plugins" / "adler32" / "1.0.0") == INDEX / "registry.toml"
    assert find_registry_config(INDEX / "registry.toml") == INDEX / "registry.toml"


@pytest.mark.parametrize("kind", ["fifo", "device-link"])
def test_a_named_configuration_that_is_no_file_is_never_an_ancestors(tmp_path: Path, kind: str) -> None:
    """--config strict.toml, a FIFO beside an index's registry.toml, validated against that one."""
    (tmp_path / "registry.toml").write_bytes((INDEX / "registry.toml").read_bytes())
    named = tmp_path / "strict.toml"
    if kind == "fifo":
        os.mkfifo(named)
    else:
        named.symlink_to("/dev/null")
    with pytest.raises(RegistryConfigNotFoundError) as info:
        find_registry_config(named)
    said = info.value.diagnostics()
    assert info.value.exit_code == EXIT_USAGE and ("a FIFO" in said or "a device" in said), said


def test_missing_config_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryConfigNotFoundError) as info:
        load_registry_config(tmp_path)
    assert info.value.exit_code == EXIT_USAGE
    assert "--config" in info.value.diagnostics()


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "registry.toml").write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("old", "new", "rule", "fragment"),
    [
        ('name = "ferrite-plugins"', 'name = "Ferrite Plugins"', "schema", "registry.name"),
        ('base_url = "http://127.0.0.1:8765/"', 'base_url = "ftp://x/"', "schema", "registry.base_url"),
        (
            'base_url = "http://127.0.0.1:8765/"',
            'base_url = "https://x.org/no-slash"',
            "schema",
            "registry.base_url",
        ),
        (
            'allowed = ["core", "wasi-command", "extism", "proxy-wasm", "component"]',
            "allowed = []",
            "schema",
            "abis.allowed",
        ),
        (
            'allowed = ["core", "wasi-command", "extism", "proxy-wasm", "component"]',
            'allowed = ["wasi"]',
            "schema",
            "abis.allowed",
        ),
        ('module_size = "32MiB"', "", "schema", "'module_size' is required"),
        ('validity = "7d"', 'validity = "a week"', "schema", "index.validity"),
        ("simd = true", "simd = true\nsimdd = true", "unknown-key", "did you mean 'simd'"),
        (
            'wall_time = "10s"',
            'wall_time = "10s"\nwalltime = "1s"',
            "unknown-key",
            "did you mean 'wall_time'",
        ),
        (
            'imports = [{ module = "ferrite:keys", name = "*" }]',
            "imports = []",
            "schema",
            "permissions.keys.imports",
        ),
        ('memory = "16MiB"', 'memory = "512MiB"', "limit-exceeded", "default memory"),
        ("simd = true", "simd = false\nrelaxed_simd = true", "features", "requires 'simd'"),
        # What the schema lets through but the build cannot publish (a crash, or a refused document).
        ('validity = "7d"', 'validity = "500000w"', "schema", "ten years"),
        ('validity = "7d"', 'validity = "999999999999999999w"', "schema", "ten years"),
        ('validity = "7d"', 'validity = "500ms"', "schema", "under one second"),
        ('compile_time = "300s"', 'compile_time = "999999999999999999w"', "limits", "ten years"),
        ("fuel = 1_000_000_000", "fuel = 4_611_686_018_427_387_904", "limits", "2**53"),
        ('memory = "256MiB"', 'memory = "999999999999999999GiB"', "limits", "2**53"),
        ('name = "ferrite-plugins"', 'name = "ferrite-plugins\\n"', "schema", "line break"),
        (
            'base_url = "http://127.0.0.1:8765/"',
            'base_url = "http://127.0.0.1:8765/\\n"',
            "schema",
            "line break",
        ),
        (
            'base_url = "http://127.0.0.1:8765/"',
            f'base_url = "http://127.0.0.1:8765/{"a" * 2048}/"',
            "schema",
            "long",
        ),
        ('versions = ">=0.2.0, <1.0.0"', f'versions = ">=0.2.0, <1.0.0{" " * 250}"', "schema", "long"),
        ("[permissions.keys]", '[permissions."keys\\n"]', "schema", "line break"),
        # Shown by the client, the catalog and the permission prompt, as a plugin's description is.
        (
            'description = "UDF plugins',
            'description = "\\u001b[31mRED\\u202eesrever UDF plugins',
            "text-field",
            "registry.description holds control or bidi",
        ),
        (
            'description = "Read and write',
            'description = "\\u001b]0;title\\u0007 Read and write',
            "text-field",
            "permissions.keys.description",
        ),
    ],
)
def test_bad_registry_config(tmp_path: Path, old: str, new: str, rule: str, fragment: str) -> None:
    text = (INDEX / "registry.toml").read_text()
    assert old in text
    with pytest.raises(RegistryConfigError) as info:
        load_registry_config(_write(tmp_path, text.replace(old, new, 1)))
    err = info.value
    assert err.exit_code == EXIT_CHECK_FAILED
    assert any(f.rule == rule and fragment in f"{f.message} {f.fix}" for f in err.findings), err.findings
    assert all(f.line for f in err.findings if f.field), "config findings carry the TOML line"


@pytest.mark.parametrize(
    ("features", "wat", "ok"),
    [
        ({"simd": True}, "(module (func (result v128) v128.const i64x2 0 0))", True),
        ({"simd": False}, "(module (func (result v128) v128.const i64x2 0 0))", False),
        ({"threads": False}, "(module (memory 1 1 shared))", False),
        ({"threads": True}, "(module (memory 1 1 shared))", True),
        ({"multi_memory": False}, "(module (memory 1) (memory 1))", False),
        ({"multi_memory": True}, "(module (memory 1) (memory 1))", True),
        ({"reference_types": False}, "(module (func (param externref)))", False),
        ({"tail_call": False}, "(module (func $f (return_call $f)))", False),
        ({"tail_call": True}, "(module (func $f (return_call $f)))", True),
        ({"memory64": False}, "(module (memory i64 1))", False),
    ],
)
def test_engine_config_applies_features(features: dict[str, bool], wat: str, ok: bool) -> None:
    engine = wasmtime.Engine(engine_config(features))
    data = wasmtime.wat2wasm(wat)
    if ok:
        wasmtime.Module(engine, data)
    else:
        with pytest.raises(wasmtime.WasmtimeError):
            wasmtime.Module(engine, data)


def test_unknown_feature_is_rejected_before_wasmtime_sees_it() -> None:
    with pytest.raises(WasmConfigError, match="unknown wasm feature 'simd2'"):
        engine_config({"simd2": True})


def test_explicit_config_file_is_used_whatever_its_name(tmp_path: Path) -> None:
    other = tmp_path / "staging-registry.toml"
    other.write_text((INDEX / "registry.toml").read_text().replace("ferrite-plugins", "staging"))
    assert load_registry_config(other).name == "staging"


def test_missing_explicit_config_does_not_fall_back_to_a_parent(tmp_path: Path) -> None:
    (tmp_path / "registry.toml").write_text((INDEX / "registry.toml").read_text())
    (tmp_path / "sub").mkdir()
    with pytest.raises(RegistryConfigNotFoundError, match="does not exist"):
        load_registry_config(tmp_path / "sub" / "typo.toml")


def test_a_permission_can_gate_part_of_an_abi(tmp_path: Path) -> None:
    """Fail closed: an import a permission covers needs that permission even if the ABI allows it."""
    text = (INDEX / "registry.toml").read_text() + (
        '\n[permissions.sockets]\ndescription = "WASI sockets"\n'
        'imports = [{ module = "wasi_snapshot_preview1", name = "sock_*" }]\n'
    )
    cfg = load_registry_config(_write(tmp_path, text))
    assert not cfg.import_allowed("wasi-command", set(), "wasi_snapshot_preview1", "sock_accept")
    assert cfg.import_allowed("wasi-command", {"sockets"}, "wasi_snapshot_preview1", "sock_accept")
    assert cfg.import_allowed("wasi-command", set(), "wasi_snapshot_preview1", "fd_write")
    assert cfg.granting_permission("wasi_snapshot_preview1", "sock_recv") == "sockets"


@pytest.mark.parametrize("spelling", ["registry.toml", "./registry.toml"])
def test_validate_takes_registry_toml_as_a_relative_path(
    monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    """It answered "no plugin.toml found" (exit 2) unless given the full path."""
    from registry_tool.manifest import validate_paths

    monkeypatch.chdir(INDEX)
    report = validate_paths([Path(spelling)])
    assert report.ok and len(report.results) == 1


def test_a_root_expiry_in_the_past_is_refused() -> None:
    """`root renew --expires 2000-01-01T00:00:00Z` wrote a root no client would trust, and exited 0."""
    from datetime import UTC, datetime

    from registry_tool.errors import UsageError
    from registry_tool.trust.editing import parse_expiry

    now = datetime(2026, 11, 28, tzinfo=UTC)
    with pytest.raises(UsageError, match="not in the future"):
        parse_expiry("2000-01-01T00:00:00Z", now)
    assert parse_expiry("2027-01-01T00:00:00Z", now) > now


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("0d", "not in the future"),
        ("0s", "not in the future"),
        ("9999-12-31T23:59:59Z", "ten years"),
        # A malformed time is the option's fault (exit 2, naming it), not a document's (exit 1).
        ("2027-02-30T00:00:00Z", "--expires: .* is not a valid RFC 3339"),
        ("2027-01-01T00:00:00", "--expires: .* is not a valid RFC 3339"),
    ],
)
def test_a_root_expiry_of_now_or_beyond_ten_years_is_refused(value: str, why: str) -> None:
    """`--expires 0d` wrote a root expired when written (root sign signed it); an absolute time
    passed the ten-year bound a duration has."""
    from datetime import UTC, datetime

    from registry_tool.errors import UsageError
    from registry_tool.trust.editing import parse_expiry

    now = datetime(2026, 11, 28, tzinfo=UTC)
    with pytest.raises(UsageError, match=why):
        parse_expiry(value, now)
    assert parse_expiry("3650d", now) > now


def test_a_registry_toml_that_is_no_regular_file_is_named_not_skipped(tmp_path: Path) -> None:
    """A FIFO named registry.toml was "no registry.toml found", and a parent's could have won."""
    import os

    from registry_tool.manifest.config import find_registry_config
    from registry_tool.manifest.errors import RegistryConfigNotFoundError

    (tmp_path / "registry.toml").write_text("")  # a parent's: never the index's own
    index = tmp_path / "index"
    index.mkdir()
    os.mkfifo(index / "registry.toml")
    with pytest.raises(RegistryConfigNotFoundError, match="is not a regular file"):
        find_registry_config(index)
