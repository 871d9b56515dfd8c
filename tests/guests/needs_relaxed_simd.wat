;; A relaxed SIMD instruction, behind a flag in V8 10.2.
(module (func (export "_start") (drop (i32x4.relaxed_trunc_f32x4_s (v128.const i32x4 1 2 3 4)))))
