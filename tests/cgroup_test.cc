// Per-job cgroups (sandbox/cgroup.h): limits the kernel enforces, how a job ends under
// them, cleanup, and the v2 file protocol against a folder tree laid out like a v2
// subtree. The kernel tests need the v1 controllers of these machines (writable by root);
// on a host without them they are skipped with a message, never passed silently.
#include <boost/test/unit_test.hpp>

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "policies/policy.h"
#include "sandbox/cgroup.h"
#include "supervisor/supervisor.h"
#include "tests/testlib.h"

using namespace wj;
namespace fs = std::filesystem;

namespace {

bool have_v1() {
  static const bool v = sandbox::detect_cgroups().version == sandbox::CgroupVersion::kV1;
  return v;
}

#define REQUIRE_V1()                                                                  \
  do {                                                                                \
    if (!have_v1()) {                                                                 \
      BOOST_TEST_MESSAGE("skipped: this host has no writable cgroup v1 controllers"); \
      return;                                                                         \
    }                                                                                 \
  } while (0)

std::shared_ptr<Policy> policy_from(const std::string& text) {
  auto p = parse_policy(text, "test.yaml", {WJ_SOURCE_DIR "/configs/policies"});
  BOOST_REQUIRE_MESSAGE(p.ok(), (p.ok() ? "" : p.error().str()));
  return std::make_shared<Policy>(p.value());
}

Job job_for(const std::string& guest, std::vector<std::string> args = {}) {
  Job j;
  j.module_path = wjt::guest(guest);
  j.argv = {guest};
  j.argv.insert(j.argv.end(), args.begin(), args.end());
  return j;
}

Result run_with(const std::string& guest, const std::string& policy_yaml, std::vector<std::string> args = {},
                std::function<void(pid_t)> on_spawn = nullptr) {
  RunOptions o;
  o.policy = policy_from(policy_yaml);
  o.v8_flags = v8_flags_for(o.policy->wasm);
  o.on_spawn = std::move(on_spawn);
  return run_job(job_for(guest, std::move(args)), std::move(o));
}

// Job cgroup folders of this process (named "<our pid>-..."), in every wasmjail folder.
std::vector<std::string> our_cgroup_folders() {
  std::vector<std::string> out;
  const std::string prefix = std::to_string(getpid()) + "-";
  std::error_code ec;
  for (const auto& ctrl : fs::directory_iterator("/sys/fs/cgroup", ec)) {
    fs::path base = ctrl.path() / "wasmjail";
    for (const auto& e : fs::directory_iterator(base, ec))
      if (e.is_directory() && e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path());
  }
  return out;
}

// The folder of `pid` in the v1 hierarchy of `controller` (from /proc/PID/cgroup).
std::string v1_cgroup_of(pid_t pid, const std::string& controller) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line;
  while (std::getline(f, line)) {
    auto a = line.find(':'), b = line.find(':', a + 1);
    if (line.substr(a + 1, b - a - 1) == controller)
      return "/sys/fs/cgroup/" + controller + line.substr(b + 1);
  }
  return "";
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

const char* kRequired = "name: t\nextends: default\nisolation:\n  cgroup: required\n";

}  // namespace

BOOST_AUTO_TEST_CASE(strict_runs_hello_from_the_command_line) {
  REQUIRE_V1();
  auto r = wjt::run({wjt::binary(), "run", "--policy", "strict", wjt::guest("hello")});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "Hello from wasmjail!\n");
  BOOST_TEST(r.err == "");
}

