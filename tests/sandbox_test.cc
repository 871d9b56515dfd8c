// The sandbox, sandbox2-style: the test-only escape probe makes one forbidden syscall per
// family from inside the locked-down child and the verdict is asserted exactly; a live
// child is inspected through /proc from outside; killing the supervisor leaves no child.
#include <boost/test/unit_test.hpp>

#include <dirent.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "tests/testlib.h"

namespace fs = std::filesystem;
using nlohmann::json;
using wjt::guest;

namespace {

std::string probe_binary() {
  return WJ_PROBE_BINARY;
}

struct Exec {
  int code;
  json result;
  std::string err;
};

// Runs `wasmjail exec` (the probe build unless told) on a job running `module` with `params`.
Exec exec(const std::string& module, const std::vector<std::string>& params,
          const std::string& bin = probe_binary(), const std::vector<std::string>& env = {}) {
  std::string dir = wjt::temp_dir();
  std::string job = "entry_module: {source_path: '" + guest(module) + "'}\nparameters: [";
  for (size_t i = 0; i < params.size(); ++i) job += (i ? ", '" : "'") + params[i] + "'";
  job += "]\n";
  wjt::write_file(dir + "/job.yaml", job);
  auto r = wjt::run({bin, "exec", dir + "/job.yaml"}, env);
  Exec e{r.exit_code, json::parse(r.out, nullptr, false), r.err};
  BOOST_REQUIRE_MESSAGE(!e.result.is_discarded(), "stdout is not JSON: " + r.out + r.err);
  return e;
}

// The probe makes syscall `nr` with `args`; the job must end `violation` naming `name`.
void expect_violation(long nr, const std::string& name, std::vector<std::string> args = {}) {
  std::vector<std::string> params = {std::to_string(nr)};
  params.insert(params.end(), args.begin(), args.end());
  Exec e = exec("probe", params);
  BOOST_TEST_CONTEXT("syscall " << name) {
    BOOST_TEST(e.result["status"] == "violation");
    BOOST_TEST(e.result["violation"]["syscall"] == name);
    BOOST_TEST(e.result["violation"]["number"] == nr);
    BOOST_TEST(e.result["error"] == "the job made a forbidden system call: " + name);
    BOOST_TEST(e.result["stdout"] == "");  // the call never returned to the guest
  }
}

std::string status_field(const std::string& status, const std::string& key) {
  std::istringstream in(status);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) {
      std::string v = line.substr(key.size() + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  return "";
}

// The job child of wasmjail process `pid` (its only child), or -1.
pid_t child_of(pid_t pid) {
  std::vector<pid_t> c = wjt::job_children(pid);
  return c.empty() ? -1 : c.front();
}

// Run again as `sandbox_test_warm` (WASMJAIL_POOL=on): every job in a warm pooled process,
// which the fork server creates, so one runs even for `run`.
bool warm_mode() {
  const char* p = getenv("WASMJAIL_POOL");
  return p && std::string(p) == "on";
}

bool gone(pid_t pid) {
  std::string st = wjt::read_file("/proc/" + std::to_string(pid) + "/status");
  return st.empty() || status_field(st, "State").rfind("Z", 0) == 0;
}

// A spinning job under `wasmjail run`, its child locked down (seccomp mode 2 reached).
struct LiveJob {
  pid_t wasmjail = -1, child = -1;
  int out_fd = -1;
  std::string data_dir, out_dir;
  // `zygote`: run it through the fork server (WASMJAIL_ZYGOTE=on), as `serve` does; else
  // `run`'s default: the supervisor clones it directly.
  explicit LiveJob(bool zygote = false, std::vector<std::string> extra = {}) {
    data_dir = wjt::temp_dir();
    out_dir = wjt::temp_dir();
    std::vector<std::string> argv = {wjt::binary(),           "run",   "--dir",
                                     data_dir + "::/data:ro", "--dir", out_dir + "::/out"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(guest("spin"));
    const char* was = getenv("WASMJAIL_ZYGOTE");
    std::string saved = was ? was : "";
    if (zygote) setenv("WASMJAIL_ZYGOTE", "on", 1);
    else unsetenv("WASMJAIL_ZYGOTE");
    // The job's process only: no compile for the code cache beside it (a second child).
    setenv("WASMJAIL_BACKGROUND_COMPILE", "off", 1);
    wasmjail = wjt::spawn(argv, &out_fd);
    unsetenv("WASMJAIL_BACKGROUND_COMPILE");
    if (was) setenv("WASMJAIL_ZYGOTE", saved.c_str(), 1);
    else unsetenv("WASMJAIL_ZYGOTE");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      child = child_of(wasmjail);
      // Spinning = seccomp on and V8's worker threads started (the guest is running).
      if (child > 0 && status_field(status(), "Seccomp") == "2" &&
          std::stoi("0" + status_field(status(), "Threads")) > 1)
        return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    BOOST_FAIL("the spinning job's child never locked down");
  }
  ~LiveJob() {
    kill(wasmjail, SIGKILL);
    waitpid(wasmjail, nullptr, 0);
    close(out_fd);
  }
  std::string proc(const std::string& what) const { return "/proc/" + std::to_string(child) + "/" + what; }
  std::string status() const { return wjt::read_file(proc("status")); }
};

}  // namespace

BOOST_AUTO_TEST_CASE(probe_is_absent_from_the_released_binary) {
  auto r = wjt::run({wjt::binary(), "run", guest("probe"), "39"});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err.find("no module named \"wasmjail_probe\" is linked") != std::string::npos, r.err);
  BOOST_TEST(wjt::read_file(wjt::binary()).find("wasmjail_probe") == std::string::npos);
  BOOST_TEST(wjt::read_file(probe_binary()).find("wasmjail_probe") != std::string::npos);  // the check can see it
}

BOOST_AUTO_TEST_CASE(probe_runs_allowed_syscalls) {
  Exec e = exec("probe", {std::to_string(SYS_getpid)});
  BOOST_TEST(e.result["status"] == "ok");
  BOOST_TEST(e.result["stdout"] == "result=1\n");  // pid 1 of its own pid namespace
}

// One test per dangerous family (KILL set: held by the kernel, the supervisor kills).
BOOST_AUTO_TEST_CASE(execve_is_a_violation) {
  expect_violation(SYS_execve, "execve");
}
BOOST_AUTO_TEST_CASE(execveat_is_a_violation) {
  expect_violation(SYS_execveat, "execveat");
}
BOOST_AUTO_TEST_CASE(ptrace_is_a_violation) {
  expect_violation(SYS_ptrace, "ptrace", {"16", "1"});
}
BOOST_AUTO_TEST_CASE(process_vm_readv_is_a_violation) {
  expect_violation(SYS_process_vm_readv, "process_vm_readv");
}
BOOST_AUTO_TEST_CASE(bpf_is_a_violation) {
  expect_violation(SYS_bpf, "bpf");
}
BOOST_AUTO_TEST_CASE(perf_event_open_is_a_violation) {
  expect_violation(SYS_perf_event_open, "perf_event_open");
}
BOOST_AUTO_TEST_CASE(userfaultfd_is_a_violation) {
  expect_violation(SYS_userfaultfd, "userfaultfd");
}
BOOST_AUTO_TEST_CASE(io_uring_setup_is_a_violation) {
  expect_violation(SYS_io_uring_setup, "io_uring_setup");
}
BOOST_AUTO_TEST_CASE(mount_is_a_violation) {
  expect_violation(SYS_mount, "mount");
}
BOOST_AUTO_TEST_CASE(unshare_is_a_violation) {
  expect_violation(SYS_unshare, "unshare", {"0x10000000"});
}
BOOST_AUTO_TEST_CASE(setns_is_a_violation) {
  expect_violation(SYS_setns, "setns");
}
BOOST_AUTO_TEST_CASE(socket_is_a_violation) {
  expect_violation(SYS_socket, "socket", {"2", "1", "0"});
}
BOOST_AUTO_TEST_CASE(keyctl_is_a_violation) {
  expect_violation(SYS_keyctl, "keyctl");
}
BOOST_AUTO_TEST_CASE(personality_is_a_violation) {
  // Even with the exact arguments of the child's readiness handshake: it is accepted once.
  expect_violation(SYS_personality, "personality", {"0xffffffff"});
}
BOOST_AUTO_TEST_CASE(seccomp_is_a_violation) {
  expect_violation(SYS_seccomp, "seccomp");
}

// Outside the allowlist (default action TRAP: the SIGSYS handler reports it).
BOOST_AUTO_TEST_CASE(fork_like_clone_is_a_violation) {
  expect_violation(SYS_clone, "clone", {std::to_string(SIGCHLD)});
}
BOOST_AUTO_TEST_CASE(kill_of_another_process_is_a_violation) {
  expect_violation(SYS_kill, "kill", {"999999", "0"});
}
BOOST_AUTO_TEST_CASE(ioctl_is_a_violation) {
  expect_violation(SYS_ioctl, "ioctl", {"1", "0x5401"});
}
BOOST_AUTO_TEST_CASE(mprotect_with_growsdown_is_a_violation) {
  expect_violation(SYS_mprotect, "mprotect", {"0", "4096", std::to_string(0x01000000 | 1)});
}

BOOST_AUTO_TEST_CASE(clone3_answers_enosys_and_the_guest_goes_on) {
  Exec e = exec("probe", {std::to_string(SYS_clone3)});
  BOOST_TEST(e.result["status"] == "ok");
  BOOST_TEST(e.result["stdout"] == "result=-38\n");
}

BOOST_AUTO_TEST_CASE(garbage_on_the_record_pipe_is_crashed) {
  Exec e = exec("probe", {"garbage", "100"});
  BOOST_TEST(e.result["status"] == "crashed");
  BOOST_TEST(e.result["error"] == "child sent a malformed record and was killed: bad frame magic");
  // A flood: the first bad header gets the child killed while it is still writing.
  e = exec("probe", {"garbage", "100000000"});
  BOOST_TEST(e.result["status"] == "crashed");
  BOOST_TEST(e.result["error"] == "child sent a malformed record and was killed: bad frame magic");
  BOOST_TEST(e.result["stdout"] == "");
}

BOOST_AUTO_TEST_CASE(result_lists_applied_mechanisms) {
  Exec e = exec("hello", {"x"}, wjt::binary());
  BOOST_TEST(e.result["status"] == "ok");
  // The job's cgroup is applied by the supervisor, listed after the child's mechanisms
  // (these machines have writable cgroup v1 controllers; tests/cgroup_test.cc).
  BOOST_TEST(e.result["sandbox"]["applied"] ==
             json::parse(R"(["user_ns","pid_ns","net_ns","ipc_ns","uts_ns","mount_ns","landlock","seccomp",)"
                         R"("capabilities","rlimits","cgroup"])"));
  BOOST_TEST(e.result["sandbox"]["skipped"] == json::parse(R"([])"));
  BOOST_TEST(e.result["sandbox"]["cgroup_version"] == "v1");
}

BOOST_AUTO_TEST_CASE(best_effort_mechanisms_unavailable_are_skipped_and_listed) {
  Exec e = exec("hello", {"x"}, wjt::binary(), {"WASMJAIL_TEST_UNAVAILABLE=landlock,net_ns,cgroup"});
  BOOST_TEST(e.result["status"] == "ok");
  BOOST_TEST(e.result["stdout"] == "Hello, x!\n");
  BOOST_TEST(e.result["sandbox"]["skipped"] == json::parse(R"(["net_ns","landlock","cgroup"])"));
  BOOST_TEST(
      e.result["sandbox"]["applied"] ==
      json::parse(R"(["user_ns","pid_ns","ipc_ns","uts_ns","mount_ns","seccomp","capabilities","rlimits"])"));
}

BOOST_AUTO_TEST_CASE(required_mechanisms_unavailable_refuse_to_run) {
  // seccomp and capabilities are required by default.
  Exec e = exec("hello", {"x"}, wjt::binary(), {"WASMJAIL_TEST_UNAVAILABLE=seccomp"});
  BOOST_TEST(e.result["status"] == "setup_error");
  BOOST_TEST(e.result["error"] == "sandbox setup failed: seccomp: unavailable (simulated)");
  BOOST_TEST(e.result["stdout"] == "");
  e = exec("hello", {"x"}, wjt::binary(), {"WASMJAIL_TEST_UNAVAILABLE=capabilities"});
  BOOST_TEST(e.result["status"] == "setup_error");
  BOOST_TEST(e.result["error"] == "sandbox setup failed: capabilities: unavailable (simulated)");
  e = exec("hello", {"x"}, wjt::binary(), {"WASMJAIL_TEST_UNAVAILABLE=no_such_thing"});
  BOOST_TEST(e.result["status"] == "setup_error");
  BOOST_TEST(e.result["error"] == "WASMJAIL_TEST_UNAVAILABLE: unknown mechanism \"no_such_thing\"");
}

void check_locked_down(const LiveJob& job) {
  std::string st = job.status();
  BOOST_TEST(status_field(st, "Seccomp") == "2");
  BOOST_TEST(status_field(st, "NoNewPrivs") == "1");
  BOOST_TEST(status_field(st, "CapEff") == "0000000000000000");
  BOOST_TEST(status_field(st, "CapPrm") == "0000000000000000");
  BOOST_TEST(status_field(st, "CapInh") == "0000000000000000");
  BOOST_TEST(status_field(st, "CapBnd") == "0000000000000000");
  BOOST_TEST(status_field(st, "CapAmb") == "0000000000000000");
  BOOST_TEST(status_field(st, "NSpid").find('\t') != std::string::npos);  // "outer\t1": pid 1 inside
  // The fd table: /dev/null, the stdout/stderr/record pipes, the two preopens.
  std::set<std::string> fds;
  for (const auto& e : fs::directory_iterator(job.proc("fd"))) fds.insert(e.path().filename().string());
  BOOST_TEST((fds == std::set<std::string>{"0", "1", "2", "3", "4", "5"}));
  BOOST_TEST(fs::read_symlink(job.proc("fd/4")).string() == "/data");  // paths in its own root
  BOOST_TEST(fs::read_symlink(job.proc("fd/5")).string() == "/out");
  for (const char* fd : {"1", "2", "3"})
    BOOST_TEST(fs::read_symlink(job.proc("fd/") + fd).string().rfind("pipe:", 0) == 0u);
  // Limits.
  std::string limits = wjt::read_file(job.proc("limits"));
  auto limit_line = [&](const std::string& name) {
    auto at = limits.find(name);
    if (at == std::string::npos) return std::string();
    std::istringstream in(limits.substr(at + name.size()));
    std::string soft, hard;
    in >> soft >> hard;
    return soft + " " + hard;
  };
  BOOST_TEST(limit_line("Max core file size") == "0 0");
  // From the default policy: open_files 64 (+16 of wasmjail's own), output_bytes 64MiB.
  BOOST_TEST(limit_line("Max open files") == "80 80");
  BOOST_TEST(limit_line("Max file size") == "67108864 67108864");
  BOOST_TEST(limit_line("Max data size") == "2147483648 2147483648");
  BOOST_TEST(limit_line("Max cpu time") == "60 61");
  BOOST_TEST(limit_line("Max stack size") == "8388608 8388608");
  // Namespaces differ from ours.
  for (const char* ns : {"user", "pid", "net", "ipc", "uts", "mnt"})
    BOOST_TEST(fs::read_symlink(job.proc("ns/") + ns) != fs::read_symlink(std::string("/proc/self/ns/") + ns),
               ns);
  // Its mount table: the read-only tmpfs root, the read-only input, the writable output.
  std::istringstream mounts(wjt::read_file(job.proc("mountinfo")));
  std::vector<std::string> points;
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream f(line);
    std::string id, parent, devno, root, point, opts;
    f >> id >> parent >> devno >> root >> point >> opts;
    points.push_back(point + " " + opts.substr(0, 2));
    for (const char* flag : {"nosuid", "nodev", "noexec"})
      BOOST_TEST(opts.find(flag) != std::string::npos, line);
  }
  std::sort(points.begin(), points.end());
  BOOST_TEST((points == std::vector<std::string>{"/ ro", "/data ro", "/out rw"}));
}

