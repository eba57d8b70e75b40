"""The Proxy-Wasm ABI 0.2.x runner.

Host functions over the plugin's own memory, and a driver that takes one HTTP request through the filter's
lifecycle as Envoy and wazero-based gateways do.

Lifecycle of a test: start-up as Envoy's ``WasmBase::startVm`` (a reactor's ``_initialize``, run by the
worker, then its ``main(0, 0)``; a command's ``_start``) ->
``proxy_on_context_create(root, 0)`` -> ``proxy_on_vm_start`` ->
``proxy_on_configure`` -> ``proxy_on_context_create(http, root)`` -> request headers -> request body
-> response headers -> response body -> ``proxy_on_done`` -> ``proxy_on_log`` -> ``proxy_on_delete``.
A local response ends the request phases.  Nothing here touches the network or a clock: the tick
period is recorded, never fired; HTTP calls are refused unless the ``network`` permission is granted
(then they are accepted and never answered).  Host-side state (log, shared data, metrics) is capped.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import wasmtime

from registry_tool.manifest.abi import (
    PROXY_WASM_ALLOCATOR_SIGNATURE,
    PROXY_WASM_ALLOCATORS,
    PROXY_WASM_CALLBACK_SIGNATURES,
    PROXY_WASM_ENV,
    PROXY_WASM_HOST_FUNCTIONS,
    PROXY_WASM_START_SIGNATURES,
    PROXY_WASM_VERSIONS,
    Signature,
    proxy_wasm_start,
)
from registry_tool.sandbox.abis import (
    HOST_DATA_CAP,
    LOG_CAP,
    LOG_LIMIT_MESSAGE,
    VAR_CAP,
    Adapter,
    Case,
    Exports,
    ImportPolicy,
    MissingExportError,
    Produced,
)
from registry_tool.sandbox.outcome import COMMAND_BUILD_FIX, COMMAND_BUILD_SAID

ROOT_CONTEXT, HTTP_CONTEXT = 1, 2
#: Entries of one header map (Envoy's default max_headers_count is 100).
MAX_PAIRS = 1024
# Status codes (ABI 0.2).
OK, NOT_FOUND, BAD_ARGUMENT, EMPTY, CAS_MISMATCH, UNIMPLEMENTED = 0, 1, 2, 7, 8, 12
# Map and buffer types.
REQUEST_HEADERS, REQUEST_TRAILERS, RESPONSE_HEADERS, RESPONSE_TRAILERS = 0, 1, 2, 3
REQUEST_BODY, RESPONSE_BODY, VM_CONFIGURATION, PLUGIN_CONFIGURATION = 0, 1, 6, 7
LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "critical")
ACTIONS = {0: "continue", 1: "pause"}
PHASES = ("request_headers", "request_body", "response_headers", "response_body")
#: Deterministic answers to proxy_get_current_time_nanoseconds (2023-11-14T22:13:20Z).
FIXED_TIME_NS = 1_700_000_000 * 10**9
MAX_METRICS = 1000

Pairs = list[tuple[bytes, bytes]]


class ProxyWasmError(wasmtime.WasmtimeError):
    """A host function refused what the plugin asked (bad pointer, malformed map, cap reached)."""


def serialize_pairs(pairs: Pairs) -> bytes:
    """The ABI's map encoding of ``pairs``.

    A count, then (key size, value size) per pair, then each key and value followed by a NUL byte; integers
    are u32 little-endian.
    """
    sizes = b"".join(struct.pack("<II", len(k), len(v)) for k, v in pairs)
    data = b"".join(k + b"\0" + v + b"\0" for k, v in pairs)
    return struct.pack("<I", len(pairs)) + sizes + data


def deserialize_pairs(data: bytes) -> Pairs:
    """The inverse of ``serialize_pairs``; raises ``ProxyWasmError`` on anything malformed."""
    if len(data) < 4:
        raise ProxyWasmError("proxy-wasm: a header map shorter than its count")
    (count,) = struct.unpack_from("<I", data)
    if count > MAX_PAIRS:  # refused before a list of its sizes is made (33 M pairs took 2.7 GB)
        raise ProxyWasmError(
            f"proxy-wasm: a header map of {count} pairs, more than the {MAX_PAIRS} a map may hold"
        )
    if 4 + 8 * count > len(data):
        raise ProxyWasmError(f"proxy-wasm: a header map of {count} pairs does not fit in {len(data)} bytes")
    sizes = [struct.unpack_from("<II", data, 4 + 8 * i) for i in range(count)]
    pos, pairs = 4 + 8 * count, []
    for key_size, value_size in sizes:
        end = pos + key_size + 1 + value_size + 1
        if end > len(data):
            raise ProxyWasmError("proxy-wasm: a header map entry runs past the end of the map")
        key = data[pos : pos + key_size]
        value = data[pos + key_size + 1 : end - 1]
        pairs.append((key, value))
        pos = end
    return pairs


def _pairs(raw: Any, defaults: Pairs) -> Pairs:
    given = [(str(k).lower().encode(), str(v).encode()) for k, v in (raw or [])]
    names = {k for k, _ in given}
    return [p for p in defaults if p[0] not in names] + given


@dataclass
class HttpState:
    """One test's request/response as the filter sees and changes them, and what it did."""

    maps: dict[int, Pairs]
    buffers: dict[int, bytes]
    network: bool
    log: bytearray = field(default_factory=bytearray)
    local_response: dict[str, Any] | None = None
    tick_ms: int | None = None
    shared: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)
    shared_bytes: int = 0
    queues: dict[int, list[bytes]] = field(default_factory=dict)
    queue_names: dict[bytes, int] = field(default_factory=dict)
    metrics: dict[int, int] = field(default_factory=dict)
    properties: dict[bytes, bytes] = field(default_factory=dict)
    effective: int = ROOT_CONTEXT
    #: proxy_on_memory_allocate is running (host calls are refused meanwhile).
    allocating: bool = False
    #: The test's expect_actions, expect_*_headers, expect_local_response and expect_log.
    expect: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_case(cls, case: Case, network: bool) -> HttpState:
        """The request, response and configuration a test describes (defaults filled in)."""
        http = case.http
        request = _pairs(
            http.get("request_headers"),
            [(b":method", b"GET"), (b":path", b"/"), (b":authority", b"localhost"), (b":scheme", b"http")],
        )
        response = _pairs(http.get("response_headers"), [(b":status", b"200")])
        state = cls(
            maps={
                REQUEST_HEADERS: request,
                REQUEST_TRAILERS: [],
                RESPONSE_HEADERS: response,
                RESPONSE_TRAILERS: [],
            },
            buffers={
                REQUEST_BODY: case.input or b"",
                RESPONSE_BODY: str(http.get("response_body", "")).encode(),
                VM_CONFIGURATION: str(http.get("vm_config", "")).encode(),
                PLUGIN_CONFIGURATION: str(http.get("plugin_config", "")).encode(),
            },
            network=network,
            expect={k: v for k, v in http.items() if k.startswith("expect_")},
        )
        # What the SDKs look a root context up by (AssemblyScript's registerRootContext(f, "name")).
        state.properties = {
            b"plugin_root_id": str(http.get("root_id", "")).encode(),
            b"plugin_vm_id": str(http.get("vm_id", "")).encode(),
        }
        return state

    def header(self, map_type: int, name: bytes) -> bytes | None:
        """The first value of header ``name`` in map ``map_type`` (None when absent)."""
        return next((v for k, v in self.maps.get(map_type, []) if k == name.lower()), None)

    def property(self, path: bytes) -> bytes | None:
        """A few request properties, derived from the test's headers; set ones first."""
        if path in self.properties:
            return self.properties[path]
        derived = {
            b"request\0path": b":path",
            b"request\0method": b":method",
            b"request\0host": b":authority",
            b"request\0scheme": b":scheme",
        }
        if path in derived:
            return self.header(REQUEST_HEADERS, derived[path])
        if path == b"response\0code" and self.local_response is None:
            return self.header(RESPONSE_HEADERS, b":status")
        return None


