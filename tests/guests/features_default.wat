;; Uses every feature V8 10.2 enables by default (and that clang, rustc, Go, TinyGo, GHC and
;; AssemblyScript emit): SIMD, bulk memory, reference types, exception handling, sign
;; extension, saturating conversions, multi-value. Prints "features ok" if all agree.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "features ok\n")
  (table $t 1 externref)
  (tag $e (param i32))
  (func $pair (result i32 i32) (i32.const 40) (i32.const 2))          ;; multi-value
  (func $throws (param i32) (throw $e (local.get 0)))
  (func $check (result i32)
    (local $sum i32)
    ;; SIMD: 1+2+3+4 lane-wise added to itself, lane 3 = 8
    (local.set $sum (i32x4.extract_lane 3 (i32x4.add (v128.const i32x4 1 2 3 4) (v128.const i32x4 1 2 3 4))))
    ;; multi-value: 40 + 2
    (local.set $sum (i32.add (local.get $sum) (call $pair) (i32.add)))
    ;; sign extension: 0xff -> -1
    (local.set $sum (i32.add (local.get $sum) (i32.extend8_s (i32.const 255))))
    ;; saturating conversion: 1e20 -> INT32_MAX; (INT32_MAX >> 30) = 1
    (local.set $sum (i32.add (local.get $sum) (i32.shr_u (i32.trunc_sat_f32_s (f32.const 1e20)) (i32.const 30))))
    ;; reference types: a null externref round-trips through a table
    (table.set $t (i32.const 0) (ref.null extern))
    (local.set $sum (i32.add (local.get $sum) (ref.is_null (table.get $t (i32.const 0)))))
    ;; exception handling: catch the payload 7
    (try (do (call $throws (i32.const 7)))
      (catch $e (local.set $sum (i32.add (local.get $sum)))))
    (local.get $sum))  ;; 8 + 42 - 1 + 1 + 1 + 7 = 58
  (func (export "_start")
    ;; bulk memory: copy the message to 200 and point an iovec at it
    (memory.copy (i32.const 200) (i32.const 100) (i32.const 12))
    (memory.fill (i32.const 0) (i32.const 0) (i32.const 16))
    (if (i32.ne (call $check) (i32.const 58)) (then unreachable))
    (i32.store (i32.const 0) (i32.const 200))
    (i32.store (i32.const 4) (i32.const 12))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
