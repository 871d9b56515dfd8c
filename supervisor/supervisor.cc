#include "supervisor/supervisor.h"

#include <fcntl.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "sandbox/lockdown.h"
#include "supervisor/child.h"
#include "supervisor/code_cache.h"
#include "supervisor/detached_compile.h"
#include "supervisor/warm_pool.h"
#include "v8host/hot_code.h"
#include "supervisor/zygote.h"
#include "supervisor/policy_sandbox.h"
#include "policies/config_util.h"
#include "storage/storage.h"
#include "supervisor/wire.h"

namespace wj {

// What a job process needs besides its module's bytes before V8 can report running out of
// memory (see start_with).
constexpr uint64_t kV8StartBytes = 24ull << 20;
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

std::string strerr(int e) { return std::strerror(e); }

std::string fmt_ms(double ms) {
  char buf[64];
  if (ms >= 1000 && static_cast<int64_t>(ms) % 1000 == 0) std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(ms / 1000));
  else std::snprintf(buf, sizeof buf, "%gms", ms);
  return buf;
}

std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

bool has_flag(const std::vector<std::string>& flags, const char* f) {
  return std::find(flags.begin(), flags.end(), f) != flags.end();
}

// The `turbofan` tier's flags for the same policy: what the code cache holds (an eager
// compile of every function). Flags that are already the turbofan tier's stay as they are.
std::vector<std::string> turbofan_flags(const std::vector<std::string>& flags) {
  if (!has_flag(flags, "--liftoff")) return flags;
  std::vector<std::string> out;
  for (const std::string& f : flags) {
    if (f == "--liftoff") out.push_back("--no-liftoff");
    else if (f != "--wasm-dynamic-tiering" && f != "--wasm-lazy-compilation") out.push_back(f);
  }
  return out;
}

// The job spec's stdin as a sealed memfd: the guest reads it as a file (fd_read, poll ready,
// its size in fd_filestat_get) and can change nothing in it.
std::optional<std::string> stdin_memfd(const std::string& data, int* fd) {
  int m = memfd_create("wasmjail-stdin", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (m < 0) return "memfd_create: " + strerr(errno);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(m, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;
      close(m);
      return "writing stdin to a memfd: " + strerr(e);
    }
    off += static_cast<size_t>(n);
  }
  if (lseek(m, 0, SEEK_SET) != 0 ||
      fcntl(m, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0) {
    int e = errno;
    close(m);
    return "sealing the stdin memfd: " + strerr(e);
  }
  *fd = m;
  return std::nullopt;
}

}  // namespace

// One live job: its child, three pipes, and a pidfd, all on the loop.
struct Running {
  uv_loop_t* loop;
  Job job;
  RunOptions opts;
  std::function<void(Result)> done;
  Result result;
  Clock::time_point t_start;
  pid_t pid = -1;
  int pidfd = -1;
  bool reaped = false;
  int wait_status = 0;
  rusage ru{};

  struct PipeReader {
    Running* owner;
    uv_pipe_t handle;
    bool open = false;
    int which;  // 1 stdout, 2 stderr, 3 record
    // One buffer per pipe for the job's whole life (no allocation per chunk); large, so that
    // a job writing a lot is drained in few reads (see the pipes' size in start()).
    char buf[256 * 1024];
    int splice_out = -1;  // RunOptions::splice_to: relayed with splice(2), watched by `poll`
    bool splice_failed = false;
    uv_poll_t poll;
  } pipes[3];
  uv_poll_t pid_poll;
  bool pid_poll_open = false;
  Limits limits;  // effective: what the job asked for within its policy
  uv_timer_t wall_timer;
  bool wall_timer_open = false;
  bool timed_out = false;
  std::optional<std::string> output_over;  // set when a stream passed its cap and truncation is off
  int open_handles = 0;

  wire::FrameReader frames;
  std::unique_ptr<CodeCache> cache;  // set when this job may read and fill the cache
  std::string cache_key;
  std::vector<uint8_t> cached_code;
  bool compiling_in_background = false;  // cold, large module: ran tiered; a sibling compiles
  std::shared_ptr<JobControl> sibling;   // that compile, when this job started it
  std::vector<uint32_t> cache_optimized;  // recorded with the code this job stores (hot-code compile)
  uint32_t cached_optimized = 0;          // what the code this job starts on has optimized
  std::string cached_from;                // the key of the entry cached_code came from
  // Hot code (a tiered job): the functions V8 optimized, reported by the child, validated
  // against the module's declared function count, handed to on_hot as each report arrives.
  bool report_hot = false;
  uint32_t declared_functions = 0;
  std::vector<uint32_t> hot_set;
  bool detach_all = false;  // one-shot, small module: after the job, all of it on TurboFan (detach_hot)
  std::vector<uint32_t> hot_have;  // what the hot-code entry this job started on has optimized
  std::shared_ptr<const std::vector<uint8_t>> hot_module;
  std::function<void(std::vector<uint32_t>, std::shared_ptr<const std::vector<uint8_t>>)> on_hot;
  std::optional<RunOutcome> outcome;
  std::optional<wire::ViolationRecord> violation;
  std::optional<std::string> protocol_error;
  std::optional<std::string> setup_error;  // the sandbox could not be completed
  size_t record_bytes = 0;
  bool sandbox_reported = false;
  JobCgroupPlan cgroup;               // the job's cgroup (policy_sandbox.h), removed once reaped
  sandbox::CgroupUsage cgroup_usage;  // read from it once the child was reaped
  bool cgroup_applied = false;        // the job ran in its cgroup (removed by now)

  // The child's seccomp listener: dangerous syscalls wait here until we kill the child.
  int listener = -1;
  uv_poll_t listener_poll;
  bool listener_open = false;
  bool handshake_done = false;
  bool finished = false;
  bool answered = false;  // answered at the record (answer_at_record); reaped later

  void fail_now(Status st, std::string msg) {
    result.status = st;
    result.error = std::move(msg);
    finish_result();
  }

  std::shared_ptr<JobControl> control;
  bool cancelled = false;
  Supervisor* sup = nullptr;
  RunOptions retry_opts;  // as the caller gave them: for a retry without the cache
  std::vector<uint8_t> retry_module;  // the module, kept only while cached code runs

  // A one-shot frontend's job ends: so does the compile it started (see RunOptions).
  void end_sibling() {
    if (sibling && opts.background_ends_with_job) sibling->cancel();
    sibling.reset();
  }

  void finish_result() {
    end_sibling();
    result.timing.total = ms_between(t_start, Clock::now());
    control->running_ = nullptr;
    auto cb = std::move(done);
    Result r = std::move(result);
    delete this;
    cb(std::move(r));
  }

  void kill_child() {
    if (pidfd >= 0 && !reaped) syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
  }

