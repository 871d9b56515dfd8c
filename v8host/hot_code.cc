#include "v8host/hot_code.h"

#include <algorithm>
#include <cstring>

namespace wj::hot {
namespace {

constexpr uint8_t kSectionCustom = 0, kSectionFunction = 3, kSectionCode = 10;
constexpr char kHintsName[] = "compilationHints";

bool read_leb(const uint8_t* p, size_t size, size_t* at, uint32_t* out) {
  uint32_t v = 0;
  for (int shift = 0; shift < 35; shift += 7) {
    if (*at >= size) return false;
    uint8_t b = p[(*at)++];
    if (shift == 28 && (b & 0xf0)) return false;
    v |= static_cast<uint32_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

void write_leb(std::vector<uint8_t>* out, uint32_t v) {
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    if (v) b |= 0x80;
    out->push_back(b);
  } while (v);
}

struct Section {
  uint8_t id;
  size_t start;    // of the id byte
  size_t payload;  // first payload byte
  size_t end;
};

std::optional<std::vector<Section>> sections(const uint8_t* m, size_t size) {
  static const uint8_t kHeader[8] = {0, 'a', 's', 'm', 1, 0, 0, 0};
  if (size < 8 || std::memcmp(m, kHeader, 8) != 0) return std::nullopt;
  std::vector<Section> out;
  size_t at = 8;
  while (at < size) {
    Section s{m[at], at, 0, 0};
    ++at;
    uint32_t len = 0;
    if (!read_leb(m, size, &at, &len) || len > size - at) return std::nullopt;
    s.payload = at;
    s.end = at + len;
    at = s.end;
    out.push_back(s);
  }
  return out;
}

bool is_hints_section(const uint8_t* m, const Section& s) {
  if (s.id != kSectionCustom) return false;
  size_t at = s.payload;
  uint32_t n = 0;
  if (!read_leb(m, s.end, &at, &n) || n > s.end - at) return false;
  return n == sizeof(kHintsName) - 1 && std::memcmp(m + at, kHintsName, n) == 0;
}

}  // namespace

std::optional<uint32_t> declared_function_count(const uint8_t* module, size_t size) {
  auto secs = sections(module, size);
  if (!secs) return std::nullopt;
  for (const Section& s : *secs) {
    if (s.id != kSectionFunction) continue;
    size_t at = s.payload;
    uint32_t n = 0;
    if (!read_leb(module, s.end, &at, &n)) return std::nullopt;
    return n;
  }
  return 0u;
}

std::optional<RunFunctions> run_functions(const uint8_t* data, size_t size, uint32_t declared) {
  // V8 10.2 src/wasm/wasm-serialization.cc: WriteHeader (magic, version hash, CPU features,
  // flag hash: 4 x uint32), NativeModuleSerializer::WriteHeader (size_t total code size),
  // then WriteCode per declared function: kLazyFunction = 2 or kLiftoffFunction = 3 alone;
  // kTurboFanFunction = 4, then 11 ints (offsets, sizes: code, reloc, source positions and
  // protected instructions are the 8th to 11th), WasmCode::Kind (an int-sized enum),
  // ExecutionTier (int8), and the four byte vectors.
  constexpr size_t kHeader = 16 + sizeof(uint64_t);
  constexpr size_t kCodeHeader = 11 * 4 + 4 + 1;
  RunFunctions fns;
  std::vector<uint32_t>& out = fns.turbofan;
  if (size < kHeader) return std::nullopt;
  uint64_t total_code = 0;
  std::memcpy(&total_code, data + 16, sizeof total_code);
  size_t at = kHeader;
  uint64_t seen_code = 0;
  for (uint32_t i = 0; i < declared; ++i) {
    if (at >= size) return {};
    const uint8_t marker = data[at++];
    if (marker == 2) continue;
    if (marker == 3) {
      if (fns.liftoff.size() < kMaxHotFunctions) fns.liftoff.push_back(i);
      continue;
    }
    if (marker != 4 || size - at < kCodeHeader) return std::nullopt;
    int32_t sizes[4];
    std::memcpy(sizes, data + at + 7 * 4, sizeof sizes);
    at += kCodeHeader;
    uint64_t body = 0;
    for (int32_t s : sizes) {
      if (s < 0) return {};
      body += static_cast<uint64_t>(s);
    }
    if (body > size - at) return {};
    at += static_cast<size_t>(body);
    seen_code += static_cast<uint64_t>(sizes[0]);
    if (out.size() < kMaxHotFunctions) out.push_back(i);
  }
  if (at != size || seen_code != total_code) return std::nullopt;
  return fns;
}

std::optional<std::vector<uint32_t>> function_body_sizes(const uint8_t* module, size_t size) {
  auto secs = sections(module, size);
  auto declared = declared_function_count(module, size);
  if (!secs || !declared) return std::nullopt;
  std::vector<uint32_t> out;
  for (const Section& s : *secs) {
    if (s.id != kSectionCode) continue;
    size_t at = s.payload;
    uint32_t n = 0;
    if (!read_leb(module, s.end, &at, &n) || n != *declared) return std::nullopt;
    out.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t len = 0;
      if (!read_leb(module, s.end, &at, &len) || len > s.end - at) return std::nullopt;
      out.push_back(len);
      at += len;
    }
    return out;
  }
  if (*declared != 0) return std::nullopt;
  return out;
}

std::vector<uint32_t> select_hot(const RunFunctions& fns, const std::vector<uint32_t>* body_sizes,
                                 uint64_t liftoff_budget) {
  if (!body_sizes) return fns.turbofan;
  // The optimized functions stay whatever their size; the budget is for the Liftoff ones.
  uint64_t optimized = 0;
  for (uint32_t i : fns.turbofan) optimized += i < body_sizes->size() ? (*body_sizes)[i] : 0;
  return merge_within_budget(fns.turbofan, fns.liftoff, *body_sizes, optimized + liftoff_budget);
}

std::vector<uint32_t> merge_within_budget(const std::vector<uint32_t>& have, const std::vector<uint32_t>& reported,
                                          const std::vector<uint32_t>& body_sizes, uint64_t budget) {
  std::vector<uint32_t> out;
  uint64_t total = 0;
  for (uint32_t i : have)
    if (i < body_sizes.size()) out.push_back(i), total += body_sizes[i];
  std::vector<uint32_t> added;
  for (uint32_t i : reported)
    if (i < body_sizes.size() && !std::binary_search(have.begin(), have.end(), i)) added.push_back(i);
  std::sort(added.begin(), added.end());
  added.erase(std::unique(added.begin(), added.end()), added.end());
  std::stable_sort(added.begin(), added.end(), [&](uint32_t a, uint32_t b) { return body_sizes[a] < body_sizes[b]; });
  for (uint32_t i : added) {
    if (out.size() >= kMaxHotFunctions || total + body_sizes[i] > budget) break;
    total += body_sizes[i];
    out.push_back(i);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::optional<std::vector<uint8_t>> with_compilation_hints(const std::vector<uint8_t>& module,
                                                          const std::vector<uint32_t>& hot, std::string* error) {
  auto secs = sections(module.data(), module.size());
  if (!secs) {
    *error = "the module's sections cannot be read";
    return std::nullopt;
  }
  auto declared = declared_function_count(module.data(), module.size());
  if (!declared) {
    *error = "the module's function section cannot be read";
    return std::nullopt;
  }
  // One byte per declared function: strategy (bits 0-1), baseline tier (2-3), top tier (4-5).
  constexpr uint8_t kHot = 2 /*eager*/ | 2 << 2 /*baseline: optimized*/ | 2 << 4 /*top: optimized*/;
  constexpr uint8_t kCold = 1;  // lazy, default tiers
  std::vector<uint8_t> hints(*declared, kCold);
  uint32_t prev = 0;
  for (size_t i = 0; i < hot.size(); ++i) {
    if (hot[i] >= *declared || (i && hot[i] <= prev)) {
      *error = "hot function index " + std::to_string(hot[i]) + " is out of order or out of range";
      return std::nullopt;
    }
    prev = hot[i];
    hints[hot[i]] = kHot;
  }
  std::vector<uint8_t> section;
  write_leb(&section, sizeof(kHintsName) - 1);
  section.insert(section.end(), kHintsName, kHintsName + sizeof(kHintsName) - 1);
  write_leb(&section, *declared);
  section.insert(section.end(), hints.begin(), hints.end());

  std::vector<uint8_t> out(module.begin(), module.begin() + 8);
  out.reserve(module.size() + section.size() + 8);
  bool inserted = false;
  auto insert = [&] {
    out.push_back(kSectionCustom);
    write_leb(&out, static_cast<uint32_t>(section.size()));
    out.insert(out.end(), section.begin(), section.end());
    inserted = true;
  };
  for (const Section& s : *secs) {
    if (is_hints_section(module.data(), s)) continue;
    if (s.id == kSectionCode && !inserted) insert();
    out.insert(out.end(), module.begin() + static_cast<long>(s.start), module.begin() + static_cast<long>(s.end));
  }
  if (!inserted) insert();  // no code section: no function either, the hints are empty
  return out;
}

}  // namespace wj::hot
