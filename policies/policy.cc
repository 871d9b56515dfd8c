#include "policies/policy.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "policies/seccomp_names.h"

namespace wj {

using cfg::ConfigError;
using cfg::Doc;
using cfg::Location;

namespace {

constexpr uint64_t kKiB = 1024, kTiB = 1ull << 40;
constexpr double kMaxDurationMs = 720.0 * 3600 * 1000;  // 30 days
constexpr uint64_t kWasmPage = 64 * kKiB;
constexpr size_t kMaxExtendsDepth = 16;

// ---- limits -----------------------------------------------------------------------

enum class LimitKind { kDuration, kBytes, kCount, kCores };
struct LimitField {
  std::string_view key;
  LimitKind kind;
  std::optional<double> Limits::*dur = nullptr;  // durations and cores (a fraction)
  std::optional<uint64_t> Limits::*num = nullptr;
  uint64_t max = 0;
};

const std::vector<LimitField>& limit_fields() {
  static const std::vector<LimitField> k = {
      {"wall_time", LimitKind::kDuration, &Limits::wall_time_ms, nullptr, 0},
      {"cpu_time", LimitKind::kDuration, &Limits::cpu_time_ms, nullptr, 0},
      {"memory", LimitKind::kBytes, nullptr, &Limits::memory, 16 * kTiB},
      {"wasm_memory", LimitKind::kBytes, nullptr, &Limits::wasm_memory, 16 * kTiB},
      {"stdout_bytes", LimitKind::kBytes, nullptr, &Limits::stdout_bytes, kTiB},
      {"stderr_bytes", LimitKind::kBytes, nullptr, &Limits::stderr_bytes, kTiB},
      {"output_bytes", LimitKind::kBytes, nullptr, &Limits::output_bytes, kTiB},
      {"output_files", LimitKind::kCount, nullptr, &Limits::output_files, 1u << 30},
      {"open_files", LimitKind::kCount, nullptr, &Limits::open_files, 1u << 20},
      {"module_bytes", LimitKind::kBytes, nullptr, &Limits::module_bytes, kTiB},
      {"stdin_bytes", LimitKind::kBytes, nullptr, &Limits::stdin_bytes, kTiB},
      // Tasks in the job's cgroup (pids.max): V8 starts up to 8 worker threads beside the
      // main thread and the watchdog, so a job needs up to 10.
      {"processes", LimitKind::kCount, nullptr, &Limits::processes, 1u << 22},
      {"cpu_quota", LimitKind::kCores, &Limits::cpu_quota, nullptr, 0},
  };
  return k;
}

std::vector<std::string_view> keys_of(const std::vector<LimitField>& f) {
  std::vector<std::string_view> out;
  for (const auto& x : f) out.push_back(x.key);
  return out;
}

std::string format_cores(double cores) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", cores);
  return buf;
}

std::string format_limit(const LimitField& f, const Limits& l) {
  if (f.kind == LimitKind::kCores) return (l.*f.dur) ? format_cores(*(l.*f.dur)) : "unlimited";
  if (f.dur) return (l.*f.dur) ? cfg::format_duration_ms(*(l.*f.dur)) : "unlimited";
  if (!(l.*f.num)) return "unlimited";
  return f.kind == LimitKind::kBytes ? cfg::format_bytes(*(l.*f.num)) : std::to_string(*(l.*f.num));
}

// Durations are kept to whole microseconds, so a rendered policy parses back identically.
double parse_duration_field(const YAML::Node& n, const Doc& doc, const std::string& what) {
  double ms = cfg::as_duration_ms(n, doc, what);
  ms = std::round(ms * 1000) / 1000.0;
  if (ms <= 0)
    doc.fail(n, what + " must be greater than zero (leave it out, or write unlimited, for no limit)");
  if (ms > kMaxDurationMs) doc.fail(n, what + " must be at most 720h");
  return ms;
}

uint64_t parse_positive_bytes(const YAML::Node& n, const Doc& doc, const std::string& what, uint64_t max) {
  uint64_t b = cfg::as_bytes(n, doc, what);
  if (b == 0)
    doc.fail(n, what + " must be greater than zero (leave it out, or write unlimited, for no limit)");
  if (b > max) doc.fail(n, what + " must be at most " + cfg::format_bytes(max));
  return b;
}

// CPU cores as a plain number: 0.5, 2. The cgroup's quota is counted in microseconds per
// 100 ms period, so 0.01 (1 ms per period) is the smallest that means anything.
constexpr double kMinCores = 0.01, kMaxCores = 1024;
double parse_cores(const YAML::Node& n, const Doc& doc, const std::string& what) {
  const std::string s = n.IsScalar() ? n.Scalar() : std::string();
  char* end = nullptr;
  errno = 0;
  double v = s.empty() || !(std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '.')
                 ? -1
                 : std::strtod(s.c_str(), &end);
  if (v < 0 || errno != 0 || !end || *end != '\0' || !std::isfinite(v))
    doc.fail(n, what + " must be a number of CPU cores, like 0.5 or 2");
  if (v == 0)
    doc.fail(n, what + " must be greater than zero (leave it out, or write unlimited, for no limit)");
  if (v < kMinCores) doc.fail(n, what + " must be at least 0.01 (one hundredth of a core)");
  if (v > kMaxCores) doc.fail(n, what + " must be at most 1024 cores");
  return std::round(v * 1000) / 1000.0;  // kept to thousandths, so a rendered policy parses back
}

bool is_unlimited(const YAML::Node& n) {
  return n.IsScalar() && n.Scalar() == "unlimited";
}

// ---- small validators --------------------------------------------------------------

bool valid_utf8_text(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return false;  // control characters, newlines included
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? c : (c & (0x7f >> len));
    for (size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc >> 6) != 2) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += len;
  }
  return true;
}

bool valid_policy_name(const std::string& s) {
  if (s.empty() || s.size() > 64 || s[0] == '.' || s[0] == '-') return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  return true;
}

bool valid_host(const std::string& h) {
  std::string s = h;
  auto colon = s.rfind(':');
  if (colon != std::string::npos) {
    std::string port = s.substr(colon + 1);
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit)) return false;
    int p = std::atoi(port.c_str());
    if (p < 1 || p > 65535) return false;
    s.resize(colon);
  }
  if (s.rfind("*.", 0) == 0) s.erase(0, 2);
  if (s.empty() || s.size() > 253) return false;
  size_t label = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == '.') {
      if (label == 0 || label > 63) return false;
      if (s[i - 1] == '-' || s[i - label] == '-') return false;
      label = 0;
      continue;
    }
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    ++label;
  }
  return true;
}

