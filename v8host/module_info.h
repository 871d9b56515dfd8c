// ModuleInfo: the import/export signatures of a module, read from its binary.
// V8's embedding API does not expose function signatures, and linking errors must name
// the expected and the found type, so we read the type, import, function and export
// sections ourselves. Only ever run on bytes V8 has already validated; every read is
// still bounds-checked, so malformed input yields an error, never a bad access.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wj {

enum class ExternKind : uint8_t { kFunction = 0, kTable = 1, kMemory = 2, kGlobal = 3, kTag = 4 };
const char* to_string(ExternKind k);

struct FuncType {
  std::vector<uint8_t> params, results;  // value type bytes (0x7f i32, 0x7e i64, ...)
  bool operator==(const FuncType&) const = default;
  std::string str() const;  // "(i32, i64) -> i32"
};

struct ExternType {
  ExternKind kind = ExternKind::kFunction;
  FuncType func;  // kFunction / kTag
  // kTable: elem type; kMemory: -; kGlobal: value type + mutability
  uint8_t value_type = 0;
  bool mutable_ = false;
  uint64_t min = 0;
  std::optional<uint64_t> max;
  bool shared = false;
  std::string str() const;  // "func (i32) -> nil", "memory {min 1, max 2}", "global mut i32"
};

struct ImportInfo {
  std::string module, name;
  ExternType type;
};
struct ExportInfo {
  std::string name;
  ExternType type;
};

struct ModuleInfo {
  std::vector<ImportInfo> imports;
  std::vector<ExportInfo> exports;
  std::vector<ExternType> memories;  // every memory: imported ones first, then defined
  const ExportInfo* find_export(const std::string& name) const;
};

// nullopt with `error` set when the bytes cannot be read.
std::optional<ModuleInfo> read_module_info(const uint8_t* data, size_t size, std::string* error);

// Whether an export of type `have` satisfies an import expecting `want` (wasm's import
// matching: equal function types, compatible limits, equal global types).
bool extern_matches(const ExternType& want, const ExternType& have);

}  // namespace wj
