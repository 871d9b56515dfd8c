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
// The zygote never reads a job's own data (module, argv, env, paths): it reads only the
// policy's part of the setup (namespaces, seccomp, V8 flags; a WarmSpec) and hands the job's
// memfd to the job process unread, so no job process inherits another job's data through
// the zygote's heap. For the same reason a `serve` (Zygote::set_required) never clones a job
// from its own process, which holds every job's data and the API token: if the zygote cannot
// be forked at start or dies, a clean one is started by fork+exec of this binary
// (start_clean). One-shot commands (run, exec: one job per process) clone directly by
// default: for a single job, forking the zygote costs more than it saves.
//
// Warm pool (serve): the zygote also creates "warm" job processes ahead of demand (fill):
// cloned into the policy's namespaces, with their uid/gid maps, a new session, every fd but
// their job channel closed, and V8's isolate and context created, at a lower CPU priority.
// Each waits on its channel for exactly one job (send_job_to_warm), then applies what
// depends on the job (its fds, mount root, Landlock on exactly its trees, rlimits,
// capabilities, seccomp) before any of its code runs, and runs it. Never reused.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "sandbox/lockdown.h"
#include "supervisor/child.h"

namespace wj {

// The policy's part of a job setup: all a warm pooled process is prepared with, and all the
// zygote reads of any request. Its encoding is also the warm pool's key.
struct WarmSpec {
  sandbox::SandboxSpec sandbox;  // preopens and rlimits are not part of it
  std::vector<std::string> v8_flags;
  uint64_t memory_bytes = 0;  // the isolate's heap limit (0: none)
  pid_t supervisor_pid = 0;
  // Prepare at a lower CPU priority: set when the supervisor can restore it (CAP_SYS_NICE)
  // when it hands the process a job (WarmPool::take).
  bool lower_priority = false;
};
WarmSpec warm_spec_of(const ChildSetup& s);
std::string encode_warm_spec(const WarmSpec& w);
std::optional<std::string> decode_warm_spec(std::string_view data, WarmSpec* out);

// Sends one job to a warm pooled process over its channel (the setup in a memfd, its fds
// by SCM_RIGHTS). False (with *error) when it could not be sent (the process is gone).
bool send_job_to_warm(int channel, const ChildSetup& s, std::string* error);

class Zygote {
 public:
  // In main(), before anything else: a process started by start_clean() becomes the fork
  // server here (and never returns). Also marks this binary as able to be that helper.
  static void run_helper_if_requested();
  // Starts a fork server by fork+exec of this binary (safe at any time, from any thread):
  // it starts with nothing of this process's memory. False when it cannot (a binary without
  // run_helper_if_requested, such as a test program).
  static bool start_clean();
  // serve and the worker: job processes must never be cloned from this process.
  static void set_required(bool v);
  static bool required();
  // Creates a warm pooled process for `spec` (see above); `channel` is its end of the job
  // channel (passed on, not kept). Like spawn: pid > 0, or err/error, or nullopt when
  // nothing was sent.
  std::optional<sandbox::CloneResult> fill(const WarmSpec& spec, int channel);
  // The same without waiting: `done` runs from read_replies (or from a later spawn, which
  // may read the reply first), or with nullopt if the fork server stops first. False when
  // nothing was sent.
  using FillDone = std::function<void(std::optional<sandbox::CloneResult>)>;
  bool fill_async(const WarmSpec& spec, int channel, FillDone done);
  // Reads the replies that arrived, without blocking (the socket turned readable).
  void read_replies();
  int socket() const { return sock_; }
  // Called (with the socket) just before a fork server is stopped and its socket closed.
  static void set_stop_hook(std::function<void(int)> hook);

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
  static constexpr size_t kMaxPreopens = 247;  // folders one request carries

  // Set when a fork server was stopped after a request reached it: a job process it
  // created may be left over (it exits at once, unreaped). Supervisor::start reaps it.
  static bool strays_possible();
  static void set_strays_possible(bool v);

 private:
  Zygote(pid_t pid, int sock) : pid_(pid), sock_(sock) {}
  void stop();

  // Sends a request (the warm spec in a memfd, then `fds`) and reads its reply.
  std::optional<sandbox::CloneResult> request(uint32_t kind, const WarmSpec& spec, const std::vector<int>& fds,
                                              uint32_t preopens = 0, bool has_stdin = false);

  // Sends a request without waiting; its sequence number, or 0 when nothing was sent.
  uint32_t send_request(uint32_t kind, const WarmSpec& spec, const std::vector<int>& fds, uint32_t preopens = 0,
                        bool has_stdin = false);
  // Waits (until the ready byte, then up to 5 s) for the reply to `seq`, handing any
  // earlier fill replies to their callbacks.
  std::optional<sandbox::CloneResult> await_reply(uint32_t seq);
  bool wait_ready();
  // Decodes one reply message; false if it is malformed.
  // Takes the go-ahead fd of a pid reply out of `fds` into r->go_fd (closes them on failure).
  static bool parse_reply(const char* buf, ssize_t got, std::vector<int>* fds, uint32_t* seq,
                          sandbox::CloneResult* r);

  std::map<uint32_t, FillDone> pending_;  // async fills awaiting their reply
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
