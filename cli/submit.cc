// `wasmjail submit`: puts a job on the NATS JetStream queue, optionally waits for its
// result (README: "Scaling out").
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/cli.h"
#include "policies/jobspec.h"
#include "policies/worker_config.h"
#include "server/queue.h"
#include "server/queue_job.h"
#include "storage/archive.h"
#include "storage/storage.h"

namespace wj::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr const char* kUsage =
    "usage: wasmjail submit --nats URL[,URL...] [--config FILE] [--policy NAME] [--id ID] [--wait]\n"
    "                       [--timeout DURATION] [--output-dir DIR] [--follow] JOB_FILE\n"
    "       wasmjail submit --nats URL[,URL...] --cancel ID\n"
    "\n"
    "Puts a JobSpecWasm job (YAML or JSON; '-' reads stdin) on the NATS JetStream work queue.\n"
    "Local modules and inputs are uploaded as blobs (once; later jobs refer to them by sha256).\n"
    "Without --wait prints {\"id\": ...}. With --wait prints the finished result JSON, in the\n"
    "shape of `exec`, and exits as exec does: 0 when the status is ok, 1 otherwise (also when\n"
    "no result came within --timeout, default 10m), 2 for a usage error. --id names the job\n"
    "(1 to 64 of A-Z a-z 0-9 _ -): the same id submitted twice runs once. --output-dir DIR\n"
    "writes stdout, stderr, exitCode, result.json and unpacks the outputs into DIR/<name>/.\n"
    "--follow copies the job's live output to stderr while waiting. --cancel ID cancels a\n"
    "job: it ends `cancelled` unless a result was stored first. --config reads the queue:\n"
    "section of a worker config (credentials, TLS, stream and bucket names).\n";


int usage_error(const std::string& msg) {
  std::fprintf(stderr, "wasmjail submit: %s\n", msg.c_str());
  return kExitUsage;
}

int failure(const std::string& msg) {
  std::fprintf(stderr, "wasmjail submit: %s\n", msg.c_str());
  return 1;
}

std::string dump(const ojson& j, int indent = 2) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<std::string> write_text(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return "cannot write " + path;
  f << data;
  if (!f) return "cannot write " + path;
  return std::nullopt;
}

