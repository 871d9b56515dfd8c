// The policy parser, resolver and checks: one test per error class, each asserting the
// exact file:line:col and message.
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <ostream>

#include "policies/policy.h"
#include "policies/seccomp_names.h"

using namespace wj;

namespace wj {
std::ostream& operator<<(std::ostream& o, Isolation i) {
  return o << to_string(i);
}
std::ostream& operator<<(std::ostream& o, Tier t) {
  return o << to_string(t);
}
}  // namespace wj

namespace {

const std::string kFixtures = WJ_POLICY_FIXTURES;  // tests/policies
const std::string kShipped = WJ_SHIPPED_POLICIES;  // configs/policies

std::string fx(const std::string& name) {
  return kFixtures + "/" + name;
}

// "OK" or the error as the CLI prints it.
std::string check(const std::string& text, const std::vector<std::string>& dirs = {}) {
  auto p = parse_policy(text, "p.yaml", dirs);
  return p ? "OK" : p.error().str();
}

std::string check_file(const std::string& path, const std::vector<std::string>& dirs = {}) {
  auto p = load_policy(path, dirs);
  return p ? "OK" : p.error().str();
}

Policy must_parse(const std::string& text) {
  auto p = parse_policy(text, "p.yaml", {});
  BOOST_REQUIRE_MESSAGE(p.ok(), (p.ok() ? "" : p.error().str()));
  return p.value();
}

}  // namespace

// ---- shipped policies -------------------------------------------------------------

BOOST_AUTO_TEST_CASE(shipped_policies_load_by_name_and_round_trip) {
  for (std::string name : {"default", "strict", "dev"}) {
    auto p = load_policy(name, {kShipped});
    BOOST_REQUIRE_MESSAGE(p.ok(), name + ": " + (p.ok() ? "" : p.error().str()));
    BOOST_TEST(p->name == name);
    BOOST_TEST(p->sources.front() == kShipped + "/" + name + ".yaml");
    // The rendered policy parses back to the same rendering (after its header comment).
    std::string y = to_yaml(p.value());
    auto again = parse_policy(y, "shown.yaml", {});
    BOOST_REQUIRE_MESSAGE(again.ok(), (again.ok() ? "" : again.error().str()));
    std::string y2 = to_yaml(again.value());
    BOOST_TEST(y.substr(y.find('\n')) == y2.substr(y2.find('\n')));
  }
}

BOOST_AUTO_TEST_CASE(strict_extends_default_and_requires_everything) {
  auto p = load_policy("strict", {kShipped});
  BOOST_REQUIRE(p.ok());
  BOOST_TEST(p->sources.size() == 2u);
  BOOST_TEST(p->sources[1] == kShipped + "/default.yaml");
  for (size_t i = 0; i < kMechanismCount; ++i)
    BOOST_TEST(p->isolation.get(static_cast<Mechanism>(i)) == Isolation::kRequired);
  BOOST_TEST(p->wasm.tier.value() == Tier::kLiftoff);
  BOOST_TEST(*p->limits.memory == 512ull << 20);
  BOOST_TEST(p->seccomp.action().str() == "trap");
  auto dev = load_policy("dev", {kShipped});
  BOOST_REQUIRE(dev.ok());
  BOOST_TEST(dev->seccomp.action().str() == "log");
  BOOST_TEST(!dev->limits.stdout_bytes.has_value());
}

BOOST_AUTO_TEST_CASE(search_dirs_come_first_then_shipped) {
  BOOST_TEST(check_file("child_ok", {kFixtures, kShipped}) == "OK");
  auto p = load_policy("default", {kFixtures, kShipped});
  BOOST_REQUIRE(p.ok());
  BOOST_TEST(p->sources.front() == kShipped + "/default.yaml");
  BOOST_TEST(check_file("nope", {kFixtures, kShipped}) ==
             "no policy named \"nope\" (looked in: " + kFixtures + ", " + kShipped + ")");
  BOOST_TEST(check_file("../etc/passwd") == "../etc/passwd: no such file: ../etc/passwd");
  BOOST_TEST(check_file("a..b", {kShipped}) ==
             "\"a..b\" is not a policy name (letters, digits, '_', '-', '.') or a path");
  setenv("WASMJAIL_POLICY_PATH", (kFixtures + "::/nonexistent").c_str(), 1);
  auto dirs = policy_search_dirs({"/op"}, kShipped);
  unsetenv("WASMJAIL_POLICY_PATH");
  BOOST_TEST(dirs == (std::vector<std::string>{"/op", kFixtures, "/nonexistent", kShipped}),
             boost::test_tools::per_element());
}

