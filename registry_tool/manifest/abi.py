"""The plugin ABIs: one ``AbiSpec`` per ABI, written once.

The single source of what a module of that ABI may import, which of its imports the host implements, what its
exports look like and which test keys apply.  ``validate`` and the sandbox both read these specs, and
``link_import`` is the one answer to "how does this import get linked", so what validate accepts is what smoke
can link.

Adding an ABI is one spec here plus one runner registered in ``registry_tool.sandbox.runners``
(the steps are in docs/sandbox.md, "Adding an ABI"; a test checks the schema enums equal ``ABIS``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from registry_tool.manifest.binary import NUMERIC_TYPES

WASI = "wasi_snapshot_preview1"
#: WASI preview 0, the module name before ``wasi_snapshot_preview1`` (AssemblyScript's proxy-runtime,
#: old wasi-libc and Rust toolchains).  wasmtime-py has no implementation of its own of it.
WASI_UNSTABLE = "wasi_unstable"
EXTISM_ENV = "extism:host/env"
PROXY_WASM_ENV = "env"

Signature = tuple[tuple[str, ...], tuple[str, ...]]

#: Functions a plugin may import from ``extism:host/env``: the kernel's, then the host's.
EXTISM_KERNEL_FUNCTIONS = (
    "alloc",
    "free",
    "length",
    "length_unsafe",
    "load_u8",
    "load_u64",
    "store_u8",
    "store_u64",
    "input_length",
    "input_offset",
    "input_load_u8",
    "input_load_u64",
    "output_set",
    "error_set",
    "error_get",
)
EXTISM_LOG_LEVELS = ("trace", "debug", "info", "warn", "error")
EXTISM_HOST_FUNCTIONS = (
    "config_get",
    "var_get",
    "var_set",
    "http_request",
    "http_status_code",
    "http_headers",
    "get_log_level",
    *(f"log_{level}" for level in EXTISM_LOG_LEVELS),
)

#: The WASI 0.2 interfaces wasmtime's ``Linker.add_wasip2`` provides to a component (semver-
#: compatible: an import of any 0.2.x version links).  wasi:http, wasi:keyvalue, 0.3 are not there.
WASIP2_INTERFACE_RE = re.compile(
    r"wasi:(?:cli|clocks|filesystem|io|random|sockets)/[a-z][a-z0-9-]*@0\.2\.[0-9]+"
)

#: Proxy-Wasm ABI 0.2.x host functions (module ``env``) the sandbox implements, with their types.
_I, _L = "i32", "i64"
PROXY_WASM_HOST_FUNCTIONS: Mapping[str, Signature] = MappingProxyType(
    {
        "proxy_log": ((_I, _I, _I), (_I,)),
        "proxy_get_log_level": ((_I,), (_I,)),
        "proxy_get_current_time_nanoseconds": ((_I,), (_I,)),
        "proxy_set_tick_period_milliseconds": ((_I,), (_I,)),
        "proxy_get_header_map_value": ((_I, _I, _I, _I, _I), (_I,)),
        "proxy_add_header_map_value": ((_I, _I, _I, _I, _I), (_I,)),
        "proxy_replace_header_map_value": ((_I, _I, _I, _I, _I), (_I,)),
        "proxy_remove_header_map_value": ((_I, _I, _I), (_I,)),
        "proxy_get_header_map_pairs": ((_I, _I, _I), (_I,)),
        "proxy_set_header_map_pairs": ((_I, _I, _I), (_I,)),
        "proxy_get_header_map_size": ((_I, _I), (_I,)),
        "proxy_get_buffer_bytes": ((_I, _I, _I, _I, _I), (_I,)),
        "proxy_set_buffer_bytes": ((_I, _I, _I, _I, _I), (_I,)),
        "proxy_get_buffer_status": ((_I, _I, _I), (_I,)),
        "proxy_get_property": ((_I, _I, _I, _I), (_I,)),
        "proxy_set_property": ((_I, _I, _I, _I), (_I,)),
        "proxy_send_local_response": ((_I, _I, _I, _I, _I, _I, _I, _I), (_I,)),
        "proxy_get_shared_data": ((_I, _I, _I, _I, _I), (_I,)),
        "proxy_set_shared_data": ((_I, _I, _I, _I, _I), (_I,)),
        "proxy_register_shared_queue": ((_I, _I, _I), (_I,)),
        "proxy_resolve_shared_queue": ((_I, _I, _I, _I, _I), (_I,)),
        "proxy_dequeue_shared_queue": ((_I, _I, _I), (_I,)),
        "proxy_enqueue_shared_queue": ((_I, _I, _I), (_I,)),
        "proxy_continue_stream": ((_I,), (_I,)),
        "proxy_close_stream": ((_I,), (_I,)),
        "proxy_continue_request": ((), (_I,)),
        "proxy_continue_response": ((), (_I,)),
        "proxy_clear_route_cache": ((), (_I,)),
        "proxy_http_call": ((_I, _I, _I, _I, _I, _I, _I, _I, _I, _I), (_I,)),
        # gRPC: the official Rust SDK imports these in every filter (its dispatcher exports the
        # proxy_on_grpc_* callbacks), whether the filter makes gRPC calls or not.
        "proxy_grpc_call": ((_I,) * 12, (_I,)),
        "proxy_grpc_stream": ((_I,) * 9, (_I,)),
        "proxy_grpc_send": ((_I, _I, _I, _I), (_I,)),
        "proxy_grpc_cancel": ((_I,), (_I,)),
        "proxy_grpc_close": ((_I,), (_I,)),
        "proxy_get_status": ((_I, _I, _I), (_I,)),
        "proxy_call_foreign_function": ((_I, _I, _I, _I, _I, _I), (_I,)),
        "proxy_set_effective_context": ((_I,), (_I,)),
        "proxy_done": ((), (_I,)),
        "proxy_define_metric": ((_I, _I, _I, _I), (_I,)),
        "proxy_increment_metric": ((_I, _L), (_I,)),
        "proxy_record_metric": ((_I, _L), (_I,)),
        "proxy_get_metric": ((_I, _I), (_I,)),
    }
)
#: The ABI version exports a Proxy-Wasm filter declares (one of them must be present).
PROXY_WASM_VERSIONS = ("proxy_abi_version_0_2_0", "proxy_abi_version_0_2_1")
#: The exports a Proxy-Wasm host gives plugin memory with, in the order Envoy looks them up
#: (proxy-wasm-cpp-host ``WasmBase::getFunctions``): AssemblyScript's proxy-runtime exports only malloc.
PROXY_WASM_ALLOCATORS = ("malloc", "proxy_on_memory_allocate")
PROXY_WASM_ALLOCATOR_SIGNATURE: Signature = ((_I,), (_I,))
#: The start-up exports a Proxy-Wasm host runs before the root context, with the types it looks
#: them up with (Envoy refuses to load a filter exporting one with another type): a reactor's
#: ``_initialize``, then ``main(0, 0)``; a command's ``_start`` (``WasmBase::getFunctions`` looks up
#: nothing else: no ``__main_void``).
PROXY_WASM_START_SIGNATURES: Mapping[str, Signature] = MappingProxyType(
    {"_initialize": ((), ()), "main": ((_I, _I), (_I,)), "_start": ((), ())}
)


#: The lifecycle callbacks a Proxy-Wasm host (and the smoke driver) calls, with the types it
#: looks them up with (proxy-wasm-cpp-host refuses to load a filter exporting one of another type).
PROXY_WASM_CALLBACK_SIGNATURES: Mapping[str, Signature] = MappingProxyType(
    {
        "proxy_on_context_create": ((_I, _I), ()),
        "proxy_on_vm_start": ((_I, _I), (_I,)),
        "proxy_on_configure": ((_I, _I), (_I,)),
        "proxy_on_request_headers": ((_I, _I, _I), (_I,)),
        "proxy_on_request_body": ((_I, _I, _I), (_I,)),
        "proxy_on_response_headers": ((_I, _I, _I), (_I,)),
        "proxy_on_response_body": ((_I, _I, _I), (_I,)),
        "proxy_on_done": ((_I,), (_I,)),
        "proxy_on_log": ((_I,), ()),
        "proxy_on_delete": ((_I,), ()),
    }
)


def proxy_wasm_start(exports: Collection[str]) -> tuple[str, ...]:
    """The start-up exports a Proxy-Wasm host calls, in order, for a module exporting ``exports``.

    proxy-wasm-cpp-host ``WasmBase::startVm``: a reactor's ``_initialize``, then its ``main``; a
    command's ``_start`` only when there is no ``_initialize``.
    """
    if "_initialize" in exports:
        return ("_initialize", "main") if "main" in exports else ("_initialize",)
    return ("_start",) if "_start" in exports else ()


#: The integers a core test may write for an i32/i64 parameter or result: the signed or the
#: unsigned reading of the bits (C's ``uint32_t`` results are written unsigned).
INTEGER_RANGES: Mapping[str, tuple[int, int]] = MappingProxyType(
    {"i32": (-(2**31), 2**32 - 1), "i64": (-(2**63), 2**64 - 1)}
)


def integer_fits(value: object, kind: str) -> bool:
    """Whether ``value`` (a number from plugin.toml) is one an integer of ``kind`` holds.

    Only integers of an integer kind are judged; anything else is another rule's to refuse.
    """
    bounds = INTEGER_RANGES.get(kind)
    if bounds is None or isinstance(value, bool) or not isinstance(value, int | float):
        return True
    if isinstance(value, float) and not value.is_integer():
        return True
    return bounds[0] <= int(value) <= bounds[1]


def as_signed(value: int, kind: str) -> int:
    """The signed reading of ``value``'s bits as an integer of ``kind`` (how wasm passes it)."""
    bits = 32 if kind == "i32" else 64
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