std::string suggestion(std::string_view word, const std::vector<std::string>& candidates) {
  std::vector<std::string_view> views(candidates.begin(), candidates.end());
  auto c = cfg::closest(word, views);
  return c ? " (did you mean \"" + *c + "\"?)" : "";
}

// An unsigned integer in decimal or 0x hex, as a YAML scalar.
uint64_t as_u64(const YAML::Node& n, const Doc& doc, const std::string& what) {
  if (n.IsScalar()) {
    const std::string& s = n.Scalar();
    bool hex = s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    std::string digits = hex ? s.substr(2) : s;
    bool ok =
        !digits.empty() && digits.size() <= 20 && std::all_of(digits.begin(), digits.end(), [&](char c) {
          return hex ? std::isxdigit(static_cast<unsigned char>(c))
                     : std::isdigit(static_cast<unsigned char>(c));
        });
    if (ok) {
      errno = 0;
      char* end = nullptr;
      unsigned long long v = std::strtoull(digits.c_str(), &end, hex ? 16 : 10);
      if (errno == 0 && end && *end == '\0') return v;
    }
  }
  doc.fail(n, what + " must be an unsigned 64-bit integer (decimal or 0x hex)");
}

std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// ---- seccomp -----------------------------------------------------------------------

int resolve_syscall_or_fail(const YAML::Node& n, const Doc& doc, const std::string& where) {
  std::string name = cfg::as_string(n, doc, where + " entries");
  auto nr = seccomp_names::resolve_syscall(name);
  if (!nr)
    doc.fail(n, "unknown system call \"" + name + "\" in " + where +
                    suggestion(name, seccomp_names::all_syscall_names()));
  return *nr;
}

std::optional<SeccompAction> parse_action(const std::string& s, std::string* err) {
  if (s == "kill") return SeccompAction{SeccompAction::kKill, 0};
  if (s == "trap") return SeccompAction{SeccompAction::kTrap, 0};
  if (s == "log") return SeccompAction{SeccompAction::kLog, 0};
  if (s.rfind("errno:", 0) == 0) {
    std::string name = s.substr(6);
    if (auto e = seccomp_names::resolve_errno(name)) return SeccompAction{SeccompAction::kErrno, *e};
    *err = "unknown errno name \"" + name + "\"" + suggestion(name, seccomp_names::all_errno_names());
    return std::nullopt;
  }
  *err =
      "seccomp.default_action must be kill, trap, log or errno:NAME (such as errno:EPERM), not \"" + s + "\"";
  return std::nullopt;
}

const std::vector<std::pair<std::string_view, ArgCondition::Op>>& arg_ops() {
  static const std::vector<std::pair<std::string_view, ArgCondition::Op>> k = {
      {"eq", ArgCondition::kEq},
      {"ne", ArgCondition::kNe},
      {"lt", ArgCondition::kLt},
      {"le", ArgCondition::kLe},
      {"gt", ArgCondition::kGt},
      {"ge", ArgCondition::kGe},
      {"masked_eq", ArgCondition::kMaskedEq}};
  return k;
}

std::string_view op_name(ArgCondition::Op op) {
  for (const auto& [n, o] : arg_ops())
    if (o == op) return n;
  return "?";
}

// ---- wasm --------------------------------------------------------------------------

struct AllowedFlag {
  std::string_view name;
  bool is_int;
  int64_t min = 0, max = 0;
};

const std::vector<AllowedFlag>& allowed_flags() {
  // Tuning only: nothing here weakens bounds checks, stack checks or code protection.
  static const std::vector<AllowedFlag> k = {{"wasm-lazy-compilation", false},
                                             {"wasm-lazy-validation", false},
                                             {"wasm-loop-unrolling", false},
                                             {"wasm-loop-peeling", false},
                                             {"wasm-inlining", false},
                                             {"wasm-speculative-inlining", false},
                                             {"wasm-opt", false},
                                             {"single-threaded", false},
                                             {"stack-size", true, 64, 16384},
                                             {"wasm-num-compilation-tasks", true, 0, 64},
                                             {"wasm-tiering-budget", true, 1, 1 << 30}};
  return k;
}

// Validates one wasm.v8_flags entry; returns its canonical spelling and sets *key to the
// flag's name (for override by key).
std::string check_v8_flag(const YAML::Node& n, const Doc& doc, std::string* key) {
  std::string f = cfg::as_string(n, doc, "wasm.v8_flags entries");
  auto reject = [&](const std::string& why) { doc.fail(n, "wasm.v8_flags: \"" + f + "\" " + why); };
  if (f.rfind("--", 0) != 0) reject("must start with --");
  std::string body = f.substr(2), value;
  auto eq = body.find('=');
  bool has_value = eq != std::string::npos;
  if (has_value) value = body.substr(eq + 1), body.resize(eq);
  std::replace(body.begin(), body.end(), '_', '-');
  bool negated = body.rfind("no-", 0) == 0;
  std::string name = negated ? body.substr(3) : body;
  if (name == "liftoff" || name == "liftoff-only" || name == "wasm-tier-up" || name == "wasm-dynamic-tiering")
    reject("is set by wasm.tier (liftoff, turbofan or tiered); use that instead");
  if (name.rfind("experimental-wasm-", 0) == 0) reject("is set by wasm.features; use that instead");
  const AllowedFlag* a = nullptr;
  for (const auto& x : allowed_flags())
    if (x.name == name) a = &x;
  if (!a) reject("is not an allowed V8 flag (allowed: " + v8_flag_allowlist() + ")");
  *key = name;
  if (!a->is_int) {
    if (has_value) reject("takes no value (write --" + name + " or --no-" + name + ")");
    return "--" + body;
  }
  if (negated || !has_value) reject("needs a value (--" + name + "=N)");
  char* end = nullptr;
  errno = 0;
  long long v = value.empty() ? 0 : std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || !end || *end || errno || v < a->min || v > a->max)
    reject("needs an integer between " + std::to_string(a->min) + " and " + std::to_string(a->max));
  return "--" + name + "=" + std::to_string(v);
}

std::string flag_key(const std::string& canonical) {
  std::string body = canonical.substr(2);
  body = body.substr(0, body.find('='));
  return body.rfind("no-", 0) == 0 ? body.substr(3) : body;
}

// ---- one file ----------------------------------------------------------------------

using Origins = std::map<std::string, Location>;

// One policy file as written: only what it sets, where, and what it extends.
struct Layer {
  Policy p;
  bool has_name = false, has_description = false;
  Origins origins;
  std::set<std::string> unlimited;  // "limits.memory" written as unlimited
  std::optional<std::string> extends;
  Location extends_at;
};

