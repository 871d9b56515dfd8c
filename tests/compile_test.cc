// Compile strategy and its costs: the shipped tier (Liftoff, lazy, tier-up), the code cache
// filled beside a tiered job, out of memory while compiling, a large module cold under the
// shipped limits, and the timings of each phase.
#include <boost/test/unit_test.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/testlib.h"
#include "v8host/hot_code.h"

namespace fs = std::filesystem;
using nlohmann::json;
using wjt::binary;
using wjt::guest;
using wjt::TempDir;

namespace {

// `wasmjail exec` of a job naming `module` with `params`, with the given cache folder.
json exec_module(const TempDir& d, const std::string& module, const std::string& params, const std::string& cache,
                 const std::vector<std::string>& extra = {}, const std::string& limits = "") {
  wjt::write_file(d.path + "/job.yaml", "entry_module: {source_path: '" + module + "'}\nparameters: [" + params + "]\n" +
                                            (limits.empty() ? "" : "limits: " + limits + "\n"));
  std::vector<std::string> argv = {binary(), "exec", d.path + "/job.yaml"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  // `wait`: a hot-code compile started at the job's end is done when exec exits (by default
  // it runs detached, after exec exited: tests/detached_compile_test.cc).
  auto r = wjt::run(argv, {"WASMJAIL_CACHE_DIR=" + cache, "WASMJAIL_BACKGROUND_COMPILE=wait"}, 300);
  json j = json::parse(r.out, nullptr, false);
  BOOST_REQUIRE_MESSAGE(!j.is_discarded(), "stdout is not JSON: " + r.out + r.err);
  return j;
}

// A generated module (tests/gen_big_wasm.py): FUNCS functions of OPS rounds, CALLS called.
std::string big_module(const TempDir& d, int funcs, int ops, int calls) {
  std::string out = d.path + "/big.wasm";
  auto r = wjt::run({"/usr/bin/python3", WJ_SOURCE_DIR "/tests/gen_big_wasm.py", out, std::to_string(funcs),
                     std::to_string(ops), std::to_string(calls)});
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  return out;
}

// `module` with a custom section of `pad` bytes appended: the same code in a module over
// the 8 MiB up to which run and exec compile all of it on TurboFan beside the job.
std::string padded(const TempDir& d, const std::string& module, size_t pad) {
  return wjt::padded_module(d.path, module, pad);
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_default_policy_runs_tiered_with_lazy_compilation) {
  auto r = wjt::run({binary(), "policy", "show", "default"});
  BOOST_TEST(r.out.find("tier: tiered") != std::string::npos, r.out);
  TempDir d;
  json j = exec_module(d, guest("hello"), "", "off");
  BOOST_TEST(j["status"] == "ok");
  BOOST_TEST(j["tier"] == "tiered");
  BOOST_TEST(!j.contains("code_cache"));  // no cache: nothing compiled beside the job
  // A policy may still ask for Liftoff only (strict does) or eager TurboFan.
  wjt::write_file(d.path + "/liftoff.yaml", "extends: default\nwasm: {tier: liftoff}\n");
  j = exec_module(d, guest("hello"), "", "off", {"--policy", d.path + "/liftoff.yaml"});
  BOOST_TEST(j["tier"] == "liftoff");
  j = exec_module(d, guest("hello"), "", "off", {"--policy", WJ_SOURCE_DIR "/tests/policies/turbofan.yaml"});
  BOOST_TEST(j["tier"] == "turbofan");
  r = wjt::run({binary(), "policy", "show", "strict"});
  BOOST_TEST(r.out.find("tier: liftoff") != std::string::npos, r.out);
}

BOOST_AUTO_TEST_CASE(a_hot_loop_in_main_runs_on_turbofan_code_the_second_time) {
  TempDir d, cache;
  // First run, cold: Liftoff at once, nothing compiled beside the one-shot job; after it
  // (waited for here: the test library's `wait`), every function of this small module is
  // compiled on TurboFan for the next run.
  json first = exec_module(d, guest("hot_main"), "\"400000000\"", cache.path);
  BOOST_TEST(first["status"] == "ok");
  BOOST_TEST(first["tier"] == "tiered");
  BOOST_TEST(!first.contains("code_cache"), first.dump());
  BOOST_REQUIRE(!fs::is_empty(cache.path));
  json second = exec_module(d, guest("hot_main"), "\"400000000\"", cache.path);
  BOOST_TEST(second["status"] == "ok");
  BOOST_TEST(second["code_cache"] == "hit");
  // main itself starts on TurboFan code, with every other function of the module.
  const std::string bytes = wjt::read_file(guest("hot_main"));
  auto declared = wj::hot::declared_function_count(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  BOOST_REQUIRE(declared);
  BOOST_TEST(second["code_cache_optimized"].get<uint32_t>() == *declared);
  BOOST_TEST(second["stdout"] == first["stdout"]);
}

BOOST_AUTO_TEST_CASE(running_out_of_memory_while_compiling_is_memory_limit) {
  TempDir d;
  std::string module = big_module(d, 12000, 100, 10);  // 17 MB
  // Eager TurboFan of 17 MB needs more than 64MiB; the job process alone starts in ~40MiB.
  auto r = wjt::run({binary(), "run", "--policy", WJ_SOURCE_DIR "/tests/policies/turbofan.yaml", "--limit",
                     "memory=64MiB", module},
                    {"WASMJAIL_CACHE_DIR=off"}, 300);
  BOOST_TEST(r.exit_code == 125);
  BOOST_TEST(r.err.find("wasmjail: memory_limit: V8 ran out of memory while compiling the module (memory limit "
                        "64MiB)") != std::string::npos,
             r.err);
}

// A memory limit V8 cannot start in (with the module's bytes) ends memory_limit up front,
// with what it would take, never a crash of V8 before its handlers exist.
BOOST_AUTO_TEST_CASE(a_memory_limit_too_small_to_start_is_memory_limit_not_a_crash) {
  TempDir d;
  std::string module = padded(d, guest("hello"), 9u << 20);
  for (const char* limit : {"memory=16MiB", "memory=24MiB", "memory=32MiB"}) {
    auto r = wjt::run({binary(), "run", "--limit", limit, module}, {"WASMJAIL_CACHE_DIR=off"}, 120);
    BOOST_TEST(r.exit_code == 125, limit);
    BOOST_TEST(r.err.find("wasmjail: memory_limit: the memory limit (") == 0, r.err);
    BOOST_TEST(r.err.find("need at least 34MiB (the module's size plus 24MiB)") != std::string::npos, r.err);
  }
  // Just above it the job runs, or ends memory_limit from V8's own handler: never crashed.
  for (const char* limit : {"memory=40MiB", "memory=48MiB"}) {
    auto r = wjt::run({binary(), "run", "--limit", limit, module}, {"WASMJAIL_CACHE_DIR=off"}, 120);
    BOOST_TEST((r.exit_code == 0 || r.exit_code == 125), limit << ": " << r.err);
    BOOST_TEST(r.err.find("crashed") == std::string::npos, r.err);
  }
}

BOOST_AUTO_TEST_CASE(a_75_mb_module_runs_cold_under_the_default_limits) {
  TempDir d;
  std::string module = big_module(d, 50000, 110, 500);
  BOOST_REQUIRE(fs::file_size(module) > 75'000'000);
  json j = exec_module(d, module, "", "off");
  BOOST_TEST(j["status"] == "ok", j.dump());
  BOOST_TEST(j["stdout"] == "big 50000 ok\n");
  BOOST_TEST(j["tier"] == "tiered");
}

BOOST_AUTO_TEST_CASE(timings_separate_compile_instantiate_and_run) {
  TempDir d;
  json j = exec_module(d, guest("hot_main"), "\"20000000\"", "off");
  BOOST_TEST(j["status"] == "ok");
  const json& t = j["timing_ms"];
  for (const char* k : {"total", "queue", "startup", "compile", "instantiate", "run"}) {
    BOOST_TEST_CONTEXT(k) {
      BOOST_REQUIRE(t.contains(k));
      BOOST_TEST(t[k].get<double>() >= 0);
    }
  }
  BOOST_TEST(t["compile"].get<double>() > 0);
  BOOST_TEST(t["instantiate"].get<double>() > 0);
  // The phases add up to the total (startup is the rest).
  double parts = t["startup"].get<double>() + t["compile"].get<double>() + t["instantiate"].get<double>() +
                 t["run"].get<double>();
  BOOST_TEST(parts <= t["total"].get<double>() + 0.01);
}

// A cold tiered job of a module over 8 MiB compiles nothing beside it; it reports what V8
// optimized (main, whose loop never returned to be tiered up), a compile-only child compiles
// that on TurboFan, and the second run starts on it.
BOOST_AUTO_TEST_CASE(a_hot_main_in_a_module_over_8_mib_is_optimized_on_its_second_run) {
  TempDir d, cache;
  std::string module = padded(d, guest("hot_main"), 9u << 20);
  BOOST_REQUIRE(fs::file_size(module) > (8u << 20));
  json first = exec_module(d, module, "\"400000000\"", cache.path);
  BOOST_TEST(first["status"] == "ok", first.dump());
  BOOST_TEST(first["tier"] == "tiered");
  BOOST_TEST(!first.contains("code_cache"));  // a miss, and no full compile beside it
  BOOST_REQUIRE(!fs::is_empty(cache.path));   // the hot-code entry
  json second = exec_module(d, module, "\"400000000\"", cache.path);
  BOOST_TEST(second["status"] == "ok");
  BOOST_TEST(second["code_cache"] == "hit");
  BOOST_TEST(second["tier"] == "tiered");  // the rest of the module stays lazy on Liftoff
  BOOST_TEST(second["code_cache_optimized"].get<int>() >= 1);
  BOOST_TEST(second["stdout"] == first["stdout"]);
}

// The entry keeps the better code: a job that optimizes functions the entry lacks makes a
// compile of the union; one that adds nothing changes nothing.
BOOST_AUTO_TEST_CASE(the_hot_code_entry_improves_as_jobs_optimize_more_functions) {
  TempDir d, cache;
  std::string module = padded(d, guest("hot_pick"), 9u << 20);
  json a = exec_module(d, module, "\"a\", \"300000000\"", cache.path);
  BOOST_TEST(a["status"] == "ok", a.dump());
  json a2 = exec_module(d, module, "\"a\", \"300000000\"", cache.path);
  BOOST_TEST(a2["code_cache"] == "hit");
  const int with_a = a2["code_cache_optimized"].get<int>();
  BOOST_TEST(with_a >= 1);
  json b = exec_module(d, module, "\"b\", \"300000000\"", cache.path);
  BOOST_TEST(b["code_cache"] == "hit");
  BOOST_TEST(b["code_cache_optimized"].get<int>() == with_a);  // what the entry had when b started
  json ab = exec_module(d, module, "\"ab\", \"1000\"", cache.path);
  BOOST_TEST(ab["status"] == "ok");
  BOOST_TEST(ab["code_cache"] == "hit");
  BOOST_TEST(ab["code_cache_optimized"].get<int>() > with_a);  // hot_b joined hot_a
  BOOST_TEST(ab["stdout"].get<std::string>().rfind("ab ", 0) == 0);
}

// A main that never returns (stopped at the wall-time limit) still leaves its hot set: the
// job reports what V8 optimized after the watchdog stopped the guest.
BOOST_AUTO_TEST_CASE(a_main_stopped_at_the_wall_time_limit_still_leaves_its_hot_code) {
  TempDir d, cache;
  std::string module = padded(d, guest("hot_main"), 9u << 20);
  json first = exec_module(d, module, "\"-1\"", cache.path, {}, "{wall_time: 4s}");  // never ends by itself
  BOOST_TEST(first["status"] == "timeout", first.dump());
  BOOST_REQUIRE(!fs::is_empty(cache.path));
  json second = exec_module(d, module, "\"1000\"", cache.path);
  BOOST_TEST(second["status"] == "ok");
  BOOST_TEST(second["code_cache"] == "hit");
  BOOST_TEST(second["code_cache_optimized"].get<int>() >= 1);
}

// The hot set is what a job ran, not only what V8 optimized: besides hot_a (optimized), the
// functions the job ran on Liftoff (main, libc's start-up and printf) are on TurboFan in the
// next run. (V8 10.2 serializes nothing from a run that optimized no function at all, so a
// run must optimize something to report.) A run that adds nothing leaves the entry alone.
BOOST_AUTO_TEST_CASE(functions_a_job_ran_on_liftoff_are_on_turbofan_in_the_next_run) {
  TempDir d, cache;
  std::string module = padded(d, guest("hot_pick"), 9u << 20);
  json first = exec_module(d, module, "\"a\", \"300000000\"", cache.path);
  BOOST_TEST(first["status"] == "ok", first.dump());
  BOOST_TEST(!first.contains("code_cache"));
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(cache.path))
    if (e.path().extension() == ".code") entries.push_back(e.path());
  BOOST_REQUIRE_EQUAL(entries.size(), 1u);
  json second = exec_module(d, module, "\"a\", \"1000\"", cache.path);
  BOOST_TEST(second["code_cache"] == "hit");
  // hot_a alone was optimized; main, hot_a and libc's functions for start-up and printf ran.
  BOOST_TEST(second["code_cache_optimized"].get<int>() >= 5);
  // An entry is replaced by a rename (a new inode); a hit only touches its times.
  auto inode = [](const fs::path& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? st.st_ino : 0;
  };
  const auto written = inode(entries[0]);
  BOOST_TEST(written != 0u);
  json third = exec_module(d, module, "\"a\", \"1000\"", cache.path);
  BOOST_TEST(third["code_cache"] == "hit");
  BOOST_TEST(third["code_cache_optimized"] == second["code_cache_optimized"]);
  BOOST_TEST(third["stdout"] == second["stdout"]);
  BOOST_TEST(inode(entries[0]) == written);
}