@dataclass(frozen=True)
class AbiSpec:
    """What one ABI means for a module, written once.

    ``imports``: (module, name pattern) the ABI allows on its own.  ``host_modules``: the import
    modules the ABI's runner implements itself, with the names it implements (``None``: every
    name).  Anything else a permission grants gets a deterministic stub.  WASI is never stubbed:
    when a module may import it (through the ABI or a permission), wasmtime's WASI provides it.
    """

    name: str
    description: str
    imports: tuple[tuple[str, str], ...] = ()
    host_modules: Mapping[str, frozenset[str] | None] = field(default_factory=lambda: MappingProxyType({}))
    #: Signatures a declared export may have (None: any numeric signature).
    export_signatures: tuple[Signature, ...] | None = None
    export_fix: str = ""
    #: What a test calls when it names no export.
    default_call: str | None = None
    #: [[tests]] keys that apply only to this ABI (beyond the keys every ABI takes).
    test_keys: frozenset[str] = frozenset()
    component: bool = False
    #: ``wasi_unstable`` imports link to their ``wasi_snapshot_preview1`` namesakes and are gated as
    #: those: Envoy registers its WASI functions under both names for a Proxy-Wasm filter.
    wasi_unstable: bool = False


def _spec(*specs: AbiSpec) -> Mapping[str, AbiSpec]:
    return MappingProxyType({s.name: s for s in specs})


