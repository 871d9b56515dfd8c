;; Spins forever calling a host function (clock_time_get) on every iteration.
(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (loop $l (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 0))) (br $l))))