class _Memory:
    """Plugin memory as seen from a host function (through the caller)."""

    def __init__(self, caller: wasmtime.Caller, state: HttpState) -> None:
        if state.allocating:
            # The plugin's allocator called back into the host: each such call could allocate again,
            # recursing until Python's stack gives out, and a host function that cannot even start
            # answers the module with zeros (success).  Envoy's allocator is plain malloc.
            raise ProxyWasmError("proxy-wasm: a host function was called from proxy_on_memory_allocate")
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            raise ProxyWasmError("proxy-wasm: the plugin does not export its memory as 'memory'")
        self.caller, self.memory, self.state = caller, memory, state

    def read(self, ptr: int, size: int) -> bytes:
        if ptr < 0 or size < 0 or ptr + size > self.memory.data_len(self.caller):
            raise ProxyWasmError(f"proxy-wasm: {size} bytes at {ptr} are outside the plugin's memory")
        return bytes(self.memory.read(self.caller, ptr, ptr + size))

    def write(self, ptr: int, data: bytes) -> None:
        self.read(ptr, len(data))  # bounds check
        self.memory.write(self.caller, data, ptr)

    def u32(self, ptr: int, value: int) -> None:
        self.write(ptr, struct.pack("<I", value & 0xFFFFFFFF))

    def u64(self, ptr: int, value: int) -> None:
        self.write(ptr, struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF))

    def give(self, data: bytes, ptr_ptr: int, size_ptr: int) -> int:
        """Copy ``data`` into memory the plugin's allocator gives; write where it is and its size."""
        found = _allocator(self.caller.get)
        if found is None:
            raise ProxyWasmError("proxy-wasm: the plugin exports neither malloc nor proxy_on_memory_allocate")
        name, alloc = found
        self.state.allocating = True
        try:
            ptr = int(alloc(self.caller, len(data)) or 0) if data else 0
        finally:
            self.state.allocating = False
        if data and ptr == 0:
            raise ProxyWasmError(f"proxy-wasm: {name}({len(data)}) returned 0")
        if data:
            self.write(ptr, data)
        self.u32(ptr_ptr, ptr)
        self.u32(size_ptr, len(data))
        return OK


