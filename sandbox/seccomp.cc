// The seccomp filter (libseccomp), installed last, with TSYNC. Its shape follows
// Chromium's seccomp-bpf policies: syscalls grouped by purpose, each group with its reason,
// argument restrictions as small Restrict* helpers. Three outcomes for a syscall that is not
// allowed:
//   - the known-dangerous set (and the policy's `kill` list) never executes: the kernel
//     holds the call and notifies the supervisor (SECCOMP_RET_USER_NOTIF on the listener
//     it took from us), which kills the child and reports {syscall, number}. The child
//     cannot intercept this. Without notification support it is plain KILL_PROCESS.
//   - the policy's errno rules fail the call with that errno.
//   - everything else takes the default action (TRAP: the SIGSYS handler below reports
//     the syscall on the record pipe and exits).
// The allowlist was derived by running the test guests with the `log` default action
// (see README, "Sandbox and threat model").
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/prctl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "sandbox/lockdown.h"

namespace wj::sandbox {

// Set by the child before lock_down (sandbox/ knows nothing of the wire format).
void (*g_report_violation)(int32_t nr, uint32_t arch) = nullptr;

namespace {

constexpr int kViolationExit = 159;  // 128 + SIGSYS, for a child that reported its violation
alignas(16) char g_altstack[64 * 1024];

void on_sigsys(int, siginfo_t* info, void*) {
  // Async-signal-safe only: the reporter encodes into a stack buffer and write()s it.
  if (g_report_violation) g_report_violation(info->si_syscall, info->si_arch);
  _exit(kViolationExit);
}

struct Builder {
  scmp_filter_ctx ctx;
  std::optional<std::string> error;
  std::set<std::string> skip;  // names the policy gave an errno rule

  int nr(const char* name) { return seccomp_syscall_resolve_name(name); }