BOOST_AUTO_TEST_CASE(live_child_is_locked_down) {
  LiveJob job;  // cloned by the supervisor (run's default)
  check_locked_down(job);
}

// Run again as `sandbox_test_shared_net`: the default policy (found first through
// WASMJAIL_POLICY_PATH) with isolation.net_namespace_kind: shared_empty.
bool shared_net_mode() {
  static const bool shared =
      wjt::run({wjt::binary(), "policy", "show", "default"}).out.find("net_namespace_kind: shared_empty") !=
      std::string::npos;
  return shared;
}

BOOST_AUTO_TEST_CASE(live_child_from_the_fork_server_is_locked_down) {
  LiveJob job(true);  // created by the fork server (serve's default)
  pid_t zygote = wjt::zygote_of(job.wasmjail);
  BOOST_REQUIRE(zygote > 0);
  check_locked_down(job);
  // shared_empty: the fork server's one empty namespace (only a loopback); per_job: its own.
  const auto job_net = fs::read_symlink(job.proc("ns/net"));
  const auto zygote_net = fs::read_symlink("/proc/" + std::to_string(zygote) + "/ns/net");
  BOOST_TEST((job_net == zygote_net) == shared_net_mode(), job_net << " " << zygote_net);
  std::string dev = wjt::read_file(job.proc("net/dev"));
  BOOST_TEST(std::count(dev.begin(), dev.end(), '\n') == 3);  // two header lines and lo
  BOOST_TEST(dev.find("lo:") != std::string::npos);
}

