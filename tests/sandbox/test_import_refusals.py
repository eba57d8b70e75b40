"""What validate and smoke say about an import they refuse: one contract (``link_import`` decides,
``import_refusal`` explains), so a permission-gated WASI import, WASI preview 0 outside Proxy-Wasm and
AssemblyScript's ``env.abort`` read the same in both, with a fix that helps."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry_tool.manifest import load_registry_config, validate_release
from registry_tool.manifest.abi import (
    WASI_FUNCTIONS,
    WASI_UNSTABLE,
    WASI_UNSTABLE_FUNCTIONS,
    link_import,
)
from registry_tool.sandbox import Case, ImportRule, Outcome

from .conftest import WRITER, Runner, wat

EXAMPLES_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "registry.toml"
WASI_GATE = '\n[permissions.wasi]\ndescription = "WASI"\nimports = [{ module = "wasi_snapshot_preview1" }]\n'
WASI_RULE = ImportRule("wasi_snapshot_preview1", "*", "wasi")

_I, _L = "i32", "i64"
#: WASI preview 0 as the snapshot_0 witx (WebAssembly/WASI phases/old/snapshot_0) declares it, lowered
#: to core types: every handle, size, pointer, enum and flag set is an i32, except the 64-bit ones
#: (timestamp, filesize, filedelta, dircookie, rights), which are i64; results go through pointers.
PREVIEW0 = {
    "args_get": ((_I, _I), (_I,)),
    "args_sizes_get": ((_I, _I), (_I,)),
    "environ_get": ((_I, _I), (_I,)),
    "environ_sizes_get": ((_I, _I), (_I,)),
    "clock_res_get": ((_I, _I), (_I,)),
    "clock_time_get": ((_I, _L, _I), (_I,)),
    "fd_advise": ((_I, _L, _L, _I), (_I,)),
    "fd_allocate": ((_I, _L, _L), (_I,)),
    "fd_close": ((_I,), (_I,)),
    "fd_datasync": ((_I,), (_I,)),
    "fd_fdstat_get": ((_I, _I), (_I,)),
    "fd_fdstat_set_flags": ((_I, _I), (_I,)),
    "fd_fdstat_set_rights": ((_I, _L, _L), (_I,)),
    "fd_filestat_get": ((_I, _I), (_I,)),
    "fd_filestat_set_size": ((_I, _L), (_I,)),
    "fd_filestat_set_times": ((_I, _L, _L, _I), (_I,)),
    "fd_pread": ((_I, _I, _I, _L, _I), (_I,)),
    "fd_prestat_get": ((_I, _I), (_I,)),
    "fd_prestat_dir_name": ((_I, _I, _I), (_I,)),
    "fd_pwrite": ((_I, _I, _I, _L, _I), (_I,)),
    "fd_read": ((_I, _I, _I, _I), (_I,)),
    "fd_readdir": ((_I, _I, _I, _L, _I), (_I,)),
    "fd_renumber": ((_I, _I), (_I,)),
    "fd_seek": ((_I, _L, _I, _I), (_I,)),
    "fd_sync": ((_I,), (_I,)),
    "fd_tell": ((_I, _I), (_I,)),
    "fd_write": ((_I, _I, _I, _I), (_I,)),
    "path_create_directory": ((_I, _I, _I), (_I,)),
    "path_filestat_get": ((_I, _I, _I, _I, _I), (_I,)),
    "path_filestat_set_times": ((_I, _I, _I, _I, _L, _L, _I), (_I,)),
    "path_link": ((_I, _I, _I, _I, _I, _I, _I), (_I,)),
    "path_open": ((_I, _I, _I, _I, _I, _L, _L, _I, _I), (_I,)),
    "path_readlink": ((_I, _I, _I, _I, _I, _I), (_I,)),
    "path_remove_directory": ((_I, _I, _I), (_I,)),
    "path_rename": ((_I, _I, _I, _I, _I, _I), (_I,)),
    "path_symlink": ((_I, _I, _I, _I, _I), (_I,)),
    "path_unlink_file": ((_I, _I, _I), (_I,)),
    "poll_oneoff": ((_I, _I, _I, _I), (_I,)),
    "proc_exit": ((_I,), ()),
    "proc_raise": ((_I,), (_I,)),
    "sched_yield": ((), (_I,)),
    "random_get": ((_I, _I), (_I,)),
    "sock_recv": ((_I, _I, _I, _I, _I, _I), (_I,)),
    "sock_send": ((_I, _I, _I, _I, _I), (_I,)),
    "sock_shutdown": ((_I, _I), (_I,)),
}


def test_wasi_unstable_links_each_preview_0_function_whose_type_is_preview_1s() -> None:
    same = {name: types for name, types in PREVIEW0.items() if WASI_FUNCTIONS.get(name) == types}
    assert same == PREVIEW0  # every preview 0 function, checked one by one
    assert dict(WASI_UNSTABLE_FUNCTIONS) == same
    assert set(WASI_FUNCTIONS) - set(PREVIEW0) == {"sock_accept"}  # preview 1's addition
    refused = link_import(
        "proxy-wasm", WASI_UNSTABLE, "sock_accept", "func", True, PREVIEW0["fd_prestat_dir_name"]
    )
    assert not refused.linked and "wasi_unstable has no func called 'sock_accept'" in refused.reason
    other_type = link_import("proxy-wasm", WASI_UNSTABLE, "fd_write", "func", True, ((_I,), (_I,)))
    assert not other_type.linked and "WASI defines" in other_type.reason


def _release(
    tmp_path: Path, module: str, *, abi: str, exports: str, tests: str = "", config: str = ""
) -> Path:
    release = tmp_path / "plugins" / "plugin" / "1.0.0"
    release.mkdir(parents=True)
    (release / "plugin.wasm").write_bytes(wat(module))
    (release / "plugin.toml").write_text(
        '[plugin]\nname = "plugin"\nversion = "1.0.0"\ndescription = "a plugin"\nauthors = ["tests"]\n'
        f'license = "MIT"\nabi = "{abi}"\nmin_host_version = "0.2.0"\n\n[artifact]\nfile = "plugin.wasm"\n\n'
        f"[exports]\nfunctions = [{exports}]\n\n{tests}"
    )
    (tmp_path / "registry.toml").write_text(EXAMPLES_CONFIG.read_text() + config)
    return release


def _refused(release: Path) -> list[tuple[str, str, str | None]]:
    result = validate_release(release, load_registry_config(release.parents[2] / "registry.toml"))
    return [(f.rule, f.message, f.fix) for f in result.findings if f.severity.value == "error"]


PREVIEW0_COMMAND = WRITER.replace("wasi_snapshot_preview1", "wasi_unstable")
PREVIEW0_CORE = (
    '(module (import "wasi_unstable" "proc_exit" (func (param i32)))'
    ' (func (export "add") (param i32 i32) (result i32) local.get 0))'
)


@pytest.mark.parametrize(
    ("abi", "module", "exports"),
    [("wasi-command", PREVIEW0_COMMAND, '"_start"'), ("core", PREVIEW0_CORE, '"add"')],
)
def test_wasi_preview_0_outside_proxy_wasm_says_to_rebuild_against_preview_1(
    tmp_path: Path, run: Runner, abi: str, module: str, exports: str
) -> None:
    [(rule, message, fix)] = _refused(_release(tmp_path, module, abi=abi, exports=exports))
    assert rule == "import-not-allowed" and "WASI preview 0 (wasi_unstable)" in message, message
    assert fix is not None and "rebuild against wasi_snapshot_preview1" in fix
    # Even a permission over wasi_unstable cannot make it link: nothing implements it.
    rule_ = ImportRule(WASI_UNSTABLE, "*", "old_wasi")
    [result] = run(wat(module), Case("preview 0", exports.strip('"')), abi=abi,
                   permission_rules=[rule_], granted=["old_wasi"])  # fmt: skip
    assert result.outcome is Outcome.link_error
    assert "WASI preview 0 (wasi_unstable)" in result.detail and "wasi_snapshot_preview1" in result.detail


def test_smoke_names_the_permission_that_gates_an_import_as_validate_does(
    tmp_path: Path, run: Runner
) -> None:
    release = _release(tmp_path, WRITER, abi="wasi-command", exports='"_start"', config=WASI_GATE)
    [(rule, message, fix)] = _refused(release)
    said = message.split(") ", 1)[1]  # validate's "import m.n (func [..] -> [..]) <what>"
    assert (
        rule == "import-not-allowed"
        and said == "is not allowed: it needs the 'wasi' permission, which is not granted"
    )
    [result] = run(wat(WRITER), Case("gated", "_start"), abi="wasi-command", permission_rules=[WASI_RULE])
    assert result.outcome is Outcome.link_error
    assert result.detail.startswith(f"import wasi_snapshot_preview1.fd_write {said}"), result.detail
    assert fix is not None and fix in result.detail


AS_CORE = """(module
  (import "env" "abort" (func $abort (param i32 i32 i32 i32)))
  (func (export "checked_div") (param i32 i32) (result i32)
    (if (i32.eqz (local.get 1)) (then (call $abort (i32.const 0) (i32.const 0) (i32.const 3) (i32.const 5))))
    (i32.div_s (local.get 0) (local.get 1))))"""


def test_assemblyscript_env_abort_gets_the_asc_option_that_drops_it(tmp_path: Path, run: Runner) -> None:
    [(rule, message, fix)] = _refused(_release(tmp_path, AS_CORE, abi="core", exports='"checked_div"'))
    assert rule == "import-not-allowed" and "env.abort" in message
    assert fix is not None and "asc --use abort=" in fix and "an abort the module defines" in fix
    [result] = run(wat(AS_CORE), Case("abort", "checked_div", [7, 1]))
    assert result.outcome is Outcome.link_error and "asc --use abort=" in result.detail, result.detail


def test_the_client_gates_wasi_unstable_as_its_preview_1_namesake() -> None:
    """The client's import rule (release_check) gave wasi_unstable.sock_* a pass a registry permission
    over wasi_snapshot_preview1.sock_* denies in validate and smoke."""
    from registry_tool.manifest.config import ImportPattern, Permission, import_allowed

    vocabulary = {"net": Permission("net", "", (ImportPattern("wasi_snapshot_preview1", "sock_*"),))}
    for module in ("wasi_snapshot_preview1", "wasi_unstable"):
        assert not import_allowed(vocabulary, "proxy-wasm", frozenset(), module, "sock_send"), module
        assert import_allowed(vocabulary, "proxy-wasm", frozenset({"net"}), module, "sock_send"), module
    assert import_allowed(vocabulary, "proxy-wasm", frozenset(), "wasi_unstable", "fd_write")