  // A spliced stream turned readable: move what is there to its destination, counting it.
  void on_splice(PipeReader& p) {
    uv_os_fd_t fd = -1;
    uv_fileno(reinterpret_cast<uv_handle_t*>(&p.poll), &fd);
    CapturedStream& cs = p.which == 1 ? result.out : result.err;
    const size_t cap = p.which == 1 ? opts.stdout_cap : opts.stderr_cap;
    for (int rounds = 0; rounds < 64; ++rounds) {
      ssize_t n;
      if (!p.splice_failed) {
        n = splice(fd, nullptr, p.splice_out, nullptr, 1 << 20, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
          p.splice_failed = true;  // the destination cannot take a splice (or is gone): copy instead
          continue;
        }
      } else {
        n = read(fd, p.buf, sizeof p.buf);
        if (n > 0) (void)!write(p.splice_out, p.buf, static_cast<size_t>(n));
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return;  // EAGAIN: all moved for now
      if (n == 0) {       // EOF
        uv_poll_stop(&p.poll);
        p.open = false;
        p.poll.data = this;
        uv_close(reinterpret_cast<uv_handle_t*>(&p.poll), [](uv_handle_t* h) {
          static_cast<Running*>(h->data)->handle_closed();
        });
        close(fd);
        return;
      }
      const uint64_t before = cs.total_bytes;
      cs.total_bytes += static_cast<uint64_t>(n);
      cs.truncated = true;  // relayed, not kept
      if (cs.total_bytes > cap && before <= cap && opts.policy && !opts.policy->output.truncate.value_or(true) &&
          !output_over) {
        output_over = std::string(p.which == 1 ? "stdout" : "stderr") + " passed limits." +
                      (p.which == 1 ? "stdout_bytes" : "stderr_bytes") + " (" + std::to_string(cap) +
                      " bytes) and the policy does not allow truncation (output.truncate: false)";
        kill_child();
      }
    }
  }

  void on_data(int which, const char* data, size_t n) {
    if (which == 3) {
      record_bytes += n;
      if (!protocol_error) {
        if (record_bytes > 2 * wire::kMaxPayload + (cache ? wire::kMaxCompiledCode : 0) +
                               (report_hot ? wire::kMaxHotFrames * (4 + 4ull * hot::kMaxHotFunctions) : 0))
          protocol_error = "child sent too many record bytes";
        else protocol_error = frames.feed(data, n);
      }
      if (!protocol_error) {
        for (auto& f : frames.frames()) {
          if (outcome) {
            protocol_error = "child sent a record after its final outcome";
            break;
          }
          if (f.type == wire::FrameType::kCompiledCode) {
            // The reader let it through only in its turn (once, before any guest code ran,
            // and only when this job has a cache: see allow_code_frame below).
            if (!f.payload.empty()) cache->put(cache_key, f.payload, cache_optimized);
          } else if (f.type == wire::FrameType::kHotFunctions) {
            auto hot = report_hot ? wire::decode_hot_functions(f.payload, declared_functions) : std::nullopt;
            if (!hot) {
              protocol_error = report_hot ? "malformed hot-function record" : "hot-function record not asked for";
              break;
            }
            // Acted on at once (a report during a long job, or the last one at its end),
            // unless the compile is detached or takes every function: then once, after the
            // job (detach_hot).
            if (on_hot && hot_module && !opts.detach_hot_compile && !detach_all && *hot != hot_set)
              on_hot(*hot, hot_module);
            hot_set = std::move(*hot);
          } else if (f.type == wire::FrameType::kViolation) {
            violation = wire::decode_violation(f.payload);
            if (!violation) protocol_error = "malformed violation record";
          } else if (f.type == wire::FrameType::kSandbox) {
            on_sandbox_record(f.payload);
            if (protocol_error || setup_error) break;
          } else {
            std::string err;
            outcome = wire::decode_outcome(f.payload, &err);
            if (!outcome) protocol_error = err;
          }
        }
        frames.frames().clear();
      }
      if (protocol_error || setup_error) kill_child();  // a child that lies is not trusted with more time
      else if (outcome) maybe_answer_at_record();
      return;
    }
    CapturedStream& cs = which == 1 ? result.out : result.err;
    const size_t cap = which == 1 ? opts.stdout_cap : opts.stderr_cap;  // what the policy allows
    const size_t keep_cap = std::min(cap, opts.keep_max);             // what this frontend keeps
    const uint64_t before = cs.total_bytes;
    cs.total_bytes += n;
    size_t keep = cs.data.size() < keep_cap ? std::min(n, keep_cap - cs.data.size()) : 0;
    cs.data.append(data, keep);
    if (keep < n) cs.truncated = true;
    if (cs.total_bytes > cap && before <= cap) {
      // The policy forbids cutting output: the job fails at the cap instead.
      if (opts.policy && !opts.policy->output.truncate.value_or(true) && !output_over) {
        output_over = std::string(which == 1 ? "stdout" : "stderr") + " passed limits." +
                      (which == 1 ? "stdout_bytes" : "stderr_bytes") + " (" + std::to_string(cap) +
                      " bytes) and the policy does not allow truncation (output.truncate: false)";
        kill_child();
      }
    }
    if (opts.on_output) opts.on_output(which == 1 ? Stream::kStdout : Stream::kStderr, data, n);
  }

  void on_sandbox_record(const std::string& payload) {
    // The child reports the mechanisms it applies; the cgroup is ours (a bit for it is a lie).
    constexpr auto kChildMechanisms = static_cast<unsigned>(sandbox::Mechanism::kCgroup);
    auto rec = wire::decode_sandbox(payload, kChildMechanisms);
    if (!rec || sandbox_reported) {
      protocol_error = sandbox_reported ? "child sent a second sandbox record" : "malformed sandbox record";
      return;
    }
    sandbox_reported = true;
    SandboxInfo info;
    for (unsigned i = 0; i < kChildMechanisms; ++i) {
      const char* name = sandbox::mechanism_name(static_cast<sandbox::Mechanism>(i));
      if (rec->applied & (1u << i)) info.applied.push_back(name);
      if (rec->skipped & (1u << i)) info.skipped.push_back(name);
    }
    if (cgroup.cgroup || cgroup_applied) info.applied.push_back("cgroup");
    if (cgroup.skipped) info.skipped.push_back("cgroup");
    info.cgroup_version = cgroup.version;
    const uint32_t fs_bits = sandbox::bit(sandbox::Mechanism::kMountNs) | sandbox::bit(sandbox::Mechanism::kLandlock);
    if (opts.sandbox.filesystem == sandbox::Mode::kBestEffort && !(rec->applied & fs_bits))
      info.skipped.push_back("filesystem");  // host paths were reachable (only best effort was asked)
    result.sandbox = std::move(info);
    if (rec->listener_fd < 0) return;
    if (!(rec->applied & sandbox::bit(sandbox::Mechanism::kSeccomp))) {
      protocol_error = "sandbox record names a seccomp listener without seccomp";
      return;
    }
    int fd = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, rec->listener_fd, 0));
    if (fd < 0) {
      // ESRCH: the child is already gone (killed from outside, say); its death is classified
      // from its wait status. Any other failure means the sandbox cannot be completed.
      if (errno != ESRCH) setup_error = "cannot take the child's seccomp listener: " + strerr(errno);
      else kill_child();
      return;
    }
    // It must really be a seccomp listener, not whatever the child put at that number.
    char link[64] = {};
    std::string self = "/proc/self/fd/" + std::to_string(fd);
    ssize_t n = readlink(self.c_str(), link, sizeof link - 1);
    if (n <= 0 || std::string(link, static_cast<size_t>(n)) != "anon_inode:seccomp notify") {
      close(fd);
      protocol_error = "the child's seccomp listener fd is not a seccomp listener";
      return;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    listener = fd;
    uv_poll_init(loop, &listener_poll, listener);
    listener_poll.data = this;
    listener_open = true;
    open_handles++;
    uv_poll_start(&listener_poll, UV_READABLE | UV_DISCONNECT, [](uv_poll_t* h, int status, int events) {
      static_cast<Running*>(h->data)->on_notification(status, events);
    });
  }

