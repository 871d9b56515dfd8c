// The NATS JetStream queue end to end: each test starts a 3-node nats-server cluster on
// free loopback ports (its stores in a temp folder), workers and submits as a user would,
// and stops everything it started.
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include <sys/un.h>

#include "tests/nats_cluster.h"

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct WorkerProc {
  pid_t pid = -1;
  std::string log, dir;
  ~WorkerProc() { wjt::stop_pid(pid, SIGKILL); }
};

// Starts `wasmjail worker` with its own work folder and config.
std::unique_ptr<WorkerProc> start_worker(const wjt::NatsCluster& c, const std::string& name, int concurrency,
                                         const std::string& ack_wait = "3s",
                                         const std::string& extra_yaml = "", const std::string& nats = "") {
  auto w = std::make_unique<WorkerProc>();
  w->dir = c.dir() + "/" + name;
  fs::create_directories(w->dir);
  w->log = w->dir + ".log";
  wjt::write_file(w->dir + "/worker.yaml", "work_dir: " + w->dir + "/work\ncache_dir: \"\"\n" + extra_yaml);
  w->pid = wjt::spawn_logged(
      {wjt::binary(), "worker", "--nats", nats.empty() ? c.urls() : nats, "--config", w->dir + "/worker.yaml",
       "--concurrency", std::to_string(concurrency), "--ack-wait", ack_wait},
      w->log);
  return w;
}

