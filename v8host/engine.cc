#include "v8host/engine.h"

#include <libplatform/libplatform.h>
#include <v8.h>

#include <sys/random.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>

#include "v8host/module_info.h"
#include "v8host/probe.h"
#include "v8host/wasi.h"

namespace wj {
namespace {

std::unique_ptr<v8::Platform> g_platform;
constexpr const char* kWasiModule = "wasi_snapshot_preview1";

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::string to_std(v8::Isolate* iso, v8::Local<v8::Value> v) {
  if (v.IsEmpty()) return {};
  v8::String::Utf8Value s(iso, v);
  return *s ? std::string(*s, static_cast<size_t>(s.length())) : std::string();
}

v8::Local<v8::String> str(v8::Isolate* iso, const std::string& s) {
  return v8::String::NewFromUtf8(iso, s.data(), v8::NewStringType::kNormal, static_cast<int>(s.size()))
      .ToLocalChecked();
}

// "    at name (wasm://wasm/1a2b3c:wasm-function[7]:0x1f2)" -> "name (wasm-function[7]:0x1f2)"
std::vector<std::string> parse_stack(const std::string& stack) {
  std::vector<std::string> frames;
  std::istringstream in(stack);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("    at ", 0) != 0) continue;
    line.erase(0, 7);
    auto url = line.find("wasm://wasm/");
    if (url != std::string::npos) {
      auto colon = line.find(':', url + 12);
      if (colon != std::string::npos) line.erase(url, colon + 1 - url);
    }
    frames.push_back(line);
  }
  return frames;
}

// Strips V8's "CompileError: WebAssembly.Module(): " style prefixes, keeping the reason.
std::string v8_reason(const std::string& msg) {
  std::string s = msg;
  for (const char* p : {"CompileError: ", "LinkError: ", "RuntimeError: "})
    if (s.rfind(p, 0) == 0) s.erase(0, std::strlen(p));
  for (const char* p : {"WasmModuleObject::Compile(): ", "WebAssembly.Module(): ", "WebAssembly.Instance(): "})
    if (s.rfind(p, 0) == 0) s.erase(0, std::strlen(p));
  return s;
}

ExternType wasi_type(const std::string& params, bool returns_errno) {
  ExternType t;
  t.kind = ExternKind::kFunction;
  for (char c : params) t.func.params.push_back(c == 'I' ? 0x7e : 0x7f);
  if (returns_errno) t.func.results.push_back(0x7f);
  return t;
}

std::string function_exports(const ModuleInfo& info) {
  std::string names;
  for (const auto& e : info.exports)
    if (e.type.kind == ExternKind::kFunction) names += (names.empty() ? "" : ", ") + e.name;
  return names.empty() ? "(none)" : names;
}

// One job's modules, linked and run in one isolate.
class Runner {
 public:
  Runner(const RunConfig& cfg, v8::Isolate* iso, v8::Local<v8::Context> ctx)
      : cfg_(cfg), iso_(iso), ctx_(ctx), tc_(iso), wasi_(cfg) {
    webassembly_ = ctx->Global()->Get(ctx, str(iso, "WebAssembly")).ToLocalChecked().As<v8::Object>();
  }

  RunOutcome run() {
    for (const LibraryModule& lib : cfg_.libraries) {
      std::vector<std::string> names = {lib.name};
      names.insert(names.end(), lib.aliases.begin(), lib.aliases.end());
      v8::Local<v8::Object> exports;
      ModuleInfo info;
      if (!instantiate(lib.bytes, "library module \"" + lib.name + "\": ", &exports, &info)) return out_;
      for (const auto& n : names) registry_[n] = Registered{exports, info};
    }
    v8::Local<v8::Object> exports;
    ModuleInfo info;
    if (!instantiate(cfg_.module, "", &exports, &info)) return out_;
    if (!check_entry(info)) return out_;
    ctx_->Global()
        ->Get(ctx_, str(iso_, "Error"))
        .ToLocalChecked()
        .As<v8::Object>()
        ->Set(ctx_, str(iso_, "stackTraceLimit"), v8::Integer::New(iso_, 64))
        .Check();
    auto t = std::chrono::steady_clock::now();
    call(exports->Get(ctx_, str(iso_, cfg_.entry)).ToLocalChecked().As<v8::Function>());
    out_.run_ms += ms_since(t);
    return out_;
  }

  uint64_t peak_memory() { return wasi_.peak_memory_size(); }

 private:
  struct Registered {
    v8::Local<v8::Object> exports;
    ModuleInfo info;
  };

  bool fail(OutcomeKind kind, std::string msg) {
    out_.kind = kind;
    out_.message = std::move(msg);
    tc_.Reset();
    return false;
  }