  void add(uint32_t action, const char* name, std::initializer_list<scmp_arg_cmp> conds = {}) {
    if (error || skip.count(name)) return;
    int n = nr(name);
    if (n == __NR_SCMP_ERROR) return;  // no such syscall on this architecture: nothing to allow
    int rc = seccomp_rule_add_array(ctx, action, n, static_cast<unsigned>(conds.size()), conds.begin());
    if (rc != 0) error = std::string("seccomp_rule_add(") + name + "): " + std::strerror(-rc);
  }
  void allow(const char* name, std::initializer_list<scmp_arg_cmp> conds = {}) {
    add(SCMP_ACT_ALLOW, name, conds);
  }
  // One rule per allowed value of argument `arg` (rules for one syscall are OR'ed).
  void allow_values(const char* name, unsigned arg, std::initializer_list<uint64_t> values,
                    uint64_t mask = ~0ull) {
    for (uint64_t v : values) allow(name, {SCMP_CMP(arg, SCMP_CMP_MASKED_EQ, mask, v)});
  }
  // Allowed only when no bit outside `allowed` is set in argument `arg`.
  void allow_flags(const char* name, unsigned arg, uint64_t allowed) {
    allow(name, {SCMP_CMP(arg, SCMP_CMP_MASKED_EQ, ~allowed, 0)});
  }
};

void allow_memory(Builder& b) {
  // V8's heap, JIT code space and wasm memories: anonymous mappings, protection changes
  // for W^X code pages and guard regions, discarding pages. No MAP_HUGETLB, MAP_LOCKED,
  // MAP_GROWSDOWN, PROT_GROWSDOWN/UP or protection-key bits.
  constexpr uint64_t kProt = PROT_READ | PROT_WRITE | PROT_EXEC;
  constexpr uint64_t kMapFlags = MAP_SHARED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_FIXED_NOREPLACE |
                                 MAP_NORESERVE | MAP_STACK | MAP_DENYWRITE | MAP_POPULATE;
  b.allow("brk");
  b.allow("mmap",
          {SCMP_CMP(2, SCMP_CMP_MASKED_EQ, ~kProt, 0), SCMP_CMP(3, SCMP_CMP_MASKED_EQ, ~kMapFlags, 0)});
  b.allow_flags("mprotect", 2, kProt);
  b.allow("munmap");
  b.allow("mremap");  // realloc of large blocks (glibc), V8's zone growth
  b.allow_values("madvise", 2,
                 {MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED, MADV_FREE,
                  MADV_DONTFORK, MADV_DOFORK, MADV_DONTDUMP, MADV_DODUMP, MADV_HUGEPAGE, MADV_NOHUGEPAGE});
  // V8 probes memory protection keys for wasm (pkey_alloc fails harmlessly without PKU).
  b.allow("pkey_alloc");
  b.allow("pkey_free");
  b.allow("pkey_mprotect", {SCMP_CMP(2, SCMP_CMP_MASKED_EQ, ~kProt, 0)});
}

void allow_threads(Builder& b, pid_t self) {
  // V8's platform worker threads (glibc pthread_create): clone with exactly these flags;
  // anything fork-like falls to the default action. clone3 cannot be filtered by its flags
  // (they sit in memory), so it answers ENOSYS and glibc falls back to clone.
  constexpr uint64_t kThreadFlags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                                    CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;
  b.allow("clone", {SCMP_CMP(0, SCMP_CMP_EQ, kThreadFlags)});
  b.add(SCMP_ACT_ERRNO(ENOSYS), "clone3");
  b.allow("set_robust_list");  // glibc, every new thread
  b.allow("rseq");             // glibc, every new thread
  b.allow("exit");             // a worker thread ending
  b.allow("exit_group");
  b.allow("gettid");  // V8's OS::GetCurrentThreadId
  b.allow("getpid");
  b.allow("sched_yield");                                       // V8 spin locks; WASI sched_yield
  b.allow("sched_getaffinity", {SCMP_CMP(0, SCMP_CMP_EQ, 0)});  // glibc's CPU count, of itself
  // futex: waits and wakes on private or shared words (glibc mutexes, condvars, V8
  // semaphores); no PI or requeue-PI operations.
  constexpr uint64_t kCmdMask = ~static_cast<uint64_t>(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
  b.allow_values("futex", 1,
                 {FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP, FUTEX_WAIT_BITSET,
                  FUTEX_WAKE_BITSET},
                 kCmdMask);
  // Signals to itself only: abort()/raise() use tgkill(getpid(), ...).
  b.allow("kill", {SCMP_CMP(0, SCMP_CMP_EQ, static_cast<uint64_t>(self))});
  b.allow("tgkill", {SCMP_CMP(0, SCMP_CMP_EQ, static_cast<uint64_t>(self))});
}

void allow_signals(Builder& b) {
  // V8's wasm trap handler (SIGSEGV), glibc's SIGCANCEL/SIGSETXID setup. Replacing the
  // SIGSYS handler that reports violations is not allowed.
  b.allow("rt_sigaction", {SCMP_CMP(0, SCMP_CMP_NE, SIGSYS)});
  b.allow("rt_sigprocmask");
  b.allow("rt_sigreturn");
  b.allow("sigaltstack");
  b.allow("restart_syscall");
}

void allow_time(Builder& b) {
  // Clocks (usually vDSO; syscalls when the clock source has no vDSO path) and sleeps:
  // WASI clock_time_get / clock_res_get / poll_oneoff, V8's timers.
  b.allow("clock_gettime");
  b.allow("clock_getres");
  b.allow("gettimeofday");
  b.allow("nanosleep");
  b.allow("clock_nanosleep");
}

void allow_files(Builder& b) {
  // The WASI layer, always relative to a preopened directory fd or on an fd it holds.
  // What those paths can reach is confined by the mount namespace and Landlock.
  for (const char* n : {"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev"})
    b.allow(n);
  for (const char* n : {"openat", "openat2", "close", "fstat", "newfstatat", "statx", "lseek", "getdents64"})
    b.allow(n);
  for (const char* n : {"mkdirat", "unlinkat", "renameat", "renameat2", "linkat", "symlinkat", "readlinkat",
                        "utimensat", "ftruncate", "fallocate", "fsync", "fdatasync", "fadvise64"})
    b.allow(n);
  b.allow("dup");
  b.allow("dup2");
  b.allow("dup3");
  // fcntl: fd and status flags, duplication, record locks. Not F_SETOWN/F_SETSIG (which
  // would aim signals at other processes), leases or notifications.
  b.allow_values("fcntl", 1,
                 {F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_GETLK, F_SETLK, F_SETLKW, F_DUPFD_CLOEXEC,
                  F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW});
  b.allow("ppoll");  // WASI poll_oneoff
  b.allow("poll");
}

void allow_misc(Builder& b) {
  b.allow("getrandom");  // WASI random_get; V8's entropy source
  b.allow("uname");      // V8 reads the kernel version at start (OS::GetSharedLibraryAddresses, CPU features)
  // prctl: thread names (V8 names its workers) and anonymous-mapping names. Nothing that
  // changes privileges, dumpability, seccomp or the parent-death signal.
  b.allow_values("prctl", 0, {PR_SET_NAME, PR_GET_NAME, PR_SET_VMA});
  // The lock-down's last step, after the supervisor took the listener: undumpable, never back.
  b.allow("prctl", {SCMP_CMP(0, SCMP_CMP_EQ, PR_SET_DUMPABLE), SCMP_CMP(1, SCMP_CMP_EQ, 0)});
  // Reading its own limits (glibc's getrlimit, e.g. for thread stack sizes): prlimit64
  // only with pid 0 and no new limit.
  b.allow("prlimit64", {SCMP_CMP(0, SCMP_CMP_EQ, 0), SCMP_CMP(2, SCMP_CMP_EQ, 0)});
}

// Calls that give a compromised child a way out or a larger attack surface: never executed.
// clang-format off
constexpr const char* kDangerous[] = {
    // new programs and processes
    "execve", "execveat", "fork", "vfork",
    // other processes' memory and state
    "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd", "pidfd_open",
    "pidfd_send_signal", "kcmp",
    // large kernel attack surfaces
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    // the mount family and namespaces
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
    "fspick", "mount_setattr", "unshare", "setns",
    // the network
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
    // kernel keyrings
    "keyctl", "add_key", "request_key",
    // execution domain, the filter itself
    "personality", "seccomp",
    // kernel modules, kexec, reboot, swap, accounting, logs, handles, ports, LDT
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot", "swapon",
    "swapoff", "acct", "syslog", "open_by_handle_at", "name_to_handle_at", "iopl", "ioperm", "modify_ldt",
    "uselib", "vhangup", "quotactl", "quotactl_fd", "fanotify_init", "lookup_dcookie",
    // identity, privileges, clocks and names of the host
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid",
    "setgroups", "capset", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname",
    "setdomainname",
};
// clang-format on

uint32_t default_action(const SeccompSpec& s) {
  switch (s.default_action) {
    case SeccompSpec::DefaultAction::kTrap: return SCMP_ACT_TRAP;
    case SeccompSpec::DefaultAction::kKill: return SCMP_ACT_KILL_PROCESS;
    case SeccompSpec::DefaultAction::kErrno: return SCMP_ACT_ERRNO(static_cast<uint16_t>(s.default_errno));
    case SeccompSpec::DefaultAction::kLog: return SCMP_ACT_LOG;
  }
  return SCMP_ACT_KILL_PROCESS;
}

scmp_compare to_scmp(ArgCondition::Op op) {
  switch (op) {
    case ArgCondition::Op::kEq: return SCMP_CMP_EQ;
    case ArgCondition::Op::kNe: return SCMP_CMP_NE;
    case ArgCondition::Op::kLt: return SCMP_CMP_LT;
    case ArgCondition::Op::kLe: return SCMP_CMP_LE;
    case ArgCondition::Op::kGt: return SCMP_CMP_GT;
    case ArgCondition::Op::kGe: return SCMP_CMP_GE;
    case ArgCondition::Op::kMaskedEq: return SCMP_CMP_MASKED_EQ;
  }
  return SCMP_CMP_EQ;
}

std::optional<std::string> build(scmp_filter_ctx ctx, const SeccompSpec& spec, bool notify, pid_t self,
                                 bool* listener) {
  Builder b{ctx, std::nullopt, {}};
  // Policy names are checked first: an unknown name is an error, never ignored.
  auto known = [&](const std::string& n) -> std::optional<std::string> {
    if (seccomp_syscall_resolve_name(n.c_str()) == __NR_SCMP_ERROR)
      return "seccomp: unknown syscall \"" + n + "\"";
    return std::nullopt;
  };
  std::set<std::string> kill(std::begin(kDangerous), std::end(kDangerous));
  for (const auto& n : spec.kill) {
    if (auto e = known(n)) return e;
    kill.insert(n);
  }
  std::map<std::string, int> errnos;
  for (const auto& r : spec.errno_rules) {
    if (auto e = known(r.name)) return e;
    if (r.err <= 0 || r.err > 4095) return "seccomp: errno for " + r.name + " must be 1..4095";
    errnos[r.name] = r.err;
    kill.erase(r.name);  // a policy may make a dangerous call fail quietly; it still never runs
  }
  for (const auto& r : spec.allow) {
    if (auto e = known(r.name)) return e;
    if (kill.count(r.name)) return "seccomp: " + r.name + " is in the dangerous set and cannot be allowed";
    if (errnos.count(r.name)) return "seccomp: " + r.name + " has both an errno rule and an allow rule";
    if (r.conditions.size() > 6) return "seccomp: more than 6 conditions for " + r.name;
    std::vector<scmp_arg_cmp> conds;
    for (const auto& c : r.conditions) {
      if (c.index > 5)
        return "seccomp: argument index " + std::to_string(c.index) + " for " + r.name + " (0..5)";
      conds.push_back(c.op == ArgCondition::Op::kMaskedEq
                          ? SCMP_CMP(c.index, SCMP_CMP_MASKED_EQ, c.mask, c.value)
                          : SCMP_CMP(c.index, to_scmp(c.op), c.value));
    }
    int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name(r.name.c_str()),
                                    static_cast<unsigned>(conds.size()), conds.data());
    if (rc != 0) return "seccomp_rule_add(" + r.name + "): " + std::strerror(-rc);
  }
  // Built-in groups skip what the policy overrides with an errno or kill rule.
  for (const auto& [name, err] : errnos) b.skip.insert(name);
  for (const auto& name : spec.kill) b.skip.insert(name);
  allow_memory(b);
  allow_threads(b, self);
  allow_signals(b);
  allow_time(b);
  allow_files(b);
  allow_misc(b);
  if (b.error) return b.error;
  for (const auto& [name, err] : errnos) {
    int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(static_cast<uint16_t>(err)),
                              seccomp_syscall_resolve_name(name.c_str()), 0);
    if (rc != 0 && rc != -EEXIST) return "seccomp_rule_add(" + name + ", errno): " + std::strerror(-rc);
  }
  b.skip.clear();
  // A listener exists only if some call is routed to it (a policy may turn every dangerous
  // call into an errno rule).
  *listener = false;
  for (const auto& name : kill) {
    if (notify && b.nr(name.c_str()) != __NR_SCMP_ERROR) *listener = true;
    b.add(notify ? SCMP_ACT_NOTIFY : SCMP_ACT_KILL_PROCESS, name.c_str());
  }
  return b.error;
}

}  // namespace

