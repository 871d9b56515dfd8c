#include "supervisor/detached_compile.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "storage/host_fs.h"
#include "storage/storage.h"
#include "supervisor/code_cache.h"
#include "supervisor/supervisor.h"

namespace wj {
namespace {

constexpr const char* kHelperEnv = "WASMJAIL_COMPILE_HELPER";
constexpr char kMagic[8] = {'W', 'J', 'H', 'O', 'T', 'R', 'Q', '1'};
// The helper's fds: the request, the module (sealed memfds), the two locks it holds.
constexpr int kRequestFd = 3, kModuleFd = 4, kKeyLockFd = 5, kSlotLockFd = 6, kFirstFreeFd = 7;
constexpr uint64_t kMaxRequest = 16u << 20;
// What the helper's environment may keep of ours: where job cgroups go, and test switches.
constexpr const char* kPassedEnv[] = {"WASMJAIL_CGROUP_ROOT", "WASMJAIL_TEST_UNAVAILABLE",
                                      "WASMJAIL_TEST_CGROUP_MEMORY"};

struct Writer {
  std::string out{kMagic, sizeof kMagic};
  void u32(uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
  void u64(uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
  void str(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    out += s;
  }
};

struct Reader {
  std::string_view d;
  size_t at = sizeof kMagic;
  bool ok = true;
  bool take(void* p, size_t n) {
    if (!ok || d.size() - at < n) return ok = false;
    std::memcpy(p, d.data() + at, n);
    at += n;
    return true;
  }
  uint32_t u32() {
    uint32_t v = 0;
    take(&v, 4);
    return v;
  }
  uint64_t u64() {
    uint64_t v = 0;
    take(&v, 8);
    return v;
  }
  std::string str() {
    uint32_t n = u32();
    if (!ok || d.size() - at < n) {
      ok = false;
      return {};
    }
    std::string s(d.substr(at, n));
    at += n;
    return s;
  }
};

// A memfd holding `data`, sealed against every change, at offset 0, numbered above the
// helper's fds (so that the spawn's dup2s cannot overwrite one another). -1 on failure.
int sealed_memfd(const void* data, size_t size, const char* name) {
  UniqueFd m(memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!m) return -1;
  const char* p = static_cast<const char*>(data);
  for (size_t off = 0; off < size;) {
    ssize_t n = write(m.get(), p + off, size - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    off += static_cast<size_t>(n);
  }
  if (lseek(m.get(), 0, SEEK_SET) != 0 ||
      fcntl(m.get(), F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0)
    return -1;
  return fcntl(m.get(), F_DUPFD_CLOEXEC, 10);
}

int above_helper_fds(UniqueFd fd) {
  return fd ? fcntl(fd.get(), F_DUPFD_CLOEXEC, 10) : -1;
}

int helper_main() {
  // Nothing of the parent's but our fds (posix_spawn closed the close-on-exec ones).
  syscall(SYS_close_range, kFirstFreeFd, ~0U, 0);
  for (int fd = kRequestFd; fd < kFirstFreeFd; ++fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
  // Nobody waits for this compile: it yields the CPU to everything else.
  setpriority(PRIO_PROCESS, 0, 10);
  std::vector<uint8_t> raw;
  if (read_fd_capped(kRequestFd, "request", kMaxRequest, &raw, "request size")) return 2;
  close(kRequestFd);
  Reader r{std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size())};
  if (raw.size() < sizeof kMagic || std::memcmp(raw.data(), kMagic, sizeof kMagic) != 0) return 2;
  HotCompileRequest req;
  req.module_path = r.str();
  req.entry_point = r.str();
  req.argv0 = r.str();
  const std::string policy_yaml = r.str();
  for (uint32_t i = 0, n = r.u32(); r.ok && i < n && i < 4096; ++i) req.v8_flags.push_back(r.str());
  req.cache_dir = r.str();
  req.cache_max_bytes = r.u64();
  req.module_bytes_max = r.u64();
  req.hot_key = r.str();
  req.full_key = r.str();
  for (uint32_t i = 0, n = r.u32(); r.ok && i < n && i <= (1u << 16); ++i) req.hot.push_back(r.u32());
  if (!r.ok || r.at != raw.size()) return 2;
  raw = {};
  auto policy = parse_policy(policy_yaml, "<hot-code compile request>", {}, Extends::kRefuse);
  if (!policy) return 2;
  auto module = std::make_shared<std::vector<uint8_t>>();
  if (read_fd_capped(kModuleFd, "module", req.module_bytes_max, module.get(), "module size limit")) return 2;
  close(kModuleFd);
  // The bytes the job ran, or nothing: hot_key is "sha256:<hex of the module> ...".
  const std::string want = req.hot_key.substr(0, req.hot_key.find(' '));
  if (want != "sha256:" + sha256_hex(module->data(), module->size())) return 3;
  Job job;
  job.module_path = req.module_path;
  job.entry_point = req.entry_point;
  job.argv = {req.argv0};
  RunOptions o;
  o.v8_flags = req.v8_flags;
  o.policy = std::make_shared<const Policy>(std::move(policy.value()));
  o.cache_dir = req.cache_dir;
  o.cache_max_bytes = req.cache_max_bytes;
  o.module_bytes_max = static_cast<size_t>(req.module_bytes_max);
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    Supervisor sup(&loop);
    // The only reference: compile_hot moves the bytes into the compile instead of copying.
    sup.compile_hot(job, std::move(module), o, req.hot_key, req.full_key, std::move(req.hot));
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(&loop);
  return 0;  // the locks go with the process
}

}  // namespace

bool detach_hot_compile(const HotCompileRequest& req, const std::vector<uint8_t>& module, std::string* why) {
  CodeCache cache(req.cache_dir, req.cache_max_bytes);
  // One compile per module (a bucket of its key's hash: two modules may share one, and one
  // of them then waits for a later run), and at most kMaxDetachedCompiles in all.
  const std::string bucket = sha256_hex(req.hot_key.data(), req.hot_key.size()).substr(0, 2);
  UniqueFd key_lock(above_helper_fds(cache.try_lock("compile-" + bucket + ".lock", why)));
  if (!key_lock) return false;
  UniqueFd slot_lock;
  for (int i = 0; i < kMaxDetachedCompiles && !slot_lock; ++i)
    slot_lock =
        UniqueFd(above_helper_fds(cache.try_lock("compile-slot-" + std::to_string(i) + ".lock", why)));
  if (!slot_lock) return false;
  Writer w;
  w.str(req.module_path);
  w.str(req.entry_point);
  w.str(req.argv0);
  w.str(to_yaml(*req.policy));
  w.u32(static_cast<uint32_t>(req.v8_flags.size()));
  for (const auto& f : req.v8_flags) w.str(f);
  w.str(req.cache_dir);
  w.u64(req.cache_max_bytes);
  w.u64(req.module_bytes_max);
  w.str(req.hot_key);
  w.str(req.full_key);
  w.u32(static_cast<uint32_t>(req.hot.size()));
  for (uint32_t f : req.hot) w.u32(f);
  UniqueFd request(sealed_memfd(w.out.data(), w.out.size(), "wasmjail-hot-request"));
  UniqueFd mod;
  if (!req.module_file.empty()) {
    // O_NONBLOCK: a FIFO swapped in cannot block us; anything but a regular file: the memfd.
    UniqueFd f(open(req.module_file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    struct stat st {};
    if (f && fstat(f.get(), &st) == 0 && S_ISREG(st.st_mode)) mod = UniqueFd(above_helper_fds(std::move(f)));
  }
  if (!mod) mod = UniqueFd(sealed_memfd(module.data(), module.size(), "wasmjail-hot-module"));
  if (!request || !mod) {
    *why = std::string("memfd: ") + std::strerror(errno);
    return false;
  }
  std::vector<std::string> env = {std::string(kHelperEnv) + "=1"};
  for (const char* name : kPassedEnv)
    if (const char* v = getenv(name)) env.push_back(std::string(name) + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  char arg0[] = "wasmjail-compile";
  char* argv[] = {arg0, nullptr};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDWR, 0);
  posix_spawn_file_actions_adddup2(&fa, 0, 1);
  posix_spawn_file_actions_adddup2(&fa, 0, 2);
  posix_spawn_file_actions_adddup2(&fa, request.get(), kRequestFd);
  posix_spawn_file_actions_adddup2(&fa, mod.get(), kModuleFd);
  posix_spawn_file_actions_adddup2(&fa, key_lock.get(), kKeyLockFd);
  posix_spawn_file_actions_adddup2(&fa, slot_lock.get(), kSlotLockFd);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, dfl;
  sigemptyset(&none);
  sigemptyset(&dfl);
  for (int s : {SIGPIPE, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM, SIGXCPU})
    sigaddset(&dfl, s);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &dfl);
  // A new session: no controlling terminal (no SIGHUP when it closes), not in the caller's
  // process group (a Ctrl-C after `run` returned does not reach it).
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  // posix_spawn (vfork + exec): safe with other threads running (run's stdin pump).
  int rc = posix_spawn(&pid, "/proc/self/exe", &fa, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    *why = std::string("cannot start the compile process: ") + std::strerror(rc);
    return false;
  }
  // Not waited for: this process exits next, and the helper is reparented (to init or the
  // nearest subreaper), which reaps it.
  return true;
}

void run_hot_compile_helper_if_requested() {
  const char* v = getenv(kHelperEnv);
  if (!v) return;
  unsetenv(kHelperEnv);
  _exit(helper_main());
}

}  // namespace wj
