#include "supervisor/child.h"

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <exception>
#include <new>
#include <system_error>
#include <string>

#include "sandbox/lockdown.h"
#include "supervisor/wire.h"
#include "v8host/engine.h"
#include "v8host/hot_code.h"

namespace wj {
namespace {

void write_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // supervisor gone: nothing left to tell
    off += static_cast<size_t>(n);
  }
}

// Runs in the SIGSYS handler: async-signal-safe (a stack buffer and one write).
void report_violation(int32_t nr, uint32_t arch) {
  char buf[wire::kViolationFrameSize];
  wire::encode_violation(buf, nr, arch);
  ssize_t n = write(kChildRecord, buf, sizeof buf);
  (void)n;
}

// One final outcome per job: V8's out-of-memory handlers can fire on several compile threads
// at once, and one of them can race the main thread's own outcome. The first claims it; the
// others wait for the exit that the first one brings (an _exit of theirs could cut its record).
std::atomic<bool> g_outcome_claimed{false};

void claim_outcome_or_wait() {
  if (!g_outcome_claimed.exchange(true))
    return;
  for (;;) g_outcome_claimed.wait(true);  // a futex wait: seccomp allows it (pause() it does not)
}

[[noreturn]] void report_and_exit(const RunOutcome& o) {
  claim_outcome_or_wait();
  write_all(kChildRecord, wire::encode_outcome(o));
  _exit(0);
}

// Records for V8's OOM and fatal-error handlers, encoded before the guest runs: when they
// fire, allocating may be impossible. Out of memory says in which phase it happened.
std::string g_oom_record, g_oom_compile_record, g_oom_instantiate_record, g_fatal_record;

void on_v8_fatal(bool out_of_memory) {
  const RunPhase phase = current_phase();
  const std::string& rec = !out_of_memory                      ? g_fatal_record
                           : phase == RunPhase::kCompile     ? g_oom_compile_record
                           : phase == RunPhase::kInstantiate ? g_oom_instantiate_record
                                                             : g_oom_record;
  claim_outcome_or_wait();
  (void)!write(kChildRecord, rec.data(), rec.size());
}

void on_sigxcpu(int) { notify_cpu_limit_from_signal(); }

// Moves `fds[i]` to `first + i` (and the three pipes to 1,2,3) without clobbering any source:
// everything is first duplicated above all targets, then dup2'd into place.
bool arrange_fds(const ChildSetup& s) {
  std::vector<int> src = {s.stdout_w, s.stderr_w, s.record_w};
  src.insert(src.end(), s.preopen_fds.begin(), s.preopen_fds.end());
  const int high = kChildFirstPreopen + static_cast<int>(s.preopen_fds.size()) + 16;
  std::vector<int> tmp;
  for (int fd : src) {
    int t = fcntl(fd, F_DUPFD_CLOEXEC, high);
    if (t < 0) return false;
    tmp.push_back(t);
  }
  int in = s.stdin_fd >= 0 ? fcntl(s.stdin_fd, F_DUPFD_CLOEXEC, high) : open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (in < 0 || dup2(in, 0) < 0) return false;
  for (size_t i = 0; i < tmp.size(); ++i)
    if (dup2(tmp[i], static_cast<int>(i) + 1) < 0) return false;  // 1,2,3 then preopens from 4
  return true;
}

[[noreturn]] void child_main_body(const ChildSetup& s);

}  // namespace

// No exception may leave: the job process is a clone of its creator, whose frames (a test
// framework's catch blocks, the event loop) would go on running in it. One that cannot
// start a thread (a processes limit) ends up here, reported as an internal error.
void child_main(const ChildSetup& s) {
  try {
    child_main_body(s);
  } catch (const std::bad_alloc&) {
    on_v8_fatal(true);  // out of memory (its record, once prepared; nothing before that)
    _exit(70);
  } catch (const std::system_error& e) {
    // A thread not started: no memory for its stack, or the processes limit (the supervisor
    // tells them apart by the cgroup's pids events).
    if (e.code().value() != EAGAIN && e.code().value() != ENOMEM) {
      RunOutcome o;
      o.kind = OutcomeKind::kInternalError;
      o.message = std::string("the job process failed: ") + e.what();
      report_and_exit(o);
    }
    on_v8_fatal(true);
    _exit(70);
  } catch (const std::exception& e) {
    RunOutcome o;
    o.kind = OutcomeKind::kInternalError;
    o.message = std::string("the job process failed: ") + e.what();
    report_and_exit(o);
  } catch (...) {
    _exit(127);
  }
}