size_t count_events(const std::string& log, const std::string& event, const std::string& id) {
  std::string text = wjt::read_file(log), needle = "\"event\":\"" + event + "\",\"job\":\"" + id + "\"";
  size_t n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

std::string sleep_job(const std::string& dir, const std::string& name, int ms, const std::string& tag) {
  std::string path = dir + "/" + name + ".yaml";
  wjt::write_file(path, "entry_module: {source_path: " + wjt::guest("sleep_ms") + "}\nparameters: [\"" +
                            std::to_string(ms) + "\", \"" + tag + "\"]\n");
  return path;
}

wjt::ProcResult submit(const wjt::NatsCluster& c, std::vector<std::string> args, int timeout_s = 120) {
  std::vector<std::string> argv = {wjt::binary(), "submit", "--nats", c.urls()};
  argv.insert(argv.end(), args.begin(), args.end());
  return wjt::run(argv, {}, timeout_s);
}

std::unique_ptr<wj::NatsQueue> open_queue(const wjt::NatsCluster& c) {
  wj::QueueSettings qs;
  qs.urls = {c.url(0), c.url(1), c.url(2)};
  std::string err;
  auto q = wj::NatsQueue::open(qs, &err);
  BOOST_REQUIRE_MESSAGE(q, err);
  return q;
}

// The stored result of `id` within timeout_s (null json when none).
json wait_result(wj::NatsQueue& q, const std::string& id, double timeout_s) {
  json out;
  wjt::eventually(timeout_s, [&] {
    std::string text;
    bool found = false;
    if (q.get_result(id, &text, &found) || !found) return false;
    out = json::parse(text);
    return true;
  });
  return out;
}

uint64_t stream_msgs(wj::NatsQueue& q, const std::string& stream) {
  jsStreamInfo* si = nullptr;
  if (js_GetStreamInfo(&si, q.jetstream(), stream.c_str(), nullptr, nullptr) != NATS_OK) return ~0ull;
  uint64_t n = si->State.Msgs;
  jsStreamInfo_Destroy(si);
  return n;
}

// One HTTP request over a unix socket; the whole response (headers and body).
std::string http_unix(const std::string& sock, const std::string& method, const std::string& path,
                      const std::string& body = "") {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", sock.c_str());
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "";
  }
  std::string rq = method + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\n\r\n" + body;
  (void)!write(fd, rq.data(), rq.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

std::string http_get_unix(const std::string& sock, const std::string& path) {
  return http_unix(sock, "GET", path);
}

// The JSON body of a response (chunked bodies are not used here).
json body_of(const std::string& resp) {
  auto p = resp.find("\r\n\r\n");
  if (p == std::string::npos) return json();
  try {
    return json::parse(resp.substr(p + 4));
  } catch (...) {
    return json();
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(hundred_jobs_over_three_workers_each_result_once_and_correct) {
  wjt::NatsCluster c;
  auto q = open_queue(c);
  std::vector<std::unique_ptr<WorkerProc>> ws;
  for (int i = 0; i < 3; ++i) ws.push_back(start_worker(c, "w" + std::to_string(i), 2));
  std::string jobs = c.dir() + "/jobs";
  fs::create_directories(jobs);
  for (int i = 0; i < 100; ++i) {
    auto r = submit(c, {"--id", "job" + std::to_string(i),
                        sleep_job(jobs, "j" + std::to_string(i), 20, "t" + std::to_string(i))});
    BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    BOOST_CHECK_EQUAL(json::parse(r.out)["id"], "job" + std::to_string(i));
  }
  std::set<std::string> workers;
  for (int i = 0; i < 100; ++i) {
    std::string id = "job" + std::to_string(i);
    json r = wait_result(*q, id, 120);
    BOOST_REQUIRE_MESSAGE(!r.is_null(), id + " has no result");
    BOOST_CHECK_EQUAL(r["status"], "ok");
    BOOST_CHECK_EQUAL(r["stdout"], "done t" + std::to_string(i) + "\n");
    BOOST_CHECK_EQUAL(r["id"], id);
    workers.insert(r["worker"].get<std::string>());
    // Ran once, stored once, over all workers.
    size_t started = 0, stored = 0;
    for (auto& w : ws) {
      started += count_events(w->log, "job_started", id);
      std::string text = wjt::read_file(w->log);
      stored += text.find("\"job\":\"" + id + "\",\"status\":\"ok\",\"stored\":\"yes\"") != std::string::npos;
    }
    BOOST_CHECK_EQUAL(started, 1u);
    BOOST_CHECK_EQUAL(stored, 1u);
  }
  BOOST_CHECK_EQUAL(workers.size(), 3u);                                              // the work was shared
  BOOST_CHECK(wjt::eventually(10, [&] { return stream_msgs(*q, "WJ_JOBS") == 0; }));  // every message acked
}

BOOST_AUTO_TEST_CASE(worker_sigkilled_mid_job_its_jobs_finish_elsewhere) {
  wjt::NatsCluster c;
  auto q = open_queue(c);
  auto a = start_worker(c, "a", 2, "2s");
  std::string jobs = c.dir() + "/jobs";
  fs::create_directories(jobs);
  for (int i = 0; i < 2; ++i)
    BOOST_REQUIRE_EQUAL(submit(c, {"--id", "k" + std::to_string(i),
                                   sleep_job(jobs, "k" + std::to_string(i), 3000, "k" + std::to_string(i))})
                            .exit_code,
                        0);
  BOOST_REQUIRE(wjt::eventually(30, [&] {
    return count_events(a->log, "job_started", "k0") + count_events(a->log, "job_started", "k1") == 2;
  }));
  kill(a->pid, SIGKILL);
  wjt::wait_exit(a->pid, 10);
  a->pid = -1;
  auto b = start_worker(c, "b", 2, "2s");
  for (int i = 0; i < 2; ++i) {
    json r = wait_result(*q, "k" + std::to_string(i), 60);
    BOOST_REQUIRE(!r.is_null());
    BOOST_CHECK_EQUAL(r["status"], "ok");
    BOOST_CHECK_EQUAL(r["stdout"], "done k" + std::to_string(i) + "\n");
    BOOST_CHECK_GE(r["attempt"].get<int>(), 2);  // redelivered after the ack wait
    BOOST_CHECK_EQUAL(count_events(b->log, "job_started", "k" + std::to_string(i)), 1u);
  }
}

BOOST_AUTO_TEST_CASE(nats_node_stopped_mid_run_no_job_lost) {
  wjt::NatsCluster c;
  auto q = open_queue(c);
  auto a = start_worker(c, "a", 2, "3s");
  auto b = start_worker(c, "b", 2, "3s");
  std::string jobs = c.dir() + "/jobs";
  fs::create_directories(jobs);
  for (int i = 0; i < 12; ++i)
    BOOST_REQUIRE_EQUAL(submit(c, {"--id", "n" + std::to_string(i),
                                   sleep_job(jobs, "n" + std::to_string(i), 700, "n" + std::to_string(i))})
                            .exit_code,
                        0);
  // Stop the node leading the jobs stream while jobs run (the harder case: a new leader is
  // elected), and a non-leader when it is back.
  BOOST_REQUIRE(wjt::eventually(30, [&] {
    std::string t;
    bool f;
    q->get_result("n0", &t, &f);
    return f;
  }));
  int leader = c.stream_leader(*q);
  BOOST_REQUIRE(leader >= 0);
  c.stop_node(leader, SIGKILL);
  for (int i = 0; i < 12; ++i) {
    json r = wait_result(*q, "n" + std::to_string(i), 90);
    BOOST_REQUIRE_MESSAGE(!r.is_null(), "n" + std::to_string(i) + " lost");
    BOOST_CHECK_EQUAL(r["status"], "ok");
    BOOST_CHECK_EQUAL(r["stdout"], "done n" + std::to_string(i) + "\n");
  }
  c.start_node(leader);
  BOOST_REQUIRE(wjt::eventually(30, [&] { return c.stream_leader(*q) >= 0; }));
  int other = (c.stream_leader(*q) + 1) % 3;
  c.stop_node(other, SIGTERM);
  BOOST_REQUIRE_EQUAL(
      submit(c, {"--id", "after", "--wait", "--timeout", "60s", sleep_job(jobs, "after", 10, "after")})
          .exit_code,
      0);
}

BOOST_AUTO_TEST_CASE(same_job_id_submitted_twice_runs_once) {
  wjt::NatsCluster c;
  auto q = open_queue(c);
  std::string jobs = c.dir() + "/jobs";
  fs::create_directories(jobs);
  std::string job = sleep_job(jobs, "d", 10, "d");
  BOOST_REQUIRE_EQUAL(submit(c, {"--id", "dup", job}).exit_code, 0);
  BOOST_REQUIRE_EQUAL(submit(c, {"--id", "dup", job}).exit_code, 0);
  BOOST_CHECK_EQUAL(stream_msgs(*q, "WJ_JOBS"), 1u);  // Nats-Msg-Id de-duplicated the second
  auto w = start_worker(c, "w", 2);
  auto r = submit(c, {"--id", "dup", "--wait", "--timeout", "60s", job});  // a third time, waiting
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.out + r.err);
  BOOST_CHECK_EQUAL(json::parse(r.out)["stdout"], "done d\n");
  BOOST_CHECK(wjt::eventually(10, [&] { return stream_msgs(*q, "WJ_JOBS") == 0; }));
  BOOST_CHECK_EQUAL(count_events(w->log, "job_started", "dup"), 1u);
}

BOOST_AUTO_TEST_CASE(duplicate_after_the_window_is_skipped_by_its_stored_result) {
  // Past the de-duplication window (simulated: the stream already consumed the first
  // message) the stored result still answers: the worker acks without running it.
  wjt::NatsCluster c;
  auto q = open_queue(c);
  auto w = start_worker(c, "w", 1);
  std::string jobs = c.dir() + "/jobs";
  fs::create_directories(jobs);
  std::string job = sleep_job(jobs, "d", 10, "d");
  BOOST_REQUIRE_EQUAL(submit(c, {"--id", "again", "--wait", "--timeout", "60s", job}).exit_code, 0);
  bool dup = false;
  std::string body = json{{"v", 1},
                          {"id", "again"},
                          {"job", {{"entry_module", {{"storage_source", "inline"}, {"url", "data:,x"}}}}}}
                         .dump();
  // Another message id, same job id: not de-duplicated by the stream.
  natsMsg* m = nullptr;
  natsMsg_Create(&m, q->jobs_subject().c_str(), nullptr, body.data(), static_cast<int>(body.size()));
  natsMsgHeader_Set(m, "Nats-Msg-Id", "again-2");
  BOOST_REQUIRE_EQUAL(js_PublishMsg(nullptr, q->jetstream(), m, nullptr, nullptr), NATS_OK);
  natsMsg_Destroy(m);
  (void)dup;
  BOOST_CHECK(wjt::eventually(20, [&] { return count_events(w->log, "job_skipped", "again") == 1; }));
  BOOST_CHECK_EQUAL(count_events(w->log, "job_started", "again"), 1u);
  BOOST_CHECK(wjt::eventually(10, [&] { return stream_msgs(*q, "WJ_JOBS") == 0; }));
}

BOOST_AUTO_TEST_CASE(cancel_reaches_the_worker_running_the_job) {
  wjt::NatsCluster c;
  auto q = open_queue(c);
  auto w = start_worker(c, "w", 1);
  std::string jobs = c.dir() + "/jobs";
  fs::create_directories(jobs);
  BOOST_REQUIRE_EQUAL(submit(c, {"--id", "long", sleep_job(jobs, "long", 60000, "long")}).exit_code, 0);
  BOOST_REQUIRE(wjt::eventually(30, [&] { return count_events(w->log, "job_started", "long") == 1; }));
  // One slot, busy: the next job stays in the stream (not fetched and held by this worker).
  BOOST_REQUIRE_EQUAL(submit(c, {"--id", "next", sleep_job(jobs, "next", 10, "next")}).exit_code, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  jsConsumerInfo* ci = nullptr;
  BOOST_REQUIRE_EQUAL(js_GetConsumerInfo(&ci, q->jetstream(), "WJ_JOBS", "wasmjail", nullptr, nullptr),
                      NATS_OK);
  BOOST_CHECK_EQUAL(ci->NumAckPending, 1);
  BOOST_CHECK_EQUAL(ci->NumPending, 1u);
  jsConsumerInfo_Destroy(ci);
  auto t0 = std::chrono::steady_clock::now();
  auto r = submit(c, {"--cancel", "long"});
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  // The worker stops the job at once (its slot is free again), and the result is cancelled.
  BOOST_REQUIRE(wjt::eventually(15, [&] { return count_events(w->log, "job_finished", "long") == 1; }));
  BOOST_CHECK_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 15);
  BOOST_CHECK_EQUAL(wait_result(*q, "next", 30)["status"], "ok");  // the freed slot took it
  BOOST_CHECK_NE(wjt::read_file(w->log).find("\"event\":\"job_cancel_requested\",\"job\":\"long\""),
                 std::string::npos);
  auto wr = submit(c, {"--id", "long", "--wait", "--timeout", "30s", sleep_job(jobs, "long", 60000, "long")});
  BOOST_CHECK_EQUAL(wr.exit_code, 1);
  BOOST_CHECK_EQUAL(json::parse(wr.out)["status"], "cancelled");
  // A job cancelled before any worker took it never runs.
  BOOST_REQUIRE_EQUAL(submit(c, {"--cancel", "never"}).exit_code, 0);
  BOOST_REQUIRE_EQUAL(submit(c, {"--id", "never", sleep_job(jobs, "never", 10, "never")}).exit_code, 0);
  BOOST_CHECK(wjt::eventually(20, [&] { return count_events(w->log, "job_skipped", "never") == 1; }));
  BOOST_CHECK_EQUAL(count_events(w->log, "job_started", "never"), 0u);
}

BOOST_AUTO_TEST_CASE(poison_messages_end_in_error_results_and_the_worker_keeps_going) {
  wjt::NatsCluster c;
  auto q = open_queue(c);
  std::string sock = c.dir() + "/metrics.sock";
  auto w = start_worker(c, "w", 1, "3s", "metrics_listen: [\"unix:" + sock + "\"]\n");
  bool dup = false;
  BOOST_REQUIRE(!q->publish_job("p1", "this is not json {", &dup));
  BOOST_REQUIRE(!q->publish_job(
      "p2", R"({"v": 1, "id": "bad", "job": {"entry_module": {"url": "data:,x"}, "nonsense": 1}})", &dup));
  BOOST_REQUIRE(!q->publish_job(
      "p3", R"({"v": 1, "id": "local", "job": {"entry_module": {"source_path": "/etc/passwd"}}})", &dup));
  BOOST_REQUIRE(!q->publish_job("p4",
                                R"({"v": 1, "id": "blobless", "job": {"entry_module": {"blob": "sha256:)" +
                                    std::string(64, 'a') + R"("}}})",
                                &dup));
  BOOST_REQUIRE(!q->publish_job("p5",
                                R"({"v": 1, "id": "weird", "job": {"entry_module": {"blob": "sha256:)" +
                                    std::string(64, 'b') + R"(", "kind": 5}}})",
                                &dup));
  std::string jobs = c.dir() + "/jobs";
  fs::create_directories(jobs);
  auto good = submit(c, {"--id", "good", "--wait", "--timeout", "60s", sleep_job(jobs, "good", 10, "good")});
  BOOST_CHECK_EQUAL(good.exit_code, 0);
  json bad = wait_result(*q, "bad", 30);
  BOOST_CHECK_EQUAL(bad["status"], "invalid_job");
  BOOST_CHECK_NE(bad["error"].get<std::string>().find("nonsense"), std::string::npos);
  json local = wait_result(*q, "local", 30);
  BOOST_CHECK_EQUAL(local["status"], "invalid_job");
  BOOST_CHECK_NE(local["error"].get<std::string>().find("local sources are not allowed"), std::string::npos);
  json weird = wait_result(*q, "weird", 30);
  BOOST_CHECK_EQUAL(weird["status"], "invalid_job");
  BOOST_CHECK_NE(weird["error"].get<std::string>().find("job.entry_module.kind must be file or folder"),
                 std::string::npos);
  json blobless = wait_result(*q, "blobless", 30);
  BOOST_CHECK_EQUAL(blobless["status"], "setup_error");
  BOOST_CHECK_NE(blobless["error"].get<std::string>().find("not in the bucket"), std::string::npos);
  // The message without an id gets an error result under its stream sequence (1).
  json junk = wait_result(*q, "invalid-1", 30);
  BOOST_CHECK_EQUAL(junk["status"], "invalid_job");
  BOOST_CHECK_NE(junk["error"].get<std::string>().find("not JSON"), std::string::npos);
  BOOST_CHECK(wjt::eventually(10, [&] { return stream_msgs(*q, "WJ_JOBS") == 0; }));  // none left to loop
  BOOST_CHECK_EQUAL(count_events(w->log, "job_started", "bad"), 0u);
  // The worker's metrics: serve's, plus the queue's.
  std::string m = http_get_unix(sock, "/metrics");
  BOOST_CHECK_NE(m.find("wasmjail_queue_fetched_total 6"), std::string::npos);
  BOOST_CHECK_NE(m.find("wasmjail_queue_terminated_total 4"),
                 std::string::npos);  // not JSON, bad spec, local source, kind
  BOOST_CHECK_NE(m.find("wasmjail_queue_acked_total 2"), std::string::npos);
  BOOST_CHECK_NE(m.find("wasmjail_queue_in_flight 0"), std::string::npos);
  BOOST_CHECK_NE(m.find("wasmjail_queue_redelivered_total 0"), std::string::npos);
  BOOST_CHECK_NE(m.find("wasmjail_jobs_total{status=\"ok\"} 1"), std::string::npos);
}

