// The sandbox driven by a SandboxSpec (what the policy layer maps a Policy onto), in-process
// through run_job: required mechanisms that are unavailable refuse to run, bad filter input
// is a setup_error (never an unfiltered run), off means off.
#include <boost/test/unit_test.hpp>

#include <algorithm>

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include <filesystem>

#include "supervisor/supervisor.h"
#include "tests/testlib.h"

namespace fs = std::filesystem;
using wj::sandbox::Mode;

namespace {

wj::Result run_hello(const wj::sandbox::SandboxSpec& spec) {
  wj::Job job;
  job.module_path = wjt::guest("hello");
  job.argv = {"hello", "x"};
  wj::RunOptions opts;
  opts.sandbox = spec;
  return wj::run_job(job, opts);
}

std::vector<std::string> v(std::initializer_list<const char*> l) {
  return {l.begin(), l.end()};
}

// The escape probe guest (this test links the probe engine) making syscall `nr`.
wj::Result run_probe(const wj::sandbox::SandboxSpec& spec, std::vector<std::string> args) {
  wj::Job job;
  job.module_path = wjt::guest("probe");
  job.argv = {"probe"};
  job.argv.insert(job.argv.end(), args.begin(), args.end());
  wj::RunOptions opts;
  opts.sandbox = spec;
  return wj::run_job(job, opts);
}

}  // namespace

BOOST_AUTO_TEST_CASE(defaults_apply_everything) {
  wj::Result r = run_hello({});
  BOOST_TEST(wj::to_string(r.status) == "ok");
  BOOST_TEST(r.out.data == "Hello, x!\n");
  BOOST_REQUIRE(r.sandbox);
  BOOST_TEST(r.sandbox->applied == v({"user_ns", "pid_ns", "net_ns", "ipc_ns", "uts_ns", "mount_ns",
                                      "landlock", "seccomp", "capabilities", "rlimits"}));
}

BOOST_AUTO_TEST_CASE(required_but_unavailable_is_setup_error) {
  struct Case {
    wj::sandbox::Mechanism m;
    std::string error;
  };
  using M = wj::sandbox::Mechanism;
  for (const Case& c : {Case{M::kUserNs, "user_ns is required but unavailable (simulated)"},
                        Case{M::kPidNs, "pid_ns is required but unavailable (simulated)"},
                        Case{M::kNetNs, "net_ns is required but unavailable (simulated)"},
                        Case{M::kMountNs, "mount_ns is required but unavailable (simulated)"},
                        Case{M::kLandlock, "sandbox setup failed: landlock: unavailable (simulated)"},
                        Case{M::kSeccomp, "sandbox setup failed: seccomp: unavailable (simulated)"}}) {
    wj::sandbox::SandboxSpec spec;
    spec.user_ns = spec.pid_ns = spec.net_ns = spec.mount_ns = spec.landlock = Mode::kRequired;
    spec.simulate_unavailable = wj::sandbox::bit(c.m);
    wj::Result r = run_hello(spec);
    BOOST_TEST_CONTEXT(wj::sandbox::mechanism_name(c.m)) {
      BOOST_TEST(wj::to_string(r.status) == "setup_error");
      BOOST_TEST(r.error == c.error);
      BOOST_TEST(r.out.data == "");
    }
  }
}