_WASI_ONLY = MappingProxyType({WASI: None})
_HTTP_TEST_KEYS = frozenset(
    {
        "plugin_config",
        "vm_config",
        "request_headers",
        "response_headers",
        "response_body",
        "expect_actions",
        "expect_request_headers",
        "expect_response_headers",
        "expect_local_response",
        "expect_log",
        "root_id",
        "vm_id",
    }
)

ABI_SPECS: Mapping[str, AbiSpec] = _spec(
    AbiSpec(
        "core",
        "numeric exports; bytes in through alloc/memory",
        test_keys=frozenset({"args", "steps"}),
    ),
    AbiSpec(
        "wasi-command",
        "a WASI command: stdin -> _start -> stdout and exit code",
        imports=((WASI, "*"),),
        host_modules=_WASI_ONLY,
        default_call="_start",
        test_keys=frozenset({"argv", "env", "exit_code"}),
    ),
    AbiSpec(
        "extism",
        "an Extism plugin: input -> export -> output (extism:host/env)",
        imports=((EXTISM_ENV, "*"), (WASI, "*")),
        host_modules=MappingProxyType(
            {EXTISM_ENV: frozenset(EXTISM_KERNEL_FUNCTIONS + EXTISM_HOST_FUNCTIONS), WASI: None}
        ),
        # The PDKs export [] -> [i32]; a Go `std` build's _start (and any void export) is [] -> [],
        # which the Extism SDK runs as status 0.
        export_signatures=(((), ("i32",)), ((), ())),
        export_fix="read input with the extism:host/env input_* functions and return an i32 status",
        test_keys=frozenset({"config", "steps"}),
    ),
    AbiSpec(
        "proxy-wasm",
        "a Proxy-Wasm 0.2.x HTTP filter driven through its lifecycle",
        imports=((PROXY_WASM_ENV, "proxy_*"), (WASI, "*"), (WASI_UNSTABLE, "*")),
        host_modules=MappingProxyType({PROXY_WASM_ENV: frozenset(PROXY_WASM_HOST_FUNCTIONS), WASI: None}),
        test_keys=_HTTP_TEST_KEYS,
        wasi_unstable=True,
    ),
    AbiSpec(
        "component",
        "a WASI 0.2 command component (wasi:cli/run)",
        imports=(("wasi:*", "*"),),
        default_call="wasi:cli/run",
        test_keys=frozenset({"argv", "env", "exit_code"}),
        component=True,
    ),
)
ABIS = tuple(ABI_SPECS)
#: [[tests]] keys only some ABIs take: key -> the ABIs that take it.
ABI_ONLY_TEST_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        key: tuple(s.name for s in ABI_SPECS.values() if key in s.test_keys)
        for key in sorted({k for s in ABI_SPECS.values() for k in s.test_keys})
    }
)


