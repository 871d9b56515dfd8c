;; Fails validation: the function promises an i32 and returns nothing.
;; Built with wat2wasm --no-check.
(module
  (func (export "_start") (result i32)))
