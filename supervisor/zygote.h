// Zygote: the fork server. A single-threaded process forked from wasmjail's main() before
// anything starts a thread, with libnode loaded and V8 initialized (no isolate, no worker
// thread: v8host/platform.h). For each job the supervisor sends the child's setup (a
// memfd) and its fds (SCM_RIGHTS); the zygote creates the job process with
// clone(CLONE_PARENT | namespaces), so the job is the supervisor's own child (wait4,
// rusage and pidfd work as for a direct clone), and replies with the pid and the write end
// of the job's go-ahead socket: the supervisor puts the job in its cgroup, then lets it run.
//
// The job process runs exactly the same child_main and lock-down as a direct clone; what
// it skips is V8::Initialize (about 1 ms), building its seccomp filter (the zygote compiles
// each policy's filter once) and a copy of the supervisor's larger address space. V8's address-hint generator is reseeded in every child, and each child creates
// its own isolate, so no two jobs share a heap layout or hash seed.
//
// If the zygote cannot be started or dies, the supervisor clones jobs directly (same
// sandbox, slower start). One-shot commands (run, exec) clone directly by default: for a
// single job, forking the zygote costs more than it saves.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sandbox/lockdown.h"
#include "supervisor/child.h"

namespace wj {

class Zygote {
 public:
  // Forks the zygote. Call first thing in main(), while the process has one thread;
  // does nothing (and the supervisor clones directly) if it has more. Returns whether a
  // zygote is running. main() starts it for `serve` (WASMJAIL_ZYGOTE=on: also for run and
  // exec; =off: never).
  static bool start();
  // The running zygote, or null.
  static Zygote* get();

  // Creates the job process for `setup` (fds and all). Like clone_job_process: pid > 0 on
  // success, else err/error (also when the zygote failed after the request was sent: the
  // job fails rather than risk two processes on its pipes). nullopt when nothing was sent
  // (the zygote is gone, or the job has more preopens than one message carries): the caller
  // clones directly.
  std::optional<sandbox::CloneResult> spawn(const ChildSetup& setup);

  pid_t pid() const { return pid_; }
  static constexpr size_t kMaxPreopens = 249;  // folders one request carries

  // Set when a fork server was stopped after a request reached it: a job process it
  // created may be left over (it exits at once, unreaped). Supervisor::start reaps it.
  static bool strays_possible();
  static void set_strays_possible(bool v);

 private:
  Zygote(pid_t pid, int sock) : pid_(pid), sock_(sock) {}
  void stop();

  pid_t pid_;
  int sock_;
  bool ready_ = false;  // the zygote's "V8 initialized" byte has been read
  uint32_t seq_ = 0;    // request number, echoed in the reply
};

// The setup's encoding (exposed for tests): everything child_main needs but the fds.
std::string encode_child_setup(const ChildSetup& s);
// Owns what a decoded ChildSetup points to.
struct DecodedSetup {
  Job job;
  std::vector<uint8_t> module;
  std::vector<std::string> v8_flags;
  std::vector<uint8_t> cached_code;
  bool has_cached_code = false;
  std::vector<uint32_t> hot_functions;
  sandbox::SandboxSpec sandbox;
  ChildSetup setup{};  // fds left at -1; pointers into the members above
};
// Fails with a message on malformed input (the zygote then refuses the request).
std::optional<std::string> decode_child_setup(std::string_view data, DecodedSetup* out);

}  // namespace wj
