;; Spins forever in pure wasm: only termination can stop it.
(module (func (export "_start") (loop $l (br $l))))
