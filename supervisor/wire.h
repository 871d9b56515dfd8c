// The child -> supervisor record pipe: framing and payloads, used by both sides.
//
// A frame is a fixed 12-byte header (magic, type, length; native endianness, since both
// ends are the same binary) followed by `length` payload bytes. The supervisor treats every
// byte as hostile: lengths are bounded, payloads are validated field by field, and any
// malformed frame marks the child as crashed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "v8host/outcome.h"

namespace wj::wire {

constexpr uint32_t kMagic = 0x46524A57;  // "WJRF"
constexpr uint32_t kMaxPayload = 1u << 20;
constexpr size_t kMaxMessage = 64 * 1024;
constexpr size_t kMaxBacktrace = 128;
constexpr size_t kMaxFrameName = 1024;

enum class FrameType : uint16_t {
  kOutcome = 1,    // payload: JSON-encoded RunOutcome; the last frame a child sends
  kViolation = 2,  // payload: int32 syscall number, uint32 audit arch (from SIGSYS)
  kSandbox = 3,    // payload: SandboxRecord (sent once, after lock-down, before the guest runs)
  // payload: V8-serialized code of the entry module (empty: nothing to store). Sent once,
  // right after the entry module is compiled and before any guest code ran.
  kCompiledCode = 4,
  // payload: uint32 count, then `count` ascending uint32 declared-function indices: the
  // functions V8 optimized with TurboFan in this job (v8host/hot_code.h). Sent after the
  // entry function ended, before the outcome; at most kMaxHotFrames per job.
  kHotFunctions = 5,
};
constexpr size_t kMaxHotFrames = 4;
constexpr uint32_t kMaxCompiledCode = 256u << 20;

struct FrameHeader {
  uint32_t magic;
  uint16_t type;
  uint16_t reserved;
  uint32_t length;
};
static_assert(sizeof(FrameHeader) == 12);

struct Frame {
  FrameType type;
  std::string payload;
};

std::string encode_outcome(const RunOutcome& o);
std::string encode_compiled_code(const uint8_t* data, size_t size);

// Async-signal-safe: fills `buf` (at least kViolationFrameSize bytes), allocates nothing.
constexpr size_t kViolationFrameSize = sizeof(FrameHeader) + 8;
void encode_violation(char* buf, int32_t syscall_nr, uint32_t arch);

// Incremental decoder for the supervisor side.
class FrameReader {
 public:
  // Appends bytes; returns an error message once the stream is malformed (sticky).
  std::optional<std::string> feed(const char* data, size_t len);
  std::vector<Frame>& frames() { return frames_; }
  // Compiled-code frames are refused unless allowed (the code cache is on for this job); even
  // then only one, and only before any frame but the sandbox record. Enforced here, from the
  // header, so a hostile child cannot make the supervisor buffer a large frame it will refuse.
  void allow_code_frame(bool allow) { code_allowed_ = allow; }

 private:
  std::string buf_;
  std::vector<Frame> frames_;
  std::optional<std::string> error_;
  bool code_allowed_ = false;
  size_t hot_frames_ = 0;
};

std::string encode_hot_functions(const std::vector<uint32_t>& fns);
// Hostile values are rejected: a count that disagrees with the length, more than
// hot::kMaxHotFunctions indices, an index not below `declared` (the module's function count),
// or indices not strictly ascending.
std::optional<std::vector<uint32_t>> decode_hot_functions(std::string_view payload, uint32_t declared);

// Validates and decodes an outcome payload; nullopt with `error` set when malformed.
std::optional<RunOutcome> decode_outcome(std::string_view payload, std::string* error);
struct ViolationRecord {
  int32_t nr;
  uint32_t arch;
};
std::optional<ViolationRecord> decode_violation(std::string_view payload);

// What the child's lock-down applied (sandbox::Mechanism bits) and the fd number of its
// seccomp listener (-1: none), which the supervisor takes with pidfd_getfd.
struct SandboxRecord {
  uint32_t applied = 0;
  uint32_t skipped = 0;
  int32_t listener_fd = -1;
};
std::string encode_sandbox(const SandboxRecord& r);
// Unknown bits, a mechanism both applied and skipped, or an fd out of range: nullopt.
std::optional<SandboxRecord> decode_sandbox(std::string_view payload, unsigned mechanism_count);

}  // namespace wj::wire
