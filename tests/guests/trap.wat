;; Traps two calls deep; built with a name section so the backtrace has names.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $inner_fails unreachable)
  (func $outer_calls (call $inner_fails))
  (func (export "_start") (call $outer_calls)))