BOOST_AUTO_TEST_CASE(a_strict_job_runs_in_a_wasmjail_cgroup_with_the_policys_limits_then_it_is_gone) {
  REQUIRE_V1();
  std::string mem_dir, pids_dir, limit, pids_max, quota, procs;
  // strict's limits with a short wall time: the spinner is inspected while it runs.
  auto res = run_with("spin", "name: t\nextends: strict\nlimits:\n  wall_time: 1s\n", {}, [&](pid_t pid) {
    mem_dir = v1_cgroup_of(pid, "memory");
    pids_dir = v1_cgroup_of(pid, "pids");
    limit = trim(wjt::read_file(mem_dir + "/memory.limit_in_bytes"));
    pids_max = trim(wjt::read_file(pids_dir + "/pids.max"));
    quota = trim(wjt::read_file(v1_cgroup_of(pid, "cpu") + "/cpu.cfs_quota_us"));
    procs = trim(wjt::read_file(mem_dir + "/cgroup.procs"));
  });
  BOOST_TEST(to_string(res.status) == "timeout");
  BOOST_TEST(mem_dir.find("/sys/fs/cgroup/memory/wasmjail/" + std::to_string(getpid()) + "-") == 0);
  BOOST_TEST(limit == std::to_string(512ull << 20));  // strict's memory: 512MiB
  BOOST_TEST(pids_max == "32");                       // strict's processes
  BOOST_TEST(quota == "100000");                      // strict's cpu_quota: 1 core per 100 ms period
  BOOST_TEST(!procs.empty());
  BOOST_REQUIRE(res.sandbox.has_value());
  BOOST_TEST(res.sandbox->cgroup_version == "v1");
  BOOST_TEST(std::count(res.sandbox->applied.begin(), res.sandbox->applied.end(), "cgroup") == 1);
  BOOST_TEST(res.usage.cgroup_peak_memory_bytes.has_value());
  BOOST_TEST(res.usage.cgroup_cpu_ms.value_or(0) > 20);  // it spun (some of) a second
  // Gone once the job was reaped.
  struct stat st {};
  BOOST_TEST(stat(mem_dir.c_str(), &st) != 0);
  BOOST_TEST(stat(pids_dir.c_str(), &st) != 0);
  BOOST_TEST(our_cgroup_folders().empty());
}

BOOST_AUTO_TEST_CASE(memory_only_the_cgroup_sees_ends_memory_limit) {
  REQUIRE_V1();
  // RLIMIT_DATA and V8's heap limit at 2GiB, the cgroup at 64MiB: 300 MiB of written
  // memory passes the first two and meets the cgroup's OOM killer.
  const std::string pol =
      "name: t\nextends: default\nlimits:\n  memory: 2GiB\n  wasm_memory: 1GiB\n"
      "isolation:\n  cgroup: required\n";
  setenv("WASMJAIL_TEST_CGROUP_MEMORY", std::to_string(64u << 20).c_str(), 1);
  auto res = run_with("touch_memory", pol, {"300"});
  unsetenv("WASMJAIL_TEST_CGROUP_MEMORY");
  BOOST_TEST(to_string(res.status) == "memory_limit");
  BOOST_TEST(res.error ==
             "the job's cgroup reached its memory limit (64MiB) and the kernel's OOM killer ended it");
  BOOST_TEST(res.usage.cgroup_peak_memory_bytes.value_or(0) <= (64u << 20));
  BOOST_TEST(res.usage.cgroup_peak_memory_bytes.value_or(0) > (32u << 20));
  // The same job without the smaller cgroup limit completes: the cgroup made the difference.
  auto ok = run_with("touch_memory", pol, {"300"});
  BOOST_TEST(to_string(ok.status) == "ok");
  BOOST_TEST(ok.out.data.rfind("touched 300 MiB", 0) == 0);
  BOOST_TEST(ok.usage.cgroup_peak_memory_bytes.value_or(0) > (300u << 20));
  BOOST_TEST(our_cgroup_folders().empty());
}

BOOST_AUTO_TEST_CASE(a_processes_cap_below_v8s_threads_fails_with_a_clear_reason) {
  REQUIRE_V1();
  auto res = run_with("hello",
                      "name: t\nextends: default\nlimits:\n  processes: 2\nisolation:\n  cgroup: required\n");
  BOOST_TEST(to_string(res.status) == "setup_error");
  BOOST_TEST(
      res.error.find(
          "the job reached its processes limit (limits.processes 2): the kernel refused it a new thread") ==
      0);
  BOOST_TEST(res.out.data == "");
  // Enough for V8's threads: the same job runs.
  auto ok = run_with("hello",
                     "name: t\nextends: default\nlimits:\n  processes: 16\nisolation:\n  cgroup: required\n");
  BOOST_TEST(to_string(ok.status) == "ok");
  BOOST_TEST(our_cgroup_folders().empty());
}