const std::vector<std::string_view> kTopKeys = {"name",    "description", "extends", "limits", "isolation",
                                                "seccomp", "wasm",        "fetch",   "output"};

void parse_isolation(const YAML::Node& n, const Doc& doc, Layer* L) {
  std::vector<std::string_view> keys;
  for (size_t i = 0; i < kMechanismCount; ++i) keys.push_back(to_string(static_cast<Mechanism>(i)));
  keys.push_back("net_namespace_kind");
  cfg::check_map(n, doc, "isolation", keys);
  if (YAML::Node v = n["net_namespace_kind"]; v.IsDefined()) {
    std::string s = cfg::as_string(v, doc, "isolation.net_namespace_kind");
    std::optional<NetNamespaceKind> kind;
    for (NetNamespaceKind k : {NetNamespaceKind::kPerJob, NetNamespaceKind::kSharedEmpty})
      if (s == to_string(k)) kind = k;
    if (!kind) {
      auto c = cfg::closest(s, {"per_job", "shared_empty"});
      doc.fail(v, "isolation.net_namespace_kind must be per_job or shared_empty, not \"" + s + "\"" +
                      (c ? " (did you mean \"" + *c + "\"?)" : ""));
    }
    L->p.isolation.net_namespace_kind = kind;
    L->origins["isolation.net_namespace_kind"] = doc.at(v);
  }
  for (size_t i = 0; i < kMechanismCount; ++i) {
    YAML::Node v = n[std::string(keys[i])];
    if (!v.IsDefined()) continue;
    std::string what = "isolation." + std::string(keys[i]);
    std::string s = cfg::as_string(v, doc, what);
    std::optional<Isolation> lvl;
    for (Isolation x : {Isolation::kRequired, Isolation::kBestEffort, Isolation::kOff})
      if (s == to_string(x)) lvl = x;
    if (!lvl) {
      auto c = cfg::closest(s, {"required", "best_effort", "off"});
      doc.fail(v, what + " must be required, best_effort or off, not \"" + s + "\"" +
                      (c ? " (did you mean \"" + *c + "\"?)" : ""));
    }
    L->p.isolation.level[i] = lvl;
    L->origins[what] = doc.at(v);
  }
}

SyscallRule parse_allow_entry(const YAML::Node& e, const Doc& doc) {
  SyscallRule r;
  // (Never assign to a YAML::Node variable: that overwrites the node it refers to.)
  const YAML::Node name_node = e.IsMap() ? e["name"] : e;
  if (e.IsMap()) {
    cfg::check_map(e, doc, "seccomp.allow entry", {"name", "args"});
    if (!name_node.IsDefined()) doc.fail(e, "seccomp.allow entry needs a name");
  } else if (!e.IsScalar()) {
    doc.fail(e, "seccomp.allow entries must be a syscall name or {name: NAME, args: [...]}");
  }
  r.number = resolve_syscall_or_fail(name_node, doc, "seccomp.allow");
  r.name = name_node.Scalar();
  if (seccomp_names::is_dangerous(r.name))
    doc.fail(name_node,
             "seccomp.allow: " + r.name +
                 " is in the sandbox's always-kill set (it can leave the sandbox or reach the kernel's "
                 "riskiest interfaces) and cannot be allowed");
  if (seccomp_names::is_enosys(r.name))
    doc.fail(name_node,
             "seccomp.allow: " + r.name +
                 " is always answered with ENOSYS (libc then falls back to an allowed call) and cannot "
                 "be allowed");
  if (!e.IsMap() || !e["args"].IsDefined()) return r;
  YAML::Node args = e["args"];
  if (!args.IsSequence()) doc.fail(args, "seccomp.allow " + r.name + " args must be a list");
  if (args.size() > 6) doc.fail(args, "seccomp.allow " + r.name + " has more than 6 argument conditions");
  for (const auto& a : args) {
    std::string what = "seccomp.allow " + r.name + " args";
    cfg::check_map(a, doc, what + " entry", {"index", "op", "value", "mask"});
    if (!a["index"].IsDefined() || !a["op"].IsDefined() || !a["value"].IsDefined())
      doc.fail(a, what + " entries need index, op and value");
    ArgCondition c;
    c.index = static_cast<unsigned>(cfg::as_int(a["index"], doc, what + " index", 0, 5));
    std::string op = cfg::as_string(a["op"], doc, what + " op");
    bool found = false;
    std::vector<std::string_view> names;
    for (const auto& [nm, o] : arg_ops()) {
      names.push_back(nm);
      if (nm == op) c.op = o, found = true;
    }
    if (!found) {
      auto s = cfg::closest(op, names);
      doc.fail(a["op"], what + " op must be eq, ne, lt, le, gt, ge or masked_eq, not \"" + op + "\"" +
                            (s ? " (did you mean \"" + *s + "\"?)" : ""));
    }
    c.value = as_u64(a["value"], doc, what + " value");
    if (c.op == ArgCondition::kMaskedEq) {
      if (!a["mask"].IsDefined()) doc.fail(a, what + ": masked_eq needs a mask");
      c.mask = as_u64(a["mask"], doc, what + " mask");
      if ((c.value & ~c.mask) != 0)
        doc.fail(a["value"], what + ": value " + hex(c.value) + " has bits outside mask " + hex(c.mask) +
                                 ", so the condition can never hold");
    } else if (a["mask"].IsDefined()) {
      doc.fail(a["mask"], what + ": mask is only used with op masked_eq");
    }
    r.args.push_back(c);
  }
  return r;
}

