// WorkerConfig: the YAML configuration of `wasmjail worker` and the `queue:` section shared
// with `submit` (configs/worker.yaml documents every key). Text -> validated struct.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "policies/config_util.h"
#include "policies/queue_config.h"
#include "policies/server_config.h"

namespace wj {

struct WorkerConfig {
  QueueSettings queue;
  size_t concurrency = 0;           // 0: the number of cores
  double ack_wait_ms = 30000;       // a job not acked (nor in progress) this long is redelivered
  int max_deliver = 5;              // deliveries before a job ends `failed`
  double drain_timeout_ms = 30000;  // SIGTERM: running jobs get this long, then are naked
  std::string default_policy = "default";
  std::vector<std::string> allowed_policies;  // empty: only default_policy
  std::vector<std::string> policy_dirs;
  std::string cache_dir = "default";  // code cache and blob cache ("" = no code cache)
  uint64_t cache_max_bytes = 1ull << 30;
  uint64_t max_blob_bytes = 256ull << 20;  // largest module, input or output archive taken
  std::string work_dir;                    // outputs while a job runs: DIR/<id>/<name>
  std::vector<Listener> metrics_listen;    // /metrics and /healthz (TCP needs token_file)
  std::string token_file;
  std::string log_format = "json";
};

WorkerConfig default_worker_config();
cfg::Expected<WorkerConfig> load_worker_config(const std::string& path);

}  // namespace wj
