#include "v8host/engine.h"

#include <libplatform/libplatform.h>
#include <v8.h>

#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <sys/random.h>

#include <cerrno>
#include <chrono>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "v8host/hot_code.h"
#include "v8host/module_info.h"
#include "v8host/platform.h"
#include "v8host/probe.h"
#include "v8host/wasi.h"

namespace wj {
namespace {

// The one V8 statistics counter given storage (counter_lookup): wasm functions compiled
// lazily since the isolate's creation (V8 increments it atomically, from any thread).
int g_lazily_compiled = 0;

std::unique_ptr<DeferredPlatform> g_platform;
bool g_preinitialized = false;
constexpr const char* kWasiModule = "wasi_snapshot_preview1";
constexpr uint64_t kWasmPageSize = 65536;

// Set from a SIGXCPU handler (RLIMIT_CPU's soft limit): lock-free, so async-signal-safe.
std::atomic<bool> g_cpu_signal{false};
static_assert(std::atomic<bool>::is_always_lock_free);
void (*g_on_fatal)(bool) = nullptr;
std::atomic<int> g_phase{0};
static_assert(std::atomic<int>::is_always_lock_free);
void set_phase(RunPhase p) { g_phase.store(static_cast<int>(p)); }
// The flags this process runs with (a hot-code compile sets others while it compiles).
std::vector<std::string> g_flags;

void set_flags(const std::vector<std::string>& flags) {
  for (const auto& f : flags) v8::V8::SetFlagsFromString(f.c_str(), f.size());
}

// A hot-code compile: V8 10.2 reads compilation hints only without dynamic tiering and
// lazy compilation (module-compiler.cc, GetRequestedExecutionTiers, GetCompileStrategy).
// Lazy validation too: the lazy functions are not compiled here, and the module is one a job
// already compiled (and so validated, before any guest code ran) under the same sha256.
const std::vector<std::string> kHintCompileFlags = {"--no-wasm-dynamic-tiering", "--no-wasm-lazy-compilation",
                                                    "--experimental-wasm-compilation-hints",
                                                    "--wasm-lazy-validation", "--wasm-num-compilation-tasks=1"};
// ...and back to the job's flags before serializing: the code's header carries the flag
// hash (FlagList::Hash, recomputed after every SetFlagsFromString), and the jobs that read
// it run with these (no experimental flag: no guest module ever reaches the hints decoder).
void restore_job_flags() {
  set_flags({"--wasm-dynamic-tiering", "--no-wasm-lazy-compilation", "--no-experimental-wasm-compilation-hints",
             "--no-wasm-lazy-validation", "--wasm-num-compilation-tasks=128"});
  set_flags(g_flags);
}

// What WebAssembly.compileStreaming hands to V8: the wire bytes and the cached code. V8
// only deserializes compiled code through its streaming API (WasmStreaming).
struct StreamInput {
  const uint8_t* wire = nullptr;
  size_t wire_size = 0;
  const uint8_t* code = nullptr;
  size_t code_size = 0;
  bool compiled_afresh = false;
} g_stream;

class CompiledClient : public v8::WasmStreaming::Client {
 public:
  // Called only when V8 compiled the module itself (the cached code was not used).
  void OnModuleCompiled(v8::CompiledWasmModule) override { g_stream.compiled_afresh = true; }
};

void streaming_callback(const v8::FunctionCallbackInfo<v8::Value>& info) {
  std::shared_ptr<v8::WasmStreaming> s = v8::WasmStreaming::Unpack(info.GetIsolate(), info.Data());
  s->SetClient(std::make_shared<CompiledClient>());
  if (g_stream.code) s->SetCompiledModuleBytes(g_stream.code, g_stream.code_size);
  s->OnBytesReceived(g_stream.wire, g_stream.wire_size);
  s->Finish(true);
}

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

std::string mib(uint64_t bytes) {
  if (bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + "MiB";
  return std::to_string(bytes) + " bytes";
}

// Stops the guest at a limit with Isolate::TerminateExecution, from its own thread.
// TerminateExecution unwinds pure wasm loops too (V8 checks for it at loop back-edges).
// It holds no fd: it sleeps on a condition variable (futex) until the wall deadline, or in
// 10 ms steps when CPU time is limited.
class Watchdog {
 public:
  enum class Reason { kNone, kTimeout, kCpu, kMemory };

  Watchdog(v8::Isolate* iso, uint64_t deadline_ns, double cpu_limit_ms)
      : iso_(iso), deadline_ns_(deadline_ns), cpu_limit_ms_(cpu_limit_ms) {
    if (!deadline_ns_ && cpu_limit_ms_ <= 0) return;  // nothing to watch: no thread
    thread_ = std::thread([this] { loop(); });
  }
  ~Watchdog() {
    if (thread_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
      }
      cv_.notify_one();
      thread_.join();
    }
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void trip(Reason r) {
    Reason none = Reason::kNone;
    if (reason_.compare_exchange_strong(none, r)) iso_->TerminateExecution();
  }
  Reason reason() const { return reason_.load(); }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      auto wait = std::chrono::nanoseconds::max();
      if (cpu_limit_ms_ > 0) wait = std::chrono::milliseconds(10);  // CPU time has no deadline to sleep until
      if (deadline_ns_) {
        uint64_t now = monotonic_ns();
        wait = std::min<std::chrono::nanoseconds>(
            wait, std::chrono::nanoseconds(now >= deadline_ns_ ? 0 : deadline_ns_ - now));
      }
      if (wait == std::chrono::nanoseconds::max()) cv_.wait(lock);
      else cv_.wait_for(lock, wait);
      if (stop_) return;
      if (g_cpu_signal.load()) trip(Reason::kCpu);
      if (deadline_ns_ && monotonic_ns() >= deadline_ns_) trip(Reason::kTimeout);
      if (cpu_limit_ms_ > 0 && process_cpu_ms() >= cpu_limit_ms_) trip(Reason::kCpu);
    }
  }