def _allocator(get: Callable[[str], Any]) -> tuple[str, wasmtime.Func] | None:
    """The export a host gives plugin memory with, and its name: ``malloc`` first, as Envoy looks them up."""
    for name in PROXY_WASM_ALLOCATORS:
        item = get(name)
        if isinstance(item, wasmtime.Func):
            return name, item
    return None


class ProxyWasmHost:
    """The host functions of one test, closed over its ``HttpState``."""

    def __init__(self, state: HttpState) -> None:
        """Host functions over ``state``, which the runner replaces for every test."""
        self.s = state

    # -- logging, time, ticks
    def proxy_log(self, caller: wasmtime.Caller, level: int, ptr: int, size: int) -> int:
        """``proxy_log``: a ``[level] message`` line in the captured log, within ``LOG_CAP``."""
        if len(self.s.log) > LOG_CAP:
            raise wasmtime.WasmtimeError(LOG_LIMIT_MESSAGE)
        name = LOG_LEVELS[level] if 0 <= level < len(LOG_LEVELS) else f"level{level}"
        self.s.log += f"[{name}] ".encode() + _Memory(caller, self.s).read(ptr, size) + b"\n"
        del self.s.log[LOG_CAP + 1 :]
        return OK

    def proxy_get_log_level(self, caller: wasmtime.Caller, ret: int) -> int:
        """``proxy_get_log_level``: trace."""
        _Memory(caller, self.s).u32(ret, 0)
        return OK

    def proxy_get_current_time_nanoseconds(self, caller: wasmtime.Caller, ret: int) -> int:
        """``proxy_get_current_time_nanoseconds``: a fixed time."""
        _Memory(caller, self.s).u64(ret, FIXED_TIME_NS)
        return OK

    def proxy_set_tick_period_milliseconds(self, caller: wasmtime.Caller, period: int) -> int:
        """``proxy_set_tick_period_milliseconds``: recorded; no timer fires."""
        self.s.tick_ms = period
        return OK

    # -- header maps
    def _map(self, map_type: int) -> Pairs | None:
        return self.s.maps.get(map_type)

    @staticmethod
    def _bounded(pairs: Pairs) -> int:
        """OK for a header map within ``MAX_PAIRS`` entries and ``HOST_DATA_CAP`` bytes; else a trap.

        Host memory is outside the store's limits (a map of 100 values of 16 MB passed a 16 MiB
        limit); Envoy's own defaults are 100 headers and 60 KiB.
        """
        if len(pairs) > MAX_PAIRS or sum(len(k) + len(v) for k, v in pairs) > HOST_DATA_CAP:
            raise ProxyWasmError(
                f"proxy-wasm: a header map would exceed {MAX_PAIRS} entries or {HOST_DATA_CAP} bytes"
            )
        return OK

    def proxy_get_header_map_value(
        self, caller: wasmtime.Caller, map_type: int, kptr: int, ksize: int, ret_ptr: int, ret_size: int
    ) -> int:
        """``proxy_get_header_map_value``: the header's value, allocated in plugin memory."""
        mem = _Memory(caller, self.s)
        if self._map(map_type) is None:
            return BAD_ARGUMENT
        value = self.s.header(map_type, mem.read(kptr, ksize))
        return NOT_FOUND if value is None else mem.give(value, ret_ptr, ret_size)

    def proxy_add_header_map_value(
        self, caller: wasmtime.Caller, map_type: int, kptr: int, ksize: int, vptr: int, vsize: int
    ) -> int:
        """``proxy_add_header_map_value``: append a header."""
        mem, pairs = _Memory(caller, self.s), self._map(map_type)
        if pairs is None:
            return BAD_ARGUMENT
        pairs.append((mem.read(kptr, ksize).lower(), mem.read(vptr, vsize)))
        return self._bounded(pairs)

    def proxy_replace_header_map_value(
        self, caller: wasmtime.Caller, map_type: int, kptr: int, ksize: int, vptr: int, vsize: int
    ) -> int:
        """``proxy_replace_header_map_value``: replace (or add) a header."""
        mem, pairs = _Memory(caller, self.s), self._map(map_type)
        if pairs is None:
            return BAD_ARGUMENT
        key, value = mem.read(kptr, ksize).lower(), mem.read(vptr, vsize)
        at = next((i for i, (k, _) in enumerate(pairs) if k == key), len(pairs))
        pairs[:] = (
            [p for p in pairs[:at] if p[0] != key] + [(key, value)] + [p for p in pairs[at:] if p[0] != key]
        )
        return self._bounded(pairs)

    def proxy_remove_header_map_value(
        self, caller: wasmtime.Caller, map_type: int, kptr: int, ksize: int
    ) -> int:
        """``proxy_remove_header_map_value``: remove every value of a header."""
        mem, pairs = _Memory(caller, self.s), self._map(map_type)
        if pairs is None:
            return BAD_ARGUMENT
        key = mem.read(kptr, ksize).lower()
        pairs[:] = [p for p in pairs if p[0] != key]
        return OK

    def proxy_get_header_map_pairs(
        self, caller: wasmtime.Caller, map_type: int, ret_ptr: int, ret_size: int
    ) -> int:
        """``proxy_get_header_map_pairs``: the whole map in the pairs encoding, in plugin memory."""
        pairs = self._map(map_type)
        if pairs is None:
            return BAD_ARGUMENT
        return _Memory(caller, self.s).give(serialize_pairs(pairs), ret_ptr, ret_size)

    def proxy_set_header_map_pairs(self, caller: wasmtime.Caller, map_type: int, ptr: int, size: int) -> int:
        """``proxy_set_header_map_pairs``: replace the whole map from the pairs encoding."""
        pairs = self._map(map_type)
        if pairs is None:
            return BAD_ARGUMENT
        pairs[:] = [(k.lower(), v) for k, v in deserialize_pairs(_Memory(caller, self.s).read(ptr, size))]
        return self._bounded(pairs)

    def proxy_get_header_map_size(self, caller: wasmtime.Caller, map_type: int, ret_size: int) -> int:
        """``proxy_get_header_map_size``: the map's size in the pairs encoding."""
        pairs = self._map(map_type)
        if pairs is None:
            return BAD_ARGUMENT
        _Memory(caller, self.s).u32(ret_size, len(serialize_pairs(pairs)))
        return OK

    # -- buffers
    def proxy_get_buffer_bytes(
        self,
        caller: wasmtime.Caller,
        buffer_type: int,
        start: int,
        max_size: int,
        ret_ptr: int,
        ret_size: int,
    ) -> int:
        """``proxy_get_buffer_bytes``: a slice of a body or configuration buffer, in plugin memory."""
        data = self.s.buffers.get(buffer_type)
        if data is None:
            return NOT_FOUND
        if start < 0 or max_size < 0 or start > len(data):
            return BAD_ARGUMENT
        return _Memory(caller, self.s).give(data[start : start + max_size], ret_ptr, ret_size)

    def proxy_set_buffer_bytes(
        self, caller: wasmtime.Caller, buffer_type: int, start: int, size: int, ptr: int, data_size: int
    ) -> int:
        """``proxy_set_buffer_bytes``: replace a slice of a body buffer.

        A start at or past the end appends, as Envoy and the Go SDK's reference host do: the
        Go SDK's Append*Body passes start = MaxInt32, size 0.
        """
        if buffer_type not in (REQUEST_BODY, RESPONSE_BODY):
            return BAD_ARGUMENT
        data, new = self.s.buffers[buffer_type], _Memory(caller, self.s).read(ptr, data_size)
        start = min(start, len(data))
        size = min(size, len(data) - start)
        if len(data) - size + len(new) > max(HOST_DATA_CAP, len(data)):
            raise ProxyWasmError(f"proxy-wasm: a body would grow past {HOST_DATA_CAP} bytes")
        self.s.buffers[buffer_type] = data[:start] + new + data[start + size :]
        return OK

    def proxy_get_buffer_status(
        self, caller: wasmtime.Caller, buffer_type: int, len_ptr: int, flags_ptr: int
    ) -> int:
        """``proxy_get_buffer_status``: a buffer's length and flags."""
        data = self.s.buffers.get(buffer_type)
        if data is None:
            return NOT_FOUND
        mem = _Memory(caller, self.s)
        mem.u32(len_ptr, len(data))
        mem.u32(flags_ptr, 1)  # end of stream: a test's bodies arrive whole
        return OK

    # -- properties
    def proxy_get_property(
        self, caller: wasmtime.Caller, ptr: int, size: int, ret_ptr: int, ret_size: int
    ) -> int:
        """``proxy_get_property``: request/response properties derived from the headers."""
        mem = _Memory(caller, self.s)
        value = self.s.property(mem.read(ptr, size))
        return NOT_FOUND if value is None else mem.give(value, ret_ptr, ret_size)

    def proxy_set_property(self, caller: wasmtime.Caller, ptr: int, size: int, vptr: int, vsize: int) -> int:
        """``proxy_set_property``: store a property."""
        mem = _Memory(caller, self.s)
        key, value = mem.read(ptr, size), mem.read(vptr, vsize)
        self._charge(len(key) + len(value), "properties")
        self.s.properties[key] = value
        return OK

    # -- local response and stream control
    def proxy_send_local_response(
        self,
        caller: wasmtime.Caller,
        status: int,
        dptr: int,
        dsize: int,
        bptr: int,
        bsize: int,
        hptr: int,
        hsize: int,
        grpc_status: int,
    ) -> int:
        """``proxy_send_local_response``: record the local response; the request phases end."""
        mem = _Memory(caller, self.s)
        headers = deserialize_pairs(mem.read(hptr, hsize)) if hsize else []
        self.s.local_response = {
            "status": status,
            "details": mem.read(dptr, dsize).decode("utf-8", "replace"),
            "body": mem.read(bptr, bsize),
            "headers": [(k.lower(), v) for k, v in headers],
        }
        return OK

    def proxy_ok(self, *_args: Any) -> int:
        """Calls that are accepted and do nothing here (continue, close, clear the route cache, done)."""
        return OK

    def proxy_set_effective_context(self, caller: wasmtime.Caller, context: int) -> int:
        """``proxy_set_effective_context``: switch the context later calls refer to."""
        if context not in (ROOT_CONTEXT, HTTP_CONTEXT):
            return BAD_ARGUMENT
        self.s.effective = context
        return OK

    # -- shared data and queues (bounded, like Extism vars)
    def _charge(self, size: int, what: str) -> None:
        if self.s.shared_bytes + size > VAR_CAP:
            raise ProxyWasmError(f"proxy-wasm: {what} would exceed {VAR_CAP} bytes")
        self.s.shared_bytes += size

    def proxy_get_shared_data(
        self, caller: wasmtime.Caller, kptr: int, ksize: int, ret_ptr: int, ret_size: int, ret_cas: int
    ) -> int:
        """``proxy_get_shared_data``: a value and its CAS from the in-memory shared data."""
        mem = _Memory(caller, self.s)
        entry = self.s.shared.get(mem.read(kptr, ksize))
        if entry is None:
            return NOT_FOUND
        mem.give(entry[0], ret_ptr, ret_size)
        mem.u32(ret_cas, entry[1])
        return OK

    def proxy_set_shared_data(
        self, caller: wasmtime.Caller, kptr: int, ksize: int, vptr: int, vsize: int, cas: int
    ) -> int:
        """``proxy_set_shared_data``: store a value (CAS checked), within the shared-data cap."""
        mem = _Memory(caller, self.s)
        key, value = mem.read(kptr, ksize), mem.read(vptr, vsize)
        old = self.s.shared.get(key)
        if cas and old is not None and old[1] != cas:
            return CAS_MISMATCH
        self._charge(len(key) + len(value) - (len(key) + len(old[0]) if old else 0), "shared data")
        self.s.shared[key] = (value, (old[1] + 1) if old else 1)
        return OK

    def proxy_register_shared_queue(self, caller: wasmtime.Caller, nptr: int, nsize: int, ret_id: int) -> int:
        """``proxy_register_shared_queue``: a new queue id for the name."""
        mem = _Memory(caller, self.s)
        name = mem.read(nptr, nsize)
        queue = self.s.queue_names.setdefault(name, len(self.s.queue_names) + 1)
        self.s.queues.setdefault(queue, [])
        mem.u32(ret_id, queue)
        return OK

    def proxy_resolve_shared_queue(
        self, caller: wasmtime.Caller, vptr: int, vsize: int, nptr: int, nsize: int, ret_id: int
    ) -> int:
        """``proxy_resolve_shared_queue``: the id of a registered queue."""
        mem = _Memory(caller, self.s)
        queue = self.s.queue_names.get(mem.read(nptr, nsize))
        if queue is None:
            return NOT_FOUND
        mem.u32(ret_id, queue)
        return OK

    def proxy_enqueue_shared_queue(self, caller: wasmtime.Caller, queue: int, ptr: int, size: int) -> int:
        """``proxy_enqueue_shared_queue``: append a message, within the shared-data cap."""
        if queue not in self.s.queues:
            return NOT_FOUND
        data = _Memory(caller, self.s).read(ptr, size)
        self._charge(len(data), "shared queues")
        self.s.queues[queue].append(data)
        return OK

    def proxy_dequeue_shared_queue(
        self, caller: wasmtime.Caller, queue: int, ret_ptr: int, ret_size: int
    ) -> int:
        """``proxy_dequeue_shared_queue``: the oldest message, in plugin memory."""
        items = self.s.queues.get(queue)
        if items is None:
            return NOT_FOUND
        if not items:
            return EMPTY
        data = items.pop(0)
        self.s.shared_bytes -= len(data)
        return _Memory(caller, self.s).give(data, ret_ptr, ret_size)

    # -- outbound calls
    def proxy_http_call(self, caller: wasmtime.Caller, *args: int) -> int:
        """``proxy_http_call``: traps without the ``network`` permission, else accepted and never answered."""
        if not self.s.network:
            raise ProxyWasmError(
                "proxy-wasm: proxy_http_call denied: the plugin does not declare the 'network' permission"
            )
        # Smoke runs never touch the network: a permitted call is accepted and never answered.
        _Memory(caller, self.s).u32(args[-1], 1)
        return OK

    def proxy_grpc_call(self, caller: wasmtime.Caller, *args: int) -> int:
        """``proxy_grpc_call``: as ``proxy_http_call`` (a gRPC call is an outbound call)."""
        return self._outbound(caller, "proxy_grpc_call", args[-1])

    def proxy_grpc_stream(self, caller: wasmtime.Caller, *args: int) -> int:
        """``proxy_grpc_stream``: as ``proxy_http_call``; the stream never receives anything."""
        return self._outbound(caller, "proxy_grpc_stream", args[-1])

    def _outbound(self, caller: wasmtime.Caller, name: str, ret_id: int) -> int:
        if not self.s.network:
            raise ProxyWasmError(
                f"proxy-wasm: {name} denied: the plugin does not declare the 'network' permission"
            )
        _Memory(caller, self.s).u32(ret_id, 1)
        return OK

    def proxy_grpc_send(self, caller: wasmtime.Caller, *_args: int) -> int:
        """``proxy_grpc_send``/``_cancel``/``_close``: only a call accepted with ``network`` exists."""
        return OK if self.s.network else NOT_FOUND

    proxy_grpc_cancel = proxy_grpc_close = proxy_grpc_send

    def proxy_get_status(self, caller: wasmtime.Caller, *_args: int) -> int:
        """``proxy_get_status``: only meaningful in gRPC callbacks, which never run in a smoke test."""
        return NOT_FOUND

    def proxy_call_foreign_function(self, caller: wasmtime.Caller, *_args: int) -> int:
        """``proxy_call_foreign_function``: unimplemented."""
        return UNIMPLEMENTED

    # -- metrics (bounded count)
    def proxy_define_metric(
        self, caller: wasmtime.Caller, kind: int, nptr: int, nsize: int, ret_id: int
    ) -> int:
        """``proxy_define_metric``: a new metric id, at most ``MAX_METRICS``."""
        mem = _Memory(caller, self.s)
        mem.read(nptr, nsize)
        if len(self.s.metrics) >= MAX_METRICS:
            raise ProxyWasmError(f"proxy-wasm: more than {MAX_METRICS} metrics")
        metric = len(self.s.metrics) + 1
        self.s.metrics[metric] = 0
        mem.u32(ret_id, metric)
        return OK

    def proxy_increment_metric(self, caller: wasmtime.Caller, metric: int, delta: int) -> int:
        """``proxy_increment_metric``: add to a metric."""
        if metric not in self.s.metrics:
            return NOT_FOUND
        self.s.metrics[metric] += delta
        return OK

    def proxy_record_metric(self, caller: wasmtime.Caller, metric: int, value: int) -> int:
        """``proxy_record_metric``: set a metric."""
        if metric not in self.s.metrics:
            return NOT_FOUND
        self.s.metrics[metric] = value
        return OK

    def proxy_get_metric(self, caller: wasmtime.Caller, metric: int, ret: int) -> int:
        """``proxy_get_metric``: a metric's value."""
        if metric not in self.s.metrics:
            return NOT_FOUND
        _Memory(caller, self.s).u64(ret, self.s.metrics[metric])
        return OK

    def function(self, name: str) -> Callable[..., int]:
        """The host function implementing the ABI's ``name``."""
        if name in ("proxy_continue_stream", "proxy_close_stream", "proxy_continue_request",
                    "proxy_continue_response", "proxy_clear_route_cache", "proxy_done"):  # fmt: skip
            return self.proxy_ok
        fn: Callable[..., int] = getattr(self, name)
        if any(p != "i32" for p in PROXY_WASM_HOST_FUNCTIONS[name][0]):
            return fn  # the metrics' i64 values are signed
        # Pointers, sizes and ids are u32 in the ABI (Envoy reads them so); wasmtime hands an i32
        # over signed, and the Rust SDK asks for a whole buffer with max_size = usize::MAX (-1).
        return lambda caller, *args: fn(caller, *[a & 0xFFFFFFFF for a in args])


