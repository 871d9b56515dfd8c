// `wasmjail doctor`: which sandbox mechanisms this host supports, and which of the
// shipped policies can run here (each is tried for real on an empty module, through the
// same supervisor and lock-down as any job). Exit 0 when `default` can run.
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "policies/policy.h"
#include "sandbox/cgroup.h"
#include "sandbox/lockdown.h"
#include "supervisor/policy_sandbox.h"
#include "supervisor/supervisor.h"
#include "v8host/engine.h"

#ifndef LANDLOCK_CREATE_RULESET_VERSION
#define LANDLOCK_CREATE_RULESET_VERSION (1U << 0)
#endif

namespace wj::cli {
namespace {

constexpr const char* kUsage =
    "usage: wasmjail doctor [--policy-dir DIR]...\n"
    "\n"
    "Says which sandbox mechanisms this host supports (namespaces, Landlock, seccomp user\n"
    "notification, cgroups, the wasm trap handler) and which of the shipped policies can run\n"
    "here, by running an empty module under each. Exit 0 when `default` can run, else 1.\n";

// (module (func (export "_start"))): runs no code, but goes through the whole lock-down.
const std::vector<uint8_t> kEmptyModule = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01,
                                           0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02, 0x01, 0x00,
                                           0x07, 0x0a, 0x01, 0x06, 0x5f, 0x73, 0x74, 0x61, 0x72,
                                           0x74, 0x00, 0x00, 0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b};

// Whether the kernel lets this process create a child in these namespaces.
std::string try_clone(unsigned long flags) {
  long pid = syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid == 0) _exit(0);
  if (pid < 0) return std::string("no (") + std::strerror(errno) + ")";
  while (waitpid(static_cast<pid_t>(pid), nullptr, 0) < 0 && errno == EINTR) {
  }
  return "yes";
}

// Whether a fork server could make the shared empty network namespace of
// isolation.net_namespace_kind: shared_empty and still create job processes in it (a
// child does what the fork server would, then clones as for a job, without CLONE_NEWNET).
std::string shared_net_line() {
  int pipefd[2];
  if (pipe(pipefd) != 0) return std::string("no (pipe: ") + std::strerror(errno) + ")";
  pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    std::string out = "yes";
    if (auto e = sandbox::enter_shared_net_namespace()) {
      out = "no (" + *e + "): shared_empty jobs get their own";
    } else {
      const uid_t uid = geteuid();  // in the new user namespace the child is nobody until mapped
      const gid_t gid = getegid();
      long job = syscall(SYS_clone,
                         CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS | SIGCHLD,
                         nullptr, nullptr, nullptr, nullptr);
      if (job == 0) {
        _exit(sandbox::write_id_maps(uid, gid) ? 1 : 0);
      }
      int st = 0;
      pid_t w = -1;
      if (job > 0)
        while ((w = waitpid(static_cast<pid_t>(job), &st, 0)) < 0 && errno == EINTR) {
        }
      if (job < 0)
        out = std::string("no (clone inside it: ") + std::strerror(errno) +
              "): shared_empty jobs get their own";
      else if (w != job || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        out = "no (a job's uid/gid maps inside it): shared_empty jobs get their own";
    }
    (void)!write(pipefd[1], out.data(), out.size());
    _exit(0);
  }
  close(pipefd[1]);
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(pipefd[0]);
  if (pid > 0)
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  return out.empty() ? "no (the probe failed)" : out;
}

std::string landlock_line() {
  long abi = syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  if (abi < 1) return std::string("no (") + std::strerror(errno) + ")";
  return "yes, ABI " + std::to_string(abi);
}