BOOST_AUTO_TEST_CASE(a_cpu_quota_slows_a_spinner) {
  REQUIRE_V1();
  auto pol = [](const std::string& q) {
    return "name: t\nextends: default\nlimits:\n  wall_time: 2s\n  cpu_quota: " + q +
           "\nisolation:\n  cgroup: required\n";
  };
  auto slow = run_with("spin", pol("0.02"));
  auto free = run_with("spin", pol("unlimited"));
  BOOST_TEST(to_string(slow.status) == "timeout");
  BOOST_TEST(to_string(free.status) == "timeout");
  // A fiftieth of a core over ~2 s of wall time is ~40 ms of CPU (plus one period's burst),
  // whatever else the machine runs; unthrottled, the spinner gets far more even on a busy host.
  const double ratio = slow.usage.cpu_ms / slow.timing.total;
  BOOST_TEST_MESSAGE("cpu_quota 0.02: cpu_ms " << slow.usage.cpu_ms << " over " << slow.timing.total
                                               << " ms; unlimited: " << free.usage.cpu_ms);
  BOOST_TEST(ratio < 0.05);
  BOOST_TEST(free.usage.cpu_ms > 2 * slow.usage.cpu_ms);
  BOOST_TEST(our_cgroup_folders().empty());
}

BOOST_AUTO_TEST_CASE(required_cgroup_unavailable_fails_closed_and_best_effort_says_skipped) {
  setenv("WASMJAIL_TEST_UNAVAILABLE", "cgroup", 1);
  auto req = run_with("hello", kRequired);
  auto best = run_with("hello", "name: t\nextends: default\nisolation:\n  cgroup: best_effort\n");
  unsetenv("WASMJAIL_TEST_UNAVAILABLE");
  BOOST_TEST(to_string(req.status) == "setup_error");
  BOOST_TEST(req.error ==
             "sandbox setup failed: cgroup is required but cannot be applied: unavailable (simulated)");
  BOOST_TEST(req.out.data == "");
  BOOST_TEST(to_string(best.status) == "ok");
  BOOST_REQUIRE(best.sandbox.has_value());
  BOOST_TEST(std::count(best.sandbox->skipped.begin(), best.sandbox->skipped.end(), "cgroup") == 1);
  BOOST_TEST(std::count(best.sandbox->applied.begin(), best.sandbox->applied.end(), "cgroup") == 0);
  auto off = run_with("hello", "name: t\nextends: default\nisolation:\n  cgroup: off\n");
  BOOST_REQUIRE(off.sandbox.has_value());
  BOOST_TEST(std::count(off.sandbox->skipped.begin(), off.sandbox->skipped.end(), "cgroup") == 0);
  BOOST_TEST(std::count(off.sandbox->applied.begin(), off.sandbox->applied.end(), "cgroup") == 0);
}