namespace {

// A filter context configured as every job's is: bad architecture killed, TSYNC.
std::optional<std::string> make_filter(const SeccompSpec& spec, pid_t self, bool notify, bool* listener,
                                       scmp_filter_ctx* out) {
  scmp_filter_ctx ctx = seccomp_init(default_action(spec));
  if (!ctx) return std::string("seccomp_init failed");
  std::optional<std::string> err;
  int rc;
  if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) != 0)
    err = std::string("seccomp_attr_set(BADARCH): ") + std::strerror(-rc);
  else if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) != 0)
    err = std::string("seccomp_attr_set(TSYNC): ") + std::strerror(-rc);
  if (!err) err = build(ctx, spec, notify, self, listener);
  if (err) {
    seccomp_release(ctx);
    return err;
  }
  *out = ctx;
  return std::nullopt;
}

// Notification needs API level 6 (TSYNC together with a listener, kernel 5.7+).
bool notify_supported() {
  return seccomp_api_get() >= 6;
}

}  // namespace

std::optional<std::string> compile_seccomp(const SeccompSpec& spec, pid_t for_pid, SeccompProgram* out) {
  const bool notify = notify_supported();
  scmp_filter_ctx ctx = nullptr;
  bool listener = false;
  if (auto e = make_filter(spec, for_pid, notify, &listener, &ctx)) return e;
  // libseccomp 2.5 exports BPF only to an fd.
  std::optional<std::string> err;
  int fd = memfd_create("wasmjail-seccomp", MFD_CLOEXEC);
  if (fd < 0) {
    err = errno_message("memfd_create", errno);
  } else if (int rc = seccomp_export_bpf(ctx, fd); rc != 0) {
    err = std::string("seccomp_export_bpf: ") + std::strerror(-rc);
  } else {
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || size % 8 != 0 || size > (1 << 20)) {
      err = "seccomp_export_bpf: unexpected program size " + std::to_string(size);
    } else {
      out->code.resize(static_cast<size_t>(size) / 8);
      if (pread(fd, out->code.data(), static_cast<size_t>(size), 0) != size)
        err = "seccomp_export_bpf: short read";
    }
  }
  if (fd >= 0) close(fd);
  seccomp_release(ctx);
  out->for_pid = for_pid;
  out->notify = notify;
  out->listener = listener;
  return err;
}