namespace {

void child_main_body(const ChildSetup& s) {
  // Named apart from the supervisor and the fork server (ps, /proc/PID/comm).
  prctl(PR_SET_NAME, "wasmjail-job");
  // Default dispositions: the supervisor's handlers mean nothing here. A write to a pipe
  // the supervisor closed must fail with EPIPE (a WASI errno), not kill the job.
  // The one exception: in a fork server's child, V8 (initialized there) already owns SIGSEGV
  // for its wasm trap handler, which can be enabled only once per process.
  struct sigaction v8_segv {};
  sigaction(SIGSEGV, nullptr, &v8_segv);
  for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);
  if (v8_preinitialized()) sigaction(SIGSEGV, &v8_segv, nullptr);
  signal(SIGPIPE, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  RunOutcome setup_failed;
  setup_failed.kind = OutcomeKind::kSetupError;
  // The supervisor's pidfd must survive arrange_fds: move it above every target fd.
  int parent_pidfd = -1;
  if (s.clone.parent_pidfd >= 0) {
    parent_pidfd = fcntl(s.clone.parent_pidfd, F_DUPFD_CLOEXEC,
                         kChildFirstPreopen + static_cast<int>(s.preopen_fds.size()) + 64);
    close(s.clone.parent_pidfd);
    if (parent_pidfd < 0) _exit(127);
  }
  if (!arrange_fds(s)) {
    // Without the record pipe in place we cannot report; the supervisor sees no record.
    _exit(127);
  }
  sandbox::LockdownSpec spec;
  spec.supervisor_pid = s.supervisor_pid;
  spec.supervisor_pidfd = parent_pidfd;
  spec.keep_fds = {0, kChildStdout, kChildStderr, kChildRecord};
  for (size_t i = 0; i < s.preopen_fds.size(); ++i) {
    spec.keep_fds.push_back(kChildFirstPreopen + static_cast<int>(i));
    spec.preopen_fds.push_back(kChildFirstPreopen + static_cast<int>(i));
  }
  spec.sandbox = s.sandbox;
  spec.clone = s.clone;
  spec.seccomp_program = s.seccomp_program;
  spec.warm_prepared = s.warm;
  // V8 draws its hash seeds and ASLR hints from getrandom, set before it initializes;
  // the filter allows getrandom but no path reaches /dev/urandom.
  set_entropy_source();
  sandbox::g_report_violation = report_violation;
  sandbox::LockdownReport rep;
  auto announce = [](const sandbox::LockdownReport& r) {
    write_all(kChildRecord, wire::encode_sandbox({r.applied, r.skipped, r.seccomp_listener_fd}));
  };
  if (auto err = sandbox::lock_down(spec, announce, &rep)) {
    setup_failed.message = "sandbox setup failed: " + *err;
    report_and_exit(setup_failed);
  }

  RunOutcome oom;
  oom.kind = OutcomeKind::kMemoryLimit;
  const std::string limit =
      s.memory_bytes ? " (memory limit " + std::to_string(s.memory_bytes >> 20) + "MiB)" : std::string();
  oom.message = "V8 ran out of memory" + limit;
  g_oom_record = wire::encode_outcome(oom);
  oom.message = "V8 ran out of memory while compiling the module" + limit;
  g_oom_compile_record = wire::encode_outcome(oom);
  oom.message = "V8 ran out of memory while instantiating the module" + limit;
  g_oom_instantiate_record = wire::encode_outcome(oom);
  // An allocation that fails outside V8's own handlers (operator new in a compile thread)
  // is the same out-of-memory, not a crash.
  std::set_new_handler([] {
    on_v8_fatal(true);
    _exit(70);
  });
  // The same for a thread V8 could not start (no memory for its stack: EAGAIN); any other
  // uncaught exception is V8's fatal error, reported as such rather than as a crash.
  std::set_terminate([] {
    bool out_of_memory = false;
    if (std::exception_ptr e = std::current_exception()) {
      try {
        std::rethrow_exception(e);
      } catch (const std::bad_alloc&) {
        out_of_memory = true;
      } catch (const std::system_error& se) {
        out_of_memory = se.code().value() == EAGAIN || se.code().value() == ENOMEM;
      } catch (...) {
      }
    }
    on_v8_fatal(out_of_memory);
    _exit(70);
  });
  RunOutcome fatal;
  fatal.kind = OutcomeKind::kInternalError;
  fatal.message = "V8 fatal error";
  g_fatal_record = wire::encode_outcome(fatal);
  RunConfig cfg;
  // Moved, not copied: this process owns its setup and never returns (a large module would
  // otherwise be held twice while it compiles).
  cfg.module = std::move(*const_cast<std::vector<uint8_t>*>(s.module));
  for (const ModuleBlob& lib : s.job->libraries) cfg.libraries.push_back(LibraryModule{lib.name, lib.aliases, lib.bytes});
  cfg.module_name = s.job->module_path;
  cfg.entry = s.job->entry_point;
  cfg.argv = s.job->argv;
  cfg.env = s.job->env;
  cfg.stdin_fd = s.stdin_fd >= 0 ? 0 : -1;
  cfg.stdout_fd = kChildStdout;
  cfg.stderr_fd = kChildStderr;
  for (int i = 0; i < 3; ++i) cfg.stdio_is_tty[i] = s.stdio_is_tty[i];
  cfg.wall_deadline_ns = s.wall_deadline_ns;
  cfg.cpu_limit_ms = s.cpu_limit_ms;
  cfg.heap_limit_bytes = s.memory_bytes;
  cfg.wasm_memory_limit_bytes = s.wasm_memory_bytes;
  cfg.output_limit_bytes = s.output_bytes;
  cfg.output_limit_files = s.output_files;
  cfg.on_fatal = on_v8_fatal;
  cfg.cached_code = s.cached_code;
  cfg.compile_only = s.compile_only;
  if (s.compile_only && s.hot_functions) {
    cfg.hot_functions = *s.hot_functions;
    // The hinted module replaces the original here (nothing of a compile-only job reads the
    // original again), and the original's pages go back to the kernel before V8 copies the
    // module: the compile's peak holds two copies, not three. On failure the engine reports it.
    std::string err;
    if (auto hinted = hot::with_compilation_hints(cfg.module, cfg.hot_functions, &err)) {
      cfg.module = std::move(*hinted);
      cfg.module_has_hints = true;
      malloc_trim(0);
    }
  }
  if (s.report_hot)
    cfg.on_hot_functions = [](const std::vector<uint32_t>& fns) { write_all(kChildRecord, wire::encode_hot_functions(fns)); };
  if (s.offer_code)
    cfg.on_compiled = [](const uint8_t* data, size_t size) {
      // Always one frame (empty when there is nothing to store or it is too large).
      if (size > wire::kMaxCompiledCode) size = 0;
      write_all(kChildRecord, wire::encode_compiled_code(data, size));
    };
  // RLIMIT_CPU's soft limit raises SIGXCPU: the watchdog then stops the guest cleanly.
  signal(SIGXCPU, on_sigxcpu);
  cfg.v8_flags = *s.v8_flags;
  for (size_t i = 0; i < s.job->dirs.size(); ++i)
    cfg.preopens.push_back(Preopen{kChildFirstPreopen + static_cast<int>(i), s.job->dirs[i].guest_path,
                                   s.job->dirs[i].read_only});
  cfg.on_outcome = [](const RunOutcome& o) { report_and_exit(o); };
  report_and_exit(run_module(cfg));
}

}  // namespace
}  // namespace wj
