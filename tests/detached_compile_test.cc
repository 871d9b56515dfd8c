// The hot-code compile of a one-shot `run` or `exec` runs detached, after the command exited
// (supervisor/detached_compile.h): it is not waited for, it is bounded by locks beneath the
// cache folder, a hostile folder leads it nowhere, and it leaves nothing behind.
//
// This test program makes itself a child subreaper while a case runs: a process the command
// left running is then reparented here instead of to init, so the test can see it, reap it
// and check how it ended.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/testlib.h"

namespace fs = std::filesystem;
using nlohmann::json;
using wjt::binary;
using wjt::guest;
using wjt::TempDir;

namespace {

// Processes left behind by a command are reparented to this one while it lives.
struct Subreaper {
  Subreaper() { BOOST_REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0); }
  ~Subreaper() {
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    prctl(PR_SET_CHILD_SUBREAPER, 0);
  }
  static std::vector<pid_t> children() {
    std::vector<pid_t> out;
    std::error_code ec;
    for (const auto& t : fs::directory_iterator("/proc/self/task", ec)) {
      std::ifstream f(t.path() / "children");
      for (pid_t c; f >> c;) out.push_back(c);
    }
    return out;
  }
  // Waits (up to `seconds`) until no child is left; returns how many were reaped and how each
  // ended (the exit status, or 128 + signal).
  std::vector<int> reap_all(int seconds) {
    std::vector<int> ended;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    for (;;) {
      int st = 0;
      pid_t p = waitpid(-1, &st, WNOHANG);
      if (p > 0) {
        ended.push_back(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        continue;
      }
      if (p < 0 && errno == ECHILD) return ended;
      if (std::chrono::steady_clock::now() > deadline) {
        ended.push_back(-1);  // still running: a test failure; kill what is left, reap it
        for (pid_t c : children()) kill(c, SIGKILL);
        while (waitpid(-1, nullptr, 0) > 0) {
        }
        return ended;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
};

// `module` with a custom section of `pad` bytes appended: over the 8 MiB up to which run
// compiles the whole module on TurboFan beside the job, so that only the hot-code compile runs.
std::string padded(const TempDir& d, const std::string& module, size_t pad) {
  return wjt::padded_module(d.path, module, pad);
}

// The code entries in a cache folder (lock files are not entries).
int entries(const std::string& cache) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(cache, ec))
    if (e.path().extension() == ".code") ++n;
  return n;
}

bool wait_for_entry(const std::string& cache, int seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (entries(cache) == 0) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

// `wasmjail run` of hot_main (a loop in main that V8 marks hot) padded past 8 MiB.
// `on` is the shipped default (the test library makes `wait` the default of the other tests).
wjt::ProcResult run_hot(const std::string& module, const std::string& cache, const std::string& mode = "on") {
  std::vector<std::string> env = {"WASMJAIL_CACHE_DIR=" + cache, "WASMJAIL_BACKGROUND_COMPILE=" + mode};
  return wjt::run({binary(), "run", module, "300000000"}, env, 300);
}

// A cache folder a first command has used (its key exists), then `names` in it created and
// locked by this process (as another command's compile would hold them); closed by the caller.
std::vector<int> hold_locks(const std::string& cache, const std::vector<std::string>& names) {
  auto first = wjt::run({binary(), "run", guest("hello")},
                        {"WASMJAIL_CACHE_DIR=" + cache, "WASMJAIL_BACKGROUND_COMPILE=off"});
  BOOST_REQUIRE(first.exit_code == 0);
  std::vector<int> held;
  for (const std::string& n : names) {
    int fd = open((cache + "/" + n).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    BOOST_REQUIRE(fd >= 0);
    BOOST_REQUIRE(flock(fd, LOCK_EX | LOCK_NB) == 0);
    held.push_back(fd);
  }
  return held;
}

// `wasmjail exec` of job.yaml in `dir` with the shipped default (a detached compile), parsed.
json exec_on(const TempDir& dir, const std::string& cache) {
  auto e = wjt::run({binary(), "exec", dir.path + "/job.yaml"},
                    {"WASMJAIL_CACHE_DIR=" + cache, "WASMJAIL_BACKGROUND_COMPILE=on"}, 300);
  json j = json::parse(e.out, nullptr, false);
  BOOST_REQUIRE_MESSAGE(!j.is_discarded(), e.out + e.err);
  return j;
}

// Names in /tmp that look like ours (memfds are not files; nothing should appear there).
std::vector<std::string> tmp_names() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/tmp", ec)) {
    std::string n = e.path().filename().string();
    if (n.find("wasmjail") != std::string::npos && n.find("wasmjail-test") == std::string::npos)
      out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(run_exits_before_the_hot_compile_which_then_stores_the_entry) {
  TempDir d, cache;
  std::string module = padded(d, guest("hot_main"), 9u << 20);
  const auto tmp_before = tmp_names();
  Subreaper reaper;
  auto r = run_hot(module, cache.path);
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  BOOST_TEST(r.out.rfind("hash ", 0) == 0);
  // Not there when run exited: the compile runs in a process run did not wait for (a
  // compile of a 9 MiB module in a new process takes far longer than run takes to exit).
  BOOST_TEST(entries(cache.path) == 0);
  // That process was left running: it is reparented here, ends by itself, exits 0, and is
  // the only one (its compile-only child was reaped by it, not left to us).
  std::vector<int> ended = reaper.reap_all(120);
  BOOST_TEST(ended.size() == 1u);
  BOOST_TEST((ended.size() == 1 && ended[0] == 0));
  BOOST_REQUIRE(wait_for_entry(cache.path, 5));
  BOOST_TEST(entries(cache.path) == 1);
  BOOST_TEST(tmp_names() == tmp_before, "the detached compile left something in /tmp");
  // The next run starts on that code.
  TempDir d2;
  wjt::write_file(d2.path + "/job.yaml",
                  "entry_module: {source_path: '" + module + "'}\nparameters: [\"1000\"]\n");
  auto e = wjt::run({binary(), "exec", d2.path + "/job.yaml"}, {"WASMJAIL_CACHE_DIR=" + cache.path}, 300);
  json j = json::parse(e.out, nullptr, false);
  BOOST_REQUIRE(!j.is_discarded());
  BOOST_TEST(j["code_cache"] == "hit", j.dump());
  BOOST_TEST(j["code_cache_optimized"].get<int>() >= 1);
  reaper.reap_all(120);  // that job optimized nothing new: nothing to compile, or a compile to reap
}

// exec does the same: its result JSON comes without waiting for the compile.
BOOST_AUTO_TEST_CASE(exec_exits_before_the_hot_compile_too) {
  TempDir d, cache;
  std::string module = padded(d, guest("hot_main"), 9u << 20);
  wjt::write_file(d.path + "/job.yaml",
                  "entry_module: {source_path: '" + module + "'}\nparameters: [\"300000000\"]\n");
  Subreaper reaper;
  json j = exec_on(d, cache.path);
  BOOST_TEST(j["status"] == "ok");
  BOOST_TEST(entries(cache.path) == 0);
  std::vector<int> ended = reaper.reap_all(120);
  BOOST_TEST(ended.size() == 1u);
  BOOST_TEST((ended.size() == 1 && ended[0] == 0));
  BOOST_TEST(wait_for_entry(cache.path, 5));
}

// A small module (up to 8 MiB) whose job is too short to optimize anything: nothing is
// compiled beside the job (it would be cut off when the job ends), and after it a detached
// compile puts every function on TurboFan, which the next run starts on.
BOOST_AUTO_TEST_CASE(a_short_job_of_a_small_module_leaves_its_whole_module_compiled) {
  TempDir d, cache;
  const std::string module = guest("hot_pick");
  BOOST_REQUIRE(fs::file_size(module) < (8u << 20));
  wjt::write_file(d.path + "/job.yaml", "entry_module: {source_path: '" + module + "'}\nparameters: [\"a\", \"10\"]\n");
  Subreaper reaper;
  json first = exec_on(d, cache.path);
  BOOST_TEST(first["status"] == "ok");
  BOOST_TEST(!first.contains("code_cache"), first.dump());  // nothing "compiling" beside it
  std::vector<int> ended = reaper.reap_all(120);
  BOOST_TEST(ended.size() == 1u);
  BOOST_TEST((ended.size() == 1 && ended[0] == 0));
  BOOST_REQUIRE(wait_for_entry(cache.path, 5));
  json second = exec_on(d, cache.path);
  BOOST_TEST(second["code_cache"] == "hit", second.dump());
  BOOST_TEST(second["stdout"] == first["stdout"]);
  // Every declared function: far more than the few a 10-round job could have optimized.
  BOOST_TEST(second["code_cache_optimized"].get<int>() >= 20);
  BOOST_TEST(reaper.reap_all(10).empty());  // the entry has it all: nothing more to compile
}

BOOST_AUTO_TEST_CASE(wait_compiles_before_run_exits_and_leaves_no_process) {
  TempDir d, cache;
  std::string module = padded(d, guest("hot_main"), 9u << 20);
  Subreaper reaper;
  auto r = run_hot(module, cache.path, "wait");
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  BOOST_TEST(entries(cache.path) == 1);    // there at exit
  BOOST_TEST(reaper.reap_all(5).empty());  // nothing left running
  // No lock files either: the compile ran in run's own process.
  int others = 0;
  for (const auto& e : fs::directory_iterator(cache.path)) others += e.path().extension() != ".code";
  BOOST_TEST(others == 0);
}

BOOST_AUTO_TEST_CASE(off_compiles_nothing) {
  TempDir d, cache;
  std::string module = padded(d, guest("hot_main"), 9u << 20);
  Subreaper reaper;
  auto r = run_hot(module, cache.path, "off");
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  BOOST_TEST(reaper.reap_all(5).empty());
  BOOST_TEST(entries(cache.path) == 0);
}

// The per-module lock: while another process holds it (here the test, holding every bucket),
// no second compile of the module starts; once it is free, one does.
BOOST_AUTO_TEST_CASE(a_compile_whose_module_lock_is_held_elsewhere_does_not_start) {
  TempDir d, cache;
  std::string module = padded(d, guest("hot_main"), 9u << 20);
  std::vector<std::string> buckets;
  for (int i = 0; i < 256; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "compile-%02x.lock", i);
    buckets.push_back(name);
  }
  std::vector<int> held = hold_locks(cache.path, buckets);
  {
    Subreaper reaper;
    auto r = run_hot(module, cache.path);
    BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    BOOST_TEST(reaper.reap_all(5).empty());  // no compile process was started
    BOOST_TEST(entries(cache.path) == 0);
  }
  for (int fd : held) close(fd);
  Subreaper reaper;
  auto r = run_hot(module, cache.path);
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  std::vector<int> ended = reaper.reap_all(120);
  BOOST_TEST(ended.size() == 1u);
  BOOST_TEST(wait_for_entry(cache.path, 5));
}

// The global cap: with every compile slot taken, a run starts no compile.
BOOST_AUTO_TEST_CASE(no_compile_starts_when_every_slot_is_taken) {
  TempDir d, cache;
  std::string module = padded(d, guest("hot_main"), 9u << 20);
  std::vector<int> held = hold_locks(cache.path, {"compile-slot-0.lock", "compile-slot-1.lock"});
  Subreaper reaper;
  auto r = run_hot(module, cache.path);
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  BOOST_TEST(reaper.reap_all(5).empty());
  BOOST_TEST(entries(cache.path) == 0);
  for (int fd : held) close(fd);
}

// Lock files planted as symlinks (to a file outside the folder) or FIFOs are not followed,
// opened for writing or waited on: the run succeeds, and no compile starts.
BOOST_AUTO_TEST_CASE(planted_lock_files_are_not_followed) {
  TempDir d, cache, outside;
  std::string module = padded(d, guest("hot_main"), 9u << 20);
  hold_locks(cache.path, {});  // the folder and its key, no lock held
  const std::string victim = outside.path + "/victim";
  wjt::write_file(victim, "untouched");
  chmod(victim.c_str(), 0644);
  for (int i = 0; i < 256; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "/compile-%02x.lock", i);
    if (i % 2)
      BOOST_REQUIRE(symlink(victim.c_str(), (cache.path + name).c_str()) == 0);
    else
      BOOST_REQUIRE(mkfifo((cache.path + name).c_str(), 0600) == 0);
  }
  Subreaper reaper;
  auto r = run_hot(module, cache.path);
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  BOOST_TEST(r.out.rfind("hash ", 0) == 0);
  BOOST_TEST(reaper.reap_all(5).empty());
  BOOST_TEST(entries(cache.path) == 0);
  BOOST_TEST(wjt::read_file(victim) == "untouched");
  struct stat st {};
  BOOST_TEST((stat(victim.c_str(), &st) == 0 && (st.st_mode & 07777) == 0644));
}

// A cache folder of another user is not used at all (a warning), and nothing is compiled.
BOOST_AUTO_TEST_CASE(another_users_cache_folder_is_not_used) {
  TempDir d, parent;
  std::string module = padded(d, guest("hot_main"), 9u << 20);
  const std::string cache = parent.path + "/cache";
  BOOST_REQUIRE(mkdir(cache.c_str(), 0700) == 0);
  BOOST_REQUIRE(chown(cache.c_str(), 65534, 65534) == 0);
  Subreaper reaper;
  auto r = run_hot(module, cache);
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  BOOST_TEST(r.warnings.find("code cache not used") != std::string::npos, r.warnings);
  BOOST_TEST(reaper.reap_all(5).empty());
  BOOST_TEST(entries(cache) == 0);
}
