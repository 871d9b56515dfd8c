// RunOutcome: what running one module in V8 produced, as plain data. The child sends it
// to the supervisor over the record pipe (supervisor/wire.h); nothing here knows V8.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wj {

enum class OutcomeKind {
  kReturned,       // the entry point returned normally
  kExited,         // proc_exit(code)
  kTrap,           // wasm trap or uncaught exception from the guest
  kInvalidModule,  // V8 refused the bytes (not wasm, failed validation, missing feature)
  kLinkError,      // an import could not be satisfied
  kEntryError,     // entry point missing or of the wrong type
  kSetupError,     // sandbox setup failed in the child
  kMemoryLimit,    // V8 heap limit, allocation failure, or a memory over wasm_memory
  kTimeout,        // the watchdog stopped the guest at the wall-time limit
  kCpuLimit,       // the watchdog stopped the guest at the CPU-time limit (or SIGXCPU)
  kInternalError,
};

struct RunOutcome {
  OutcomeKind kind = OutcomeKind::kInternalError;
  int32_t exit_code = 0;  // for kExited
  std::string message;
  std::vector<std::string> backtrace;
  double compile_ms = 0, instantiate_ms = 0, run_ms = 0;
  uint64_t peak_wasm_memory_bytes = 0;
  std::string code_cache;  // "" (not used), "hit" (deserialized), "miss" (compiled, code offered)
};

}  // namespace wj