  v8::Isolate* iso_;
  uint64_t deadline_ns_;
  double cpu_limit_ms_;
  std::atomic<Reason> reason_{Reason::kNone};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

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
      : cfg_(cfg), iso_(iso), ctx_(ctx), tc_(iso), wasi_(cfg), watchdog_(iso, cfg.wall_deadline_ns, cfg.cpu_limit_ms) {
    webassembly_ = ctx->Global()->Get(ctx, str(iso, "WebAssembly")).ToLocalChecked().As<v8::Object>();
    if (cfg.heap_limit_bytes) iso->AddNearHeapLimitCallback(near_heap_limit, this);
  }
  ~Runner() {
    if (cfg_.heap_limit_bytes) iso_->RemoveNearHeapLimitCallback(near_heap_limit, 0);
  }

  RunOutcome run() {
    // The entry module is compiled before any library is instantiated: its code is offered
    // to the cache before any guest code (a start function, an _initialize) has run.
    v8::Local<v8::WasmModuleObject> entry_module;
    if (!compile_entry(&entry_module)) return out_;
    if (cfg_.compile_only) {
      out_.kind = OutcomeKind::kReturned;
      return out_;
    }
    // Started from cached code: every function it has is on TurboFan, the rest not compiled
    // at all, so a function this run adds must first be compiled lazily (V8 counts those).
    if (out_.code_cache == "hit") lazy_at_start_ = lazily_compiled();
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
    if (!instantiate(cfg_.module, "", &exports, &info, entry_module)) return out_;
    if (!check_entry(info)) return out_;
    ctx_->Global()
        ->Get(ctx_, str(iso_, "Error"))
        .ToLocalChecked()
        .As<v8::Object>()
        ->Set(ctx_, str(iso_, "stackTraceLimit"), v8::Integer::New(iso_, 64))
        .Check();
    auto t = std::chrono::steady_clock::now();
    set_phase(RunPhase::kRun);
    {
      hot_module_ = entry_module;
      HotReporter periodic(iso_, cfg_.on_hot_functions ? this : nullptr);
      call(exports->Get(ctx_, str(iso_, cfg_.entry)).ToLocalChecked().As<v8::Function>());
    }
    out_.run_ms += ms_since(t);
    if (cfg_.on_hot_functions) report_hot(entry_module);
    return out_;
  }

  uint64_t peak_memory() { return wasi_.peak_memory_size(); }