  // A syscall from the dangerous set is held by the kernel: the first one may be the
  // child's readiness handshake; any other means the child is killed, the call never runs.
  void on_notification(int status, int events) {
    // Hung up: the filter has no task left (the child is gone).
    if (status < 0 || (events & UV_DISCONNECT) || !(events & UV_READABLE)) {
      close_listener();
      return;
    }
    seccomp_notif* req = nullptr;
    seccomp_notif_resp* resp = nullptr;
    if (seccomp_notify_alloc(&req, &resp) != 0) return;
    if (seccomp_notify_receive(listener, req) == 0) {
      const bool handshake = !handshake_done && !violation &&
                             req->data.nr == seccomp_syscall_resolve_name("personality") &&
                             req->data.args[0] == sandbox::kHandshakePersona;
      if (handshake) {
        handshake_done = true;
        resp->id = req->id;
        resp->val = 0;
        resp->error = 0;
        resp->flags = 0;
        seccomp_notify_respond(listener, resp);
      } else if (!violation) {
        violation = wire::ViolationRecord{req->data.nr, req->data.arch};
        kill_child();
      }
    }
    // A failed receive is a notification that vanished (its thread was interrupted).
    seccomp_notify_free(req, resp);
  }

  void close_listener() {
    if (!listener_open) return;
    listener_open = false;
    uv_poll_stop(&listener_poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_poll), [](uv_handle_t* h) {
      auto* run = static_cast<Running*>(h->data);
      close(run->listener);
      run->listener = -1;
      run->handle_closed();
    });
  }

  void handle_closed() {
    if (--open_handles == 0 && reaped) classify();
  }

  // Once the child is reaped, nothing else may keep the job alive.
  void stop_timer() {
    if (!wall_timer_open) return;
    wall_timer_open = false;
    uv_timer_stop(&wall_timer);
    uv_close(reinterpret_cast<uv_handle_t*>(&wall_timer), close_cb_thunk);
  }
  static void close_cb_thunk(uv_handle_t* h);
  friend class JobControl;

  void set_timeout() {
    result.status = Status::kTimeout;
    result.error = "wall-time limit of " + fmt_ms(limits.wall_time_ms.value_or(0)) + " exceeded";
  }
  void set_cpu_limit() {
    result.status = Status::kCpuLimit;
    result.error = "CPU-time limit of " + fmt_ms(limits.cpu_time_ms.value_or(0)) + " exceeded";
  }

  Usage reaped_usage() const {
    Usage u;
    u.cpu_ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
    u.peak_rss_bytes = static_cast<uint64_t>(ru.ru_maxrss) * 1024;
    if (outcome) u.peak_wasm_memory_bytes = outcome->peak_wasm_memory_bytes;
    u.cgroup_peak_memory_bytes = cgroup_usage.peak_memory_bytes;
    if (cgroup_usage.cpu_ns) u.cgroup_cpu_ms = static_cast<double>(*cgroup_usage.cpu_ns) / 1e6;
    return u;
  }

  // The record and every byte of output are in: answer now when nothing can still change
  // the verdict but the process exit (answer_at_record). The process is reaped later.
  void maybe_answer_at_record() {
    if (!opts.answer_at_record || answered || !outcome || protocol_error || setup_error || violation ||
        cancelled || timed_out)
      return;
    if (outcome->kind != OutcomeKind::kSetupError && !sandbox_reported) return;
    // The child wrote all its output before this record, so it is in the pipes now: read it.
    for (int i = 0; i < 2; ++i) {
      PipeReader& p = pipes[i];
      if (!p.open || p.splice_out >= 0) continue;
      uv_os_fd_t fd;
      if (uv_fileno(reinterpret_cast<uv_handle_t*>(&p.handle), &fd) != 0) return;
      for (;;) {
        ssize_t n = read(fd, p.buf, sizeof p.buf);
        if (n > 0) {
          on_data(p.which, p.buf, static_cast<size_t>(n));
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        break;  // EAGAIN: drained; 0: EOF (libuv sees it too)
      }
    }
    if (output_over) return;  // the job fails at its cap: wait for the end
    answered = true;
    (void)classify_into_result(0, true);  // never a retry: that needs a crash
    result.usage_pending = true;
    end_sibling();
    control->running_ = nullptr;
    auto cb = std::move(done);
    done = nullptr;
    Result r = std::move(result);
    cb(std::move(r));  // this Running stays until the reap (the caller's slot too)
  }

  // The job is over: its last hot set goes to a detached compile (RunOptions::
  // detach_hot_compile) unless the entry it started on has all of it already.
  void detach_hot() {
    if (detach_all && hot_module && declared_functions > 0) {
      // A module small enough to compile whole (background_compile_max_bytes): all of it.
      hot_set.resize(declared_functions);
      for (uint32_t i = 0; i < declared_functions; ++i) hot_set[i] = i;
    }
    if (!on_hot || !hot_module || hot_set.empty()) return;
    if (!opts.detach_hot_compile && !detach_all) return;  // waiting: reports were acted on at once
    if (std::includes(hot_have.begin(), hot_have.end(), hot_set.begin(), hot_set.end())) return;
    // Nor when nothing new fits in the entry's budget (the detached compile would find that
    // too, after this command spent a copy of the module and a spawn on it).
    if (auto sizes = hot::function_body_sizes(hot_module->data(), hot_module->size()))
      if (hot::merge_within_budget(hot_have, hot_set, *sizes, hot::kHotTotalBudget).size() == hot_have.size()) return;
    on_hot(std::move(hot_set), std::move(hot_module));
  }

  void classify() {
    if (finished) return;
    finished = true;
    if (pidfd >= 0) close(pidfd);
    pidfd = -1;
    if (answered) {
      Usage u = reaped_usage();
      auto cb = std::move(opts.on_reaped);
      delete this;
      if (cb) cb(u);
      return;
    }
    if (classify_into_result(wait_status, false)) return;  // started again
    end_sibling();
    detach_hot();
    control->running_ = nullptr;
    auto cb = std::move(done);
    Result r = std::move(result);
    delete this;
    cb(std::move(r));
  }

  // The verdict from what arrived and how the process ended (`early`: it has not ended yet;
  // taken as a clean exit, with no rusage).
  // Returns true when the job was started again instead (a crash in cached code): this
  // Running is gone then.
  bool classify_into_result(int status_word, bool early) {
    if (!early) {
      Usage u = reaped_usage();
      result.usage.cpu_ms = u.cpu_ms;
      result.usage.peak_rss_bytes = u.peak_rss_bytes;
      result.usage.cgroup_peak_memory_bytes = u.cgroup_peak_memory_bytes;
      result.usage.cgroup_cpu_ms = u.cgroup_cpu_ms;
    }
    if (outcome) {
      result.timing.compile = outcome->compile_ms;
      result.timing.run = outcome->run_ms;
      result.timing.instantiate = outcome->instantiate_ms;
      result.usage.peak_wasm_memory_bytes = outcome->peak_wasm_memory_bytes;
      result.code_cache = outcome->code_cache;
    }
    if (compiling_in_background) result.code_cache = "compiling";
    if (result.code_cache == "hit") result.code_cache_optimized = cached_optimized;
    if (opts.cache_retry) result.code_cache = "evicted";  // the cached code crashed; this run compiled afresh
    const bool signaled = WIFSIGNALED(status_word);
    const int sig = signaled ? WTERMSIG(status_word) : 0;
    if (violation || (signaled && sig == SIGSYS)) {
      result.status = Status::kViolation;
      ViolationInfo v;
      if (violation) {
        v.number = violation->nr;
        char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, violation->nr);
        v.syscall = name ? name : "unknown";
        free(name);
      } else {
        v.syscall = "unknown";
      }
      result.error = "the job made a forbidden system call: " + v.syscall;
      result.violation = v;
    } else if (output_over) {
      result.status = Status::kViolation;
      result.error = *output_over;
    } else if (cancelled && !(outcome && outcome->kind != OutcomeKind::kTimeout && outcome->kind != OutcomeKind::kCpuLimit)) {
      result.status = Status::kCancelled;
      result.error = "cancelled by the caller";
    } else if (timed_out && !(outcome && outcome->kind != OutcomeKind::kTimeout)) {
      set_timeout();
    } else if (cgroup_usage.oom_killed && (signaled || !outcome)) {
      // The kernel's OOM killer, confined to the job's cgroup: memory no in-process limit saw.
      result.status = Status::kMemoryLimit;
      result.error =
          "the job's cgroup reached its memory limit" +
          (cgroup.memory_bytes ? " (" + std::to_string(*cgroup.memory_bytes >> 20) + "MiB)" : std::string()) +
          " and the kernel's OOM killer ended it";
    } else if (cgroup_usage.processes_hit &&
               (signaled || !outcome || outcome->kind == OutcomeKind::kInternalError ||
                outcome->kind == OutcomeKind::kMemoryLimit)) {  // a thread not started reads as memory
      // V8 could not start a thread: the policy's processes limit is too small for the job.
      result.status = Status::kSetupError;
      result.error = "the job reached its processes limit (limits.processes " +
                     std::to_string(limits.processes.value_or(0)) +
                     "): the kernel refused it a new thread (V8 needs up to 10: a worker per CPU, at most 8, "
                     "the main thread and a watchdog)";
    } else if (signaled && limits.cpu_time_ms && result.usage.cpu_ms >= *limits.cpu_time_ms &&
               (sig == SIGKILL || sig == SIGXCPU) && !outcome) {
      set_cpu_limit();  // RLIMIT_CPU's hard limit
    } else if (setup_error) {
      result.status = Status::kSetupError;
      result.error = *setup_error;
    } else if (protocol_error) {
      result.status = Status::kCrashed;
      result.error = "child sent a malformed record and was killed: " + *protocol_error;
    } else if (outcome && outcome->kind != OutcomeKind::kSetupError && !sandbox_reported) {
      // Every outcome but a setup error comes after the lock-down's sandbox record.
      result.status = Status::kCrashed;
      result.error = "child reported a result without reporting its sandbox";
    } else if (signaled) {
      result.status = Status::kCrashed;
      result.error = "child killed by " + signal_name(sig) + (outcome ? " after reporting" : " before reporting a result");
    } else if (!outcome) {
      result.status = Status::kCrashed;
      result.error = "child exited with status " + std::to_string(WEXITSTATUS(status_word)) +
                     " without a result record";
    } else {
      const RunOutcome& o = *outcome;
      switch (o.kind) {
        case OutcomeKind::kReturned: result.status = Status::kOk; result.exit_code = 0; break;
        case OutcomeKind::kExited:
          // WASI's proc_exit takes a u32: reported as such, never as a negative number.
          result.status = Status::kOk;
          result.exit_code = static_cast<uint32_t>(o.exit_code);
          break;
        case OutcomeKind::kTrap:
          result.status = Status::kTrap;
          result.trap = TrapInfo{o.message, o.backtrace};
          result.error = "wasm trap: " + o.message;
          break;
        case OutcomeKind::kInvalidModule:
          result.status = Status::kInvalidJob;
          result.error = job.module_path + ": invalid module: " + o.message;
          break;
        case OutcomeKind::kLinkError:
          result.status = Status::kInvalidJob;
          result.error = job.module_path + ": " + o.message;
          break;
        case OutcomeKind::kEntryError:
          result.status = Status::kInvalidJob;
          result.error = job.module_path + ": " + o.message;
          break;
        case OutcomeKind::kSetupError: result.status = Status::kSetupError; result.error = o.message; break;
        case OutcomeKind::kMemoryLimit: result.status = Status::kMemoryLimit; result.error = o.message; break;
        case OutcomeKind::kTimeout: set_timeout(); break;
        case OutcomeKind::kCpuLimit: set_cpu_limit(); break;
        case OutcomeKind::kInternalError: result.status = Status::kInternalError; result.error = o.message; break;
      }
    }
    // Code from the cache that crashes the job is not trusted again: its entry goes, and
    // the job runs once more, compiled afresh (output it already streamed stays streamed).
    if (result.status == Status::kCrashed && signaled && sig != SIGKILL && !cached_code.empty() &&
        !cached_from.empty() && !cancelled && !opts.cache_retry) {
      CodeCache(opts.cache_dir, opts.cache_max_bytes).remove(cached_from);
      RunOptions again = std::move(retry_opts);
      again.cache_retry = true;
      Supervisor* s = sup;
      Job j = std::move(job);
      if (retry_module.empty() && hot_module) retry_module = *hot_module;
      j.module_bytes = std::move(retry_module);
      auto cb = std::move(done);
      auto ctl = control;
      ctl->running_ = nullptr;
      delete this;
      s->start_with(std::move(j), std::move(again), std::move(cb), ctl);
      return true;
    }
    result.timing.total = ms_between(t_start, Clock::now());
    double startup = result.timing.total - result.timing.compile - result.timing.instantiate - result.timing.run;
    result.timing.startup = startup > 0 ? startup : 0;
    return false;
  }
};