BOOST_AUTO_TEST_CASE(the_fork_server_path_joins_the_cgroup_before_the_job_runs) {
  REQUIRE_V1();
  auto r =
      wjt::run({wjt::binary(), "exec", WJ_SOURCE_DIR "/configs/examples/hello.yaml", "--policy", "strict"},
               {"WASMJAIL_ZYGOTE=on"});
  BOOST_TEST(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  BOOST_TEST(j["status"] == "ok");
  BOOST_TEST(j["sandbox"]["cgroup_version"] == "v1");
  auto applied = j["sandbox"]["applied"].get<std::vector<std::string>>();
  BOOST_TEST(std::count(applied.begin(), applied.end(), "cgroup") == 1);
  BOOST_TEST(j["usage"]["cgroup_cpu_ms"].get<double>() > 0);
}

BOOST_AUTO_TEST_CASE(folders_of_dead_servers_are_removed_and_live_ones_kept) {
  REQUIRE_V1();
  sandbox::CgroupHost host = sandbox::detect_cgroups();
  const std::string base = host.v1_base.at("pids");
  // A pid that is surely dead: a child that exited and was reaped.
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, nullptr, 0);
  const std::string ours = base + "/" + sandbox::job_cgroup_name(999999);
  const std::string dead_dir = base + "/" + std::to_string(dead) + "-1-3";
  // Our pid with another start time: a server that died and whose pid was reused by us.
  const std::string reused = base + "/" + std::to_string(getpid()) + "-1-4";
  const std::string foreign = base + "/not-ours";  // not a wasmjail job name: never touched
  for (const auto& d : {ours, dead_dir, reused, foreign}) BOOST_REQUIRE(mkdir(d.c_str(), 0755) == 0);
  size_t removed = sandbox::remove_stale_cgroups(host);
  struct stat st {};
  BOOST_TEST(stat(dead_dir.c_str(), &st) != 0);
  BOOST_TEST(stat(reused.c_str(), &st) != 0);
  BOOST_TEST(stat(ours.c_str(), &st) == 0);
  BOOST_TEST(stat(foreign.c_str(), &st) == 0);
  BOOST_TEST(removed >= 2u);
  rmdir(ours.c_str());
  rmdir(foreign.c_str());
}

BOOST_AUTO_TEST_CASE(v1_job_cgroup_writes_limits_joins_and_removes_with_stragglers) {
  REQUIRE_V1();
  sandbox::CgroupHost host = sandbox::detect_cgroups();
  std::string err;
  auto cg = sandbox::JobCgroup::create(host, sandbox::job_cgroup_name(888888), {64u << 20, 7, 0.25}, &err);
  BOOST_REQUIRE_MESSAGE(cg, err);
  BOOST_TEST(trim(wjt::read_file(cg->path_of("memory") + "/memory.limit_in_bytes")) ==
             std::to_string(64u << 20));
  BOOST_TEST(trim(wjt::read_file(cg->path_of("memory") + "/memory.memsw.limit_in_bytes")) ==
             std::to_string(64u << 20));
  BOOST_TEST(trim(wjt::read_file(cg->path_of("pids") + "/pids.max")) == "7");
  BOOST_TEST(trim(wjt::read_file(cg->path_of("cpu") + "/cpu.cfs_quota_us")) == "25000");
  // A straggler left in it is killed by remove().
  pid_t child = fork();
  if (child == 0) {
    pause();
    _exit(0);
  }
  BOOST_REQUIRE(!cg->join(child));
  BOOST_TEST(trim(wjt::read_file(cg->path_of("pids") + "/cgroup.procs")) == std::to_string(child));
  auto paths = cg->paths();
  BOOST_TEST(!cg->remove());
  int status = 0;
  waitpid(child, &status, 0);
  BOOST_TEST(WIFSIGNALED(status));
  struct stat st {};
  for (const auto& p : paths) BOOST_TEST(stat(p.c_str(), &st) != 0);
  // A limit without its controller is refused by name.
  sandbox::CgroupHost no_pids = host;
  no_pids.v1_base.erase("pids");
  auto none = sandbox::JobCgroup::create(no_pids, sandbox::job_cgroup_name(888889),
                                         {std::nullopt, 5, std::nullopt}, &err);
  BOOST_TEST(!none);
  BOOST_TEST(err.find("limits.processes needs the pids controller") == 0);
  BOOST_TEST(our_cgroup_folders().empty());
}