// ---- syntax and structure ---------------------------------------------------------

BOOST_AUTO_TEST_CASE(syntax_error_is_located) {
  BOOST_TEST(check("limits:\n  memory: [1GiB\n") ==
             "p.yaml:3:1: syntax error: end of sequence flow not found");
}

BOOST_AUTO_TEST_CASE(empty_or_non_mapping_document) {
  BOOST_TEST(check("") == "p.yaml: policy is empty (expected a mapping with limits, isolation, ...)");
  BOOST_TEST(check("- a\n- b\n") == "p.yaml:1:1: policy must be a mapping");
}

BOOST_AUTO_TEST_CASE(unknown_key_suggests_closest) {
  BOOST_TEST(check("name: x\nlimts: {}\n") ==
             "p.yaml:2:1: unknown key \"limts\" in policy (did you mean \"limits\"?)");
  BOOST_TEST(check("limits:\n  wall_time: 3s\n  memroy: 1GiB\n") ==
             "p.yaml:3:3: unknown key \"memroy\" in limits (did you mean \"memory\"?)");
  BOOST_TEST(check("isolation:\n  pid_ns: off\n") == "p.yaml:2:3: unknown key \"pid_ns\" in isolation");
  BOOST_TEST(check("wasm:\n  features: {stringref: true}\n") ==
             "p.yaml:2:14: unknown key \"stringref\" in wasm.features");
}

BOOST_AUTO_TEST_CASE(duplicate_key) {
  BOOST_TEST(check("limits:\n  memory: 1GiB\n  memory: 2GiB\n") ==
             "p.yaml:3:3: duplicate key \"memory\" in limits");
}

BOOST_AUTO_TEST_CASE(wrong_types) {
  BOOST_TEST(check("limits: 5\n") == "p.yaml:1:9: limits must be a mapping");
  BOOST_TEST(check("name: [a]\n") == "p.yaml:1:7: name must be a string");
  BOOST_TEST(check("limits:\n  memory: {a: 1}\n") ==
             "p.yaml:2:11: limits.memory must be a size such as 256MiB");
  BOOST_TEST(check("output:\n  truncate: yes please\n") ==
             "p.yaml:2:13: output.truncate must be true or false");
  BOOST_TEST(check("seccomp:\n  allow: read\n") == "p.yaml:2:10: seccomp.allow must be a list");
  BOOST_TEST(check("seccomp:\n  allow: [[read]]\n") ==
             "p.yaml:2:11: seccomp.allow entries must be a syscall name or {name: NAME, args: [...]}");
  BOOST_TEST(check("wasm:\n  features: {simd: 1}\n") ==
             "p.yaml:2:20: wasm.features.simd must be true or false");
  BOOST_TEST(check("limits:\n  memory: ~\n") == "p.yaml:2:11: limits.memory must be a size such as 256MiB");
}

BOOST_AUTO_TEST_CASE(bad_name_and_description) {
  BOOST_TEST(check("name: ../x\n") ==
             "p.yaml:1:7: name \"../x\" must be 1-64 letters, digits, '_', '-' or '.', not starting with '.' "
             "or '-'");
  BOOST_TEST(check("description: \"a\\x01b\"\n") ==
             "p.yaml:1:14: description must be at most 1024 bytes of UTF-8 text on one line");
  BOOST_TEST(check("description: \xff\xfe\n") ==
             "p.yaml:1:14: description must be at most 1024 bytes of UTF-8 text on one line");
}

// ---- limits -----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(bad_units) {
  BOOST_TEST(check("limits:\n  wall_time: 30\n") ==
             "p.yaml:2:14: limits.wall_time: duration \"30\" needs a unit (us, ms, s, m, h)");
  BOOST_TEST(
      check("limits:\n  cpu_time: 3 sec\n") ==
      "p.yaml:2:13: limits.cpu_time: unknown duration unit \"sec\" in \"3 sec\" (use us, ms, s, m or h)");
  BOOST_TEST(check("limits:\n  memory: 256 megs\n") ==
             "p.yaml:2:11: limits.memory: unknown size unit \"megs\" in \"256 megs\" (use B, KiB, MiB, GiB, "
             "TiB, KB, MB, GB, TB)");
  BOOST_TEST(check("limits:\n  memory: -1MiB\n") ==
             "p.yaml:2:11: limits.memory: \"-1MiB\" is not a size (examples: 4096, 64KiB, 256MiB, 1GiB)");
}

