;; Uses one SIMD instruction: valid only when the policy leaves wasm.features.simd on, so a
;; test can see that the policy's V8 flags reach V8 in the child.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "simd\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32x4.extract_lane 0 (i32x4.splat (i32.const 5))))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
