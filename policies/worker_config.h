// WorkerConfig: the YAML configuration of `wasmjail worker` and the `queue:` section shared
// with `submit` (configs/worker.yaml documents every key). Text -> validated struct.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "policies/config_util.h"
#include "policies/server_config.h"

namespace wj {

// How to reach NATS JetStream and which stream and buckets the queue uses.
struct QueueSettings {
  std::vector<std::string> urls;  // nats://host:port (or tls://), tried in order
  std::string user, password;     // user/password auth
  std::string creds_file;         // a .creds file (JWT + nkey seed)
  std::string nkey, nkey_seed_file;  // an nkey user: its public key (U...) and a file holding its seed
  std::string tls_ca, tls_cert, tls_key;  // TLS, where the server asks for it
  std::string stream = "WJ_JOBS";         // WorkQueue stream of jobs
  std::string subject_prefix = "wj";      // jobs on PREFIX.jobs; logs, cancel on PREFIX.logs.ID, ...
  std::string results_bucket = "wj_results";
  std::string blobs_bucket = "wj_blobs";
  int replicas = 3;               // of the stream and the buckets (R3 on a 3-node cluster)
  double duplicate_window_ms = 600000;  // Nats-Msg-Id de-duplication window of the stream
  double connect_timeout_ms = 5000;
  double result_ttl_ms = 7 * 86400e3;  // results kept this long (and de-duplicate reruns)
  double blob_ttl_ms = 86400e3;        // blobs kept this long after their last upload
};

struct WorkerConfig {
  QueueSettings queue;
  size_t concurrency = 0;          // 0: the number of cores
  double ack_wait_ms = 30000;      // a job not acked (nor in progress) this long is redelivered
  int max_deliver = 5;             // deliveries before a job ends `failed`
  double drain_timeout_ms = 30000; // SIGTERM: running jobs get this long, then are naked
  std::string default_policy = "default";
  std::vector<std::string> allowed_policies;  // empty: only default_policy
  std::vector<std::string> policy_dirs;
  std::string cache_dir = "default";          // code cache and blob cache ("" = no code cache)
  uint64_t cache_max_bytes = 1ull << 30;
  uint64_t max_blob_bytes = 256ull << 20;     // largest module, input or output archive taken
  std::string work_dir;                       // outputs while a job runs: DIR/<id>/<name>
  std::vector<Listener> metrics_listen;       // /metrics and /healthz (TCP needs token_file)
  std::string token_file;
  std::string log_format = "json";
};

WorkerConfig default_worker_config();
cfg::Expected<WorkerConfig> load_worker_config(const std::string& path);

// Fills `q` from a YAML `queue:` map (shared by the worker's and serve's configs).
void parse_queue_settings(const YAML::Node& n, const cfg::Doc& doc, QueueSettings* q);

// "nats://a:4222,nats://b:4222" -> urls; an error names the bad one.
cfg::Expected<std::vector<std::string>> parse_nats_urls(const std::string& list);

}  // namespace wj
