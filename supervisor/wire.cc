#include "supervisor/wire.h"
#include "v8host/hot_code.h"

#include <cstring>

#include <nlohmann/json.hpp>

namespace wj::wire {
namespace {

constexpr std::pair<OutcomeKind, const char*> kKinds[] = {
    {OutcomeKind::kReturned, "returned"},
    {OutcomeKind::kExited, "exited"},
    {OutcomeKind::kTrap, "trap"},
    {OutcomeKind::kInvalidModule, "invalid_module"},
    {OutcomeKind::kLinkError, "link_error"},
    {OutcomeKind::kEntryError, "entry_error"},
    {OutcomeKind::kSetupError, "setup_error"},
    {OutcomeKind::kMemoryLimit, "memory_limit"},
    {OutcomeKind::kTimeout, "timeout"},
    {OutcomeKind::kCpuLimit, "cpu_limit"},
    {OutcomeKind::kInternalError, "internal_error"},
};

std::string frame(FrameType type, std::string_view payload) {
  FrameHeader h{kMagic, static_cast<uint16_t>(type), 0, static_cast<uint32_t>(payload.size())};
  std::string out(reinterpret_cast<const char*>(&h), sizeof h);
  out.append(payload);
  return out;
}

}  // namespace

std::string encode_outcome(const RunOutcome& o) {
  nlohmann::json j;
  for (const auto& [k, name] : kKinds)
    if (k == o.kind) j["kind"] = name;
  j["exit_code"] = o.exit_code;
  j["message"] = o.message.substr(0, kMaxMessage);
  std::vector<std::string> bt;
  for (size_t i = 0; i < o.backtrace.size() && i < kMaxBacktrace; ++i)
    bt.push_back(o.backtrace[i].substr(0, kMaxFrameName));
  j["backtrace"] = bt;
  j["compile_ms"] = o.compile_ms;
  j["run_ms"] = o.run_ms;
  j["instantiate_ms"] = o.instantiate_ms;
  j["peak_wasm_memory_bytes"] = o.peak_wasm_memory_bytes;
  j["code_cache"] = o.code_cache;
  std::string text = j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
  return frame(FrameType::kOutcome, text);
}

std::string encode_compiled_code(const uint8_t* data, size_t size) {
  return frame(FrameType::kCompiledCode, std::string_view(reinterpret_cast<const char*>(data), size));
}

std::string encode_hot_functions(const std::vector<uint32_t>& fns) {
  std::string p(4 + 4 * fns.size(), '\0');
  const uint32_t n = static_cast<uint32_t>(fns.size());
  std::memcpy(p.data(), &n, 4);
  if (n) std::memcpy(p.data() + 4, fns.data(), 4 * fns.size());
  return frame(FrameType::kHotFunctions, p);
}

std::optional<std::vector<uint32_t>> decode_hot_functions(std::string_view payload, uint32_t declared) {
  if (payload.size() < 4) return std::nullopt;
  uint32_t n = 0;
  std::memcpy(&n, payload.data(), 4);
  if (n > hot::kMaxHotFunctions || payload.size() != 4 + 4ull * n) return std::nullopt;
  std::vector<uint32_t> out(n);
  if (n) std::memcpy(out.data(), payload.data() + 4, 4ull * n);
  for (size_t i = 0; i < out.size(); ++i)
    if (out[i] >= declared || (i && out[i] <= out[i - 1])) return std::nullopt;
  return out;
}

void encode_violation(char* buf, int32_t syscall_nr, uint32_t arch) {
  FrameHeader h{kMagic, static_cast<uint16_t>(FrameType::kViolation), 0, 8};
  std::memcpy(buf, &h, sizeof h);
  std::memcpy(buf + sizeof h, &syscall_nr, 4);
  std::memcpy(buf + sizeof h + 4, &arch, 4);
}

std::optional<std::string> FrameReader::feed(const char* data, size_t len) {
  if (error_) return error_;
  buf_.append(data, len);
  size_t at = 0;  // frames are taken from here; the consumed prefix is erased once, at the end
  while (buf_.size() - at >= sizeof(FrameHeader)) {
    FrameHeader h;
    std::memcpy(&h, buf_.data() + at, sizeof h);
    if (h.magic != kMagic) return error_ = "bad frame magic";
    const auto type = static_cast<FrameType>(h.type);
    if (type != FrameType::kOutcome && type != FrameType::kViolation && type != FrameType::kSandbox &&
        type != FrameType::kCompiledCode && type != FrameType::kHotFunctions)
      return error_ = "unknown frame type " + std::to_string(h.type);
    if (type == FrameType::kCompiledCode) {
      if (!code_allowed_) return error_ = "compiled code out of turn";
      if (h.length > kMaxCompiledCode) return error_ = "frame too large (" + std::to_string(h.length) + " bytes)";
    } else if (type == FrameType::kHotFunctions &&
               (h.length > 4 + 4ull * hot::kMaxHotFunctions || hot_frames_ >= kMaxHotFrames)) {
      return error_ = "too many or too large hot-function records";
    } else if (h.length > kMaxPayload) {
      return error_ = "frame too large (" + std::to_string(h.length) + " bytes)";
    }
    if (type != FrameType::kSandbox) code_allowed_ = false;  // the code frame's turn has passed
    if (buf_.size() - at < sizeof h + h.length) {
      if (type == FrameType::kCompiledCode) code_allowed_ = true;  // still this frame's turn
      break;
    }
    if (type == FrameType::kHotFunctions) ++hot_frames_;
    frames_.push_back(Frame{type, buf_.substr(at + sizeof h, h.length)});
    at += sizeof h + h.length;
  }
  buf_.erase(0, at);
  return std::nullopt;
}

std::optional<RunOutcome> decode_outcome(std::string_view payload, std::string* error) {
  auto j = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  auto fail = [&](const char* why) -> std::optional<RunOutcome> {
    *error = std::string("malformed outcome record: ") + why;
    return std::nullopt;
  };
  if (!j.is_object()) return fail("not a JSON object");
  RunOutcome o;
  auto kind = j.find("kind");
  if (kind == j.end() || !kind->is_string()) return fail("kind");
  bool found = false;
  for (const auto& [k, name] : kKinds)
    if (*kind == name) o.kind = k, found = true;
  if (!found) return fail("unknown kind");
  auto ec = j.find("exit_code");
  if (ec == j.end() || !ec->is_number_integer()) return fail("exit_code");
  int64_t code = ec->get<int64_t>();
  if (code < INT32_MIN || code > INT32_MAX) return fail("exit_code out of range");
  o.exit_code = static_cast<int32_t>(code);
  auto msg = j.find("message");
  if (msg == j.end() || !msg->is_string() || msg->get_ref<const std::string&>().size() > kMaxMessage)
    return fail("message");
  o.message = *msg;
  auto bt = j.find("backtrace");
  if (bt == j.end() || !bt->is_array() || bt->size() > kMaxBacktrace) return fail("backtrace");
  for (const auto& f : *bt) {
    if (!f.is_string() || f.get_ref<const std::string&>().size() > kMaxFrameName) return fail("backtrace frame");
    o.backtrace.push_back(f);
  }
  for (auto [key, dst] : {std::pair{"compile_ms", &o.compile_ms}, std::pair{"run_ms", &o.run_ms}}) {
    auto v = j.find(key);
    if (v == j.end() || !v->is_number() || v->get<double>() < 0 || v->get<double>() > 1e12) return fail(key);
    *dst = v->get<double>();
  }
  if (auto v = j.find("instantiate_ms"); v != j.end()) {  // optional: older children did not send it
    if (!v->is_number() || v->get<double>() < 0 || v->get<double>() > 1e12) return fail("instantiate_ms");
    o.instantiate_ms = v->get<double>();
  }
  auto peak = j.find("peak_wasm_memory_bytes");
  if (peak == j.end() || !peak->is_number_unsigned()) return fail("peak_wasm_memory_bytes");
  o.peak_wasm_memory_bytes = peak->get<uint64_t>();
  auto cc = j.find("code_cache");
  if (cc != j.end()) {
    if (!cc->is_string() || (*cc != "" && *cc != "hit" && *cc != "miss")) return fail("code_cache");
    o.code_cache = *cc;
  }
  return o;
}

std::optional<ViolationRecord> decode_violation(std::string_view payload) {
  if (payload.size() != 8) return std::nullopt;
  ViolationRecord v;
  std::memcpy(&v.nr, payload.data(), 4);
  std::memcpy(&v.arch, payload.data() + 4, 4);
  if (v.nr < 0 || v.nr > 4096) return std::nullopt;
  return v;
}

std::string encode_sandbox(const SandboxRecord& r) {
  char p[12];
  std::memcpy(p, &r.applied, 4);
  std::memcpy(p + 4, &r.skipped, 4);
  std::memcpy(p + 8, &r.listener_fd, 4);
  return frame(FrameType::kSandbox, std::string_view(p, sizeof p));
}

std::optional<SandboxRecord> decode_sandbox(std::string_view payload, unsigned mechanism_count) {
  if (payload.size() != 12) return std::nullopt;
  SandboxRecord r;
  std::memcpy(&r.applied, payload.data(), 4);
  std::memcpy(&r.skipped, payload.data() + 4, 4);
  std::memcpy(&r.listener_fd, payload.data() + 8, 4);
  const uint32_t known = mechanism_count >= 32 ? ~0u : (1u << mechanism_count) - 1;
  if ((r.applied | r.skipped) & ~known) return std::nullopt;
  if (r.applied & r.skipped) return std::nullopt;
  if (r.listener_fd < -1 || r.listener_fd > 65535) return std::nullopt;
  return r;
}

}  // namespace wj::wire