void parse_seccomp(const YAML::Node& n, const Doc& doc, Layer* L) {
  cfg::check_map(n, doc, "seccomp", {"default_action", "allow", "kill", "errno"});
  SeccompSettings& s = L->p.seccomp;
  if (YAML::Node d = n["default_action"]; d.IsDefined()) {
    std::string err;
    s.default_action = parse_action(cfg::as_string(d, doc, "seccomp.default_action"), &err);
    if (!s.default_action)
      doc.fail(d, err.rfind("seccomp.", 0) == 0 ? err : "seccomp.default_action: " + err);
  }
  if (YAML::Node a = n["allow"]; a.IsDefined()) {
    if (!a.IsSequence()) doc.fail(a, "seccomp.allow must be a list");
    for (const auto& e : a) {
      SyscallRule r = parse_allow_entry(e, doc);
      std::string key = "seccomp.allow." + r.name;
      if (L->origins.count(key)) doc.fail(e, "seccomp.allow lists " + r.name + " twice");
      L->origins[key] = doc.at(e);
      s.allow.push_back(std::move(r));
    }
  }
  if (YAML::Node k = n["kill"]; k.IsDefined()) {
    if (!k.IsSequence()) doc.fail(k, "seccomp.kill must be a list");
    for (const auto& e : k) {
      resolve_syscall_or_fail(e, doc, "seccomp.kill");
      std::string key = "seccomp.kill." + e.Scalar();
      if (L->origins.count(key)) doc.fail(e, "seccomp.kill lists " + e.Scalar() + " twice");
      L->origins[key] = doc.at(e);
      s.kill.push_back(e.Scalar());
    }
  }
  if (YAML::Node m = n["errno"]; m.IsDefined()) {
    if (!m.IsMap()) doc.fail(m, "seccomp.errno must be a mapping of syscall name to errno name");
    for (auto it = m.begin(); it != m.end(); ++it) {
      resolve_syscall_or_fail(it->first, doc, "seccomp.errno");
      std::string sys = it->first.Scalar();
      std::string key = "seccomp.errno." + sys;
      if (L->origins.count(key)) doc.fail(it->first, "duplicate key \"" + sys + "\" in seccomp.errno");
      if (seccomp_names::is_dangerous(sys) || seccomp_names::is_enosys(sys))
        doc.fail(it->first, "seccomp.errno: " + sys + " is handled by the sandbox itself (" +
                                (seccomp_names::is_dangerous(sys) ? "always killed" : "always ENOSYS") +
                                ") and cannot be changed");
      std::string en = cfg::as_string(it->second, doc, "seccomp.errno." + sys);
      auto e = seccomp_names::resolve_errno(en);
      if (!e)
        doc.fail(it->second, "unknown errno name \"" + en + "\" for seccomp.errno." + sys +
                                 suggestion(en, seccomp_names::all_errno_names()));
      L->origins[key] = doc.at(it->first);
      s.errno_.emplace_back(sys, *e);
    }
  }
}

void parse_wasm(const YAML::Node& n, const Doc& doc, Layer* L) {
  cfg::check_map(n, doc, "wasm", {"tier", "features", "v8_flags"});
  WasmSettings& w = L->p.wasm;
  if (YAML::Node t = n["tier"]; t.IsDefined()) {
    std::string s = cfg::as_string(t, doc, "wasm.tier");
    for (Tier x : {Tier::kLiftoff, Tier::kTurbofan, Tier::kTiered})
      if (s == to_string(x)) w.tier = x;
    if (!w.tier) {
      auto c = cfg::closest(s, {"liftoff", "turbofan", "tiered"});
      doc.fail(t, "wasm.tier must be liftoff, turbofan or tiered, not \"" + s + "\"" +
                      (c ? " (did you mean \"" + *c + "\"?)" : ""));
    }
  }
  if (YAML::Node f = n["features"]; f.IsDefined()) {
    std::vector<std::string_view> names;
    for (const auto& x : wasm_features()) names.push_back(x.name);
    cfg::check_map(f, doc, "wasm.features", names);
    for (size_t i = 0; i < names.size(); ++i)
      if (YAML::Node v = f[std::string(names[i])]; v.IsDefined())
        w.features[i] = cfg::as_bool(v, doc, "wasm.features." + std::string(names[i]));
  }
  if (YAML::Node fl = n["v8_flags"]; fl.IsDefined()) {
    if (!fl.IsSequence()) doc.fail(fl, "wasm.v8_flags must be a list");
    std::set<std::string> seen;
    for (const auto& e : fl) {
      std::string key;
      std::string canon = check_v8_flag(e, doc, &key);
      if (!seen.insert(key).second) doc.fail(e, "wasm.v8_flags sets --" + key + " twice");
      w.v8_flags.push_back(canon);
    }
    L->origins["wasm.v8_flags"] = doc.at(fl);
  }
}

void parse_fetch(const YAML::Node& n, const Doc& doc, Layer* L) {
  cfg::check_map(n, doc, "fetch", {"url_download", "allowed_hosts", "max_bytes", "timeout"});
  FetchSettings& f = L->p.fetch;
  if (YAML::Node v = n["url_download"]; v.IsDefined()) {
    f.url_download = cfg::as_bool(v, doc, "fetch.url_download");
    L->origins["fetch.url_download"] = doc.at(v);
  }
  if (YAML::Node v = n["allowed_hosts"]; v.IsDefined()) {
    if (!v.IsSequence()) doc.fail(v, "fetch.allowed_hosts must be a list");
    f.allowed_hosts.emplace();
    for (const auto& h : v) {
      std::string s = cfg::as_string(h, doc, "fetch.allowed_hosts entries");
      if (s == "*")
        doc.fail(h, "fetch.allowed_hosts: \"*\" would allow every host; list the hosts jobs may fetch from");
      if (!valid_host(s))
        doc.fail(
            h,
            "fetch.allowed_hosts: \"" + s +
                "\" is not a lowercase host name (examples: example.com, *.example.com, example.com:8443)");
      if (std::find(f.allowed_hosts->begin(), f.allowed_hosts->end(), s) != f.allowed_hosts->end())
        doc.fail(h, "fetch.allowed_hosts lists " + s + " twice");
      f.allowed_hosts->push_back(s);
    }
  }
  if (YAML::Node v = n["max_bytes"]; v.IsDefined() && !is_unlimited(v))
    f.max_bytes = parse_positive_bytes(v, doc, "fetch.max_bytes", kTiB);
  else if (v.IsDefined())
    L->unlimited.insert("fetch.max_bytes");
  if (YAML::Node v = n["timeout"]; v.IsDefined() && !is_unlimited(v))
    f.timeout_ms = parse_duration_field(v, doc, "fetch.timeout");
  else if (v.IsDefined())
    L->unlimited.insert("fetch.timeout");
}