// A direct clone (run's default) cannot join the fork server's namespace: a shared_empty job
// gets its own, like per_job, never the supervisor's.
BOOST_AUTO_TEST_CASE(a_directly_cloned_job_has_its_own_network_namespace) {
  LiveJob job;
  BOOST_TEST(fs::read_symlink(job.proc("ns/net")) != fs::read_symlink("/proc/self/ns/net"));
  BOOST_TEST(fs::read_symlink(job.proc("ns/net")) !=
             fs::read_symlink("/proc/" + std::to_string(job.wasmjail) + "/ns/net"));
}

BOOST_AUTO_TEST_CASE(killing_the_supervisor_leaves_no_child) {
  for (bool zygote : {false, true}) {
    BOOST_TEST_CONTEXT("through the fork server: " << zygote) {
      LiveJob job(zygote);
      pid_t child = job.child;
      pid_t server = wjt::zygote_of(job.wasmjail);
      BOOST_REQUIRE(!gone(child));
      BOOST_REQUIRE((server > 0) == (zygote || warm_mode()));
      kill(job.wasmjail, SIGKILL);
      waitpid(job.wasmjail, nullptr, 0);
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while ((!gone(child) || (server > 0 && !gone(server))) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      BOOST_TEST(gone(child));
      if (server > 0) BOOST_TEST(gone(server));  // the fork server dies with the supervisor too
    }
  }
}

// The fork server: a single-threaded process beside the supervisor that creates the job
// process as the supervisor's own child (CLONE_PARENT), locked down exactly the same.
BOOST_AUTO_TEST_CASE(fork_server_creates_the_job_as_the_supervisors_child) {
  LiveJob job(true);
  pid_t zygote = wjt::zygote_of(job.wasmjail);
  BOOST_REQUIRE(zygote > 0);
  std::string zst = wjt::read_file("/proc/" + std::to_string(zygote) + "/status");
  BOOST_TEST(status_field(zst, "Threads") == "1");  // fork-safe: never a second thread
  BOOST_TEST(status_field(zst, "PPid") == std::to_string(job.wasmjail));
  BOOST_TEST(status_field(job.status(), "PPid") == std::to_string(job.wasmjail));
  BOOST_TEST(status_field(job.status(), "Seccomp") == "2");
  // The fork server holds no job's fds: its socket to the supervisor and stdio only.
  size_t zfds = 0;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(zygote) + "/fd")) (void)e, ++zfds;
  BOOST_TEST(zfds == 4u);
}