BOOST_AUTO_TEST_CASE(max_deliver_ends_failed_naming_redelivery) {
  wjt::NatsCluster c;
  auto q = open_queue(c);
  // The first worker creates the shared consumer (ack wait 1s) and leaves.
  auto w = start_worker(c, "w", 1, "1s", "max_deliver: 2\n");
  BOOST_REQUIRE(wjt::eventually(
      30, [&] { return wjt::read_file(w->log).find("worker_started") != std::string::npos; }));
  wjt::stop_pid(w->pid, SIGTERM);
  w->pid = -1;
  std::string jobs = c.dir() + "/jobs";
  fs::create_directories(jobs);
  BOOST_REQUIRE_EQUAL(submit(c, {"--id", "doomed", sleep_job(jobs, "doomed", 10, "doomed")}).exit_code, 0);
  // Two deliveries taken by "workers" that die before acking.
  natsSubscription* sub = nullptr;
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = "WJ_JOBS";
  so.Consumer = "wasmjail";
  BOOST_REQUIRE_EQUAL(
      js_PullSubscribe(&sub, q->jetstream(), q->jobs_subject().c_str(), "wasmjail", nullptr, &so, nullptr),
      NATS_OK);
  for (int i = 0; i < 2; ++i) {
    natsMsgList list{nullptr, 0};
    BOOST_REQUIRE(wjt::eventually(10, [&] {
      return natsSubscription_Fetch(&list, sub, 1, 2000, nullptr) == NATS_OK && list.Count == 1;
    }));
    natsMsgList_Destroy(&list);  // no ack: redelivered after the ack wait
  }
  natsSubscription_Destroy(sub);
  auto w2 = start_worker(c, "w2", 1, "1s", "max_deliver: 2\n");
  json r = wait_result(*q, "doomed", 30);
  BOOST_REQUIRE(!r.is_null());
  BOOST_CHECK_EQUAL(r["status"], "failed");
  BOOST_CHECK_NE(
      r["error"].get<std::string>().find("redelivery: the job was delivered 3 times (max_deliver 2)"),
      std::string::npos);
  BOOST_CHECK_EQUAL(count_events(w2->log, "job_started", "doomed"), 0u);
  BOOST_CHECK(wjt::eventually(10, [&] { return stream_msgs(*q, "WJ_JOBS") == 0; }));  // terminated
}

