#include "supervisor/code_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <v8-version.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>

#include "storage/host_fs.h"
#include "storage/storage.h"

namespace wj {

struct CodeCache::State {
  UniqueFd dir;
  std::string key;  // 32 bytes
};

namespace {

namespace fs = std::filesystem;
constexpr char kMagic[8] = {'W', 'J', 'C', 'O', 'D', 'E', '0', '3'};
constexpr uint32_t kMaxOptimized = 1u << 16;  // hot::kMaxHotFunctions
constexpr uint64_t kMaxEntry = 1ull << 30;
constexpr size_t kKeyBytes = 32, kMacBytes = 32;
constexpr size_t kMaxKeyLen = 1u << 16;

std::string hmac(const std::string& key, const std::string& cache_key, const std::vector<uint32_t>& optimized,
                 const void* payload, size_t len) {
  std::string msg(kMagic, 8);
  uint32_t kl = static_cast<uint32_t>(cache_key.size());
  msg.append(reinterpret_cast<const char*>(&kl), 4);
  msg += cache_key;
  uint32_t n = static_cast<uint32_t>(optimized.size());
  msg.append(reinterpret_cast<const char*>(&n), 4);
  msg.append(reinterpret_cast<const char*>(optimized.data()), 4ull * n);
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = mac ? EVP_MAC_CTX_new(mac) : nullptr;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0), OSSL_PARAM_construct_end()};
  unsigned char md[EVP_MAX_MD_SIZE];
  size_t md_len = 0;
  bool ok = ctx &&
            EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key.data()), key.size(), params) == 1 &&
            EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) == 1 &&
            EVP_MAC_update(ctx, static_cast<const unsigned char*>(payload), len) == 1 &&
            EVP_MAC_final(ctx, md, &md_len, sizeof md) == 1;
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  return ok ? std::string(reinterpret_cast<char*>(md), md_len) : std::string();
}