@functools.lru_cache(maxsize=8)
def _host_types(engine: wasmtime.Engine) -> dict[str, wasmtime.FuncType]:
    """The host functions' types for ``engine`` (a FuncType is bound to the engine it is first used with)."""
    kinds = {"i32": wasmtime.ValType.i32, "i64": wasmtime.ValType.i64}
    return {
        name: wasmtime.FuncType([kinds[p]() for p in params], [kinds[r]() for r in results])
        for name, (params, results) in PROXY_WASM_HOST_FUNCTIONS.items()
    }


def _func(exports: Exports, name: str) -> wasmtime.Func | None:
    item = exports(name)
    return item if isinstance(item, wasmtime.Func) else None


def _typed(exports: Exports, name: str, want: Signature) -> wasmtime.Func | None:
    """The export ``name`` when it has the type a Proxy-Wasm host calls it with.

    Another type is missing_export: Envoy refuses to load the filter, and calling a callback
    that takes a v128 aborted the worker.
    """
    fn = _func(exports, name)
    if fn is not None:
        params, results = exports.signature(name, fn)
        if (tuple(params), tuple(results)) != want:
            raise MissingExportError(
                f"export {name!r} is [{', '.join(params)}] -> [{', '.join(results)}]; a Proxy-Wasm host "
                f"calls it as [{', '.join(want[0])}] -> [{', '.join(want[1])}]"
            )
    return fn


