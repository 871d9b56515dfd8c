// Test helpers for the queue: a 3-node nats-server cluster (JetStream, R3) on free
// loopback ports with its stores in a temp folder, and worker processes whose output goes
// to files. Everything started is stopped by pid (never by name) in the destructors.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "server/queue.h"
#include "tests/testlib.h"

namespace wjt {

inline std::vector<int> free_ports(size_t n) {
  std::vector<int> fds, ports;
  for (size_t i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ports.push_back(ntohs(a.sin_port));
    fds.push_back(fd);
  }
  for (int fd : fds) close(fd);
  return ports;
}

// Starts argv with stdout and stderr appended to `log`; stdin from /dev/null.
inline pid_t spawn_logged(const std::vector<std::string>& argv, const std::string& log,
                          const std::vector<std::string>& env = {}) {
  pid_t pid = fork();
  if (pid == 0) {
    int in = open("/dev/null", O_RDONLY);
    int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    for (const auto& e : env) putenv(strdup(e.c_str()));
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execvp(a[0], a.data());
    _exit(127);
  }
  return pid;
}

// Waits for pid to end within timeout_s; returns its exit code (128+sig), or -1 (still running).
inline int wait_exit(pid_t pid, double timeout_s) {
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    int st = 0;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (r < 0) return -2;
    if (std::chrono::steady_clock::now() > until) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

inline void stop_pid(pid_t pid, int sig = SIGTERM) {
  if (pid <= 0) return;
  kill(pid, sig);
  if (wait_exit(pid, 10) == -1) {
    kill(pid, SIGKILL);
    wait_exit(pid, 10);
  }
}

template <class F>
bool eventually(double timeout_s, F f) {
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < until) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return f();
}

class NatsCluster {
 public:
  // `client_ports`: use these for the nodes' client ports (else free ones).
  // `extra`: more nats-server flags for every node (e.g. --user/--pass).
  // `extra`: more nats-server flags for every node (e.g. --user/--pass, --tls...); `client`:
  // the credentials and TLS settings the readiness check connects with.
  explicit NatsCluster(std::vector<int> client_ports = {}, std::vector<std::string> extra = {},
                       wj::QueueSettings client = {})
      : dir_(temp_dir()), extra_(std::move(extra)) {
    auto p = free_ports(6);
    for (int i = 0; i < 3; ++i) {
      client_[i] = client_ports.size() == 3 ? client_ports[i] : p[i];
      route_[i] = p[3 + i];
    }
    for (int i = 0; i < 3; ++i) start_node(i);
    // Ready when the R3 stream and buckets can be created (a meta leader was elected).
    std::string err;
    bool ok = eventually(40, [&] {
      wj::QueueSettings qs = client;
      qs.urls = {url(0), url(1), url(2)};
      qs.connect_timeout_ms = 1000;
      return wj::NatsQueue::open(qs, &err) != nullptr;
    });
    if (!ok) throw std::runtime_error("the NATS cluster did not become ready: " + err);
  }
  ~NatsCluster() {
    for (int i = 0; i < 3; ++i) stop_node(i, SIGTERM);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string url(int i) const { return "nats://127.0.0.1:" + std::to_string(client_[i]); }
  std::string urls() const { return url(0) + "," + url(1) + "," + url(2); }
  const std::string& dir() const { return dir_; }
  void start_node(int i) {
    std::string routes;
    for (int j = 0; j < 3; ++j)
      if (j != i)
        routes += (routes.empty() ? "" : ",") + std::string("nats://127.0.0.1:") + std::to_string(route_[j]);
    std::vector<std::string> argv = {"nats-server",
                                     "-a",
                                     "127.0.0.1",
                                     "-p",
                                     std::to_string(client_[i]),
                                     "-js",
                                     "-sd",
                                     dir_ + "/n" + std::to_string(i),
                                     "-n",
                                     "n" + std::to_string(i),
                                     "--cluster_name",
                                     "wj",
                                     "-cluster",
                                     "nats://127.0.0.1:" + std::to_string(route_[i]),
                                     "-routes",
                                     routes};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    pid_[i] = spawn_logged(argv, dir_ + "/n" + std::to_string(i) + ".log");
  }
  void stop_node(int i, int sig) {
    stop_pid(pid_[i], sig);
    pid_[i] = -1;
  }
  // The node ("n0".."n2") leading the jobs stream, or -1.
  int stream_leader(wj::NatsQueue& q, const std::string& stream = "WJ_JOBS") {
    jsStreamInfo* si = nullptr;
    if (js_GetStreamInfo(&si, q.jetstream(), stream.c_str(), nullptr, nullptr) != NATS_OK) return -1;
    int leader = -1;
    if (si->Cluster && si->Cluster->Leader && si->Cluster->Leader[0] == 'n')
      leader = si->Cluster->Leader[1] - '0';
    jsStreamInfo_Destroy(si);
    return leader;
  }

 private:
  std::string dir_;
  std::vector<std::string> extra_;
  int client_[3], route_[3];
  pid_t pid_[3] = {-1, -1, -1};
};

}  // namespace wjt