BOOST_AUTO_TEST_CASE(module_bigger_than_max_payload_travels_as_blob_once) {
  wjt::NatsCluster c;
  auto q = open_queue(c);
  BOOST_REQUIRE_EQUAL(q->max_payload(), 1 << 20);
  // hello.wasm plus a 3 MiB custom section: a valid module three times max_payload.
  std::string wasm = wjt::read_file(wjt::guest("sleep_ms"));
  std::string payload(3u << 20, 'x'), name = "padding";
  std::string section = std::string(1, static_cast<char>(name.size())) + name + payload;
  std::string leb;
  for (uint64_t v = section.size();;) {
    uint8_t b = v & 0x7f;
    v >>= 7;
    leb += static_cast<char>(v ? b | 0x80 : b);
    if (!v) break;
  }
  wasm += std::string(1, '\0') + leb + section;
  std::string jobs = c.dir() + "/jobs";
  fs::create_directories(jobs);
  wjt::write_file(jobs + "/big.wasm", wasm);
  wjt::write_file(jobs + "/big.yaml",
                  "entry_module: {source_path: big.wasm}\nparameters: [\"1\", big]\n"
                  "outputs: [{name: res, path: /out}]\n");
  auto w = start_worker(c, "w", 1);
  auto r = submit(c, {"--wait", "--timeout", "90s", jobs + "/big.yaml"});
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.out + r.err);
  BOOST_CHECK_EQUAL(json::parse(r.out)["stdout"], "done big\n");
  uint64_t blob_msgs = stream_msgs(*q, "KV_wj_blobs");
  BOOST_CHECK_GE(blob_msgs, 5u);  // 3 MiB in chunks under 1 MiB, a manifest, the outputs archive
  // Again: the module is not uploaded a second time (one more outputs archive at most).
  auto r2 = submit(c, {"--wait", "--timeout", "90s", "--output-dir", jobs + "/out", jobs + "/big.yaml"});
  BOOST_REQUIRE_MESSAGE(r2.exit_code == 0, r2.out + r2.err);
  BOOST_CHECK_LE(stream_msgs(*q, "KV_wj_blobs"), blob_msgs);
  BOOST_CHECK_EQUAL(wjt::read_file(jobs + "/out/stdout"), "done big\n");
  BOOST_CHECK_EQUAL(wjt::read_file(jobs + "/out/exitCode"), "0");
  BOOST_CHECK(fs::is_directory(jobs + "/out/res"));
  // The worker kept the module in its blob cache, once.
  size_t cached = 0;
  for (const auto& e : fs::directory_iterator(w->dir + "/work/blobs")) cached += e.file_size() == wasm.size();
  BOOST_CHECK_EQUAL(cached, 1u);
}