namespace {

void close_cb(uv_handle_t* h) {
  auto* r = static_cast<Running*>(h->data);
  r->handle_closed();
}

}  // namespace

void Running::close_cb_thunk(uv_handle_t* h) { close_cb(h); }

void JobControl::cancel() {
  if (!running_ || running_->reaped) return;
  running_->cancelled = true;
  running_->kill_child();
}

namespace {

// Job processes this process is waiting for (all supervisors), so that a sweep can tell an
// untracked child (a fork server's stray, see Zygote::spawn) from a job's.
std::set<pid_t> g_job_pids;

// Reaps exited children that are neither jobs nor the fork server: what a failed fork server
// left behind. Returns whether an untracked child is still running.
bool reap_strays() {
  bool running = false;
  std::error_code ec;
  const pid_t zygote = Zygote::get() ? Zygote::get()->pid() : -1;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream f(task.path() / "children");
    pid_t c;
    while (f >> c) {
      if (c == zygote || g_job_pids.count(c) || WarmPool::owns(c)) continue;
      if (waitpid(c, nullptr, WNOHANG) != c) running = true;
    }
  }
  return running;
}

}  // namespace

Supervisor::Supervisor(uv_loop_t* loop) : loop_(loop), pool_(std::make_unique<WarmPool>(loop)) {
  const char* p = getenv("WASMJAIL_POOL");
  warm_for_one_shot_ = p && std::strcmp(p, "on") == 0;
}
Supervisor::~Supervisor() = default;

