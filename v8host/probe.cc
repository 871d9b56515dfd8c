#include "v8host/probe.h"

#ifdef WASMJAIL_TEST_PROBE
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace wj::probe {
namespace {

constexpr int kRecordFd = 3;  // supervisor/child.h kChildRecord

uint64_t arg(const v8::FunctionCallbackInfo<v8::Value>& info, int i) {
  v8::Local<v8::Value> v = info[i];
  return v->IsBigInt() ? v.As<v8::BigInt>()->Uint64Value() : 0;
}

void do_syscall(const v8::FunctionCallbackInfo<v8::Value>& info) {
  long r = syscall(static_cast<long>(arg(info, 0)), arg(info, 1), arg(info, 2), arg(info, 3), arg(info, 4),
                   arg(info, 5), arg(info, 6));
  int64_t out = r == -1 ? -static_cast<int64_t>(errno) : r;
  info.GetReturnValue().Set(v8::BigInt::New(info.GetIsolate(), out));
}

void garbage(const v8::FunctionCallbackInfo<v8::Value>& info) {
  uint64_t n = arg(info, 0);
  char buf[4096];
  std::memset(buf, 0xAB, sizeof buf);
  int64_t total = 0;
  while (n > 0) {
    ssize_t w = write(kRecordFd, buf, n < sizeof buf ? n : sizeof buf);
    if (w <= 0) break;
    total += w;
    n -= static_cast<uint64_t>(w);
  }
  info.GetReturnValue().Set(v8::BigInt::New(info.GetIsolate(), total));
}

}  // namespace

bool signature(const std::string& name, std::string* params) {
  if (name == "syscall") return *params = "IIIIIII", true;
  if (name == "garbage") return *params = "I", true;
  return false;
}

v8::Local<v8::Object> make_module(v8::Isolate* iso, v8::Local<v8::Context> ctx) {
  v8::Local<v8::Object> ns = v8::Object::New(iso);
  ns->Set(ctx, v8::String::NewFromUtf8Literal(iso, "syscall"),
          v8::Function::New(ctx, do_syscall).ToLocalChecked())
      .Check();
  ns->Set(ctx, v8::String::NewFromUtf8Literal(iso, "garbage"),
          v8::Function::New(ctx, garbage).ToLocalChecked())
      .Check();
  return ns;
}

}  // namespace wj::probe
#endif
