;; return_call: the tail-call proposal, behind a flag in V8 10.2.
(module (func $f) (func (export "_start") (return_call $f)))
