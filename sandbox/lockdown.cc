#include "sandbox/lockdown.h"

#include <unistd.h>

namespace wj::sandbox {

std::optional<std::string> lock_down(const LockdownSpec& spec, const Announce& announce,
                                     LockdownReport* report) {
  static const SandboxSpec kDefaults;
  const SandboxSpec& sb = spec.sandbox ? *spec.sandbox : kDefaults;
  LockdownReport rep;
  rep.applied = spec.clone.applied & ~bit(Mechanism::kMountNs);  // the mount ns counts once pivoted
  rep.skipped = spec.clone.skipped;

  // A mechanism that failed: fatal when required, recorded when best_effort.
  auto outcome = [&](Mechanism m, std::optional<std::string> err) -> std::optional<std::string> {
    if (!err) {
      rep.applied |= bit(m);
      return std::nullopt;
    }
    if (mode_of(sb, m) == Mode::kRequired) return std::string(mechanism_name(m)) + ": " + *err;
    rep.skipped |= bit(m);
    return std::nullopt;
  };
  auto simulated = [&](Mechanism m) -> std::optional<std::string> {
    if (sb.simulate_unavailable & bit(m)) return std::string("unavailable (simulated)");
    return std::nullopt;
  };
  auto wanted = [&](Mechanism m) { return mode_of(sb, m) != Mode::kOff; };

  // Order matters:
  // 1. Parent death first, so a child orphaned at any later step is killed by the kernel.
  if (auto e = die_with_parent(spec.supervisor_pid, spec.supervisor_pidfd)) return "die_with_parent: " + *e;
  // 2. A new session: no signals from the supervisor's terminal, no controlling tty.
  if (auto e = new_session()) return "new_session: " + *e;
  // 3. Close every inherited fd but the pipes and preopens, before anything untrusted runs
  //    and before the mount namespace is built (no fd may pin a host directory).
  if (auto e = close_fds_except(spec.keep_fds)) return "close_fds: " + *e;
  // 4. Namespaces were entered by clone (namespaces.cc). What needs privileges or host paths
  //    comes now, while we still have both: the uid/gid maps (through /proc), then the
  //    mount namespace's new root (which has no /proc).
  if (spec.clone.applied & bit(Mechanism::kUserNs))
    if (auto e = write_id_maps(spec.clone.outer_uid, spec.clone.outer_gid)) return "user_ns: " + *e;
  if (spec.clone.applied & bit(Mechanism::kMountNs))
    if (auto e = outcome(Mechanism::kMountNs, pivot_into_job_root(sb.preopens, spec.preopen_fds))) return e;
  // 5. no_new_privs: nothing we could still exec gains privileges, and Landlock and seccomp
  //    require it from a process without CAP_SYS_ADMIN.
  if (auto e = set_no_new_privs()) return "no_new_privs: " + *e;
  // 6. Landlock on the (new) preopen fds: confines path lookups even through fds that the
  //    mount namespace did not cover, and TCP/signals/abstract sockets on newer kernels.
  if (wanted(Mechanism::kLandlock)) {
    bool unavailable = false;
    std::optional<std::string> e = simulated(Mechanism::kLandlock);
    if (!e) e = restrict_filesystem(sb.preopens, spec.preopen_fds, &unavailable);
    if (auto f = outcome(Mechanism::kLandlock, e)) return f;
  }
  //    Fail closed: a job whose policy requires the filesystem confined does not run with
  //    host paths reachable (neither the empty root nor Landlock held).
  if (sb.filesystem == Mode::kRequired && !(rep.applied & (bit(Mechanism::kMountNs) | bit(Mechanism::kLandlock))))
    return "filesystem: neither a mount namespace nor Landlock could confine the filesystem, and the policy requires "
           "it (isolation.filesystem: required)";
  // 7. rlimits (core 0 always): set while setrlimit is still allowed.
  if (auto e = outcome(Mechanism::kRlimits, apply_rlimits(sb.rlimits))) return e;
  // 8. Capabilities, once nothing needs them (the mounts needed CAP_SYS_ADMIN in the user
  //    namespace); dropping the bounding set needs CAP_SETPCAP, so this cannot come earlier.
  if (wanted(Mechanism::kCapabilities)) {
    std::optional<std::string> e = simulated(Mechanism::kCapabilities);
    if (!e) e = drop_capabilities();
    if (auto f = outcome(Mechanism::kCapabilities, e)) return f;
  }
  // 9. The caller has set V8's entropy source (getrandom, a pointer set, no syscall).
  // 10. seccomp last: every step above makes syscalls the filter forbids. It is installed
  //     before V8 starts its worker threads, so every thread inherits it (TSYNC anyway).
  if (wanted(Mechanism::kSeccomp)) {
    std::optional<std::string> e = simulated(Mechanism::kSeccomp);
    if (!e) e = install_seccomp(sb.seccomp, &rep.seccomp_listener_fd, spec.seccomp_program);
    if (auto f = outcome(Mechanism::kSeccomp, e)) return f;
  }
  // 11. Tell the supervisor, and wait until it holds the listener (pidfd_getfd needs the
  //     child still dumpable when the supervisor is not root). No guest code has run yet.
  if (announce) announce(rep);
  if (rep.seccomp_listener_fd >= 0) seccomp_handshake();
  // 12. Not dumpable (the filter allows exactly this prctl, only towards 0), and our copy
  //     of the listener closed: the fd table is the pipes and the preopens.
  if (auto e = set_undumpable()) return "undumpable: " + *e;
  if (rep.seccomp_listener_fd >= 0) close(rep.seccomp_listener_fd);
  if (report) *report = rep;
  return std::nullopt;
}

}  // namespace wj::sandbox