// Retries a NATS operation through leader elections and lost servers until `deadline`.
template <class F>
std::optional<std::string> retry(std::chrono::steady_clock::time_point deadline, F f) {
  for (;;) {
    auto e = f();
    if (!e || std::chrono::steady_clock::now() >= deadline) return e;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

}  // namespace

int submit(int argc, char** argv) {
  std::string config_path, nats_arg, policy, id, timeout_arg, output_dir, cancel_id, job_file;
  bool wait = false, follow = false;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    auto need = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return !out->empty();
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if ((a == "--config" && need(&config_path)) || (a == "--nats" && need(&nats_arg)) ||
               (a == "--policy" && need(&policy)) || (a == "--id" && need(&id)) ||
               (a == "--timeout" && need(&timeout_arg)) || (a == "--output-dir" && need(&output_dir)) ||
               (a == "--cancel" && need(&cancel_id))) {
    } else if (a == "--wait") {
      wait = true;
    } else if (a == "--follow") {
      follow = true;
    } else if (a.size() > 1 && a[0] == '-') {
      std::fputs(kUsage, stderr);
      return usage_error("unknown or incomplete option " + a);
    } else if (job_file.empty()) {
      job_file = a;
    } else {
      return usage_error("more than one JOB_FILE given (" + job_file + ", " + a + ")");
    }
  }
  QueueSettings qs;
  uint64_t max_blob_bytes = 256ull << 20;
  if (!config_path.empty()) {
    auto c = load_worker_config(config_path);
    if (!c) return usage_error(c.error().str());
    qs = c.value().queue;
    max_blob_bytes = c.value().max_blob_bytes;
  }
  if (!nats_arg.empty()) {
    auto u = parse_nats_urls(nats_arg);
    if (!u) return usage_error("--nats: " + u.error().message);
    qs.urls = u.value();
  }
  if (qs.urls.empty())
    return usage_error("no NATS server given: --nats URL[,URL...] or queue.nats in --config");
  double timeout_ms = 600000;
  if (!timeout_arg.empty()) {
    std::string err;
    timeout_ms = cfg::parse_duration_ms(timeout_arg, &err);
    if (!err.empty()) return usage_error("--timeout: " + err);
  }
  if (!id.empty() && !valid_job_id(id))
    return usage_error("--id must be 1 to 64 of A-Z a-z 0-9 _ -, got \"" + id + "\"");
  if (!cancel_id.empty() && !valid_job_id(cancel_id)) return usage_error("--cancel needs a job id");
  if (cancel_id.empty() && job_file.empty()) {
    std::fputs(kUsage, stderr);
    return usage_error("missing JOB_FILE");
  }
  if (!cancel_id.empty() && !job_file.empty()) return usage_error("--cancel takes no JOB_FILE");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<long>(timeout_ms));

  // Parse and validate the job before touching the network.
  JobSpec spec;
  if (cancel_id.empty()) {
    std::string read_error;
    auto job_text = read_job_text(job_file, &read_error);
    if (!job_text) return failure(read_error);
    auto s = parse_job_spec(job_text->text, job_text->name, job_text->base_dir);
    if (!s) return failure(s.error().str());
    spec = std::move(s.value());
  }

  std::string err;
  auto q = NatsQueue::open(qs, &err);
  if (!q) return failure(err);

  if (!cancel_id.empty()) {
    // First result wins: a job not started yet ends cancelled here; a running one is told.
    ojson r = {{"status", "cancelled"},
               {"exit_code", -1},
               {"error", "cancelled by wasmjail submit --cancel"},
               {"id", cancel_id}};
    bool exists = false;
    if (auto e = retry(deadline, [&] { return q->create_result(cancel_id, dump(r, -1), &exists); }))
      return failure(*e);
    q->publish(q->cancel_subject(cancel_id), "cancel");
    natsConnection_FlushTimeout(q->connection(), 5000);
    std::printf(
        "%s\n",
        dump(ojson{{"id", cancel_id},
                   {"cancel", exists ? "sent (the job had a result already, or is running: it stops there)"
                                     : "stored"}})
            .c_str());
    return 0;
  }

  json job;
  if (auto e = retry(deadline, [&] { return localize_job(spec, *q, max_blob_bytes, &job); }))
    return failure(*e);
  if (id.empty()) id = new_queue_job_id();
  json env = {{"v", kEnvelopeVersion}, {"id", id}, {"job", job}};
  if (!policy.empty()) env["policy"] = policy;
  std::string body = env.dump();
  if (static_cast<int64_t>(body.size()) > q->max_payload() - 4096)
    return failure("the job message is " + std::to_string(body.size()) +
                   " bytes, over the server's max_payload (" + std::to_string(q->max_payload()) +
                   "); move large inline data into a file");

  // Live output: subscribe before publishing so nothing is missed.
  natsSubscription* logs = nullptr;
  if (follow && wait)
    natsConnection_Subscribe(
        &logs, q->connection(), q->logs_subject(id).c_str(),
        [](natsConnection*, natsSubscription*, natsMsg* m, void*) {
          try {
            auto j =
                json::parse(std::string(natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m))));
            if (j.contains("data")) {
              std::string d = j["data"].get<std::string>();
              std::fwrite(d.data(), 1, d.size(), stderr);
            }
          } catch (...) {
          }
          natsMsg_Destroy(m);
        },
        nullptr);
  bool duplicate = false;
  if (auto e = retry(deadline, [&] { return q->publish_job(id, body, &duplicate); })) return failure(*e);
  if (!wait) {
    std::printf("%s\n", dump(ojson{{"id", id}}).c_str());
    return 0;
  }

  // The worker announces the end on the logs subject right after storing the result: wait
  // for that, and look at the bucket every 500 ms anyway (a lost message, a lost server).
  natsSubscription* done_sub = nullptr;
  natsConnection_SubscribeSync(&done_sub, q->connection(), q->logs_subject(id).c_str());
  std::string text;
  bool found = false;
  auto next_look = std::chrono::steady_clock::now();
  while (!found) {
    std::optional<std::string> e;
    if (std::chrono::steady_clock::now() >= next_look) {
      e = q->get_result(id, &text, &found);
      if (found) break;
      next_look = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      if (logs) natsSubscription_Destroy(logs);
      std::printf("%s\n", dump(ojson{{"id", id},
                                     {"status", "pending"},
                                     {"error", "no result within " + cfg::format_duration_ms(timeout_ms) +
                                                   (e ? " (last error: " + *e + ")" : "")}})
                              .c_str());
      return 1;
    }
    natsMsg* m = nullptr;
    if (done_sub && natsSubscription_NextMsg(&m, done_sub, 100) == NATS_OK) {
      std::string d(natsMsg_GetData(m) ? natsMsg_GetData(m) : "",
                    static_cast<size_t>(natsMsg_GetDataLength(m)));
      natsMsg_Destroy(m);
      if (d.find("\"event\":\"done\"") != std::string::npos) next_look = std::chrono::steady_clock::now();
    } else if (!done_sub) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  if (done_sub) natsSubscription_Destroy(done_sub);
  if (logs) natsSubscription_Destroy(logs);
  ojson r;
  try {
    r = ojson::parse(text);
    if (r.contains("result_blob")) {
      std::string big;
      if (auto e = retry(deadline,
                         [&] { return q->get_blob(r["result_blob"].get<std::string>(), 1ull << 32, &big); }))
        return failure("job " + id + ": " + *e);
      r = ojson::parse(big);
    }
  } catch (const std::exception& ex) {
    return failure("job " + id + ": the stored result is not JSON: " + ex.what());
  }
  if (!output_dir.empty()) {
    std::error_code ec;
    fs::create_directories(output_dir, ec);
    std::string abs = fs::absolute(output_dir).string();
    if (r.contains("outputs_archive") && r["outputs_archive"].is_string()) {
      std::string tar;
      UnpackStats us;
      std::optional<std::string> e = retry(
          deadline, [&] { return q->get_blob(r["outputs_archive"].get<std::string>(), 1ull << 34, &tar); });
      if (!e) e = unpack_archive(tar, abs, 1ull << 34, &us);
      if (e) std::fprintf(stderr, "wasmjail submit: outputs of %s: %s\n", id.c_str(), e->c_str());
      if (us.refused)
        std::fprintf(
            stderr,
            "wasmjail submit: %llu archive entries that are not plain files or folders were not unpacked\n",
            static_cast<unsigned long long>(us.refused));
      if (r.contains("outputs") && r["outputs"].is_object())
        for (auto it = r["outputs"].begin(); it != r["outputs"].end(); ++it)
          it.value() = abs + "/" + it.key();
    }
    std::optional<std::string> werr;
    std::string out = r.value("stdout", std::string()), errs = r.value("stderr", std::string());
    for (auto [name, data] : {std::pair{"stdout", out}, std::pair{"stderr", errs},
                              std::pair{"exitCode", std::to_string(r.value("exit_code", -1))},
                              std::pair{"result.json", dump(r) + "\n"}})
      if (!werr) werr = write_text(abs + "/" + name, data);
    if (werr) std::fprintf(stderr, "wasmjail submit: %s\n", werr->c_str());
  }
  std::string out = dump(r) + "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  return r.value("status", std::string()) == "ok" ? 0 : 1;
}

}  // namespace wj::cli