BOOST_AUTO_TEST_CASE(zero_limits_are_errors) {
  BOOST_TEST(check("limits:\n  memory: 0MiB\n") ==
             "p.yaml:2:11: limits.memory must be greater than zero (leave it out, or write unlimited, for no "
             "limit)");
  BOOST_TEST(check("limits:\n  wall_time: 0s\n") ==
             "p.yaml:2:14: limits.wall_time must be greater than zero (leave it out, or write unlimited, for "
             "no limit)");
  BOOST_TEST(check("limits:\n  open_files: 0\n") ==
             "p.yaml:2:15: limits.open_files must be greater than zero (leave it out, or write unlimited, "
             "for no limit)");
  BOOST_TEST(check("fetch:\n  max_bytes: 0\n") ==
             "p.yaml:2:14: fetch.max_bytes must be greater than zero (leave it out, or write unlimited, for "
             "no limit)");
}

BOOST_AUTO_TEST_CASE(huge_numbers_are_refused) {
  BOOST_TEST(check("limits:\n  memory: 99999999999999999999999TiB\n") ==
             "p.yaml:2:11: limits.memory: size \"99999999999999999999999TiB\" is too large");
  BOOST_TEST(check("limits:\n  memory: 17TiB\n") == "p.yaml:2:11: limits.memory must be at most 16TiB");
  BOOST_TEST(check("limits:\n  wall_time: 100000h\n") ==
             "p.yaml:2:14: limits.wall_time must be at most 720h");
  BOOST_TEST(check("limits:\n  open_files: 99999999999999999999\n") ==
             "p.yaml:2:15: limits.open_files must be an integer");
  BOOST_TEST(check("limits:\n  open_files: 2000000\n") ==
             "p.yaml:2:15: limits.open_files must be between 0 and 1048576");
}

BOOST_AUTO_TEST_CASE(wasm_memory_rules) {
  BOOST_TEST(check("limits:\n  wasm_memory: 100000\n") ==
             "p.yaml:2:16: limits.wasm_memory must be a multiple of the 64KiB wasm page size");
  BOOST_TEST(check("limits:\n  memory: 64MiB\n  wasm_memory: 128MiB\n") ==
             "p.yaml:3:16: limits.wasm_memory 128MiB is more than limits.memory 64MiB");
  // Across extends: the parent's memory, the child's wasm_memory.
  BOOST_TEST(check_file(fx("wasm_over_parent_memory.yaml")) ==
             fx("wasm_over_parent_memory.yaml") +
                 ":3:16: limits.wasm_memory 512MiB is more than limits.memory 256MiB (" +
                 fx("base_required.yaml") + ":6:11)");
}

// ---- isolation --------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(isolation_values) {
  BOOST_TEST(
      check("isolation:\n  landlock: requried\n") ==
      "p.yaml:2:13: isolation.landlock must be required, best_effort or off, not \"requried\" (did you mean "
      "\"required\"?)");
  auto p = must_parse("isolation:\n  cgroup: off\n");
  BOOST_TEST(p.isolation.get(Mechanism::kCgroup) == Isolation::kOff);
  BOOST_TEST(p.isolation.get(Mechanism::kLandlock) == Isolation::kRequired);  // unset: fail closed
}

