// Names the policy language shares with the sandbox: syscall names (resolved through
// libseccomp for this architecture), errno names (through glibc), and the built-in sets
// of syscalls a policy can never allow.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wj::seccomp_names {

// Always fatal in the sandbox, whatever a policy says: ways out of the sandbox (exec,
// ptrace, namespaces, mounts, sockets), kernel attack surface (bpf, io_uring,
// userfaultfd, perf_event_open, keyrings) and host administration (modules, reboot).
const std::vector<std::string_view>& dangerous_syscalls();
// Answered with ENOSYS instead of being killed, so libc falls back (clone3 -> clone).
const std::vector<std::string_view>& enosys_syscalls();
bool is_dangerous(std::string_view name);
bool is_enosys(std::string_view name);

// The syscall number on the native architecture; nullopt when libseccomp does not know
// the name or it is not a real syscall here (a multiplexed pseudo-syscall).
std::optional<int> resolve_syscall(const std::string& name);
// Every syscall name of the native architecture (for "did you mean" suggestions).
const std::vector<std::string>& all_syscall_names();

// "EPERM" -> 1. Aliases glibc does not name (EWOULDBLOCK, EDEADLOCK, ENOTSUP) included.
std::optional<int> resolve_errno(std::string_view name);
const std::vector<std::string>& all_errno_names();
// 1 -> "EPERM" (empty when unknown).
std::string errno_name(int value);

}  // namespace wj::seccomp_names
