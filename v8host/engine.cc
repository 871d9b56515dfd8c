#include "v8host/engine.h"

#include <libplatform/libplatform.h>
#include <v8.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>

#include "v8host/wasi.h"

namespace wj {
namespace {

std::unique_ptr<v8::Platform> g_platform;

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
    auto at = line.find("    at ");
    if (at != 0) continue;
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

// Strips V8's "WebAssembly.Module(): " style prefix, keeping the reason itself.
std::string v8_reason(const std::string& msg) {
  std::string s = msg;
  for (const char* p : {"CompileError: ", "LinkError: ", "RuntimeError: "})
    if (s.rfind(p, 0) == 0) s.erase(0, std::strlen(p));
  for (const char* p : {"WasmModuleObject::Compile(): ", "WebAssembly.Module(): ", "WebAssembly.Instance(): "})
    if (s.rfind(p, 0) == 0) s.erase(0, std::strlen(p));
  return s;
}

// V8 10.2 enables SIMD, bulk memory, reference types, exception handling (try/catch),
// sign extension, saturating conversions, multi-value and threads by default. Proposals it
// only has behind --experimental-wasm-* flags stay off: untrusted code should not reach
// compiler paths V8 itself did not ship. When a module needs one of them, V8's message
// names an opcode or a flag at best; say which proposal that is.
std::string missing_feature(const std::string& reason) {
  static const std::pair<const char*, const char*> kByFlag[] = {
      {"return_call", "tail-call"},
      {"memory64", "memory64"},
      {"gc", "garbage collection (gc)"},
      {"typed_funcref", "typed function references"},
      {"stringref", "stringref"},
      {"relaxed_simd", "relaxed SIMD"},
      {"extended_const", "extended constant expressions"},
      {"multi_memory", "multi-memory"},
      {"type_reflection", "type reflection"},
      {"stack_switching", "stack switching"},
  };
  const std::string flag = "--experimental-wasm-";
  if (auto at = reason.find(flag); at != std::string::npos) {
    size_t b = at + flag.size(), e = b;
    while (e < reason.size() && (std::isalnum(static_cast<unsigned char>(reason[e])) || reason[e] == '_' ||
                                 reason[e] == '-'))
      ++e;
    std::string name = reason.substr(b, e - b);
    for (auto& c : name)
      if (c == '-') c = '_';
    for (const auto& [f, feature] : kByFlag)
      if (name == f) return feature;
    return name;
  }
  if (reason.find("is not allowed in init. expressions") != std::string::npos) return "extended constant expressions";
  if (reason.find("memory count of") != std::string::npos) return "multi-memory";
  if (reason.find("expected signature definition 0x60") != std::string::npos) return "garbage collection (gc)";
  // New-style exception handling (try_table 0x1f, throw_ref 0x0a) postdates V8 10.2.
  if (reason.find("Invalid opcode 0x1f") != std::string::npos || reason.find("Invalid opcode 0xa ") != std::string::npos)
    return "exception handling with exnref (try_table)";
  // Relaxed SIMD opcodes are 0xfd 0x100..0x113; V8 10.2 reports them as prefixed opcodes >= 256.
  if (auto at = reason.find("Invalid prefixed opcode "); at != std::string::npos) {
    long op = std::strtol(reason.c_str() + at + 24, nullptr, 10);
    if (op >= 0x100 && op <= 0x1ff) return "relaxed SIMD";
  }
  return {};
}

std::string explain_invalid(const std::string& reason) {
  std::string feature = missing_feature(reason);
  if (feature.empty()) return reason;
  return reason + " (the module needs the WebAssembly " + feature +
         " proposal, which wasmjail's V8 10.2 does not support)";
}

}  // namespace

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
    v8::TryCatch tc(iso);
    Wasi wasi(cfg);

    auto exception_text = [&] {
      std::string s = tc.HasCaught() ? to_std(iso, tc.Exception()) : "unknown error";
      tc.Reset();
      return s;
    };

