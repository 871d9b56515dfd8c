// Every way a job can end under its limits, with its exact status, on one supervisor loop.
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <uv.h>

#include <chrono>
#include <filesystem>
#include <map>

#include "supervisor/supervisor.h"
#include "tests/testlib.h"

using namespace wj;

namespace {

Job job_for(const std::string& guest, std::vector<std::string> args = {}) {
  Job j;
  j.module_path = wjt::guest(guest);
  j.argv = {guest};
  j.argv.insert(j.argv.end(), args.begin(), args.end());
  return j;
}

// Runs jobs concurrently on one loop; returns their results and wall times (ms).
struct Ran {
  Result r;
  double ms;
};
std::vector<Ran> run_all(const std::vector<std::pair<Job, RunOptions>>& jobs) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::vector<Ran> out(jobs.size());
  auto t0 = std::chrono::steady_clock::now();
  {
    Supervisor sup(&loop);
    for (size_t i = 0; i < jobs.size(); ++i)
      sup.start(jobs[i].first, jobs[i].second, [&, i](Result r) {
        out[i] = Ran{std::move(r), std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count()};
      });
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(&loop);
  return out;
}

Ran run_one(const Job& j, RunOptions o) { return run_all({{j, o}})[0]; }

RunOptions with_wall(double ms) {
  RunOptions o;
  o.job_limits.wall_time_ms = ms;
  return o;
}

}  // namespace

BOOST_AUTO_TEST_CASE(infinite_loop_times_out_while_other_jobs_run) {
  auto res = run_all({{job_for("loop"), with_wall(1000)}, {job_for("hello", {"neighbour"}), with_wall(10000)}});
  BOOST_TEST(to_string(res[0].r.status) == "timeout");
  BOOST_TEST(res[0].r.error == "wall-time limit of 1s exceeded");
  BOOST_TEST(res[0].ms < 1500);  // the limit plus a small margin
  BOOST_TEST(res[0].r.exit_code == -1);
  // The neighbour was not slowed down by the spinning job and finished first.
  BOOST_TEST(to_string(res[1].r.status) == "ok");
  BOOST_TEST(res[1].r.out.data == "Hello, neighbour!\n");
  BOOST_TEST(res[1].ms < res[0].ms);
}

BOOST_AUTO_TEST_CASE(loop_calling_host_functions_times_out) {
  auto ran = run_one(job_for("hostloop"), with_wall(700));
  BOOST_TEST(to_string(ran.r.status) == "timeout");
  BOOST_TEST(ran.ms < 1200);
}

BOOST_AUTO_TEST_CASE(blocked_in_a_host_call_is_killed_at_the_limit) {
  auto ran = run_one(job_for("sleep_long"), with_wall(600));
  BOOST_TEST(to_string(ran.r.status) == "timeout");
  BOOST_TEST(ran.ms < 1100);
}

BOOST_AUTO_TEST_CASE(cpu_limit) {
  RunOptions o = with_wall(10000);
  o.job_limits.cpu_time_ms = 500;
  auto ran = run_one(job_for("loop"), o);
  BOOST_TEST(to_string(ran.r.status) == "cpu_limit");
  BOOST_TEST(ran.r.error == "CPU-time limit of 500ms exceeded");
  BOOST_TEST(ran.r.usage.cpu_ms >= 500);
  BOOST_TEST(ran.ms < 2000);
}

BOOST_AUTO_TEST_CASE(ten_gib_grow_is_refused) {
  RunOptions o = with_wall(10000);
  o.job_limits.wasm_memory = 64ull << 20;
  auto ran = run_one(job_for("big_grow"), o);
  BOOST_TEST(to_string(ran.r.status) == "ok");
  BOOST_TEST(ran.r.out.data == "refused\n");
  // Without a policy cap, 10 GiB is still over wasm32's 4 GiB: refused too.
  ran = run_one(job_for("big_grow"), with_wall(10000));
  BOOST_TEST(ran.r.out.data == "refused\n");
}

BOOST_AUTO_TEST_CASE(growth_page_by_page_stops_at_wasm_memory) {
  RunOptions o = with_wall(20000);
  o.job_limits.wasm_memory = 64ull << 20;
  auto ran = run_one(job_for("grow_pages"), o);
  BOOST_TEST(to_string(ran.r.status) == "ok");
  BOOST_TEST(ran.r.out.data == "refused at 1024 pages (64 MiB)\n");
  BOOST_TEST(ran.r.usage.peak_wasm_memory_bytes == 64ull << 20);
}

BOOST_AUTO_TEST_CASE(declared_memory_over_the_cap_is_refused_before_running) {
  RunOptions o = with_wall(10000);
  o.job_limits.wasm_memory = 64ull << 20;
  auto ran = run_one(job_for("declared_big"), o);
  BOOST_TEST(to_string(ran.r.status) == "invalid_job");
  BOOST_TEST(ran.r.error.find("memory 0 declares a minimum of 2000 pages (125MiB), over the wasm_memory limit of 64MiB") !=
             std::string::npos);
  BOOST_TEST(ran.r.exit_code == -1);
}

BOOST_AUTO_TEST_CASE(deep_recursion_is_a_trap) {
  auto ran = run_one(job_for("recurse"), with_wall(10000));
  BOOST_TEST(to_string(ran.r.status) == "trap");
  BOOST_REQUIRE(ran.r.trap.has_value());
  BOOST_TEST(ran.r.trap->message == "RangeError: Maximum call stack size exceeded");
}

