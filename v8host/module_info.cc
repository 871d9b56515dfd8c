#include "v8host/module_info.h"

#include <stdexcept>

namespace wj {
namespace {

struct Reader {
  const uint8_t* p;
  const uint8_t* end;
  struct Fail : std::runtime_error {
    using std::runtime_error::runtime_error;
  };
  uint8_t byte() {
    if (p >= end) throw Fail("unexpected end of module");
    return *p++;
  }
  uint64_t leb(int max_bits) {
    uint64_t v = 0;
    for (int shift = 0; shift < max_bits + 7; shift += 7) {
      uint8_t b = byte();
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    throw Fail("bad LEB128 integer");
  }
  uint32_t u32() { return static_cast<uint32_t>(leb(32)); }
  std::string name() {
    uint32_t n = u32();
    if (static_cast<size_t>(end - p) < n) throw Fail("name runs past the end");
    std::string s(reinterpret_cast<const char*>(p), n);
    p += n;
    return s;
  }
  void skip(size_t n) {
    if (static_cast<size_t>(end - p) < n) throw Fail("section runs past the end");
    p += n;
  }
  // Value types: single byte for MVP/SIMD/ref types; typed refs (0x63/0x64 + heap type)
  // are skipped as one type byte plus a signed LEB.
  uint8_t valtype() {
    uint8_t t = byte();
    if (t == 0x63 || t == 0x64) leb(33);
    return t;
  }
  void limits(ExternType* t, bool is_memory) {
    uint8_t flags = byte();
    t->shared = is_memory && (flags & 2);
    bool is64 = is_memory && (flags & 4);
    t->min = leb(is64 ? 64 : 32);
    if (flags & 1) t->max = leb(is64 ? 64 : 32);
  }
};

const char* valtype_name(uint8_t t) {
  switch (t) {
    case 0x7f: return "i32";
    case 0x7e: return "i64";
    case 0x7d: return "f32";
    case 0x7c: return "f64";
    case 0x7b: return "v128";
    case 0x70: return "funcref";
    case 0x6f: return "externref";
    default: return "ref";
  }
}

}  // namespace

const char* to_string(ExternKind k) {
  switch (k) {
    case ExternKind::kFunction: return "function";
    case ExternKind::kTable: return "table";
    case ExternKind::kMemory: return "memory";
    case ExternKind::kGlobal: return "global";
    case ExternKind::kTag: return "tag";
  }
  return "unknown";
}

std::string FuncType::str() const {
  auto list = [](const std::vector<uint8_t>& v) {
    std::string s = "(";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::string(valtype_name(v[i]));
    return s + ")";
  };
  return list(params) + " -> " + (results.empty() ? "nil" : list(results));
}

std::string ExternType::str() const {
  auto lim = [&] {
    return "{min " + std::to_string(min) + (max ? ", max " + std::to_string(*max) : "") + "}";
  };
  switch (kind) {
    case ExternKind::kFunction: return "func " + func.str();
    case ExternKind::kTag: return "tag " + func.str();
    case ExternKind::kTable: return std::string("table ") + valtype_name(value_type) + " " + lim();
    case ExternKind::kMemory: return std::string(shared ? "shared " : "") + "memory " + lim();
    case ExternKind::kGlobal: return std::string("global ") + (mutable_ ? "mut " : "") + valtype_name(value_type);
  }
  return "unknown";
}

const ExportInfo* ModuleInfo::find_export(const std::string& name) const {
  for (const auto& e : exports)
    if (e.name == name) return &e;
  return nullptr;
}

std::optional<ModuleInfo> read_module_info(const uint8_t* data, size_t size, std::string* error) {
  ModuleInfo info;
  std::vector<FuncType> types;
  std::vector<uint32_t> func_types;  // imported functions first, then defined ones
  std::vector<ExternType> tables, memories, globals, tags;
  std::vector<std::pair<std::string, std::pair<uint8_t, uint32_t>>> raw_exports;
  try {
    Reader r{data, data + size};
    if (size < 8 || r.byte() != 0 || r.byte() != 'a' || r.byte() != 's' || r.byte() != 'm')
      throw Reader::Fail("not a wasm module");
    r.skip(4);  // version
    while (r.p < r.end) {
      uint8_t id = r.byte();
      uint32_t len = r.u32();
      if (static_cast<size_t>(r.end - r.p) < len) throw Reader::Fail("section runs past the end");
      Reader s{r.p, r.p + len};
      r.p += len;
      if (id == 1) {  // types
        for (uint32_t n = s.u32(); n > 0; --n) {
          uint8_t form = s.byte();
          if (form != 0x60) throw Reader::Fail("unsupported type form");
          FuncType ft;
          for (uint32_t k = s.u32(); k > 0; --k) ft.params.push_back(s.valtype());
          for (uint32_t k = s.u32(); k > 0; --k) ft.results.push_back(s.valtype());
          types.push_back(std::move(ft));
        }
      } else if (id == 2) {  // imports
        for (uint32_t n = s.u32(); n > 0; --n) {
          ImportInfo im;
          im.module = s.name();
          im.name = s.name();
          uint8_t kind = s.byte();
          im.type.kind = static_cast<ExternKind>(kind);
          switch (kind) {
            case 0: {
              uint32_t ti = s.u32();
              if (ti >= types.size()) throw Reader::Fail("bad type index");
              im.type.func = types[ti];
              func_types.push_back(ti);
              break;
            }
            case 1:
              im.type.value_type = s.valtype();
              s.limits(&im.type, false);
              tables.push_back(im.type);
              break;
            case 2: s.limits(&im.type, true); memories.push_back(im.type); break;
            case 3:
              im.type.value_type = s.valtype();
              im.type.mutable_ = s.byte() & 1;
              globals.push_back(im.type);
              break;
            case 4: {
              s.byte();  // attribute
              uint32_t ti = s.u32();
              if (ti >= types.size()) throw Reader::Fail("bad type index");
              im.type.func = types[ti];
              tags.push_back(im.type);
              break;
            }
            default: throw Reader::Fail("unknown import kind");
          }
          info.imports.push_back(std::move(im));
        }
      } else if (id == 3) {  // functions
        for (uint32_t n = s.u32(); n > 0; --n) {
          uint32_t ti = s.u32();
          if (ti >= types.size()) throw Reader::Fail("bad type index");
          func_types.push_back(ti);
        }
      } else if (id == 4) {  // tables
        for (uint32_t n = s.u32(); n > 0; --n) {
          ExternType t;
          t.kind = ExternKind::kTable;
          t.value_type = s.valtype();
          s.limits(&t, false);
          tables.push_back(t);
        }
      } else if (id == 5) {  // memories
        for (uint32_t n = s.u32(); n > 0; --n) {
          ExternType t;
          t.kind = ExternKind::kMemory;
          s.limits(&t, true);
          memories.push_back(t);
        }
      } else if (id == 6) {  // globals: type, then an init expression we skip to `end`
        for (uint32_t n = s.u32(); n > 0; --n) {
          ExternType t;
          t.kind = ExternKind::kGlobal;
          t.value_type = s.valtype();
          t.mutable_ = s.byte() & 1;
          globals.push_back(t);
          // Constant expressions are short; V8 validated them. Skip opcodes to 0x0b (end).
          for (;;) {
            uint8_t op = s.byte();
            if (op == 0x0b) break;
            if (op == 0x41 || op == 0x23 || op == 0xd2) s.leb(32);
            else if (op == 0x42) s.leb(64);
            else if (op == 0x43) s.skip(4);
            else if (op == 0x44) s.skip(8);
            else if (op == 0xd0) s.leb(33);
            else if (op == 0xfd) { s.u32(); s.skip(16); }
            else throw Reader::Fail("unsupported constant expression");
          }
        }
      } else if (id == 13) {  // tags
        for (uint32_t n = s.u32(); n > 0; --n) {
          s.byte();
          uint32_t ti = s.u32();
          if (ti >= types.size()) throw Reader::Fail("bad type index");
          ExternType t;
          t.kind = ExternKind::kTag;
          t.func = types[ti];
          tags.push_back(t);
        }
      } else if (id == 7) {  // exports
        for (uint32_t n = s.u32(); n > 0; --n) {
          std::string name = s.name();
          uint8_t kind = s.byte();
          uint32_t index = s.u32();
          raw_exports.push_back({name, {kind, index}});
        }
      }
    }
    for (const auto& [name, ki] : raw_exports) {
      ExportInfo e;
      e.name = name;
      auto [kind, index] = ki;
      auto pick = [&](const std::vector<ExternType>& v) {
        if (index >= v.size()) throw Reader::Fail("export index out of range");
        return v[index];
      };
      switch (kind) {
        case 0:
          if (index >= func_types.size()) throw Reader::Fail("export index out of range");
          e.type.kind = ExternKind::kFunction;
          e.type.func = types[func_types[index]];
          break;
        case 1: e.type = pick(tables); break;
        case 2: e.type = pick(memories); break;
        case 3: e.type = pick(globals); break;
        case 4: e.type = pick(tags); break;
        default: throw Reader::Fail("unknown export kind");
      }
      e.type.kind = static_cast<ExternKind>(kind);
      info.exports.push_back(std::move(e));
    }
    info.memories = memories;
  } catch (const Reader::Fail& f) {
    *error = f.what();
    return std::nullopt;
  }
  return info;
}

bool extern_matches(const ExternType& want, const ExternType& have) {
  if (want.kind != have.kind) return false;
  switch (want.kind) {
    case ExternKind::kFunction:
    case ExternKind::kTag: return want.func == have.func;
    case ExternKind::kGlobal: return want.value_type == have.value_type && want.mutable_ == have.mutable_;
    case ExternKind::kTable:
      if (want.value_type != have.value_type) return false;
      [[fallthrough]];
    case ExternKind::kMemory:
      if (want.kind == ExternKind::kMemory && want.shared != have.shared) return false;
      if (have.min < want.min) return false;
      if (want.max && (!have.max || *have.max > *want.max)) return false;
      return true;
  }
  return false;
}

}  // namespace wj