  // While the entry function runs, asks the isolate (RequestInterrupt: the callback runs on
  // the guest's thread at a loop back-edge or call) to report what V8 optimized so far, at
  // 2, 6 and 14 s of run time: a long job (or one killed later) still leaves its hot set.
  class HotReporter {
   public:
    static constexpr int kReports = 3;  // + the one at the end: wire::kMaxHotFrames
    HotReporter(v8::Isolate* iso, Runner* runner) : iso_(iso), runner_(runner) {
      if (!runner_) return;
      thread_ = std::thread([this] {
        std::unique_lock<std::mutex> lock(mu_);
        auto wait = std::chrono::seconds(2);
        for (int i = 0; i < kReports && !stop_; ++i, wait *= 2) {
          if (cv_.wait_for(lock, wait, [this] { return stop_; })) return;
          iso_->RequestInterrupt([](v8::Isolate*, void* data) {
            auto* r = static_cast<Runner*>(data);
            v8::HandleScope hs(r->iso_);
            r->report_hot(r->hot_module_);
          }, runner_);
        }
      });
    }
    ~HotReporter() {
      if (!thread_.joinable()) return;
      {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
      }
      cv_.notify_one();
      thread_.join();
    }
    HotReporter(const HotReporter&) = delete;
    HotReporter& operator=(const HotReporter&) = delete;

   private:
    v8::Isolate* iso_;
    Runner* runner_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread thread_;
  };
  v8::Local<v8::WasmModuleObject> hot_module_;

  // The functions V8 optimized in this run, and those it ran on Liftoff within a budget of
  // body bytes (hot::select_hot), read from its own serialization of the module (V8 10.2 has
  // no other way to ask); nothing when it has none (Serialize is then empty).
  void report_hot(v8::Local<v8::WasmModuleObject> module) {
    // Nothing compiled since the cached code was loaded: the run has nothing to add to the
    // entry, and the serialization (tens of ms for a large module) is skipped.
    if (lazy_at_start_ >= 0 && lazily_compiled() == lazy_at_start_) return;
    auto declared = hot::declared_function_count(cfg_.module.data(), cfg_.module.size());
    if (!declared || *declared == 0) return;
    v8::OwnedBuffer buf = module->GetCompiledModule().Serialize();
    if (!buf.buffer || buf.size == 0) return;
    auto run = hot::run_functions(buf.buffer.get(), buf.size, *declared);
    buf = {};
    if (!run) return;
    if (!body_sizes_ && !run->liftoff.empty()) body_sizes_ = hot::function_body_sizes(cfg_.module.data(), cfg_.module.size());
    std::vector<uint32_t> fns =
        hot::select_hot(*run, body_sizes_ ? &*body_sizes_ : nullptr, hot::kHotLiftoffBudget);
    if (!fns.empty() && fns != last_hot_) {
      cfg_.on_hot_functions(fns);
      last_hot_ = std::move(fns);
    }
  }
  std::vector<uint32_t> last_hot_;
  int lazy_at_start_ = -1;  // functions V8 had compiled lazily when a cache hit was loaded
  static int lazily_compiled() { return __atomic_load_n(&g_lazily_compiled, __ATOMIC_RELAXED); }
  std::optional<std::vector<uint32_t>> body_sizes_;

 private:
  // The heap is about to run out: stop the guest, and give V8 room to unwind cleanly.
  static size_t near_heap_limit(void* data, size_t current, size_t) {
    static_cast<Runner*>(data)->watchdog_.trip(Watchdog::Reason::kMemory);
    return current + (64u << 20);
  }

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

