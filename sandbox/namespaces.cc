// Namespaces: the job process is created inside new user/pid/net/ipc/uts/mount namespaces
// with a raw clone(flags|SIGCHLD), which returns in both processes like fork(). A pid
// namespace only applies to children created in it, hence clone rather than unshare.
//   user:  the child's "root" holds no privilege outside it (uid mapped to the supervisor's)
//   pid:   the child sees no other process and can signal none
//   net:   only a down loopback: no network at all
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

}  // namespace

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
  unsigned long flags = 0;
  for (const NsFlag& ns : kNamespaces) {
    Mode m = mode_of(spec, ns.mech);
    if (m == Mode::kOff) continue;
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