BOOST_AUTO_TEST_CASE(net_namespace_kind_values_and_rules) {
  BOOST_TEST((must_parse("name: x\n").isolation.net_kind() == NetNamespaceKind::kPerJob));  // unset: per_job
  auto p = must_parse("isolation:\n  net_namespace_kind: shared_empty\n");
  BOOST_TEST((p.isolation.net_kind() == NetNamespaceKind::kSharedEmpty));
  BOOST_TEST(to_yaml(p).find("  net_namespace_kind: shared_empty\n") != std::string::npos);
  // policy show's text parses back to the same kind.
  BOOST_TEST((must_parse(to_yaml(p)).isolation.net_kind() == NetNamespaceKind::kSharedEmpty));
  BOOST_TEST(to_yaml(must_parse("name: x\n")).find("  net_namespace_kind: per_job\n") != std::string::npos);
  BOOST_TEST(
      check("isolation:\n  net_namespace_kind: shared_emtpy\n") ==
      "p.yaml:2:23: isolation.net_namespace_kind must be per_job or shared_empty, not \"shared_emtpy\" "
      "(did you mean \"shared_empty\"?)");
  BOOST_TEST(
      check("isolation:\n  net_namespace_kind: [shared_empty]\n").find("isolation.net_namespace_kind") !=
      std::string::npos);
  BOOST_TEST(
      check("isolation:\n  net_namespace: off\n  net_namespace_kind: shared_empty\n") ==
      "p.yaml:3:23: isolation.net_namespace_kind: shared_empty needs isolation.net_namespace required or "
      "best_effort, not off (off leaves the job in the server's own network namespace)");
  // The socket family can never be allowed, with or without it (always killed).
  BOOST_TEST(check("isolation:\n  net_namespace_kind: shared_empty\nseccomp:\n  allow: [socket]\n")
                 .find("seccomp.allow: socket is in the sandbox's always-kill set") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(weakening_required_through_extends_names_both_files) {
  BOOST_TEST(check_file(fx("weakens_parent.yaml")) ==
             fx("weakens_parent.yaml") +
                 ":5:18: isolation.pid_namespace: best_effort weakens \"required\" from parent "
                 "policy base-required (" +
                 fx("base_required.yaml") + ":3:18); a policy cannot weaken the isolation it extends");
}

// ---- seccomp ----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(unknown_syscall_names) {
  BOOST_TEST(check_file(fx("unknown_syscall.yaml")) ==
             fx("unknown_syscall.yaml") +
                 ":5:7: unknown system call \"opne\" in seccomp.allow (did you mean \"open\"?)");
  BOOST_TEST(check("seccomp:\n  kill: [getpidd]\n") ==
             "p.yaml:2:10: unknown system call \"getpidd\" in seccomp.kill (did you mean \"getpid\"?)");
  BOOST_TEST(
      check("seccomp:\n  errno: {socketcall: EPERM}\n") ==
      "p.yaml:2:11: unknown system call \"socketcall\" in seccomp.errno (did you mean \"socketpair\"?)");
}

BOOST_AUTO_TEST_CASE(unknown_errno_names) {
  BOOST_TEST(check("seccomp:\n  errno: {sched_setaffinity: EPRM}\n") ==
             "p.yaml:2:30: unknown errno name \"EPRM\" for seccomp.errno.sched_setaffinity (did you mean "
             "\"EPERM\"?)");
  BOOST_TEST(check("seccomp:\n  default_action: errno:ENOPE\n") ==
             "p.yaml:2:19: seccomp.default_action: unknown errno name \"ENOPE\" (did you mean \"ENODEV\"?)");
  auto p = must_parse("seccomp:\n  default_action: errno:EPERM\n  errno: {sched_setaffinity: EWOULDBLOCK}\n");
  BOOST_TEST(p.seccomp.action().str() == "errno:EPERM");
  BOOST_TEST(p.seccomp.errno_.at(0).second == EAGAIN);
}

BOOST_AUTO_TEST_CASE(bad_default_action) {
  BOOST_TEST(
      check("seccomp:\n  default_action: allow\n") ==
      "p.yaml:2:19: seccomp.default_action must be kill, trap, log or errno:NAME (such as errno:EPERM), not "
      "\"allow\"");
}

BOOST_AUTO_TEST_CASE(dangerous_syscalls_cannot_be_allowed) {
  BOOST_TEST(check("seccomp:\n  allow: [read, execve]\n") ==
             "p.yaml:2:17: seccomp.allow: execve is in the sandbox's always-kill set (it can leave the "
             "sandbox or reach "
             "the kernel's riskiest interfaces) and cannot be allowed");
  BOOST_TEST(
      check("seccomp:\n  allow: [clone3]\n") ==
      "p.yaml:2:11: seccomp.allow: clone3 is always answered with ENOSYS (libc then falls back to an allowed "
      "call) and cannot be allowed");
  BOOST_TEST(check("seccomp:\n  errno: {ptrace: EPERM}\n") ==
             "p.yaml:2:11: seccomp.errno: ptrace is handled by the sandbox itself (always killed) and cannot "
             "be changed");
  // Every name in the built-in sets is a real syscall here (a typo would silently not kill).
  for (auto n : seccomp_names::dangerous_syscalls())
    BOOST_TEST(seccomp_names::resolve_syscall(std::string(n)).has_value(), n);
  for (auto n : seccomp_names::enosys_syscalls())
    BOOST_TEST(seccomp_names::resolve_syscall(std::string(n)).has_value(), n);
}

BOOST_AUTO_TEST_CASE(argument_conditions) {
  auto p = must_parse(
      "seccomp:\n  allow:\n    - {name: ioctl, args: [{index: 1, op: eq, value: 0x5401}]}\n"
      "    - {name: mmap, args: [{index: 2, op: masked_eq, mask: 0x4, value: 0}]}\n");
  BOOST_REQUIRE(p.seccomp.allow.size() == 2u);
  BOOST_TEST(p.seccomp.allow[0].args.at(0).value == 0x5401u);
  BOOST_TEST(p.seccomp.allow[1].args.at(0).op == ArgCondition::kMaskedEq);
  BOOST_TEST(p.seccomp.allow[1].args.at(0).mask == 4u);
  const std::string pre = "seccomp:\n  allow:\n    - {name: ioctl, args: [";
  BOOST_TEST(check(pre + "{index: 6, op: eq, value: 1}]}\n") ==
             "p.yaml:3:36: seccomp.allow ioctl args index must be between 0 and 5");
  BOOST_TEST(
      check(pre + "{index: 1, op: equals, value: 1}]}\n") ==
      "p.yaml:3:43: seccomp.allow ioctl args op must be eq, ne, lt, le, gt, ge or masked_eq, not \"equals\"");
  BOOST_TEST(check(pre + "{index: 1, op: masked_eq, value: 1}]}\n") ==
             "p.yaml:3:28: seccomp.allow ioctl args: masked_eq needs a mask");
  BOOST_TEST(check(pre + "{index: 1, op: eq, value: 1, mask: 1}]}\n") ==
             "p.yaml:3:63: seccomp.allow ioctl args: mask is only used with op masked_eq");
  BOOST_TEST(check(pre + "{index: 1, op: masked_eq, value: 3, mask: 1}]}\n") ==
             "p.yaml:3:61: seccomp.allow ioctl args: value 0x3 has bits outside mask 0x1, so the condition "
             "can never hold");
  BOOST_TEST(
      check(pre + "{index: 1, op: eq, value: -1}]}\n") ==
      "p.yaml:3:54: seccomp.allow ioctl args value must be an unsigned 64-bit integer (decimal or 0x hex)");
  BOOST_TEST(check(pre + "{index: 1, op: eq}]}\n") ==
             "p.yaml:3:28: seccomp.allow ioctl args entries need index, op and value");
  BOOST_TEST(
      check(pre + "{index: 1, op: eq, value: 1, vlaue: 2}]}\n") ==
      "p.yaml:3:57: unknown key \"vlaue\" in seccomp.allow ioctl args entry (did you mean \"value\"?)");
}

BOOST_AUTO_TEST_CASE(seccomp_contradictions) {
  BOOST_TEST(check("seccomp:\n  allow: [getpid]\n  kill: [getpid]\n") ==
             "p.yaml:2:11: seccomp.allow: getpid is also in seccomp.kill (p.yaml:3:10)");
  BOOST_TEST(check("seccomp:\n  allow: [getpid]\n  errno: {getpid: EPERM}\n") ==
             "p.yaml:2:11: seccomp.allow: getpid is also in seccomp.errno (p.yaml:3:11)");
  BOOST_TEST(check("seccomp:\n  kill: [getpid]\n  errno: {getpid: EPERM}\n") ==
             "p.yaml:3:11: seccomp.errno: getpid is also in seccomp.kill (p.yaml:2:10)");
  BOOST_TEST(check("seccomp:\n  allow: [getpid, read, getpid]\n") ==
             "p.yaml:2:25: seccomp.allow lists getpid twice");
  // A child killing what its parent allows.
  BOOST_TEST(check_file(fx("kill_parent_allow.yaml")) ==
             fx("base_required.yaml") + ":9:11: seccomp.allow: ioctl is also in seccomp.kill (" +
                 fx("kill_parent_allow.yaml") + ":3:10)");
}

// ---- wasm -------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(wasm_tier_and_features) {
  BOOST_TEST(check("wasm:\n  tier: turbo\n") ==
             "p.yaml:2:9: wasm.tier must be liftoff, turbofan or tiered, not \"turbo\"");
  BOOST_TEST(check("wasm:\n  tier: lifftoff\n") ==
             "p.yaml:2:9: wasm.tier must be liftoff, turbofan or tiered, not \"lifftoff\" (did you mean "
             "\"liftoff\"?)");
}