void Supervisor::set_warm_pool_size(size_t n) { pool_->set_size(n); }
void Supervisor::shutdown_warm_pool() { pool_->shutdown(); }
size_t Supervisor::warm_idle() const { return pool_->idle(); }

void Supervisor::cancel_background() {
  std::vector<std::shared_ptr<JobControl>> controls;
  for (auto& [key, c] : *compiling_)
    if (c) controls.push_back(c);
  for (auto& c : controls) c->cancel();
}

std::shared_ptr<JobControl> Supervisor::compile_in_background(const Job& job, const std::vector<uint8_t>& module,
                                                              const RunOptions& opts, const std::string& key) {
  Job cj;
  cj.module_path = job.module_path;
  cj.module_bytes = module;
  cj.entry_point = job.entry_point;
  cj.argv = {job.argv.empty() ? job.module_path : job.argv[0]};
  RunOptions co;
  co.v8_flags = turbofan_flags(opts.v8_flags);
  co.policy = opts.policy;
  // The policy's limits, not the job's own (smaller) ones: one client must not be able to
  // make the compile that every later job of the module relies on fail.
  co.sandbox = opts.sandbox;
  co.cache_dir = opts.cache_dir;
  co.cache_max_bytes = opts.cache_max_bytes;
  co.module_bytes_max = opts.module_bytes_max;
  co.compile_only = true;
  co.no_direct_clone = opts.no_direct_clone;
  std::weak_ptr<Compiling> inflight = compiling_;
  std::weak_ptr<std::set<std::string>> failed = compile_failed_;
  auto stored = std::make_shared<CodeCache>(opts.cache_dir, opts.cache_max_bytes);
  (*compiling_)[key] = nullptr;  // in flight from here (start may finish synchronously)
  auto compile = start(std::move(cj), std::move(co), [inflight, failed, key, stored](Result res) {
    if (auto m = inflight.lock()) m->erase(key);
    // A compile that failed (over the policy's time or memory, say) or whose code the cache
    // did not keep (too large, folder not writable) is not started again for this module:
    // its later jobs compile eagerly and offer the code themselves.
    bool ok = res.status == Status::kOk && stored->has(key);
    if (auto f = failed.lock(); f && !ok && res.status != Status::kCancelled) {
      if (f->size() >= 1024) f->clear();
      f->insert(key);
    }
  });
  if (auto it = compiling_->find(key); it != compiling_->end()) it->second = compile;
  return compile;
}

void Supervisor::compile_hot(const Job& job, std::shared_ptr<const std::vector<uint8_t>> module,
                             const RunOptions& opts, const std::string& hot_key, const std::string& full_key,
                             std::vector<uint32_t> hot) {
  CodeCache cache(opts.cache_dir, opts.cache_max_bytes);
  if (opts.detach_hot_compile) {
    // The rest (merging with the entry, the compile) happens in the detached process; a
    // compile that cannot start there is skipped (the next run tries again).
    if (!cache.enabled() || cache.has(full_key)) return;
    HotCompileRequest req;
    req.module_path = job.module_path;
    req.entry_point = job.entry_point;
    req.argv0 = job.argv.empty() ? job.module_path : job.argv[0];
    req.policy = opts.policy;
    req.v8_flags = opts.v8_flags;
    req.cache_dir = opts.cache_dir;
    req.cache_max_bytes = opts.cache_max_bytes;
    req.module_bytes_max = opts.module_bytes_max;
    req.hot_key = hot_key;
    req.full_key = full_key;
    req.hot = std::move(hot);
    req.module_file = opts.detach_module_file;
    std::string why;
    if (req.policy) detach_hot_compile(req, *module, &why);
    return;
  }
  if (cache.has(full_key) || compiling_->count(hot_key) ||
      compile_failed_->count(hot_key) || compiling_->size() >= kMaxBackgroundCompiles)
    return;
  // The better entry: the one with more optimized functions. A report adds to what the entry
  // has (V8's optimized set only grows within a run; runs differ), never replaces it, and
  // what the child compiles stays within hot::kHotTotalBudget bytes of function bodies
  // (a job's report is not trusted to be small).
  std::vector<uint32_t> have = cache.optimized_of(hot_key).value_or(std::vector<uint32_t>{});
  auto sizes = hot::function_body_sizes(module->data(), module->size());
  if (!sizes) return;
  hot = hot::merge_within_budget(have, hot, *sizes, hot::kHotTotalBudget);
  if (hot.size() == have.size()) return;  // nothing new (or nothing new fits)
  if (hot.size() > hot::kMaxHotFunctions) hot.resize(hot::kMaxHotFunctions);
  Job cj;
  cj.module_path = job.module_path;
  // Held by nobody else (the detached process): moved, so that the compile-only child
  // inherits one copy of the module, not two.
  if (module.use_count() == 1) cj.module_bytes = std::move(*std::const_pointer_cast<std::vector<uint8_t>>(module));
  else cj.module_bytes = *module;
  module.reset();
  cj.entry_point = job.entry_point;
  cj.argv = {job.argv.empty() ? job.module_path : job.argv[0]};
  RunOptions co = opts;
  co.compile_only = true;
  co.hot_functions = std::move(hot);
  std::weak_ptr<Compiling> inflight = compiling_;
  std::weak_ptr<std::set<std::string>> failed = compile_failed_;
  (*compiling_)[hot_key] = nullptr;
  auto c = start(std::move(cj), std::move(co), [inflight, failed, hot_key](Result res) {
    if (auto m = inflight.lock()) m->erase(hot_key);
    if (auto f = failed.lock(); f && res.status != Status::kOk && res.status != Status::kCancelled) {
      if (f->size() >= 1024) f->clear();
      f->insert(hot_key);
    }
  });
  if (auto it = compiling_->find(hot_key); it != compiling_->end()) it->second = c;
}

std::shared_ptr<JobControl> Supervisor::start(Job job, RunOptions opts, std::function<void(Result)> done) {
  auto control = std::make_shared<JobControl>();
  start_with(std::move(job), std::move(opts), std::move(done), control);
  return control;
}

