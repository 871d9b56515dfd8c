// Storage: turns a JobSpec's StorageSpecs into bytes and host folders, in the supervisor
// (never in the child): inline data: URLs, local files and folders, and urlDownload over
// http(s) with size and time limits and optional sha256 pins. Then builds the Job.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policies/job.h"
#include "policies/jobspec.h"
#include "storage/host_fs.h"

namespace wj {

struct FetchLimits {
  bool downloads_allowed = false;           // the policy's fetch.url_download
  std::vector<std::string> allowed_hosts;  // empty: any host
  uint64_t max_bytes = 256ull << 20;       // per download
  double timeout_ms = 60000;               // per download
  std::shared_ptr<const std::atomic<bool>> cancel;  // set: the download is aborted
};

struct PrepareOptions {
  uint64_t module_bytes_max = 256ull << 20;
  uint64_t stdin_bytes_max = 64ull << 20;  // the job spec's stdin (policy limits.stdin_bytes)
  FetchLimits fetch;
  // Where outputs are written: DIR/<name> for each output. Empty: an output's
  // source_path when it has one, else a fresh folder under $TMPDIR.
  std::string output_dir;
  // The server's output root, opened and checked by the server (open_private_dir): the
  // job's folder `job_dir_name` is made beneath it (mode 0700, must not exist yet) and
  // output_dir names it in results. Null: output_dir is the local user's own folder.
  SharedFd output_root;
  std::string job_dir_name;
  // Local sources must lie beneath one of these folders (openat2 RESOLVE_BENEATH). When
  // not enforced (the local user's own job), any path the job names.
  std::vector<std::string> local_roots;
  bool local_roots_enforced = false;
};

struct PreparedJob {
  Job job;
  std::vector<std::pair<std::string, std::string>> outputs;  // output name -> host folder
  std::string staging_dir;  // holds staged file inputs; remove when the job is done
  std::vector<SharedFd> dir_fds;  // the folders job.dirs[].host_fd refer to
};

// Reads a whole regular file of at most `cap` bytes; `limit` names the cap in messages.
// Opened O_NONBLOCK: a FIFO or device is refused, never waited on.
std::optional<std::string> read_file_capped(const std::string& path, uint64_t cap, std::vector<uint8_t>* out,
                                            const char* limit = "size limit");

// RFC 2397 data: URL -> bytes (base64 or percent-encoded).
std::optional<std::string> decode_data_url(const std::string& url, uint64_t cap, std::vector<uint8_t>* out);

// Lower-case hex sha256 of bytes, and the "sha256:<hex>" pin form.
std::string sha256_hex(const void* data, size_t size);
std::string sha256_pin(const std::vector<uint8_t>& bytes);

// Whether the URL's host (and port) matches one of the policy's allowed_hosts patterns:
// "example.com", "*.example.com" (subdomains), "example.com:8443" (that port only).
bool host_allowed(const std::string& url, const std::vector<std::string>& patterns, std::string* why);

// Downloads an http(s) URL within the limits, following up to 5 redirects, each checked.
std::optional<std::string> download(const std::string& url, const FetchLimits& limits, std::vector<uint8_t>* out);

// Fetches everything the job names and lays out its folders. Errors say which field.
std::optional<std::string> prepare_job(const JobSpec& spec, const PrepareOptions& opts, PreparedJob* out);

// Removes the staging folder of a prepared job and closes its folder fds.
void cleanup_staging(PreparedJob& p);

}  // namespace wj