BOOST_AUTO_TEST_CASE(outputs_come_back_through_submit_output_dir) {
  wjt::NatsCluster c;
  auto w = start_worker(c, "w", 1);
  std::string dir = c.dir() + "/o";
  auto r = submit(c, {"--wait", "--timeout", "60s", "--output-dir", dir,
                      std::string(WJ_SOURCE_DIR) + "/configs/examples/csv-transform.yaml"});
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.out + r.err);
  BOOST_CHECK_EQUAL(wjt::read_file(dir + "/totals/totals.csv"), "apples,6\npears,10\nplums,24\nTOTAL,20\n");
  BOOST_CHECK_EQUAL(json::parse(r.out)["outputs"]["totals"], dir + "/totals");
  BOOST_CHECK_EQUAL(wjt::read_file(dir + "/stdout"), "3 rows, total 20\n");
}

BOOST_AUTO_TEST_CASE(nats_unreachable_at_start_clear_error_then_retries) {
  auto ports = wjt::free_ports(3);
  std::string dir = wjt::temp_dir();
  std::string urls = "nats://127.0.0.1:" + std::to_string(ports[0]) +
                     ",nats://127.0.0.1:" + std::to_string(ports[1]) +
                     ",nats://127.0.0.1:" + std::to_string(ports[2]);
  std::string log = dir + "/w.log";
  wjt::write_file(dir + "/w.yaml", "work_dir: " + dir + "/work\ncache_dir: \"\"\n");
  pid_t pid = wjt::spawn_logged(
      {wjt::binary(), "worker", "--nats", urls, "--config", dir + "/w.yaml", "--concurrency", "1"}, log);
  BOOST_CHECK(wjt::eventually(20, [&] {
    std::string t = wjt::read_file(log);
    return t.find("cannot connect to NATS at nats://127.0.0.1:" + std::to_string(ports[0])) !=
               std::string::npos &&
           t.find("retrying in 1.0s") != std::string::npos;  // backoff: 0.5 s, then 1 s, ...
  }));
  BOOST_CHECK_EQUAL(wjt::wait_exit(pid, 0), -1);  // still running, still trying
  {
    wjt::NatsCluster c(ports);  // the cluster comes up on those ports: the worker connects
    BOOST_CHECK(
        wjt::eventually(60, [&] { return wjt::read_file(log).find("worker_started") != std::string::npos; }));
    std::string jobs = c.dir() + "/jobs";
    fs::create_directories(jobs);
    auto r = submit(c, {"--wait", "--timeout", "60s", sleep_job(jobs, "x", 10, "x")});
    BOOST_CHECK_MESSAGE(r.exit_code == 0, r.out + r.err);
    wjt::stop_pid(pid, SIGTERM);
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}

BOOST_AUTO_TEST_CASE(sigterm_drains_running_jobs_and_hands_back_the_rest) {
  wjt::NatsCluster c;
  auto q = open_queue(c);
  auto a = start_worker(c, "a", 2, "30s", "drain_timeout: 1500ms\n");
  std::string jobs = c.dir() + "/jobs";
  fs::create_directories(jobs);
  BOOST_REQUIRE_EQUAL(submit(c, {"--id", "short", sleep_job(jobs, "short", 1000, "short")}).exit_code, 0);
  BOOST_REQUIRE_EQUAL(submit(c, {"--id", "long", sleep_job(jobs, "long", 6000, "long")}).exit_code, 0);
  BOOST_REQUIRE(wjt::eventually(30, [&] {
    return count_events(a->log, "job_started", "short") + count_events(a->log, "job_started", "long") == 2;
  }));
  kill(a->pid, SIGTERM);
  auto t0 = std::chrono::steady_clock::now();
  BOOST_CHECK_EQUAL(wjt::wait_exit(a->pid, 20), 0);
  a->pid = -1;
  BOOST_CHECK_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 8);
  json s = wait_result(*q, "short", 5);  // finished within the drain timeout, stored by a
  BOOST_REQUIRE(!s.is_null());
  BOOST_CHECK_EQUAL(s["status"], "ok");
  BOOST_CHECK_EQUAL(s["attempt"], 1);
  // The long one was handed back (nak), not left to the 30 s ack wait: b takes it at once.
  auto b = start_worker(c, "b", 2, "30s");
  auto tb = std::chrono::steady_clock::now();
  BOOST_REQUIRE(wjt::eventually(15, [&] { return count_events(b->log, "job_started", "long") == 1; }));
  BOOST_CHECK_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - tb).count(), 15);
  json l = wait_result(*q, "long", 30);
  BOOST_REQUIRE(!l.is_null());
  BOOST_CHECK_EQUAL(l["status"], "ok");
  BOOST_CHECK_EQUAL(l["attempt"], 2);
}

