#include "policies/config_util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/eventhandler.h>

namespace wj::cfg {

std::string Error::str() const {
  std::string s;
  if (!where.file.empty()) s += where.file + ":";
  if (where.line > 0) s += std::to_string(where.line) + ":" + std::to_string(where.column) + ":";
  if (!s.empty()) s += " ";
  return s + message;
}

Location Doc::at(const YAML::Node& n) const {
  Location l{file, 0, 0};
  if (n.IsDefined()) {
    YAML::Mark m = n.Mark();
    if (m.line >= 0) {
      l.line = m.line + 1;
      l.column = m.column + 1;
    }
  }
  return l;
}

void Doc::fail(const YAML::Node& n, const std::string& msg) const { throw ConfigError(Error{at(n), msg}); }

namespace {
// Notices whether the parser found (the start of) another document, and where.
struct DocumentWatcher : YAML::EventHandler {
  bool started = false;
  YAML::Mark mark;
  void OnDocumentStart(const YAML::Mark& m) override { started = true, mark = m; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};
}  // namespace

YAML::Node parse_text(const std::string& text, const Doc& doc) {
  try {
    YAML::Node first = YAML::Load(text);
    // One document per file: YAML::Load ignores a second one (and trailing junk) without a
    // word. Not YAML::LoadAll: on some trailing junk it never stops producing documents.
    std::istringstream in(text);
    YAML::Parser parser(in);
    DocumentWatcher w;
    parser.HandleNextDocument(w);
    w.started = false;
    if (parser.HandleNextDocument(w) && w.started)
      throw ConfigError(Error{Location{doc.file, w.mark.line + 1, w.mark.column + 1},
                              "content after the first YAML document; a file holds exactly one document"});
    return first;
  } catch (const ConfigError&) {
    throw;
  } catch (const YAML::ParserException& e) {
    throw ConfigError(Error{Location{doc.file, e.mark.line + 1, e.mark.column + 1}, "syntax error: " + e.msg});
  } catch (const YAML::Exception& e) {
    throw ConfigError(Error{Location{doc.file, e.mark.line + 1, e.mark.column + 1}, e.msg});
  }
}

YAML::Node load_file(const std::string& path, size_t max_bytes) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ConfigError(Error{Location{path, 0, 0}, "cannot read file"});
  std::string text;
  char buf[65536];
  while (f.read(buf, sizeof buf) || f.gcount() > 0) {
    text.append(buf, static_cast<size_t>(f.gcount()));
    if (text.size() > max_bytes)
      throw ConfigError(Error{Location{path, 0, 0}, "file is larger than " + format_bytes(max_bytes)});
  }
  return parse_text(text, Doc{path});
}

namespace {
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}
}  // namespace

std::optional<std::string> closest(std::string_view word, const std::vector<std::string_view>& candidates) {
  // Close ignoring case is what makes a typo; among those, the spelling closest with case
  // wins (a snake_case file gets a snake_case suggestion). Ties keep the earlier candidate.
  std::optional<std::string> best;
  const size_t limit = std::max<size_t>(2, word.size() / 3);
  size_t best_score = SIZE_MAX;
  for (auto c : candidates) {
    size_t folded = edit_distance(lower(word), lower(c));
    if (folded > limit) continue;
    size_t score = folded + edit_distance(word, c);
    if (score < best_score) best_score = score, best = std::string(c);
  }
  return best;
}

void check_map(const YAML::Node& n, const Doc& doc, const std::string& where,
               const std::vector<std::string_view>& known) {
  if (!n.IsMap()) doc.fail(n, where + " must be a mapping");
  std::set<std::string> seen;
  for (auto it = n.begin(); it != n.end(); ++it) {
    if (!it->first.IsScalar()) doc.fail(it->first, "keys in " + where + " must be strings");
    std::string key = it->first.Scalar();
    if (!seen.insert(key).second) doc.fail(it->first, "duplicate key \"" + key + "\" in " + where);
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string msg = "unknown key \"" + key + "\" in " + where;
      if (auto c = closest(key, known)) msg += " (did you mean \"" + *c + "\"?)";
      doc.fail(it->first, msg);
    }
  }
}

std::string as_string(const YAML::Node& n, const Doc& doc, const std::string& what) {
  if (!n.IsScalar()) doc.fail(n, what + " must be a string");
  return n.Scalar();
}

bool as_bool(const YAML::Node& n, const Doc& doc, const std::string& what) {
  if (n.IsScalar()) {
    const std::string& s = n.Scalar();
    if (s == "true") return true;
    if (s == "false") return false;
  }
  doc.fail(n, what + " must be true or false");
}

int64_t as_int(const YAML::Node& n, const Doc& doc, const std::string& what, int64_t min, int64_t max) {
  if (n.IsScalar()) {
    const std::string& s = n.Scalar();
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (!s.empty() && end && *end == '\0' && errno == 0) {
      if (v < min || v > max)
        doc.fail(n, what + " must be between " + std::to_string(min) + " and " + std::to_string(max));
      return v;
    }
  }
  doc.fail(n, what + " must be an integer");
}

