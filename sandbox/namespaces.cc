// Namespaces: the job process is created inside new user/pid/net/ipc/uts/mount namespaces
// with a raw clone(flags|SIGCHLD), which returns in both processes like fork(). A pid
// namespace only applies to children created in it, hence clone rather than unshare.
//   user:  the child's "root" holds no privilege outside it (uid mapped to the supervisor's)
//   pid:   the child sees no other process and can signal none
//   net:   only a down loopback: no network at all (per job, or one shared empty namespace
//          the fork server made: enter_shared_net_namespace)
//   ipc:   no SysV IPC or POSIX message queues shared with the host
//   uts:   its own hostname
//   mount: its own mount table, pivoted into an empty root (mounts.cc)
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox/cgroup.h"
#include "sandbox/lockdown.h"

namespace wj::sandbox {
namespace {

struct NsFlag {
  Mechanism mech;
  unsigned long flag;
};
constexpr NsFlag kNamespaces[] = {
    {Mechanism::kUserNs, CLONE_NEWUSER}, {Mechanism::kPidNs, CLONE_NEWPID},
    {Mechanism::kNetNs, CLONE_NEWNET},   {Mechanism::kIpcNs, CLONE_NEWIPC},
    {Mechanism::kUtsNs, CLONE_NEWUTS},   {Mechanism::kMountNs, CLONE_NEWNS},
};

bool refused(int err) {
  return err == EPERM || err == EINVAL || err == ENOSPC || err == EUSERS;
}

bool write_file(const char* path, const std::string& data, int* err) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return *err = errno, false;
  ssize_t n = write(fd, data.data(), data.size());
  *err = errno;
  close(fd);
  return n == static_cast<ssize_t>(data.size());
}

// enter_shared_net_namespace's outcome in this process: 0 not tried, 1 in it, -1 failed.
int g_shared_net = 0;
std::string g_shared_net_error;

}  // namespace

bool in_shared_net_namespace() {
  return g_shared_net == 1;
}

std::optional<std::string> enter_shared_net_namespace() {
  if (g_shared_net == 1) return std::nullopt;
  if (g_shared_net == -1) return g_shared_net_error;
  const uid_t uid = geteuid();
  const gid_t gid = getegid();
  // One call: the kernel creates the user namespace first and makes it the owner of the new
  // network namespace. Fails (changing nothing) in a multi-threaded process.
  if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) {
    g_shared_net = -1;
    g_shared_net_error = errno_message("unshare(CLONE_NEWUSER|CLONE_NEWNET)", errno);
    return g_shared_net_error;
  }
  // Our own ids onto themselves, as each job's map (write_id_maps): the jobs' maps, made
  // inside this namespace, then still resolve to the same host ids.
  if (auto e = write_id_maps(uid, gid)) {
    // Half-made: a job cloned from here cannot map its ids and ends setup_error (fail closed).
    g_shared_net = -1;
    g_shared_net_error = "shared network namespace: " + *e;
    return g_shared_net_error;
  }
  g_shared_net = 1;
  return std::nullopt;
}

void wait_for_go_ahead(int fd) {
  char c = 0;
  ssize_t got;
  do got = read(fd, &c, 1);
  while (got < 0 && errno == EINTR);
  if (got != 1) _exit(0);
  close(fd);
}

