// `wasmjail serve` end to end: every endpoint and error, cancellation, a client leaving a
// log stream, a child killed from outside, and shutdown with jobs in flight.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <filesystem>

#include <curl/curl.h>
#include <dirent.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/testlib.h"

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct Resp {
  long code = 0;
  std::string body;
  json j() const { return json::parse(body, nullptr, false); }
};

size_t collect(char* p, size_t s, size_t n, void* u) {
  static_cast<std::string*>(u)->append(p, s * n);
  return s * n;
}

struct Server {
  std::string dir, sock, log_path;
  pid_t pid = -1;
  explicit Server(const std::string& extra_config = "", const std::vector<std::string>& extra_args = {}) {
    dir = wjt::temp_dir();
    sock = dir + "/wasmjail.sock";
    log_path = dir + "/server.log";
    wjt::write_file(dir + "/server.yaml", "output_root: " + dir + "/outputs\n" + extra_config);
    std::vector<std::string> argv = {wjt::binary(), "serve", "--config", dir + "/server.yaml", "--listen", "unix:" + sock};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    pid = fork();
    if (pid == 0) {
      int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 2);
      dup2(fd, 1);
      // One child per job: no compile for the code cache beside the jobs, unless a test
      // asks for it (a_large_cold_module_runs_tiered_while_its_code_is_compiled).
      setenv("WASMJAIL_BACKGROUND_COMPILE", "off", 0);
      std::vector<char*> a;
      for (auto& s : argv) a.push_back(s.data());
      a.push_back(nullptr);
      execv(a[0], a.data());
      _exit(127);
    }
    // Generous: under load (the whole suite on 2 cores) start-up can take seconds.
    for (int i = 0; i < 1500 && access(sock.c_str(), F_OK) != 0; ++i) usleep(10000);
    BOOST_REQUIRE_MESSAGE(access(sock.c_str(), F_OK) == 0, "server did not start: " + log());
  }
  ~Server() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
  std::string log() const {
    std::ifstream f(log_path);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  Resp req(const std::string& method, const std::string& path, const std::string& body = "",
           const std::string& tcp_url = "", const std::string& auth = "") const {
    Resp r;
    CURL* c = curl_easy_init();
    struct curl_slist* hs = nullptr;
    if (tcp_url.empty()) {
      curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock.c_str());
      curl_easy_setopt(c, CURLOPT_URL, ("http://wasmjail" + path).c_str());
    } else {
      curl_easy_setopt(c, CURLOPT_URL, (tcp_url + path).c_str());
      curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    }
    if (!auth.empty()) hs = curl_slist_append(hs, ("Authorization: " + auth).c_str());
    hs = curl_slist_append(hs, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (method == "POST") {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.code);
    char* ctype = nullptr;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctype);
    if (r.code != 0) wjt::record_api_response(method, path, r.code, ctype ? ctype : "", r.body);
    curl_slist_free_all(hs);
    curl_easy_cleanup(c);
    return r;
  }
  // The job children of the server process.
  std::vector<pid_t> children() const { return wjt::job_children(pid); }
};

std::string data_url(const std::string& guest) {
  return "data:application/wasm;base64," + wjt::run({"/usr/bin/base64", "-w0", wjt::guest(guest)}).out;
}

std::string job(const std::string& guest, const std::string& extra = "") {
  return R"({"entry_module": {"url": ")" + data_url(guest) + R"("})" + extra + "}";
}

bool wait_for(const std::function<bool()>& cond, int ms = 10000) {
  for (int i = 0; i < ms / 10; ++i) {
    if (cond()) return true;
    usleep(10000);
  }
  return cond();
}

}  // namespace