@dataclass(frozen=True)
class LinkDecision:
    """How one import gets linked.

    ``how`` is ``wasi``, ``abi`` (the ABI's runner), ``stub`` (a granted host import,
    deterministic), or None when refused (``reason`` says why).
    """

    how: str | None
    reason: str = ""
    #: How to fix a refusal that no registry setting can lift (WASI preview 0 outside Proxy-Wasm).
    fix: str = ""

    @property
    def linked(self) -> bool:
        """Whether the import gets linked at all."""
        return self.how is not None


_I32, _I64 = "i32", "i64"
_TWO_I32 = (
    "args_get", "args_sizes_get", "environ_get", "environ_sizes_get", "clock_res_get", "fd_fdstat_get",
    "fd_fdstat_set_flags", "fd_filestat_get", "fd_prestat_get", "fd_renumber", "fd_tell", "random_get",
    "sock_shutdown",
)  # fmt: skip
_THREE_I32 = (
    "fd_prestat_dir_name", "path_create_directory", "path_remove_directory", "path_unlink_file",
    "sock_accept",
)  # fmt: skip
#: WASI preview 1 (``wasi_snapshot_preview1``): every function and its (params, results), as
#: wasmtime defines them (a test compares each with wasmtime's own linker).
WASI_FUNCTIONS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = MappingProxyType(
    {
        **dict.fromkeys(_TWO_I32, ((_I32, _I32), (_I32,))),
        **dict.fromkeys(("fd_close", "fd_datasync", "fd_sync", "proc_raise"), ((_I32,), (_I32,))),
        **dict.fromkeys(_THREE_I32, ((_I32, _I32, _I32), (_I32,))),
        "clock_time_get": ((_I32, _I64, _I32), (_I32,)),
        "fd_advise": ((_I32, _I64, _I64, _I32), (_I32,)),
        "fd_allocate": ((_I32, _I64, _I64), (_I32,)),
        "fd_fdstat_set_rights": ((_I32, _I64, _I64), (_I32,)),
        "fd_filestat_set_size": ((_I32, _I64), (_I32,)),
        "fd_filestat_set_times": ((_I32, _I64, _I64, _I32), (_I32,)),
        "fd_pread": ((_I32, _I32, _I32, _I64, _I32), (_I32,)),
        "fd_pwrite": ((_I32, _I32, _I32, _I64, _I32), (_I32,)),
        "fd_read": ((_I32, _I32, _I32, _I32), (_I32,)),
        "fd_readdir": ((_I32, _I32, _I32, _I64, _I32), (_I32,)),
        "fd_seek": ((_I32, _I64, _I32, _I32), (_I32,)),
        "fd_write": ((_I32, _I32, _I32, _I32), (_I32,)),
        "path_filestat_get": ((_I32, _I32, _I32, _I32, _I32), (_I32,)),
        "path_filestat_set_times": ((_I32, _I32, _I32, _I32, _I64, _I64, _I32), (_I32,)),
        "path_link": ((_I32, _I32, _I32, _I32, _I32, _I32, _I32), (_I32,)),
        "path_open": ((_I32, _I32, _I32, _I32, _I32, _I64, _I64, _I32, _I32), (_I32,)),
        "path_readlink": ((_I32, _I32, _I32, _I32, _I32, _I32), (_I32,)),
        "path_rename": ((_I32, _I32, _I32, _I32, _I32, _I32), (_I32,)),
        "path_symlink": ((_I32, _I32, _I32, _I32, _I32), (_I32,)),
        "poll_oneoff": ((_I32, _I32, _I32, _I32), (_I32,)),
        "proc_exit": ((_I32,), ()),
        "sched_yield": ((), (_I32,)),
        "sock_recv": ((_I32, _I32, _I32, _I32, _I32, _I32), (_I32,)),
        "sock_send": ((_I32, _I32, _I32, _I32, _I32), (_I32,)),
    }
)


