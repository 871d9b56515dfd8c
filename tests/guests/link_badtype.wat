;; Imports lib.answer with the wrong signature, to test type-mismatch messages.
(module
  (import "lib" "answer" (func $answer (param i64) (result i64)))
  (func (export "_start"))
  (func (export "nothing")))
