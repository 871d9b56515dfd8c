// Wasi: the wasi_snapshot_preview1 host functions for one job, and its fd table.
// One instance is shared by every module of a job (same argv, env and fds).
//
// Guest memory is re-read on every call (a call may grow it) and every pointer/length
// pair is bounds-checked against the current size before any access: a bad pointer
// yields ERRNO_FAULT, never a host access out of bounds.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <sys/uio.h>
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

  // Adds every wasi_snapshot_preview1 function to `imports` under that module name, for
  // one module instance. Returns the instance's memory slot: pointers passed by that
  // instance refer to the memory later bound to the slot (its own "memory").
  size_t install(v8::Isolate* isolate, v8::Local<v8::Context> ctx, v8::Local<v8::Object> imports);
  void bind_memory(size_t slot, v8::Local<v8::WasmMemoryObject> memory);
  // Largest current size over all bound memories (memories never shrink: this is the peak).
  uint64_t peak_memory_size();

  // proc_exit was called: the guest's exit code. Execution is being terminated.
  std::optional<int32_t> exit_code() const { return exit_code_; }
  // The import signature of a WASI function: params as 'i' (i32) / 'I' (i64), and whether
  // it returns an i32 errno. False when there is no such function.
  static bool signature(const std::string& name, std::string* params, bool* returns_errno);

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

  // Written-output accounting (policy limits.output_bytes): every byte written to a file,
  // overwrites and growth by truncate/allocate included, counts against one budget for the
  // whole job. Clamps `iov` to what is left; false when nothing is left (the guest gets FBIG).
  bool charge_output(const FdEntry& e, std::vector<struct iovec>* iov);
  bool charge_output_growth(const FdEntry& e, uint64_t bytes);
  void uncharge_output(const FdEntry& e, uint64_t unused);
  // A new entry (file, folder, symlink, hard link) in a writable tree: counts against
  // limits.output_files, and `bytes` (a folder's block, a link's target) against
  // output_bytes. False when either is used up (the guest gets EDQUOT / EFBIG).
  bool charge_entry(uint64_t bytes, uint16_t* wasi_errno);
  void uncharge_entry(uint64_t bytes);
  void set_current_slot(size_t slot) { current_slot_ = slot; }

 private:
  v8::Isolate* isolate_ = nullptr;
  std::vector<std::unique_ptr<v8::Global<v8::WasmMemoryObject>>> memories_;  // one per instance
  size_t current_slot_ = 0;  // the calling instance's slot, set for each host call
  std::vector<std::string> args_;
  std::vector<std::string> env_;  // "KEY=VALUE"
  std::vector<std::optional<FdEntry>> fds_;
  std::optional<int32_t> exit_code_;
  uint64_t output_limit_ = 0;  // 0: no limit
  uint64_t output_used_ = 0;
  uint64_t files_limit_ = 0;  // 0: no limit
  uint64_t files_used_ = 0;

 public:
  struct Binding;  // one host function bound to this instance (wasi.cc)

 private:
  std::vector<Binding*> bindings_;
};

}  // namespace wj
