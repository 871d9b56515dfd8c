// Wasi: the wasi_snapshot_preview1 host functions for one job, and its fd table.
// One instance is shared by every module of a job (same argv, env and fds).
//
// Guest memory is re-read on every call (a call may grow it) and every pointer/length
// pair is bounds-checked against the current size before any access: a bad pointer
// yields ERRNO_FAULT, never a host access out of bounds.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <v8.h>

#include "v8host/engine.h"

namespace wj {

// Bounds-checked view of the guest's linear memory for the duration of one host call.
struct GuestMemory {
  uint8_t* base = nullptr;
  uint64_t size = 0;
  bool ok(uint64_t ptr, uint64_t len) const { return ptr <= size && len <= size - ptr; }
  uint8_t* at(uint64_t ptr) const { return base + ptr; }
};

class Wasi {
 public:
  // One directory entry as fd_readdir reports it; cookies index a snapshot of these.
  struct DirListing {
    uint64_t ino = 0;
    uint8_t filetype = 0;
    std::string name;
  };

  struct FdEntry {
    int host_fd = -1;     // -1: an empty stream (stdin with no input)
    uint8_t filetype = 0;  // WASI filetype
    uint16_t fdflags = 0;
    uint64_t rights_base = 0, rights_inheriting = 0;
    bool owned = false;  // close host_fd when the guest closes this entry
    bool is_preopen = false;
    // Beneath a read-only preopen: every mutation answers ERRNO_ROFS, whatever the rights.
    bool read_only = false;
    std::string guest_path;  // preopens only
    // fd_readdir snapshot, taken at cookie 0 so that later cookies stay stable.
    std::vector<DirListing> listing;
  };

  // Most descriptors a guest may hold at once (ERRNO_MFILE beyond).
  static constexpr size_t kMaxFds = 16384;

  explicit Wasi(const RunConfig& cfg);
  ~Wasi();
  Wasi(const Wasi&) = delete;
  Wasi& operator=(const Wasi&) = delete;

  // Adds every wasi_snapshot_preview1 function to `imports` under that module name.
  void install(v8::Isolate* isolate, v8::Local<v8::Context> ctx, v8::Local<v8::Object> imports);
  // The memory that pointers refer to: the entry module's exported "memory".
  void bind_memory(v8::Isolate* isolate, v8::Local<v8::WasmMemoryObject> memory);
  bool has_memory() const { return !memory_.IsEmpty(); }
  uint64_t memory_size();

  // proc_exit was called: the guest's exit code. Execution is being terminated.
  std::optional<int32_t> exit_code() const { return exit_code_; }
  static bool provides(const std::string& name);

  // --- used by the host functions (wasi.cc) ---
  GuestMemory memory();
  FdEntry* fd(uint32_t n) { return n < fds_.size() && fds_[n] ? &*fds_[n] : nullptr; }
  std::vector<std::optional<FdEntry>>& fds() { return fds_; }
  // Puts `e` in the lowest free slot and returns its guest number; nullopt when full.
  std::optional<uint32_t> add_fd(FdEntry e);
  // Closes the host side of slot `n` (if owned) and frees it.
  void close_fd(uint32_t n);
  const std::vector<std::string>& args() const { return args_; }
  const std::vector<std::string>& env() const { return env_; }
  void request_exit(int32_t code);

 private:
  v8::Isolate* isolate_ = nullptr;
  v8::Global<v8::WasmMemoryObject> memory_;
  std::vector<std::string> args_;
  std::vector<std::string> env_;  // "KEY=VALUE"
  std::vector<std::optional<FdEntry>> fds_;
  std::optional<int32_t> exit_code_;

 public:
  struct Binding;  // one host function bound to this instance (wasi.cc)

 private:
  std::vector<Binding*> bindings_;
};

}  // namespace wj