BOOST_AUTO_TEST_CASE(submit_get_wait_logs_list_run_health_metrics) {
  Server s;
  Resp r = s.req("POST", "/v1/jobs", job("hello", R"(, "parameters": ["api"])"));
  BOOST_TEST(r.code == 202);
  std::string id = r.j()["id"];
  BOOST_TEST(id.size() == 17u);
  r = s.req("GET", "/v1/jobs/" + id + "/wait?timeout_ms=10000");
  BOOST_TEST(r.code == 200);
  BOOST_TEST(r.j()["state"] == "done");
  BOOST_TEST(r.j()["result"]["status"] == "ok");
  BOOST_TEST(r.j()["result"]["stdout"] == "Hello, api!\n");
  r = s.req("GET", "/v1/jobs/" + id);
  BOOST_TEST(r.j()["result"]["exit_code"] == 0);
  r = s.req("GET", "/v1/jobs/" + id + "/logs");
  BOOST_TEST(r.code == 200);
  BOOST_TEST(r.body == "{\"stream\":\"stdout\",\"data\":\"Hello, api!\\n\"}\n{\"event\":\"done\",\"status\":\"ok\",\"exit_code\":0}\n");
  r = s.req("POST", "/v1/run", R"({"job": )" + job("exit_code", R"(, "parameters": ["7"])") + R"(, "policy": "default"})");
  BOOST_TEST(r.code == 200);
  BOOST_TEST(r.j()["policy"] == "default");
  BOOST_TEST(r.j()["result"]["exit_code"] == 7);
  r = s.req("GET", "/v1/jobs");
  BOOST_TEST(r.j()["jobs"].size() == 2u);
  BOOST_TEST(r.j()["jobs"][1]["id"] == id);  // newest first
  r = s.req("GET", "/healthz");
  BOOST_TEST(r.j()["status"] == "ok");
  r = s.req("GET", "/metrics");
  BOOST_TEST(r.body.find("wasmjail_jobs_total{status=\"ok\"} 2\n") != std::string::npos);
  BOOST_TEST(r.body.find("wasmjail_job_duration_seconds_count 2\n") != std::string::npos);
  BOOST_TEST(r.body.find("wasmjail_queue_depth 0\n") != std::string::npos);
  BOOST_TEST(r.body.find("wasmjail_background_compiles 0\n") != std::string::npos);
  // Structured log lines for each job's life.
  std::string log = s.log();
  BOOST_TEST(log.find("\"event\":\"job_queued\",\"job\":\"" + id + "\"") != std::string::npos);
  BOOST_TEST(log.find("\"event\":\"job_finished\",\"job\":\"" + id + "\",\"policy\":\"default\",\"status\":\"ok\"") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_job_spec_gives_the_guest_its_stdin) {
  Server s;
  json r = s.req("POST", "/v1/run", job("stdin_reader", R"(, "parameters": ["upper"], "stdin": "over the api")")).j();
  BOOST_TEST(r["result"]["status"] == "ok");
  BOOST_TEST(r["result"]["stdout"] == "OVER THE APIbytes=12 read=0\n");
  r = s.req("POST", "/v1/run", job("stdin_reader", R"(, "parameters": ["upper"], "stdin": {"base64": "YWJj"})")).j();
  BOOST_TEST(r["result"]["stdout"] == "ABCbytes=3 read=0\n");
  // Over the policy's stdin_bytes: refused with the place in the request.
  Resp bad = s.req("POST", "/v1/run", job("stdin_reader", R"(, "stdin": "toolong", "limits": {"stdin_bytes": "4B"})"));
  BOOST_TEST(bad.code == 200);  // /v1/run answers with the finished job: invalid_job
  BOOST_TEST(bad.j()["result"]["status"] == "invalid_job");
  std::string text = bad.body;
  BOOST_TEST(text.find("stdin: 7 bytes exceed the stdin_bytes limit of 4 bytes") != std::string::npos, text);
}

BOOST_AUTO_TEST_CASE(errors_have_a_stable_shape) {
  Server s("max_request_bytes: 64KiB\n");
  Resp r = s.req("GET", "/v1/jobs/jdeadbeef");
  BOOST_TEST(r.code == 404);
  BOOST_TEST(r.j()["error"]["code"] == "not_found");
  r = s.req("POST", "/v1/jobs", "{\"entry_module\": {\n  \"url\": ]}");
  BOOST_TEST(r.code == 400);
  BOOST_TEST(r.j()["error"]["code"] == "malformed_json");
  BOOST_TEST(r.j()["error"]["message"].get<std::string>().find("line 2, column 10") != std::string::npos);
  r = s.req("POST", "/v1/jobs", R"({"job": {"entry_module": {"url": "data:,x"}}, "policy": "nope"})");
  BOOST_TEST(r.code == 400);
  BOOST_TEST(r.j()["error"]["code"] == "unknown_policy");
  BOOST_TEST(r.j()["error"]["message"] == "policy \"nope\" is not offered here (offered: default, strict)");
  r = s.req("POST", "/v1/jobs", R"({"entry_modul": {}})");
  BOOST_TEST(r.code == 400);
  BOOST_TEST(r.j()["error"]["message"] == "request:1:2: unknown key \"entry_modul\" in the job (did you mean \"entry_module\"?)");
  r = s.req("POST", "/v1/jobs", std::string(100000, ' '));
  BOOST_TEST(r.code == 413);
  BOOST_TEST(r.j()["error"]["code"] == "payload_too_large");
  r = s.req("POST", "/v1/jobs", R"({"entry_module": {"source_path": "/etc/passwd"}})");
  BOOST_TEST(r.code == 400);
  BOOST_TEST(r.j()["error"]["message"] ==
             "entry_module: local sources (localDirectory) are not allowed through the API; use inline or urlDownload");
  r = s.req("POST", "/v1/jobs", job("returns", R"(, "limits": {"memory": "64GiB"})"));
  BOOST_TEST(r.code == 400);
  BOOST_TEST(r.j()["error"]["message"] == "job asks for limits.memory 64GiB but the policy allows at most 2GiB");
  r = s.req("PUT", "/v1/jobs");
  BOOST_TEST(r.code == 405);
  r = s.req("GET", "/v1/nothing");
  BOOST_TEST(r.code == 404);
  r = s.req("GET", "/v1/jobs/x/wait?timeout_ms=abc");
  BOOST_TEST(r.code == 404);  // unknown job first
}

BOOST_AUTO_TEST_CASE(tcp_requires_the_bearer_token) {
  std::string dir = wjt::temp_dir();
  wjt::write_file(dir + "/token", "0123456789abcdef-secret\n");
  // Pick a free loopback port.
  int port = 20000 + (getpid() % 20000);
  Server s("token_file: " + dir + "/token\n", {"--listen", "tcp:127.0.0.1:" + std::to_string(port)});
  std::string url = "http://127.0.0.1:" + std::to_string(port);
  BOOST_REQUIRE(wait_for([&] { return s.req("GET", "/healthz", "", url).code != 0; }));
  Resp r = s.req("GET", "/healthz", "", url);
  BOOST_TEST(r.code == 401);
  BOOST_TEST(r.j()["error"]["code"] == "unauthorized");
  BOOST_TEST(s.req("GET", "/healthz", "", url, "Bearer wrong").code == 401);
  BOOST_TEST(s.req("GET", "/healthz", "", url, "Bearer 0123456789abcdef-secret").code == 200);
  // The unix socket needs no token.
  BOOST_TEST(s.req("GET", "/healthz").code == 200);
}

BOOST_AUTO_TEST_CASE(queue_full_is_429_and_cancel_works_queued_and_running) {
  Server s("concurrency: 1\nqueue_size: 1\n");
  std::string running = s.req("POST", "/v1/jobs", job("loop")).j()["id"];
  BOOST_REQUIRE(wait_for([&] { return s.req("GET", "/v1/jobs/" + running).j()["state"] == "running"; }));
  std::string queued = s.req("POST", "/v1/jobs", job("loop")).j()["id"];
  Resp r = s.req("POST", "/v1/jobs", job("loop"));
  BOOST_TEST(r.code == 429);
  BOOST_TEST(r.j()["error"]["code"] == "queue_full");
  BOOST_TEST(s.req("GET", "/v1/jobs/" + queued).j()["state"] == "queued");
  r = s.req("DELETE", "/v1/jobs/" + queued);
  BOOST_TEST(r.code == 202);
  r = s.req("GET", "/v1/jobs/" + queued);
  BOOST_TEST(r.j()["state"] == "done");
  BOOST_TEST(r.j()["result"]["status"] == "cancelled");
  BOOST_TEST(r.j()["result"]["exit_code"] == -1);
  r = s.req("DELETE", "/v1/jobs/" + running);
  BOOST_TEST(r.code == 202);
  r = s.req("GET", "/v1/jobs/" + running + "/wait?timeout_ms=10000");
  BOOST_TEST(r.j()["result"]["status"] == "cancelled");
  BOOST_TEST(s.req("DELETE", "/v1/jobs/" + running).code == 409);
  BOOST_TEST(s.req("GET", "/metrics").body.find("wasmjail_rejected_total 1\n") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(wait_times_out_with_the_current_state) {
  Server s;
  std::string id = s.req("POST", "/v1/jobs", job("loop", R"(, "limits": {"wall_time": "3s"})")).j()["id"];
  auto t0 = std::chrono::steady_clock::now();
  Resp r = s.req("GET", "/v1/jobs/" + id + "/wait?timeout_ms=300");
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  BOOST_TEST(r.j()["state"] == "running");
  BOOST_TEST(ms < 2500);
  r = s.req("GET", "/v1/jobs/" + id + "/wait?timeout_ms=10000");
  BOOST_TEST(r.j()["result"]["status"] == "timeout");
}

BOOST_AUTO_TEST_CASE(logs_stream_while_running_and_a_leaving_client_is_harmless) {
  Server s;
  std::string id = s.req("POST", "/v1/jobs", job("sleep_lines")).j()["id"];
  // A client that reads the first line, then disconnects mid-stream.
  {
    CURL* c = curl_easy_init();
    std::string got;
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, s.sock.c_str());
    curl_easy_setopt(c, CURLOPT_URL, ("http://wasmjail/v1/jobs/" + id + "/logs").c_str());
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, +[](char* p, size_t sz, size_t n, void* u) -> size_t {
      static_cast<std::string*>(u)->append(p, sz * n);
      return 0;  // abort after the first chunk: the client goes away
    });
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
    curl_easy_perform(c);
    curl_easy_cleanup(c);
    BOOST_TEST(got == "{\"stream\":\"stdout\",\"data\":\"first\\n\"}\n");
  }
  // A second reader, joining while the job sleeps, gets the kept output and then the rest.
  Resp r = s.req("GET", "/v1/jobs/" + id + "/logs");
  BOOST_TEST(r.body ==
             "{\"stream\":\"stdout\",\"data\":\"first\\n\"}\n{\"stream\":\"stdout\",\"data\":\"second\\n\"}\n"
             "{\"event\":\"done\",\"status\":\"ok\",\"exit_code\":0}\n");
  BOOST_TEST(s.req("GET", "/healthz").code == 200);
}

// The fork server is a speed-up only: when it dies, jobs are cloned by the supervisor
// itself, under the same sandbox, and the dead fork server is reaped.
std::string status_field(pid_t pid, const std::string& key) {
  std::istringstream in(wjt::read_file("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) {
      std::string v = line.substr(key.size() + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  return "";
}

// The one job process left once earlier jobs (answered at their record, reaped a moment
// later) are gone: the same single child, locked down, for 200 ms.
pid_t the_running_job(const Server& s) {
  pid_t found = -1;
  wait_for([&] {
    auto c = s.children();
    if (c.size() != 1u || status_field(c.front(), "Seccomp") != "2") return false;
    usleep(200000);
    auto again = s.children();
    if (again.size() != 1u || again.front() != c.front()) return false;
    found = c.front();
    return true;
  });
  return found;
}

int nice_of(pid_t pid) {
  std::string st = wjt::read_file("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream in(st.substr(st.rfind(')') + 2));
  std::string f;
  for (int i = 3; i <= 19 && in >> f; ++i) {
  }
  return std::stoi(f);  // field 19: nice
}

size_t fd_count(pid_t pid) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) (void)e, ++n;
  return n;
}

std::string random_secret() {
  std::string s = "wj-planted-";
  std::ifstream r("/dev/urandom", std::ios::binary);
  for (int i = 0; i < 16; ++i) s += "0123456789abcdef"[static_cast<unsigned char>(r.get()) % 16];
  return s;
}

// A fork server that dies is replaced by a clean one (fork+exec of the binary, never a
// clone of the server, which holds every job's data); and no job process holds another
// job's data: a secret planted in one job's environment is in the server's memory (so the
// scan can see it) but in no later job process, warm process or fork server.
BOOST_AUTO_TEST_CASE(a_dead_fork_server_is_replaced_and_no_job_sees_another_jobs_data) {
  for (const char* config : {"warm_pool: 0\n", ""}) {
    BOOST_TEST_CONTEXT("config: " << config) {
      Server s(config);
      const std::string secret = random_secret();
      Resp r = s.req("POST", "/v1/run", job("hello", R"(, "environment_variables": {"PLANTED": ")" + secret + "\"}"));
      BOOST_REQUIRE(r.j()["result"]["status"] == "ok");
      pid_t zygote = wjt::zygote_of(s.pid);
      BOOST_REQUIRE(zygote > 0);
      BOOST_TEST(wjt::memory_contains(s.pid, secret));  // the scan finds it where it is
      kill(zygote, SIGKILL);
      for (int i = 0; i < 3; ++i) {
        r = s.req("POST", "/v1/run", job("hello"));
        BOOST_TEST(r.j()["result"]["status"] == "ok");
        BOOST_TEST(r.j()["result"]["stdout"] == "Hello from wasmjail!\n");
        json res = r.j();
        const json& applied = res["result"]["sandbox"]["applied"];
        BOOST_TEST((std::find(applied.begin(), applied.end(), json("seccomp")) != applied.end()));
      }
      pid_t fresh = wjt::zygote_of(s.pid);
      BOOST_TEST(fresh > 0);
      BOOST_TEST(fresh != zygote);
      // Exec'd, not forked: its environment block is the helper's, nothing of the server's.
      BOOST_TEST(wjt::read_file("/proc/" + std::to_string(fresh) + "/environ").find("WASMJAIL_ZYGOTE_HELPER=") == 0u);
      std::string id = s.req("POST", "/v1/jobs", job("loop")).j()["id"];
      // The loop's process (earlier jobs were answered at their record and may not be reaped yet).
      pid_t other = the_running_job(s);
      BOOST_REQUIRE(other > 0);
      BOOST_TEST(!wjt::memory_contains(other, secret));
      BOOST_TEST(!wjt::memory_contains(fresh, secret));
      for (pid_t w : wjt::warm_children(s.pid)) BOOST_TEST(!wjt::memory_contains(w, secret));
      s.req("DELETE", "/v1/jobs/" + id);
    }
  }
}

// A fork server that creates the job process but never answers: the job fails after the
// reply timeout (5 s), the job process never runs the guest (it exits when the stopped fork
// server's go-ahead pipe closes), and later jobs come from a new, clean fork server.
BOOST_AUTO_TEST_CASE(a_fork_server_that_stops_answering_fails_one_job_and_no_more) {
  setenv("WASMJAIL_TEST_ZYGOTE_STALL", "1", 1);
  Server s("warm_pool: 0\n");
  unsetenv("WASMJAIL_TEST_ZYGOTE_STALL");
  pid_t stalled = wjt::zygote_of(s.pid);
  BOOST_REQUIRE(stalled > 0);
  json res = s.req("POST", "/v1/run", job("hello")).j();
  BOOST_TEST(res["result"]["status"] == "internal_error");
  BOOST_TEST(res["result"]["error"] ==
             "the fork server did not answer for this job (it is stopped; a new one is started)");
  BOOST_TEST(res["result"]["stdout"] == "");
  res = s.req("POST", "/v1/run", job("hello")).j();
  BOOST_TEST(res["result"]["status"] == "ok");
  BOOST_TEST(res["result"]["stdout"] == "Hello from wasmjail!\n");
  BOOST_TEST(wjt::zygote_of(s.pid) > 0);
  BOOST_TEST(wjt::zygote_of(s.pid) != stalled);
  // The stray job process exited without running anything, and a later start reaped it.
  BOOST_TEST(wait_for([&] {
    if (s.children().empty()) return true;
    s.req("POST", "/v1/run", job("hello"));
    return false;
  }));
}

// The warm pool: after a policy's first job, `concurrency` processes wait for its next jobs,
// prepared as far as nothing job-specific is needed (namespaces, one thread, only their job
// channel and stderr open, no seccomp or no_new_privs yet, a lower CPU priority); a job runs
// in one of them, locked down as any job, at normal priority. warm_pool: 0 keeps none.
BOOST_AUTO_TEST_CASE(jobs_run_in_processes_prepared_before_they_arrived) {
  Server s("concurrency: 2\n");
  json first = s.req("POST", "/v1/run", job("hello")).j();
  BOOST_REQUIRE(first["result"]["status"] == "ok");
  const json& applied = first["result"]["sandbox"]["applied"];
  const bool cgroups = std::find(applied.begin(), applied.end(), json("cgroup")) != applied.end();
  BOOST_REQUIRE(wait_for([&] { return wjt::warm_children(s.pid).size() == 2u; }));
  std::vector<pid_t> warm = wjt::warm_children(s.pid);
  const std::string own_net = fs::read_symlink("/proc/self/ns/net");
  for (pid_t w : warm) {
    BOOST_TEST_CONTEXT("warm process " << w) {
      BOOST_TEST(wait_for([&] { return status_field(w, "Threads") == "1" && fd_count(w) == 2u; }));
      BOOST_TEST(status_field(w, "Seccomp") == "0");
      BOOST_TEST(fs::read_symlink("/proc/" + std::to_string(w) + "/ns/net").string() != own_net);
      BOOST_TEST(nice_of(w) == 10);
    }
  }
  std::string id = s.req("POST", "/v1/jobs", job("loop")).j()["id"];
  pid_t child = the_running_job(s);
  BOOST_REQUIRE(child > 0);
  BOOST_TEST((std::find(warm.begin(), warm.end(), child) != warm.end()));
  BOOST_TEST(wait_for([&] { return status_field(child, "Seccomp") == "2"; }));
  BOOST_TEST(status_field(child, "NoNewPrivs") == "1");
  BOOST_TEST(status_field(child, "CapEff") == "0000000000000000");
  BOOST_TEST(nice_of(child) == 0);
  // In the job's own cgroup ("<server pid>-<start time>-<seq>"), joined before it got the job.
  if (cgroups)
    BOOST_TEST(wjt::read_file("/proc/" + std::to_string(child) + "/cgroup").find("/" + std::to_string(s.pid) + "-") !=
               std::string::npos);
  s.req("DELETE", "/v1/jobs/" + id);
  json done = s.req("GET", "/v1/jobs/" + id + "/wait?timeout_ms=10000").j();
  BOOST_TEST(done["result"]["status"] == "cancelled");
  // Refilled for the next jobs.
  BOOST_TEST(wait_for([&] { return wjt::warm_children(s.pid).size() == 2u; }));

  Server none("concurrency: 2\nwarm_pool: 0\n");
  BOOST_REQUIRE(none.req("POST", "/v1/run", job("hello")).j()["result"]["status"] == "ok");
  usleep(200000);
  BOOST_TEST(wjt::warm_children(none.pid).empty());
}

// isolation.net_namespace_kind: shared_empty: the job processes of one server, made on demand
// or ahead of it (warm), are all in one network namespace, not the server's, holding only a
// loopback; per_job (the default) gives each job its own.
BOOST_AUTO_TEST_CASE(shared_empty_jobs_share_one_empty_network_namespace_per_job_jobs_do_not) {
  std::string pdir = wjt::temp_dir();
  wjt::write_file(pdir + "/shared.yaml",
                  "extends: default\nname: shared\nisolation:\n  net_namespace_kind: shared_empty\n");
  Server s("concurrency: 2\npolicy_dirs: [" + pdir + "]\nallowed_policies: [default, shared]\n");
  const std::string own_net = fs::read_symlink("/proc/self/ns/net");
  auto net_of = [](pid_t p) { return fs::read_symlink("/proc/" + std::to_string(p) + "/ns/net").string(); };
  // Interface names in a process's network namespace (/proc/PID/net/dev: two header lines).
  auto interfaces = [](pid_t p) {
    std::istringstream in(wjt::read_file("/proc/" + std::to_string(p) + "/net/dev"));
    std::vector<std::string> names;
    std::string line;
    for (int i = 0; std::getline(in, line); ++i)
      if (i >= 2)
        names.push_back(
            line.substr(line.find_first_not_of(' '), line.find(':') - line.find_first_not_of(' ')));
    return names;
  };
  // Two spinning jobs of `policy` at once: their processes' network namespaces.
  auto two_running = [&](const std::string& policy) {
    std::vector<std::string> ids;
    for (int i = 0; i < 2; ++i)
      ids.push_back(s.req("POST", "/v1/jobs?policy=" + policy, job("loop")).j()["id"]);
    std::vector<pid_t> kids;
    BOOST_REQUIRE(wait_for([&] {
      kids = s.children();
      return kids.size() == 2u && status_field(kids[0], "Seccomp") == "2" &&
             status_field(kids[1], "Seccomp") == "2";
    }));
    std::vector<std::string> nets = {net_of(kids[0]), net_of(kids[1])};
    for (pid_t k : kids) BOOST_TEST((interfaces(k) == std::vector<std::string>{"lo"}), "job " << k);
    for (const auto& id : ids) s.req("DELETE", "/v1/jobs/" + id);
    for (const auto& id : ids)
      BOOST_TEST(s.req("GET", "/v1/jobs/" + id + "/wait?timeout_ms=10000").j()["result"]["status"] ==
                 "cancelled");
    BOOST_REQUIRE(wait_for([&] { return s.children().empty(); }));
    return nets;
  };
  // First from the fork server on demand, then (the pool filled after the first job) warm.
  std::vector<std::string> first = two_running("shared");
  BOOST_TEST(first[0] == first[1]);
  BOOST_TEST(first[0] != own_net);
  BOOST_REQUIRE(wait_for([&] { return wjt::warm_children(s.pid).size() >= 2u; }));
  for (pid_t w : wjt::warm_children(s.pid)) BOOST_TEST(net_of(w) == first[0]);
  std::vector<std::string> warm = two_running("shared");
  BOOST_TEST(warm[0] == first[0]);
  BOOST_TEST(warm[1] == first[0]);
  // The fork server holds that namespace; the server itself stays in its own.
  BOOST_TEST(net_of(wjt::zygote_of(s.pid)) == first[0]);
  BOOST_TEST(net_of(s.pid) == own_net);
  json r = s.req("POST", "/v1/run?policy=shared", job("hello")).j();
  BOOST_TEST(r["result"]["status"] == "ok");
  BOOST_TEST(r["result"]["stdout"] == "Hello from wasmjail!\n");

  std::vector<std::string> own = two_running("default");
  BOOST_TEST(own[0] != own[1]);
  for (const auto& n : own) {
    BOOST_TEST(n != own_net);
    BOOST_TEST(n != first[0]);
  }
}

// A cold module of 256 KiB or more: the job runs at once on Liftoff with dynamic tier-up
// ("compiling") while a second child, which runs no guest code, compiles its TurboFan code
// for the cache; once it is there, jobs get it ("hit"). Same output every time.
// WASMJAIL_BACKGROUND_COMPILE=off: the first job compiles eagerly ("miss").
BOOST_AUTO_TEST_CASE(a_large_cold_module_runs_tiered_while_its_code_is_compiled) {
  BOOST_REQUIRE(fs::file_size(wjt::guest("cxx_program")) >= (256u << 10));
  for (const char* mode : {"on", "off"}) {
    BOOST_TEST_CONTEXT("WASMJAIL_BACKGROUND_COMPILE=" << mode) {
      setenv("WASMJAIL_BACKGROUND_COMPILE", mode, 1);
      std::string cache = wjt::temp_dir();
      Server s("cache_dir: " + cache + "\n");
      unsetenv("WASMJAIL_BACKGROUND_COMPILE");
      json first = s.req("POST", "/v1/run", job("cxx_program")).j();
      BOOST_TEST(first["result"]["status"] == "ok");
      // Counted while it runs, gone once it ended.
      BOOST_TEST(wait_for([&] {
        return s.req("GET", "/metrics").body.find("wasmjail_background_compiles 0\n") != std::string::npos;
      }));
      BOOST_TEST(first["result"]["tier"] == "tiered");
      std::string out = first["result"]["stdout"];
      BOOST_TEST(!out.empty());
      if (std::string(mode) == "off") {
        // The default policy's tiered jobs never offer their own code: nothing is cached.
        BOOST_TEST(!first["result"].contains("code_cache"));
        json again = s.req("POST", "/v1/run", job("cxx_program")).j();
        BOOST_TEST(!again["result"].contains("code_cache"));
        BOOST_TEST(fs::is_empty(cache));
        continue;
      }
      BOOST_TEST(first["result"]["code_cache"] == "compiling");
      json later;
      BOOST_TEST(wait_for([&] {
        later = s.req("POST", "/v1/run", job("cxx_program")).j();
        return later["result"]["code_cache"] == "hit";
      }));
      BOOST_TEST(later["result"]["stdout"] == out);
      BOOST_TEST(later["result"]["tier"] == "turbofan");
      size_t files = 0;
      for (const auto& e : fs::directory_iterator(cache)) (void)e, ++files;
      BOOST_TEST(files == 1u);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_child_killed_from_outside_is_crashed) {
  Server s;
  std::string id = s.req("POST", "/v1/jobs", job("loop")).j()["id"];
  BOOST_REQUIRE(wait_for([&] { return !s.children().empty(); }));
  for (pid_t c : s.children()) kill(c, SIGKILL);
  Resp r = s.req("GET", "/v1/jobs/" + id + "/wait?timeout_ms=10000");
  BOOST_TEST(r.j()["result"]["status"] == "crashed");
  BOOST_TEST(r.j()["result"]["error"] == "child killed by SIGKILL before reporting a result");
  // The next job runs normally, and no child is left behind.
  r = s.req("POST", "/v1/run", job("hello"));
  BOOST_TEST(r.j()["result"]["status"] == "ok");
  BOOST_TEST(wait_for([&] { return s.children().empty(); }));
}

BOOST_AUTO_TEST_CASE(sigterm_drains_then_cancels_jobs_in_flight) {
  Server s("drain_timeout: 500ms\n");
  std::string quick = s.req("POST", "/v1/jobs", job("sleep_lines")).j()["id"];
  std::string spinning = s.req("POST", "/v1/jobs", job("loop")).j()["id"];
  BOOST_REQUIRE(wait_for([&] { return s.children().size() == 2; }));
  auto t0 = std::chrono::steady_clock::now();
  kill(s.pid, SIGTERM);
  int status = 0;
  BOOST_REQUIRE(wait_for([&] { return waitpid(s.pid, &status, WNOHANG) == s.pid; }, 15000));
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  s.pid = -1;
  BOOST_TEST(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 0);
  BOOST_TEST(ms < 5000);
  std::string log = s.log();
  // The spinning job was cancelled at the drain timeout; the socket is gone.
  BOOST_TEST(log.find("\"job\":\"" + spinning + "\",\"policy\":\"default\",\"status\":\"cancelled\"") != std::string::npos);
  BOOST_TEST(log.find("\"event\":\"shutdown_complete\"") != std::string::npos);
  BOOST_TEST(access(s.sock.c_str(), F_OK) != 0);
  (void)quick;
}

BOOST_AUTO_TEST_CASE(the_shipped_server_config_loads) {
  // Rewrite its listener into a temp folder; everything else as shipped.
  std::ifstream f(WJ_SOURCE_DIR "/configs/server.yaml");
  std::string text(std::istreambuf_iterator<char>(f), {});
  text = text.substr(text.find("\nsocket_mode") + 1);
  text.erase(text.find("output_root:"), text.find('\n', text.find("output_root:")) - text.find("output_root:"));
  Server s(text);
  BOOST_TEST(s.req("GET", "/healthz").code == 200);
}

namespace {
// Sends raw bytes on a new unix-socket connection and returns everything read until the
// server closes it (or `timeout_ms` passes).
std::string raw_exchange(const std::string& sock, const std::string& bytes, int timeout_ms) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "connect failed";
  }
  (void)!write(fd, bytes.data(), bytes.size());
  std::string out;
  char buf[4096];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}
}  // namespace

BOOST_AUTO_TEST_CASE(a_request_whose_body_never_comes_times_out) {
  Server s("header_timeout: 300ms\n");
  auto t0 = std::chrono::steady_clock::now();
  std::string r = raw_exchange(s.sock, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{", 5000);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  BOOST_TEST(r.rfind("HTTP/1.1 408 Request Timeout\r\n", 0) == 0);
  BOOST_TEST(r.find("\"code\":\"request_timeout\"") != std::string::npos);
  BOOST_TEST(ms < 3000);
}

BOOST_AUTO_TEST_CASE(nothing_is_answered_after_connection_close) {
  Server s;
  std::string body = job("returns");
  std::string r = raw_exchange(s.sock,
                               "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                               "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                                   std::to_string(body.size()) + "\r\n\r\n" + body,
                               3000);
  BOOST_TEST(r.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  BOOST_TEST(r.find("HTTP/1.1", 1) == std::string::npos);  // one response only
  BOOST_TEST(s.req("GET", "/v1/jobs").j()["jobs"].size() == 0u);  // the pipelined POST never ran
}

BOOST_AUTO_TEST_CASE(pipelined_requests_are_answered_in_order) {
  Server s;
  std::string r = raw_exchange(s.sock,
                               "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n"
                               "GET /v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                               3000);
  size_t a = r.find("HTTP/1.1 200"), b = r.find("HTTP/1.1 404"), c = r.find("HTTP/1.1 200", a + 1);
  BOOST_TEST(a == 0u);
  BOOST_TEST(b != std::string::npos);
  BOOST_TEST(c != std::string::npos);
  BOOST_TEST((a < b && b < c));
}

BOOST_AUTO_TEST_CASE(a_wait_timeout_must_be_a_finite_number) {
  Server s;
  std::string id = s.req("POST", "/v1/jobs", job("returns")).j()["id"];
  BOOST_TEST(s.req("GET", "/v1/jobs/" + id + "/wait?timeout_ms=nan").code == 400);
  BOOST_TEST(s.req("GET", "/v1/jobs/" + id + "/wait?timeout_ms=-1").code == 400);
  BOOST_TEST(s.req("GET", "/v1/jobs/" + id + "/wait?timeout_ms=10000").j()["state"] == "done");
}

// ---- issue 15: the host side -----------------------------------------------------------

namespace {

// `serve` with this config: its exit code and what it printed (it should refuse to start).
wjt::ProcResult serve_refusing(const std::string& dir, const std::string& config) {
  wjt::write_file(dir + "/refuse.yaml", config);
  return wjt::run({wjt::binary(), "serve", "--config", dir + "/refuse.yaml", "--listen", "unix:" + dir + "/r.sock"}, {},
                  30);
}

}  // namespace

// The output root belongs to the server: a planted one (another user's, writable by
// others, or a symlink) is refused; a missing one is created 0700.
BOOST_AUTO_TEST_CASE(an_output_root_the_server_does_not_own_is_refused) {
  std::string dir = wjt::temp_dir();
  std::string root = dir + "/planted";
  mkdir(root.c_str(), 0700);
  BOOST_REQUIRE(chown(root.c_str(), 65534, 65534) == 0);
  auto r = serve_refusing(dir, "output_root: " + root + "\n");
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err.find("output_root " + root + " is owned by uid 65534, not by this user") != std::string::npos);
  BOOST_REQUIRE(chown(root.c_str(), 0, 0) == 0);
  chmod(root.c_str(), 0777);
  r = serve_refusing(dir, "output_root: " + root + "\n");
  BOOST_TEST(r.err.find("output_root " + root + " has mode 0777: others may write it") != std::string::npos);
  std::string link = dir + "/link";
  BOOST_REQUIRE(symlink("/etc", link.c_str()) == 0);
  r = serve_refusing(dir, "output_root: " + link + "\n");
  BOOST_TEST(r.err.find("output_root " + link + " is a symlink") != std::string::npos);
  // Missing: created, private.
  Server s;
  struct stat st{};
  BOOST_REQUIRE(stat((s.dir + "/outputs").c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == 0700u);
}

// The reproduced attack: a queued job's ROOT/<id> replaced by a symlink to a host folder.
// The job folder is made with mkdirat beneath the root's fd: the job fails, the folder
// outside is untouched, and the server goes on serving.
BOOST_AUTO_TEST_CASE(a_planted_job_folder_is_never_mounted) {
  Server s("concurrency: 1\n");
  std::string outside = wjt::temp_dir();
  wjt::write_file(outside + "/keep.txt", "host file\n");
  std::string first = s.req("POST", "/v1/jobs", job("loop")).j()["id"];
  BOOST_REQUIRE(wait_for([&] { return s.req("GET", "/v1/jobs/" + first).j()["state"] == "running"; }));
  std::string with_out = R"(, "outputs": [{"name": "out", "path": "/out"}])";
  std::string queued = s.req("POST", "/v1/jobs", job("hello", with_out)).j()["id"];
  BOOST_REQUIRE(symlink(outside.c_str(), (s.dir + "/outputs/" + queued).c_str()) == 0);
  s.req("DELETE", "/v1/jobs/" + first);
  Resp r = s.req("GET", "/v1/jobs/" + queued + "/wait?timeout_ms=20000");
  BOOST_TEST(r.j()["result"]["status"] == "invalid_job");
  BOOST_TEST(r.j()["result"]["error"].get<std::string>().find("outputs: job folder " + s.dir + "/outputs/" + queued) !=
             std::string::npos);
  BOOST_TEST(fs::is_symlink(s.dir + "/outputs/" + queued));
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(outside)) names.push_back(e.path().filename().string());
  BOOST_TEST(names == std::vector<std::string>{"keep.txt"});
  BOOST_TEST(wjt::read_file(outside + "/keep.txt") == "host file\n");
  // Still serving; a normal job's folder is private.
  r = s.req("POST", "/v1/run", job("hello", with_out));
  BOOST_TEST(r.j()["result"]["status"] == "ok");
  struct stat st{};
  BOOST_REQUIRE(stat((s.dir + "/outputs/" + r.j()["id"].get<std::string>()).c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == 0700u);
}

// No NUL or control character in any job-spec string: invalid_job naming the field.
BOOST_AUTO_TEST_CASE(control_characters_in_job_strings_are_refused) {
  Server s;
  Resp r = s.req("POST", "/v1/jobs", job("hello", R"(, "outputs": [{"name": "\u0000", "path": "/out"}])"));
  BOOST_TEST(r.code == 400);
  BOOST_TEST(r.j()["error"]["code"] == "invalid_job");
  BOOST_TEST(r.j()["error"]["message"].get<std::string>().find(
                 "outputs[0].name contains a control character (0x00) at byte 0 (a NUL)") != std::string::npos);
  r = s.req("POST", "/v1/jobs", job("hello", R"(, "entry_point": "_st\u001bart")"));
  BOOST_TEST(r.code == 400);
  BOOST_TEST(r.j()["error"]["message"].get<std::string>().find("entry_point contains a control character (0x1b)") !=
             std::string::npos);
  r = s.req("POST", "/v1/jobs", job("hello", R"(, "environment_variables": {"A\nB": "x"})"));
  BOOST_TEST(r.code == 400);
  BOOST_TEST(r.j()["error"]["message"].get<std::string>().find("environment_variables: a name contains a control "
                                                               "character (0x0a)") != std::string::npos);
  BOOST_TEST(s.req("POST", "/v1/run", job("hello")).j()["result"]["status"] == "ok");
}

// Local sources are opened beneath the roots when used: a file swapped for a symlink
// after submission is not read from outside, and a FIFO neither hangs the job nor keeps
// other jobs from starting.
BOOST_AUTO_TEST_CASE(local_sources_are_opened_beneath_the_roots_when_used) {
  std::string roots = wjt::temp_dir(), outside = wjt::temp_dir();
  fs::copy_file(wjt::guest("hello"), roots + "/m.wasm");
  fs::copy_file(wjt::guest("hello"), outside + "/secret.wasm");  // would run if it were read
  BOOST_REQUIRE(mkfifo((roots + "/fifo.wasm").c_str(), 0600) == 0);
  Server s("concurrency: 1\nlocal_roots: [" + roots + "]\n");
  auto local = [](const std::string& p) { return R"({"entry_module": {"source_path": ")" + p + R"("}})"; };
  std::string first = s.req("POST", "/v1/jobs", job("loop")).j()["id"];
  BOOST_REQUIRE(wait_for([&] { return s.req("GET", "/v1/jobs/" + first).j()["state"] == "running"; }));
  std::string swapped = s.req("POST", "/v1/jobs", local(roots + "/m.wasm")).j()["id"];
  std::string fifo = s.req("POST", "/v1/jobs", local(roots + "/fifo.wasm")).j()["id"];
  std::string after = s.req("POST", "/v1/jobs", local(roots + "/hello.wasm")).j()["id"];
  fs::copy_file(wjt::guest("hello"), roots + "/hello.wasm");
  fs::remove(roots + "/m.wasm");
  BOOST_REQUIRE(symlink((outside + "/secret.wasm").c_str(), (roots + "/m.wasm").c_str()) == 0);
  s.req("DELETE", "/v1/jobs/" + first);
  Resp r = s.req("GET", "/v1/jobs/" + swapped + "/wait?timeout_ms=20000");
  BOOST_TEST(r.j()["result"]["status"] == "invalid_job");
  BOOST_TEST(r.j()["result"]["error"] == "entry_module: " + roots +
                                             "/m.wasm leads outside the server's local_roots (through a symlink); it "
                                             "was not opened");
  r = s.req("GET", "/v1/jobs/" + fifo + "/wait?timeout_ms=20000");
  BOOST_TEST(r.j()["result"]["status"] == "invalid_job");
  BOOST_TEST(r.j()["result"]["error"] == "entry_module: " + roots +
                                             "/fifo.wasm is a FIFO; only regular files and folders can be sources");
  r = s.req("GET", "/v1/jobs/" + after + "/wait?timeout_ms=20000");
  BOOST_TEST(r.j()["result"]["status"] == "ok");
  BOOST_TEST(r.j()["result"]["stdout"] == "Hello from wasmjail!\n");
}

namespace {

// The loopback HTTP server of tests/http_fixture.py (/hang never answers).
struct HttpFixture {
  pid_t pid = -1;
  int to_child = -1, from_child = -1;
  int port = 0;
  explicit HttpFixture(const std::string& root) {
    int in[2], out[2];
    BOOST_REQUIRE(pipe(in) == 0 && pipe(out) == 0);
    pid = fork();
    if (pid == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      close(in[1]);
      close(out[0]);
      execl("/usr/bin/python3", "python3", WJ_SOURCE_DIR "/tests/http_fixture.py", root.c_str(), nullptr);
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_child = in[1];
    from_child = out[0];
    std::string line;
    char c;
    while (line.size() < 16 && read(from_child, &c, 1) == 1 && c != '\n') line += c;
    port = std::atoi(line.c_str());
    BOOST_REQUIRE(port > 0);
  }
  ~HttpFixture() {
    close(to_child);  // the fixture exits when its stdin closes
    close(from_child);
    int st;
    waitpid(pid, &st, 0);
  }
};

}  // namespace

// A preparation stuck on a download that never answers keeps neither the jobs behind it
// from starting nor DELETE and SIGTERM from working.
BOOST_AUTO_TEST_CASE(a_stuck_preparation_does_not_wedge_the_server) {
  std::string pdir = wjt::temp_dir();
  wjt::write_file(pdir + "/dl.yaml", "extends: default\nname: dl\nfetch:\n  url_download: true\n  allowed_hosts: [127.0.0.1]\n  timeout: 60s\n");
  HttpFixture http(pdir);
  Server s("concurrency: 2\ndrain_timeout: 2s\npolicy_dirs: [" + pdir + "]\nallowed_policies: [default, dl]\n");
  std::string hang = "http://127.0.0.1:" + std::to_string(http.port) + "/hang";
  std::string stuck = s.req("POST", "/v1/jobs?policy=dl", R"({"entry_module": {"url": ")" + hang + R"("}})").j()["id"];
  BOOST_REQUIRE(wait_for([&] { return s.req("GET", "/v1/jobs/" + stuck).j()["state"] == "running"; }));
  auto t0 = std::chrono::steady_clock::now();
  Resp r = s.req("POST", "/v1/run", job("hello"));
  BOOST_TEST(r.j()["result"]["status"] == "ok");
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20)));  // not the download's 60 s
  BOOST_TEST(s.req("DELETE", "/v1/jobs/" + stuck).code == 202);
  r = s.req("GET", "/v1/jobs/" + stuck + "/wait?timeout_ms=5000");
  BOOST_TEST(r.j()["state"] == "done");
  BOOST_TEST(r.j()["result"]["status"] == "cancelled");
  // Another stuck one, then SIGTERM: after drain_timeout it is cancelled, its download
  // aborted, and the server exits well before the download's own timeout.
  s.req("POST", "/v1/jobs?policy=dl", R"({"entry_module": {"url": ")" + hang + R"("}})");
  t0 = std::chrono::steady_clock::now();
  kill(s.pid, SIGTERM);
  int st = 0;
  BOOST_TEST(waitpid(s.pid, &st, 0) == s.pid);
  s.pid = -1;
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20)));
  BOOST_TEST(WIFEXITED(st));
}
