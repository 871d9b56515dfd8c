// CodeCache: V8-serialized TurboFan code for wasm modules, on disk, owned by the supervisor.
//
// Entries are keyed by sha256(module bytes) + V8's version + the V8 flags in force. The
// child never writes here: it sends serialized code over its record pipe (only as its
// first frame, right after compiling and before any guest code ran), and the supervisor
// writes it atomically (temp file + rename). On read an entry is verified (magic, key,
// length, sha256 of the payload); anything off is deleted and costs a recompile. V8 checks
// its own header (version, flags, checksum) again when deserializing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wj {

class CodeCache {
 public:
  CodeCache(std::string dir, uint64_t max_bytes) : dir_(std::move(dir)), max_bytes_(max_bytes) {}
  bool enabled() const { return !dir_.empty(); }

  static std::string key_for(const std::vector<uint8_t>& module, const std::vector<std::string>& v8_flags);
  // `optimized` (if given) receives the entry's recorded optimized functions: the declared-
  // function indices a hot-code entry holds TurboFan code for (empty for a full compile).
  std::optional<std::vector<uint8_t>> get(const std::string& key, std::vector<uint32_t>* optimized = nullptr) const;
  // The recorded optimized functions of the entry for `key` (its header only, not verified).
  std::optional<std::vector<uint32_t>> optimized_of(const std::string& key) const;
  // Whether an entry for `key` exists (not verified: get() does that).
  bool has(const std::string& key) const;
  // Stores an entry, then evicts the least recently used entries over max_bytes.
  void put(const std::string& key, const std::string& payload, const std::vector<uint32_t>& optimized = {}) const;

  // The default folder: $WASMJAIL_CACHE_DIR ("off" disables), else $XDG_CACHE_HOME/wasmjail,
  // else $HOME/.cache/wasmjail.
  static std::string default_dir();
  // The smallest entry module `serve` compiles in the background on a miss (RunOptions::
  // background_compile_min_bytes): 256 KiB, or 0 with WASMJAIL_BACKGROUND_COMPILE=off.
  static size_t background_compile_min();
  // Whether a cold module's TurboFan code may be compiled beside its job (the `tiered` tier's
  // way of filling the cache): yes unless WASMJAIL_BACKGROUND_COMPILE=off.
  static bool background_compile_enabled();
  // The largest module `run` and `exec` compile beside their one job (8 MiB: a compile that
  // finishes within a typical job of such a module, with a bounded peak RSS).
  static constexpr size_t kOneShotBackgroundMax = 8u << 20;

 private:
  std::string path_for(const std::string& key) const;
  void evict() const;
  std::string dir_;
  uint64_t max_bytes_;
};

}  // namespace wj