BOOST_AUTO_TEST_CASE(serve_as_a_gateway_same_endpoints_through_nats) {
  wjt::NatsCluster c;
  auto w = start_worker(c, "w", 2);
  std::string sock = c.dir() + "/gw.sock";
  wjt::write_file(c.dir() + "/gw.yaml", "listen: [\"unix:" + sock + "\"]\nlocal_roots: [\"" +
                                            std::string(WJ_GUEST_DIR) + "\", \"" + WJ_SOURCE_DIR +
                                            "/configs/examples/data\"]\noutput_root: " + c.dir() +
                                            "/gwout\nqueue: {nats: [\"" + c.urls() + "\"]}\n");
  pid_t gw =
      wjt::spawn_logged({wjt::binary(), "serve", "--config", c.dir() + "/gw.yaml"}, c.dir() + "/gw.log");
  BOOST_REQUIRE(wjt::eventually(
      30, [&] { return http_get_unix(sock, "/healthz").find("gateway") != std::string::npos; }));
  auto job = [](const std::string& guest, const std::vector<std::string>& params) {
    return json{{"entry_module", {{"source_path", wjt::guest(guest)}}}, {"parameters", params}}.dump();
  };
  // Submit and wait in one round trip: run by the worker, not by serve.
  json run = body_of(http_unix(sock, "POST", "/v1/run", job("sleep_ms", {"10", "gw"})));
  BOOST_CHECK_EQUAL(run["state"], "done");
  BOOST_CHECK_EQUAL(run["result"]["status"], "ok");
  BOOST_CHECK_EQUAL(run["result"]["stdout"], "done gw\n");
  std::string id = run["id"];
  BOOST_CHECK_EQUAL(count_events(w->log, "job_started", id), 1u);
  // Submit, state, wait.
  json sub = body_of(http_unix(sock, "POST", "/v1/jobs", job("sleep_lines", {})));
  std::string id2 = sub["id"];
  BOOST_CHECK_EQUAL(sub["state"], "queued");
  std::string logs = http_get_unix(sock, "/v1/jobs/" + id2 + "/logs");  // ends with the job
  BOOST_CHECK_NE(logs.find("{\"stream\":\"stdout\",\"data\":\"second\\n\"}"), std::string::npos);
  BOOST_CHECK_NE(logs.find("{\"event\":\"done\",\"status\":\"ok\",\"exit_code\":0}"), std::string::npos);
  json waited = body_of(http_get_unix(sock, "/v1/jobs/" + id2 + "/wait?timeout_ms=30000"));
  BOOST_CHECK_EQUAL(waited["result"]["stdout"], "first\nsecond\n");
  // Cancel a running job: it ends cancelled on the worker; a second cancel is a 409.
  json longj = body_of(http_unix(sock, "POST", "/v1/jobs", job("sleep_ms", {"60000", "x"})));
  std::string id3 = longj["id"];
  BOOST_REQUIRE(wjt::eventually(
      30, [&] { return body_of(http_get_unix(sock, "/v1/jobs/" + id3))["state"] == "running"; }));
  BOOST_CHECK_NE(http_unix(sock, "DELETE", "/v1/jobs/" + id3).find("202 "), std::string::npos);
  BOOST_CHECK_EQUAL(
      body_of(http_get_unix(sock, "/v1/jobs/" + id3 + "/wait?timeout_ms=20000"))["result"]["status"],
      "cancelled");
  BOOST_CHECK(wjt::eventually(15, [&] { return count_events(w->log, "job_finished", id3) == 1; }));
  BOOST_CHECK_NE(http_unix(sock, "DELETE", "/v1/jobs/" + id3).find("409 "), std::string::npos);
  // Errors as serve: unknown job, a host file outside local_roots, malformed JSON.
  BOOST_CHECK_NE(http_get_unix(sock, "/v1/jobs/nope").find("404 "), std::string::npos);
  std::string outside =
      http_unix(sock, "POST", "/v1/jobs", R"({"entry_module": {"source_path": "/etc/passwd"}})");
  BOOST_CHECK_NE(outside.find("400 "), std::string::npos);
  BOOST_CHECK_NE(outside.find("outside the server's local_roots"), std::string::npos);
  BOOST_CHECK_NE(http_unix(sock, "POST", "/v1/jobs", "{nope").find("malformed_json"), std::string::npos);
  // A number too large for a double is malformed JSON too (it once ended serve).
  BOOST_CHECK_NE(http_unix(sock, "POST", "/v1/jobs", "1e99999").find("malformed_json"), std::string::npos);
  // A folder input under local_roots travels as a blob; the outputs come back under output_root.
  json csv = {
      {"entry_module", {{"source_path", wjt::guest("csv_transform")}}},
      {"parameters", {"/inputs/data.csv", "/outputs/totals.csv"}},
      {"inputs",
       {{{"source_path", std::string(WJ_SOURCE_DIR) + "/configs/examples/data"}, {"path", "/inputs"}}}},
      {"outputs", {{{"name", "totals"}, {"path", "/outputs"}}}}};
  json cr = body_of(http_unix(sock, "POST", "/v1/run", csv.dump()));
  BOOST_REQUIRE_EQUAL(cr["result"]["status"], "ok");
  std::string totals = cr["result"]["outputs"]["totals"];
  BOOST_CHECK_EQUAL(totals, c.dir() + "/gwout/" + cr["id"].get<std::string>() + "/totals");
  BOOST_CHECK_EQUAL(wjt::read_file(totals + "/totals.csv"), "apples,6\npears,10\nplums,24\nTOTAL,20\n");
  json list = body_of(http_get_unix(sock, "/v1/jobs?limit=10"));
  BOOST_CHECK_EQUAL(list["jobs"].size(), 4u);
  kill(gw, SIGTERM);
  BOOST_CHECK_EQUAL(wjt::wait_exit(gw, 20), 0);
}

