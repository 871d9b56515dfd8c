;; Imports a function nobody provides.
(module
  (import "env" "mystery" (func $m))
  (func (export "_start") (call $m)))
