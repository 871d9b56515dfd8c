;; Declares a 2000-page (125 MiB) minimum memory.
(module (memory (export "memory") 2000) (func (export "_start")))