BOOST_AUTO_TEST_CASE(v8_flags_are_checked_against_the_allowlist) {
  BOOST_TEST(check("wasm:\n  v8_flags: [--wasm-bounds-checks]\n") ==
             "p.yaml:2:14: wasm.v8_flags: \"--wasm-bounds-checks\" is not an allowed V8 flag (allowed: " +
                 v8_flag_allowlist() + ")");
  BOOST_TEST(v8_flag_allowlist().find("--stack-size=N") != std::string::npos);
  BOOST_TEST(check("wasm:\n  v8_flags: [--no-liftoff]\n") ==
             "p.yaml:2:14: wasm.v8_flags: \"--no-liftoff\" is set by wasm.tier (liftoff, turbofan or "
             "tiered); use that "
             "instead");
  BOOST_TEST(
      check("wasm:\n  v8_flags: [--experimental-wasm-gc]\n") ==
      "p.yaml:2:14: wasm.v8_flags: \"--experimental-wasm-gc\" is set by wasm.features; use that instead");
  BOOST_TEST(check("wasm:\n  v8_flags: [--stack-size=1]\n") ==
             "p.yaml:2:14: wasm.v8_flags: \"--stack-size=1\" needs an integer between 64 and 16384");
  BOOST_TEST(
      check("wasm:\n  v8_flags: [--wasm-opt=1]\n") ==
      "p.yaml:2:14: wasm.v8_flags: \"--wasm-opt=1\" takes no value (write --wasm-opt or --no-wasm-opt)");
  BOOST_TEST(check("wasm:\n  v8_flags: [wasm-opt]\n") ==
             "p.yaml:2:14: wasm.v8_flags: \"wasm-opt\" must start with --");
  BOOST_TEST(check("wasm:\n  v8_flags: [--wasm-opt, --no-wasm-opt]\n") ==
             "p.yaml:2:26: wasm.v8_flags sets --wasm-opt twice");
  // Underscores are V8's other spelling; the canonical form uses dashes.
  BOOST_TEST(must_parse("wasm:\n  v8_flags: [--wasm_opt]\n").wasm.v8_flags.at(0) == "--wasm-opt");
}