BOOST_AUTO_TEST_CASE(credentials_from_the_config_wrong_ones_are_a_clear_error) {
  wj::QueueSettings creds;
  creds.user = "wj";
  creds.password = "s3cret-pass";
  wjt::NatsCluster c({}, {"--user", "wj", "--pass", "s3cret-pass"}, creds);
  std::string jobs = c.dir() + "/jobs";
  fs::create_directories(jobs);
  std::string job = sleep_job(jobs, "a", 10, "auth");
  wjt::write_file(c.dir() + "/bad.yaml", "queue: {user: wj, password: wrong}\n");
  auto bad = submit(c, {"--config", c.dir() + "/bad.yaml", job});
  BOOST_CHECK_MESSAGE(bad.exit_code == 1, bad.out + bad.err);
  BOOST_CHECK_MESSAGE(bad.err.find("cannot connect to NATS at") != std::string::npos &&
                          bad.err.find("Authorization") != std::string::npos,
                      bad.err);
  auto w = start_worker(c, "w", 1, "3s", "queue: {user: wj, password: s3cret-pass}\n");
  wjt::write_file(c.dir() + "/good.yaml", "queue: {user: wj, password: s3cret-pass}\n");
  auto ok = submit(c, {"--config", c.dir() + "/good.yaml", "--wait", "--timeout", "60s", job});
  BOOST_CHECK_MESSAGE(ok.exit_code == 0, ok.out + ok.err);
  BOOST_CHECK_EQUAL(json::parse(ok.out)["stdout"], "done auth\n");
}