#: Preview 1's functions that preview 0 lacks.  Every other preview 1 function is in preview 0 under
#: the same name with the same core type (tests/sandbox/test_import_refusals.py checks each against the
#: snapshot_0 witx); only some data layouts differ (fd_seek's whence order, filestat's nlink width,
#: poll_oneoff's subscriptions), where Envoy, like this sandbox, answers as preview 1.
_PREVIEW1_ONLY = frozenset({"sock_accept"})
#: ``wasi_unstable`` functions an ABI with ``AbiSpec.wasi_unstable`` links to their preview 1 namesakes.
WASI_UNSTABLE_FUNCTIONS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = MappingProxyType(
    {name: types for name, types in WASI_FUNCTIONS.items() if name not in _PREVIEW1_ONLY}
)
_PREVIEW0_REASON = (
    "WASI preview 0 (wasi_unstable) is not linked for the {abi} ABI (wasmtime provides only WASI "
    "preview 1; only proxy-wasm takes preview 0, as Envoy does)"
)
_PREVIEW0_FIX = (
    "rebuild against wasi_snapshot_preview1 (WASI preview 1), which current wasi-sdk, Rust "
    "(wasm32-wasip1), TinyGo and Go (GOOS=wasip1) target"
)


def gated_module(abi: str, module: str) -> str:
    """The import module whose permission patterns and ABI rules gate ``module`` for ``abi``.

    A ``wasi_unstable`` import of an ABI that links preview 0 is gated as its ``wasi_snapshot_preview1``
    namesake, so a registry permission over preview 1 (``wasi_snapshot_preview1.sock_*``) covers it too.
    """
    spec = ABI_SPECS.get(abi)
    if module == WASI_UNSTABLE and spec is not None and spec.wasi_unstable:
        return WASI
    return module


def _signature(types: tuple[tuple[str, ...], tuple[str, ...]]) -> str:
    return f"({', '.join(types[0])}) -> ({', '.join(types[1])})"


