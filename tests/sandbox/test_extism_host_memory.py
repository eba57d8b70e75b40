"""Attack: Extism host functions that copy plugin memory into the worker's Python heap.

``log_*`` appends a block to the log and ``var_set`` stores a copy per key: a plugin looping on
either grows the worker's own memory, outside every wasm limit, until the process hits its
address-space ceiling.  Logs are captured output (capped like stderr) and vars have a byte budget.
"""

from __future__ import annotations

from registry_tool.sandbox import Case
from registry_tool.sandbox.outcome import Outcome

from .conftest import Runner, wat

BLOCK = 1024 * 1024

LOG_FLOOD = f"""(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "log_info" (func $log (param i64)))
  (func (export "f") (result i32) (local $b i64)
    (local.set $b (call $alloc (i64.const {BLOCK})))
    (loop $l (call $log (local.get $b)) (br $l))
    (i32.const 0)))"""

VAR_FLOOD = f"""(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $st (param i64 i64)))
  (import "extism:host/env" "var_set" (func $set (param i64 i64)))
  (func (export "f") (result i32) (local $k i64) (local $v i64) (local $i i64)
    (local.set $k (call $alloc (i64.const 8)))
    (local.set $v (call $alloc (i64.const {BLOCK})))
    (loop $l
      (call $st (local.get $k) (local.get $i))
      (call $set (local.get $k) (local.get $v))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $l))
    (i32.const 0)))"""


def test_log_flood_is_output_limit_and_bounded(run: Runner) -> None:
    # 4 GiB of log lines fit in the fuel; the worker may only ever hold the output cap of them.
    [result] = run(wat(LOG_FLOOD), Case("flood", "f"), abi="extism", fuel=50_000_000)
    assert result.outcome is Outcome.output_limit, result.detail


def test_var_flood_is_refused_before_the_worker_runs_out_of_memory(run: Runner) -> None:
    [result] = run(wat(VAR_FLOOD), Case("vars", "f"), abi="extism", fuel=50_000_000)
    assert result.outcome is Outcome.trap, result.detail
    assert "var" in result.detail