// A join that fails part-way (here the pids folder is gone) puts the process back where it
// was in the hierarchies it had already joined. It used to stay there, so the removal that
// follows a failed join (best_effort: the job runs without the cgroup) killed the job.
BOOST_AUTO_TEST_CASE(v1_a_failed_join_puts_the_process_back_and_removal_spares_it) {
  REQUIRE_V1();
  sandbox::CgroupHost host = sandbox::detect_cgroups();
  std::string err;
  auto cg = sandbox::JobCgroup::create(host, sandbox::job_cgroup_name(888890), {64u << 20, 7, std::nullopt}, &err);
  BOOST_REQUIRE_MESSAGE(cg, err);
  pid_t child = fork();
  if (child == 0) {
    pause();
    _exit(0);
  }
  const std::string mem_before = v1_cgroup_of(child, "memory");
  BOOST_REQUIRE(!mem_before.empty());
  BOOST_REQUIRE(rmdir(cg->path_of("pids").c_str()) == 0);  // the last folder joined
  BOOST_TEST(cg->join(child).has_value());
  BOOST_TEST(v1_cgroup_of(child, "memory") == mem_before);
  BOOST_TEST(!cg->remove());
  usleep(100 * 1000);
  int status = 0;
  BOOST_TEST(waitpid(child, &status, WNOHANG) == 0, "the process was killed by remove()");
  kill(child, SIGKILL);
  waitpid(child, &status, 0);
  BOOST_TEST(our_cgroup_folders().empty());
}

