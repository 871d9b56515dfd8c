// The compiled-code cache: a hit is byte-for-byte the same job, and a corrupt or hostile
// cache file costs a recompile, never a crash. A child cannot write the cache out of turn.
#include <boost/test/unit_test.hpp>

#include <openssl/evp.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/testlib.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json exec_with_cache(const std::string& cache, const std::string& guest) {
  std::string dir = wjt::temp_dir();
  wjt::write_file(dir + "/job.yaml", "entry_module: {source_path: '" + wjt::guest(guest) + "'}\nparameters: [cache]\n");
  auto r = wjt::run({wjt::binary(), "exec", dir + "/job.yaml", "--policy", WJ_SOURCE_DIR "/tests/policies/turbofan.yaml"},
                    {"WASMJAIL_CACHE_DIR=" + cache});
  return json::parse(r.out);
}

std::vector<fs::path> entries(const std::string& cache) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(cache)) out.push_back(e.path());
  return out;
}

std::string sha256_hex(const std::string& s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) out += hex[md[i] >> 4], out += hex[md[i] & 15];
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(miss_then_hit_with_the_same_result) {
  std::string cache = wjt::temp_dir();
  json a = exec_with_cache(cache, "hello");
  BOOST_TEST(a["status"] == "ok");
  BOOST_TEST(a["code_cache"] == "miss");
  BOOST_REQUIRE(entries(cache).size() == 1u);
  json b = exec_with_cache(cache, "hello");
  BOOST_TEST(b["code_cache"] == "hit");
  BOOST_TEST(b["stdout"] == a["stdout"]);
  BOOST_TEST(b["stdout"] == "Hello, cache!\n");
  // Other modules get their own entries.
  json c = exec_with_cache(cache, "args_env");
  BOOST_TEST(c["code_cache"] == "miss");
  BOOST_TEST(entries(cache).size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_corrupt_entry_is_dropped_and_recompiled) {
  std::string cache = wjt::temp_dir();
  exec_with_cache(cache, "hello");
  fs::path entry = entries(cache).at(0);
  std::string bytes = wjt::read_file(entry.string());
  bytes[bytes.size() / 2] ^= 0x5a;  // a flipped byte in the payload: the envelope's sha256 fails
  wjt::write_file(entry.string(), bytes);
  json r = exec_with_cache(cache, "hello");
  BOOST_TEST(r["status"] == "ok");
  BOOST_TEST(r["stdout"] == "Hello, cache!\n");
  BOOST_TEST(r["code_cache"] == "miss");
  BOOST_TEST(exec_with_cache(cache, "hello")["code_cache"] == "hit");  // rewritten
}

BOOST_AUTO_TEST_CASE(a_hostile_entry_with_a_valid_envelope_costs_a_recompile) {
  std::string cache = wjt::temp_dir();
  exec_with_cache(cache, "hello");
  fs::path entry = entries(cache).at(0);
  std::string bytes = wjt::read_file(entry.string());
  // Keep magic, key and length; replace the payload with noise and fix up its sha256, as an
  // attacker with write access to the folder could. V8's own checks must refuse it.
  uint32_t key_len;
  std::memcpy(&key_len, bytes.data() + 8, 4);
  size_t payload_at = 8 + 4 + key_len + 8 + 64;
  std::string payload(bytes.size() - payload_at, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>((i * 2654435761u) >> 13);
  std::string digest = sha256_hex(payload);
  std::string forged = bytes.substr(0, 8 + 4 + key_len + 8) + digest + payload;
  wjt::write_file(entry.string(), forged);
  json r = exec_with_cache(cache, "hello");
  BOOST_TEST(r["status"] == "ok");
  BOOST_TEST(r["stdout"] == "Hello, cache!\n");
  BOOST_TEST(r["code_cache"] == "miss");
}

BOOST_AUTO_TEST_CASE(no_cache_for_dynamic_tiering_or_when_off) {
  std::string cache = wjt::temp_dir();
  std::string dir = wjt::temp_dir();
  wjt::write_file(dir + "/job.yaml", "entry_module: {source_path: '" + wjt::guest("hello") + "'}\n");
  wjt::write_file(dir + "/tiered.yaml", "extends: default\nwasm:\n  tier: tiered\n");
  // A tiered job never offers its own code; with no compile beside it, nothing is stored.
  auto r = wjt::run({wjt::binary(), "exec", dir + "/job.yaml", "--policy", dir + "/tiered.yaml"},
                    {"WASMJAIL_CACHE_DIR=" + cache, "WASMJAIL_BACKGROUND_COMPILE=off"});
  BOOST_TEST(json::parse(r.out)["status"] == "ok");
  BOOST_TEST(!json::parse(r.out).contains("code_cache"));
  BOOST_TEST(json::parse(r.out)["tier"] == "tiered");
  BOOST_TEST(entries(cache).empty());
  r = wjt::run({wjt::binary(), "exec", dir + "/job.yaml"}, {"WASMJAIL_CACHE_DIR=off"});
  BOOST_TEST(json::parse(r.out)["status"] == "ok");
  BOOST_TEST(!json::parse(r.out).contains("code_cache"));
  // The TurboFan tier is served by the cache: its own job offers the code.
  const std::string tf = WJ_SOURCE_DIR "/tests/policies/turbofan.yaml";
  r = wjt::run({wjt::binary(), "exec", dir + "/job.yaml", "--policy", tf}, {"WASMJAIL_CACHE_DIR=" + cache});
  BOOST_TEST(json::parse(r.out)["code_cache"] == "miss");
  r = wjt::run({wjt::binary(), "exec", dir + "/job.yaml", "--policy", tf}, {"WASMJAIL_CACHE_DIR=" + cache});
  BOOST_TEST(json::parse(r.out)["code_cache"] == "hit");
  // And a tiered job of the same module starts on that code.
  r = wjt::run({wjt::binary(), "exec", dir + "/job.yaml", "--policy", dir + "/tiered.yaml"},
               {"WASMJAIL_CACHE_DIR=" + cache});
  BOOST_TEST(json::parse(r.out)["code_cache"] == "hit");
  BOOST_TEST(json::parse(r.out)["tier"] == "turbofan");
}

// One-shot commands compile a cold module eagerly whatever its size (the background compile
// is serve's; serve_test covers it): the job offers the code itself, the next one hits.
BOOST_AUTO_TEST_CASE(exec_compiles_a_large_cold_module_eagerly) {
  std::string cache = wjt::temp_dir();
  BOOST_REQUIRE(fs::file_size(wjt::guest("cxx_program")) >= (256u << 10));
  json a = exec_with_cache(cache, "cxx_program");
  BOOST_TEST(a["status"] == "ok");
  BOOST_TEST(a["code_cache"] == "miss");
  BOOST_REQUIRE(entries(cache).size() == 1u);
  json b = exec_with_cache(cache, "cxx_program");
  BOOST_TEST(b["code_cache"] == "hit");
  BOOST_TEST(b["stdout"] == a["stdout"]);
}