Layer parse_layer(const YAML::Node& root, const Doc& doc) {
  Layer L;
  if (!root.IsDefined() || root.IsNull())
    doc.fail(root, "policy is empty (expected a mapping with limits, isolation, ...)");
  cfg::check_map(root, doc, "policy", kTopKeys);
  if (YAML::Node v = root["name"]; v.IsDefined()) {
    L.p.name = cfg::as_string(v, doc, "name");
    if (!valid_policy_name(L.p.name))
      doc.fail(v, "name \"" + L.p.name +
                      "\" must be 1-64 letters, digits, '_', '-' or '.', not starting with '.' or '-'");
    L.has_name = true;
  }
  if (YAML::Node v = root["description"]; v.IsDefined()) {
    L.p.description = cfg::as_string(v, doc, "description");
    if (L.p.description.size() > 1024 || !valid_utf8_text(L.p.description))
      doc.fail(v, "description must be at most 1024 bytes of UTF-8 text on one line");
    L.has_description = true;
  }
  if (YAML::Node v = root["extends"]; v.IsDefined()) {
    L.extends = cfg::as_string(v, doc, "extends");
    if (L.extends->empty() || L.extends->find('\0') != std::string::npos || L.extends->size() > 4096)
      doc.fail(v, "extends must name a policy or a file");
    L.extends_at = doc.at(v);
  }
  if (YAML::Node v = root["limits"]; v.IsDefined()) {
    std::vector<std::string> unl;
    L.p.limits = parse_limits(v, doc, &unl);
    for (const auto& k : unl) L.unlimited.insert("limits." + k);
    for (const auto& f : limit_fields())
      if (YAML::Node x = v[std::string(f.key)]; x.IsDefined())
        L.origins["limits." + std::string(f.key)] = doc.at(x);
  }
  if (YAML::Node v = root["isolation"]; v.IsDefined()) parse_isolation(v, doc, &L);
  if (YAML::Node v = root["seccomp"]; v.IsDefined()) parse_seccomp(v, doc, &L);
  if (YAML::Node v = root["wasm"]; v.IsDefined()) parse_wasm(v, doc, &L);
  if (YAML::Node v = root["fetch"]; v.IsDefined()) parse_fetch(v, doc, &L);
  if (YAML::Node v = root["output"]; v.IsDefined()) {
    cfg::check_map(v, doc, "output", {"truncate"});
    if (YAML::Node t = v["truncate"]; t.IsDefined())
      L.p.output.truncate = cfg::as_bool(t, doc, "output.truncate");
  }
  return L;
}

// ---- resolution --------------------------------------------------------------------

struct Resolved {
  Policy p;
  Origins origins;
};

std::string loc_str(const Location& l) {
  cfg::Error e{l, ""};
  std::string s = e.str();
  while (!s.empty() && (s.back() == ' ' || s.back() == ':')) s.pop_back();
  return s;
}

[[noreturn]] void fail_at(const Location& l, const std::string& msg) {
  throw ConfigError(cfg::Error{l, msg});
}

// Overlays child layer `L` onto its resolved parent `R`, key by key.
void overlay(Resolved* R, const Layer& L, const std::string& parent_name) {
  Policy& p = R->p;
  for (const auto& f : limit_fields()) {
    std::string key = "limits." + std::string(f.key);
    bool set = f.dur ? (L.p.limits.*f.dur).has_value() : (L.p.limits.*f.num).has_value();
    if (set) {
      if (f.dur)
        p.limits.*f.dur = L.p.limits.*f.dur;
      else
        p.limits.*f.num = L.p.limits.*f.num;
      R->origins[key] = L.origins.at(key);
    } else if (L.unlimited.count(key)) {
      if (f.dur)
        (p.limits.*f.dur).reset();
      else
        (p.limits.*f.num).reset();
      R->origins.erase(key);
    }
  }
  for (size_t i = 0; i < kMechanismCount; ++i) {
    if (!L.p.isolation.level[i]) continue;
    std::string key = "isolation." + std::string(to_string(static_cast<Mechanism>(i)));
    auto parent = p.isolation.level[i];
    if (parent == Isolation::kRequired && *L.p.isolation.level[i] != Isolation::kRequired)
      fail_at(L.origins.at(key), key + ": " + std::string(to_string(*L.p.isolation.level[i])) +
                                     " weakens \"required\" from parent policy " + parent_name + " (" +
                                     loc_str(R->origins.at(key)) +
                                     "); a policy cannot weaken the isolation it extends");
    p.isolation.level[i] = L.p.isolation.level[i];
    R->origins[key] = L.origins.at(key);
  }
  if (L.p.isolation.net_namespace_kind) {
    p.isolation.net_namespace_kind = L.p.isolation.net_namespace_kind;
    R->origins["isolation.net_namespace_kind"] = L.origins.at("isolation.net_namespace_kind");
  }
  SeccompSettings& s = p.seccomp;
  if (L.p.seccomp.default_action) s.default_action = L.p.seccomp.default_action;
  for (const auto& r : L.p.seccomp.allow) {
    auto it =
        std::find_if(s.allow.begin(), s.allow.end(), [&](const SyscallRule& x) { return x.name == r.name; });
    if (it != s.allow.end())
      *it = r;
    else
      s.allow.push_back(r);
    R->origins["seccomp.allow." + r.name] = L.origins.at("seccomp.allow." + r.name);
  }
  for (const auto& k : L.p.seccomp.kill) {
    if (std::find(s.kill.begin(), s.kill.end(), k) == s.kill.end()) s.kill.push_back(k);
    R->origins["seccomp.kill." + k] = L.origins.at("seccomp.kill." + k);
  }
  for (const auto& e : L.p.seccomp.errno_) {
    auto it =
        std::find_if(s.errno_.begin(), s.errno_.end(), [&](const auto& x) { return x.first == e.first; });
    if (it != s.errno_.end())
      it->second = e.second;
    else
      s.errno_.push_back(e);
    R->origins["seccomp.errno." + e.first] = L.origins.at("seccomp.errno." + e.first);
  }
  WasmSettings& w = p.wasm;
  if (L.p.wasm.tier) w.tier = L.p.wasm.tier;
  for (size_t i = 0; i < w.features.size(); ++i)
    if (L.p.wasm.features[i]) w.features[i] = L.p.wasm.features[i];
  for (const auto& f : L.p.wasm.v8_flags) {
    auto it = std::find_if(w.v8_flags.begin(), w.v8_flags.end(),
                           [&](const std::string& x) { return flag_key(x) == flag_key(f); });
    if (it != w.v8_flags.end())
      *it = f;
    else
      w.v8_flags.push_back(f);
  }
  FetchSettings& fe = p.fetch;
  if (L.p.fetch.url_download)
    fe.url_download = L.p.fetch.url_download,
    R->origins["fetch.url_download"] = L.origins.at("fetch.url_download");
  if (L.p.fetch.allowed_hosts) fe.allowed_hosts = L.p.fetch.allowed_hosts;
  if (L.p.fetch.max_bytes)
    fe.max_bytes = L.p.fetch.max_bytes;
  else if (L.unlimited.count("fetch.max_bytes"))
    fe.max_bytes.reset();
  if (L.p.fetch.timeout_ms)
    fe.timeout_ms = L.p.fetch.timeout_ms;
  else if (L.unlimited.count("fetch.timeout"))
    fe.timeout_ms.reset();
  if (L.p.output.truncate) p.output.truncate = L.p.output.truncate;
  if (L.has_description) p.description = L.p.description;
}