BOOST_AUTO_TEST_CASE(tls_where_the_server_asks_for_it) {
  std::string certs = wjt::temp_dir();
  auto gen = wjt::run({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                       certs + "/key.pem", "-out", certs + "/cert.pem", "-days", "1", "-subj",
                       "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"});
  BOOST_REQUIRE_MESSAGE(gen.exit_code == 0, gen.err);
  wj::QueueSettings tls;
  tls.tls_ca = certs + "/cert.pem";
  {
    wjt::NatsCluster c({}, {"--tls", "--tlscert", certs + "/cert.pem", "--tlskey", certs + "/key.pem"}, tls);
    std::string jobs = c.dir() + "/jobs";
    fs::create_directories(jobs);
    std::string job = sleep_job(jobs, "t", 10, "tls");
    // Without the CA the server's certificate is refused: a clear error.
    auto plain = submit(c, {job});
    BOOST_CHECK_EQUAL(plain.exit_code, 1);
    BOOST_CHECK_MESSAGE(plain.err.find("cannot connect to NATS at") != std::string::npos, plain.err);
    std::string cfg = "queue: {tls_ca: \"" + certs + "/cert.pem\"}\n";
    auto w = start_worker(c, "w", 1, "3s", cfg);
    wjt::write_file(c.dir() + "/tls.yaml", cfg);
    auto ok = submit(c, {"--config", c.dir() + "/tls.yaml", "--wait", "--timeout", "60s", job});
    BOOST_CHECK_MESSAGE(ok.exit_code == 0, ok.out + ok.err);
    BOOST_CHECK_EQUAL(json::parse(ok.out)["stdout"], "done tls\n");
  }
  fs::remove_all(certs);
}

BOOST_AUTO_TEST_CASE(stdin_travels_with_the_job_inline_or_as_a_blob) {
  wjt::NatsCluster c;
  auto w = start_worker(c, "w", 2);
  std::string jobs = c.dir() + "/jobs";
  fs::create_directories(jobs);
  // Text (sent base64 in the message), and a 2 MiB file (over max_payload: a blob).
  wjt::write_file(jobs + "/text.yaml", "entry_module: {source_path: " + wjt::guest("stdin_reader") +
                                           "}\nparameters: [upper]\nstdin: \"hello queue\\n\"\n");
  auto r = submit(c, {"--wait", "--timeout", "60s", jobs + "/text.yaml"});
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.out + r.err);
  BOOST_CHECK_EQUAL(json::parse(r.out)["stdout"], "HELLO QUEUE\nbytes=12 read=0\n");
  wjt::write_file(jobs + "/big.txt", std::string(2u << 20, 'a'));
  wjt::write_file(jobs + "/file.yaml", "entry_module: {source_path: " + wjt::guest("stdin_reader") +
                                           "}\nparameters: [stat]\nstdin: {source_path: big.txt}\n");
  auto r2 = submit(c, {"--wait", "--timeout", "60s", jobs + "/file.yaml"});
  BOOST_REQUIRE_MESSAGE(r2.exit_code == 0, r2.out + r2.err);
  std::string out = json::parse(r2.out)["stdout"];
  BOOST_CHECK_NE(out.find("bytes=2097152 read=0"), std::string::npos);
}
