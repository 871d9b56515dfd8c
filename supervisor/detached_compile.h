// Detached hot-code compiles: how a one-shot `run` or `exec` leaves the compile of its job's
// hot functions (Supervisor::compile_hot) to run after it has exited, the way `git gc --auto`
// detaches.
//
// At the end of the job the frontend's supervisor takes two locks beneath the cache folder's
// fd (CodeCache::try_lock): one per module key (a bucket of the key's hash: at most one such
// compile per module across processes) and one of kMaxDetachedCompiles slots (a loop of runs
// cannot fork-bomb the machine). If either is taken the compile is skipped: the cache is an
// optimisation and a later run tries again. Otherwise it starts a fresh copy of this binary
// (posix_spawn of /proc/self/exe: nothing of the frontend's memory), in a new session, with
// stdin/stdout/stderr on /dev/null, and passes it the request and the module as sealed memfds
// and the two locks, which it holds until it exits. That process lowers its CPU priority
// (nice 10) and runs exactly the compile a waiting `run` runs: Supervisor::compile_hot, whose
// compile-only child is locked down by the job's policy (its limits and cgroup), runs no
// guest code, and whose code the supervisor verifies and stores with the cache's HMAC
// (supervisor/code_cache.h). Only the environment's WASMJAIL_CGROUP_ROOT and test switches
// are passed on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "policies/policy.h"

namespace wj {

struct HotCompileRequest {
  std::string module_path;  // for messages
  std::string entry_point;
  std::string argv0;
  std::shared_ptr<const Policy> policy;
  std::vector<std::string> v8_flags;  // the job's (the `tiered` flags: the entry's key)
  std::string cache_dir;
  uint64_t cache_max_bytes = 0;
  uint64_t module_bytes_max = 0;
  std::string hot_key, full_key;  // see Supervisor::compile_hot
  std::vector<uint32_t> hot;      // declared-function indices, ascending
  // The file the job's module was read from (`run`), or empty: the detached process reads
  // the module from it (opened here, passed as an fd) instead of a copy in a memfd, which
  // costs the command ~12 ms per 30 MB. Whatever the bytes, they are hashed again there and
  // must match hot_key's sha256 (a file changed since is a skipped compile).
  std::string module_file;
};

// Detached compiles at once across every process of this user and cache folder.
constexpr int kMaxDetachedCompiles = 2;

// Starts the detached process for `req` (see above), with `module` in a sealed memfd unless
// req.module_file opens as a regular file. False with *why when it was not started
// (a lock is taken, no memfd, the spawn failed): nothing to clean up then.
bool detach_hot_compile(const HotCompileRequest& req, const std::vector<uint8_t>& module, std::string* why);

// In main(), before anything else: a process started by detach_hot_compile runs its compile
// here and exits (never returns); any other process returns at once.
void run_hot_compile_helper_if_requested();

}  // namespace wj
