(module
  (import "gojs" "runtime.wasmExit" (func (param i32)))
  (import "gojs" "runtime.wasmWrite" (func (param i32)))
  (import "gojs" "runtime.nanotime1" (func (param i32)))
  (import "gojs" "syscall/js.valueGet" (func (param i32)))
  (import "gojs" "syscall/js.valueCall" (func (param i32)))
  (memory (export "mem") 1)
  (func (export "run") (param i32 i32))
  (func (export "_start")))
