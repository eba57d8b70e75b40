;; The Extism kernel of registry-tool's smoke harness: the memory half of the `extism:host/env` ABI,
;; in wasm so that a plugin's byte-at-a-time load/store/input calls never leave wasm (a Python host
;; callback costs microseconds; a wasm-to-wasm call costs nanoseconds).  Hand-written for this
;; harness; it follows the ABI of the Extism runtime's kernel, not its code.
;;
;; Only MVP instructions are used, so the module validates under any feature set a registry enables.
;;
;; Memory ("memory", exported to the host only): [0, 16) is reserved so that offset 0 means "null";
;; blocks tile [16, $top) back to back, each a 16-byte header then the data a handle points at:
;;   handle - 16: i64 capacity (data bytes the block spans)
;;   handle -  8: i64 state: > 0 an active block of that many bytes (alloc(0) returns 0, so never 0);
;;                < 0 a free block, bitwise-not of the next free handle (0 ends the list)
;; The heap grows with memory.grow, so it is capped by the store's memory limit (and wasm32's 4 GiB):
;; past the cap memory.grow fails and alloc returns 0, as Extism's does.
;;
;; Every access through the ABI is checked against [16, $top); a bad one calls the host's `fault`,
;; which raises a trap naming the function, offset and size.  A plugin can overwrite block headers
;; (they are inside the heap, as in Extism); that can only confuse its own allocations, never reach
;; outside this memory, and every walk below stops at the first header that does not fit the heap.
(module
  (import "registry-tool:kernel" "fault" (func $fault (param i32 i64 i64 i64)))
  (memory (export "memory") 1)

  (global $top (mut i64) (i64.const 16))
  (global $free_list (mut i64) (i64.const 0))
  (global $input_offset (mut i64) (i64.const 0))
  (global $input_length (mut i64) (i64.const 0))
  (global $output_offset (mut i64) (i64.const 0))
  (global $output_length (mut i64) (i64.const 0))
  (global $error (mut i64) (i64.const 0))

  ;; Host-side view (never linked into a plugin): output and heap figures as exported globals.
  (export "rt_output_offset" (global $output_offset))
  (export "rt_output_length" (global $output_length))
  (export "rt_heap_top" (global $top))
  (export "rt_error" (global $error))

  ;; Fault kinds, mapped to names by the host: 0 load_u8, 1 load_u64, 2 store_u8, 3 store_u64,
  ;; 4 input_load_u8, 5 input_load_u64, 6 output_set, 7 error_set.

  (func $memory_bytes (result i64)
    (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)))

  ;; The header at `$at` describes a block that ends inside the heap?
  (func $fits (param $at i64) (result i32)
    (if (i64.gt_u (i64.add (local.get $at) (i64.const 16)) (global.get $top))
      (then (return (i32.const 0))))
    (i64.le_u
      (i64.load (i32.wrap_i64 (local.get $at)))
      (i64.sub (global.get $top) (i64.add (local.get $at) (i64.const 16)))))

  ;; The header of the active block whose data starts at `$p`, or -1: walks the blocks from the
  ;; start, so a handle is only ever recognised where alloc put one.
  (func $find (param $p i64) (result i64)
    (local $at i64)
    (local.set $at (i64.const 16))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (call $fits (local.get $at))))
        (if (i64.eq (i64.add (local.get $at) (i64.const 16)) (local.get $p))
          (then
            (if (i64.gt_s (i64.load offset=8 (i32.wrap_i64 (local.get $at))) (i64.const 0))
              (then (return (local.get $at))))
            (br $done)))
        (br_if $done (i64.gt_u (i64.add (local.get $at) (i64.const 16)) (local.get $p)))
        (local.set $at
          (i64.add (i64.add (local.get $at) (i64.const 16))
                   (i64.load (i32.wrap_i64 (local.get $at)))))
        (br $next)))
    (i64.const -1))

  ;; ------------------------------------------------------------------ allocation

  (func $alloc (export "alloc") (param $n i64) (result i64)
    (local $prev i64) (local $cur i64) (local $cap i64) (local $next i64) (local $handle i64)
    (local $end i64) (local $short i64)
    (if (i64.eqz (local.get $n)) (then (return (i64.const 0))))
    (if (i64.gt_u (local.get $n) (i64.const 0xFFFFFFFF)) (then (return (i64.const 0))))
    ;; First fit in the free list; a big enough block is split from its tail.
    (local.set $cur (global.get $free_list))
    (block $searched
      (loop $walk
        (br_if $searched (i64.eqz (local.get $cur)))
        (br_if $searched (i64.lt_u (local.get $cur) (i64.const 32)))
        (br_if $searched (i32.eqz (call $fits (i64.sub (local.get $cur) (i64.const 16)))))
        (local.set $cap (i64.load (i32.wrap_i64 (i64.sub (local.get $cur) (i64.const 16)))))
        (local.set $next (i64.xor (i64.load (i32.wrap_i64 (i64.sub (local.get $cur) (i64.const 8))))
                                  (i64.const -1)))
        (if (i64.ge_u (local.get $cap) (local.get $n))
          (then
            (if (i64.ge_u (i64.sub (local.get $cap) (local.get $n)) (i64.const 80))
              (then
                ;; The free block keeps its head; the new block is its last 16 + n bytes.
                (local.set $cap (i64.sub (i64.sub (local.get $cap) (local.get $n)) (i64.const 16)))
                (i64.store (i32.wrap_i64 (i64.sub (local.get $cur) (i64.const 16))) (local.get $cap))
                (local.set $handle (i64.add (i64.add (local.get $cur) (local.get $cap)) (i64.const 16)))
                (i64.store (i32.wrap_i64 (i64.sub (local.get $handle) (i64.const 16))) (local.get $n))
                (i64.store (i32.wrap_i64 (i64.sub (local.get $handle) (i64.const 8))) (local.get $n))
                (return (local.get $handle))))
            (if (i64.eqz (local.get $prev))
              (then (global.set $free_list (local.get $next)))
              (else
                (i64.store (i32.wrap_i64 (i64.sub (local.get $prev) (i64.const 8)))
                           (i64.xor (local.get $next) (i64.const -1)))))
            (i64.store (i32.wrap_i64 (i64.sub (local.get $cur) (i64.const 8))) (local.get $n))
            (return (local.get $cur))))
        (local.set $prev (local.get $cur))
        (local.set $cur (local.get $next))
        (br $walk)))
    ;; Bump: a new block at the top, growing the memory if needed (0 when the store refuses).
    (local.set $handle (i64.add (global.get $top) (i64.const 16)))
    (local.set $end (i64.add (local.get $handle) (local.get $n)))
    (if (i64.gt_u (local.get $end) (call $memory_bytes))
      (then
        (local.set $short (i64.sub (local.get $end) (call $memory_bytes)))
        (if (i32.eq
              (memory.grow (i32.wrap_i64
                (i64.shr_u (i64.add (local.get $short) (i64.const 0xFFFF)) (i64.const 16))))
              (i32.const -1))
          (then (return (i64.const 0))))))
    (i64.store (i32.wrap_i64 (global.get $top)) (local.get $n))
    (i64.store offset=8 (i32.wrap_i64 (global.get $top)) (local.get $n))
    (global.set $top (local.get $end))
    (local.get $handle))

  (func (export "free") (param $p i64)
    (local $at i64)
    (local.set $at (call $find (local.get $p)))
    (if (i64.lt_s (local.get $at) (i64.const 0)) (then (return)))
    (if (i64.eq (local.get $p) (global.get $input_offset))
      (then (global.set $input_length (i64.const 0))))
    (if (i64.eq (i64.add (local.get $p) (i64.load (i32.wrap_i64 (local.get $at)))) (global.get $top))
      (then (global.set $top (local.get $at)) (return)))  ;; the last block: give it back to the bump
    (i64.store offset=8 (i32.wrap_i64 (local.get $at)) (i64.xor (global.get $free_list) (i64.const -1)))
    (global.set $free_list (local.get $p)))

  (func (export "length") (param $p i64) (result i64)
    (local $at i64)
    (local.set $at (call $find (local.get $p)))
    (if (result i64) (i64.lt_s (local.get $at) (i64.const 0))
      (then (i64.const 0))
      (else (i64.load offset=8 (i32.wrap_i64 (local.get $at))))))

  ;; Reads the header in place (no walk): 0 for anything that does not look like an active block.
  (func (export "length_unsafe") (param $p i64) (result i64)
    (local $state i64)
    (if (i32.or (i64.lt_u (local.get $p) (i64.const 32)) (i64.gt_u (local.get $p) (global.get $top)))
      (then (return (i64.const 0))))
    (local.set $state (i64.load (i32.wrap_i64 (i64.sub (local.get $p) (i64.const 8)))))
    (if (result i64) (i64.gt_s (local.get $state) (i64.const 0))
      (then (local.get $state))
      (else (i64.const 0))))

  ;; ------------------------------------------------------------------ loads and stores

  (func (export "load_u8") (param $p i64) (result i32)
    (if (i32.or (i64.lt_u (local.get $p) (i64.const 16)) (i64.ge_u (local.get $p) (global.get $top)))
      (then (call $fault (i32.const 0) (local.get $p) (i64.const 1) (global.get $top)) (unreachable)))
    (i32.load8_u (i32.wrap_i64 (local.get $p))))

  (func (export "load_u64") (param $p i64) (result i64)
    (if (i32.or (i64.lt_u (local.get $p) (i64.const 16))
                (i64.gt_u (local.get $p) (i64.sub (global.get $top) (i64.const 8))))
      (then (call $fault (i32.const 1) (local.get $p) (i64.const 8) (global.get $top)) (unreachable)))
    (i64.load (i32.wrap_i64 (local.get $p))))

  (func (export "store_u8") (param $p i64) (param $v i32)
    (if (i32.or (i64.lt_u (local.get $p) (i64.const 16)) (i64.ge_u (local.get $p) (global.get $top)))
      (then (call $fault (i32.const 2) (local.get $p) (i64.const 1) (global.get $top)) (unreachable)))
    (i32.store8 (i32.wrap_i64 (local.get $p)) (local.get $v)))

  (func (export "store_u64") (param $p i64) (param $v i64)
    (if (i32.or (i64.lt_u (local.get $p) (i64.const 16))
                (i64.gt_u (local.get $p) (i64.sub (global.get $top) (i64.const 8))))
      (then (call $fault (i32.const 3) (local.get $p) (i64.const 8) (global.get $top)) (unreachable)))
    (i64.store (i32.wrap_i64 (local.get $p)) (local.get $v)))

  ;; ------------------------------------------------------------------ input, output, error

  (func (export "input_length") (result i64) (global.get $input_length))
  (func (export "input_offset") (result i64) (global.get $input_offset))

  (func (export "input_load_u8") (param $i i64) (result i32)
    (if (i64.ge_u (local.get $i) (global.get $input_length))
      (then (call $fault (i32.const 4) (local.get $i) (i64.const 1) (global.get $input_length))
            (unreachable)))
    (i32.load8_u (i32.wrap_i64 (i64.add (global.get $input_offset) (local.get $i)))))

  (func (export "input_load_u64") (param $i i64) (result i64)
    (if (i32.or (i64.lt_u (global.get $input_length) (i64.const 8))
                (i64.gt_u (local.get $i) (i64.sub (global.get $input_length) (i64.const 8))))
      (then (call $fault (i32.const 5) (local.get $i) (i64.const 8) (global.get $input_length))
            (unreachable)))
    (i64.load (i32.wrap_i64 (i64.add (global.get $input_offset) (local.get $i)))))

  ;; [p, p + n) must lie in the heap (n = 0 sets an empty output wherever p points).
  (func $check_range (param $kind i32) (param $p i64) (param $n i64)
    (if (i64.eqz (local.get $n)) (then (return)))
    (if (i32.or (i64.lt_u (local.get $p) (i64.const 16))
                (i32.or (i64.gt_u (local.get $p) (global.get $top))
                        (i64.gt_u (local.get $n) (i64.sub (global.get $top) (local.get $p)))))
      (then (call $fault (local.get $kind) (local.get $p) (local.get $n) (global.get $top))
            (unreachable))))

  (func (export "output_set") (param $p i64) (param $n i64)
    (call $check_range (i32.const 6) (local.get $p) (local.get $n))
    (global.set $output_offset (local.get $p))
    (global.set $output_length (local.get $n)))

  ;; The host's way in: a block for an `n`-byte input (0 when it does not fit), which becomes the
  ;; input; the host writes the bytes there before the plugin runs.
  (func (export "rt_input_init") (param $n i64) (result i64)
    (global.set $input_length (i64.const 0))
    (global.set $input_offset (call $alloc (local.get $n)))
    (if (i64.eqz (global.get $input_offset)) (then (return (i64.const 0))))
    (global.set $input_length (local.get $n))
    (global.get $input_offset))

  (func (export "error_set") (param $p i64)
    (if (i32.and (i64.ne (local.get $p) (i64.const 0))
                 (i64.lt_s (call $find (local.get $p)) (i64.const 0)))
      (then (call $fault (i32.const 7) (local.get $p) (i64.const 0) (global.get $top)) (unreachable)))
    (global.set $error (local.get $p)))

  (func (export "error_get") (result i64) (global.get $error))
)
