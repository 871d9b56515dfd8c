;; Two memories: the multi-memory proposal, which V8 10.2 lacks.
(module (memory 1) (memory $m2 1) (func (export "_start") (drop (i32.load $m2 (i32.const 0)))))
