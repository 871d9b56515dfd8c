// libFuzzer target for the child -> supervisor record stream: any bytes, split anywhere,
// give frames or a sticky error, and every frame's decoder either accepts or refuses it.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "supervisor/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  wj::wire::FrameReader rd;
  rd.allow_code_frame(data[0] & 1);
  size_t step = 1 + data[1] % 64;  // feed in chunks of varying size
  for (size_t at = 2; at < size; at += step) {
    size_t n = std::min(step, size - at);
    if (rd.feed(reinterpret_cast<const char*>(data + at), n)) break;
  }
  for (const auto& f : rd.frames()) {
    std::string err;
    switch (f.type) {
      case wj::wire::FrameType::kOutcome:
        if (!wj::wire::decode_outcome(f.payload, &err) && err.empty()) std::abort();
        break;
      case wj::wire::FrameType::kViolation: (void)wj::wire::decode_violation(f.payload); break;
      case wj::wire::FrameType::kSandbox: (void)wj::wire::decode_sandbox(f.payload, 10); break;
      case wj::wire::FrameType::kCompiledCode:
        if (f.payload.size() > wj::wire::kMaxCompiledCode) std::abort();
        break;
    }
  }
  return 0;
}
