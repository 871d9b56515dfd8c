;; Tries to grow by 10 GiB at once; prints "refused" when memory.grow returns -1.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "refused\n")
  (data (i32.const 80) "granted\n")
  (func (export "_start")
    (i32.store (i32.const 0)
      (select (i32.const 64) (i32.const 80) (i32.eq (memory.grow (i32.const 163840)) (i32.const -1))))
    (i32.store (i32.const 4) (i32.const 8))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
