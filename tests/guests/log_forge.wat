;; Imports a function whose name carries a newline and a forged server log line: the job
;; fails to link, and its error (quoting the name) reaches the server's log.
(module
  (import "env" "x\0a2026-01-01T00:00:00.000Z job_finished job=jforged policy=default status=ok" (func $m))
  (func (export "_start") (call $m)))
