// The child's lock-down sequence: one call that applies every mechanism, in order.
// Each kernel mechanism lives in its own file (fds.cc, process.cc, rlimits.cc, ...).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace wj::sandbox {

struct LockdownSpec {
  pid_t supervisor_pid = 0;   // die if this process goes away
  std::vector<int> keep_fds;  // everything else is closed
};

// Applied mechanisms are listed in `applied`; the first failure is returned as a message
// naming the mechanism and errno. The caller must not run the guest after a failure.
std::optional<std::string> lock_down(const LockdownSpec& spec, std::vector<std::string>* applied);

// Individual mechanisms (each in its own file). Return an error message on failure.
std::optional<std::string> die_with_parent(pid_t parent);                  // process.cc
std::optional<std::string> new_session();                                  // process.cc
std::optional<std::string> no_new_privs_and_undumpable();                  // process.cc
std::optional<std::string> close_fds_except(const std::vector<int>& keep); // fds.cc
std::optional<std::string> disable_core_dumps();                           // rlimits.cc

std::string errno_message(const char* what, int err);

}  // namespace wj::sandbox