std::vector<std::string> as_string_list(const YAML::Node& n, const Doc& doc, const std::string& what) {
  if (!n.IsSequence()) doc.fail(n, what + " must be a list");
  std::vector<std::string> out;
  for (const auto& e : n) out.push_back(as_string(e, doc, what + " entries"));
  return out;
}

namespace {
// Splits "12.5MiB" into 12.5 and "MiB"; false when there is no leading number.
bool split_number(std::string_view text, double* num, std::string* unit, bool allow_fraction) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || (allow_fraction && text[i] == '.')))
    ++i;
  if (i == 0) return false;
  std::string digits(text.substr(0, i));
  if (std::count(digits.begin(), digits.end(), '.') > 1 || digits.front() == '.' || digits.back() == '.') return false;
  *num = std::strtod(digits.c_str(), nullptr);
  *unit = std::string(text.substr(i));
  while (!unit->empty() && unit->front() == ' ') unit->erase(0, 1);
  return true;
}
}  // namespace

double parse_duration_ms(std::string_view text, std::string* error) {
  double v;
  std::string unit;
  if (!split_number(text, &v, &unit, true)) {
    *error = "\"" + std::string(text) + "\" is not a duration (examples: 500ms, 30s, 2m)";
    return -1;
  }
  static const std::pair<const char*, double> kUnits[] = {
      {"us", 0.001}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
  for (const auto& [u, scale] : kUnits)
    if (unit == u) return v * scale;
  *error = unit.empty() ? "duration \"" + std::string(text) + "\" needs a unit (us, ms, s, m, h)"
                        : "unknown duration unit \"" + unit + "\" in \"" + std::string(text) + "\" (use us, ms, s, m or h)";
  return -1;
}

double as_duration_ms(const YAML::Node& n, const Doc& doc, const std::string& what) {
  if (!n.IsScalar()) doc.fail(n, what + " must be a duration such as 30s");
  std::string err;
  double ms = parse_duration_ms(n.Scalar(), &err);
  if (ms < 0) doc.fail(n, what + ": " + err);
  return ms;
}

std::optional<uint64_t> parse_bytes(std::string_view text, std::string* error) {
  double v;
  std::string unit;
  if (!split_number(text, &v, &unit, true)) {
    *error = "\"" + std::string(text) + "\" is not a size (examples: 4096, 64KiB, 256MiB, 1GiB)";
    return std::nullopt;
  }
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1},          {"B", 1},          {"KiB", 1024.0},   {"MiB", 1048576.0}, {"GiB", 1073741824.0},
      {"TiB", 1099511627776.0}, {"KB", 1e3}, {"MB", 1e6},       {"GB", 1e9},        {"TB", 1e12}};
  for (const auto& [u, scale] : kUnits) {
    if (unit != u) continue;
    double bytes = v * scale;
    if (bytes > 1.8e19) {
      *error = "size \"" + std::string(text) + "\" is too large";
      return std::nullopt;
    }
    if (bytes != std::floor(bytes)) {
      *error = "size \"" + std::string(text) + "\" is not a whole number of bytes";
      return std::nullopt;
    }
    return static_cast<uint64_t>(bytes);
  }
  *error = "unknown size unit \"" + unit + "\" in \"" + std::string(text) + "\" (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)";
  return std::nullopt;
}

uint64_t as_bytes(const YAML::Node& n, const Doc& doc, const std::string& what) {
  if (!n.IsScalar()) doc.fail(n, what + " must be a size such as 256MiB");
  std::string err;
  auto b = parse_bytes(n.Scalar(), &err);
  if (!b) doc.fail(n, what + ": " + err);
  return *b;
}

std::string format_bytes(uint64_t bytes) {
  static const std::pair<const char*, uint64_t> kUnits[] = {
      {"TiB", 1ull << 40}, {"GiB", 1ull << 30}, {"MiB", 1ull << 20}, {"KiB", 1ull << 10}};
  for (const auto& [u, scale] : kUnits)
    if (bytes >= scale && bytes % scale == 0) return std::to_string(bytes / scale) + u;
  return std::to_string(bytes) + "B";
}

std::string format_duration_ms(double ms) {
  auto whole = [](double v) { return v == std::floor(v) && v < 1e15; };
  if (ms >= 3600000 && whole(ms / 3600000)) return std::to_string(static_cast<int64_t>(ms / 3600000)) + "h";
  if (ms >= 60000 && whole(ms / 60000)) return std::to_string(static_cast<int64_t>(ms / 60000)) + "m";
  if (ms >= 1000 && whole(ms / 1000)) return std::to_string(static_cast<int64_t>(ms / 1000)) + "s";
  if (whole(ms)) return std::to_string(static_cast<int64_t>(ms)) + "ms";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0fus", ms * 1000);
  return buf;
}

}  // namespace wj::cfg
