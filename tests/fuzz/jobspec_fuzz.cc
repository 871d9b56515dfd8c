// libFuzzer target for the job-spec parser: any bytes give a job or a located error, never a
// crash. The parser touches no files (sources are fetched later, by the supervisor).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "policies/jobspec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto j = wj::parse_job_spec(text, "fuzz.yaml", "/base");
  if (!j) {
    if (j.error().message.empty()) std::abort();  // every error says what is wrong
    return 0;
  }
  // An accepted job satisfies the parser's own promises.
  if (j->entry_point.empty()) std::abort();
  for (const auto& o : j->outputs)
    if (o.name.empty() || o.path.empty() || o.path[0] != '/') std::abort();
  return 0;
}
