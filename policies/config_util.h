// Helpers shared by the policy and job-spec parsers: YAML (and JSON, which yaml-cpp
// reads as YAML) nodes -> checked values, with every error naming file:line:col.
//
// Parsers throw ConfigError internally (deep call chains stay readable); the public
// entry points of policies/ catch it and return Expected values, so no exception leaves
// policies/.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace wj::cfg {

struct Location {
  std::string file;
  int line = 0, column = 0;  // 1-based; 0 when unknown
};

struct Error {
  Location where;
  std::string message;
  // "file:line:col: message" (parts that are unknown are left out)
  std::string str() const;
};

class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(Error e) : std::runtime_error(e.str()), error(std::move(e)) {}
  Error error;
};

template <class T>
class Expected {
 public:
  Expected(T v) : v_(std::move(v)) {}               // NOLINT(google-explicit-constructor)
  Expected(Error e) : v_(std::move(e)) {}           // NOLINT(google-explicit-constructor)
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T* operator->() { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// The document being parsed: its file name (or "<stdin>") for error locations.
struct Doc {
  std::string file;
  Location at(const YAML::Node& n) const;
  [[noreturn]] void fail(const YAML::Node& n, const std::string& msg) const;
};

// Parses text as YAML (JSON included): exactly one document, anything after it is an
// error. Syntax errors carry line and column.
YAML::Node parse_text(const std::string& text, const Doc& doc);
// Reads and parses a file, refusing files over `max_bytes`.
YAML::Node load_file(const std::string& path, size_t max_bytes = 4u << 20);

// The closest of `candidates` to `word` by edit distance, if close enough to be a typo.
std::optional<std::string> closest(std::string_view word, const std::vector<std::string_view>& candidates);

// Requires a mapping whose keys are all in `known` (each at most once). `where` names the
// section for messages ("limits", "entry_module"). Unknown keys fail with a suggestion.
void check_map(const YAML::Node& n, const Doc& doc, const std::string& where,
               const std::vector<std::string_view>& known);

std::string as_string(const YAML::Node& n, const Doc& doc, const std::string& what);
bool as_bool(const YAML::Node& n, const Doc& doc, const std::string& what);
int64_t as_int(const YAML::Node& n, const Doc& doc, const std::string& what, int64_t min, int64_t max);
std::vector<std::string> as_string_list(const YAML::Node& n, const Doc& doc, const std::string& what);

// "30s", "500ms", "1.5s", "2m", "1h", "250us" -> milliseconds (fractions kept). A bare number
// is refused: a duration needs its unit.
double parse_duration_ms(std::string_view text, std::string* error);
double as_duration_ms(const YAML::Node& n, const Doc& doc, const std::string& what);
// "256MiB", "1GiB", "64KiB", "100MB", "4096B" or a bare integer of bytes -> bytes.
std::optional<uint64_t> parse_bytes(std::string_view text, std::string* error);
uint64_t as_bytes(const YAML::Node& n, const Doc& doc, const std::string& what);

// Renders sizes and durations for messages and for resolved policies ("256MiB", "30s").
std::string format_bytes(uint64_t bytes);
std::string format_duration_ms(double ms);

}  // namespace wj::cfg
