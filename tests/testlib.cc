#include "tests/testlib.h"

#include <cerrno>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

extern char** environ;

namespace wjt {

std::string binary() { return WJ_BINARY; }
std::string guest(const std::string& name) { return std::string(WJ_GUEST_DIR) + "/" + name + ".wasm"; }

namespace {
std::vector<char*> cvec(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}
}  // namespace

ProcResult run(const std::vector<std::string>& argv_in, const std::vector<std::string>& extra_env, int timeout_s) {
  return run_with_stdin(argv_in, -1, extra_env, timeout_s);
}

ProcResult run_with_stdin(const std::vector<std::string>& argv_in, int stdin_fd,
                          const std::vector<std::string>& extra_env, int timeout_s) {
  std::vector<std::string> argv = argv_in;
  std::vector<std::string> env;
  // extra_env overrides: a variable it names is dropped from this process's environment.
  auto named = [&](const std::string& entry) {
    std::string key = entry.substr(0, entry.find('='));
    for (const auto& x : extra_env)
      if (x.substr(0, x.find('=')) == key) return true;
    return false;
  };
  for (char** e = environ; *e; ++e)
    if (!named(*e)) env.emplace_back(*e);
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  // A hot-code compile is done when the command exits: none outlives the test into a folder
  // being removed (tests/detached_compile_test.cc asks for the detached default with "on").
  bool named_bg = false;
  for (const auto& e : env) named_bg |= e.rfind("WASMJAIL_BACKGROUND_COMPILE=", 0) == 0;
  if (!named_bg) env.emplace_back("WASMJAIL_BACKGROUND_COMPILE=wait");
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) throw std::runtime_error("pipe");
  auto cargv = cvec(argv);
  auto cenv = cvec(env);
  pid_t pid = fork();
  if (pid == 0) {
    if (stdin_fd == -2) {
      close(0);
    } else {
      int in = stdin_fd >= 0 ? stdin_fd : open("/dev/null", O_RDONLY);
      dup2(in, 0);
    }
    dup2(out[1], 1);
    dup2(err[1], 2);
    execve(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  ProcResult r;
  pollfd pfd[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  char buf[65536];
  while (open_fds > 0) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now())
                                    .count());
    if (left <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    if (poll(pfd, 2, left) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (pfd[i].fd < 0 || !pfd[i].revents) continue;
      ssize_t n = read(pfd[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(pfd[i].fd);
        pfd[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  for (auto& p : pfd)
    if (p.fd >= 0) close(p.fd);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  // wasmjail's own warning lines (a best-effort mechanism this machine skipped) are kept
  // apart from what the guest wrote to stderr.
  for (size_t at = 0; (at = r.err.find("wasmjail: warning: ", at)) != std::string::npos;) {
    if (at != 0 && r.err[at - 1] != '\n') {
      ++at;
      continue;
    }
    size_t end = r.err.find('\n', at);
    end = end == std::string::npos ? r.err.size() : end + 1;
    r.warnings += r.err.substr(at, end - at);
    r.err.erase(at, end - at);
  }
  return r;
}

pid_t spawn(const std::vector<std::string>& argv_in, int* out_fd) {
  std::vector<std::string> argv = argv_in;
  int out[2];
  if (pipe2(out, O_CLOEXEC)) throw std::runtime_error("pipe");
  auto cargv = cvec(argv);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  close(out[1]);
  *out_fd = out[0];
  return pid;
}

namespace {
std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  pid_t p;
  while (f >> p) out.push_back(p);
  return out;
}
bool is_zygote(pid_t p) {
  std::string comm = read_file("/proc/" + std::to_string(p) + "/comm");
  return comm == "wasmjail-zygote\n";
}
// A warm pooled process still waiting for its job (it is named wasmjail-job once it has one).
bool is_warm(pid_t p) {
  return read_file("/proc/" + std::to_string(p) + "/comm") == "wasmjail-warm\n";
}
}  // namespace

std::vector<pid_t> job_children(pid_t pid) {
  std::vector<pid_t> out;
  for (pid_t p : children_of(pid))
    if (!is_zygote(p) && !is_warm(p)) out.push_back(p);
  return out;
}

std::vector<pid_t> warm_children(pid_t pid) {
  std::vector<pid_t> out;
  for (pid_t p : children_of(pid))
    if (is_warm(p)) out.push_back(p);
  return out;
}

bool memory_contains(pid_t pid, const std::string& needle) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  int mem = open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  if (mem < 0)
    throw std::runtime_error("cannot open /proc/" + std::to_string(pid) + "/mem: " + std::strerror(errno) + " (" +
                             read_file("/proc/" + std::to_string(pid) + "/comm") + ")");
  std::string line;
  bool found = false;
  std::vector<char> buf(1 << 20);
  while (!found && std::getline(maps, line)) {
    unsigned long lo = 0, hi = 0;
    char perms[8] = {};
    char path[512] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %7s %*s %*s %*s %511s", &lo, &hi, perms, path) < 3) continue;
    // Readable memory a process can have written: anonymous, heap, stack, and the writable
    // part of files (data, bss). Not the kernel's [vvar]/[vsyscall], not read-only file text.
    std::string p(path);
    if (perms[0] != 'r' || p == "[vvar]" || p == "[vsyscall]" || p == "[vvar_vclock]") continue;
    if (!p.empty() && p[0] == '/' && perms[1] != 'w') continue;
    std::string carry;
    for (unsigned long at = lo; at < hi && !found;) {
      size_t n = std::min<unsigned long>(buf.size(), hi - at);
      ssize_t got = pread(mem, buf.data(), n, static_cast<off_t>(at));
      if (got <= 0) break;
      std::string chunk = carry + std::string(buf.data(), static_cast<size_t>(got));
      found = chunk.find(needle) != std::string::npos;
      carry = chunk.substr(chunk.size() > needle.size() ? chunk.size() - needle.size() : 0);
      at += static_cast<unsigned long>(got);
    }
  }
  close(mem);
  return found;
}

pid_t zygote_of(pid_t pid) {
  for (pid_t p : children_of(pid))
    if (is_zygote(p)) return p;
  return -1;
}

namespace {

// Every folder a test makes, and every temp folder the wasmjail processes it starts make
// (they inherit TMPDIR), lives under one folder per test process, removed when it exits:
// a suite run leaves nothing in /tmp, whichever test forgot to clean up.
struct TestTmpRoot {
  std::string path;
  pid_t owner = getpid();
  TestTmpRoot() {
    const char* base = getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/wasmjail-test-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp");
    path = tmpl;
    chmod(path.c_str(), 0711);  // other uids may reach what a test opens up (a socket), not list
    setenv("TMPDIR", path.c_str(), 1);
    // Nor in the user's home: the code cache is this process's own (a test that wants
    // another one sets WASMJAIL_CACHE_DIR for the processes it starts).
    if (!getenv("WASMJAIL_CACHE_DIR")) setenv("WASMJAIL_CACHE_DIR", (path + "/code-cache").c_str(), 1);
  }
  ~TestTmpRoot() {
    if (getpid() != owner) return;  // a forked child leaving: the folder is its parent's
    std::error_code ec;
    // Make everything removable first (tests create read-only folders on purpose).
    for (auto it = std::filesystem::recursive_directory_iterator(path, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
      if (it->is_directory(ec) && !it->is_symlink(ec)) chmod(it->path().c_str(), 0700);
    std::filesystem::remove_all(path, ec);
  }
};

TestTmpRoot& tmp_root() {
  static TestTmpRoot root;
  return root;
}
// Created before main, so that TMPDIR is set before any test or thread starts.
[[maybe_unused]] const bool g_tmp_root_made = !tmp_root().path.empty();

}  // namespace

std::string temp_dir() {
  std::string tmpl = tmp_root().path + "/t-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp");
  return tmpl;
}

void write_file(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary);
  f << data;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace wjt

namespace wjt {

void record_api_response(const std::string& method, const std::string& path, long status,
                         const std::string& content_type, const std::string& body) {
#ifdef WJ_API_RECORD_DIR
  static bool truncated = false;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::string file = std::string(WJ_API_RECORD_DIR) + "/" + program_invocation_short_name + ".ndjson";
  std::filesystem::create_directories(WJ_API_RECORD_DIR);
  std::ofstream f(file, truncated ? std::ios::app : std::ios::trunc);
  truncated = true;
  nlohmann::json j = {{"method", method}, {"path", path}, {"status", status}, {"content_type", content_type},
                      {"body", body}};
  f << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
#else
  (void)method, (void)path, (void)status, (void)content_type, (void)body;
#endif
}

std::string padded_module(const std::string& dir, const std::string& module, size_t pad) {
  std::string bytes = read_file(module);
  auto leb = [](uint64_t n) {
    std::string out;
    do {
      uint8_t b = n & 0x7f;
      n >>= 7;
      out.push_back(static_cast<char>(n ? b | 0x80 : b));
    } while (n);
    return out;
  };
  std::string payload = leb(7) + "padding" + std::string(pad, '\0');
  bytes += '\0' + leb(payload.size()) + payload;
  std::string stem = module.substr(module.find_last_of('/') + 1);
  stem = stem.substr(0, stem.find_last_of('.'));
  std::string out = dir + "/" + stem + "_padded.wasm";
  write_file(out, bytes);
  return out;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

}  // namespace wjt