// Contradictions in the merged policy, reported where the later of the two keys was set.
void check_contradictions(const Resolved& R) {
  const Policy& p = R.p;
  if (p.limits.wasm_memory && p.limits.memory && *p.limits.wasm_memory > *p.limits.memory)
    fail_at(R.origins.at("limits.wasm_memory"),
            "limits.wasm_memory " + cfg::format_bytes(*p.limits.wasm_memory) +
                " is more than limits.memory " + cfg::format_bytes(*p.limits.memory) + " (" +
                loc_str(R.origins.at("limits.memory")) + ")");
  for (const auto& r : p.seccomp.allow) {
    if (std::find(p.seccomp.kill.begin(), p.seccomp.kill.end(), r.name) != p.seccomp.kill.end())
      fail_at(R.origins.at("seccomp.allow." + r.name),
              "seccomp.allow: " + r.name + " is also in seccomp.kill (" +
                  loc_str(R.origins.at("seccomp.kill." + r.name)) + ")");
    for (const auto& e : p.seccomp.errno_)
      if (e.first == r.name)
        fail_at(R.origins.at("seccomp.allow." + r.name),
                "seccomp.allow: " + r.name + " is also in seccomp.errno (" +
                    loc_str(R.origins.at("seccomp.errno." + r.name)) + ")");
  }
  for (const auto& e : p.seccomp.errno_)
    if (std::find(p.seccomp.kill.begin(), p.seccomp.kill.end(), e.first) != p.seccomp.kill.end())
      fail_at(R.origins.at("seccomp.errno." + e.first),
              "seccomp.errno: " + e.first + " is also in seccomp.kill (" +
                  loc_str(R.origins.at("seccomp.kill." + e.first)) + ")");
  // Fail closed cannot be met when both mechanisms that confine the filesystem are off.
  if (p.isolation.get(Mechanism::kFilesystem) == Isolation::kRequired &&
      p.isolation.get(Mechanism::kMountNamespace) == Isolation::kOff &&
      p.isolation.get(Mechanism::kLandlock) == Isolation::kOff) {
    const std::string key = R.origins.count("isolation.filesystem") ? "isolation.filesystem"
                            : R.origins.count("isolation.landlock")  ? "isolation.landlock"
                                                                      : "isolation.mount_namespace";
    fail_at(R.origins.at(key),
            "isolation.filesystem is required (also when left out) but mount_namespace and landlock are both off: "
            "nothing could confine the filesystem; turn one on, or set filesystem: best_effort");
  }
  // A shared network namespace is safe only while no job can create a socket in it (an
  // abstract unix socket is the one thing jobs in one namespace could reach each other by).
  if (p.isolation.net_kind() == NetNamespaceKind::kSharedEmpty) {
    const Location& at = R.origins.at("isolation.net_namespace_kind");
    if (p.isolation.get(Mechanism::kNetNamespace) == Isolation::kOff)
      fail_at(at,
              "isolation.net_namespace_kind: shared_empty needs isolation.net_namespace required or "
              "best_effort, not off (off leaves the job in the server's own network namespace)");
    for (const char* sys : {"socket", "socketpair", "io_uring_setup"}) {
      bool allowed = std::any_of(p.seccomp.allow.begin(), p.seccomp.allow.end(),
                                 [&](const SyscallRule& r) { return r.name == sys; });
      if (allowed || !seccomp_names::is_dangerous(sys))
        fail_at(at,
                std::string("isolation.net_namespace_kind: shared_empty is safe only while seccomp denies ") +
                    sys + ", which this policy would allow");
    }
  }
  if (p.fetch.url_download.value_or(false) && (!p.fetch.allowed_hosts || p.fetch.allowed_hosts->empty()))
    fail_at(R.origins.at("fetch.url_download"),
            "fetch.url_download is true but fetch.allowed_hosts lists no host; list the hosts jobs may fetch "
            "from");
}

bool looks_like_path(const std::string& s) {
  auto ends = [&](std::string_view suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
  };
  return s.find('/') != std::string::npos || ends(".yaml") || ends(".yml") || ends(".json");
}

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string canonical(const std::string& path) {
  std::error_code ec;
  auto c = std::filesystem::weakly_canonical(path, ec);
  return ec ? path : c.string();
}

// Finds the file for `ref` (a name or a path); nullopt when there is none. `base_dir`
// anchors relative paths (the extending file's folder; empty: the working directory).
std::optional<std::string> locate(const std::string& ref, const std::string& base_dir,
                                  const std::vector<std::string>& dirs, std::string* why) {
  if (looks_like_path(ref)) {
    std::string path = (ref[0] == '/' || base_dir.empty()) ? ref : base_dir + "/" + ref;
    if (is_regular_file(path)) return path;
    struct stat st {};
    *why = stat(path.c_str(), &st) != 0 ? "no such file: " + path : path + " is not a regular file";
    return std::nullopt;
  }
  if (!valid_policy_name(ref) || ref.find("..") != std::string::npos) {
    *why = "\"" + ref + "\" is not a policy name (letters, digits, '_', '-', '.') or a path";
    return std::nullopt;
  }
  for (const auto& d : dirs) {
    std::string path = d + "/" + ref + ".yaml";
    if (is_regular_file(path)) return path;
  }
  std::string list;
  for (const auto& d : dirs) list += (list.empty() ? "" : ", ") + d;
  *why = "no policy named \"" + ref + "\" (looked in: " + (list.empty() ? "no folders" : list) + ")";
  return std::nullopt;
}

std::string stem(const std::string& path) {
  return std::filesystem::path(path).stem().string();
}

class Resolver {
 public:
  Resolver(const std::vector<std::string>& dirs, bool follow = true) : dirs_(dirs), follow_(follow) {}

  Resolved resolve_file(const std::string& path) {
    return resolve_root(cfg::load_file(path), Doc{path}, path);
  }

  Resolved resolve_root(const YAML::Node& root, const Doc& doc, const std::string& path) {
    Layer L = parse_layer(root, doc);
    std::string me = canonical(path);
    Resolved R;
    std::string parent_name;
    if (L.extends) {
      const Location& at = L.extends_at;
      if (!follow_) fail_at(at, "extends is not allowed here (this policy must stand alone)");
      chain_.push_back(me);
      shown_.push_back(path);
      if (chain_.size() > kMaxExtendsDepth)
        fail_at(at, "extends: the chain is deeper than " + std::to_string(kMaxExtendsDepth) + " policies");
      std::string why;
      std::string dir = std::filesystem::path(path).parent_path().string();
      auto parent = locate(*L.extends, dir, dirs_, &why);
      if (!parent) fail_at(at, "extends: " + why);
      std::string pc = canonical(*parent);
      if (std::find(chain_.begin(), chain_.end(), pc) != chain_.end()) {
        std::string cycle;
        for (const auto& s : shown_) cycle += s + " -> ";
        fail_at(at, "extends: cycle " + cycle + *parent);
      }
      R = resolve_file(*parent);
      parent_name = R.p.name;
      chain_.pop_back();
      shown_.pop_back();
    }
    overlay(&R, L, parent_name);
    R.p.name = L.has_name ? L.p.name : stem(path);
    R.p.sources.insert(R.p.sources.begin(), path);
    check_contradictions(R);
    return R;
  }