def _callback(exports: Exports, name: str) -> wasmtime.Func | None:
    return _typed(exports, name, PROXY_WASM_CALLBACK_SIGNATURES[name])


class ProxyWasmAdapter(Adapter):
    """The ``proxy-wasm`` runner: one HTTP request through the filter's lifecycle per test."""

    name = "proxy-wasm"

    def __init__(self, policy: ImportPolicy) -> None:
        """Create the runner; its host functions serve the running test's ``HttpState``."""
        super().__init__(policy)
        self.host = ProxyWasmHost(HttpState.for_case(Case(""), network=False))

    def define(self, linker: wasmtime.Linker, engine: wasmtime.Engine) -> None:
        """Link the host functions once for every test of the release."""
        for name, ty in _host_types(engine).items():
            linker.define_func(PROXY_WASM_ENV, name, ty, self.host.function(name), access_caller=True)

    def begin(self, linker: wasmtime.Linker, store: wasmtime.Store, case: Case) -> Any:
        """A fresh request, response, log, shared data and metrics for the test."""
        state = HttpState.for_case(case, "network" in self.policy.granted)
        self.host.s = state
        return state

    def log(self, state: Any) -> bytes:
        """The filter's log lines so far."""
        return bytes(state.log) if isinstance(state, HttpState) else b""

    def invoke(self, exports: Exports, store: wasmtime.Store, case: Case, state: Any) -> Produced:
        """Drive the filter through one request's lifecycle and collect what it did."""
        assert isinstance(state, HttpState)
        if not any(_func(exports, v) for v in PROXY_WASM_VERSIONS):
            raise MissingExportError(f"a Proxy-Wasm filter exports {' or '.join(PROXY_WASM_VERSIONS)}")
        create = _callback(exports, "proxy_on_context_create")
        if create is None:
            raise MissingExportError("export 'proxy_on_context_create' is absent")
        allocator = _allocator(exports)
        if allocator is None:
            raise MissingExportError(
                "a Proxy-Wasm filter exports malloc or proxy_on_memory_allocate (the host allocates with it)"
            )
        _typed(exports, allocator[0], PROXY_WASM_ALLOCATOR_SIGNATURE)
        actions: dict[str, str] = {}
        exited = self._start_up(exports, store)
        if exited is not None:
            return self._produced(state, actions, exit_code=exited[0], detail=exited[1])
        create(store, ROOT_CONTEXT, 0)
        for start, size in (
            ("proxy_on_vm_start", VM_CONFIGURATION),
            ("proxy_on_configure", PLUGIN_CONFIGURATION),
        ):
            fn = _callback(exports, start)
            if fn is not None and not fn(store, ROOT_CONTEXT, len(state.buffers[size])):
                return self._produced(state, actions, exit_code=1, detail=f"{start} returned false")
        create(store, HTTP_CONTEXT, ROOT_CONTEXT)
        state.effective = HTTP_CONTEXT
        for phase in PHASES:
            if state.local_response is not None:
                break
            fn = _callback(exports, f"proxy_on_{phase}")
            if fn is None:
                continue
            body = REQUEST_BODY if phase.startswith("request") else RESPONSE_BODY
            if phase.endswith("_headers"):
                headers = REQUEST_HEADERS if phase.startswith("request") else RESPONSE_HEADERS
                action = fn(store, HTTP_CONTEXT, len(state.maps[headers]), int(not state.buffers[body]))
            elif state.buffers[body]:
                action = fn(store, HTTP_CONTEXT, len(state.buffers[body]), 1)
            else:
                continue
            actions[phase] = ACTIONS.get(int(action), f"action {int(action)}")
        for end in ("proxy_on_done", "proxy_on_log", "proxy_on_delete"):
            fn = _callback(exports, end)
            if fn is not None:
                fn(store, HTTP_CONTEXT)
        return self._produced(state, actions)

    @staticmethod
    def _start_up(exports: Exports, store: wasmtime.Store) -> tuple[int, str] | None:
        """Start the VM as Envoy does (``WasmBase::startVm``), before the root context exists.

        The worker has run a reactor's ``_initialize``; then its ``main(0, 0)``, where an SDK
        registers its contexts (TinyGo's proxy-wasm-go-sdk, Rust in bin + reactor mode); a
        command's ``_start`` runs its ``main``.  Envoy fails the VM on any ``proc_exit`` there
        (proxy-wasm-cpp-host's ``proc_exit`` is an error, whatever the status), so the filter never
        loads: a non-zero status ends the test with it, (status, detail); ``proc_exit(0)`` traps.
        """
        present = frozenset(n for n in PROXY_WASM_START_SIGNATURES if _func(exports, n) is not None)
        for name in proxy_wasm_start(present):
            want = PROXY_WASM_START_SIGNATURES[name]
            fn = _typed(exports, name, want)
            assert fn is not None
            if name == "_initialize":
                continue  # the worker runs it right after instantiation, for every ABI
            try:
                fn(store, *(0,) * len(want[0]))
            except wasmtime.ExitTrap as exit_trap:
                said = f"{name} called proc_exit({exit_trap.code}) during start-up (Envoy fails the VM)"
                if exit_trap.code:
                    return exit_trap.code, said
                raise ProxyWasmError(f"{said} ({COMMAND_BUILD_SAID}: {COMMAND_BUILD_FIX})") from None
        return None

    def _produced(
        self, state: HttpState, actions: dict[str, str], exit_code: int = 0, detail: str = ""
    ) -> Produced:
        local = state.local_response
        output = local["body"] if local is not None else state.buffers[RESPONSE_BODY]
        return Produced(output=output, exit_code=exit_code, log=bytes(state.log), detail=detail,
                        mismatch=None if exit_code else self.mismatch(state, actions))  # fmt: skip

    @staticmethod
    def mismatch(state: HttpState, actions: dict[str, str]) -> str | None:
        """The first expectation of the test the filter did not meet (None when all hold)."""
        expect = state.expect
        for phase, want in expect.get("expect_actions", {}).items():
            if actions.get(phase) != want:
                return f"{phase}: action {actions.get(phase, 'not called')}, expected {want}"
        for key, map_type in (
            ("expect_request_headers", REQUEST_HEADERS),
            ("expect_response_headers", RESPONSE_HEADERS),
        ):
            problem = _header_mismatch(state.maps[map_type], expect.get(key, {}), key[len("expect_") :])
            if problem:
                return problem
        local, want_local = state.local_response, expect.get("expect_local_response")
        if want_local is not None:
            if local is None:
                return f"no local response, expected status {want_local['status']}"
            if local["status"] != want_local["status"]:
                return f"local response status {local['status']}, expected {want_local['status']}"
            if "body" in want_local and local["body"] != str(want_local["body"]).encode():
                return f"local response body {local['body']!r}, expected {want_local['body']!r}"
            problem = _header_mismatch(
                local["headers"], want_local.get("headers", {}), "local response headers"
            )
            if problem:
                return problem
        lines = bytes(state.log).decode("utf-8", "replace").splitlines()
        for text in expect.get("expect_log", []):
            if not any(text in line for line in lines):
                return f"no log line contains {text!r}"
        return None


def _header_mismatch(pairs: Pairs, expected: dict[str, Any], what: str) -> str | None:
    for name, want in expected.items():
        got = next((v for k, v in pairs if k == name.lower().encode()), None)
        if want is False:
            if got is not None:
                return f"{what}: {name!r} is {got.decode('utf-8', 'replace')!r}, expected it absent"
        elif got is None:
            return f"{what}: {name!r} is absent, expected {want!r}"
        elif got != str(want).encode():
            return f"{what}: {name!r} is {got.decode('utf-8', 'replace')!r}, expected {want!r}"
    return None
