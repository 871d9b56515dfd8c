#include "policies/job.h"

namespace wj {

std::optional<std::string> check_env_entry(const std::string& key, const std::string& value) {
  if (key.empty()) return "environment variable with an empty name";
  if (key.find('=') != std::string::npos) return "environment variable name \"" + key + "\" contains '='";
  if (key.find('\0') != std::string::npos) return "environment variable name contains a NUL byte";
  if (value.find('\0') != std::string::npos) return "value of environment variable \"" + key + "\" contains a NUL byte";
  return std::nullopt;
}

std::optional<std::pair<std::string, std::string>> parse_env_assignment(const std::string& s,
                                                                         std::string* error) {
  auto eq = s.find('=');
  if (eq == std::string::npos) {
    *error = "--env expects KEY=VALUE, got \"" + s + "\"";
    return std::nullopt;
  }
  std::string key = s.substr(0, eq), value = s.substr(eq + 1);
  if (auto err = check_env_entry(key, value)) {
    *error = "--env " + s + ": " + *err;
    return std::nullopt;
  }
  return std::pair{key, value};
}

std::optional<DirMount> parse_dir_mapping(const std::string& s, std::string* error) {
  DirMount m;
  std::string rest = s;
  if (rest.size() > 3 && rest.compare(rest.size() - 3, 3, ":ro") == 0) {
    m.read_only = true;
    rest.resize(rest.size() - 3);
  }
  auto sep = rest.find("::");
  if (sep == std::string::npos) {
    m.host_path = m.guest_path = rest;
  } else {
    m.host_path = rest.substr(0, sep);
    m.guest_path = rest.substr(sep + 2);
  }
  if (m.host_path.empty() || m.guest_path.empty()) {
    *error = "--dir expects HOST::GUEST or HOST::GUEST:ro, got \"" + s + "\"";
    return std::nullopt;
  }
  if (s.find('\0') != std::string::npos) {
    *error = "--dir path contains a NUL byte";
    return std::nullopt;
  }
  return m;
}

}  // namespace wj