std::optional<std::string> install_seccomp(const SeccompSpec& spec, int* listener_fd,
                                           const SeccompProgram* precompiled) {
  *listener_fd = -1;
  // The handler first (on its own stack: the fault may be a stack overflow attempt), the
  // filter after: from then on nothing may change SIGSYS.
  stack_t ss{};
  ss.ss_sp = g_altstack;
  ss.ss_size = sizeof g_altstack;
  if (sigaltstack(&ss, nullptr) != 0) return errno_message("sigaltstack", errno);
  struct sigaction sa {};
  sa.sa_sigaction = on_sigsys;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigfillset(&sa.sa_mask);
  if (sigaction(SIGSYS, &sa, nullptr) != 0) return errno_message("sigaction(SIGSYS)", errno);

  const bool notify = notify_supported();
  if (precompiled && precompiled->for_pid == getpid() && precompiled->notify == notify &&
      !precompiled->code.empty()) {
    // The same program libseccomp would load here, with the flags seccomp_load uses for
    // TSYNC (+ a listener). no_new_privs is already set (lockdown step 5).
    sock_fprog prog{static_cast<unsigned short>(precompiled->code.size()),
                    reinterpret_cast<sock_filter*>(const_cast<uint64_t*>(precompiled->code.data()))};
    if (precompiled->code.size() > 0xffff) return std::string("seccomp: precompiled program too long");
    unsigned flags = SECCOMP_FILTER_FLAG_TSYNC;
    if (precompiled->listener) flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
    long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    if (rc < 0) return errno_message("seccomp(SECCOMP_SET_MODE_FILTER)", errno);
    if (precompiled->listener) {
      *listener_fd = static_cast<int>(rc);
    } else if (rc != 0) {
      return "seccomp: TSYNC failed for thread " + std::to_string(rc);
    }
    return std::nullopt;
  }

  scmp_filter_ctx ctx = nullptr;
  bool listener = false;
  if (auto e = make_filter(spec, getpid(), notify, &listener, &ctx)) return e;
  std::optional<std::string> err;
  int rc;
  if ((rc = seccomp_load(ctx)) != 0) err = std::string("seccomp_load: ") + std::strerror(-rc);
  if (!err && listener) {
    *listener_fd = seccomp_notify_fd(ctx);
    if (*listener_fd < 0) err = "seccomp_notify_fd: no listener";
  }
  seccomp_release(ctx);
  return err;
}