  // Compiles the entry module, from the cache when it has the code; offers fresh code.
  bool compile_entry(v8::Local<v8::WasmModuleObject>* module) {
    const std::vector<uint8_t>& bytes = cfg_.module;
    auto t0 = std::chrono::steady_clock::now();
    set_phase(RunPhase::kCompile);
    bool compiled = false;
    if (cfg_.cached_code && compile_from_cache(bytes, module)) {
      compiled = true;
      out_.code_cache = g_stream.compiled_afresh ? "miss" : "hit";
    } else if (cfg_.compile_only && !cfg_.hot_functions.empty()) {
      std::string err;
      std::optional<std::vector<uint8_t>> hinted;
      if (!cfg_.module_has_hints) {
        hinted = hot::with_compilation_hints(bytes, cfg_.hot_functions, &err);
        if (!hinted) return fail(OutcomeKind::kInvalidModule, "hot-code compile: " + err);
      }
      const std::vector<uint8_t>& wire = hinted ? *hinted : bytes;
      set_flags(kHintCompileFlags);
      compiled = v8::WasmModuleObject::Compile(iso_, v8::MemorySpan<const uint8_t>(wire.data(), wire.size()))
                     .ToLocal(module);
      restore_job_flags();
      if (compiled && cfg_.on_compiled) out_.code_cache = "miss";
    } else {
      compiled = v8::WasmModuleObject::Compile(iso_, v8::MemorySpan<const uint8_t>(bytes.data(), bytes.size()))
                     .ToLocal(module);
      if (compiled && cfg_.on_compiled) out_.code_cache = "miss";
    }
    if (compiled && cfg_.on_compiled) {
      // Exactly one offer per job, now, before any guest code ran (empty on a hit).
      v8::OwnedBuffer buf;
      if (out_.code_cache == "miss") buf = (*module)->GetCompiledModule().Serialize();
      cfg_.on_compiled(buf.buffer.get(), buf.size);
    }
    out_.compile_ms += ms_since(t0);
    if (!compiled)
      return fail(OutcomeKind::kInvalidModule,
                  explain_invalid(v8_reason(tc_.HasCaught() ? to_std(iso_, tc_.Exception()) : "compilation failed")));
    return true;
  }

  bool instantiate(const std::vector<uint8_t>& bytes, const std::string& who, v8::Local<v8::Object>* exports,
                   ModuleInfo* info, v8::Local<v8::WasmModuleObject> precompiled = {}) {
    auto t0 = std::chrono::steady_clock::now();
    set_phase(RunPhase::kCompile);
    v8::Local<v8::WasmModuleObject> module = precompiled;
    bool compiled = !module.IsEmpty() ||
                    v8::WasmModuleObject::Compile(iso_, v8::MemorySpan<const uint8_t>(bytes.data(), bytes.size()))
                        .ToLocal(&module);
    if (precompiled.IsEmpty()) out_.compile_ms += ms_since(t0);
    if (!compiled)
      return fail(OutcomeKind::kInvalidModule,
                  who + explain_invalid(v8_reason(tc_.HasCaught() ? to_std(iso_, tc_.Exception()) : "compilation failed")));
    std::string err;
    auto mi = read_module_info(bytes.data(), bytes.size(), &err);
    if (!mi) return fail(OutcomeKind::kInvalidModule, who + err);
    *info = std::move(*mi);
    if (cfg_.wasm_memory_limit_bytes) {
      for (size_t i = 0; i < info->memories.size(); ++i) {
        uint64_t min_bytes = info->memories[i].min * kWasmPageSize;
        if (min_bytes > cfg_.wasm_memory_limit_bytes)
          return fail(OutcomeKind::kInvalidModule,
                      who + "memory " + std::to_string(i) + " declares a minimum of " + std::to_string(info->memories[i].min) +
                          " pages (" + mib(min_bytes) + "), over the wasm_memory limit of " +
                          mib(cfg_.wasm_memory_limit_bytes));
      }
    }

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
    set_phase(RunPhase::kInstantiate);
    bool ok = ctor->NewInstance(ctx_, 2, args).ToLocal(&instance);
    out_.instantiate_ms += ms_since(t1);  // with a start function, if the module has one
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
      set_phase(RunPhase::kRun);
      bool called = call((*exports)->Get(ctx_, str(iso_, "_initialize")).ToLocalChecked().As<v8::Function>());
      out_.run_ms += ms_since(t2);
      if (!called || out_.kind != OutcomeKind::kReturned) {
        if (!who.empty()) out_.message = who + out_.message;
        return false;
      }
    }
    return true;
  }

