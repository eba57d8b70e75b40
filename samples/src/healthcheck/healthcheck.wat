;; healthcheck: the smallest useful WASI 0.2 command component.  It exports
;; wasi:cli/run@0.2.0 whose run() returns ok, so a host can prove its component
;; pipeline (compile, link, instantiate, call) works end to end.  It imports nothing.
(component
  (core module $impl
    (func (export "run") (result i32)
      i32.const 0))                       ;; 0 = result::ok
  (core instance $i (instantiate $impl))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $cli-run (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $cli-run)))
