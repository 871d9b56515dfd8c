;; Spins forever in _start: a live child for tests that inspect it through /proc.
(module
  (memory (export "memory") 1)
  (func (export "_start") (loop $forever (br $forever))))
