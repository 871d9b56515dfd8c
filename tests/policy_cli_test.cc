// End-to-end: `wasmjail policy check|show` and `wasmjail run --policy`.
#include <boost/test/unit_test.hpp>

#include <filesystem>

#include "tests/testlib.h"

using wjt::binary;
using wjt::guest;
using wjt::run;

namespace {
const std::string kFixtures = WJ_POLICY_FIXTURES;
const std::string kShipped = WJ_SHIPPED_POLICIES;
const std::string kSystem = WJ_SYSTEM_POLICY_DIR;  // /etc/wasmjail/policies when installed under /usr
std::string fx(const std::string& n) {
  return kFixtures + "/" + n;
}
}  // namespace

BOOST_AUTO_TEST_CASE(check_passes_shipped_policies) {
  auto r = run({binary(), "policy", "check", kShipped + "/default.yaml", kShipped + "/dev.yaml",
                kShipped + "/strict.yaml"});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "OK " + kShipped + "/default.yaml\nOK " + kShipped + "/dev.yaml\nOK " + kShipped +
                          "/strict.yaml\n");
  BOOST_TEST(r.err == "");
}

BOOST_AUTO_TEST_CASE(check_reports_each_bad_file_with_line_and_column) {
  auto r = run({binary(), "policy", "check", fx("typo_key.yaml"), fx("unknown_syscall.yaml"),
                fx("bad_unit.yaml"), kShipped + "/strict.yaml"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.out == "OK " + kShipped + "/strict.yaml\n");
  BOOST_TEST(
      r.err ==
      fx("typo_key.yaml") + ":4:3: unknown key \"memroy\" in limits (did you mean \"memory\"?)\n" +
          fx("unknown_syscall.yaml") +
          ":5:7: unknown system call \"opne\" in seccomp.allow (did you mean \"open\"?)\n" +
          fx("bad_unit.yaml") +
          ":4:16: limits.wasm_memory: unknown size unit \"megs\" in \"64 megs\" (use B, KiB, MiB, GiB, "
          "TiB, KB, MB, GB, TB)\n");
}

BOOST_AUTO_TEST_CASE(check_of_missing_file_and_usage) {
  auto r = run({binary(), "policy", "check", "/nonexistent/p.yaml"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err == "/nonexistent/p.yaml: no such file: /nonexistent/p.yaml\n");
  r = run({binary(), "policy", "check"});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err.rfind("wasmjail policy: check needs at least one NAME or FILE\n", 0) == 0);
}

BOOST_AUTO_TEST_CASE(show_strict_prints_the_complete_resolved_policy) {
  auto r = run({binary(), "policy", "show", "strict"});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.err == "");
  BOOST_TEST(r.out.rfind("# policy \"strict\", resolved from: " + kShipped + "/strict.yaml <- " + kShipped +
                             "/default.yaml\nname: strict\n",
                         0) == 0);
  for (const char* line :
       {"  wall_time: 10s", "  memory: 512MiB", "  stderr_bytes: 256KiB", "  landlock: required",
        "  default_action: trap", "  allow: []", "  tier: liftoff", "    exceptions: false",
        "  url_download: false", "  timeout: 10s", "  truncate: false"})
    BOOST_TEST(r.out.find(std::string("\n") + line + "\n") != std::string::npos, line);
}

BOOST_AUTO_TEST_CASE(operator_folders_come_before_shipped) {
  auto r = run({binary(), "policy", "show", "--policy-dir", kFixtures, "child_ok"});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out.find("\nname: child_ok\n") != std::string::npos);
  r = run({binary(), "policy", "show", "child_ok"}, {"WASMJAIL_POLICY_PATH=/nonexistent:" + kFixtures});
  BOOST_TEST(r.exit_code == 0);
  r = run({binary(), "policy", "show", "child_ok"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err == "child_ok: no policy named \"child_ok\" (looked in: " + kSystem + ", " + kShipped + ")\n");
}

BOOST_AUTO_TEST_CASE(lookup_order_policy_dir_then_env_then_system_then_source_tree) {
  std::string a = wjt::temp_dir(), b = wjt::temp_dir();
  wjt::write_file(a + "/p.yaml", "description: from --policy-dir\n");
  wjt::write_file(b + "/p.yaml", "description: from WASMJAIL_POLICY_PATH\n");
  wjt::write_file(b + "/default.yaml", "description: env default\n");
  auto r = run({binary(), "policy", "show", "--policy-dir", a, "p"}, {"WASMJAIL_POLICY_PATH=" + b});
  BOOST_TEST(r.out.find("description: \"from --policy-dir\"") != std::string::npos, r.out + r.err);
  r = run({binary(), "policy", "show", "p"}, {"WASMJAIL_POLICY_PATH=" + b});
  BOOST_TEST(r.out.find("description: \"from WASMJAIL_POLICY_PATH\"") != std::string::npos, r.out + r.err);
  // WASMJAIL_POLICY_PATH comes before the shipped policies, even for a shipped name.
  r = run({binary(), "policy", "show", "default"}, {"WASMJAIL_POLICY_PATH=" + b});
  BOOST_TEST(r.out.find("description: \"env default\"") != std::string::npos, r.out + r.err);
  std::filesystem::remove_all(a);
  std::filesystem::remove_all(b);
}

