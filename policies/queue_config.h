// QueueSettings: how `worker`, `submit` and `serve` (as a gateway) reach NATS JetStream,
// parsed from a YAML `queue:` map (configs/worker.yaml documents every key).
#pragma once

#include <string>
#include <vector>

#include "policies/config_util.h"

namespace wj {

// How to reach NATS JetStream and which stream and buckets the queue uses.
struct QueueSettings {
  std::vector<std::string> urls;          // nats://host:port (or tls://), tried in order
  std::string user, password;             // user/password auth
  std::string creds_file;                 // a .creds file (JWT + nkey seed)
  std::string nkey, nkey_seed_file;       // an nkey user: its public key (U...) and a file holding its seed
  std::string tls_ca, tls_cert, tls_key;  // TLS, where the server asks for it
  std::string stream = "WJ_JOBS";         // WorkQueue stream of jobs
  std::string subject_prefix = "wj";      // jobs on PREFIX.jobs; logs, cancel on PREFIX.logs.ID, ...
  std::string results_bucket = "wj_results";
  std::string blobs_bucket = "wj_blobs";
  int replicas = 3;                     // of the stream and the buckets (R3 on a 3-node cluster)
  double duplicate_window_ms = 600000;  // Nats-Msg-Id de-duplication window of the stream
  double connect_timeout_ms = 5000;
  double result_ttl_ms = 7 * 86400e3;  // results kept this long (and de-duplicate reruns)
  double blob_ttl_ms = 86400e3;        // blobs kept this long after their last upload
};

// Fills `q` from a YAML `queue:` map.
void parse_queue_settings(const YAML::Node& n, const cfg::Doc& doc, QueueSettings* q);

// "nats://a:4222,nats://b:4222" -> urls; an error names the bad one.
cfg::Expected<std::vector<std::string>> parse_nats_urls(const std::string& list);

}  // namespace wj
