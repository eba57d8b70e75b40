;; Core-ABI plugin using the permission-gated ferrite:keys host functions:
;; bump(key) stores "1" under key when absent and returns the length get() reports afterwards.
(module
  (import "ferrite:keys" "get" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "ferrite:keys" "set" (func $set (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "1")
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "bump") (param $p i32) (param $n i32) (result i32)
    (if (i32.lt_s (call $get (local.get $p) (local.get $n) (i32.const 200) (i32.const 8)) (i32.const 0))
      (then (drop (call $set (local.get $p) (local.get $n) (i32.const 100) (i32.const 1)))))
    (call $get (local.get $p) (local.get $n) (i32.const 200) (i32.const 8))))