BOOST_AUTO_TEST_CASE(run_with_a_policy_passes_its_v8_flags) {
  // simd.wasm uses one SIMD instruction: it runs under a policy that leaves SIMD on and is
  // rejected by V8 when the policy turns it off, so the flags reach V8 in the child.
  auto dir = wjt::temp_dir();
  wjt::write_file(dir + "/liftoff.yaml", "extends: default\nwasm:\n  tier: liftoff\n");
  auto r = run({binary(), "run", "--policy", dir + "/liftoff.yaml", guest("simd")});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "simd\n");
  wjt::write_file(dir + "/nosimd.yaml", "extends: default\nwasm:\n  features: {simd: false}\n");
  r = run({binary(), "run", "--policy", dir + "/nosimd.yaml", guest("simd")});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err.find("invalid module: Compiling function #1 failed: Invalid opcode 0xfd (enable with "
                        "--experimental-wasm-simd)") != std::string::npos);
  // Liftoff tier: hello runs.
  r = run({binary(), "run", "--policy", dir + "/liftoff.yaml", guest("hello"), "p"});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "Hello, p!\n");
}

BOOST_AUTO_TEST_CASE(a_required_mechanism_this_machine_lacks_fails_closed) {
  // strict requires the job's cgroup; on a host that cannot give one (simulated here) the
  // job must not run with less protection. (That strict runs where cgroups exist is
  // tests/cgroup_test.cc.)
  auto r = run({binary(), "run", "--policy", "strict", guest("hello"), "p"}, {"WASMJAIL_TEST_UNAVAILABLE=cgroup"});
  BOOST_TEST(r.exit_code == 125);
  BOOST_TEST(r.out == "");
  BOOST_TEST(r.err.find("wasmjail: setup_error: sandbox setup failed: cgroup is required but cannot be applied: "
                        "unavailable (simulated)") == 0);
}

BOOST_AUTO_TEST_CASE(run_rejects_a_bad_policy_with_its_location) {
  auto dir = wjt::temp_dir();
  wjt::write_file(dir + "/bad.yaml", "wasm:\n  tier: liftoff\n  v8_flags: [--wasm-bounds-checks]\n");
  auto r = run({binary(), "run", "--policy", dir + "/bad.yaml", guest("hello")});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.out == "");
  BOOST_TEST(r.err.rfind("wasmjail: error: " + dir +
                             "/bad.yaml:3:14: wasm.v8_flags: \"--wasm-bounds-checks\" is not "
                             "an allowed V8 flag (allowed: --wasm-lazy-compilation, ",
                         0) == 0);
  r = run({binary(), "run", "--policy", "nope", guest("hello")});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err ==
             "wasmjail: error: policy nope: no policy named \"nope\" (looked in: " + kSystem + ", " + kShipped + ")\n");
}

BOOST_AUTO_TEST_CASE(run_applies_module_bytes_from_the_policy) {
  auto dir = wjt::temp_dir();
  wjt::write_file(dir + "/small.yaml", "extends: default\nlimits:\n  module_bytes: 100B\n");
  auto r = run({binary(), "run", "--policy", dir + "/small.yaml", guest("hello")});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err.find("over the module size limit of 100 bytes") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(job_asking_for_more_than_the_policy_is_invalid) {
  auto r = run({binary(), "run", "--policy", "strict", "--limit", "memory=1GiB", guest("hello")});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.out == "");
  BOOST_TEST(r.err ==
             "wasmjail: error: job asks for limits.memory 1GiB but the policy allows at most 512MiB\n");
  r = run({binary(), "run", "--policy", "strict", "--limit", "wall_time=11s", guest("hello")});
  BOOST_TEST(r.err ==
             "wasmjail: error: job asks for limits.wall_time 11s but the policy allows at most 10s\n");
  r = run({binary(), "run", "--policy", "strict", "--limit", "cpu_quota=1.5", guest("hello")});
  BOOST_TEST(r.err == "wasmjail: error: job asks for limits.cpu_quota 1.5 but the policy allows at most 1\n");
  r = run({binary(), "run", "--policy", "strict", "--limit", "processes=33", guest("hello")});
  BOOST_TEST(r.err == "wasmjail: error: job asks for limits.processes 33 but the policy allows at most 32\n");
  // Asking for less is fine, and the smaller value is what applies.
  r = run({binary(), "run", "--limit", "memory=128MiB", guest("hello"), "q"});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "Hello, q!\n");
  r = run({binary(), "run", "--policy", "strict", "--limit", "cpu_quota=0.5", "--limit", "processes=16", guest("hello"),
           "s"});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "Hello, s!\n");
  r = run({binary(), "run", "--limit", "module_bytes=100B", guest("hello")});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err.find("over the module size limit of 100 bytes") != std::string::npos);
  r = run({binary(), "run", "--limit", "memroy=1GiB", guest("hello")});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err.rfind("wasmjail run: unknown key \"memroy\" in limits (did you mean \"memory\"?)\n", 0) ==
             0);
}
