// server/ in-process: the token file, text-log escaping, routing, and the HTTP connection's
// identity and buffer budget over socketpairs (no job runs here; serve_hardening_test
// attacks a real server).
#include <boost/test/unit_test.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "server/api.h"
#include "server/http_server.h"
#include "server/route.h"
#include "tests/testlib.h"

namespace fs = std::filesystem;

using wjt::TempDir;

namespace {

std::string load_error(const std::string& text, std::vector<wj::ApiToken>* tokens = nullptr) {
  TempDir d;
  wjt::write_file(d.path + "/tokens", text);
  std::vector<wj::ApiToken> t;
  auto e = wj::load_token_file(d.path + "/tokens", &t);
  if (tokens) *tokens = t;
  if (!e) return "";
  // Messages name the file: keep the part after it.
  return e->substr(e->find("/tokens") + 7);
}

}  // namespace

BOOST_AUTO_TEST_CASE(token_files_hold_one_bare_token_or_several_named_ones) {
  std::vector<wj::ApiToken> t;
  BOOST_TEST(load_error("0123456789abcdef-secret\n", &t) == "");
  BOOST_REQUIRE(t.size() == 1u);
  BOOST_TEST(t[0].name == "default");
  BOOST_TEST(t[0].token == "0123456789abcdef-secret");
  BOOST_TEST(!t[0].admin);
  BOOST_TEST(
      load_error("# who  token  role\n\nalice 0123456789abcdef-alice\nops 0123456789abcdef-ops admin\n",
                 &t) == "");
  BOOST_REQUIRE(t.size() == 2u);
  BOOST_TEST(t[0].name == "alice");
  BOOST_TEST(!t[0].admin);
  BOOST_TEST(t[1].name == "ops");
  BOOST_TEST(t[1].admin);
  BOOST_TEST(load_error("alice short\n") == ":1: the token must be at least 16 characters");
  BOOST_TEST(load_error("alice 0123456789abcdef-a\nalice 0123456789abcdef-b\n") ==
             ":2: the name \"alice\" is used twice");
  BOOST_TEST(load_error("a 0123456789abcdef-a\nb 0123456789abcdef-a\n") ==
             ":2: the same token is listed twice");
  BOOST_TEST(load_error("a 0123456789abcdef-a root\n") ==
             ":1: expected \"NAME TOKEN\" or \"NAME TOKEN admin\"");
  BOOST_TEST(load_error("0123456789abcdef-a\nb 0123456789abcdef-b\n") ==
             ":1: a bare token (no name) is allowed only as the file's single entry");
  BOOST_TEST(load_error("a/b 0123456789abcdef-a\n") ==
             ":1: a token name may hold only letters, digits, '-', '_' and '.'");
  BOOST_TEST(load_error("# nothing\n") == " holds no token");
  // Whoever could write it could add an admin token.
  TempDir d;
  wjt::write_file(d.path + "/tokens", "ops 0123456789abcdef-ops admin\n");
  chmod((d.path + "/tokens").c_str(), 0666);
  auto e = wj::load_token_file(d.path + "/tokens", &t);
  BOOST_REQUIRE(e);
  BOOST_TEST(e->find("is writable by group or others") != std::string::npos, *e);
  chmod((d.path + "/tokens").c_str(), 0644);
  std::string warning;
  BOOST_TEST(!wj::load_token_file(d.path + "/tokens", &t, &warning));
  BOOST_TEST(warning.find("is readable by every local user") != std::string::npos, warning);
  chmod((d.path + "/tokens").c_str(), 0600);
  warning.clear();
  BOOST_TEST(!wj::load_token_file(d.path + "/tokens", &t, &warning));
  BOOST_TEST(warning.empty());
  BOOST_TEST(wj::load_token_file(d.path, &t)->find("is not a regular file") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(text_log_values_cannot_start_a_line_or_pass_for_another_field) {
  BOOST_TEST(wj::log_text_value("j0123") == "j0123");
  BOOST_TEST(wj::log_text_value("") == "\"\"");
  BOOST_TEST(wj::log_text_value("a b") == "\"a b\"");
  BOOST_TEST(wj::log_text_value("x status=ok") == "\"x status=ok\"");
  BOOST_TEST(wj::log_text_value("say \"hi\"\\") == "\"say \\\"hi\\\"\\\\\"");
  BOOST_TEST(wj::log_text_value("a\nb\rc\td\x1b[31m\x7f") == "\"a\\nb\\rc\\td\\x1b[31m\\x7f\"");
  BOOST_TEST(wj::log_text_value("\xc2\x85 next line, caf\xc3\xa9") == "\"\\u0085 next line, caf\xc3\xa9\"");
  wj::ServerLog text(false);
  std::string forged =
      "export \"x\n2026-01-01T00:00:00.000Z job_finished job=jforged status=ok\" is not exported";
  std::string line = text.format("2026-01-01T00:00:00.000Z", "job_finished",
                                 {{"job", "j1"}, {"status", "setup_error"}, {"error", forged}});
  BOOST_TEST(line ==
             "2026-01-01T00:00:00.000Z job_finished job=j1 status=setup_error error=\"export "
             "\\\"x\\n2026-01-01T00:00:00.000Z "
             "job_finished job=jforged status=ok\\\" is not exported\"\n");
  BOOST_TEST(std::count(line.begin(), line.end(), '\n') == 1);
  wj::ServerLog json(true);
  line = json.format("2026-01-01T00:00:00.000Z", "job_finished", {{"error", forged + "\xff"}});
  BOOST_TEST(std::count(line.begin(), line.end(), '\n') == 1);
  auto j = nlohmann::json::parse(line);
  BOOST_TEST(j["error"].get<std::string>().rfind(forged, 0) == 0u);
}

BOOST_AUTO_TEST_CASE(routing_names_endpoints_and_refuses_odd_ids) {
  using wj::Route;
  BOOST_TEST(wj::route_request("GET", "/healthz").endpoint == Route::kHealth);
  BOOST_TEST(wj::route_request("POST", "/v1/jobs").endpoint == Route::kSubmit);
  BOOST_TEST(wj::route_request("GET", "/v1/jobs").endpoint == Route::kList);
  Route r = wj::route_request("GET", "/v1/jobs/j0123/wait");
  BOOST_TEST(r.endpoint == Route::kWaitJob);
  BOOST_TEST(r.job_id == "j0123");
  BOOST_TEST(wj::route_request("DELETE", "/v1/jobs/j0123").endpoint == Route::kCancelJob);
  r = wj::route_request("POST", "/v1/jobs/j0123/logs");
  BOOST_TEST(r.status == 405);
  BOOST_TEST(r.job_id == "j0123");  // the job is checked first: 404 when not the client's
  r = wj::route_request("GET", "/v1/jobs/../etc");
  BOOST_TEST(r.status == 404);
  BOOST_TEST(r.job_id.empty());
  BOOST_TEST(wj::route_request("GET", std::string("/v1/jobs/j\n1")).status == 404);
  BOOST_TEST(wj::route_request("GET", "/v1/jobs/j1/other").status == 404);
  BOOST_TEST(wj::route_request("PUT", "/v1/jobs").status == 405);
  BOOST_TEST(wj::route_request("GET", "/v2").status == 404);
}

namespace {

// One adopted socketpair connection on a private loop; requests are answered with the
// client identity the server saw.
struct Harness {
  uv_loop_t loop;
  std::unique_ptr<wj::HttpServer> server;
  std::vector<int> client_fds;
  std::vector<std::shared_ptr<wj::HttpExchange>> held;  // answered later (bodies stay charged)
  bool hold = false;
  std::function<void(const std::shared_ptr<wj::HttpExchange>&)> custom;  // answers instead, when set
  explicit Harness(wj::HttpLimits limits = {}) {
    uv_loop_init(&loop);
    server =
        std::make_unique<wj::HttpServer>(&loop, limits, [this](const std::shared_ptr<wj::HttpExchange>& ex) {
          if (custom) return custom(ex);
          if (hold) return held.push_back(ex);
          const auto& c = ex->client();
          ex->respond(
              200, "text/plain",
              c.owner + (c.admin ? " admin" : "") + " body=" + std::to_string(ex->request().body.size()));
        });
  }
  int connect(std::vector<wj::ApiToken> tokens = {}) {
    int sv[2];
    BOOST_REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    BOOST_REQUIRE(!server->adopt(sv[0], std::move(tokens)));
    client_fds.push_back(sv[1]);
    return sv[1];
  }
  // Writes `req` and runs the loop until `until` bytes of answer (or EOF, or 2 s).
  std::string exchange(int fd, const std::string& req, bool answered = true) {
    (void)!write(fd, req.data(), req.size());
    std::string out;
    for (int i = 0; i < (answered ? 400 : 20); ++i) {
      uv_run(&loop, UV_RUN_NOWAIT);
      char buf[4096];
      ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0)
        out.append(buf, static_cast<size_t>(n));
      else if (n == 0)
        break;
      else if (!out.empty() && out.find("\r\n\r\n") != std::string::npos) {
        auto cl = out.find("Content-Length: ");
        if (cl != std::string::npos &&
            out.size() >= out.find("\r\n\r\n") + 4 + std::stoul(out.substr(cl + 16)))
          break;
      }
      usleep(5000);
    }
    return out;
  }
  ~Harness() {
    held.clear();
    for (int fd : client_fds) close(fd);
    bool done = false;
    server->close_all([&] { done = true; });
    for (int i = 0; i < 1000 && !done; ++i) uv_run(&loop, UV_RUN_NOWAIT);
    server.reset();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(the_wait_timeout_is_a_finite_number_of_milliseconds_within_the_maximum) {
  using Q = std::map<std::string, std::string>;
  BOOST_TEST(wj::wait_timeout_ms(Q{}, 60000).value() == 30000);
  BOOST_TEST(wj::wait_timeout_ms(Q{{"timeout_ms", "0"}}, 60000).value() == 0);
  BOOST_TEST(wj::wait_timeout_ms(Q{{"timeout_ms", "1500.5"}}, 60000).value() == 1500.5);
  BOOST_TEST(wj::wait_timeout_ms(Q{{"timeout_ms", "60000"}}, 60000).value() == 60000);
  for (const char* bad : {"", "-1", "60001", "nan", "inf", "1e400", "12ms", " 5", "0x10z"})
    BOOST_TEST(!wj::wait_timeout_ms(Q{{"timeout_ms", bad}}, 60000), bad);
}

BOOST_AUTO_TEST_CASE(a_unix_client_is_its_uid_and_a_tcp_style_client_its_token) {
  Harness h;
  std::string r = h.exchange(h.connect(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  BOOST_TEST(r.find("\r\n\r\nuid:" + std::to_string(getuid()) + " admin body=0") != std::string::npos, r);
  std::vector<wj::ApiToken> tokens = {{"alice", "0123456789abcdef-alice", false},
                                      {"ops", "0123456789abcdef-ops", true}};
  int fd = h.connect(tokens);
  r = h.exchange(fd,
                 "GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer 0123456789abcdef-alice\r\n\r\n");
  BOOST_TEST(r.find("\r\n\r\ntoken:alice body=0") != std::string::npos, r);
  r = h.exchange(fd,
                 "GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer 0123456789abcdef-ops\r\n\r\n");
  BOOST_TEST(r.find("\r\n\r\ntoken:ops admin body=0") != std::string::npos, r);
  // A wrong token is refused as soon as the headers end: the declared body is never awaited.
  r = h.exchange(h.connect(tokens),
                 "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n"
                 "Content-Length: 8000000\r\n\r\n");
  BOOST_TEST(r.rfind("HTTP/1.1 401 Unauthorized\r\n", 0) == 0u, r);
  BOOST_TEST(r.find("WWW-Authenticate: Bearer\r\n") != std::string::npos);
  BOOST_TEST(h.server->buffered_bytes() == 0u);
}

BOOST_AUTO_TEST_CASE(buffered_bodies_stay_within_the_budget_and_are_given_back) {
  wj::HttpLimits lim;
  lim.max_body_bytes = 1000;
  lim.max_buffered_bytes = 2500;
  Harness h(lim);
  h.hold = true;
  std::string body(1000, 'x');
  std::string req = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + body;
  int a = h.connect(), b = h.connect(), c = h.connect();
  h.exchange(a, req, false);
  h.exchange(b, req, false);
  BOOST_TEST(h.held.size() == 2u);
  BOOST_TEST(h.server->buffered_bytes() == 2000u);
  // The third body does not fit: 503 at once, before its body is read.
  std::string r = h.exchange(c, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
  BOOST_TEST(r.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0) == 0u, r);
  BOOST_TEST(r.find("\"code\":\"server_busy\"") != std::string::npos);
  // A body that has been parsed is released, and its budget with it.
  h.held[0]->release_body();
  BOOST_TEST(h.server->buffered_bytes() == 1000u);
  h.held[1]->respond(200, "text/plain", "ok");
  h.held.clear();
  BOOST_TEST(h.server->buffered_bytes() == 0u);
  // TCP-style clients may use only what is left after one full request (here 1500 bytes).
  std::vector<wj::ApiToken> tokens = {{"t", "0123456789abcdef-t", false}};
  std::string auth = "Authorization: Bearer 0123456789abcdef-t\r\n";
  h.exchange(h.connect(tokens),
             "POST /v1/jobs HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 1000\r\n\r\n" + body, false);
  BOOST_TEST(h.held.size() == 1u);
  r = h.exchange(h.connect(tokens),
                 "POST /v1/jobs HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 1000\r\n\r\n");
  BOOST_TEST(r.rfind("HTTP/1.1 503", 0) == 0u, r);
  h.exchange(h.connect(), req, false);  // the unix side still fits
  BOOST_TEST(h.held.size() == 2u);
}

BOOST_AUTO_TEST_CASE(answers_waiting_for_readers_that_read_nothing_stay_bounded) {
  wj::HttpLimits lim;
  lim.max_pending_write_total = 512u << 10;
  Harness h(lim);
  const std::string chunk(64u << 10, 'z');
  std::vector<size_t> accepted;
  size_t peak = 0;
  h.custom = [&](const std::shared_ptr<wj::HttpExchange>& ex) {
    ex->begin_stream(200, "text/plain");
    size_t n = 0;
    while (n < 64 && ex->write_chunk(chunk)) {
      ++n;
      peak = std::max(peak, h.server->pending_write_bytes());
    }
    accepted.push_back(n);
  };
  // Three clients ask for a 4 MiB stream each and read nothing.
  for (int i = 0; i < 3; ++i)
    h.exchange(h.connect(), "GET /v1/jobs/j1/logs HTTP/1.1\r\nHost: x\r\n\r\n", false);
  BOOST_REQUIRE(accepted.size() == 3u);
  for (size_t n : accepted) BOOST_TEST(n < 64u);  // each was dropped instead of queueing 4 MiB
  BOOST_TEST(peak <= lim.max_pending_write_total + chunk.size() + 64);
  for (int i = 0; i < 50 && h.server->connections() > 0; ++i) uv_run(&h.loop, UV_RUN_NOWAIT);
  BOOST_TEST(h.server->connections() == 0u);
  BOOST_TEST(h.server->pending_write_bytes() == 0u);
}

// Complete answers count against the total too. It used to apply only to connections that
// already had bytes waiting, so every client that asked for a large answer (a job record
// holds up to its stdout and stderr caps, JSON-escaped) and read none of it had the whole
// answer queued: N such clients held N answers. Now a large answer that would go past the
// total, while others wait, is a 503; small answers still go.
BOOST_AUTO_TEST_CASE(large_answers_to_clients_that_read_nothing_stay_within_the_total) {
  wj::HttpLimits lim;
  lim.max_pending_write_total = 512u << 10;
  Harness h(lim);
  const std::string big(1u << 20, 'z');
  size_t peak = 0;
  h.custom = [&](const std::shared_ptr<wj::HttpExchange>& ex) {
    if (ex->request().path == "/small") ex->respond(200, "text/plain", "small");
    else ex->respond(200, "text/plain", big);
    peak = std::max(peak, h.server->pending_write_bytes());
  };
  std::vector<std::string> answers;
  for (int i = 0; i < 4; ++i)  // each reads at most a few KiB of its answer
    answers.push_back(h.exchange(h.connect(), "GET /big HTTP/1.1\r\nHost: x\r\n\r\n", false));
  BOOST_TEST(answers[0].rfind("HTTP/1.1 200 OK\r\n", 0) == 0u, answers[0].substr(0, 80));
  for (int i = 1; i < 4; ++i) {
    BOOST_TEST(answers[i].rfind("HTTP/1.1 503 Service Unavailable\r\n", 0) == 0u, answers[i].substr(0, 80));
    BOOST_TEST(answers[i].find("\"code\":\"server_busy\"") != std::string::npos);
  }
  BOOST_TEST(peak <= big.size() + (64u << 10), "peak " << peak);
  std::string r = h.exchange(h.connect(), "GET /small HTTP/1.1\r\nHost: x\r\n\r\n");
  BOOST_TEST(r.rfind("HTTP/1.1 200 OK\r\n", 0) == 0u, r);
  BOOST_TEST(r.find("\r\n\r\nsmall") != std::string::npos, r);
}

// When the buffer budget is small (max_buffered_request_bytes may be as low as
// max_request_bytes), TCP clients together get only half of it. A TCP body larger than that
// share can never be buffered: it used to be 503 server_busy ("retry later") forever; it is
// 413 with the size a TCP client may send. The unix socket still takes a full body.
BOOST_AUTO_TEST_CASE(a_tcp_body_larger_than_the_tcp_share_of_the_budget_is_413_not_503) {
  wj::HttpLimits lim;
  lim.max_body_bytes = 1000;
  lim.max_buffered_bytes = 1000;  // TCP clients: 500
  Harness h(lim);
  std::vector<wj::ApiToken> tokens = {{"t", "0123456789abcdef-t", false}};
  std::string auth = "Authorization: Bearer 0123456789abcdef-t\r\n";
  std::string r = h.exchange(h.connect(tokens),
                             "POST /v1/jobs HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 800\r\n\r\n");
  BOOST_TEST(r.rfind("HTTP/1.1 413 Payload Too Large\r\n", 0) == 0u, r);
  BOOST_TEST(r.find("larger than 500 bytes") != std::string::npos, r);
  // Chunked: refused the same way once past the share.
  r = h.exchange(h.connect(tokens), "POST /v1/jobs HTTP/1.1\r\nHost: x\r\n" + auth +
                                        "Transfer-Encoding: chunked\r\n\r\n258\r\n" + std::string(600, 'y') +
                                        "\r\n0\r\n\r\n");
  BOOST_TEST(r.rfind("HTTP/1.1 413 Payload Too Large\r\n", 0) == 0u, r);
  BOOST_TEST(h.server->buffered_bytes() == 0u);
  r = h.exchange(h.connect(), "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 800\r\n\r\n" +
                                  std::string(800, 'x'));
  BOOST_TEST(r.rfind("HTTP/1.1 200 OK\r\n", 0) == 0u, r);
  BOOST_TEST(r.find("body=800") != std::string::npos, r);
}
