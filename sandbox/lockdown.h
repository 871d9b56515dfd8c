// The child's lock-down sequence: one call that applies every mechanism, in order.
// Each kernel mechanism lives in its own file:
//   namespaces.cc   clone() into new user/pid/net/ipc/uts/mount namespaces; uid/gid maps
//   process.cc      parent death, session, no_new_privs, dumpability
//   fds.cc          close every fd but the pipes and preopens
//   mounts.cc       private mounts, an empty tmpfs root with only the job's trees, pivot_root
//   landlock.cc     filesystem access confined to the preopened trees
//   rlimits.cc      core 0, open files, file size, processes, data, stack, CPU
//   capabilities.cc every capability set emptied (effective, permitted, inheritable, bounding, ambient)
//   seccomp.cc      the syscall filter (libseccomp) and its SIGSYS handler
//   cgroup.cc       the job's cgroup: memory, processes, CPU (applied by the supervisor)
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sandbox/sandbox_spec.h"

namespace wj::sandbox {

// --- supervisor side: creating the job process -------------------------------------

struct CloneResult {
  pid_t pid = -1;         // like fork(): 0 in the child, the child's pid in the parent
  int err = 0;            // errno of a failed clone (pid < 0)
  std::string error;      // why the job cannot start (a required namespace refused, ...)
  uint32_t applied = 0;   // namespace Mechanism bits the child was created with
  uint32_t skipped = 0;   // best_effort namespaces this kernel or these privileges refused
  int parent_pidfd = -1;  // child only: a pidfd of the supervisor (for the parent check)
  uid_t outer_uid = 0;    // the supervisor's ids, for the child's uid_map/gid_map
  gid_t outer_gid = 0;
  bool in_cgroup = false;  // created in the job's cgroup (clone3 CLONE_INTO_CGROUP)
  bool shared_net = false;  // in the caller's shared empty network namespace (net_ns_kind)
  // Parent side: the job process waits for one byte on this socket before running anything
  // (-1: it does not wait). Whoever holds it joins the cgroup first, then sends the byte
  // (MSG_NOSIGNAL); closing it unsent makes the job process exit.
  int go_fd = -1;
};

// A filter compiled ahead of time (by the fork server, once per policy): the BPF program
// libseccomp generates for `spec` in a process whose pid is `for_pid` (the filter allows
// kill/tgkill of itself only). Building it costs a job about 1 ms.
struct SeccompProgram {
  pid_t for_pid = 0;
  bool notify = false;    // compiled for a kernel with user notification (else KILL_PROCESS)
  bool listener = false;  // some call is routed to the listener: ask for one when loading
  std::vector<uint64_t> code;    // struct sock_filter, 8 bytes each
};
// Creates the job process with a raw clone(flags|SIGCHLD), which behaves like fork():
// both processes return. Namespaces come from `spec`; a best_effort one the kernel refuses
// (EPERM, EINVAL, ENOSPC, EUSERS) is dropped and the clone retried; a required one that
// is refused (or simulated unavailable) fails with `error` and no child.
// `extra_flags` (CLONE_PARENT from the fork server) are added to the namespace flags;
// `supervisor` is the process the child must die with (0: the caller). With `cgroup_fd`
// (a v2 cgroup folder) the child is created in that cgroup when the kernel can
// (clone3 CLONE_INTO_CGROUP: `in_cgroup`), else by a plain clone.
CloneResult clone_job_process(const SandboxSpec& spec, unsigned long extra_flags = 0, pid_t supervisor = 0,
                              int cgroup_fd = -1);
// The child's side of the go-ahead: waits for the byte; exits quietly at EOF.
void wait_for_go_ahead(int fd);

// For the fork server (single-threaded), at its first shared_empty job: moves this process
// into a new user namespace (mapping only its own uid/gid onto themselves) and a new,
// empty network namespace (a down loopback) owned by it, once. From then on
// clone_job_process gives a shared_empty job this namespace instead of a new one; a job
// cannot join it any other way (setns needs CAP_SYS_ADMIN over the namespace's owner, which
// only a process inside that user namespace has). nullopt on success (also when already
// done); an error (and no change of namespace) otherwise, and then jobs get their own.
std::optional<std::string> enter_shared_net_namespace();
// Whether this process is in the namespace enter_shared_net_namespace made.
bool in_shared_net_namespace();
// seccomp.cc: nullopt when `spec` does not ask for shared_empty, or when its seccomp filter
// denies every call that creates a socket (socket, socketpair, io_uring_setup: required
// seccomp, each in the dangerous set, the policy's kill list or an errno rule, none allowed).
// Otherwise why shared_empty is unsafe, naming the policy field (the job must not run).
std::optional<std::string> check_shared_net(const SandboxSpec& spec);

// --- child side -----------------------------------------------------------------------

struct LockdownSpec {
  pid_t supervisor_pid = 0;              // die if this process goes away
  int supervisor_pidfd = -1;             // readable once the supervisor exits (works across pid namespaces)
  std::vector<int> keep_fds;             // everything else is closed
  const SandboxSpec* sandbox = nullptr;  // nullptr: the defaults
  std::vector<int> preopen_fds;          // parallel to sandbox->preopens (4, 5, ...)
  CloneResult clone;                     // what clone_job_process did for this child
  const SeccompProgram* seccomp_program = nullptr;  // the filter, compiled ahead (or null)
  bool warm_prepared = false;  // prepare_warm already did steps 1, 2 and the id maps
};

struct LockdownReport {
  uint32_t applied = 0;          // Mechanism bits
  uint32_t skipped = 0;          // best_effort mechanisms that were not available
  int seccomp_listener_fd = -1;  // the filter's user-notification fd (dangerous syscalls)
};

// Called by lock_down once the filter is loaded, to tell the supervisor what was applied
// and where the seccomp listener is (the child writes the sandbox record). lock_down then
// waits for the supervisor to take the listener (the handshake), makes the process
// undumpable and closes its own copy of the listener.
using Announce = std::function<void(const LockdownReport&)>;

// Applies every mechanism in the documented order (lockdown.cc). The first failure of a
// required mechanism is returned as a message naming the mechanism and errno; the caller
// must not run the guest after a failure.
std::optional<std::string> lock_down(const LockdownSpec& spec, const Announce& announce,
                                     LockdownReport* report);

// A warm pooled process, before any job is known: the steps of lock_down that depend on no
// job (parent death, a new session, every fd but `keep_fds` closed, the uid/gid maps). The
// rest, which needs the job's trees and limits, is lock_down with warm_prepared set.
std::optional<std::string> prepare_warm(const LockdownSpec& spec);

// Sends the readiness handshake through the seccomp listener (see seccomp.cc): returns
// once the supervisor holds the listener, so the guest never runs with dangerous syscalls
// unobserved.
void seccomp_handshake();
// The handshake is a query-only personality(0xffffffff): personality is in the dangerous
// set, so the kernel routes it to the listener. The supervisor accepts exactly one.
constexpr unsigned long kHandshakePersona = 0xffffffff;
// Set by the child before lock_down: reports a trapped syscall on the record pipe
// (async-signal-safe). sandbox/ knows nothing of the wire format.
extern void (*g_report_violation)(int32_t nr, uint32_t arch);

// Individual mechanisms (each in its own file). Return an error message on failure.
std::optional<std::string> die_with_parent(pid_t parent, int parent_pidfd);  // process.cc
std::optional<std::string> new_session();                                    // process.cc
std::optional<std::string> set_no_new_privs();                               // process.cc
std::optional<std::string> set_undumpable();                                 // process.cc
std::optional<std::string> close_fds_except(const std::vector<int>& keep);   // fds.cc
std::optional<std::string> disable_core_dumps();                             // rlimits.cc
std::optional<std::string> apply_rlimits(const RlimitSpec& spec);            // rlimits.cc
std::optional<std::string> write_id_maps(uid_t uid, gid_t gid);              // namespaces.cc
// mounts.cc: replaces each preopen fd with one opened through the new root.
std::optional<std::string> pivot_into_job_root(const std::vector<PreopenMount>& mounts,
                                               const std::vector<int>& preopen_fds);
// landlock.cc: nullopt on success; *unavailable is set when the kernel lacks Landlock.
std::optional<std::string> restrict_filesystem(const std::vector<PreopenMount>& mounts,
                                               const std::vector<int>& preopen_fds, bool* unavailable);
std::optional<std::string> drop_capabilities();  // capabilities.cc
// seccomp.cc: compiles what install_seccomp would load in a process with pid `for_pid`.
std::optional<std::string> compile_seccomp(const SeccompSpec& spec, pid_t for_pid, SeccompProgram* out);
// seccomp.cc: installs the SIGSYS handler, then loads the filter with TSYNC: `precompiled`
// when it was built for this pid and kernel, else built here from `spec`.
std::optional<std::string> install_seccomp(const SeccompSpec& spec, int* listener_fd,
                                           const SeccompProgram* precompiled = nullptr);

std::string errno_message(const char* what, int err);

}  // namespace wj::sandbox
