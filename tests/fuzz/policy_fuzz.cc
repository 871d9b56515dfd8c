// libFuzzer target for the policy parser: any bytes must give a policy or a located
// error, never a crash; and every accepted policy must render (policy show) to YAML that
// parses back to the same rendering.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "policies/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  // kRefuse: `extends` must not make the fuzzer read files (a fifo or /proc could block).
  auto p = wj::parse_policy(text, "fuzz.yaml", {}, wj::Extends::kRefuse);
  if (!p) {
    if (p.error().message.empty()) std::abort();  // every error says what is wrong
    return 0;
  }
  std::string shown = wj::to_yaml(p.value());
  auto again = wj::parse_policy(shown, "fuzz.yaml", {}, wj::Extends::kRefuse);
  if (!again || wj::to_yaml(again.value()) != shown) {
    std::fprintf(stderr, "round trip failed:\n%s\n%s\n", shown.c_str(),
                 again ? wj::to_yaml(again.value()).c_str() : again.error().str().c_str());
    std::abort();
  }
  if (p->limits.memory) (void)wj::check_job_limits(p->limits, p->limits);
  (void)wj::v8_flags_for(p->wasm);
  return 0;
}
