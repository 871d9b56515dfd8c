#include "sandbox/lockdown.h"

namespace wj::sandbox {

std::optional<std::string> lock_down(const LockdownSpec& spec, std::vector<std::string>* applied) {
  // Order matters:
  // 1. Parent death first, so a child orphaned at any later step is killed by the kernel.
  // 2. A new session: no signals from the supervisor's terminal, no controlling tty.
  // 3. Close every inherited fd but the pipes and preopens, before anything untrusted runs.
  // 4. No core dumps (a crash must not write guest memory to disk).
  // 5. no_new_privs + undumpable last among these: they also gate the seccomp filter
  //    that the sandbox issue adds after them.
  struct Step {
    const char* name;
    std::optional<std::string> (*fn)(const LockdownSpec&);
  };
  static constexpr Step kSteps[] = {
      {"die_with_parent", [](const LockdownSpec& s) { return die_with_parent(s.supervisor_pid); }},
      {"new_session", [](const LockdownSpec&) { return new_session(); }},
      {"close_fds", [](const LockdownSpec& s) { return close_fds_except(s.keep_fds); }},
      {"no_core_dumps", [](const LockdownSpec&) { return disable_core_dumps(); }},
      {"no_new_privs", [](const LockdownSpec&) { return no_new_privs_and_undumpable(); }},
  };
  for (const Step& step : kSteps) {
    if (auto err = step.fn(spec)) return std::string(step.name) + ": " + *err;
    if (applied) applied->push_back(step.name);
  }
  return std::nullopt;
}

}  // namespace wj::sandbox
