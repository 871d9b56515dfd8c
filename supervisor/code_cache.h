// CodeCache: V8-serialized TurboFan code for wasm modules, on disk, owned by the supervisor.
//
// Entries are keyed by sha256(module bytes) + V8's version + the V8 flags in force. The
// child never writes here: it sends serialized code over its record pipe (only as its
// first frame, right after compiling and before any guest code ran), and the supervisor
// writes it atomically (temp file + rename). The cache folder is not trusted: every entry
// carries an HMAC-SHA256 (OpenSSL) over its key and payload, made with a per-installation
// key that only this user can read and that lives outside the folder (`<folder>.key`,
// 0600, created on first use). An entry whose HMAC does not match is deleted and costs a
// recompile. The folder itself must belong to this user and not be writable by others;
// all file I/O goes through storage/ (beneath the folder's fd, no symlinks followed).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storage/host_fs.h"

namespace wj {

class CodeCache {
 public:
  CodeCache(std::string dir, uint64_t max_bytes);
  // Whether the cache is in use: a folder was named and passed the checks (see error()).
  bool enabled() const { return state_ != nullptr; }
  // Why a named folder is not used (not owned by this user, writable by others, a symlink,
  // its key unreadable...); empty when enabled or when no folder was named.
  const std::string& error() const { return error_; }

  // The key of a module's code under V8 flags, from the module's sha256 (hex): computed once
  // per job for its several keys.
  static std::string key_for_digest(const std::string& module_sha256, const std::vector<std::string>& v8_flags);
  // `optimized` (if given) receives the entry's recorded optimized functions: the declared-
  // function indices a hot-code entry holds TurboFan code for (empty for a full compile).
  std::optional<std::vector<uint8_t>> get(const std::string& key, std::vector<uint32_t>* optimized = nullptr) const;
  // The recorded optimized functions of the entry for `key` (verified as get() does).
  std::optional<std::vector<uint32_t>> optimized_of(const std::string& key) const;
  // Whether an entry for `key` exists (not verified: get() does that).
  bool has(const std::string& key) const;
  // Stores an entry, then evicts the least recently used entries over max_bytes.
  // `optimized`: recorded with the entry and covered by its HMAC (a hot-code entry).
  void put(const std::string& key, const std::string& payload, const std::vector<uint32_t>& optimized = {}) const;
  // Deletes the entry for `key` (a job crashed while running its code).
  void remove(const std::string& key) const;
  // Takes lock file `name` (one component, created 0600 beneath the folder's fd; a symlink,
  // a non-regular file or one another user owns is refused, nothing is followed) with a
  // non-blocking exclusive flock. An empty UniqueFd when it is taken elsewhere or refused
  // (*why says which). The lock lasts while any copy of the fd is open (a child it is passed to).
  UniqueFd try_lock(const std::string& name, std::string* why) const;

  // The default folder: $WASMJAIL_CACHE_DIR ("off" disables), else $XDG_CACHE_HOME/wasmjail,
  // else $HOME/.cache/wasmjail.
  static std::string default_dir();
  // The smallest entry module `serve` compiles in the background on a miss (RunOptions::
  // background_compile_min_bytes): 256 KiB, or 0 with WASMJAIL_BACKGROUND_COMPILE=off.
  static size_t background_compile_min();
  // Whether a cold module's TurboFan code may be compiled beside its job (the `tiered` tier's
  // way of filling the cache): yes unless WASMJAIL_BACKGROUND_COMPILE=off.
  static bool background_compile_enabled();
  // WASMJAIL_BACKGROUND_COMPILE=wait: a one-shot `run` or `exec` compiles a job's hot code in
  // its own process and waits for it before exiting (tests, a benchmark's cache-filling run);
  // by default (on) that compile is handed to a detached process (supervisor/detached_compile.h).
  static bool background_compile_waits();
  // The largest module `run` and `exec` compile beside their one job (8 MiB: a compile that
  // finishes within a typical job of such a module, with a bounded peak RSS).
  static constexpr size_t kOneShotBackgroundMax = 8u << 20;

  struct State;  // the opened folder and the key (shared by every CodeCache of a folder)

 private:
  std::string name_for(const std::string& key) const;
  void evict() const;
  std::shared_ptr<const State> state_;
  std::string error_;
  uint64_t max_bytes_;
};

}  // namespace wj