BOOST_AUTO_TEST_CASE(a_gib_of_stdout_is_kept_to_the_cap) {
  RunOptions o = with_wall(30000);
  o.stdout_cap = 1u << 20;
  size_t streamed = 0;
  o.on_output = [&](Stream, const char*, size_t n) { streamed += n; };
  auto ran = run_one(job_for("flood", {"1024"}), o);
  BOOST_TEST(to_string(ran.r.status) == "ok");
  BOOST_TEST(ran.r.out.data.size() == 1u << 20);
  BOOST_TEST(ran.r.out.truncated);
  BOOST_TEST(ran.r.out.total_bytes == 1ull << 30);
  BOOST_TEST(streamed == 1ull << 30);  // all of it was streamed to the consumer
}

BOOST_AUTO_TEST_CASE(external_sigkill_is_crashed) {
  RunOptions o = with_wall(10000);
  o.on_spawn = [](pid_t pid) {
    // Give it a moment to start spinning, then kill it from outside.
    if (fork() == 0) {
      usleep(300 * 1000);
      kill(pid, SIGKILL);
      _exit(0);
    }
  };
  auto ran = run_one(job_for("loop"), o);
  int st;
  while (waitpid(-1, &st, WNOHANG) > 0) {
  }
  BOOST_TEST(to_string(ran.r.status) == "crashed");
  BOOST_TEST(ran.r.error == "child killed by SIGKILL before reporting a result");
  BOOST_TEST(ran.ms < 5000);
}

BOOST_AUTO_TEST_CASE(an_output_file_that_grows_without_end_stops_at_output_bytes) {
  std::string out = wjt::temp_dir();
  Job j = job_for("grow_file");
  j.dirs.push_back(DirMount{out, "/out", false});
  RunOptions o = with_wall(20000);
  o.job_limits.output_bytes = 1u << 20;
  auto ran = run_one(j, o);
  BOOST_TEST(to_string(ran.r.status) == "ok");
  // wasi-libc's strerror for WASI's FBIG.
  BOOST_TEST(ran.r.out.data == "stopped after 1048576 bytes: File too large\n");
  struct stat st{};
  BOOST_TEST(stat((out + "/big.bin").c_str(), &st) == 0);
  BOOST_TEST(st.st_size == 1 << 20);
}

BOOST_AUTO_TEST_CASE(output_over_the_cap_fails_when_truncation_is_off) {
  auto policy = std::make_shared<Policy>();
  for (auto& level : policy->isolation.level) level = Isolation::kBestEffort;
  policy->output.truncate = false;
  policy->limits.stdout_bytes = 1u << 20;
  RunOptions o = with_wall(30000);
  o.policy = policy;
  auto ran = run_one(job_for("flood", {"1024"}), o);
  BOOST_TEST(to_string(ran.r.status) == "violation");
  BOOST_TEST(ran.r.error ==
             "stdout passed limits.stdout_bytes (1048576 bytes) and the policy does not allow truncation (output.truncate: false)");
  BOOST_TEST(ran.r.out.data.size() == 1u << 20);
  BOOST_TEST(!ran.r.violation.has_value());  // not a syscall
}

// Holes count: writing one byte 100 MiB past the end charges 100 MiB of apparent size, so a
// 1 MiB cap stops the first such write (before: 12,000 MiB apparent under a 64 MiB cap).
BOOST_AUTO_TEST_CASE(sparse_writes_are_charged_their_apparent_size) {
  std::string out = wjt::temp_dir();
  Job j = job_for("disk_hog", {"sparse", "100"});
  j.dirs.push_back(DirMount{out, "/out", false});
  RunOptions o = with_wall(20000);
  o.job_limits.output_bytes = 1u << 20;
  auto ran = run_one(j, o);
  BOOST_TEST(to_string(ran.r.status) == "ok");
  BOOST_TEST(ran.r.out.data == "stopped after 0: File too large\n");
  uint64_t apparent = 0;
  for (const auto& e : std::filesystem::directory_iterator(out)) apparent += e.file_size();
  BOOST_TEST(apparent <= (1u << 20));
  // Under a cap that allows two holes, exactly two files get them.
  std::string out2 = wjt::temp_dir();
  j.dirs.back().host_path = out2;
  o.job_limits.output_bytes = (200u << 20) + 10;
  ran = run_one(j, o);
  BOOST_TEST(ran.r.out.data == "stopped after 2: File too large\n");
}

// Folders and symlinks count against output_bytes and the new output_files cap (before:
// 3,000 folders and 3,000 links used 6,001 inodes under a 1 MiB cap).
BOOST_AUTO_TEST_CASE(folders_and_links_count_against_output_files_and_bytes) {
  for (const char* kind : {"dirs", "links"}) {
    std::string out = wjt::temp_dir();
    Job j = job_for("disk_hog", {kind, "3000"});
    j.dirs.push_back(DirMount{out, "/out", false});
    RunOptions o = with_wall(20000);
    o.job_limits.output_files = 100;
    auto ran = run_one(j, o);
    BOOST_TEST_CONTEXT(kind) {
      BOOST_TEST(to_string(ran.r.status) == "ok");
      BOOST_TEST(ran.r.out.data == "stopped after 100: Quota exceeded\n");
      size_t n = 0;
      for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(out)) ++n;
      BOOST_TEST(n == 100u);
    }
  }
  // A folder is charged a block (4 KiB) of output_bytes.
  std::string out = wjt::temp_dir();
  Job j = job_for("disk_hog", {"dirs", "3000"});
  j.dirs.push_back(DirMount{out, "/out", false});
  RunOptions o = with_wall(20000);
  o.job_limits.output_bytes = 1u << 20;
  auto ran = run_one(j, o);
  BOOST_TEST(ran.r.out.data == "stopped after 256: File too large\n");
}
