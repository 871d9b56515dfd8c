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

namespace wj {
namespace {

using namespace wasi;  // NOLINT(google-build-using-namespace): ABI constants

// Arguments arrive widened to u64; 'i' is an i32 parameter, 'I' an i64 one.
using Handler = uint32_t (*)(Wasi& w, const uint64_t* a);

struct FnSpec {
  const char* name;
  const char* sig;
  Handler fn;
};

uint16_t errno_to_wasi(int e) {
  switch (e) {
    case E2BIG: return k2Big;
    case EACCES: return kAcces;
    case EAGAIN: return kAgain;
    case EBADF: return kBadf;
    case EBUSY: return kBusy;
    case EDQUOT: return kDquot;
    case EEXIST: return kExist;
    case EFAULT: return kFault;
    case EFBIG: return kFbig;
    case EINTR: return kIntr;
    case EINVAL: return kInval;
    case EIO: return kIo;
    case EISDIR: return kIsDir;
    case ELOOP: return kLoop;
    case EMFILE: return kMfile;
    case EMLINK: return kMlink;
    case ENAMETOOLONG: return kNameTooLong;
    case ENFILE: return kNfile;
    case ENODEV: return kNoDev;
    case ENOENT: return kNoEnt;
    case ENOMEM: return kNoMem;
    case ENOSPC: return kNoSpc;
    case ENOSYS: return kNoSys;
    case ENOTDIR: return kNotDir;
    case ENOTEMPTY: return kNotEmpty;
    case ENOTSUP: return kNotSup;
    case ENOTTY: return kNotTy;
    case ENXIO: return kNxio;
    case EOVERFLOW: return kOverflow;
    case EPERM: return kPerm;
    case EPIPE: return kPipe;
    case ERANGE: return kRange;
    case EROFS: return kRofs;
    case ESPIPE: return kSpipe;
    case ETIMEDOUT: return kTimedOut;
    case ETXTBSY: return kTxtBsy;
    case EXDEV: return kXdev;
    case ENOTSOCK: return kNotSock;
    default: return kIo;
  }
}

inline uint32_t rd32(const GuestMemory& m, uint64_t p) {
  uint32_t v;
  std::memcpy(&v, m.at(p), 4);
  return v;
}
inline void wr32(const GuestMemory& m, uint64_t p, uint32_t v) { std::memcpy(m.at(p), &v, 4); }
inline void wr64(const GuestMemory& m, uint64_t p, uint64_t v) { std::memcpy(m.at(p), &v, 8); }
inline void wr16(const GuestMemory& m, uint64_t p, uint16_t v) { std::memcpy(m.at(p), &v, 2); }

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

// ---- fds ---------------------------------------------------------------------------------

// Gathers guest iovecs into host iovecs, each checked against memory. At most IOV_MAX.
uint32_t gather(const GuestMemory& m, uint64_t iovs, uint64_t n, std::vector<iovec>* out) {
  if (n > IOV_MAX) return kInval;
  if (!m.ok(iovs, 8 * n)) return kFault;
  out->resize(n);
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t p = rd32(m, iovs + 8 * i), len = rd32(m, iovs + 8 * i + 4);
    if (!m.ok(p, len)) return kFault;
    (*out)[i] = iovec{m.at(p), len};
  }
  return kSuccess;
}

uint32_t fd_write(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* e = w.fd(static_cast<uint32_t>(a[0]));
  if (!e) return kBadf;
  if (!(e->rights_base & right::kFdWrite)) return kNotCapable;
  GuestMemory m = w.memory();
  if (!m.ok(a[3], 4)) return kFault;
  std::vector<iovec> iov;
  if (uint32_t r = gather(m, a[1], a[2], &iov)) return r;
  if (e->host_fd < 0) return kBadf;
  ssize_t n;
  do n = writev(e->host_fd, iov.data(), static_cast<int>(iov.size()));
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno_to_wasi(errno);
  wr32(m, a[3], static_cast<uint32_t>(n));
  return kSuccess;
}

uint32_t fd_read(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* e = w.fd(static_cast<uint32_t>(a[0]));
  if (!e) return kBadf;
  if (!(e->rights_base & right::kFdRead)) return kNotCapable;
  GuestMemory m = w.memory();
  if (!m.ok(a[3], 4)) return kFault;
  std::vector<iovec> iov;
  if (uint32_t r = gather(m, a[1], a[2], &iov)) return r;
  ssize_t n = 0;
  if (e->host_fd >= 0) {
    do n = readv(e->host_fd, iov.data(), static_cast<int>(iov.size()));
    while (n < 0 && errno == EINTR);
    if (n < 0) return errno_to_wasi(errno);
  }
  wr32(m, a[3], static_cast<uint32_t>(n));
  return kSuccess;
}

uint32_t fd_close(Wasi& w, const uint64_t* a) {
  auto& fds = w.fds();
  uint32_t n = static_cast<uint32_t>(a[0]);
  Wasi::FdEntry* e = w.fd(n);
  if (!e) return kBadf;
  if (e->is_preopen) return kNotSup;  // preopens stay for the job's life, as in wasmtime
  if (e->owned && e->host_fd >= 0) close(e->host_fd);
  fds[n].reset();
  return kSuccess;
}

uint32_t fd_fdstat_get(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* e = w.fd(static_cast<uint32_t>(a[0]));
  if (!e) return kBadf;
  GuestMemory m = w.memory();
  if (!m.ok(a[1], 24)) return kFault;
  std::memset(m.at(a[1]), 0, 24);
  m.at(a[1])[0] = e->filetype;
  wr16(m, a[1] + 2, e->fdflags);
  wr64(m, a[1] + 8, e->rights_base);
  wr64(m, a[1] + 16, e->rights_inheriting);
  return kSuccess;
}

uint32_t fd_fdstat_set_flags(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* e = w.fd(static_cast<uint32_t>(a[0]));
  if (!e) return kBadf;
  if (!(e->rights_base & right::kFdFdstatSetFlags)) return kNotCapable;
  uint16_t flags = static_cast<uint16_t>(a[1]);
  if (e->host_fd >= 0) {
    int fl = fcntl(e->host_fd, F_GETFL);
    if (fl < 0) return errno_to_wasi(errno);
    fl = (fl & ~(O_APPEND | O_NONBLOCK)) | ((flags & fdflag::kAppend) ? O_APPEND : 0) |
         ((flags & fdflag::kNonblock) ? O_NONBLOCK : 0);
    if (fcntl(e->host_fd, F_SETFL, fl) != 0) return errno_to_wasi(errno);
  }
  e->fdflags = flags;
  return kSuccess;
}

uint32_t fd_fdstat_set_rights(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* e = w.fd(static_cast<uint32_t>(a[0]));
  if (!e) return kBadf;
  // Rights can only be dropped, never gained.
  if ((a[1] & ~e->rights_base) || (a[2] & ~e->rights_inheriting)) return kNotCapable;
  e->rights_base = a[1];
  e->rights_inheriting = a[2];
  return kSuccess;
}

uint32_t fd_seek(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* e = w.fd(static_cast<uint32_t>(a[0]));
  if (!e) return kBadf;
  if (!(e->rights_base & (right::kFdSeek | right::kFdTell))) return kNotCapable;
  int whence = a[2] == 0 ? SEEK_SET : a[2] == 1 ? SEEK_CUR : a[2] == 2 ? SEEK_END : -1;
  if (whence < 0) return kInval;
  GuestMemory m = w.memory();
  if (!m.ok(a[3], 8)) return kFault;
  if (e->host_fd < 0) return kSpipe;
  off_t r = lseek(e->host_fd, static_cast<off_t>(a[1]), whence);
  if (r < 0) return errno_to_wasi(errno);
  wr64(m, a[3], static_cast<uint64_t>(r));
  return kSuccess;
}

uint32_t fd_tell(Wasi& w, const uint64_t* a) {
  const uint64_t args[4] = {a[0], 0, 1, a[1]};
  return fd_seek(w, args);
}

uint32_t fd_filestat_get(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* e = w.fd(static_cast<uint32_t>(a[0]));
  if (!e) return kBadf;
  GuestMemory m = w.memory();
  if (!m.ok(a[1], 64)) return kFault;
  std::memset(m.at(a[1]), 0, 64);
  m.at(a[1])[16] = e->filetype;
  if (e->host_fd >= 0) {
    struct stat st{};
    if (fstat(e->host_fd, &st) != 0) return errno_to_wasi(errno);
    wr64(m, a[1], st.st_dev);
    wr64(m, a[1] + 8, st.st_ino);
    wr64(m, a[1] + 24, st.st_nlink);
    wr64(m, a[1] + 32, static_cast<uint64_t>(st.st_size));
    wr64(m, a[1] + 40, to_ns(st.st_atim));
    wr64(m, a[1] + 48, to_ns(st.st_mtim));
    wr64(m, a[1] + 56, to_ns(st.st_ctim));
  }
  return kSuccess;
}

uint32_t fd_prestat_get(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* e = w.fd(static_cast<uint32_t>(a[0]));
  if (!e || !e->is_preopen) return kBadf;
  GuestMemory m = w.memory();
  if (!m.ok(a[1], 8)) return kFault;
  wr32(m, a[1], 0);  // tag: dir
  wr32(m, a[1] + 4, static_cast<uint32_t>(e->guest_path.size()));
  return kSuccess;
}

uint32_t fd_prestat_dir_name(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* e = w.fd(static_cast<uint32_t>(a[0]));
  if (!e || !e->is_preopen) return kBadf;
  GuestMemory m = w.memory();
  if (a[2] < e->guest_path.size()) return kNameTooLong;
  if (!m.ok(a[1], e->guest_path.size())) return kFault;
  std::memcpy(m.at(a[1]), e->guest_path.data(), e->guest_path.size());
  return kSuccess;
}

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

uint32_t not_yet(Wasi&, const uint64_t*) { return kNoSys; }

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
    {"fd_advise", "iIIi", not_yet},
    {"fd_allocate", "iII", not_yet},
    {"fd_close", "i", fd_close},
    {"fd_datasync", "i", not_yet},
    {"fd_fdstat_get", "ii", fd_fdstat_get},
    {"fd_fdstat_set_flags", "ii", fd_fdstat_set_flags},
    {"fd_fdstat_set_rights", "iII", fd_fdstat_set_rights},
    {"fd_filestat_get", "ii", fd_filestat_get},
    {"fd_filestat_set_size", "iI", not_yet},
    {"fd_filestat_set_times", "iIIi", not_yet},
    {"fd_pread", "iiiIi", not_yet},
    {"fd_prestat_get", "ii", fd_prestat_get},
    {"fd_prestat_dir_name", "iii", fd_prestat_dir_name},
    {"fd_pwrite", "iiiIi", not_yet},
    {"fd_read", "iiii", fd_read},
    {"fd_readdir", "iiiIi", not_yet},
    {"fd_renumber", "ii", not_yet},
    {"fd_seek", "iIii", fd_seek},
    {"fd_sync", "i", not_yet},
    {"fd_tell", "ii", fd_tell},
    {"fd_write", "iiii", fd_write},
    {"path_create_directory", "iii", not_yet},
    {"path_filestat_get", "iiiii", not_yet},
    {"path_filestat_set_times", "iiiiIIi", not_yet},
    {"path_link", "iiiiiii", not_yet},
    {"path_open", "iiiiiIIii", not_yet},
    {"path_readlink", "iiiiii", not_yet},
    {"path_remove_directory", "iii", not_yet},
    {"path_rename", "iiiiii", not_yet},
    {"path_symlink", "iiiii", not_yet},
    {"path_unlink_file", "iii", not_yet},
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

bool Wasi::provides(const std::string& name) {
  return std::any_of(std::begin(kFunctions), std::end(kFunctions),
                     [&](const FnSpec& f) { return name == f.name; });
}

bool Wasi::signature(const std::string& name, std::string* params, bool* returns_errno) {
  for (const FnSpec& f : kFunctions) {
    if (name != f.name) continue;
    *params = f.sig;
    *returns_errno = name != "proc_exit";
    return true;
  }
  return false;
}

Wasi::Wasi(const RunConfig& cfg) : args_(cfg.argv) {
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
    e.rights_base = right::kAll & ~(right::kFdRead | right::kFdWrite | right::kFdSeek | right::kFdTell);
    e.rights_inheriting = right::kAll;
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

void Wasi::request_exit(int32_t code) {
  exit_code_ = code;
  // Unwinds the guest: a termination cannot be caught by wasm exception handlers.
  isolate_->TerminateExecution();
}

}  // namespace wj