// The per-installation key `<dir>.key`: read it, or create it (0600, 32 random bytes) the
// first time. Refused when another user owns it or others may read it.
std::optional<std::string> load_key(const std::string& dir, std::string* key) {
  fs::path p = fs::path(dir).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  const std::string parent = p.parent_path().string(), name = p.filename().string() + ".key";
  const std::string shown = parent + "/" + name;
  UniqueFd pd(open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!pd) return "cannot open " + parent + ": " + std::strerror(errno);
  for (int attempt = 0; attempt < 2; ++attempt) {
    UniqueFd fd(openat(pd.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!fd && errno == ENOENT && attempt == 0) {
      // A private temp file linked into place: a reader never sees a half-written key, and
      // of two processes creating it at once, one key wins.
      unsigned char fresh[kKeyBytes];
      if (getrandom(fresh, sizeof fresh, 0) != static_cast<ssize_t>(sizeof fresh))
        return std::string("getrandom: ") + std::strerror(errno);
      UniqueFd t(openat(pd.get(), ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
      if (!t) return "cannot create " + shown + ": " + std::strerror(errno);
      if (write(t.get(), fresh, sizeof fresh) != static_cast<ssize_t>(sizeof fresh))
        return "cannot write " + shown + ": " + std::strerror(errno);
      std::string proc = "/proc/self/fd/" + std::to_string(t.get());
      if (linkat(AT_FDCWD, proc.c_str(), pd.get(), name.c_str(), AT_SYMLINK_FOLLOW) != 0 && errno != EEXIST)
        return "cannot create " + shown + ": " + std::strerror(errno);
      continue;
    }
    if (!fd) return "cannot open the cache key " + shown + ": " + std::strerror(errno);
    struct stat st {};
    if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
      return "cache key " + shown + " is not a regular file";
    if (st.st_uid != geteuid()) return "cache key " + shown + " is not owned by this user";
    if (st.st_mode & 077) return "cache key " + shown + " may be read by others; chmod 600 it (or remove it)";
    std::vector<uint8_t> bytes;
    if (auto e = read_fd_capped(fd.get(), shown, kKeyBytes, &bytes, "key size")) return e;
    if (bytes.size() != kKeyBytes)
      return "cache key " + shown + " is not " + std::to_string(kKeyBytes) + " bytes";
    key->assign(bytes.begin(), bytes.end());
    return std::nullopt;
  }
  return "cannot create " + shown;
}

std::mutex g_states_mu;
std::map<std::string, std::shared_ptr<const CodeCache::State>> g_states;  // folder -> opened state
std::map<std::string, std::string> g_errors;                              // folder -> why refused

}  // namespace

CodeCache::CodeCache(std::string dir, uint64_t max_bytes) : max_bytes_(max_bytes) {
  if (dir.empty()) return;
  std::lock_guard<std::mutex> lock(g_states_mu);
  if (auto it = g_states.find(dir); it != g_states.end()) {
    state_ = it->second;
    return;
  }
  if (auto it = g_errors.find(dir); it != g_errors.end()) {
    error_ = it->second;
    return;
  }
  auto st = std::make_shared<State>();
  if (auto e = open_private_dir(dir, true, "cache folder", &st->dir)) {
    error_ = *e;
  } else if (auto k = load_key(dir, &st->key)) {
    error_ = *k;
  }
  if (!error_.empty()) {
    g_errors[dir] = error_;
    return;
  }
  state_ = st;
  g_states[dir] = st;
}

size_t CodeCache::background_compile_min() {
  const char* v = getenv("WASMJAIL_BACKGROUND_COMPILE");  // on|off|wait, checked by main()
  return v && std::string(v) == "off" ? 0 : 256u << 10;
}

bool CodeCache::background_compile_enabled() { return background_compile_min() != 0; }

bool CodeCache::background_compile_waits() {
  const char* v = getenv("WASMJAIL_BACKGROUND_COMPILE");
  return v && std::string(v) == "wait";
}

UniqueFd CodeCache::try_lock(const std::string& name, std::string* why) const {
  if (!enabled()) {
    *why = "no cache folder";
    return {};
  }
  // Beneath the folder fd with no symlink followed (a symlink planted under this name fails);
  // O_NONBLOCK: a FIFO cannot block the open. No O_TRUNC: the file is only ever locked.
  UniqueFd fd(open_beneath(state_->dir.get(), name, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK, 0600, true));
  if (!fd) {
    *why = "cannot open lock " + name + ": " + std::strerror(errno);
    return {};
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
    *why = "lock " + name + " is not a regular file of this user";
    return {};
  }
  if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    *why = "lock " + name + " is held";
    return {};
  }
  return fd;
}

std::string CodeCache::default_dir() {
  if (const char* d = getenv("WASMJAIL_CACHE_DIR"); d && *d) return std::string(d) == "off" ? "" : d;
  if (const char* x = getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/wasmjail";
  if (const char* h = getenv("HOME"); h && *h) return std::string(h) + "/.cache/wasmjail";
  return "";
}

std::string CodeCache::key_for_digest(const std::string& module_sha256, const std::vector<std::string>& v8_flags) {
  std::vector<std::string> flags = v8_flags;
  std::sort(flags.begin(), flags.end());
  std::string key = "sha256:" + module_sha256 +
                    " v8:" + std::to_string(V8_MAJOR_VERSION) + "." + std::to_string(V8_MINOR_VERSION) + "." +
                    std::to_string(V8_BUILD_NUMBER) + "." + std::to_string(V8_PATCH_LEVEL) + " flags:";
  for (const auto& f : flags) key += f + " ";
  return key;
}

std::string CodeCache::name_for(const std::string& key) const {
  return sha256_hex(key.data(), key.size()) + ".code";
}

bool CodeCache::has(const std::string& key) const {
  struct stat st {};
  return enabled() && fstatat(state_->dir.get(), name_for(key).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
         S_ISREG(st.st_mode);
}

void CodeCache::remove(const std::string& key) const {
  if (enabled()) unlinkat(state_->dir.get(), name_for(key).c_str(), 0);
}

std::optional<std::vector<uint32_t>> CodeCache::optimized_of(const std::string& key) const {
  std::vector<uint32_t> optimized;
  if (!get(key, &optimized)) return std::nullopt;
  return optimized;
}

std::optional<std::vector<uint8_t>> CodeCache::get(const std::string& key, std::vector<uint32_t>* optimized) const {
  if (!enabled()) return std::nullopt;
  const std::string name = name_for(key);
  std::vector<uint8_t> bytes;
  bool missing = false;
  auto bad = [&]() -> std::optional<std::vector<uint8_t>> {
    remove(key);  // corrupt, forged or truncated: a recompile replaces it
    return std::nullopt;
  };
  if (read_file_beneath(state_->dir.get(), name, kMaxEntry + kMaxKeyLen + 4ull * kMaxOptimized + 64, &bytes, &missing)) return bad();
  if (missing) return std::nullopt;
  // magic(8) key_len(4) key count(4) optimized(4 x count) payload_len(8) hmac(32) payload
  const size_t head = 8 + 4;
  if (bytes.size() < head || std::memcmp(bytes.data(), kMagic, 8) != 0) return bad();
  uint32_t key_len = 0, n = 0;
  std::memcpy(&key_len, bytes.data() + 8, 4);
  if (key_len != key.size() || bytes.size() < head + key_len + 4) return bad();
  if (std::memcmp(bytes.data() + head, key.data(), key_len) != 0) return bad();
  size_t at = head + key_len;
  std::memcpy(&n, bytes.data() + at, 4);
  at += 4;
  if (n > kMaxOptimized || bytes.size() - at < 4ull * n + 8 + kMacBytes) return bad();
  std::vector<uint32_t> opt(n);
  if (n) std::memcpy(opt.data(), bytes.data() + at, 4ull * n);
  at += 4ull * n;
  for (uint32_t i = 1; i < n; ++i)
    if (opt[i] <= opt[i - 1]) return bad();
  uint64_t len = 0;
  std::memcpy(&len, bytes.data() + at, 8);
  const size_t mac_at = at + 8;
  at = mac_at + kMacBytes;
  if (len > kMaxEntry || bytes.size() - at != len) return bad();
  std::string want = hmac(state_->key, key, opt, bytes.data() + at, len);
  if (want.size() != kMacBytes || CRYPTO_memcmp(want.data(), bytes.data() + mac_at, kMacBytes) != 0) return bad();
  if (optimized) *optimized = std::move(opt);
  utimensat(state_->dir.get(), name.c_str(), nullptr, AT_SYMLINK_NOFOLLOW);  // recently used: evicted last
  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(at));  // in place: no second buffer
  return bytes;
}

void CodeCache::put(const std::string& key, const std::string& payload, const std::vector<uint32_t>& optimized) const {
  if (!enabled() || payload.size() > kMaxEntry || payload.size() > max_bytes_ || key.size() > kMaxKeyLen ||
      optimized.size() > kMaxOptimized)
    return;
  std::string mac = hmac(state_->key, key, optimized, payload.data(), payload.size());
  if (mac.size() != kMacBytes) return;
  std::string entry(kMagic, 8);
  uint32_t key_len = static_cast<uint32_t>(key.size());
  uint64_t len = payload.size();
  entry.append(reinterpret_cast<const char*>(&key_len), 4);
  entry += key;
  const uint32_t n = static_cast<uint32_t>(optimized.size());
  entry.append(reinterpret_cast<const char*>(&n), 4);
  entry.append(reinterpret_cast<const char*>(optimized.data()), 4ull * n);
  entry.append(reinterpret_cast<const char*>(&len), 8);
  entry += mac;
  entry += payload;
  if (replace_file_beneath(state_->dir.get(), name_for(key), entry.data(), entry.size())) return;
  evict();
}

void CodeCache::evict() const {
  int dup = fcntl(state_->dir.get(), F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return;
  DIR* d = fdopendir(dup);
  if (!d) {
    close(dup);
    return;
  }
  rewinddir(d);
  struct Entry {
    timespec mtime;
    std::string name;
    uint64_t size;
  };
  std::vector<Entry> entries;
  uint64_t total = 0;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() < 5 || n.compare(n.size() - 5, 5, ".code") != 0) continue;
    struct stat st {};
    if (fstatat(state_->dir.get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    total += static_cast<uint64_t>(st.st_size);
    entries.push_back({st.st_mtim, n, static_cast<uint64_t>(st.st_size)});
  }
  closedir(d);
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.mtime.tv_sec != b.mtime.tv_sec ? a.mtime.tv_sec < b.mtime.tv_sec
                                            : a.mtime.tv_nsec < b.mtime.tv_nsec;
  });
  for (const Entry& e : entries) {
    if (total <= max_bytes_) break;
    if (unlinkat(state_->dir.get(), e.name.c_str(), 0) == 0) total -= std::min(total, e.size);
  }
}

}  // namespace wj
