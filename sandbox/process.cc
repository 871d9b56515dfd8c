// Process-level mechanisms: parent death, session, no_new_privs, dumpability.
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox/lockdown.h"

namespace wj::sandbox {

std::string errno_message(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err) + " (errno " + std::to_string(err) + ")";
}

std::optional<std::string> die_with_parent(pid_t parent, int parent_pidfd) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return errno_message("prctl(PR_SET_PDEATHSIG)", errno);
  // The parent may have died between clone() and prctl(): then nobody would kill us.
  // In a new pid namespace getppid() is 0, so a pidfd of the supervisor (opened before the
  // clone) tells instead: it turns readable when that process exits.
  if (parent_pidfd >= 0) {
    pollfd p{parent_pidfd, POLLIN, 0};
    int n = poll(&p, 1, 0);
    close(parent_pidfd);
    if (n != 0) return "supervisor exited before the child was set up";
    return std::nullopt;
  }
  if (getppid() != parent) return "supervisor exited before the child was set up";
  return std::nullopt;
}

std::optional<std::string> new_session() {
  if (setsid() < 0) return errno_message("setsid", errno);
  return std::nullopt;
}

std::optional<std::string> set_no_new_privs() {
  // No exec can ever gain privileges (setuid bits, file caps); also what lets an
  // unprivileged process use Landlock and seccomp.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno_message("prctl(PR_SET_NO_NEW_PRIVS)", errno);
  return std::nullopt;
}

std::optional<std::string> set_undumpable() {
  // Not dumpable: no core file, and other same-uid processes cannot ptrace or read its memory.
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return errno_message("prctl(PR_SET_DUMPABLE)", errno);
  return std::nullopt;
}

}  // namespace wj::sandbox
