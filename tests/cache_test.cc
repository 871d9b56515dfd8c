// The compiled-code cache: a hit is byte-for-byte the same job, and a corrupt or hostile
// cache file costs a recompile, never a crash. A child cannot write the cache out of turn.
#include <boost/test/unit_test.hpp>

#include <openssl/evp.h>
#include <openssl/params.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
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

// The code entries (a detached hot-code compile's lock files are not entries).
std::vector<fs::path> entries(const std::string& cache) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(cache))
    if (e.path().extension() == ".code") out.push_back(e.path());
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

namespace {

std::string hmac_sha256(const std::string& key, const std::string& msg) {
  unsigned char md[EVP_MAX_MD_SIZE];
  size_t len = 0;
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0), OSSL_PARAM_construct_end()};
  EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key.data()), key.size(), params);
  EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(msg.data()), msg.size());
  EVP_MAC_final(ctx, md, &len, sizeof md);
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  return std::string(reinterpret_cast<char*>(md), len);
}

// The entry with its payload passed through `edit`, re-signed with `key` (empty: the
// entry's old HMAC is kept, as an attacker without the key must).
void forge(const fs::path& entry, const std::string& key, const std::function<void(std::string&)>& edit) {
  std::string b = wjt::read_file(entry.string());
  uint32_t key_len, optimized;
  std::memcpy(&key_len, b.data() + 8, 4);
  std::memcpy(&optimized, b.data() + 12 + key_len, 4);  // recorded optimized functions (hot code)
  const size_t head_len = 8 + 4 + key_len + 4 + 4ull * optimized;
  const size_t mac_at = head_len + 8, at = mac_at + 32;
  std::string payload = b.substr(at);
  edit(payload);
  uint64_t len = payload.size();
  std::string head = b.substr(0, head_len);
  std::string mac = key.empty() ? b.substr(mac_at, 32) : hmac_sha256(key, head + payload);
  wjt::write_file(entry.string(), head + std::string(reinterpret_cast<char*>(&len), 8) + mac + payload);
}

// x86-64 frame prologues (push rbp; mov rbp, rsp) turned into ud2: code that traps at once.
void plant_ud2(std::string& p) {
  for (size_t i = p.find("\x55\x48\x89\xe5"); i != std::string::npos; i = p.find("\x55\x48\x89\xe5", i + 2))
    p[i] = '\x0f', p[i + 1] = '\x0b';
}

}  // namespace

// The attack: machine code patched in an entry whose sha256 was recomputed. Without the
// per-installation key the HMAC cannot be redone: the entry is evicted and recompiled.
BOOST_AUTO_TEST_CASE(patched_code_without_the_key_is_evicted_and_recompiled) {
  std::string cache = wjt::temp_dir();
  exec_with_cache(cache, "hello");
  fs::path entry = entries(cache).at(0);
  forge(entry, "", plant_ud2);
  json r = exec_with_cache(cache, "hello");
  BOOST_TEST(r["status"] == "ok");
  BOOST_TEST(r["stdout"] == "Hello, cache!\n");
  BOOST_TEST(r["code_cache"] == "miss");
  BOOST_TEST(exec_with_cache(cache, "hello")["code_cache"] == "hit");  // rewritten, signed
  // The key lives beside the folder, not in it, readable by this user only.
  struct stat st{};
  BOOST_REQUIRE(stat((cache + ".key").c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == 0600u);
  BOOST_TEST(st.st_size == 32);
}

// Signed code that crashes (a V8 bug, or a stolen key): the job is retried once without
// the cache, and the entry is evicted, so later jobs of the module do not die too.
BOOST_AUTO_TEST_CASE(a_job_crashing_in_cached_code_is_retried_and_the_entry_evicted) {
  std::string cache = wjt::temp_dir();
  exec_with_cache(cache, "hello");
  fs::path entry = entries(cache).at(0);
  forge(entry, wjt::read_file(cache + ".key"), plant_ud2);
  json r = exec_with_cache(cache, "hello");
  BOOST_TEST(r["status"] == "ok");
  BOOST_TEST(r["stdout"] == "Hello, cache!\n");
  BOOST_TEST(r["code_cache"] == "evicted");
  BOOST_TEST(entries(cache).empty());
  BOOST_TEST(exec_with_cache(cache, "hello")["code_cache"] == "miss");
}

// A folder others may write is not used: run/exec warn and compile, serve does not start.
BOOST_AUTO_TEST_CASE(a_cache_folder_others_can_write_is_refused) {
  std::string cache = wjt::temp_dir();
  chmod(cache.c_str(), 0777);
  std::string dir = wjt::temp_dir();
  wjt::write_file(dir + "/job.yaml", "entry_module: {source_path: '" + wjt::guest("hello") + "'}\nparameters: [cache]\n");
  auto r = wjt::run({wjt::binary(), "exec", dir + "/job.yaml", "--policy", WJ_SOURCE_DIR "/tests/policies/turbofan.yaml"},
                    {"WASMJAIL_CACHE_DIR=" + cache});
  BOOST_TEST(json::parse(r.out)["status"] == "ok");
  BOOST_TEST(!json::parse(r.out).contains("code_cache"));
  BOOST_TEST(r.warnings.find("code cache not used: cache folder " + cache + " has mode 0777: others may write it") !=
             std::string::npos);
  BOOST_TEST(entries(cache).empty());
  wjt::write_file(dir + "/server.yaml", "output_root: " + dir + "/outputs\ncache_dir: " + cache + "\n");
  auto s = wjt::run({wjt::binary(), "serve", "--config", dir + "/server.yaml", "--listen", "unix:" + dir + "/s.sock"}, {},
                    30);
  BOOST_TEST(s.exit_code == 2);
  BOOST_TEST(s.err.find("cache_dir: cache folder " + cache + " has mode 0777") != std::string::npos);
}