  bool instantiate(const std::vector<uint8_t>& bytes, const std::string& who, v8::Local<v8::Object>* exports,
                   ModuleInfo* info) {
    auto t0 = std::chrono::steady_clock::now();
    v8::Local<v8::WasmModuleObject> module;
    bool compiled = v8::WasmModuleObject::Compile(iso_, v8::MemorySpan<const uint8_t>(bytes.data(), bytes.size()))
                        .ToLocal(&module);
    out_.compile_ms += ms_since(t0);
    if (!compiled)
      return fail(OutcomeKind::kInvalidModule,
                  who + v8_reason(tc_.HasCaught() ? to_std(iso_, tc_.Exception()) : "compilation failed"));
    std::string err;
    auto mi = read_module_info(bytes.data(), bytes.size(), &err);
    if (!mi) return fail(OutcomeKind::kInvalidModule, who + err);
    *info = std::move(*mi);

    // Check every import before instantiating, so the error names module.field and types.
    v8::Local<v8::Object> imports = v8::Object::New(iso_);
    for (const ImportInfo& im : info->imports) {
      std::string what = "import " + im.module + "." + im.name + " (" + im.type.str() + ")";
      auto reg = registry_.find(im.module);
      if (reg != registry_.end()) {
        const ExportInfo* ex = reg->second.info.find_export(im.name);
        if (!ex) {
          std::string names;
          for (const auto& e : reg->second.info.exports) names += (names.empty() ? "" : ", ") + e.name;
          return fail(OutcomeKind::kLinkError, who + what + ": module \"" + im.module + "\" has no export named \"" +
                                                   im.name + "\" (its exports: " + (names.empty() ? "none" : names) + ")");
        }
        if (!extern_matches(im.type, ex->type))
          return fail(OutcomeKind::kLinkError,
                      who + what + ": type mismatch: expected " + im.type.str() + ", found " + ex->type.str());
        continue;
      }
      if (im.module == kWasiModule) {
        std::string params;
        bool returns = false;
        if (!Wasi::signature(im.name, &params, &returns))
          return fail(OutcomeKind::kLinkError, who + what + ": " + kWasiModule + " has no function named \"" + im.name + "\"");
        ExternType want = wasi_type(params, returns);
        if (!extern_matches(im.type, want))
          return fail(OutcomeKind::kLinkError,
                      who + what + ": type mismatch: expected " + im.type.str() + ", found " + want.str());
        continue;
      }
#ifdef WASMJAIL_TEST_PROBE
      if (im.module == probe::kModule) {
        std::string params;
        if (!probe::signature(im.name, &params))
          return fail(OutcomeKind::kLinkError, who + what + ": no such probe function");
        ExternType want = wasi_type(params, false);
        want.func.results.push_back(0x7e);
        if (!extern_matches(im.type, want))
          return fail(OutcomeKind::kLinkError, who + what + ": type mismatch: expected " + want.str());
        continue;
      }
#endif
      std::string linked;
      for (const auto& [n, _] : registry_) linked += n + ", ";
      return fail(OutcomeKind::kLinkError, who + what + ": no module named \"" + im.module + "\" is linked (linked: " +
                                               linked + kWasiModule + ")");
    }
    for (const auto& [n, r] : registry_) imports->Set(ctx_, str(iso_, n), r.exports).Check();
    size_t slot = wasi_.install(iso_, ctx_, imports);
#ifdef WASMJAIL_TEST_PROBE
    imports->Set(ctx_, str(iso_, probe::kModule), probe::make_module(iso_, ctx_)).Check();
#endif

    v8::Local<v8::Function> ctor = webassembly_->Get(ctx_, str(iso_, "Instance")).ToLocalChecked().As<v8::Function>();
    v8::Local<v8::Value> args[] = {module, imports};
    v8::Local<v8::Object> instance;
    auto t1 = std::chrono::steady_clock::now();
    bool ok = ctor->NewInstance(ctx_, 2, args).ToLocal(&instance);
    out_.run_ms += ms_since(t1);  // a start function runs guest code
    if (!ok) return finish_failed_call(who);
    *exports = instance->Get(ctx_, str(iso_, "exports")).ToLocalChecked().As<v8::Object>();

    // WASI pointers from this instance refer to its own memory, or the one it imported.
    v8::Local<v8::Value> mem = (*exports)->Get(ctx_, str(iso_, "memory")).ToLocalChecked();
    if (!mem->IsWasmMemoryObject()) {
      for (const ImportInfo& im : info->imports) {
        if (im.type.kind != ExternKind::kMemory) continue;
        auto reg = registry_.find(im.module);
        if (reg != registry_.end()) mem = reg->second.exports->Get(ctx_, str(iso_, im.name)).ToLocalChecked();
      }
    }
    if (mem->IsWasmMemoryObject()) wasi_.bind_memory(slot, mem.As<v8::WasmMemoryObject>());

    // A WASI reactor initializes itself before anything else is called.
    const ExportInfo* init = info->find_export("_initialize");
    if (init && init->type.kind == ExternKind::kFunction && init->type.func.params.empty()) {
      auto t2 = std::chrono::steady_clock::now();
      bool called = call((*exports)->Get(ctx_, str(iso_, "_initialize")).ToLocalChecked().As<v8::Function>());
      out_.run_ms += ms_since(t2);
      if (!called || out_.kind != OutcomeKind::kReturned) {
        if (!who.empty()) out_.message = who + out_.message;
        return false;
      }
    }
    return true;
  }