  // WebAssembly.compileStreaming with the cached code; false (and no exception left
  // behind) when V8 could not produce a module that way.
  bool compile_from_cache(const std::vector<uint8_t>& bytes, v8::Local<v8::WasmModuleObject>* module) {
    g_stream = StreamInput{bytes.data(), bytes.size(), cfg_.cached_code->data(), cfg_.cached_code->size(), false};
    v8::Local<v8::Value> fn;
    if (!webassembly_->Get(ctx_, str(iso_, "compileStreaming")).ToLocal(&fn) || !fn->IsFunction()) return false;
    v8::Local<v8::Value> arg = v8::Undefined(iso_);
    v8::Local<v8::Value> p;
    if (!fn.As<v8::Function>()->Call(ctx_, webassembly_, 1, &arg).ToLocal(&p) || !p->IsPromise()) {
      tc_.Reset();
      return false;
    }
    v8::Local<v8::Promise> promise = p.As<v8::Promise>();
    while (promise->State() == v8::Promise::kPending) {
      v8::platform::PumpMessageLoop(g_platform->message_loop_platform(), iso_,
                                    v8::platform::MessageLoopBehavior::kWaitForWork);
      iso_->PerformMicrotaskCheckpoint();
    }
    if (promise->State() != v8::Promise::kFulfilled || !promise->Result()->IsWasmModuleObject()) {
      tc_.Reset();
      return false;
    }
    *module = promise->Result().As<v8::WasmModuleObject>();
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
    if (tc_.HasTerminated() || watchdog_.reason() != Watchdog::Reason::kNone) {
      iso_->CancelTerminateExecution();
      tc_.Reset();
      switch (watchdog_.reason()) {
        case Watchdog::Reason::kTimeout: return fail(OutcomeKind::kTimeout, "wall-time limit exceeded");
        case Watchdog::Reason::kCpu: return fail(OutcomeKind::kCpuLimit, "CPU-time limit exceeded");
        case Watchdog::Reason::kMemory:
          return fail(OutcomeKind::kMemoryLimit, "V8 heap limit of " + mib(cfg_.heap_limit_bytes) + " reached");
        case Watchdog::Reason::kNone: break;
      }
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
  Watchdog watchdog_;
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

void preinitialize_v8() {
  if (g_platform) return;
  set_entropy_source();
  g_platform = std::make_unique<DeferredPlatform>();  // no threads until start()
  v8::V8::InitializePlatform(g_platform.get());
  // Out-of-bounds wasm accesses are caught by guard regions and V8's SIGSEGV handler instead
  // of an explicit bounds check on every load and store (V8 then reserves ~10 GiB of address
  // space per memory: never RLIMIT_AS). If the platform refuses, V8 keeps explicit checks.
  v8::V8::EnableWebAssemblyTrapHandler(/*use_v8_signal_handler=*/true);
  v8::V8::Initialize();
  g_preinitialized = true;
}

bool v8_preinitialized() { return g_preinitialized; }

bool wasm_trap_handler_available() {
  return v8::V8::EnableWebAssemblyTrapHandler(/*use_v8_signal_handler=*/true);
}

void init_v8_once(const std::vector<std::string>& flags) {
  if (g_platform && g_platform->started()) return;
  // Flags first; V8 re-derives their implications on every SetFlagsFromString, so after a
  // preinitialization (in the fork server) they still take effect for this job's isolate.
  for (const auto& f : flags) v8::V8::SetFlagsFromString(f.c_str(), f.size());
  if (g_preinitialized) {
    // A fork server's child: V8's address-hint generator was seeded in the fork server and
    // would hand every job the same layout. Reseed it from getrandom before any mapping.
    reseed_address_hints();
  } else {
    preinitialize_v8();
  }
  g_platform->start();
}

void notify_cpu_limit_from_signal() { g_cpu_signal.store(true); }

RunPhase current_phase() { return static_cast<RunPhase>(g_phase.load()); }
namespace {

// The isolate of a warm pooled process, created before its job arrived (prewarm_isolate).
struct WarmIsolate {
  std::unique_ptr<v8::ArrayBuffer::Allocator> allocator;
  v8::Isolate* iso = nullptr;
  v8::Global<v8::Context> ctx;
  uint64_t heap_limit = 0;
};
WarmIsolate* g_warm = nullptr;

// V8's statistics counters are off unless the embedder gives them storage. V8 calls this once
// per counter: only the lazily-compiled-functions one gets some (g_lazily_compiled); every
// other stays off (no cost).
int* counter_lookup(const char* name) {
  if (std::strcmp(name, "c:V8.WasmLazilyCompiledFunctions") == 0) return &g_lazily_compiled;
  return nullptr;
}

v8::Isolate* new_isolate(uint64_t heap_limit_bytes, v8::ArrayBuffer::Allocator* allocator) {
  v8::Isolate::CreateParams params;
  params.array_buffer_allocator = allocator;
  params.counter_lookup_callback = counter_lookup;
  if (heap_limit_bytes) params.constraints.ConfigureDefaultsFromHeapSize(0, heap_limit_bytes);
  v8::Isolate* iso = v8::Isolate::New(params);
  // Must be set before the context exists: it makes WebAssembly.compileStreaming (the only
  // way V8 10.2 deserializes cached code) available. Harmless when there is no cached code.
  iso->SetWasmStreamingCallback(streaming_callback);
  return iso;
}

}  // namespace

void prewarm_isolate(const std::vector<std::string>& flags, uint64_t heap_limit_bytes) {
  if (g_warm) return;
  for (const auto& f : flags) v8::V8::SetFlagsFromString(f.c_str(), f.size());
  // This process was forked from the fork server: new address hints before any mapping.
  if (g_preinitialized) reseed_address_hints();
  else preinitialize_v8();
  auto* w = new WarmIsolate;
  w->allocator.reset(v8::ArrayBuffer::Allocator::NewDefaultAllocator());
  w->heap_limit = heap_limit_bytes;
  w->iso = new_isolate(heap_limit_bytes, w->allocator.get());
  {
    v8::Isolate::Scope iso_scope(w->iso);
    v8::HandleScope hs(w->iso);
    w->ctx.Reset(w->iso, v8::Context::New(w->iso));
  }
  g_warm = w;
}

RunOutcome run_module(const RunConfig& cfg) {
  std::vector<std::string> flags = cfg.v8_flags;
  if (cfg.wasm_memory_limit_bytes) {
    // memory.grow past this returns -1, as the spec says for an implementation limit.
    uint64_t pages = std::max<uint64_t>(1, cfg.wasm_memory_limit_bytes / kWasmPageSize);
    flags.push_back("--wasm-max-mem-pages=" + std::to_string(std::min<uint64_t>(pages, 65536)));
  }
  init_v8_once(flags);
  g_flags = flags;
  RunOutcome out;
  std::unique_ptr<v8::ArrayBuffer::Allocator> allocator;
  v8::Isolate* iso = nullptr;
  const bool warm = g_warm && g_warm->heap_limit == cfg.heap_limit_bytes;
  if (warm) {
    iso = g_warm->iso;
  } else {
    allocator.reset(v8::ArrayBuffer::Allocator::NewDefaultAllocator());
    iso = new_isolate(cfg.heap_limit_bytes, allocator.get());
  }
  g_on_fatal = cfg.on_fatal;
  // Out of memory where no isolate is current (a Zone on a compile thread): the same record.
  v8::V8::SetFatalMemoryErrorCallback([](const char*, bool) {
    if (g_on_fatal) g_on_fatal(true);
    _exit(70);
  });
  iso->SetOOMErrorHandler([](const char*, bool) {
    if (g_on_fatal) g_on_fatal(true);
    _exit(70);
  });
  iso->SetFatalErrorHandler([](const char*, const char*) {
    if (g_on_fatal) g_on_fatal(false);
    _exit(70);
  });
  {
    v8::Isolate::Scope iso_scope(iso);
    v8::HandleScope hs(iso);
    v8::Local<v8::Context> ctx = warm ? g_warm->ctx.Get(iso) : v8::Context::New(iso);
    v8::Context::Scope ctx_scope(ctx);
    Runner runner(cfg, iso, ctx);
    out = runner.run();
    out.peak_wasm_memory_bytes = runner.peak_memory();
    // A job process exits here: disposing an isolate it will never use again costs ~0.6 ms.
    if (cfg.on_outcome) cfg.on_outcome(out);
  }
  if (warm) {
    g_warm->ctx.Reset();
    g_warm = nullptr;  // one job per warm isolate
  }
  iso->Dispose();
  return out;
}

}  // namespace wj