CloneResult clone_job_process(const SandboxSpec& spec, unsigned long extra_flags, pid_t supervisor,
                              int cgroup_fd) {
  CloneResult r;
  r.outer_uid = geteuid();
  r.outer_gid = getegid();
  if (auto e = check_shared_net(spec)) return r.error = *e, r;
  // A shared_empty job of a process that made the shared namespace stays in it; anywhere
  // else (a direct clone) it gets its own, as per_job: never the caller's namespace.
  const bool shared_net = spec.net_ns_kind == NetNsKind::kSharedEmpty && spec.net_ns != Mode::kOff &&
                          !(spec.simulate_unavailable & bit(Mechanism::kNetNs)) && in_shared_net_namespace();
  unsigned long flags = 0;
  for (const NsFlag& ns : kNamespaces) {
    Mode m = mode_of(spec, ns.mech);
    if (m == Mode::kOff) continue;
    if (ns.flag == CLONE_NEWNET && shared_net) continue;
    if (spec.simulate_unavailable & bit(ns.mech)) {
      if (m == Mode::kRequired)
        return r.error = std::string(mechanism_name(ns.mech)) + " is required but unavailable (simulated)", r;
      r.skipped |= bit(ns.mech);
      continue;
    }
    flags |= ns.flag;
  }
  // A pidfd of ourselves lets the child check we are alive even from a new pid namespace.
  int self_pidfd = static_cast<int>(syscall(SYS_pidfd_open, supervisor > 0 ? supervisor : getpid(), 0));
  for (;;) {
    long pid = -1;
    // Born in its cgroup where the kernel can; otherwise the caller writes the pid before
    // the go-ahead (a failed clone3 is retried as a plain clone, which may say why).
    if (cgroup_fd >= 0) pid = clone_into_cgroup(flags | extra_flags, cgroup_fd);
    if (pid >= 0)
      r.in_cgroup = true;
    else
      pid = syscall(SYS_clone, flags | extra_flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
    if (pid >= 0) {
      r.pid = static_cast<pid_t>(pid);
      for (const NsFlag& ns : kNamespaces)
        if (flags & ns.flag) r.applied |= bit(ns.mech);
      if (shared_net) r.applied |= bit(Mechanism::kNetNs), r.shared_net = true;
      if (pid == 0) {
        r.parent_pidfd = self_pidfd;
      } else if (self_pidfd >= 0) {
        close(self_pidfd);
      }
      return r;
    }
    int err = errno;
    if (!refused(err) || flags == 0) {
      if (self_pidfd >= 0) close(self_pidfd);
      r.err = err;
      r.error = errno_message("clone", err);
      return r;
    }
    // Which namespace did the kernel refuse? Try each requested one alone; drop the
    // best_effort ones that fail, and fail the job on a required one.
    unsigned long keep = 0;
    std::string required_failure;
    for (const NsFlag& ns : kNamespaces) {
      if (!(flags & ns.flag)) continue;
      unsigned long probe = ns.flag | (ns.flag != CLONE_NEWUSER ? (flags & CLONE_NEWUSER) : 0);
      long p = syscall(SYS_clone, probe | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
      int perr = errno;
      if (p == 0) _exit(0);
      if (p > 0) {
        while (waitpid(static_cast<pid_t>(p), nullptr, 0) < 0 && errno == EINTR) {
        }
        keep |= ns.flag;
        continue;
      }
      if (mode_of(spec, ns.mech) == Mode::kRequired) {
        required_failure = std::string(mechanism_name(ns.mech)) +
                           " is required but the kernel refused it: " + errno_message("clone", perr);
        break;
      }
      r.skipped |= bit(ns.mech);
    }
    if (!required_failure.empty() || keep == flags) {
      if (self_pidfd >= 0) close(self_pidfd);
      r.err = err;
      r.error = required_failure.empty() ? errno_message("clone", err) : required_failure;
      return r;
    }
    flags = keep;
  }
}

std::optional<std::string> write_id_maps(uid_t uid, gid_t gid) {
  // Map the supervisor's own ids onto themselves: files the job writes belong to the
  // operator, and nothing else of the host's uids exists inside. setgroups must be denied
  // before an unprivileged gid_map write.
  int err = 0;
  if (!write_file("/proc/self/setgroups", "deny", &err) && err != ENOENT)
    return errno_message("write /proc/self/setgroups", err);
  if (!write_file("/proc/self/uid_map", std::to_string(uid) + " " + std::to_string(uid) + " 1\n", &err))
    return errno_message("write /proc/self/uid_map", err);
  if (!write_file("/proc/self/gid_map", std::to_string(gid) + " " + std::to_string(gid) + " 1\n", &err))
    return errno_message("write /proc/self/gid_map", err);
  return std::nullopt;
}

}  // namespace wj::sandbox
