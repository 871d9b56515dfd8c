// Helpers shared by the WASI host functions: guest-memory access (after a bounds check),
// host errno -> WASI errno, time conversion.
#pragma once

#include <sys/uio.h>
#include <time.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "v8host/wasi.h"

namespace wj::wasi {

// Host function signature: arguments arrive widened to u64, the result is a WASI errno.
using Handler = uint32_t (*)(Wasi& w, const uint64_t* a);

// Host errno -> WASI errno, for calls that cannot escape a preopen (EXDEV is a real
// cross-device error there). Unknown values become ERRNO_IO.
uint16_t errno_to_wasi(int e);

// Callers check m.ok(p, n) first.
inline uint32_t rd32(const GuestMemory& m, uint64_t p) {
  uint32_t v;
  std::memcpy(&v, m.at(p), 4);
  return v;
}
inline void wr16(const GuestMemory& m, uint64_t p, uint16_t v) {
  std::memcpy(m.at(p), &v, 2);
}
inline void wr32(const GuestMemory& m, uint64_t p, uint32_t v) {
  std::memcpy(m.at(p), &v, 4);
}
inline void wr64(const GuestMemory& m, uint64_t p, uint64_t v) {
  std::memcpy(m.at(p), &v, 8);
}

inline uint64_t to_ns(const timespec& ts) {
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Guest iovecs (ptr u32, len u32) -> host iovecs, each checked against `m`. At most IOV_MAX
// entries (ERRNO_INVAL beyond, as the kernel would say).
uint32_t gather_iovecs(const GuestMemory& m, uint64_t iovs, uint64_t n, std::vector<iovec>* out);

}  // namespace wj::wasi