// Fail closed: when neither the empty root nor Landlock can confine the filesystem, a job
// whose policy requires it (the shipped default does) does not run; best_effort runs and
// says "filesystem" was skipped.
BOOST_AUTO_TEST_CASE(filesystem_unconfined_is_setup_error_when_required) {
  wj::sandbox::SandboxSpec spec;
  spec.simulate_unavailable = wj::sandbox::bit(wj::sandbox::Mechanism::kMountNs) |
                              wj::sandbox::bit(wj::sandbox::Mechanism::kLandlock);
  spec.filesystem = Mode::kRequired;
  wj::Result r = run_hello(spec);
  BOOST_TEST(wj::to_string(r.status) == "setup_error");
  BOOST_TEST(r.error.find("filesystem: neither a mount namespace nor Landlock could confine the filesystem") !=
             std::string::npos);
  BOOST_TEST(r.out.data == "");
  spec.filesystem = Mode::kBestEffort;
  r = run_hello(spec);
  BOOST_TEST(wj::to_string(r.status) == "ok");
  BOOST_REQUIRE(r.sandbox);
  BOOST_TEST(std::count(r.sandbox->skipped.begin(), r.sandbox->skipped.end(), "filesystem") == 1);
  // The shipped default policy, through `run`: setup_error; `dev` runs, with a warning.
  auto d = wjt::run({wjt::binary(), "run", wjt::guest("hello")}, {"WASMJAIL_TEST_UNAVAILABLE=mount_ns,landlock"});
  BOOST_TEST(d.exit_code != 0);
  BOOST_TEST(d.err.find("filesystem: neither a mount namespace nor Landlock") != std::string::npos);
  BOOST_TEST(d.out == "");
  auto dev = wjt::run({wjt::binary(), "run", "--policy", "dev", wjt::guest("hello")},
                      {"WASMJAIL_TEST_UNAVAILABLE=mount_ns,landlock"});
  BOOST_TEST(dev.exit_code == 0);
  BOOST_TEST(dev.warnings.find("wasmjail: warning: sandbox mechanisms skipped (best_effort in the policy):") !=
             std::string::npos);
  BOOST_TEST(dev.warnings.find("filesystem") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(off_means_not_applied) {
  wj::sandbox::SandboxSpec spec;
  spec.user_ns = spec.pid_ns = spec.net_ns = spec.ipc_ns = spec.uts_ns = spec.mount_ns = Mode::kOff;
  spec.landlock = spec.filesystem = Mode::kOff;
  wj::Result r = run_hello(spec);
  BOOST_TEST(wj::to_string(r.status) == "ok");
  BOOST_REQUIRE(r.sandbox);
  BOOST_TEST(r.sandbox->applied == v({"seccomp", "capabilities", "rlimits"}));
  BOOST_TEST(r.sandbox->skipped.empty());
}

BOOST_AUTO_TEST_CASE(bad_filter_input_is_setup_error_never_unfiltered) {
  wj::sandbox::SandboxSpec spec;
  spec.seccomp.allow.push_back({"no_such_syscall", {}});
  wj::Result r = run_hello(spec);
  BOOST_TEST(wj::to_string(r.status) == "setup_error");
  BOOST_TEST(r.error == "sandbox setup failed: seccomp: seccomp: unknown syscall \"no_such_syscall\"");
  BOOST_TEST(r.out.data == "");

  spec = {};
  spec.seccomp.allow.push_back({"execve", {}});
  r = run_hello(spec);
  BOOST_TEST(wj::to_string(r.status) == "setup_error");
  BOOST_TEST(r.error ==
             "sandbox setup failed: seccomp: seccomp: execve is in the dangerous set and cannot be allowed");

  spec = {};
  spec.seccomp.allow.push_back({"getppid", {{7, wj::sandbox::ArgCondition::Op::kEq, 0, 0}}});
  r = run_hello(spec);
  BOOST_TEST(wj::to_string(r.status) == "setup_error");
  BOOST_TEST(r.error == "sandbox setup failed: seccomp: seccomp: argument index 7 for getppid (0..5)");
}

BOOST_AUTO_TEST_CASE(policy_rules_extend_the_filter) {
  wj::sandbox::SandboxSpec spec;
  spec.seccomp.allow.push_back({"getppid", {}});
  spec.seccomp.kill.push_back("getcwd");
  spec.seccomp.kill.push_back("gettimeofday");  // overrides a built-in allow (vDSO serves it)
  spec.seccomp.errno_rules.push_back({"socket", EACCES});
  wj::Result r = run_hello(spec);
  BOOST_TEST(wj::to_string(r.status) == "ok");
  BOOST_TEST(r.out.data == "Hello, x!\n");

  r = run_probe(spec, {std::to_string(SYS_getppid)});
  BOOST_TEST(wj::to_string(r.status) == "ok");
  BOOST_TEST(r.out.data == "result=0\n");  // allowed; the parent is outside its pid namespace
  r = run_probe(spec, {std::to_string(SYS_socket), "2", "1", "0"});
  BOOST_TEST(wj::to_string(r.status) == "ok");
  BOOST_TEST(r.out.data == "result=-13\n");  // the errno rule replaces the dangerous-set kill
  r = run_probe(spec, {std::to_string(SYS_getcwd)});
  BOOST_TEST(wj::to_string(r.status) == "violation");
  BOOST_REQUIRE(r.violation);
  BOOST_TEST(r.violation->syscall == "getcwd");
}

BOOST_AUTO_TEST_CASE(default_actions) {
  using A = wj::sandbox::SeccompSpec::DefaultAction;
  wj::sandbox::SandboxSpec spec;
  spec.seccomp.default_action = A::kErrno;
  spec.seccomp.default_errno = EPERM;
  wj::Result r = run_probe(spec, {std::to_string(SYS_ioctl), "1", "0x5401"});
  BOOST_TEST(wj::to_string(r.status) == "ok");
  BOOST_TEST(r.out.data == "result=-1\n");
  // KILL_PROCESS leaves no record: violation with an unknown syscall.
  spec.seccomp.default_action = A::kKill;
  r = run_probe(spec, {std::to_string(SYS_ioctl), "1", "0x5401"});
  BOOST_TEST(wj::to_string(r.status) == "violation");
  BOOST_REQUIRE(r.violation);
  BOOST_TEST(r.violation->syscall == "unknown");
  BOOST_TEST(r.error == "the job made a forbidden system call: unknown");
  // The dangerous set is killed whatever the default action.
  spec.seccomp.default_action = A::kLog;
  r = run_probe(spec, {std::to_string(SYS_ptrace)});
  BOOST_TEST(wj::to_string(r.status) == "violation");
  BOOST_REQUIRE(r.violation);
  BOOST_TEST(r.violation->syscall == "ptrace");
}

BOOST_AUTO_TEST_CASE(best_effort_mount_namespace_with_odd_guest_paths) {
  // Nested, relative and root guest paths get private mount points; the job still runs.
  std::string a = wjt::temp_dir(), b = wjt::temp_dir(), c = wjt::temp_dir();
  wj::Job job;
  job.module_path = wjt::guest("hello");
  job.argv = {"hello", "y"};
  job.dirs = {{a, "/data", true}, {b, "/data/sub", false}, {c, "/", true}};
  wj::RunOptions opts;
  opts.sandbox.mount_ns = Mode::kRequired;
  wj::Result r = wj::run_job(job, opts);
  BOOST_TEST(wj::to_string(r.status) == "ok", r.error);
  BOOST_TEST(r.out.data == "Hello, y!\n");
}