def link_import(
    abi: str,
    module: str,
    name: str,
    kind: str,
    allowed: bool,
    signature: tuple[tuple[str, ...], tuple[str, ...]] | None = None,
) -> LinkDecision:
    """The one answer to "can a module of ``abi`` link this import, and to what".

    ``allowed`` is the registry's verdict (ABI patterns and permissions,
    ``RegistryConfig.import_allowed`` / ``ImportPolicy.allowed``); ``signature`` the import's
    (params, results) when known: a WASI function imported with another type links in no host.
    """
    spec = ABI_SPECS.get(abi)
    if module == WASI_UNSTABLE and (spec is None or not spec.wasi_unstable):
        # Never a stub, whatever a permission grants: the module expects WASI there.
        return LinkDecision(None, _PREVIEW0_REASON.format(abi=abi), _PREVIEW0_FIX)
    if not allowed:
        return LinkDecision(None, "neither the ABI nor a granted permission allows it")
    if spec is not None and spec.component:
        # A component imports whole interfaces (``module`` is the import name, ``name`` empty):
        # WASI 0.2 comes from wasmtime's own implementation, anything else would need a stub.
        if WASIP2_INTERFACE_RE.fullmatch(module):
            return LinkDecision("wasi")
        if module.startswith("wasi:"):
            return LinkDecision(
                None,
                f"{module} is not a WASI 0.2 interface the host provides (cli, clocks, filesystem, "
                "io, random, sockets at @0.2.x)",
            )
        return LinkDecision(None, f"a host stub for the component import {module} is not supported yet")
    if module in (WASI, WASI_UNSTABLE):  # wasi_unstable only for an ABI that links it (above)
        wasi = (WASI_FUNCTIONS if module == WASI else WASI_UNSTABLE_FUNCTIONS).get(name)
        if kind != "func" or wasi is None:
            return LinkDecision(None, f"{module} has no {kind} called {name!r} (docs/sandbox.md)")
        if signature is not None and signature != wasi:
            return LinkDecision(
                None, f"it is imported as {_signature(signature)}, WASI defines {_signature(wasi)}"
            )
        return LinkDecision("wasi")
    if signature is not None and not all(t in NUMERIC_TYPES for part in signature for t in part):
        # Every host function here (an ABI's, a permission's stub) takes and returns numbers; and a
        # v128 or reference type aborts wasmtime-py's C API when the sandbox reads it (SIGABRT).
        return LinkDecision(
            None,
            f"it is imported as {_signature(signature)}: a host function takes and returns numbers only "
            "(i32, i64, f32, f64), never v128 or a reference",
        )
    if spec is not None and module in spec.host_modules:
        names = spec.host_modules[module]
        if names is None or name in names:
            return LinkDecision("abi")
        return LinkDecision(None, f"{module}.{name} is not part of the {abi} ABI")
    if kind != "func":
        return LinkDecision(None, f"a {kind} import cannot be provided by the host (only functions can)")
    return LinkDecision("stub")


@dataclass(frozen=True)
class ImportRefusal:
    """Why an import is refused and how to fix it: validate's finding and smoke's link_error say this.

    ``message`` follows "import <module.name> "; ``permission`` is the permission to grant, when
    granting one is the fix.
    """

    message: str
    fix: str
    permission: str | None = None


#: A core plugin's WASI imports: the module was built for another ABI, or against WASI libc.
CORE_WASI_FIX = (
    "a core plugin imports no WASI: rebuild a library without WASI (Rust: --target "
    "wasm32-unknown-unknown instead of wasm32-wasip1; C: clang --target=wasm32 -nostdlib, without "
    "stdio or WASI libc), or declare the ABI the module is built for: abi = 'wasi-command' for a "
    "program with _start, 'extism' for an Extism plugin; Go (GOOS=wasip1) always imports WASI: "
    "its reactor needs a registry permission granting the WASI functions it imports, which then "
    "gates them for every ABI: wasi-command, extism and proxy-wasm plugins must declare it too "
    "(docs/manifest.md, ABI rules)"
)
_GENERIC_FIX = "remove the import (link the code into the module) or ask the registry for a permission"
#: Imports a common toolchain adds on its own, with the build option that drops them.
_KNOWN_IMPORT_FIXES: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        ("env", "memory"): (
            "the module imports its memory, which the host does not provide (only functions): build it "
            "with its own memory (AssemblyScript without --importMemory, clang without "
            "-Wl,--import-memory)"
        ),
        ("env", "abort"): (
            "AssemblyScript imports env.abort unless told otherwise: build with `asc --use abort=` (an "
            "abort then traps) or `--use abort=<file>/<function>` naming an abort the module defines; "
            "in C, define abort() in the module"
        ),
    }
)