 private:
  const std::vector<std::string>& dirs_;
  bool follow_;
  std::vector<std::string> chain_, shown_;
};

template <class F>
cfg::Expected<Policy> guarded(F&& f) {
  try {
    return f();
  } catch (const ConfigError& e) {
    return e.error;
  } catch (const YAML::Exception& e) {
    // yaml-cpp can still throw while walking nodes; keep its position.
    return cfg::Error{Location{"", e.mark.line + 1, e.mark.column + 1}, e.msg};
  } catch (const std::exception& e) {
    return cfg::Error{Location{}, std::string("internal error reading policy: ") + e.what()};
  }
}

}  // namespace

// ---- public ------------------------------------------------------------------------

std::string_view to_string(Mechanism m) {
  static constexpr std::string_view k[] = {"user_namespace",  "pid_namespace", "net_namespace",
                                           "mount_namespace", "ipc_namespace", "uts_namespace",
                                           "landlock",        "cgroup",        "filesystem"};
  return k[static_cast<size_t>(m)];
}

std::string_view to_string(NetNamespaceKind k) {
  return k == NetNamespaceKind::kSharedEmpty ? "shared_empty" : "per_job";
}

std::string_view to_string(Isolation i) {
  switch (i) {
    case Isolation::kOff: return "off";
    case Isolation::kBestEffort: return "best_effort";
    case Isolation::kRequired: return "required";
  }
  return "?";
}

std::string_view to_string(Tier t) {
  switch (t) {
    case Tier::kLiftoff: return "liftoff";
    case Tier::kTurbofan: return "turbofan";
    case Tier::kTiered: return "tiered";
  }
  return "?";
}

Isolation IsolationSettings::get(Mechanism m) const {
  return level[static_cast<size_t>(m)].value_or(Isolation::kRequired);
}

std::string SeccompAction::str() const {
  switch (kind) {
    case kKill: return "kill";
    case kTrap: return "trap";
    case kLog: return "log";
    case kErrno: return "errno:" + seccomp_names::errno_name(errno_value);
  }
  return "?";
}

const std::vector<WasmFeature>& wasm_features() {
  // V8 10.2: eh, simd and threads are shipped (on by default); the rest are experimental
  // or staged (off). Names checked against the flags in Debian's libnode.so.108.
  static const std::vector<WasmFeature> k = {
      {"simd", "simd", true},
      {"threads", "threads", true},
      {"exceptions", "eh", true},
      {"tail_call", "return-call", false},
      {"memory64", "memory64", false},
      {"gc", "gc", false},
      {"typed_funcref", "typed-funcref", false},
      {"extended_const", "extended-const", false},
      {"relaxed_simd", "relaxed-simd", false},
      {"branch_hinting", "branch-hinting", false},
      {"type_reflection", "type-reflection", false},
  };
  return k;
}

std::string v8_flag_allowlist() {
  std::string s;
  for (const auto& f : allowed_flags()) {
    if (!s.empty()) s += ", ";
    s += "--" + std::string(f.name);
    if (f.is_int) s += "=N";
  }
  return s;
}

Limits parse_limits(const YAML::Node& n, const Doc& doc, std::vector<std::string>* unlimited_keys) {
  cfg::check_map(n, doc, "limits", keys_of(limit_fields()));
  Limits l;
  for (const auto& f : limit_fields()) {
    std::string key(f.key);
    YAML::Node v = n[key];
    if (!v.IsDefined()) continue;
    if (is_unlimited(v)) {
      if (unlimited_keys) unlimited_keys->push_back(key);
      continue;
    }
    std::string what = "limits." + key;
    switch (f.kind) {
      case LimitKind::kDuration: l.*f.dur = parse_duration_field(v, doc, what); break;
      case LimitKind::kBytes: l.*f.num = parse_positive_bytes(v, doc, what, f.max); break;
      case LimitKind::kCores: l.*f.dur = parse_cores(v, doc, what); break;
      case LimitKind::kCount: {
        int64_t c = cfg::as_int(v, doc, what, 0, static_cast<int64_t>(f.max));
        if (c == 0)
          doc.fail(v, what + " must be greater than zero (leave it out, or write unlimited, for no limit)");
        l.*f.num = static_cast<uint64_t>(c);
        break;
      }
    }
  }
  if (l.wasm_memory && *l.wasm_memory % kWasmPage != 0)
    doc.fail(n["wasm_memory"], "limits.wasm_memory must be a multiple of the 64KiB wasm page size");
  if (l.wasm_memory && l.memory && *l.wasm_memory > *l.memory)
    doc.fail(n["wasm_memory"], "limits.wasm_memory " + cfg::format_bytes(*l.wasm_memory) +
                                   " is more than limits.memory " + cfg::format_bytes(*l.memory));
  return l;
}

cfg::Expected<Policy> load_policy(const std::string& name_or_path,
                                  const std::vector<std::string>& search_dirs) {
  return guarded([&]() -> Policy {
    std::string why;
    auto path = locate(name_or_path, "", search_dirs, &why);
    if (!path) {
      if (looks_like_path(name_or_path)) throw ConfigError(cfg::Error{Location{name_or_path, 0, 0}, why});
      throw ConfigError(cfg::Error{Location{}, why});
    }
    return Resolver(search_dirs).resolve_file(*path).p;
  });
}

cfg::Expected<Policy> parse_policy(const std::string& text, const std::string& file,
                                   const std::vector<std::string>& search_dirs, Extends mode) {
  return guarded([&]() -> Policy {
    Doc doc{file};
    return Resolver(search_dirs, mode == Extends::kFollow)
        .resolve_root(cfg::parse_text(text, doc), doc, file)
        .p;
  });
}

std::vector<std::string> policy_search_dirs(const std::vector<std::string>& extra,
                                            const std::string& shipped) {
  std::vector<std::string> out(extra.begin(), extra.end());
  if (const char* env = std::getenv("WASMJAIL_POLICY_PATH")) {
    std::string s = env;
    size_t start = 0;
    while (start <= s.size()) {
      size_t end = s.find(':', start);
      if (end == std::string::npos) end = s.size();
      if (end > start) out.push_back(s.substr(start, end - start));
      start = end + 1;
    }
  }
  if (!shipped.empty()) out.push_back(shipped);
  return out;
}

