#include "supervisor/code_cache.h"
#include "storage/storage.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <v8-version.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace wj {
namespace {

namespace fs = std::filesystem;
constexpr char kMagic[8] = {'W', 'J', 'C', 'O', 'D', 'E', '0', '2'};
constexpr uint64_t kMaxEntry = 1ull << 30;
constexpr uint32_t kMaxOptimized = 1u << 16;  // hot::kMaxHotFunctions

// Reads the header up to the payload length: key check, then the optimized-function list
// (ascending, bounded). False when anything is off.
bool read_header(std::ifstream& f, const std::string& key, std::vector<uint32_t>* optimized) {
  char magic[8];
  uint32_t key_len = 0, n = 0;
  if (!f.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0 || !f.read(reinterpret_cast<char*>(&key_len), 4) ||
      key_len != key.size())
    return false;
  std::string stored_key(key_len, '\0');
  if (!f.read(stored_key.data(), key_len) || stored_key != key || !f.read(reinterpret_cast<char*>(&n), 4) ||
      n > kMaxOptimized)
    return false;
  optimized->resize(n);
  if (n && !f.read(reinterpret_cast<char*>(optimized->data()), static_cast<std::streamsize>(4ull * n))) return false;
  for (uint32_t i = 1; i < n; ++i)
    if ((*optimized)[i] <= (*optimized)[i - 1]) return false;
  return true;
}


}  // namespace

bool CodeCache::has(const std::string& key) const {
  struct stat st {};
  return enabled() && stat(path_for(key).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

size_t CodeCache::background_compile_min() {
  const char* v = getenv("WASMJAIL_BACKGROUND_COMPILE");  // on|off, checked by main()
  return v && std::string(v) == "off" ? 0 : 256u << 10;
}

bool CodeCache::background_compile_enabled() { return background_compile_min() != 0; }

std::string CodeCache::default_dir() {
  if (const char* d = getenv("WASMJAIL_CACHE_DIR"); d && *d) return std::string(d) == "off" ? "" : d;
  if (const char* x = getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/wasmjail";
  if (const char* h = getenv("HOME"); h && *h) return std::string(h) + "/.cache/wasmjail";
  return "";
}

std::string CodeCache::key_for(const std::vector<uint8_t>& module, const std::vector<std::string>& v8_flags) {
  std::vector<std::string> flags = v8_flags;
  std::sort(flags.begin(), flags.end());
  std::string key = "sha256:" + sha256_hex(module.data(), module.size()) + " v8:" +
                    std::to_string(V8_MAJOR_VERSION) + "." + std::to_string(V8_MINOR_VERSION) + "." +
                    std::to_string(V8_BUILD_NUMBER) + "." + std::to_string(V8_PATCH_LEVEL) + " flags:";
  for (const auto& f : flags) key += f + " ";
  return key;
}

std::string CodeCache::path_for(const std::string& key) const {
  return dir_ + "/" + sha256_hex(key.data(), key.size()) + ".code";
}

std::optional<std::vector<uint32_t>> CodeCache::optimized_of(const std::string& key) const {
  if (!enabled()) return std::nullopt;
  std::ifstream f(path_for(key), std::ios::binary);
  std::vector<uint32_t> optimized;
  if (!f || !read_header(f, key, &optimized)) return std::nullopt;
  return optimized;
}

std::optional<std::vector<uint8_t>> CodeCache::get(const std::string& key, std::vector<uint32_t>* optimized) const {
  if (!enabled()) return std::nullopt;
  const std::string path = path_for(key);
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  auto bad = [&]() -> std::optional<std::vector<uint8_t>> {
    unlink(path.c_str());  // corrupt, foreign or truncated: a recompile will replace it
    return std::nullopt;
  };
  std::vector<uint32_t> opt;
  uint64_t len = 0;
  char digest[64];
  if (!read_header(f, key, &opt) || !f.read(reinterpret_cast<char*>(&len), 8) || len > kMaxEntry ||
      !f.read(digest, 64))
    return bad();
  std::vector<uint8_t> payload(len);
  if (!f.read(reinterpret_cast<char*>(payload.data()), static_cast<std::streamsize>(len)) || f.peek() != EOF)
    return bad();
  if (sha256_hex(payload.data(), payload.size()) != std::string(digest, 64)) return bad();
  utimensat(AT_FDCWD, path.c_str(), nullptr, 0);  // recently used: evicted last
  if (optimized) *optimized = std::move(opt);
  return payload;
}

void CodeCache::put(const std::string& key, const std::string& payload, const std::vector<uint32_t>& optimized) const {
  if (!enabled() || payload.size() > kMaxEntry || payload.size() > max_bytes_ || optimized.size() > kMaxOptimized)
    return;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  const std::string path = path_for(key);
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    uint32_t key_len = static_cast<uint32_t>(key.size());
    uint64_t len = payload.size();
    std::string digest = sha256_hex(payload.data(), payload.size());
    f.write(kMagic, 8);
    f.write(reinterpret_cast<const char*>(&key_len), 4);
    f.write(key.data(), static_cast<std::streamsize>(key.size()));
    const uint32_t n = static_cast<uint32_t>(optimized.size());
    f.write(reinterpret_cast<const char*>(&n), 4);
    f.write(reinterpret_cast<const char*>(optimized.data()), static_cast<std::streamsize>(4ull * n));
    f.write(reinterpret_cast<const char*>(&len), 8);
    f.write(digest.data(), 64);
    f.write(payload.data(), static_cast<std::streamsize>(payload.size()));
    if (!f) {
      unlink(tmp.c_str());
      return;
    }
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) unlink(tmp.c_str());
  evict();
}

void CodeCache::evict() const {
  std::error_code ec;
  std::vector<std::pair<fs::file_time_type, fs::path>> entries;
  uint64_t total = 0;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    if (e.path().extension() != ".code") continue;
    total += e.file_size(ec);
    entries.emplace_back(e.last_write_time(ec), e.path());
  }
  std::sort(entries.begin(), entries.end());
  for (const auto& [t, p] : entries) {
    if (total <= max_bytes_) break;
    uint64_t sz = fs::file_size(p, ec);
    fs::remove(p, ec);
    total -= std::min(total, sz);
  }
}

}  // namespace wj
