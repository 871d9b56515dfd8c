#include "policies/seccomp_names.h"

#include <seccomp.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

namespace wj::seccomp_names {

const std::vector<std::string_view>& dangerous_syscalls() {
  static const std::vector<std::string_view> k = {
      // leaving the sandbox or reaching other processes
      "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
      // kernel attack surface
      "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
      "keyctl", "add_key", "request_key", "personality", "seccomp", "lookup_dcookie",
      // namespaces and mounts
      "mount", "umount2", "pivot_root", "fsopen", "fsmount", "fsconfig", "fspick", "move_mount", "open_tree",
      "mount_setattr", "unshare", "setns", "chroot", "name_to_handle_at", "open_by_handle_at",
      // network
      "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
      // host administration
      "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
      "swapoff", "acct", "quotactl", "iopl", "ioperm", "settimeofday", "clock_settime", "clock_adjtime",
      "adjtimex", "sethostname", "setdomainname", "vhangup"};
  return k;
}

const std::vector<std::string_view>& enosys_syscalls() {
  static const std::vector<std::string_view> k = {"clone3"};
  return k;
}

bool is_dangerous(std::string_view name) {
  const auto& d = dangerous_syscalls();
  return std::find(d.begin(), d.end(), name) != d.end();
}

bool is_enosys(std::string_view name) {
  const auto& d = enosys_syscalls();
  return std::find(d.begin(), d.end(), name) != d.end();
}

std::optional<int> resolve_syscall(const std::string& name) {
  if (name.empty() || name.size() > 64 || name.find('\0') != std::string::npos) return std::nullopt;
  for (char c : name)
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
          c == '_'))
      return std::nullopt;
  int nr = seccomp_syscall_resolve_name(name.c_str());
  // Negative numbers other than the error are libseccomp's pseudo-syscalls: not real here.
  if (nr < 0) return std::nullopt;
  return nr;
}

const std::vector<std::string>& all_syscall_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (int nr = 0; nr < 1024; ++nr) {
      char* n = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
      if (n) out.emplace_back(n);
      std::free(n);
    }
    return out;
  }();
  return names;
}

namespace {
const std::map<std::string, int, std::less<>>& errno_table() {
  static const std::map<std::string, int, std::less<>> table = [] {
    std::map<std::string, int, std::less<>> t;
    for (int e = 1; e <= 4095; ++e)
      if (const char* n = strerrorname_np(e)) t.emplace(n, e);
    t.emplace("EWOULDBLOCK", EWOULDBLOCK);
    t.emplace("EDEADLOCK", EDEADLOCK);
    t.emplace("ENOTSUP", ENOTSUP);
    return t;
  }();
  return table;
}
}  // namespace

std::optional<int> resolve_errno(std::string_view name) {
  auto it = errno_table().find(name);
  if (it == errno_table().end()) return std::nullopt;
  return it->second;
}

const std::vector<std::string>& all_errno_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& [n, v] : errno_table()) out.push_back(n);
    return out;
  }();
  return names;
}

std::string errno_name(int value) {
  const char* n = value > 0 ? strerrorname_np(value) : nullptr;
  return n ? n : "";
}

}  // namespace wj::seccomp_names
