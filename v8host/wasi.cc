#include "v8host/wasi.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <string_view>

#include "v8host/wasi_abi.h"
#include "v8host/wasi_fs.h"
#include "v8host/wasi_util.h"

namespace wj {
namespace {

using namespace wasi;  // NOLINT(google-build-using-namespace): ABI constants

struct FnSpec {
  const char* name;
  const char* sig;  // one letter per parameter: 'i' an i32, 'I' an i64
  Handler fn;
};

// ---- args / environ --------------------------------------------------------------

uint32_t strings_sizes(Wasi& w, const std::vector<std::string>& v, uint64_t count_ptr,
                       uint64_t size_ptr) {
  GuestMemory m = w.memory();
  if (!m.ok(count_ptr, 4) || !m.ok(size_ptr, 4)) return kFault;
  uint64_t total = 0;
  for (const auto& s : v) total += s.size() + 1;
  wr32(m, count_ptr, static_cast<uint32_t>(v.size()));
  wr32(m, size_ptr, static_cast<uint32_t>(total));
  return kSuccess;
}

uint32_t strings_get(Wasi& w, const std::vector<std::string>& v, uint64_t ptrs, uint64_t buf) {
  GuestMemory m = w.memory();
  uint64_t total = 0;
  for (const auto& s : v) total += s.size() + 1;
  if (!m.ok(ptrs, 4ull * v.size()) || !m.ok(buf, total)) return kFault;
  uint64_t off = buf;
  for (size_t i = 0; i < v.size(); ++i) {
    wr32(m, ptrs + 4 * i, static_cast<uint32_t>(off));
    std::memcpy(m.at(off), v[i].c_str(), v[i].size() + 1);
    off += v[i].size() + 1;
  }
  return kSuccess;
}

uint32_t args_get(Wasi& w, const uint64_t* a) { return strings_get(w, w.args(), a[0], a[1]); }
uint32_t args_sizes_get(Wasi& w, const uint64_t* a) { return strings_sizes(w, w.args(), a[0], a[1]); }
uint32_t environ_get(Wasi& w, const uint64_t* a) { return strings_get(w, w.env(), a[0], a[1]); }
uint32_t environ_sizes_get(Wasi& w, const uint64_t* a) { return strings_sizes(w, w.env(), a[0], a[1]); }

// ---- clocks, random, scheduling ------------------------------------------------------

bool host_clock(uint32_t id, clockid_t* out) {
  switch (id) {
    case kRealtime: *out = CLOCK_REALTIME; return true;
    case kMonotonic: *out = CLOCK_MONOTONIC; return true;
    case kProcessCputime: *out = CLOCK_PROCESS_CPUTIME_ID; return true;
    case kThreadCputime: *out = CLOCK_THREAD_CPUTIME_ID; return true;
    default: return false;
  }
}

uint64_t to_ns(const timespec& ts) {
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint32_t clock_res_get(Wasi& w, const uint64_t* a) {
  clockid_t c;
  if (!host_clock(static_cast<uint32_t>(a[0]), &c)) return kInval;
  timespec ts{};
  if (clock_getres(c, &ts) != 0) return errno_to_wasi(errno);
  GuestMemory m = w.memory();
  if (!m.ok(a[1], 8)) return kFault;
  wr64(m, a[1], to_ns(ts));
  return kSuccess;
}

uint32_t clock_time_get(Wasi& w, const uint64_t* a) {
  clockid_t c;
  if (!host_clock(static_cast<uint32_t>(a[0]), &c)) return kInval;
  timespec ts{};
  if (clock_gettime(c, &ts) != 0) return errno_to_wasi(errno);
  GuestMemory m = w.memory();
  if (!m.ok(a[2], 8)) return kFault;
  wr64(m, a[2], to_ns(ts));
  return kSuccess;
}

uint32_t random_get(Wasi& w, const uint64_t* a) {
  GuestMemory m = w.memory();
  if (!m.ok(a[0], a[1])) return kFault;
  uint64_t done = 0;
  while (done < a[1]) {
    ssize_t n = getrandom(m.at(a[0] + done), std::min<uint64_t>(a[1] - done, 1 << 20), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_to_wasi(errno);
    }
    done += static_cast<uint64_t>(n);
  }
  return kSuccess;
}

uint32_t sched_yield_(Wasi&, const uint64_t*) {
  sched_yield();
  return kSuccess;
}

uint32_t proc_exit(Wasi& w, const uint64_t* a) {
  w.request_exit(static_cast<int32_t>(static_cast<uint32_t>(a[0])));
  return 0;
}

// proc_raise is deprecated in preview1 and no runtime delivers real signals to a guest.
uint32_t proc_raise(Wasi&, const uint64_t*) { return kNoSys; }

// ---- poll_oneoff ---------------------------------------------------------------------------

uint32_t poll_oneoff(Wasi& w, const uint64_t* a) {
  const uint64_t in = a[0], out = a[1], nsubs = a[2], nevents_ptr = a[3];
  if (nsubs == 0) return kInval;
  {
    GuestMemory m = w.memory();
    if (!m.ok(in, nsubs * kSubscriptionSize) || !m.ok(out, nsubs * kEventSize) ||
        !m.ok(nevents_ptr, 4))
      return kFault;
  }
  struct Sub {
    uint64_t userdata;
    uint8_t type;
    uint16_t error = kSuccess;
    clockid_t clock{};
    uint64_t deadline_ns = 0;  // on `clock`
    int host_fd = -1;
    bool ready = false;
    uint64_t nbytes = 0;
  };
  std::vector<Sub> subs(nsubs);
  std::vector<pollfd> pfds;
  std::vector<size_t> pfd_sub;
  {
    GuestMemory m = w.memory();
    for (uint64_t i = 0; i < nsubs; ++i) {
      const uint8_t* s = m.at(in + i * kSubscriptionSize);
      Sub& sub = subs[i];
      std::memcpy(&sub.userdata, s, 8);
      sub.type = s[8];
      if (sub.type == kEventClock) {
        uint32_t id;
        uint64_t timeout;
        uint16_t flags;
        std::memcpy(&id, s + 16, 4);
        std::memcpy(&timeout, s + 24, 8);
        std::memcpy(&flags, s + 40, 2);
        if (!host_clock(id, &sub.clock) || id >= kProcessCputime) {
          sub.error = kInval;
          sub.ready = true;
          continue;
        }
        timespec now{};
        clock_gettime(sub.clock, &now);
        sub.deadline_ns = (flags & kSubscriptionClockAbstime) ? timeout : to_ns(now) + timeout;
      } else if (sub.type == kEventFdRead || sub.type == kEventFdWrite) {
        uint32_t fdn;
        std::memcpy(&fdn, s + 16, 4);
        Wasi::FdEntry* e = w.fd(fdn);
        uint64_t need = sub.type == kEventFdRead ? right::kFdRead : right::kFdWrite;
        if (!e) {
          sub.error = kBadf;
          sub.ready = true;
        } else if (!(e->rights_base & (need | right::kPollFdReadwrite))) {
          sub.error = kNotCapable;
          sub.ready = true;
        } else if (e->host_fd < 0 || e->filetype == kRegularFile || e->filetype == kDirectory) {
          sub.ready = true;  // regular files and the empty stdin never block
          if (e->host_fd >= 0 && sub.type == kEventFdRead) {
            struct stat st{};
            off_t pos = lseek(e->host_fd, 0, SEEK_CUR);
            if (fstat(e->host_fd, &st) == 0 && pos >= 0 && st.st_size > pos)
              sub.nbytes = static_cast<uint64_t>(st.st_size - pos);
          }
        } else {
          pfds.push_back(pollfd{e->host_fd, static_cast<short>(sub.type == kEventFdRead ? POLLIN : POLLOUT), 0});
          pfd_sub.push_back(i);
        }
      } else {
        sub.error = kInval;
        sub.ready = true;
      }
    }
  }
  auto any_ready = [&] { return std::any_of(subs.begin(), subs.end(), [](const Sub& s) { return s.ready; }); };
  for (;;) {
    // Nearest clock deadline, as a relative timeout.
    int64_t wait_ns = -1;
    for (Sub& s : subs) {
      if (s.type != kEventClock || s.error) continue;
      timespec now{};
      clock_gettime(s.clock, &now);
      uint64_t n = to_ns(now);
      if (n >= s.deadline_ns) {
        s.ready = true;
        wait_ns = 0;
      } else if (wait_ns < 0 || static_cast<int64_t>(s.deadline_ns - n) < wait_ns) {
        wait_ns = static_cast<int64_t>(s.deadline_ns - n);
      }
    }
    if (any_ready()) wait_ns = 0;
    if (pfds.empty()) {
      if (wait_ns < 0) return kInval;  // nothing could ever become ready (only bad subs)
      if (wait_ns > 0) {
        timespec ts{static_cast<time_t>(wait_ns / 1000000000), static_cast<long>(wait_ns % 1000000000)};
        nanosleep(&ts, nullptr);
        continue;
      }
    } else {
      timespec ts{static_cast<time_t>(wait_ns / 1000000000), static_cast<long>(wait_ns % 1000000000)};
      int r = ppoll(pfds.data(), pfds.size(), wait_ns < 0 ? nullptr : &ts, nullptr);
      if (r < 0 && errno != EINTR) return errno_to_wasi(errno);
      for (size_t k = 0; k < pfds.size(); ++k) {
        if (!pfds[k].revents) continue;
        Sub& s = subs[pfd_sub[k]];
        s.ready = true;
        if (pfds[k].revents & (POLLERR | POLLNVAL)) s.error = kIo;
        // nbytes stays 0 for pipes: FIONREAD would need ioctl, which the sandbox forbids.
      }
      if (!any_ready()) continue;
    }
    break;
  }
  GuestMemory m = w.memory();  // re-read: memory may have been replaced meanwhile
  if (!m.ok(out, nsubs * kEventSize) || !m.ok(nevents_ptr, 4)) return kFault;
  uint32_t nev = 0;
  for (const Sub& s : subs) {
    if (!s.ready) continue;
    uint64_t ev = out + nev * kEventSize;
    std::memset(m.at(ev), 0, kEventSize);
    wr64(m, ev, s.userdata);
    wr16(m, ev + 8, s.error);
    m.at(ev)[10] = s.type;
    if (s.type != kEventClock) wr64(m, ev + 16, s.nbytes);
    ++nev;
  }
  wr32(m, nevents_ptr, nev);
  return kSuccess;
}

// sock_* on a preview1 guest: wasmjail never hands a guest a socket, so every fd is either
// not open (EBADF) or not a socket (ENOTSOCK), as the conformance corpus expects.
uint32_t sock_call(Wasi& w, const uint64_t* a) {
  return w.fd(static_cast<uint32_t>(a[0])) ? kNotSock : kBadf;
}

constexpr FnSpec kFunctions[] = {
    {"args_get", "ii", args_get},
    {"args_sizes_get", "ii", args_sizes_get},
    {"environ_get", "ii", environ_get},
    {"environ_sizes_get", "ii", environ_sizes_get},
    {"clock_res_get", "ii", clock_res_get},
    {"clock_time_get", "iIi", clock_time_get},
    {"fd_advise", "iIIi", fd_advise},
    {"fd_allocate", "iII", fd_allocate},
    {"fd_close", "i", fd_close},
    {"fd_datasync", "i", fd_datasync},
    {"fd_fdstat_get", "ii", fd_fdstat_get},
    {"fd_fdstat_set_flags", "ii", fd_fdstat_set_flags},
    {"fd_fdstat_set_rights", "iII", fd_fdstat_set_rights},
    {"fd_filestat_get", "ii", fd_filestat_get},
    {"fd_filestat_set_size", "iI", fd_filestat_set_size},
    {"fd_filestat_set_times", "iIIi", fd_filestat_set_times},
    {"fd_pread", "iiiIi", fd_pread},
    {"fd_prestat_get", "ii", fd_prestat_get},
    {"fd_prestat_dir_name", "iii", fd_prestat_dir_name},
    {"fd_pwrite", "iiiIi", fd_pwrite},
    {"fd_read", "iiii", fd_read},
    {"fd_readdir", "iiiIi", fd_readdir},
    {"fd_renumber", "ii", fd_renumber},
    {"fd_seek", "iIii", fd_seek},
    {"fd_sync", "i", fd_sync},
    {"fd_tell", "ii", fd_tell},
    {"fd_write", "iiii", fd_write},
    {"path_create_directory", "iii", path_create_directory},
    {"path_filestat_get", "iiiii", path_filestat_get},
    {"path_filestat_set_times", "iiiiIIi", path_filestat_set_times},
    {"path_link", "iiiiiii", path_link},
    {"path_open", "iiiiiIIii", path_open},
    {"path_readlink", "iiiiii", path_readlink},
    {"path_remove_directory", "iii", path_remove_directory},
    {"path_rename", "iiiiii", path_rename},
    {"path_symlink", "iiiii", path_symlink},
    {"path_unlink_file", "iii", path_unlink_file},
    {"poll_oneoff", "iiii", poll_oneoff},
    {"proc_exit", "i", proc_exit},
    {"proc_raise", "i", proc_raise},
    {"sched_yield", "", sched_yield_},
    {"random_get", "ii", random_get},
    {"sock_accept", "iii", sock_call},
    {"sock_recv", "iiiiii", sock_call},
    {"sock_send", "iiiii", sock_call},
    {"sock_shutdown", "ii", sock_call},
};
static_assert(std::size(kFunctions) == 46, "wasi_snapshot_preview1 has 46 functions");

}  // namespace

struct Wasi::Binding {
  Wasi* wasi;
  size_t slot;
  const FnSpec* spec;
  size_t nparams;
  bool returns;
};

namespace {

void trampoline(const v8::FunctionCallbackInfo<v8::Value>& info) {
  auto* b = static_cast<Wasi::Binding*>(info.Data().As<v8::External>()->Value());
  Wasi& w = *b->wasi;
  if (w.exit_code()) {  // proc_exit already ran: nothing more happens, unwind.
    info.GetIsolate()->TerminateExecution();
    return;
  }
  uint64_t args[9] = {};
  v8::Local<v8::Context> ctx = info.GetIsolate()->GetCurrentContext();
  for (size_t i = 0; i < b->nparams; ++i) {
    v8::Local<v8::Value> v = info[static_cast<int>(i)];
    if (b->spec->sig[i] == 'i') {
      args[i] = v->IsInt32() ? static_cast<uint32_t>(v.As<v8::Int32>()->Value())
                             : v->Uint32Value(ctx).FromMaybe(0);
    } else {
      args[i] = v->IsBigInt() ? v.As<v8::BigInt>()->Uint64Value() : 0;
    }
  }
  w.set_current_slot(b->slot);
  uint32_t r = b->spec->fn(w, args);
  if (b->returns) info.GetReturnValue().Set(r);
}

}  // namespace

bool Wasi::signature(const std::string& name, std::string* params, bool* returns_errno) {
  for (const FnSpec& f : kFunctions) {
    if (name != f.name) continue;
    *params = f.sig;
    *returns_errno = name != "proc_exit";
    return true;
  }
  return false;
}

Wasi::Wasi(const RunConfig& cfg)
    : args_(cfg.argv), output_limit_(cfg.output_limit_bytes), files_limit_(cfg.output_limit_files) {
  for (const auto& [k, v] : cfg.env) env_.push_back(k + "=" + v);
  auto stdio = [](int host_fd, bool is_read) {
    FdEntry e;
    e.host_fd = host_fd;
    e.filetype = kUnknown;
    struct stat st{};
    if (host_fd >= 0 && fstat(host_fd, &st) == 0) {
      if (S_ISCHR(st.st_mode)) e.filetype = kCharacterDevice;
      else if (S_ISREG(st.st_mode)) e.filetype = kRegularFile;
      else if (S_ISSOCK(st.st_mode)) e.filetype = kSocketStream;
    }
    e.rights_base = (is_read ? right::kFdRead : right::kFdWrite) | right::kPollFdReadwrite |
                    right::kFdFilestatGet | right::kFdFdstatSetFlags;
    return e;
  };
  fds_.push_back(stdio(cfg.stdin_fd, true));
  fds_.push_back(stdio(cfg.stdout_fd, false));
  fds_.push_back(stdio(cfg.stderr_fd, false));
  // A tty on the other side of the supervisor: let the guest's libc line-buffer as it would.
  for (int i = 1; i <= 2; ++i)
    if (cfg.stdio_is_tty[i]) fds_[i]->filetype = kCharacterDevice;
  for (const Preopen& p : cfg.preopens) {
    FdEntry e;
    e.host_fd = p.host_fd;
    e.filetype = kDirectory;
    e.is_preopen = true;
    e.owned = true;
    e.read_only = p.read_only;
    e.guest_path = p.guest_path;
    e.rights_base = right::kDirBase;
    e.rights_inheriting = right::kDirInheriting;
    if (p.read_only) {
      e.rights_base &= ~right::kMutating;
      e.rights_inheriting &= ~right::kMutating;
    }
    fds_.push_back(std::move(e));
  }
}

Wasi::~Wasi() {
  for (auto& e : fds_)
    if (e && e->owned && e->host_fd >= 0) close(e->host_fd);
  for (Binding* b : bindings_) delete b;
}

size_t Wasi::install(v8::Isolate* isolate, v8::Local<v8::Context> ctx, v8::Local<v8::Object> imports) {
  isolate_ = isolate;
  size_t slot = memories_.size();
  memories_.push_back(std::make_unique<v8::Global<v8::WasmMemoryObject>>());
  v8::Local<v8::Object> ns = v8::Object::New(isolate);
  for (const FnSpec& f : kFunctions) {
    auto* b = new Binding{this, slot, &f, std::strlen(f.sig), std::string_view(f.name) != "proc_exit"};
    bindings_.push_back(b);
    v8::Local<v8::Function> fn =
        v8::Function::New(ctx, trampoline, v8::External::New(isolate, b), static_cast<int>(b->nparams),
                          v8::ConstructorBehavior::kThrow)
            .ToLocalChecked();
    ns->Set(ctx, v8::String::NewFromUtf8(isolate, f.name).ToLocalChecked(), fn).Check();
  }
  imports->Set(ctx, v8::String::NewFromUtf8Literal(isolate, "wasi_snapshot_preview1"), ns).Check();
  return slot;
}

void Wasi::bind_memory(size_t slot, v8::Local<v8::WasmMemoryObject> memory) {
  memories_.at(slot)->Reset(isolate_, memory);
}

GuestMemory Wasi::memory() {
  if (current_slot_ >= memories_.size() || memories_[current_slot_]->IsEmpty()) return {};
  v8::Local<v8::ArrayBuffer> buf = memories_[current_slot_]->Get(isolate_)->Buffer();
  return GuestMemory{static_cast<uint8_t*>(buf->Data()), buf->ByteLength()};
}

uint64_t Wasi::peak_memory_size() {
  uint64_t peak = 0;
  for (auto& m : memories_)
    if (!m->IsEmpty()) peak = std::max<uint64_t>(peak, m->Get(isolate_)->Buffer()->ByteLength());
  return peak;
}

std::optional<uint32_t> Wasi::add_fd(FdEntry e) {
  for (size_t i = 0; i < fds_.size(); ++i) {
    if (!fds_[i]) {
      fds_[i] = std::move(e);
      return static_cast<uint32_t>(i);
    }
  }
  if (fds_.size() >= kMaxFds) return std::nullopt;
  fds_.push_back(std::move(e));
  return static_cast<uint32_t>(fds_.size() - 1);
}

void Wasi::close_fd(uint32_t n) {
  if (n >= fds_.size() || !fds_[n]) return;
  if (fds_[n]->owned && fds_[n]->host_fd >= 0) close(fds_[n]->host_fd);
  fds_[n].reset();
}

namespace {
// Only files count as written outputs: stdout and stderr have their own caps.
bool is_output_file(const Wasi::FdEntry& e) { return e.owned && !e.is_preopen && e.filetype == wasi::kRegularFile; }
}  // namespace

bool Wasi::charge_output(const FdEntry& e, std::vector<struct iovec>* iov) {
  if (!output_limit_ || !is_output_file(e)) return true;
  uint64_t left = output_limit_ - output_used_;
  uint64_t want = 0;
  for (auto& v : *iov) want += v.iov_len;
  if (want == 0) return true;
  if (left == 0) return false;
  uint64_t keep = std::min(want, left);
  uint64_t acc = 0;
  size_t i = 0;
  for (; i < iov->size() && acc < keep; ++i) {
    if (acc + (*iov)[i].iov_len > keep) (*iov)[i].iov_len = keep - acc;
    acc += (*iov)[i].iov_len;
  }
  iov->resize(i);
  output_used_ += keep;
  return true;
}

void Wasi::uncharge_output(const FdEntry& e, uint64_t unused) {
  if (output_limit_ && is_output_file(e)) output_used_ -= std::min(unused, output_used_);
}

bool Wasi::charge_output_growth(const FdEntry& e, uint64_t bytes) {
  if (!output_limit_ || !is_output_file(e) || bytes == 0) return true;
  if (bytes > output_limit_ - output_used_) return false;
  output_used_ += bytes;
  return true;
}

bool Wasi::charge_entry(uint64_t bytes, uint16_t* wasi_errno) {
  if (files_limit_ && files_used_ >= files_limit_) {
    *wasi_errno = wasi::kDquot;
    return false;
  }
  if (output_limit_ && bytes > output_limit_ - output_used_) {
    *wasi_errno = wasi::kFbig;
    return false;
  }
  ++files_used_;
  if (output_limit_) output_used_ += bytes;
  return true;
}

void Wasi::uncharge_entry(uint64_t bytes) {
  files_used_ -= std::min<uint64_t>(1, files_used_);
  if (output_limit_) output_used_ -= std::min(bytes, output_used_);
}

void Wasi::request_exit(int32_t code) {
  exit_code_ = code;
  // Unwinds the guest: a termination cannot be caught by wasm exception handlers.
  isolate_->TerminateExecution();
}

}  // namespace wj