// Each job draws its own V8 address hints: two jobs forked from the same fork server do not
// share the layout of what V8 mapped for them.
BOOST_AUTO_TEST_CASE(jobs_from_the_fork_server_do_not_share_v8_layout) {
  auto v8_maps = [](const LiveJob& j) {
    // Anonymous mappings other than the ones inherited from the fork server: compare the
    // sets of start addresses of the child's mappings that its parent lacks.
    std::set<std::string> mine, parent;
    auto starts = [](const std::string& maps, std::set<std::string>* out) {
      std::istringstream in(maps);
      std::string line;
      while (std::getline(in, line)) out->insert(line.substr(0, line.find('-')));
    };
    starts(wjt::read_file(j.proc("maps")), &mine);
    starts(wjt::read_file("/proc/" + std::to_string(wjt::zygote_of(j.wasmjail)) + "/maps"), &parent);
    std::set<std::string> fresh;
    for (const auto& m : mine)
      if (!parent.count(m)) fresh.insert(m);
    return fresh;
  };
  // The guest is spinning once its worker threads exist; V8's mappings settle soon after.
  auto settled_maps = [&](const LiveJob& j) {
    std::set<std::string> m;
    for (int i = 0; i < 300 && (m = v8_maps(j)).size() <= 10; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return m;
  };
  std::set<std::string> a, b;
  {
    LiveJob j1(true);
    a = settled_maps(j1);
  }
  {
    LiveJob j2(true);
    b = settled_maps(j2);
  }
  BOOST_TEST_MESSAGE("new mappings: " << a.size() << " and " << b.size());
  BOOST_REQUIRE(a.size() > 10u);
  BOOST_REQUIRE(b.size() > 10u);
  size_t shared = 0;
  for (const auto& m : a) shared += b.count(m);
  BOOST_TEST(shared * 4 < a.size(), shared << " of " << a.size() << " new mappings at the same address");
}

// One-shot commands clone the job from the supervisor (no fork server); WASMJAIL_ZYGOTE=on
// makes them use one, and a forbidden call from a job it created is reported the same way
// (the seccomp listener travels from that job to the supervisor).
BOOST_AUTO_TEST_CASE(run_clones_directly_and_violations_are_reported_either_way) {
  {
    LiveJob job;
    BOOST_TEST((wjt::zygote_of(job.wasmjail) == -1) == !warm_mode());
  }
  for (const char* mode : {"on", "off"}) {
    BOOST_TEST_CONTEXT("WASMJAIL_ZYGOTE=" << mode) {
      Exec e = exec("probe", {std::to_string(SYS_ptrace), "16", "1"}, probe_binary(),
                    {std::string("WASMJAIL_ZYGOTE=") + mode});
      BOOST_TEST(e.result["status"] == "violation");
      BOOST_TEST(e.result["violation"]["syscall"] == "ptrace");
      e = exec("probe", {std::to_string(SYS_getcwd)}, probe_binary(), {std::string("WASMJAIL_ZYGOTE=") + mode});
      BOOST_TEST(e.result["status"] == "violation");  // trapped (SIGSYS), not a dangerous call
      BOOST_TEST(e.result["violation"]["syscall"] == "getcwd");
    }
  }
}