void Supervisor::start_with(Job job_in, RunOptions opts, std::function<void(Result)> done,
                            const std::shared_ptr<JobControl>& control) {
  // A fork server that failed may have left a job process that exited without running
  // anything (it waits for a go-ahead that never came): reap it, on this and later starts
  // until none is left.
  if (Zygote::strays_possible()) Zygote::set_strays_possible(reap_strays());
  // The guest's stdin (a stream from the caller) is closed here on every path: the child
  // holds its own copy once it exists.
  struct FdCloser {
    int fd;
    ~FdCloser() {
      if (fd >= 0) close(fd);
    }
  } stdin_fd{opts.stdin_fd};
  opts.stdin_fd = -1;
  auto* r = new Running{};
  r->control = control;
  control->running_ = r;
  r->sup = this;
  r->retry_opts = opts;
  r->loop = loop_;
  r->job = std::move(job_in);
  const Job& job = r->job;
  r->opts = std::move(opts);
  r->done = std::move(done);
  r->t_start = Clock::now();
  r->result.exit_code = -1;

  // Everything that can fail because of the job happens here, before a child exists.
  if (r->opts.policy) {
    if (auto over = check_job_limits(r->opts.job_limits, r->opts.policy->limits)) {
      r->fail_now(Status::kInvalidJob, *over);
      return;
    }
    r->limits = effective_limits(r->opts.job_limits, r->opts.policy->limits);
  } else {
    r->limits = r->opts.job_limits;
  }
  // The sandbox the policy asks for, and its view of the job's trees; a test may declare
  // mechanisms unavailable.
  if (r->opts.policy) {
    r->opts.sandbox = sandbox_spec_for(*r->opts.policy, r->limits);
  } else {
    r->opts.sandbox.cgroup = sandbox::Mode::kOff;  // no policy: no limits to enforce
  }
  // Each preopened directory is an open file of the guest's from the start.
  if (r->limits.open_files && job.dirs.size() > *r->limits.open_files) {
    r->fail_now(Status::kInvalidJob, std::to_string(job.dirs.size()) + " directories are mounted but the open_files limit is " +
                                         std::to_string(*r->limits.open_files) + " (each is an open file of the guest)");
    return;
  }
  r->opts.sandbox.preopens.clear();
  for (const DirMount& d : job.dirs) r->opts.sandbox.preopens.push_back({d.host_path, d.guest_path, d.read_only});
  if (auto err = sandbox::apply_test_unavailable(getenv("WASMJAIL_TEST_UNAVAILABLE"), &r->opts.sandbox)) {
    r->fail_now(Status::kSetupError, *err);
    return;
  }
  // The job's cgroup, before its process exists (it may be born in it). Fail closed: a
  // required cgroup this machine cannot give ends the job here.
  r->cgroup =
      make_job_cgroup(r->opts.sandbox.cgroup, r->limits,
                      r->opts.sandbox.simulate_unavailable & sandbox::bit(sandbox::Mechanism::kCgroup));
  if (r->cgroup.error) {
    r->fail_now(Status::kSetupError, "sandbox setup failed: " + *r->cgroup.error);
    return;
  }

  if (r->limits.stdout_bytes) r->opts.stdout_cap = static_cast<size_t>(*r->limits.stdout_bytes);
  if (r->limits.stderr_bytes) r->opts.stderr_cap = static_cast<size_t>(*r->limits.stderr_bytes);
  if (r->limits.module_bytes) r->opts.module_bytes_max = static_cast<size_t>(*r->limits.module_bytes);
  // The module bytes live once here, not also in r->job: every copy in this process counts
  // against a directly cloned child's RLIMIT_DATA (its `memory` limit).
  std::vector<uint8_t> module;
  const bool module_from_file = !r->job.module_bytes;
  if (r->job.module_bytes) {
    module = std::move(*r->job.module_bytes);
    r->job.module_bytes.reset();
  } else if (auto err = read_file_capped(job.module_path, r->opts.module_bytes_max, &module, "module size limit")) {
    { r->fail_now(Status::kInvalidJob, *err); return; }
  }
  // Below this, V8 cannot even start with the module (it aborts before any of its memory
  // handlers exist, or the lock-down cannot allocate): measured here, a job process dies
  // of that up to ~16 MiB above the module's size and reports V8's out-of-memory from ~20.
  if (r->limits.memory) {
    const uint64_t need = module.size() + kV8StartBytes;
    if (*r->limits.memory < need) {
      r->fail_now(Status::kMemoryLimit,
                  "the memory limit (" + cfg::format_bytes(*r->limits.memory) +
                      ") is too small to start this job: V8 and its " + std::to_string(module.size()) +
                      "-byte module need at least " + cfg::format_bytes((need + (1 << 20) - 1) & ~uint64_t((1 << 20) - 1)) +
                      " (the module's size plus " + cfg::format_bytes(kV8StartBytes) + ")");
      return;
    }
  }
  if (stdin_fd.fd < 0 && job.stdin_data) {
    if (r->limits.stdin_bytes && job.stdin_data->size() > *r->limits.stdin_bytes) {
      r->fail_now(Status::kInvalidJob, "stdin: " + std::to_string(job.stdin_data->size()) +
                                           " bytes exceed the stdin_bytes limit of " +
                                           std::to_string(*r->limits.stdin_bytes) + " bytes");
      return;
    }
    if (auto err = stdin_memfd(*job.stdin_data, &stdin_fd.fd)) {
      r->fail_now(Status::kInternalError, *err);
      return;
    }
  }
  std::vector<int> dir_fds;
  auto close_dirs = [&] {
    for (int fd : dir_fds) close(fd);
  };
  for (const DirMount& d : job.dirs) {
    int fd = d.host_fd >= 0 ? fcntl(d.host_fd, F_DUPFD_CLOEXEC, 0)
                            : open(d.host_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      close_dirs();
      { r->fail_now(Status::kInvalidJob, "cannot open directory " + d.host_path + " for " +
                                                  d.guest_path + ": " + strerr(e)); return; }
    }
    dir_fds.push_back(fd);
  }
  int fds[3][2];
  for (int i = 0; i < 3; ++i) {
    if (pipe2(fds[i], O_CLOEXEC) != 0) {
      int e = errno;
      for (int j = 0; j < i; ++j) close(fds[j][0]), close(fds[j][1]);
      close_dirs();
      { r->fail_now(Status::kInternalError, "pipe2: " + strerr(e)); return; }
    }
  }
  // stdout and stderr pipes of 1 MiB (the kernel's default limit for unprivileged users):
  // a guest writing in small pieces blocks, and wakes the supervisor, 16 times less often
  // than with the default 64 KiB. Best effort: a smaller pipe only costs speed.
  for (int i = 0; i < 2; ++i) fcntl(fds[i][1], F_SETPIPE_SZ, 1 << 20);
  // The code cache holds TurboFan code, complete when compiled. The `turbofan` tier reads
  // and fills it; the `tiered` tier reads it (a hit runs on that code) and has it filled
  // by a sibling on a miss.
  const auto& fl = r->opts.v8_flags;
  // The module's sha256, once for every cache key of this job (~25 ms for a 30 MB module here).
  std::string module_sha;
  auto key_for = [&](const std::vector<std::string>& flags) {
    if (module_sha.empty()) module_sha = sha256_hex(module.data(), module.size());
    return CodeCache::key_for_digest(module_sha, flags);
  };
  const bool tf_tier = has_flag(fl, "--no-liftoff");
  const bool tiered_tier = has_flag(fl, "--liftoff") && has_flag(fl, "--wasm-dynamic-tiering");
  if (!r->opts.cache_dir.empty() && r->opts.compile_only && !r->opts.hot_functions.empty() &&
      CodeCache(r->opts.cache_dir, 0).enabled()) {
    // A hot-code compile: its code is for tiered jobs, under their flags' key.
    r->cache = std::make_unique<CodeCache>(r->opts.cache_dir, r->opts.cache_max_bytes);
    r->cache_key = key_for(fl);
    r->cache_optimized = r->opts.hot_functions;
    r->frames.allow_code_frame(true);
  } else if (!r->opts.cache_dir.empty() && !r->opts.cache_retry && (tf_tier || tiered_tier) &&
             CodeCache(r->opts.cache_dir, 0).enabled()) {
    std::vector<std::string> tf = turbofan_flags(fl);
    r->cache = std::make_unique<CodeCache>(r->opts.cache_dir, r->opts.cache_max_bytes);
    r->cache_key = key_for(tf);
    const bool may_compile_beside = !r->opts.compile_only && !compile_failed_->count(r->cache_key) &&
                                    module.size() <= r->opts.background_compile_max_bytes &&
                                    (compiling_->count(r->cache_key) || compiling_->size() < kMaxBackgroundCompiles);
    if (auto hit = r->cache->get(r->cache_key)) {
      r->cached_code = std::move(*hit);
      r->opts.v8_flags = std::move(tf);  // the code's own flags (V8 checks them when deserializing)
      r->cached_optimized = hot::declared_function_count(module.data(), module.size()).value_or(0);
      r->cached_from = r->cache_key;
    } else if (tiered_tier) {
      // The functions earlier tiered jobs optimized, compiled on TurboFan by a compile-only
      // child (compile_hot): the job starts on them, the rest lazy on Liftoff.
      const std::string hot_key = key_for(fl);
      std::vector<uint32_t> optimized;
      if (auto hot = r->cache->get(hot_key, &optimized)) {
        r->cached_code = std::move(*hot);
        r->cached_optimized = static_cast<uint32_t>(optimized.size());
        r->cached_from = hot_key;
        r->hot_have = std::move(optimized);
      }
      // This job reports what it optimizes; a compile-only child may then improve the entry.
      auto declared = hot::declared_function_count(module.data(), module.size());
      if (r->opts.background_compile && !r->opts.compile_only && declared && *declared > 0) {
        r->report_hot = true;
        r->declared_functions = *declared;
        const std::string full_key = r->cache_key;
        Job hj = job;
        hj.module_bytes.reset();
        RunOptions ho;
        ho.v8_flags = fl;
        ho.policy = r->opts.policy;
        ho.sandbox = r->opts.sandbox;
        ho.cache_dir = r->opts.cache_dir;
        ho.cache_max_bytes = r->opts.cache_max_bytes;
        ho.module_bytes_max = r->opts.module_bytes_max;
        ho.detach_hot_compile = r->opts.detach_hot_compile;
        if (module_from_file) ho.detach_module_file = job.module_path;
        r->on_hot = [this, hj, ho, hot_key, full_key](std::vector<uint32_t> hot,
                                                       std::shared_ptr<const std::vector<uint8_t>> m) {
          if (m) compile_hot(hj, std::move(m), ho, hot_key, full_key, std::move(hot));
        };
      }
      // Cold, tiered: the job runs at once on Liftoff; the TurboFan code comes from a
      // sibling that runs no guest code (at most one per module at a time).
      if (r->opts.background_compile && may_compile_beside && r->opts.background_ends_with_job && r->report_hot) {
        // One-shot (run, exec): nothing beside the job, which a short job would cut off
        // before it stored anything while it took CPU from the job; after the job, a
        // compile of every function (detach_hot): detached, or waited for with `wait`.
        r->detach_all = true;
      } else if (r->opts.background_compile && may_compile_beside) {
        if (!compiling_->count(r->cache_key)) r->sibling = compile_in_background(job, module, r->opts, r->cache_key);
        r->compiling_in_background = true;
      }
      r->cache.reset();
    } else if (r->opts.background_compile_min_bytes && module.size() >= r->opts.background_compile_min_bytes &&
               may_compile_beside) {
      // Cold and large: TurboFan code for the cache comes from a second child that runs no
      // guest code (at most one per module at a time); this job runs on Liftoff with
      // dynamic tier-up now, offering no code.
      if (!compiling_->count(r->cache_key)) r->sibling = compile_in_background(job, module, r->opts, r->cache_key);
      std::vector<std::string> tiered;
      for (const std::string& f : fl) {
        if (f == "--no-liftoff") {
          tiered.push_back("--liftoff");
          tiered.push_back("--wasm-dynamic-tiering");
          tiered.push_back("--wasm-lazy-compilation");
        } else {
          tiered.push_back(f);
        }
      }
      r->opts.v8_flags = std::move(tiered);
      r->cache.reset();
      r->compiling_in_background = true;
    }
    if (r->cache) r->frames.allow_code_frame(true);
  }
  ChildSetup setup{&job,  &module, getpid(), fds[0][1], fds[1][1], fds[2][1], dir_fds, {}, 0, 0, 0, 0, 0,
                   &r->opts.v8_flags, r->cached_code.empty() ? nullptr : &r->cached_code, r->cache != nullptr,
                   &r->opts.sandbox, {}};
  for (int i = 0; i < 3; ++i) setup.stdio_is_tty[i] = r->opts.stdio_is_tty[i];
  setup.compile_only = r->opts.compile_only;
  setup.report_hot = r->report_hot;
  setup.hot_functions = r->opts.hot_functions.empty() ? nullptr : &r->opts.hot_functions;
  setup.stdin_fd = stdin_fd.fd;
  {
    const auto& f = r->opts.v8_flags;
    r->result.tier = has_flag(f, "--no-liftoff") ? "turbofan" : has_flag(f, "--wasm-dynamic-tiering") ? "tiered" : "liftoff";
  }
  const Limits& lim = r->limits;
  if (lim.wall_time_ms) {
    // The child's watchdog stops the guest a little before the supervisor's SIGKILL.
    double margin = std::min(50.0, *lim.wall_time_ms / 10);
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    setup.wall_deadline_ns = static_cast<uint64_t>(now.tv_sec) * 1000000000ull + static_cast<uint64_t>(now.tv_nsec) +
                             static_cast<uint64_t>((*lim.wall_time_ms - margin) * 1e6);
  }
  setup.cpu_limit_ms = lim.cpu_time_ms.value_or(0);
  setup.memory_bytes = lim.memory.value_or(0);
  setup.wasm_memory_bytes = lim.wasm_memory.value_or(0);
  setup.output_bytes = lim.output_bytes.value_or(0);
  setup.output_files = lim.output_files.value_or(0);

  // The job process: a warm one from the pool when one was prepared for this policy (it
  // gets the job's setup and fds now, and applies everything job-specific before running
  // anything); else the fork server creates it (same child_main, V8 already initialized);
  // else, for one-shot commands only, a direct clone of this process.
  std::optional<sandbox::CloneResult> forked;
  if (pool_->size() > 0 || warm_for_one_shot_) {
    if (auto warm = pool_->take(warm_spec_of(setup), warm_for_one_shot_)) {
      // Into the job's cgroup first (its pid written to cgroup.procs: the process is still
      // single-threaded, so every thread it starts is in it), then the job.
      join_job_cgroup(&r->cgroup, r->opts.sandbox.cgroup, warm->pid);
      std::string why;
      if (!r->cgroup.error && send_job_to_warm(warm->channel, setup, &why)) {
        forked = warm->clone;
        forked->in_cgroup = true;  // joined above (or no cgroup)
        forked->go_fd = -1;        // its go-ahead came when it was created
      } else {
        kill(warm->pid, SIGKILL);
        waitpid(warm->pid, nullptr, 0);
      }
      close(warm->channel);
    }
    pool_->schedule_fill();
  }
  // A serve never clones a job from its own process (it holds every job's data): a fork
  // server that died or never started is replaced by a clean one (fork+exec).
  for (int attempt = 0; !forked && attempt < 2; ++attempt) {
    if (!Zygote::get() && Zygote::required()) Zygote::start_clean();
    Zygote* z = Zygote::get();
    if (!z) break;
    forked = z->spawn(setup);
  }
  if (forked) {
    setup.clone = *forked;
  } else if (Zygote::required() || r->opts.no_direct_clone) {
    for (auto& p : fds) close(p[0]), close(p[1]);
    close_dirs();
    r->fail_now(Status::kInternalError,
                Zygote::required()
                    ? "no fork server could create the job process (a serve never clones jobs from its own process)"
                    : "the fork server could not create the job process (retry the job)");
    return;
  } else {
    // With a cgroup to join, the job process waits for a go-ahead (as from the fork server).
    int go[2] = {-1, -1};
    if (r->cgroup.cgroup && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) != 0) {
      int e = errno;
      for (auto& p : fds) close(p[0]), close(p[1]);
      close_dirs();
      r->fail_now(Status::kInternalError, "socketpair: " + strerr(e));
      return;
    }
    setup.clone = sandbox::clone_job_process(r->opts.sandbox, 0, 0,
                                             r->cgroup.cgroup ? r->cgroup.cgroup->clone_fd() : -1);
    if (setup.clone.pid == 0) {
      if (go[0] >= 0) {
        close(go[1]);
        sandbox::wait_for_go_ahead(go[0]);
      }
      child_main(setup);
    }
    if (go[0] >= 0) close(go[0]);
    if (setup.clone.pid > 0)
      setup.clone.go_fd = go[1];
    else if (go[1] >= 0)
      close(go[1]);
  }
  pid_t pid = setup.clone.pid;
  for (auto& p : fds) close(p[1]);
  close_dirs();
  if (pid > 0) {
    // Into its cgroup before it runs any job code, then the go-ahead. On failure the pipe
    // closes unwritten and the process exits without running anything.
    if (!setup.clone.in_cgroup) join_job_cgroup(&r->cgroup, r->opts.sandbox.cgroup, pid);
    if (r->cgroup.error) {
      if (setup.clone.go_fd >= 0) close(setup.clone.go_fd);
      kill(pid, SIGKILL);
      while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
      for (auto& p : fds) close(p[0]);
      r->fail_now(Status::kSetupError, "sandbox setup failed: " + *r->cgroup.error);
      return;
    }
    if (setup.clone.go_fd >= 0) {
      (void)!send(setup.clone.go_fd, "g", 1, MSG_NOSIGNAL);  // a job process already gone: no SIGPIPE
      close(setup.clone.go_fd);
    }
  }
  if (pid < 0) {
    for (auto& p : fds) close(p[0]);
    bool refused = setup.clone.err == 0 || setup.clone.error.find("required") != std::string::npos;
    r->fail_now(refused ? Status::kSetupError : Status::kInternalError, setup.clone.error);
    return;
  }
  r->pid = pid;
  g_job_pids.insert(pid);
  // The child has its own copy by now: keep ours for a hot-code compile after the job, and
  // a job running cached code may need a second run without it (see classify).
  // (One copy serves both: a retry takes it from hot_module.)
  if (r->report_hot) r->hot_module = std::make_shared<const std::vector<uint8_t>>(std::move(module));
  else if (!r->cached_code.empty() && !r->opts.cache_retry) r->retry_module = std::move(module);
  r->pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (r->pidfd < 0) {
    // Without a pidfd we cannot watch the child: never leave it running unobserved.
    int e = errno;
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    for (auto& p : fds) close(p[0]);
    { r->fail_now(Status::kInternalError, "pidfd_open: " + strerr(e)); return; }
  }

  for (int i = 0; i < 3; ++i) {
    auto& p = r->pipes[i];
    p.owner = r;
    p.which = i + 1;
    if (i < 2 && r->opts.splice_to[i + 1] >= 0) {
      p.splice_out = r->opts.splice_to[i + 1];
      fcntl(fds[i][0], F_SETFL, O_NONBLOCK);
      uv_poll_init(loop_, &p.poll, fds[i][0]);
      p.poll.data = &p;
      p.open = true;
      r->open_handles++;
      uv_poll_start(&p.poll, UV_READABLE | UV_DISCONNECT, [](uv_poll_t* h, int, int) {
        auto* pr = static_cast<Running::PipeReader*>(h->data);
        pr->owner->on_splice(*pr);
      });
      continue;
    }
    uv_pipe_init(loop_, &p.handle, 0);
    p.handle.data = &p;
    uv_pipe_open(&p.handle, fds[i][0]);
    p.open = true;
    r->open_handles++;
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&p.handle),
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
          auto* pr = static_cast<Running::PipeReader*>(h->data);
          *buf = uv_buf_init(pr->buf, sizeof pr->buf);
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          auto* pr = static_cast<Running::PipeReader*>(s->data);
          if (n > 0) {
            pr->owner->on_data(pr->which, buf->base, static_cast<size_t>(n));
            return;
          }
          if (n == 0) return;
          // EOF or error: this stream is finished.
          uv_read_stop(s);
          pr->open = false;
          s->data = pr->owner;
          uv_close(reinterpret_cast<uv_handle_t*>(s), close_cb);
        });
  }
  if (lim.wall_time_ms) {
    uv_timer_init(loop_, &r->wall_timer);
    r->wall_timer.data = r;
    r->wall_timer_open = true;
    r->open_handles++;
    uv_timer_start(
        &r->wall_timer,
        [](uv_timer_t* t) {
          auto* run = static_cast<Running*>(t->data);
          run->timed_out = true;
          run->kill_child();  // the backstop: the watchdog should have stopped it already
        },
        static_cast<uint64_t>(std::ceil(*lim.wall_time_ms)), 0);
  }
  if (r->opts.on_spawn) r->opts.on_spawn(pid);
  uv_poll_init(loop_, &r->pid_poll, r->pidfd);
  r->pid_poll.data = r;
  r->pid_poll_open = true;
  r->open_handles++;
  uv_poll_start(&r->pid_poll, UV_READABLE, [](uv_poll_t* h, int, int) {
    auto* run = static_cast<Running*>(h->data);
    pid_t got = wait4(run->pid, &run->wait_status, WNOHANG, &run->ru);
    if (got != run->pid) return;  // spurious wake-up
    run->reaped = true;
    g_job_pids.erase(run->pid);
    if (run->cgroup.cgroup) {
      // Counters first (OOM kill, peak memory, CPU), then the folder goes.
      run->cgroup_usage = run->cgroup.cgroup->usage();
      run->cgroup.cgroup->remove();
      run->cgroup.cgroup.reset();
      run->cgroup_applied = true;
    }
    run->stop_timer();
    run->close_listener();
    uv_poll_stop(h);
    run->pid_poll_open = false;
    uv_close(reinterpret_cast<uv_handle_t*>(h), close_cb);
  });
}

bool Supervisor::spawns_via_fork_server(const Job& job) {
  // A serve restarts a dead fork server (a clean one) rather than clone a job itself.
  return (Zygote::get() != nullptr || Zygote::required()) && job.dirs.size() <= Zygote::kMaxPreopens;
}

Result run_job(const Job& job, RunOptions opts) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  Result out;
  {
    Supervisor sup(&loop);
    sup.start(job, std::move(opts), [&](Result r) { out = std::move(r); });
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(&loop);
  return out;
}

}  // namespace wj