// The v2 protocol cannot run in this kernel (its cgroup2 hierarchy holds no controllers):
// what is tested is the file protocol, against a folder tree laid out like a v2 subtree.
BOOST_AUTO_TEST_CASE(v2_file_protocol_against_a_fake_subtree) {
  const std::string base = wjt::temp_dir();
  wjt::write_file(base + "/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
  wjt::write_file(base + "/cgroup.subtree_control", "");
  wjt::write_file(base + "/cgroup.procs", "");
  sandbox::CgroupHost host = sandbox::cgroup_host_v2(base, false, true);
  BOOST_TEST(sandbox::cgroup_version_name(host.version) == std::string("v2"));
  BOOST_TEST(host.v2_controllers == (std::vector<std::string>{"memory", "pids", "cpu"}));
  // The controllers are enabled for the leaves, in one write.
  BOOST_TEST(wjt::read_file(base + "/cgroup.subtree_control") == "+memory +pids +cpu");
  std::string err;
  const std::string name = sandbox::job_cgroup_name(1);
  auto cg = sandbox::JobCgroup::create(host, name, {64u << 20, 16, 0.5}, &err);
  BOOST_REQUIRE_MESSAGE(cg, err);
  const std::string leaf = base + "/" + name;
  BOOST_TEST(cg->paths() == std::vector<std::string>{leaf});  // one leaf for every controller
  BOOST_TEST(wjt::read_file(leaf + "/memory.max") == std::to_string(64u << 20));
  BOOST_TEST(wjt::read_file(leaf + "/memory.swap.max") == "0");
  BOOST_TEST(wjt::read_file(leaf + "/memory.oom.group") == "1");
  BOOST_TEST(wjt::read_file(leaf + "/pids.max") == "16");
  BOOST_TEST(wjt::read_file(leaf + "/cpu.max") == "50000 100000");
  BOOST_TEST(!cg->join(4242));
  BOOST_TEST(wjt::read_file(leaf + "/cgroup.procs") == "4242");
  // The counters as a v2 kernel writes them.
  wjt::write_file(leaf + "/memory.events", "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n");
  wjt::write_file(leaf + "/memory.peak", "67100000\n");
  wjt::write_file(leaf + "/pids.events", "max 3\n");
  wjt::write_file(leaf + "/cpu.stat", "usage_usec 5000\nuser_usec 4000\nsystem_usec 1000\n");
  sandbox::CgroupUsage u = cg->usage();
  BOOST_TEST(u.oom_killed);
  BOOST_TEST(u.processes_hit);
  BOOST_TEST(u.peak_memory_bytes.value_or(0) == 67100000u);
  BOOST_TEST(u.cpu_ns.value_or(0) == 5000000u);
  BOOST_TEST(!cg->remove());
  struct stat st {};
  BOOST_TEST(stat(leaf.c_str(), &st) != 0);
  // No OOM kill recorded: not oom_killed.
  auto cg2 = sandbox::JobCgroup::create(host, sandbox::job_cgroup_name(2),
                                        {64u << 20, std::nullopt, std::nullopt}, &err);
  BOOST_REQUIRE(cg2);
  wjt::write_file(cg2->paths()[0] + "/memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
  BOOST_TEST(!cg2->usage().oom_killed);
  cg2.reset();  // the destructor removes it
  // A leaf of a dead server is swept; ours stays.
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, nullptr, 0);
  BOOST_REQUIRE(mkdir((base + "/" + std::to_string(dead) + "-5-1").c_str(), 0755) == 0);
  BOOST_REQUIRE(mkdir((base + "/" + sandbox::job_cgroup_name(3)).c_str(), 0755) == 0);
  BOOST_TEST(sandbox::remove_stale_cgroups(host) == 1u);
  BOOST_TEST(stat((base + "/" + sandbox::job_cgroup_name(3)).c_str(), &st) == 0);
  // A subtree without the pids controller: a processes limit is refused by name.
  const std::string base2 = wjt::temp_dir();
  wjt::write_file(base2 + "/cgroup.controllers", "cpu memory\n");
  wjt::write_file(base2 + "/cgroup.subtree_control", "");
  sandbox::CgroupHost h2 = sandbox::cgroup_host_v2(base2, false, true);
  BOOST_TEST(h2.v2_controllers == (std::vector<std::string>{"memory", "cpu"}));
  BOOST_TEST(!sandbox::JobCgroup::create(h2, "x", {std::nullopt, 8, std::nullopt}, &err));
  BOOST_TEST(
      err.find("limits.processes needs the pids controller, which this host's cgroup v2 (memory, cpu)") == 0);
  fs::remove_all(base);
  fs::remove_all(base2);
}

BOOST_AUTO_TEST_CASE(policy_limits_processes_and_cpu_quota_are_validated_with_their_place) {
  auto check = [](const std::string& limits) {
    auto p = parse_policy("name: t\nlimits:\n" + limits, "p.yaml", {});
    return p ? std::string("OK") : p.error().str();
  };
  BOOST_TEST(check("  processes: 0\n") ==
             "p.yaml:3:14: limits.processes must be greater than zero (leave it out, or write unlimited, for "
             "no limit)");
  BOOST_TEST(check("  processes: many\n") == "p.yaml:3:14: limits.processes must be an integer");
  BOOST_TEST(check("  cpu_quota: half\n") ==
             "p.yaml:3:14: limits.cpu_quota must be a number of CPU cores, like 0.5 or 2");
  BOOST_TEST(check("  cpu_quota: 0.001\n") ==
             "p.yaml:3:14: limits.cpu_quota must be at least 0.01 (one hundredth of a core)");
  BOOST_TEST(check("  cpu_quota: 5000\n") == "p.yaml:3:14: limits.cpu_quota must be at most 1024 cores");
  BOOST_TEST(check("  cpu_quota: -1\n") ==
             "p.yaml:3:14: limits.cpu_quota must be a number of CPU cores, like 0.5 or 2");
  BOOST_TEST(check("  cpu_quta: 1\n").find("p.yaml:3:3:") == 0);
  BOOST_TEST(check("  cpu_quta: 1\n").find("did you mean \"cpu_quota\"") != std::string::npos);
  auto p = parse_policy("name: t\nlimits:\n  processes: 40\n  cpu_quota: 0.5\n", "p.yaml", {});
  BOOST_REQUIRE(p.ok());
  BOOST_TEST(p->limits.processes.value_or(0) == 40u);
  BOOST_TEST(p->limits.cpu_quota.value_or(0) == 0.5);
  // The rendered policy parses back to the same limits.
  auto again = parse_policy(to_yaml(p.value()), "shown.yaml", {});
  BOOST_REQUIRE(again.ok());
  BOOST_TEST(again->limits.cpu_quota.value_or(0) == 0.5);
  BOOST_TEST(again->limits.processes.value_or(0) == 40u);
  // A job may ask for less, never more.
  Limits asked;
  asked.cpu_quota = 2;
  BOOST_TEST(check_job_limits(asked, p->limits).value_or("") ==
             "job asks for limits.cpu_quota 2 but the policy allows at most 0.5");
}

BOOST_AUTO_TEST_CASE(doctor_reports_the_host_and_which_shipped_policies_run) {
  REQUIRE_V1();
  auto r = wjt::run({wjt::binary(), "doctor"});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out.find("  cgroup:                                v1 (cpu, cpuacct, memory, pids); per-job "
                        "cgroups: yes; joining one ") != std::string::npos);
  // Whether moving a process into its cgroup waits for an RCU grace period (favordynmods).
  const bool favor = wjt::read_file("/proc/mounts").find("favordynmods") != std::string::npos ||
                     wjt::read_file("/proc/cmdline").find("cgroup_favordynmods=") != std::string::npos;
  if (!favor)
    BOOST_TEST(r.out.find("joining one waits for an RCU grace period when none is under way") !=
               std::string::npos);
  // A fork server can make the shared empty network namespace here (the sandbox tests use it).
  BOOST_TEST(r.out.find("  shared empty net namespace:            yes\n") != std::string::npos);
  BOOST_TEST(r.out.find("  landlock:                              yes, ABI ") != std::string::npos);
  BOOST_TEST(r.out.find("  strict:                                can run\n") != std::string::npos);
  BOOST_TEST(r.out.find("  default:                               can run") != std::string::npos);
  // Without a cgroup, strict cannot run but default (best effort) still does: exit 0.
  auto no_cg = wjt::run({wjt::binary(), "doctor"}, {"WASMJAIL_TEST_UNAVAILABLE=cgroup"});
  BOOST_TEST(no_cg.exit_code == 0);
  BOOST_TEST(
      no_cg.out.find(
          "  strict:                                cannot run: setup_error: sandbox setup failed: cgroup "
          "is required but cannot be applied: unavailable (simulated)\n") != std::string::npos);
  BOOST_TEST(
      no_cg.out.find("  default:                               can run (best effort, skipped: cgroup)\n") !=
      std::string::npos);
  // Without seccomp (which default requires), default cannot run: exit 1.
  auto no_sc = wjt::run({wjt::binary(), "doctor"}, {"WASMJAIL_TEST_UNAVAILABLE=seccomp"});
  BOOST_TEST(no_sc.exit_code == 1);
  BOOST_TEST(no_sc.out.find("  default:                               cannot run: setup_error: ") !=
             std::string::npos);
  BOOST_TEST(our_cgroup_folders().empty());
}

BOOST_AUTO_TEST_CASE(a_v2_folder_without_the_controllers_is_unavailable_with_the_reason) {
  const std::string base = wjt::temp_dir();
  wjt::write_file(base + "/cgroup.controllers", "io\n");
  wjt::write_file(base + "/cgroup.subtree_control", "");
  sandbox::CgroupHost h = sandbox::cgroup_host_v2(base, false, true);
  BOOST_TEST(sandbox::cgroup_version_name(h.version) == std::string("none"));
  BOOST_TEST(h.unavailable == "the cgroup2 folder " + base +
                                  " has none of the memory, pids, cpu controllers (cgroup.controllers: \"io\")");
  // And a path that is not a cgroup2 folder at all (the kernel's check, not the fake tree's).
  sandbox::CgroupHost not_cg = sandbox::cgroup_host_v2(base, false, false);
  BOOST_TEST(not_cg.unavailable == base + " is not a cgroup2 folder");
  std::string err;
  BOOST_TEST(!sandbox::JobCgroup::create(h, "x", {}, &err));
  BOOST_TEST(err == h.unavailable);
  fs::remove_all(base);
}