BOOST_AUTO_TEST_CASE(v8_flags_for_each_tier) {
  WasmSettings w;
  w.tier = Tier::kLiftoff;
  auto f = v8_flags_for(w);
  BOOST_TEST(std::vector<std::string>(f.begin(), f.begin() + 3) ==
                 (std::vector<std::string>{"--liftoff", "--no-wasm-tier-up", "--no-wasm-dynamic-tiering"}),
             boost::test_tools::per_element());
  w.tier = Tier::kTurbofan;
  BOOST_TEST(v8_flags_for(w).at(0) == "--no-liftoff");
  w.tier = Tier::kTiered;
  w.features[0] = false;  // simd
  w.v8_flags = {"--stack-size=512"};
  f = v8_flags_for(w);
  BOOST_TEST(f.at(0) == "--liftoff");
  BOOST_TEST(f.at(1) == "--wasm-dynamic-tiering");
  BOOST_TEST(f.at(2) == "--wasm-lazy-compilation");  // each function compiled on its first call
  BOOST_TEST(f.at(3) == "--no-experimental-wasm-simd");
  BOOST_TEST(f.at(4) == "--experimental-wasm-threads");  // V8 10.2's default, made explicit
  BOOST_TEST(f.at(6) == "--no-experimental-wasm-return-call");
  BOOST_TEST(f.back() == "--stack-size=512");
  BOOST_TEST(f.size() == 3 + wasm_features().size() + 1);
}