std::optional<std::string> check_shared_net(const SandboxSpec& spec) {
  if (spec.net_ns_kind != NetNsKind::kSharedEmpty) return std::nullopt;
  const std::string field = "isolation.net_namespace_kind: shared_empty";
  if (spec.seccomp.mode != Mode::kRequired)
    return field + " needs a required seccomp filter (it is what keeps jobs from creating sockets in the " +
           "namespace they share)";
  auto in = [](const auto& list, const std::string& name, auto key) {
    return std::any_of(std::begin(list), std::end(list), [&](const auto& x) { return key(x) == name; });
  };
  // Every call that makes a socket fd out of nothing: abstract unix sockets, the one thing
  // jobs in one network namespace could reach each other through, need one of them.
  for (const char* name : {"socket", "socketpair", "io_uring_setup"}) {
    const std::string n = name;
    const bool denied = in(kDangerous, n, [](const char* x) { return std::string(x); }) ||
                        in(spec.seccomp.kill, n, [](const std::string& x) { return x; }) ||
                        in(spec.seccomp.errno_rules, n, [](const ErrnoRule& r) { return r.name; });
    const bool allowed = in(spec.seccomp.allow, n, [](const SyscallRule& r) { return r.name; });
    if (allowed || !denied)
      return field + " is safe only while seccomp denies " + n + ", which this policy's filter would allow";
  }
  return std::nullopt;
}

void seccomp_handshake() {
  syscall(SYS_personality, kHandshakePersona);
}

}  // namespace wj::sandbox