std::string to_yaml(const Policy& p) {
  YAML::Emitter e;
  e << YAML::BeginMap;
  e << YAML::Key << "name" << YAML::Value << p.name;
  e << YAML::Key << "description" << YAML::Value << YAML::DoubleQuoted << p.description;
  e << YAML::Key << "limits" << YAML::Value << YAML::BeginMap;
  for (const auto& f : limit_fields())
    e << YAML::Key << std::string(f.key) << YAML::Value << format_limit(f, p.limits);
  e << YAML::EndMap;
  e << YAML::Key << "isolation" << YAML::Value << YAML::BeginMap;
  for (size_t i = 0; i < kMechanismCount; ++i) {
    auto m = static_cast<Mechanism>(i);
    e << YAML::Key << std::string(to_string(m)) << YAML::Value << std::string(to_string(p.isolation.get(m)));
  }
  e << YAML::Key << "net_namespace_kind" << YAML::Value << std::string(to_string(p.isolation.net_kind()));
  e << YAML::EndMap;
  e << YAML::Key << "seccomp" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "default_action" << YAML::Value << p.seccomp.action().str();
  e << YAML::Key << "allow" << YAML::Value;
  if (p.seccomp.allow.empty()) e << YAML::Flow;
  e << YAML::BeginSeq;
  for (const auto& r : p.seccomp.allow) {
    if (r.args.empty()) {
      e << r.name;
      continue;
    }
    e << YAML::Flow << YAML::BeginMap << YAML::Key << "name" << YAML::Value << r.name;
    e << YAML::Key << "args" << YAML::Value << YAML::BeginSeq;
    for (const auto& a : r.args) {
      e << YAML::BeginMap << YAML::Key << "index" << YAML::Value << a.index;
      e << YAML::Key << "op" << YAML::Value << std::string(op_name(a.op));
      e << YAML::Key << "value" << YAML::Value << hex(a.value);
      if (a.op == ArgCondition::kMaskedEq) e << YAML::Key << "mask" << YAML::Value << hex(a.mask);
      e << YAML::EndMap;
    }
    e << YAML::EndSeq << YAML::EndMap;
  }
  e << YAML::EndSeq;
  e << YAML::Key << "kill" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const auto& k : p.seccomp.kill) e << k;
  e << YAML::EndSeq;
  e << YAML::Key << "errno" << YAML::Value;
  if (p.seccomp.errno_.empty()) e << YAML::Flow;
  e << YAML::BeginMap;
  for (const auto& [sys, en] : p.seccomp.errno_)
    e << YAML::Key << sys << YAML::Value << seccomp_names::errno_name(en);
  e << YAML::EndMap;
  e << YAML::EndMap;
  e << YAML::Key << "wasm" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "tier" << YAML::Value << std::string(to_string(p.wasm.tier.value_or(Tier::kTiered)));
  e << YAML::Key << "features" << YAML::Value << YAML::BeginMap;
  for (size_t i = 0; i < wasm_features().size(); ++i)
    e << YAML::Key << std::string(wasm_features()[i].name) << YAML::Value
      << (p.wasm.feature(i) ? "true" : "false");
  e << YAML::EndMap;
  e << YAML::Key << "v8_flags" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const auto& f : p.wasm.v8_flags) e << f;
  e << YAML::EndSeq;
  e << YAML::EndMap;
  e << YAML::Key << "fetch" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "url_download" << YAML::Value
    << (p.fetch.url_download.value_or(false) ? "true" : "false");
  e << YAML::Key << "allowed_hosts" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  if (p.fetch.allowed_hosts)
    for (const auto& h : *p.fetch.allowed_hosts) e << h;
  e << YAML::EndSeq;
  e << YAML::Key << "max_bytes" << YAML::Value
    << (p.fetch.max_bytes ? cfg::format_bytes(*p.fetch.max_bytes) : "unlimited");
  e << YAML::Key << "timeout" << YAML::Value
    << (p.fetch.timeout_ms ? cfg::format_duration_ms(*p.fetch.timeout_ms) : "unlimited");
  e << YAML::EndMap;
  e << YAML::Key << "output" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "truncate" << YAML::Value << (p.output.truncate.value_or(true) ? "true" : "false");
  e << YAML::EndMap;
  e << YAML::EndMap;
  std::string head = "# policy \"" + p.name + "\", resolved from:";
  for (size_t i = 0; i < p.sources.size(); ++i) head += (i ? " <- " : " ") + p.sources[i];
  return head + "\n" + e.c_str() + "\n";
}

std::optional<std::string> check_job_limits(const Limits& asked, const Limits& allowed) {
  for (const auto& f : limit_fields()) {
    bool over = false;
    if (f.dur)
      over = (asked.*f.dur) && (allowed.*f.dur) && *(asked.*f.dur) > *(allowed.*f.dur);
    else
      over = (asked.*f.num) && (allowed.*f.num) && *(asked.*f.num) > *(allowed.*f.num);
    if (over)
      return "job asks for limits." + std::string(f.key) + " " + format_limit(f, asked) +
             " but the policy allows at most " + format_limit(f, allowed);
  }
  return std::nullopt;
}

Limits effective_limits(const Limits& asked, const Limits& allowed) {
  Limits out = allowed;
  for (const auto& f : limit_fields()) {
    if (f.dur && (asked.*f.dur)) out.*f.dur = asked.*f.dur;
    if (f.num && (asked.*f.num)) out.*f.num = asked.*f.num;
  }
  return out;
}

std::vector<std::string> v8_flags_for(const WasmSettings& w) {
  std::vector<std::string> out;
  switch (w.tier.value_or(Tier::kTiered)) {
    case Tier::kLiftoff: out = {"--liftoff", "--no-wasm-tier-up", "--no-wasm-dynamic-tiering"}; break;
    case Tier::kTurbofan: out = {"--no-liftoff"}; break;
    // Lazy: each function is compiled (Liftoff) on its first call. Measured on a 75 MB module
    // running 1% of its functions: 0.67 s and 180 MB peak RSS, against 7.3 s and 870 MB
    // compiling every function up front (README: Performance).
    case Tier::kTiered: out = {"--liftoff", "--wasm-dynamic-tiering", "--wasm-lazy-compilation"}; break;
  }
  for (size_t i = 0; i < wasm_features().size(); ++i)
    out.push_back((w.feature(i) ? "--experimental-wasm-" : "--no-experimental-wasm-") +
                  std::string(wasm_features()[i].v8_name));
  out.insert(out.end(), w.v8_flags.begin(), w.v8_flags.end());
  return out;
}

}  // namespace wj