// Fail closed: isolation.filesystem (required unless said otherwise) needs the mount
// namespace or Landlock; a policy with both off must say filesystem: best_effort or off.
BOOST_AUTO_TEST_CASE(filesystem_required_needs_a_mechanism) {
  BOOST_TEST(check("isolation:\n  mount_namespace: off\n  landlock: off\n") ==
             "p.yaml:3:13: isolation.filesystem is required (also when left out) but mount_namespace and landlock are "
             "both off: nothing could confine the filesystem; turn one on, or set filesystem: best_effort");
  BOOST_TEST(check("isolation:\n  mount_namespace: off\n  landlock: off\n  filesystem: best_effort\n") == "OK");
  BOOST_TEST(check("isolation:\n  landlock: off\n") == "OK");
  BOOST_TEST(check("isolation:\n  filesystem: sometimes\n") ==
             "p.yaml:2:15: isolation.filesystem must be required, best_effort or off, not \"sometimes\"");
}

// ---- fetch ------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(fetch_rules) {
  BOOST_TEST(check("fetch:\n  url_download: true\n  allowed_hosts: [Example.com]\n") ==
             "p.yaml:3:19: fetch.allowed_hosts: \"Example.com\" is not a lowercase host name (examples: "
             "example.com, "
             "*.example.com, example.com:8443)");
  BOOST_TEST(
      check("fetch:\n  allowed_hosts: [\"*\"]\n") ==
      "p.yaml:2:19: fetch.allowed_hosts: \"*\" would allow every host; list the hosts jobs may fetch from");
  BOOST_TEST(check("fetch:\n  allowed_hosts: [a.com:99999]\n") ==
             "p.yaml:2:19: fetch.allowed_hosts: \"a.com:99999\" is not a lowercase host name (examples: "
             "example.com, "
             "*.example.com, example.com:8443)");
  BOOST_TEST(check("fetch:\n  url_download: true\n") ==
             "p.yaml:2:17: fetch.url_download is true but fetch.allowed_hosts lists no host; list the hosts "
             "jobs may "
             "fetch from");
  auto p = must_parse(
      "fetch:\n  url_download: true\n  allowed_hosts: [\"*.example.com\", \"cdn.example.org:8443\"]\n");
  BOOST_TEST(p.fetch.allowed_hosts->size() == 2u);
}

// ---- extends ----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(extends_merges_key_by_key) {
  auto p = load_policy(fx("child_ok.yaml"), {});
  BOOST_REQUIRE_MESSAGE(p.ok(), (p.ok() ? "" : p.error().str()));
  BOOST_TEST(p->name == "child_ok");  // not inherited: the file's stem
  BOOST_TEST(*p->limits.memory == 128ull << 20);
  BOOST_TEST(!p->limits.wall_time_ms.has_value());  // `unlimited` lifts the parent's 30s
  BOOST_TEST(p->isolation.get(Mechanism::kPidNamespace) == Isolation::kRequired);  // inherited
  BOOST_TEST(p->isolation.get(Mechanism::kLandlock) == Isolation::kRequired);      // strengthened
  BOOST_REQUIRE(p->seccomp.allow.size() == 2u);
  BOOST_TEST(p->seccomp.allow[0].name == "ioctl");
  BOOST_TEST(p->seccomp.allow[0].args.size() == 1u);  // the child's rule replaced the parent's
  BOOST_TEST(p->seccomp.allow[1].name == "read");
  BOOST_TEST((p->seccomp.kill == std::vector<std::string>{"ptrace", "getpid"}));
  BOOST_TEST((p->wasm.v8_flags == std::vector<std::string>{"--no-wasm-opt", "--stack-size=512"}));
  BOOST_TEST((p->sources == std::vector<std::string>{fx("child_ok.yaml"), fx("base_required.yaml")}));
}

BOOST_AUTO_TEST_CASE(extends_cycles_are_rejected_with_the_chain) {
  BOOST_TEST(check_file(fx("cycle_a.yaml")) == fx("cycle_b.yaml") + ":2:10: extends: cycle " +
                                                   fx("cycle_a.yaml") + " -> " + fx("cycle_b.yaml") + " -> " +
                                                   fx("cycle_a.yaml"));
  BOOST_TEST(check_file(fx("self_extends.yaml")) == fx("self_extends.yaml") + ":1:10: extends: cycle " +
                                                        fx("self_extends.yaml") + " -> " +
                                                        fx("self_extends.yaml"));
}

