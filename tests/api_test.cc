// The operator-facing API features of `wasmjail serve`: the OpenAPI document it serves,
// Idempotency-Key, signed callbacks (checked by a loopback receiver that verifies the
// Standard Webhooks signature on its own), and Bacalhau jobs through the API. Every response
// is recorded for tests/openapi_check.py (the ctest openapi_contract).
#include <boost/test/unit_test.hpp>

#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "tests/testlib.h"

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct Resp {
  long code = 0;
  std::string body, headers;
  json j() const { return json::parse(body, nullptr, false); }
};

size_t collect(char* p, size_t s, size_t n, void* u) {
  static_cast<std::string*>(u)->append(p, s * n);
  return s * n;
}

bool wait_for(const std::function<bool()>& cond, int ms = 20000) {
  for (int i = 0; i < ms / 10; ++i) {
    if (cond()) return true;
    usleep(10000);
  }
  return cond();
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

struct Server {
  std::string dir, sock, log_path;
  pid_t pid = -1;
  explicit Server(const std::string& extra_config = "", const std::vector<std::string>& extra_args = {}) {
    dir = wjt::temp_dir();
    sock = dir + "/wasmjail.sock";
    log_path = dir + "/server.log";
    wjt::write_file(dir + "/server.yaml", "output_root: " + dir + "/outputs\n" + extra_config);
    std::vector<std::string> argv = {wjt::binary(),        "serve",    "--config",
                                     dir + "/server.yaml", "--listen", "unix:" + sock};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    pid = fork();
    if (pid == 0) {
      int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 2);
      dup2(fd, 1);
      std::vector<char*> a;
      for (auto& s : argv) a.push_back(s.data());
      a.push_back(nullptr);
      execv(a[0], a.data());
      _exit(127);
    }
    wait_for([&] { return access(sock.c_str(), F_OK) == 0; }, 5000);
    BOOST_REQUIRE_MESSAGE(access(sock.c_str(), F_OK) == 0, "server did not start: " + log());
  }
  ~Server() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string log() const { return wjt::read_file(log_path); }
  Resp req(const std::string& method, const std::string& path, const std::string& body = "",
           const std::vector<std::string>& headers = {}, const std::string& tcp_url = "") const {
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
    for (const auto& h : headers) hs = curl_slist_append(hs, h.c_str());
    hs = curl_slist_append(hs, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (method == "POST") {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
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
};

// tests/webhook_receiver.py: a loopback receiver that verifies each callback's signature.
struct Receiver {
  pid_t pid = -1;
  int to_child = -1, from_child = -1;
  int port = 0;
  std::string buf;
  std::vector<json> got;
  explicit Receiver(const std::string& secret) {
    int in[2], out[2];
    BOOST_REQUIRE(pipe(in) == 0 && pipe(out) == 0);
    pid = fork();
    if (pid == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      close(in[1]);
      close(out[0]);
      execl("/usr/bin/python3", "python3", WJ_SOURCE_DIR "/tests/webhook_receiver.py", secret.c_str(),
            nullptr);
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_child = in[1];
    from_child = out[0];
    fcntl(from_child, F_SETFL, O_NONBLOCK);
    BOOST_REQUIRE(wait_for(
        [&] {
          pump();
          return buf.find('\n') != std::string::npos || port > 0;
        },
        10000));
  }
  ~Receiver() {
    close(to_child);  // the receiver stops when its stdin closes
    waitpid(pid, nullptr, 0);
    close(from_child);
  }
  void pump() {
    char b[65536];
    ssize_t n;
    while ((n = read(from_child, b, sizeof b)) > 0) buf.append(b, static_cast<size_t>(n));
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (port == 0) {
        port = std::stoi(line);
      } else {
        got.push_back(json::parse(line));
        json cb = got.back();
        wjt::record_api_response("CALLBACK", cb["path"], 200, cb["content_type"], cb["body"]);
      }
    }
  }
  bool wait_requests(size_t n, int ms = 30000) {
    return wait_for(
        [&] {
          pump();
          return got.size() >= n;
        },
        ms);
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port) + path; }
};

std::string data_url(const std::string& guest) {
  return "data:application/wasm;base64," + wjt::run({"/usr/bin/base64", "-w0", wjt::guest(guest)}).out;
}

std::string job(const std::string& guest, const std::string& extra = "") {
  return R"({"entry_module": {"url": ")" + data_url(guest) + R"("})" + extra + "}";
}

std::string metric(const std::string& text, const std::string& name) {
  auto at = text.find("\n" + name + " ");
  if (at == std::string::npos) return "";
  at += name.size() + 2;
  return text.substr(at, text.find('\n', at) - at);
}

// A Standard Webhooks secret: whsec_ + base64 of a 32-byte key.
const std::string kSecret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

}  // namespace

BOOST_AUTO_TEST_CASE(the_openapi_document_is_served_and_matches_the_tree) {
  Server s;
  Resp r = s.req("GET", "/v1/openapi.json");
  BOOST_TEST(r.code == 200);
  json served = r.j();
  BOOST_TEST(served["openapi"] == "3.1.0");
  for (const char* p : {"/v1/jobs", "/v1/jobs/{id}", "/v1/jobs/{id}/wait", "/v1/jobs/{id}/logs", "/v1/run",
                        "/healthz", "/metrics", "/v1/openapi.json"})
    BOOST_TEST(served["paths"].contains(p), p);
  BOOST_TEST(served == json::parse(wjt::read_file(WJ_SOURCE_DIR "/server/openapi.json")));
  BOOST_TEST(s.req("POST", "/v1/openapi.json", "{}").code == 405);
}

BOOST_AUTO_TEST_CASE(idempotency_key_same_request_same_job_per_client) {
  std::string dir = wjt::temp_dir();
  wjt::write_file(dir + "/token", "0123456789abcdef-secret\n");
  int port = free_port();
  Server s("token_file: " + dir + "/token\n", {"--listen", "tcp:127.0.0.1:" + std::to_string(port)});
  const std::string body = job("hello", R"(, "parameters": ["idem"])");
  Resp a = s.req("POST", "/v1/jobs", body, {"Idempotency-Key: key-1"});
  BOOST_TEST(a.code == 202);
  Resp b = s.req("POST", "/v1/jobs", body, {"Idempotency-Key: key-1"});
  BOOST_TEST(b.code == 202);
  BOOST_TEST(a.j()["id"] == b.j()["id"]);
  BOOST_TEST(b.headers.find("Idempotent-Replayed: true") != std::string::npos);
  BOOST_TEST(a.headers.find("Idempotent-Replayed") == std::string::npos);
  // The same key with another body: 422, naming the job it was used for.
  Resp c =
      s.req("POST", "/v1/jobs", job("hello", R"(, "parameters": ["other"])"), {"Idempotency-Key: key-1"});
  BOOST_TEST(c.code == 422);
  BOOST_TEST(c.j()["error"]["code"] == "idempotency_key_reused");
  BOOST_TEST(c.j()["error"]["message"].get<std::string>().find(a.j()["id"].get<std::string>()) !=
             std::string::npos);
  // Same key on the other endpoint is a different request too.
  BOOST_TEST(s.req("POST", "/v1/run", body, {"Idempotency-Key: key-1"}).code == 422);
  // Another key: another job. No key: another job each time.
  Resp d = s.req("POST", "/v1/jobs", body, {"Idempotency-Key: key-2"});
  BOOST_TEST(d.j()["id"] != a.j()["id"]);
  BOOST_TEST(s.req("POST", "/v1/jobs", body).j()["id"] != s.req("POST", "/v1/jobs", body).j()["id"]);
  // /v1/run: the replay answers with the same finished job.
  Resp r1 = s.req("POST", "/v1/run", body, {"Idempotency-Key: run-1"});
  Resp r2 = s.req("POST", "/v1/run", body, {"Idempotency-Key: run-1"});
  BOOST_TEST(r1.code == 200);
  BOOST_TEST(r2.code == 200);
  BOOST_TEST(r1.j()["id"] == r2.j()["id"]);
  BOOST_TEST(r2.j()["result"]["stdout"] == "Hello, idem!\n");
  // Keys are per client: the TCP client (bearer token) using key-1 gets its own job.
  std::string url = "http://127.0.0.1:" + std::to_string(port);
  BOOST_REQUIRE(wait_for([&] { return s.req("GET", "/healthz", "", {}, url).code != 0; }));
  Resp t = s.req("POST", "/v1/jobs", body,
                 {"Idempotency-Key: key-1", "Authorization: Bearer 0123456789abcdef-secret"}, url);
  BOOST_TEST(t.code == 202);
  BOOST_TEST(t.j()["id"] != a.j()["id"]);
  // A bad key is a 400; a refused submission is not remembered.
  BOOST_TEST(s.req("POST", "/v1/jobs", body, {"Idempotency-Key: " + std::string(300, 'k')}).code == 400);
  BOOST_TEST(s.req("POST", "/v1/jobs", "{\"nope\": 1}", {"Idempotency-Key: key-3"}).code == 400);
  BOOST_TEST(s.req("POST", "/v1/jobs", body, {"Idempotency-Key: key-3"}).code == 202);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

BOOST_AUTO_TEST_CASE(idempotency_keys_are_forgotten_with_their_job) {
  Server s("result_retention: 1\nconcurrency: 1\n");
  const std::string body = job("hello");
  Resp a = s.req("POST", "/v1/run", body, {"Idempotency-Key: k"});
  BOOST_TEST(a.code == 200);
  // Another job pushes the first out of retention; its key then names nothing.
  BOOST_TEST(s.req("POST", "/v1/run", body).code == 200);
  BOOST_TEST(s.req("GET", "/v1/jobs/" + a.j()["id"].get<std::string>()).code == 404);
  Resp b = s.req("POST", "/v1/run", job("hello", R"(, "parameters": ["new"])"), {"Idempotency-Key: k"});
  BOOST_TEST(b.code == 200);
  BOOST_TEST(b.j()["id"] != a.j()["id"]);
}

BOOST_AUTO_TEST_CASE(a_callback_delivers_the_finished_job_signed) {
  std::string dir = wjt::temp_dir();
  wjt::write_file(dir + "/secret", kSecret + "\n");
  Receiver rx(kSecret);
  Server s("callbacks:\n  secret_file: " + dir + "/secret\n  allowed_hosts: [\"127.0.0.1:" +
           std::to_string(rx.port) + "\"]\n  max_attempts: 3\n  backoff: 100ms\n");
  Resp r = s.req("POST", "/v1/jobs",
                 job("hello", R"(, "parameters": ["cb"], "callback_url": ")" + rx.url("/ok") + "\""));
  BOOST_REQUIRE(r.code == 202);
  const std::string id = r.j()["id"];
  BOOST_REQUIRE_MESSAGE(rx.wait_requests(1), "no callback arrived: " + s.log());
  json got = rx.got[0];
  BOOST_TEST(got["verified"] == true, got["why"]);
  BOOST_TEST(got["headers"]["webhook-id"] == "msg_" + id);
  BOOST_TEST(got["content_type"] == "application/json");
  json body = json::parse(got["body"].get<std::string>());
  BOOST_TEST(body["id"] == id);
  BOOST_TEST(body["state"] == "done");
  BOOST_TEST(body["result"]["stdout"] == "Hello, cb!\n");
  // The same JSON as GET /v1/jobs/{id}.
  BOOST_TEST(body == s.req("GET", "/v1/jobs/" + id).j());

  // An envelope's callback_url; a receiver failing twice gets the third attempt.
  r = s.req("POST", "/v1/run",
            R"({"job": )" + job("hello") + R"(, "callback_url": ")" + rx.url("/fail-2") + "\"}");
  BOOST_TEST(r.code == 200);
  BOOST_REQUIRE(rx.wait_requests(4));
  BOOST_TEST(rx.got[3]["attempt"] == 3);
  BOOST_TEST(rx.got[3]["verified"] == true);
  BOOST_TEST(rx.got[1]["headers"]["webhook-id"] == rx.got[3]["headers"]["webhook-id"]);  // same id on retry
  // A redirect is not followed: three attempts at /redirect, none at its target, then given up.
  r = s.req("POST", "/v1/jobs", job("hello", R"(, "callback_url": ")" + rx.url("/redirect") + "\""));
  BOOST_TEST(r.code == 202);
  BOOST_REQUIRE(rx.wait_requests(7));
  BOOST_REQUIRE(wait_for([&] { return s.log().find("\"event\":\"callback_failed\"") != std::string::npos; }));
  usleep(300000);
  rx.pump();
  BOOST_TEST(rx.got.size() == 7u);
  for (size_t i = 4; i < rx.got.size(); ++i) BOOST_TEST(rx.got[i]["path"] == "/redirect");
  std::string m = s.req("GET", "/metrics").body;
  BOOST_TEST(metric(m, "wasmjail_callbacks_total{outcome=\"delivered\"}") == "2");
  BOOST_TEST(metric(m, "wasmjail_callbacks_total{outcome=\"failed\"}") == "1");
  BOOST_TEST(metric(m, "wasmjail_callback_attempts_failed_total") == "5");
  BOOST_TEST(s.log().find("302 (redirects are not followed)") != std::string::npos);

  // Only allowed hosts, only http(s).
  r = s.req("POST", "/v1/jobs",
            job("hello", R"(, "callback_url": "http://127.0.0.2:)" + std::to_string(rx.port) + "/ok\""));
  BOOST_TEST(r.code == 400);
  BOOST_TEST(r.j()["error"]["code"] == "invalid_callback");
  BOOST_TEST(r.j()["error"]["message"].get<std::string>().find(
                 "127.0.0.2:" + std::to_string(rx.port) +
                 " is not in the server's callbacks.allowed_hosts") != std::string::npos);
  r = s.req("POST", "/v1/jobs", job("hello", R"(, "callback_url": "ftp://127.0.0.1/x")"));
  BOOST_TEST(r.j()["error"]["code"] == "invalid_callback");
  std::error_code ec;
  fs::remove_all(dir, ec);
}

BOOST_AUTO_TEST_CASE(callbacks_need_a_secret) {
  Server s;
  Resp r = s.req("POST", "/v1/jobs", job("hello", R"(, "callback_url": "http://127.0.0.1:9/x")"));
  BOOST_TEST(r.code == 400);
  BOOST_TEST(r.j()["error"]["message"].get<std::string>().find("callbacks are not enabled") !=
             std::string::npos);
  // A malformed secret stops the server from starting.
  std::string dir = wjt::temp_dir();
  wjt::write_file(dir + "/secret", "not-a-secret\n");
  wjt::write_file(dir + "/server.yaml",
                  "callbacks: {secret_file: " + dir + "/secret, allowed_hosts: [\"a:1\"]}\n");
  auto p = wjt::run(
      {wjt::binary(), "serve", "--config", dir + "/server.yaml", "--listen", "unix:" + dir + "/s.sock"});
  BOOST_TEST(p.exit_code == 2);
  BOOST_TEST(p.err.find("must hold a Standard Webhooks secret: whsec_<base64 key>") != std::string::npos);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

BOOST_AUTO_TEST_CASE(bacalhau_jobs_through_the_api) {
  Server s;
  const std::string url = data_url("exit_code");
  Resp r = s.req("POST", "/v1/run",
                 R"({"Type": "batch", "Tasks": [{"Engine": {"Type": "wasm", "Params": {
    "EntryModule": {"Source": {"Type": "inline", "Params": {"URL": ")" +
                     url + R"("}}}, "Parameters": ["-1"]}},
    "ResultPaths": [{"Name": "out", "Path": "/outputs"}], "Publisher": {"Type": "ipfs"},
    "Timeouts": {"ExecutionTimeout": 30}}]})");
  BOOST_TEST(r.code == 200);
  json res = r.j()["result"];
  BOOST_TEST(res["status"] == "ok");
  BOOST_TEST(res["exit_code"] == 4294967295ll);
  BOOST_TEST(res["publishing"]["requested"]["out"] == "ipfs");
  BOOST_TEST(fs::is_directory(res["outputs"]["out"].get<std::string>()));
  r = s.req("POST", "/v1/run",
            R"({"APIVersion": "V1beta1", "Spec": {"Engine": "Wasm",
    "Wasm": {"EntryModule": {"StorageSource": "inline", "URL": ")" +
                url + R"("}, "Parameters": ["7"]},
    "outputs": [{"StorageSource": "IPFS", "Name": "outputs", "Path": "/outputs"}]}})");
  BOOST_TEST(r.code == 200);
  BOOST_TEST(r.j()["result"]["exit_code"] == 7);
  BOOST_TEST(r.j()["result"]["publishing"]["published"] == false);
  r = s.req("POST", "/v1/jobs", R"({"Type": "batch", "Tasks": [{"Engine": {"Type": "wasm", "Params": {
    "EntryModule": {"Source": {"Type": "s3", "Params": {}}}}}}]})");
  BOOST_TEST(r.code == 400);
  BOOST_TEST(r.j()["error"]["message"].get<std::string>().find("Source.Type \"s3\" is not served") !=
             std::string::npos);
}