  bool check_entry(const ModuleInfo& info) {
    const ExportInfo* e = info.find_export(cfg_.entry);
    std::string problem;
    if (!e) problem = "is not exported";
    else if (e->type.kind != ExternKind::kFunction) problem = std::string("is a ") + to_string(e->type.kind) + ", not a function";
    else if (!e->type.func.params.empty() || !e->type.func.results.empty())
      problem = "has type " + e->type.func.str() + "; it must take no parameters and return nothing";
    if (problem.empty()) return true;
    return fail(OutcomeKind::kEntryError,
                "entry point \"" + cfg_.entry + "\" " + problem + "; function exports: " + function_exports(info));
  }

  // Calls a guest function; the outcome (returned, exited, trapped) lands in out_.
  // Returns true when execution may continue (the function returned normally).
  bool call(v8::Local<v8::Function> fn) {
    v8::MaybeLocal<v8::Value> r = fn->Call(ctx_, v8::Undefined(iso_), 0, nullptr);
    if (!r.IsEmpty() && !wasi_.exit_code()) {
      out_.kind = OutcomeKind::kReturned;
      return true;
    }
    finish_failed_call("");
    return false;
  }

  // After a call or instantiation that did not complete: exit, termination, or trap.
  bool finish_failed_call(const std::string& who) {
    if (wasi_.exit_code()) {
      iso_->CancelTerminateExecution();
      tc_.Reset();
      out_.kind = OutcomeKind::kExited;
      out_.exit_code = *wasi_.exit_code();
      return false;
    }
    if (tc_.HasTerminated()) {
      iso_->CancelTerminateExecution();
      tc_.Reset();
      return fail(OutcomeKind::kInternalError, "execution was terminated");
    }
    v8::Local<v8::Value> ex = tc_.Exception();
    std::string text = to_std(iso_, ex);
    if (text.rfind("LinkError", 0) == 0) return fail(OutcomeKind::kLinkError, who + v8_reason(text));
    out_.kind = OutcomeKind::kTrap;
    out_.message = who + text;
    if (!ex.IsEmpty() && ex->IsObject()) {
      v8::Local<v8::Value> stack;
      if (ex.As<v8::Object>()->Get(ctx_, str(iso_, "stack")).ToLocal(&stack) && stack->IsString())
        out_.backtrace = parse_stack(to_std(iso_, stack));
    }
    tc_.Reset();
    return false;
  }

  const RunConfig& cfg_;
  v8::Isolate* iso_;
  v8::Local<v8::Context> ctx_;
  v8::TryCatch tc_;
  Wasi wasi_;
  v8::Local<v8::Object> webassembly_;
  std::map<std::string, Registered> registry_;
  RunOutcome out_;
};

}  // namespace

void set_entropy_source() {
  v8::V8::SetEntropySource([](unsigned char* buffer, size_t length) {
    size_t off = 0;
    while (off < length) {
      ssize_t n = getrandom(buffer + off, length - off, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  });
}

void init_v8_once(const std::vector<std::string>& flags) {
  if (g_platform) return;
  for (const auto& f : flags) v8::V8::SetFlagsFromString(f.c_str(), f.size());
  g_platform = v8::platform::NewDefaultPlatform();
  v8::V8::InitializePlatform(g_platform.get());
  v8::V8::Initialize();
}

RunOutcome run_module(const RunConfig& cfg) {
  init_v8_once(cfg.v8_flags);
  RunOutcome out;
  std::unique_ptr<v8::ArrayBuffer::Allocator> allocator(v8::ArrayBuffer::Allocator::NewDefaultAllocator());
  v8::Isolate::CreateParams params;
  params.array_buffer_allocator = allocator.get();
  v8::Isolate* iso = v8::Isolate::New(params);
  {
    v8::Isolate::Scope iso_scope(iso);
    v8::HandleScope hs(iso);
    v8::Local<v8::Context> ctx = v8::Context::New(iso);
    v8::Context::Scope ctx_scope(ctx);
    Runner runner(cfg, iso, ctx);
    out = runner.run();
    out.peak_wasm_memory_bytes = runner.peak_memory();
  }
  iso->Dispose();
  return out;
}

}  // namespace wj