BOOST_AUTO_TEST_CASE(missing_parents) {
  BOOST_TEST(check_file(fx("missing_parent_file.yaml")) ==
             fx("missing_parent_file.yaml") + ":3:10: extends: no such file: " + fx("does_not_exist.yaml"));
  BOOST_TEST(check_file(fx("missing_parent_name.yaml"), {kShipped}) ==
             fx("missing_parent_name.yaml") +
                 ":1:10: extends: no policy named \"no-such-policy\" (looked in: " + kShipped + ")");
  BOOST_TEST(check("extends: /dev\n") == "p.yaml:1:10: extends: /dev is not a regular file");
}

BOOST_AUTO_TEST_CASE(standalone_text_refuses_extends) {
  auto p = parse_policy("name: x\nextends: default\n", "p.yaml", {kShipped}, Extends::kRefuse);
  BOOST_REQUIRE(!p.ok());
  BOOST_TEST(p.error().str() == "p.yaml:2:10: extends is not allowed here (this policy must stand alone)");
}

BOOST_AUTO_TEST_CASE(deep_extends_chain_is_bounded) {
  BOOST_TEST(check_file(fx("deep_4.yaml")) == "OK");  // 16 extends, the most allowed
  BOOST_TEST(check_file(fx("deep_0.yaml")) ==
             fx("deep_16.yaml") + ":1:10: extends: the chain is deeper than 16 policies");
}

// ---- jobs against policies --------------------------------------------------------

BOOST_AUTO_TEST_CASE(job_limits_may_only_ask_for_less) {
  Policy p = must_parse("limits:\n  memory: 256MiB\n  wall_time: 30s\n  open_files: 10\n");
  cfg::Doc doc{"job.yaml"};
  Limits asked = parse_limits(cfg::parse_text("memory: 1GiB\n", doc), doc);
  BOOST_TEST(check_job_limits(asked, p.limits).value() ==
             "job asks for limits.memory 1GiB but the policy allows at most 256MiB");
  asked = parse_limits(cfg::parse_text("wall_time: 31s\n", doc), doc);
  BOOST_TEST(check_job_limits(asked, p.limits).value() ==
             "job asks for limits.wall_time 31s but the policy allows at most 30s");
  asked = parse_limits(cfg::parse_text("open_files: 11\n", doc), doc);
  BOOST_TEST(check_job_limits(asked, p.limits).value() ==
             "job asks for limits.open_files 11 but the policy allows at most 10");
  asked = parse_limits(cfg::parse_text("memory: 128MiB\ncpu_time: 1h\n", doc), doc);
  BOOST_TEST(!check_job_limits(asked, p.limits).has_value());  // cpu_time: the policy sets none
  Limits eff = effective_limits(asked, p.limits);
  BOOST_TEST(*eff.memory == 128ull << 20);
  BOOST_TEST(*eff.wall_time_ms == 30000.0);
  BOOST_TEST(*eff.cpu_time_ms == 3600000.0);
  // A job's limits section is parsed with the policy's rules.
  try {
    parse_limits(cfg::parse_text("memroy: 1GiB\n", doc), doc);
    BOOST_FAIL("expected an error");
  } catch (const cfg::ConfigError& e) {
    BOOST_TEST(e.error.str() == "job.yaml:1:1: unknown key \"memroy\" in limits (did you mean \"memory\"?)");
  }
}

BOOST_AUTO_TEST_CASE(rendered_policy_is_complete) {
  std::string y = to_yaml(must_parse("name: tiny\n"));
  for (const char* line :
       {"  wall_time: unlimited", "  open_files: unlimited", "  cgroup: required", "  default_action: kill",
        "  tier: tiered", "    simd: true", "    gc: false", "  url_download: false", "  truncate: true"})
    BOOST_TEST(y.find(std::string("\n") + line + "\n") != std::string::npos, line);
}

// The schema example in README.md is a valid policy (the documentation stays true).
BOOST_AUTO_TEST_CASE(readme_schema_example_is_valid) {
  std::ifstream f(WJ_README);
  std::string readme((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto start = readme.find("```yaml\n");
  BOOST_REQUIRE(start != std::string::npos);
  start += 8;
  std::string example = readme.substr(start, readme.find("```", start) - start);
  auto p = parse_policy(example, "README.md", {kShipped});
  BOOST_REQUIRE_MESSAGE(p.ok(), (p.ok() ? "" : p.error().str()));
  BOOST_TEST(p->seccomp.allow.size() == 2u);
  BOOST_TEST(p->wasm.v8_flags.at(0) == "--stack-size=512");
}
