#include "tests/testlib.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
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
}  // namespace

std::vector<pid_t> job_children(pid_t pid) {
  std::vector<pid_t> out;
  for (pid_t p : children_of(pid))
    if (!is_zygote(p)) out.push_back(p);
  return out;
}

pid_t zygote_of(pid_t pid) {
  for (pid_t p : children_of(pid))
    if (is_zygote(p)) return p;
  return -1;
}

std::string temp_dir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/wasmjail-test-XXXXXX";
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
