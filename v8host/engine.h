// Engine: runs one WebAssembly module in V8 with WASI preview1 linked, in-process.
// Takes plain data (module bytes, argv, env, fds) and returns a RunOutcome; knows nothing
// of processes, libuv or YAML, so it can be unit-tested without a supervisor.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "v8host/outcome.h"

namespace wj {

struct Preopen {
  int host_fd = -1;        // an O_DIRECTORY fd the guest path resolves beneath
  std::string guest_path;  // e.g. "/data"
  bool read_only = false;
};

// A module the entry module (or a later library) may import from.
struct LibraryModule {
  std::string name;                  // registered under this name...
  std::vector<std::string> aliases;  // ...and these (e.g. the path it is mounted at)
  std::vector<uint8_t> bytes;
};

struct RunConfig {
  // Instantiated in order before the entry module; each one's imports resolve against
  // the libraries before it, then wasi_snapshot_preview1.
  std::vector<LibraryModule> libraries;
  std::vector<uint8_t> module;
  std::string module_name;  // for messages
  std::string entry = "_start";
  std::vector<std::string> argv;  // argv[0] included
  std::vector<std::pair<std::string, std::string>> env;
  std::vector<Preopen> preopens;
  int stdin_fd = -1;  // -1: stdin reads as empty
  int stdout_fd = 1;
  int stderr_fd = 2;
  // The consumer of stdout/stderr is a terminal: report a character device to the guest so
  // its libc line-buffers as it would under wasmtime.
  bool stdio_is_tty[3] = {false, false, false};
  std::vector<std::string> v8_flags;  // already validated by the caller

  // Limits enforced inside V8 (0 = none). The supervisor enforces the same wall time
  // with SIGKILL; the watchdog stops the guest just before, so a clean record arrives.
  uint64_t wall_deadline_ns = 0;  // absolute CLOCK_MONOTONIC
  double cpu_limit_ms = 0;        // process CPU time
  uint64_t heap_limit_bytes = 0;  // V8 JS heap
  uint64_t wasm_memory_limit_bytes = 0;  // each linear memory
  uint64_t output_limit_bytes = 0;       // all bytes written to files, together (apparent size)
  uint64_t output_limit_files = 0;       // files, folders and links the guest creates
  // Called from V8's OOM / fatal-error handlers, just before the process dies. Must not
  // allocate: the caller writes a record it prepared in advance.
  void (*on_fatal)(bool out_of_memory) = nullptr;

  // Compile cache (managed by the supervisor). `cached_code`: V8-serialized code of
  // `module` from an earlier run; V8 validates it and compiles afresh if it is stale or
  // corrupt. `on_compiled`: receives the serialized code after a fresh compile of the entry
  // module, before any guest code runs.
  const std::vector<uint8_t>* cached_code = nullptr;
  std::function<void(const uint8_t* data, size_t size)> on_compiled;
  // Compile the entry module, offer its code (on_compiled) and stop: no library, no
  // instantiation, no guest code (a background compile for the code cache).
  bool compile_only = false;
  // With compile_only: compile the entry module with these declared functions (ascending)
  // eagerly on TurboFan and every other one lazy (a compilation-hints section, see
  // v8host/hot_code.h), then serialize it under the flags in v8_flags, which a job that
  // deserializes it runs with. The code is for the unmodified module.
  std::vector<uint32_t> hot_functions;
  // `module` already carries that compilation-hints section (the caller built it and freed
  // the original, so that the compile holds two copies of the module, ours and V8's, not three).
  bool module_has_hints = false;
  // Receives, after the entry function ended (returned, exited, trapped or stopped at a
  // limit), the declared-function indices V8 had optimized with TurboFan in this run.
  std::function<void(const std::vector<uint32_t>&)> on_hot_functions;
  // If set, receives the outcome before the isolate is torn down (a job process reports
  // and exits in it; run_module then never returns).
  std::function<void(const RunOutcome&)> on_outcome;
};

// Async-signal-safe: asks the running job's watchdog to stop the guest for CPU time
// (for a SIGXCPU handler).
void notify_cpu_limit_from_signal();

// Initializes V8 once per process (platform, flags) and starts its worker threads. Must run
// before any isolate exists; in wasmjail that is in the job's child, after fork.
void init_v8_once(const std::vector<std::string>& flags);

// V8::Initialize without any thread (DeferredPlatform): for the fork server, which forks
// job children that then call init_v8_once (flags, fresh address hints, worker threads).
void preinitialize_v8();
bool v8_preinitialized();
// Enables V8's wasm trap handler in this process and says whether the platform took it
// (`wasmjail doctor`; callable once per process, never in one that runs jobs itself).
bool wasm_trap_handler_available();

// A warm pooled process (supervisor/zygote.h): sets the policy's V8 flags, reseeds the
// address hints and creates the isolate (with this heap limit, 0 = none) and its context now,
// before any job is known and without starting a thread. run_module then uses them for the
// one job this process runs (when its heap limit is the same), instead of creating its own.
void prewarm_isolate(const std::vector<std::string>& flags, uint64_t heap_limit_bytes);
// What the job is doing, for a handler that must say when it ran out of memory (set by
// run_module; read from V8's OOM handler or a new-handler, so a lock-free atomic).
enum class RunPhase : int { kStartup, kCompile, kInstantiate, kRun };
RunPhase current_phase();

RunOutcome run_module(const RunConfig& cfg);

// Makes V8 draw its entropy (hash seeds, ASLR hints, Math.random seeds) from getrandom(2)
// instead of opening /dev/urandom. Call before init_v8_once; the sandboxed child has no
// /dev and its filter allows getrandom.
void set_entropy_source();

}  // namespace wj