std::string seccomp_notify_line() {
  std::ifstream f("/proc/sys/kernel/seccomp/actions_avail");
  std::string actions((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const bool kernel = actions.find("user_notif") != std::string::npos;
  const int api = seccomp_api_get();
  std::string s = kernel && api >= 6 ? "yes" : "no: dangerous calls are plain KILL_PROCESS";
  return s + " (kernel " + (kernel ? "has" : "lacks") + " user_notif, libseccomp API level " +
         std::to_string(api) + ", 6 needed)";
}

std::string cgroup_line() {
  const sandbox::CgroupHost& host = job_cgroup_host();
  if (host.version == sandbox::CgroupVersion::kNone) return "no: " + host.unavailable;
  std::string s = host.describe();
  // A job cgroup made and removed, as for a job: proves the folders are writable.
  std::string err;
  sandbox::CgroupLimits probe;
  if (host.has("pids")) probe.processes = 64;
  auto cg = sandbox::JobCgroup::create(host, sandbox::job_cgroup_name(0), probe, &err);
  if (!cg) return s + "; per-job cgroups: no (" + err + ")";
  if (auto e = cg->remove()) return s + "; per-job cgroups: made but not removed (" + *e + ")";
  if (host.version == sandbox::CgroupVersion::kV2)
    s += host.clone_into_cgroup ? "; CLONE_INTO_CGROUP: yes"
                                : "; CLONE_INTO_CGROUP: no (pid written before the go-ahead)";
  s += "; per-job cgroups: yes";
  // Moving a process into a cgroup write-locks the kernel's cgroup_threadgroup_rwsem, which
  // waits for an RCU grace period (5-20 ms measured on an idle v1 host) unless the
  // hierarchy favours dynamic changes (README, "Performance").
  std::ifstream mounts("/proc/mounts");
  std::ifstream cmdline("/proc/cmdline");
  std::string line, cmd((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  bool favor = cmd.find("cgroup_favordynmods=1") != std::string::npos ||
               cmd.find("cgroup_favordynmods=true") != std::string::npos ||
               cmd.find("cgroup_favordynmods=y") != std::string::npos;
  while (!favor && std::getline(mounts, line))
    favor = (line.find(" cgroup ") != std::string::npos || line.find(" cgroup2 ") != std::string::npos) &&
            line.find("favordynmods") != std::string::npos;
  return s + (favor ? "; joining one: no grace period (favordynmods)"
                    : "; joining one waits for an RCU grace period when none is under way (kernel "
                      "command line cgroup_favordynmods=true avoids it)");
}

}  // namespace

int doctor(int argc, char** argv) {
  std::vector<std::string> dirs;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--policy-dir" && i + 1 < argc) {
      dirs.push_back(argv[++i]);
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "wasmjail doctor: unexpected argument \"%s\"\n%s", a.c_str(), kUsage);
      return kExitUsage;
    }
  }
  std::vector<std::pair<std::string, std::string>> host = {
      {"user namespace", try_clone(CLONE_NEWUSER)},
      {"pid, net, ipc, uts, mount namespaces",
       try_clone(CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS)},
      {"shared empty net namespace", shared_net_line()},
      {"landlock", landlock_line()},
      {"seccomp user notification", seccomp_notify_line()},
      {"cgroup", cgroup_line()},
  };
  // Each shipped policy, tried for real (before V8 is touched in this process: the jobs are
  // clones of it, and the trap handler can be enabled only once per process).
  const auto search = policy_dirs(dirs);
  std::vector<std::pair<std::string, std::string>> verdicts;
  bool default_runs = false;
  for (const char* name : {"default", "strict", "dev"}) {
    auto p = load_policy(name, search);
    if (!p) {
      verdicts.emplace_back(name, "cannot be loaded: " + p.error().str());
      continue;
    }
    Job job;
    job.module_path = "doctor-probe.wasm";
    job.module_bytes = kEmptyModule;
    job.argv = {"doctor-probe.wasm"};
    RunOptions o;
    o.policy = std::make_shared<Policy>(p.value());
    o.v8_flags = v8_flags_for(o.policy->wasm);
    Result r = run_job(job, std::move(o));
    std::string v = r.status == Status::kOk
                        ? "can run"
                        : "cannot run: " + std::string(to_string(r.status)) + ": " + r.error;
    if (r.status == Status::kOk && r.sandbox && !r.sandbox->skipped.empty()) {
      v += " (best effort, skipped:";
      for (const auto& s : r.sandbox->skipped) v += " " + s;
      v += ")";
    }
    if (std::string(name) == "default") default_runs = r.status == Status::kOk;
    verdicts.emplace_back(name, v);
  }
  rlimit as{};
  getrlimit(RLIMIT_AS, &as);
  std::string trap = wasm_trap_handler_available() ? "yes" : "no (V8 bounds-checks every memory access)";
  if (as.rlim_cur != RLIM_INFINITY)
    trap += "; RLIMIT_AS is limited: wasm memories need ~10 GiB of address space each";
  host.emplace_back("wasm trap handler", trap);

  std::printf("host mechanisms:\n");
  for (const auto& [k, v] : host) std::printf("  %-38s %s\n", (k + ":").c_str(), v.c_str());
  std::printf("shipped policies:\n");
  for (const auto& [k, v] : verdicts) std::printf("  %-38s %s\n", (k + ":").c_str(), v.c_str());
  return default_runs ? 0 : 1;
}

}  // namespace wj::cli
