;; A 64-bit memory: the memory64 proposal, behind a flag in V8 10.2.
(module (memory i64 1) (func (export "_start") (drop (i32.load (i64.const 0)))))