def import_refusal(
    abi: str, module: str, name: str, decision: LinkDecision, allowed: bool, permission: str | None
) -> ImportRefusal:
    """What to tell about an import ``link_import`` refused.

    ``allowed`` is the registry's verdict ``decision`` was made with; ``permission`` the registry
    permission whose patterns cover the import (looked up for ``gated_module``), if any.
    """
    if decision.fix:
        return ImportRefusal(f"cannot be linked: {decision.reason}", decision.fix)
    if allowed:  # allowed by name, but nothing can provide it
        return ImportRefusal(
            f"cannot be linked: {decision.reason}",
            "remove the import, or import only what the ABI documents (docs/sandbox.md)",
        )
    if permission:
        return ImportRefusal(
            f"is not allowed: it needs the '{permission}' permission, which is not granted",
            f"declare the permission: set `{permission} = true` under [permissions]",
            permission,
        )
    fix = _KNOWN_IMPORT_FIXES.get((module, name)) or (
        CORE_WASI_FIX if module == WASI and abi == "core" else _GENERIC_FIX
    )
    return ImportRefusal(f"is not allowed: neither the {abi!r} ABI nor any permission provides it", fix)


# --------------------------------------------------------------------------- module kinds


@dataclass(frozen=True)
class ModuleKind:
    """What a module that cannot be a plugin of the declared ABI actually is, and how to rebuild it."""

    kind: str
    message: str
    fix: str


def module_kind(
    abi: str, imports: list[tuple[str, str]], exports: list[str], custom_sections: list[str]
) -> ModuleKind | None:
    """Recognise modules built for another host, so validate says so once instead of once per import.

    ``imports`` are (module, name) pairs, ``custom_sections`` the names of the custom sections.
    """
    modules = {m for m, _ in imports}
    names = {n for _, n in imports}
    if "dylink.0" in custom_sections or "dylink" in custom_sections:
        return ModuleKind(
            "dylink side module",
            "is a dynamic-linking side module (dylink section): it is loaded by a main module, not run alone",
            "link a standalone module: drop -shared / -sSIDE_MODULE and build for wasm32-wasi "
            "(or as a reactor with -mexec-model=reactor)",
        )
    if "gojs" in modules or ("go" in modules and any(n.startswith("runtime.") for n in names)):
        return ModuleKind(
            "Go GOOS=js build",
            "is a Go GOOS=js build: it needs wasm_exec.js and a JavaScript host",
            "rebuild with GOOS=wasip1 GOARCH=wasm (Go >= 1.21; -buildmode=c-shared for a reactor)",
        )
    env_names = {n for m, n in imports if m in ("env", "wasi_snapshot_preview1")}
    if any(n.startswith(("emscripten_", "_emscripten_", "__syscall_", "invoke_")) for n in env_names) or (
        modules == {"a"} and all(len(n) <= 2 for n in names)
    ):
        return ModuleKind(
            "Emscripten JS glue output",
            "is Emscripten output that needs its JavaScript glue (emscripten_*/__syscall_* imports)",
            "build a standalone module: emcc -sSTANDALONE_WASM --no-entry, or clang/wasi-sdk for wasm32-wasi",
        )
    if "dprint" in modules or any(e.startswith("dprint_plugin_version_") for e in exports):
        return ModuleKind(
            "dprint plugin",
            "is a dprint formatter plugin: it talks to dprint's own host ABI",
            "publish it to a dprint plugin registry, or build it against this registry's ABI",
        )
    proxy = any(e in PROXY_WASM_VERSIONS for e in exports) or any(
        m == PROXY_WASM_ENV and n.startswith("proxy_") for m, n in imports
    )
    if proxy and abi != "proxy-wasm":
        return ModuleKind(
            "Proxy-Wasm filter",
            f"is a Proxy-Wasm filter (proxy_abi_version_* / env.proxy_*), not {_article(abi)} {abi} plugin",
            "set abi = 'proxy-wasm' (and allow it in registry.toml [abis].allowed)",
        )
    if abi != "extism" and EXTISM_ENV in modules:
        return ModuleKind(
            "Extism plugin",
            f"is an Extism plugin (it imports {EXTISM_ENV}), not {_article(abi)} {abi} plugin",
            "set abi = 'extism' (and allow it in registry.toml [abis].allowed)",
        )
    return None


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
