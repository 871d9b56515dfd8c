// libFuzzer target for the queue's job messages, the worker's intake of hostile bytes: the
// envelope, the blob references, then the job spec once the references point at local
// copies (as the worker does after fetching them). Never a crash; every error says what.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "policies/jobspec.h"
#include "policies/queue_job.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  wj::QueueJob qj;
  if (auto e = wj::parse_queue_job(text, &qj)) {
    if (e->empty()) std::abort();
    return 0;
  }
  if (!wj::valid_job_id(qj.id)) std::abort();
  std::vector<wj::BlobRef> refs;
  if (auto e = wj::find_blob_refs(&qj.job, &refs)) {
    if (e->empty()) std::abort();
    return 0;
  }
  for (const auto& r : refs) {
    if (r.digest.size() != 71) std::abort();
    wj::point_blob_ref_at(r, "/blobs/" + r.digest.substr(7));
  }
  auto spec = wj::parse_job_spec(qj.job.dump(), "job " + qj.id, "/blobs");
  if (!spec && spec.error().message.empty()) std::abort();
  return 0;
}
