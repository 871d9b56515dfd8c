;; Loads far past the end of its one-page memory: must trap ("memory access out of bounds").
(module
  (memory (export "memory") 1)
  (func (export "_start") (drop (i32.load (i32.const 0x7ffffff0)))))
