// The fork server's job-setup encoding: every field survives the trip, and malformed
// input of every length is refused with a message (the zygote then refuses the request).
#include <boost/test/unit_test.hpp>

#include "supervisor/zygote.h"

namespace {

struct Sample {
  wj::Job job;
  std::vector<uint8_t> module{0, 'a', 's', 'm', 1, 0, 0, 0};
  std::vector<std::string> flags{"--no-liftoff", "--wasm-max-mem-pages=16"};
  std::vector<uint8_t> code{9, 8, 7};
  wj::sandbox::SandboxSpec sb;
  wj::ChildSetup setup{};

  Sample() {
    job.module_path = "/m/entry.wasm";
    job.libraries.push_back({"lib", {"/libs/lib.wasm", "alias"}, {1, 2, 3}});
    job.entry_point = "_start";
    job.argv = {"entry.wasm", "a b", ""};
    job.env = {{"K", "v=1"}, {"EMPTY", ""}};
    job.dirs = {{"/host/in", "/in", true}, {"/host/out", "/out", false}};
    sb.user_ns = wj::sandbox::Mode::kRequired;
    sb.net_ns = wj::sandbox::Mode::kOff;
    sb.net_ns_kind = wj::sandbox::NetNsKind::kSharedEmpty;
    sb.seccomp.default_action = wj::sandbox::SeccompSpec::DefaultAction::kErrno;
    sb.seccomp.default_errno = 38;
    sb.seccomp.allow.push_back({"getcwd", {{1, wj::sandbox::ArgCondition::Op::kMaskedEq, 4, 12}}});
    sb.seccomp.kill = {"ptrace"};
    sb.seccomp.errno_rules = {{"uname", 1}};
    sb.rlimits.nproc = 77;
    sb.rlimits.stack = std::nullopt;
    sb.preopens = {{"/host/in", "/in", true}, {"/host/out", "/out", false}};
    sb.simulate_unavailable = 1u << 6;
    setup.job = &job;
    setup.module = &module;
    setup.supervisor_pid = 4242;
    setup.stdio_is_tty[1] = true;
    setup.wall_deadline_ns = 123456789012345ull;
    setup.cpu_limit_ms = 2500.5;
    setup.memory_bytes = 1ull << 30;
    setup.wasm_memory_bytes = 64ull << 20;
    setup.output_bytes = 5;
    setup.v8_flags = &flags;
    setup.cached_code = &code;
    setup.offer_code = true;
    setup.compile_only = true;
    setup.sandbox = &sb;
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(every_field_round_trips) {
  Sample s;
  std::string data = wj::encode_child_setup(s.setup);
  wj::DecodedSetup d;
  auto err = wj::decode_child_setup(data, &d);
  BOOST_REQUIRE_MESSAGE(!err, *err);
  const wj::ChildSetup& c = d.setup;
  BOOST_TEST(c.job->module_path == "/m/entry.wasm");
  BOOST_REQUIRE(c.job->libraries.size() == 1u);
  BOOST_TEST(c.job->libraries[0].name == "lib");
  BOOST_TEST((c.job->libraries[0].aliases == std::vector<std::string>{"/libs/lib.wasm", "alias"}));
  BOOST_TEST((c.job->libraries[0].bytes == std::vector<uint8_t>{1, 2, 3}));
  BOOST_TEST((c.job->argv == s.job.argv));
  BOOST_TEST((c.job->env == s.job.env));
  BOOST_REQUIRE(c.job->dirs.size() == 2u);
  BOOST_TEST(c.job->dirs[0].read_only);
  BOOST_TEST(!c.job->dirs[1].read_only);
  BOOST_TEST(c.job->dirs[1].guest_path == "/out");
  BOOST_TEST((*c.module == s.module));
  BOOST_TEST(c.supervisor_pid == 4242);
  BOOST_TEST(!c.stdio_is_tty[0]);
  BOOST_TEST(c.stdio_is_tty[1]);
  BOOST_TEST(c.wall_deadline_ns == 123456789012345ull);
  BOOST_TEST(c.cpu_limit_ms == 2500.5);
  BOOST_TEST(c.memory_bytes == 1ull << 30);
  BOOST_TEST(c.wasm_memory_bytes == 64ull << 20);
  BOOST_TEST(c.output_bytes == 5u);
  BOOST_TEST((*c.v8_flags == s.flags));
  BOOST_REQUIRE(c.cached_code != nullptr);
  BOOST_TEST((*c.cached_code == s.code));
  BOOST_TEST(c.offer_code);
  BOOST_TEST(c.compile_only);
  BOOST_TEST(c.stdout_w == -1);  // fds travel beside the setup, never in it
  const wj::sandbox::SandboxSpec& sb = *c.sandbox;
  BOOST_TEST((sb.user_ns == wj::sandbox::Mode::kRequired));
  BOOST_TEST((sb.net_ns == wj::sandbox::Mode::kOff));
  BOOST_TEST((sb.net_ns_kind == wj::sandbox::NetNsKind::kSharedEmpty));
  BOOST_TEST((sb.pid_ns == wj::sandbox::Mode::kBestEffort));
  BOOST_TEST((sb.seccomp.default_action == wj::sandbox::SeccompSpec::DefaultAction::kErrno));
  BOOST_TEST(sb.seccomp.default_errno == 38);
  BOOST_REQUIRE(sb.seccomp.allow.size() == 1u);
  BOOST_TEST(sb.seccomp.allow[0].name == "getcwd");
  BOOST_REQUIRE(sb.seccomp.allow[0].conditions.size() == 1u);
  BOOST_TEST(sb.seccomp.allow[0].conditions[0].index == 1u);
  BOOST_TEST((sb.seccomp.allow[0].conditions[0].op == wj::sandbox::ArgCondition::Op::kMaskedEq));
  BOOST_TEST(sb.seccomp.allow[0].conditions[0].value == 4u);
  BOOST_TEST(sb.seccomp.allow[0].conditions[0].mask == 12u);
  BOOST_TEST((sb.seccomp.kill == std::vector<std::string>{"ptrace"}));
  BOOST_REQUIRE(sb.seccomp.errno_rules.size() == 1u);
  BOOST_TEST(sb.seccomp.errno_rules[0].name == "uname");
  BOOST_TEST(*sb.rlimits.nproc == 77u);
  BOOST_TEST(!sb.rlimits.stack.has_value());
  BOOST_TEST(*sb.rlimits.nofile == 64u);
  BOOST_REQUIRE(sb.preopens.size() == 2u);
  BOOST_TEST(sb.preopens[0].host_path == "/host/in");
  BOOST_TEST(sb.simulate_unavailable == 1u << 6);
}

BOOST_AUTO_TEST_CASE(no_cached_code_stays_absent) {
  Sample s;
  s.setup.cached_code = nullptr;
  wj::DecodedSetup d;
  BOOST_REQUIRE(!wj::decode_child_setup(wj::encode_child_setup(s.setup), &d));
  BOOST_TEST(d.setup.cached_code == nullptr);
}

BOOST_AUTO_TEST_CASE(every_truncation_and_a_trailing_byte_are_refused) {
  Sample s;
  std::string data = wj::encode_child_setup(s.setup);
  for (size_t n = 0; n < data.size(); ++n) {
    wj::DecodedSetup d;
    auto err = wj::decode_child_setup(data.substr(0, n), &d);
    BOOST_TEST_REQUIRE(err.has_value(), "length " << n << " accepted");
  }
  wj::DecodedSetup d;
  auto err = wj::decode_child_setup(data + "x", &d);
  BOOST_REQUIRE(err.has_value());
  BOOST_TEST(*err == "trailing bytes");
}

BOOST_AUTO_TEST_CASE(huge_counts_and_bad_modes_are_refused_without_allocating) {
  Sample s;
  std::string data = wj::encode_child_setup(s.setup);
  // The library count follows the magic and the module path (8-byte length + text).
  size_t at = 4 + 8 + s.job.module_path.size();
  std::string bad = data;
  bad[at] = bad[at + 1] = bad[at + 2] = bad[at + 3] = '\xff';
  wj::DecodedSetup d1;
  BOOST_TEST(wj::decode_child_setup(bad, &d1).has_value());
  // The magic.
  bad = data;
  bad[0] ^= 1;
  wj::DecodedSetup d2;
  auto err = wj::decode_child_setup(bad, &d2);
  BOOST_REQUIRE(err.has_value());
  BOOST_TEST(*err == "not a job setup");
}

// The pool key and the policy part the fork server reads carry the network namespace kind.
BOOST_AUTO_TEST_CASE(the_warm_spec_carries_the_net_namespace_kind) {
  Sample s;
  wj::WarmSpec w = wj::warm_spec_of(s.setup);
  wj::WarmSpec back;
  auto err = wj::decode_warm_spec(wj::encode_warm_spec(w), &back);
  BOOST_REQUIRE_MESSAGE(!err, *err);
  BOOST_TEST((back.sandbox.net_ns_kind == wj::sandbox::NetNsKind::kSharedEmpty));
  wj::WarmSpec per_job = w;
  per_job.sandbox.net_ns_kind = wj::sandbox::NetNsKind::kPerJob;
  BOOST_TEST(wj::encode_warm_spec(per_job) != wj::encode_warm_spec(w));  // two pools, never mixed
  // An out-of-range kind is refused.
  std::string bad = wj::encode_warm_spec(w);
  bad[4 + 9] = 2;  // after the magic and nine modes
  wj::WarmSpec d;
  auto e = wj::decode_warm_spec(bad, &d);
  BOOST_REQUIRE(e.has_value());
  BOOST_TEST(*e == "a mode out of range");
}

// shared_empty is refused (the job never runs) unless seccomp denies creating sockets.
BOOST_AUTO_TEST_CASE(shared_empty_needs_seccomp_to_deny_sockets) {
  wj::sandbox::SandboxSpec sb;
  BOOST_TEST(!wj::sandbox::check_shared_net(sb).has_value());  // per_job: nothing to check
  sb.net_ns_kind = wj::sandbox::NetNsKind::kSharedEmpty;
  BOOST_TEST(!wj::sandbox::check_shared_net(sb).has_value());  // the dangerous set holds them
  sb.seccomp.errno_rules = {{"socket", 1}};                    // failing quietly still denies
  BOOST_TEST(!wj::sandbox::check_shared_net(sb).has_value());
  wj::sandbox::SandboxSpec allows = sb;
  allows.seccomp.errno_rules.clear();
  allows.seccomp.allow.push_back({"socketpair", {}});
  auto e = wj::sandbox::check_shared_net(allows);
  BOOST_REQUIRE(e.has_value());
  BOOST_TEST(*e ==
             "isolation.net_namespace_kind: shared_empty is safe only while seccomp denies socketpair, "
             "which this policy's filter would allow");
  wj::sandbox::SandboxSpec no_filter = sb;
  no_filter.seccomp.mode = wj::sandbox::Mode::kBestEffort;
  e = wj::sandbox::check_shared_net(no_filter);
  BOOST_REQUIRE(e.has_value());
  BOOST_TEST(e->find("needs a required seccomp filter") != std::string::npos);
  // And a job process is never created for it.
  wj::sandbox::CloneResult r = wj::sandbox::clone_job_process(no_filter);
  BOOST_TEST(r.pid == -1);
  BOOST_TEST(r.error == *e);
}

// The fork server compiles each policy's filter once and the job installs it as is: the
// program must depend only on the spec and the pid it is built for.
BOOST_AUTO_TEST_CASE(a_compiled_filter_depends_only_on_spec_and_pid) {
  wj::sandbox::SeccompSpec spec;
  wj::sandbox::SeccompProgram a, b, other_pid, other_spec;
  BOOST_REQUIRE(!wj::sandbox::compile_seccomp(spec, 1, &a));
  BOOST_REQUIRE(!wj::sandbox::compile_seccomp(spec, 1, &b));
  BOOST_REQUIRE(!wj::sandbox::compile_seccomp(spec, 4242, &other_pid));
  spec.errno_rules.push_back({"uname", 38});
  BOOST_REQUIRE(!wj::sandbox::compile_seccomp(spec, 1, &other_spec));
  BOOST_TEST(a.code.size() > 50u);
  BOOST_TEST(a.for_pid == 1);
  BOOST_TEST((a.code == b.code));
  BOOST_TEST((a.code != other_pid.code));  // kill/tgkill are allowed towards itself only
  BOOST_TEST((a.code != other_spec.code));
  // A spec that cannot compile is an error, not an empty filter.
  wj::sandbox::SeccompSpec bad;
  bad.kill = {"no_such_syscall"};
  wj::sandbox::SeccompProgram none;
  auto err = wj::sandbox::compile_seccomp(bad, 1, &none);
  BOOST_REQUIRE(err.has_value());
  BOOST_TEST(err->find("no_such_syscall") != std::string::npos);
}