    // Compile.
    auto t0 = std::chrono::steady_clock::now();
    v8::MaybeLocal<v8::WasmModuleObject> maybe_module =
        v8::WasmModuleObject::Compile(iso, v8::MemorySpan<const uint8_t>(cfg.module.data(), cfg.module.size()));
    out.compile_ms = ms_since(t0);
    v8::Local<v8::WasmModuleObject> module;
    if (!maybe_module.ToLocal(&module)) {
      out.kind = OutcomeKind::kInvalidModule;
      out.message = explain_invalid(v8_reason(exception_text()));
      goto done;
    }
    {
      v8::Local<v8::Object> webassembly =
          ctx->Global()->Get(ctx, str(iso, "WebAssembly")).ToLocalChecked().As<v8::Object>();

      // Every import must be one we provide; say which is not, by module.field.
      v8::Local<v8::Function> imports_fn = webassembly->Get(ctx, str(iso, "Module"))
                                               .ToLocalChecked()
                                               .As<v8::Object>()
                                               ->Get(ctx, str(iso, "imports"))
                                               .ToLocalChecked()
                                               .As<v8::Function>();
      v8::Local<v8::Value> margs[] = {module};
      v8::Local<v8::Array> imports =
          imports_fn->Call(ctx, v8::Undefined(iso), 1, margs).ToLocalChecked().As<v8::Array>();
      for (uint32_t i = 0; i < imports->Length(); ++i) {
        auto imp = imports->Get(ctx, i).ToLocalChecked().As<v8::Object>();
        std::string mod = to_std(iso, imp->Get(ctx, str(iso, "module")).ToLocalChecked());
        std::string name = to_std(iso, imp->Get(ctx, str(iso, "name")).ToLocalChecked());
        std::string kind = to_std(iso, imp->Get(ctx, str(iso, "kind")).ToLocalChecked());
        if (mod != "wasi_snapshot_preview1") {
          out.kind = OutcomeKind::kLinkError;
          out.message = "import " + mod + "." + name + " (" + kind + "): no module named \"" + mod +
                        "\" is linked (available: wasi_snapshot_preview1)";
          goto done;
        }
        if (kind != "function" || !Wasi::provides(name)) {
          out.kind = OutcomeKind::kLinkError;
          out.message = "import " + mod + "." + name + " (" + kind + "): wasi_snapshot_preview1 has no " +
                        (kind == "function" ? "function" : kind) + " named \"" + name + "\"";
          goto done;
        }
      }

      // Instantiate with WASI linked.
      v8::Local<v8::Object> import_obj = v8::Object::New(iso);
      wasi.install(iso, ctx, import_obj);
      v8::Local<v8::Function> instance_ctor =
          webassembly->Get(ctx, str(iso, "Instance")).ToLocalChecked().As<v8::Function>();
      v8::Local<v8::Value> iargs[] = {module, import_obj};
      v8::Local<v8::Object> instance;
      auto t1 = std::chrono::steady_clock::now();
      if (!instance_ctor->NewInstance(ctx, 2, iargs).ToLocal(&instance)) {
        if (wasi.exit_code()) {  // proc_exit from a start function
          iso->CancelTerminateExecution();
          out.kind = OutcomeKind::kExited;
          out.exit_code = *wasi.exit_code();
        } else {
          bool is_link = tc.HasCaught() && to_std(iso, tc.Exception()).rfind("LinkError", 0) == 0;
          out.kind = is_link ? OutcomeKind::kLinkError : OutcomeKind::kTrap;
          out.message = v8_reason(exception_text());
        }
        out.run_ms = ms_since(t1);
        goto done;
      }
      v8::Local<v8::Object> exports =
          instance->Get(ctx, str(iso, "exports")).ToLocalChecked().As<v8::Object>();
      v8::Local<v8::Value> mem = exports->Get(ctx, str(iso, "memory")).ToLocalChecked();
      if (mem->IsWasmMemoryObject()) wasi.bind_memory(iso, mem.As<v8::WasmMemoryObject>());

      // The entry point: an exported function taking no parameters.
      v8::Local<v8::Value> entry = exports->Get(ctx, str(iso, cfg.entry)).ToLocalChecked();
      if (!entry->IsFunction() || entry.As<v8::Function>()
                                          ->Get(ctx, str(iso, "length"))
                                          .ToLocalChecked()
                                          ->Int32Value(ctx)
                                          .FromMaybe(-1) != 0) {
        std::string names;
        v8::Local<v8::Array> keys = exports->GetOwnPropertyNames(ctx).ToLocalChecked();
        for (uint32_t i = 0; i < keys->Length(); ++i) {
          v8::Local<v8::Value> k = keys->Get(ctx, i).ToLocalChecked();
          if (exports->Get(ctx, k).ToLocalChecked()->IsFunction())
            names += (names.empty() ? "" : ", ") + to_std(iso, k);
        }
        out.kind = OutcomeKind::kEntryError;
        out.message = "entry point \"" + cfg.entry + "\" " +
                      (entry->IsUndefined()   ? "is not exported"
                       : entry->IsFunction() ? "takes parameters; it must take none"
                                             : "is not a function") +
                      "; function exports: " + (names.empty() ? "(none)" : names);
        goto done;
      }

      // Run.
      ctx->Global()
          ->Get(ctx, str(iso, "Error"))
          .ToLocalChecked()
          .As<v8::Object>()
          ->Set(ctx, str(iso, "stackTraceLimit"), v8::Integer::New(iso, 64))
          .Check();
      t1 = std::chrono::steady_clock::now();
      v8::MaybeLocal<v8::Value> r = entry.As<v8::Function>()->Call(ctx, v8::Undefined(iso), 0, nullptr);
      out.run_ms = ms_since(t1);
      if (wasi.exit_code()) {
        iso->CancelTerminateExecution();
        tc.Reset();
        out.kind = OutcomeKind::kExited;
        out.exit_code = *wasi.exit_code();
      } else if (!r.IsEmpty()) {
        out.kind = OutcomeKind::kReturned;
      } else if (tc.HasTerminated()) {
        iso->CancelTerminateExecution();
        out.kind = OutcomeKind::kInternalError;
        out.message = "execution was terminated";
      } else {
        out.kind = OutcomeKind::kTrap;
        v8::Local<v8::Value> ex = tc.Exception();
        out.message = to_std(iso, ex);
        if (ex->IsObject()) {
          v8::Local<v8::Value> stack;
          if (ex.As<v8::Object>()->Get(ctx, str(iso, "stack")).ToLocal(&stack) && stack->IsString())
            out.backtrace = parse_stack(to_std(iso, stack));
        }
        tc.Reset();
      }
    }
  done:
    out.peak_wasm_memory_bytes = wasi.has_memory() ? wasi.memory_size() : 0;
  }
  iso->Dispose();
  return out;
}

}  // namespace wj
