#include "v8host/wasi_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <cerrno>
#include <cstring>
#include <string>

#include "v8host/confined.h"
#include "v8host/wasi_abi.h"
#include "v8host/wasi_util.h"

namespace wj::wasi {

uint16_t errno_to_wasi(int e) {
  switch (e) {
    case 0: return kSuccess;
    case E2BIG: return k2Big;
    case EACCES: return kAcces;
    case EADDRINUSE: return kAddrInUse;
    case EADDRNOTAVAIL: return kAddrNotAvail;
    case EAFNOSUPPORT: return kAfNoSupport;
    case EAGAIN: return kAgain;
    case EALREADY: return kAlready;
    case EBADF: return kBadf;
    case EBADMSG: return kBadMsg;
    case EBUSY: return kBusy;
    case ECANCELED: return kCanceled;
    case ECHILD: return kChild;
    case ECONNABORTED: return kConnAborted;
    case ECONNREFUSED: return kConnRefused;
    case ECONNRESET: return kConnReset;
    case EDEADLK: return kDeadlk;
    case EDESTADDRREQ: return kDestAddrReq;
    case EDOM: return kDom;
    case EDQUOT: return kDquot;
    case EEXIST: return kExist;
    case EFAULT: return kFault;
    case EFBIG: return kFbig;
    case EHOSTUNREACH: return kHostUnreach;
    case EIDRM: return kIdrm;
    case EILSEQ: return kIlseq;
    case EINPROGRESS: return kInProgress;
    case EINTR: return kIntr;
    case EINVAL: return kInval;
    case EIO: return kIo;
    case EISCONN: return kIsConn;
    case EISDIR: return kIsDir;
    case ELOOP: return kLoop;
    case EMFILE: return kMfile;
    case EMLINK: return kMlink;
    case EMSGSIZE: return kMsgSize;
    case ENAMETOOLONG: return kNameTooLong;
    case ENETDOWN: return kNetDown;
    case ENETRESET: return kNetReset;
    case ENETUNREACH: return kNetUnreach;
    case ENFILE: return kNfile;
    case ENOBUFS: return kNoBufs;
    case ENODEV: return kNoDev;
    case ENOENT: return kNoEnt;
    case ENOEXEC: return kNoExec;
    case ENOLCK: return kNoLck;
    case ENOMEM: return kNoMem;
    case ENOSPC: return kNoSpc;
    case ENOSYS: return kNoSys;
    case ENOTCONN: return kNotConn;
    case ENOTDIR: return kNotDir;
    case ENOTEMPTY: return kNotEmpty;
    case ENOTSOCK: return kNotSock;
    case ENOTSUP: return kNotSup;
    case ENOTTY: return kNotTy;
    case ENXIO: return kNxio;
    case EOVERFLOW: return kOverflow;
    case EPERM: return kPerm;
    case EPIPE: return kPipe;
    case ERANGE: return kRange;
    case EROFS: return kRofs;
    case ESPIPE: return kSpipe;
    case ESRCH: return kSrch;
    case ESTALE: return kStale;
    case ETIMEDOUT: return kTimedOut;
    case ETXTBSY: return kTxtBsy;
    case EXDEV: return kXdev;
    default: return kIo;
  }
}

uint32_t gather_iovecs(const GuestMemory& m, uint64_t iovs, uint64_t n, std::vector<iovec>* out) {
  if (!m.ok(iovs, 8 * n)) return kFault;  // n < 2^32: no overflow
  out->clear();
  // Every entry is checked, but only the first IOV_MAX are used: a shorter transfer is a
  // valid answer, and a huge count must not become a huge host allocation.
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t p = rd32(m, iovs + 8 * i), len = rd32(m, iovs + 8 * i + 4);
    if (!m.ok(p, len)) return kFault;
    if (out->size() < IOV_MAX) out->push_back(iovec{m.at(p), len});
  }
  return kSuccess;
}

namespace {

uint8_t filetype_of(mode_t mode) {
  if (S_ISREG(mode)) return kRegularFile;
  if (S_ISDIR(mode)) return kDirectory;
  if (S_ISLNK(mode)) return kSymbolicLink;
  if (S_ISCHR(mode)) return kCharacterDevice;
  if (S_ISBLK(mode)) return kBlockDevice;
  if (S_ISSOCK(mode)) return kSocketStream;
  return kUnknown;
}

uint8_t filetype_of_dtype(unsigned char t) {
  switch (t) {
    case DT_REG: return kRegularFile;
    case DT_DIR: return kDirectory;
    case DT_LNK: return kSymbolicLink;
    case DT_CHR: return kCharacterDevice;
    case DT_BLK: return kBlockDevice;
    case DT_SOCK: return kSocketStream;
    default: return kUnknown;
  }
}

void put_filestat(const GuestMemory& m, uint64_t p, const struct stat& st) {
  std::memset(m.at(p), 0, kFilestatSize);
  wr64(m, p, st.st_dev);
  wr64(m, p + 8, st.st_ino);
  m.at(p)[16] = filetype_of(st.st_mode);
  wr64(m, p + 24, st.st_nlink);
  wr64(m, p + 32, static_cast<uint64_t>(st.st_size));
  wr64(m, p + 40, to_ns(st.st_atim));
  wr64(m, p + 48, to_ns(st.st_mtim));
  wr64(m, p + 56, to_ns(st.st_ctim));
}

// The open entry `n`, holding every right in `need`. Mutations beneath a read-only
// preopen answer ERRNO_ROFS even before rights are looked at.
uint32_t get_fd(Wasi& w, uint64_t n, uint64_t need, Wasi::FdEntry** out) {
  Wasi::FdEntry* e = w.fd(static_cast<uint32_t>(n));
  if (!e) return kBadf;
  if (e->read_only && (need & right::kMutating)) return kRofs;
  if ((e->rights_base & need) != need) return kNotCapable;
  *out = e;
  return kSuccess;
}

// Like get_fd, for the directory a path_* call resolves against.
uint32_t get_dir(Wasi& w, uint64_t n, uint64_t need, Wasi::FdEntry** out) {
  Wasi::FdEntry* e = w.fd(static_cast<uint32_t>(n));
  if (!e) return kBadf;
  if (e->filetype != kDirectory) return kNotDir;
  return get_fd(w, n, need, out);
}

// Copies a guest path out of memory. NUL bytes are refused (the kernel would silently
// cut the path there); paths the kernel could never accept are refused before copying.
uint32_t read_path(Wasi& w, uint64_t ptr, uint64_t len, std::string* out) {
  GuestMemory m = w.memory();
  if (!m.ok(ptr, len)) return kFault;
  if (len >= PATH_MAX) return kNameTooLong;
  out->assign(reinterpret_cast<const char*>(m.at(ptr)), len);
  if (out->find('\0') != std::string::npos) return kInval;
  return kSuccess;
}

// A syscall's 0 / -1+errno result as a WASI errno.
uint32_t sys(int rc) {
  return rc == 0 ? uint32_t{kSuccess} : errno_to_wasi(errno);
}

// u64 offsets and sizes from the guest -> off_t, refusing what does not fit.
bool to_off(uint64_t v, off_t* out) {
  if (v > static_cast<uint64_t>(INT64_MAX)) return false;
  *out = static_cast<off_t>(v);
  return true;
}

// fst_flags + times -> the two timespecs of futimens/utimensat.
uint32_t make_times(uint64_t atim, uint64_t mtim, uint64_t flags, timespec ts[2]) {
  if (flags & ~uint64_t{fstflag::kAll}) return kInval;
  if ((flags & fstflag::kAtim) && (flags & fstflag::kAtimNow)) return kInval;
  if ((flags & fstflag::kMtim) && (flags & fstflag::kMtimNow)) return kInval;
  auto one = [](uint64_t ns, bool set, bool now) {
    if (now) return timespec{0, UTIME_NOW};
    if (!set) return timespec{0, UTIME_OMIT};
    return timespec{static_cast<time_t>(ns / 1000000000ull), static_cast<long>(ns % 1000000000ull)};
  };
  ts[0] = one(atim, flags & fstflag::kAtim, flags & fstflag::kAtimNow);
  ts[1] = one(mtim, flags & fstflag::kMtim, flags & fstflag::kMtimNow);
  return kSuccess;
}

// Reads a whole directory (through its own open file description, so the guest's fd keeps
// no hidden position) in the kernel's order, "." and ".." included as wasmtime does.
uint32_t snapshot_dir(int dirfd, std::vector<Wasi::DirListing>* out) {
  UniqueFd d(openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.get() < 0) return errno_to_wasi(errno);
  out->clear();
  alignas(8) char buf[32768];
  for (;;) {
    long n = syscall(SYS_getdents64, d.get(), buf, sizeof buf);  // NOLINT(cppcoreguidelines-pro-type-vararg)
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_to_wasi(errno);
    }
    if (n == 0) break;
    for (long off = 0; off < n;) {
      struct Dirent64 {
        uint64_t d_ino;
        int64_t d_off;
        unsigned short d_reclen;
        unsigned char d_type;
        char d_name[1];
      };
      const auto* de = reinterpret_cast<const Dirent64*>(buf + off);
      Wasi::DirListing l;
      l.ino = de->d_ino;
      l.name = de->d_name;
      l.filetype = filetype_of_dtype(de->d_type);
      if (de->d_type == DT_UNKNOWN) {
        struct stat st {};
        if (fstatat(d.get(), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) l.filetype = filetype_of(st.st_mode);
      }
      out->push_back(std::move(l));
      off += de->d_reclen;
    }
  }
  return kSuccess;
}

}  // namespace

// ---- descriptors -------------------------------------------------------------------------

namespace {

// One readv/writev (at the fd's position) or preadv/pwritev (at `at`) between a guest fd and
// the guest's iovecs. The checks run in the order the conformance corpus expects: the fd and
// its rights, the offset, the result pointer, the iovecs, then the fd's kind.
uint32_t transfer(Wasi& w, uint64_t fdn, uint64_t iovs, uint64_t niov, std::optional<uint64_t> at,
                  uint64_t nptr, bool write) {
  Wasi::FdEntry* e;
  uint64_t need = (write ? right::kFdWrite : right::kFdRead) | (at ? right::kFdSeek : 0);
  if (uint32_t r = get_fd(w, fdn, need, &e)) return r;
  off_t off = 0;
  if (at && !to_off(*at, &off)) return kInval;
  GuestMemory m = w.memory();
  if (!m.ok(nptr, 4)) return kFault;
  std::vector<iovec> iov;
  if (uint32_t r = gather_iovecs(m, iovs, niov, &iov)) return r;
  if (e->host_fd < 0) {
    if (at) return kSpipe;
    if (write) return kBadf;
    wr32(m, nptr, 0);  // no host fd: the empty stdin, always at end of file
    return kSuccess;
  }
  uint64_t asked = 0, gap = 0;
  if (write) {
    // A write past the end makes a hole that counts as apparent size (a sparse file must
    // not hold gigabytes under a megabyte cap): the hole is charged like written bytes.
    struct stat st {};
    if (!(e->fdflags & fdflag::kAppend) && e->filetype == kRegularFile && fstat(e->host_fd, &st) == 0) {
      off_t pos = at ? off : lseek(e->host_fd, 0, SEEK_CUR);
      if (pos > st.st_size) gap = static_cast<uint64_t>(pos - st.st_size);
    }
    if (gap && !w.charge_output_growth(*e, gap)) return kFbig;
    if (!w.charge_output(*e, &iov)) {
      w.uncharge_output(*e, gap);
      return kFbig;
    }
    for (auto& v : iov) asked += v.iov_len;
  }
  const int cnt = static_cast<int>(iov.size());
  ssize_t n;
  do n = write ? (at ? pwritev(e->host_fd, iov.data(), cnt, off) : writev(e->host_fd, iov.data(), cnt))
               : (at ? preadv(e->host_fd, iov.data(), cnt, off) : readv(e->host_fd, iov.data(), cnt));
  while (n < 0 && errno == EINTR);
  if (write) w.uncharge_output(*e, n < 0 ? asked + gap : asked - static_cast<uint64_t>(n));
  if (n < 0) return errno_to_wasi(errno);
  wr32(m, nptr, static_cast<uint32_t>(n));
  return kSuccess;
}

}  // namespace

uint32_t fd_write(Wasi& w, const uint64_t* a) { return transfer(w, a[0], a[1], a[2], std::nullopt, a[3], true); }
uint32_t fd_read(Wasi& w, const uint64_t* a) { return transfer(w, a[0], a[1], a[2], std::nullopt, a[3], false); }
uint32_t fd_pread(Wasi& w, const uint64_t* a) { return transfer(w, a[0], a[1], a[2], a[3], a[4], false); }
uint32_t fd_pwrite(Wasi& w, const uint64_t* a) { return transfer(w, a[0], a[1], a[2], a[3], a[4], true); }

uint32_t fd_close(Wasi& w, const uint64_t* a) {
  uint32_t n = static_cast<uint32_t>(a[0]);
  if (!w.fd(n)) return kBadf;
  w.close_fd(n);
  return kSuccess;
}

uint32_t fd_renumber(Wasi& w, const uint64_t* a) {
  uint32_t from = static_cast<uint32_t>(a[0]), to = static_cast<uint32_t>(a[1]);
  if (!w.fd(from) || !w.fd(to)) return kBadf;
  if (from == to) return kSuccess;
  auto& fds = w.fds();
  Wasi::FdEntry moved = std::move(*fds[from]);
  fds[from].reset();
  w.close_fd(to);
  fds[to] = std::move(moved);
  return kSuccess;
}

uint32_t fd_fdstat_get(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* e = w.fd(static_cast<uint32_t>(a[0]));
  if (!e) return kBadf;
  GuestMemory m = w.memory();
  if (!m.ok(a[1], kFdstatSize)) return kFault;
  std::memset(m.at(a[1]), 0, kFdstatSize);
  m.at(a[1])[0] = e->filetype;
  wr16(m, a[1] + 2, e->fdflags);
  wr64(m, a[1] + 8, e->rights_base);
  wr64(m, a[1] + 16, e->rights_inheriting);
  return kSuccess;
}

uint32_t fd_fdstat_set_flags(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* e;
  if (uint32_t r = get_fd(w, a[0], right::kFdFdstatSetFlags, &e)) return r;
  uint64_t flags = a[1];
  if (flags & ~uint64_t{fdflag::kAll}) return kInval;
  // Linux cannot change the sync modes of an open file (F_SETFL ignores them).
  constexpr uint16_t kSyncModes = fdflag::kDsync | fdflag::kRsync | fdflag::kSync;
  if ((flags ^ e->fdflags) & kSyncModes) return kNotSup;
  if (e->host_fd >= 0) {
    int fl = fcntl(e->host_fd, F_GETFL);
    if (fl < 0) return errno_to_wasi(errno);
    fl = (fl & ~(O_APPEND | O_NONBLOCK)) | ((flags & fdflag::kAppend) ? O_APPEND : 0) |
         ((flags & fdflag::kNonblock) ? O_NONBLOCK : 0);
    if (fcntl(e->host_fd, F_SETFL, fl) != 0) return errno_to_wasi(errno);
  }
  e->fdflags = static_cast<uint16_t>(flags);
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
  const int64_t offset = static_cast<int64_t>(a[1]);
  const uint64_t whence = a[2];
  // Asking for the position only needs fd_tell; moving it needs fd_seek.
  uint64_t need = (offset == 0 && whence == kWhenceCur) ? right::kFdTell : right::kFdSeek;
  Wasi::FdEntry* e;
  if (uint32_t r = get_fd(w, a[0], need, &e)) return r;
  int how = whence == kWhenceSet   ? SEEK_SET
            : whence == kWhenceCur ? SEEK_CUR
            : whence == kWhenceEnd ? SEEK_END
                                   : -1;
  if (how < 0) return kInval;
  GuestMemory m = w.memory();
  if (!m.ok(a[3], 8)) return kFault;
  if (e->host_fd < 0) return kSpipe;
  off_t r = lseek(e->host_fd, static_cast<off_t>(offset), how);
  if (r < 0) return errno_to_wasi(errno);
  wr64(m, a[3], static_cast<uint64_t>(r));
  return kSuccess;
}

uint32_t fd_tell(Wasi& w, const uint64_t* a) {
  const uint64_t args[4] = {a[0], 0, kWhenceCur, a[1]};
  return fd_seek(w, args);
}

uint32_t fd_advise(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* e;
  if (uint32_t r = get_fd(w, a[0], right::kFdAdvise, &e)) return r;
  off_t off, len;
  if (!to_off(a[1], &off) || !to_off(a[2], &len)) return kInval;
  int advice;
  switch (a[3]) {
    case kAdviceNormal: advice = POSIX_FADV_NORMAL; break;
    case kAdviceSequential: advice = POSIX_FADV_SEQUENTIAL; break;
    case kAdviceRandom: advice = POSIX_FADV_RANDOM; break;
    case kAdviceWillNeed: advice = POSIX_FADV_WILLNEED; break;
    case kAdviceDontNeed: advice = POSIX_FADV_DONTNEED; break;
    case kAdviceNoReuse: advice = POSIX_FADV_NOREUSE; break;
    default: return kInval;
  }
  if (e->filetype == kDirectory) return kSuccess;  // advice is a hint; nothing to do
  if (e->host_fd < 0) return kSpipe;
  return errno_to_wasi(posix_fadvise(e->host_fd, off, len, advice));
}

uint32_t fd_allocate(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* e;
  if (uint32_t r = get_fd(w, a[0], right::kFdAllocate, &e)) return r;
  off_t off, len;
  if (!to_off(a[1], &off) || !to_off(a[2], &len) || off > INT64_MAX - len) return kInval;
  if (e->host_fd < 0) return kBadf;
  struct stat st {};
  if (fstat(e->host_fd, &st) != 0) return errno_to_wasi(errno);
  if (off + len > st.st_size && !w.charge_output_growth(*e, static_cast<uint64_t>(off + len - st.st_size))) return kFbig;
  return errno_to_wasi(posix_fallocate(e->host_fd, off, len));
}

uint32_t fd_datasync(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* e;
  if (uint32_t r = get_fd(w, a[0], right::kFdDatasync, &e)) return r;
  if (e->host_fd < 0) return kInval;
  return sys(fdatasync(e->host_fd));
}

uint32_t fd_sync(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* e;
  if (uint32_t r = get_fd(w, a[0], right::kFdSync, &e)) return r;
  if (e->host_fd < 0) return kInval;
  return sys(fsync(e->host_fd));
}

uint32_t fd_filestat_get(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* e;
  if (uint32_t r = get_fd(w, a[0], right::kFdFilestatGet, &e)) return r;
  struct stat st {};
  if (e->host_fd >= 0 && fstat(e->host_fd, &st) != 0) return errno_to_wasi(errno);
  GuestMemory m = w.memory();
  if (!m.ok(a[1], kFilestatSize)) return kFault;
  put_filestat(m, a[1], st);
  // The guest's view of stdio (a terminal seen as a character device, the empty stdin).
  if (e->host_fd < 0 || !e->owned) m.at(a[1])[16] = e->filetype;
  return kSuccess;
}

uint32_t fd_filestat_set_size(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* e;
  if (uint32_t r = get_fd(w, a[0], right::kFdFilestatSetSize, &e)) return r;
  off_t size;
  if (!to_off(a[1], &size)) return kInval;
  if (e->host_fd < 0) return kInval;
  struct stat st {};
  if (fstat(e->host_fd, &st) != 0) return errno_to_wasi(errno);
  if (size > st.st_size && !w.charge_output_growth(*e, static_cast<uint64_t>(size - st.st_size))) return kFbig;
  return sys(ftruncate(e->host_fd, size));
}

uint32_t fd_filestat_set_times(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* e;
  if (uint32_t r = get_fd(w, a[0], right::kFdFilestatSetTimes, &e)) return r;
  timespec ts[2];
  if (uint32_t r = make_times(a[1], a[2], a[3], ts)) return r;
  if (e->host_fd < 0) return kBadf;
  return sys(futimens(e->host_fd, ts));
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

uint32_t fd_readdir(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* e;
  if (uint32_t r = get_fd(w, a[0], right::kFdReaddir, &e)) return r;
  if (e->filetype != kDirectory || e->host_fd < 0) return kNotDir;
  const uint64_t buf = a[1], buf_len = a[2], cookie = a[3];
  {
    GuestMemory m = w.memory();
    if (!m.ok(buf, buf_len) || !m.ok(a[4], 4)) return kFault;
  }
  // Cookie 0 starts over and takes a fresh snapshot; any other cookie indexes the current
  // one, so a listing read in several calls neither repeats nor skips an entry.
  if (cookie == 0 || e->listing.empty()) {
    if (uint32_t r = snapshot_dir(e->host_fd, &e->listing)) return r;
  }
  GuestMemory m = w.memory();
  if (!m.ok(buf, buf_len) || !m.ok(a[4], 4)) return kFault;
  uint64_t used = 0;
  for (uint64_t i = cookie; i < e->listing.size() && used < buf_len; ++i) {
    const Wasi::DirListing& l = e->listing[i];
    uint8_t head[kDirentSize] = {};
    uint64_t next = i + 1;
    uint32_t namlen = static_cast<uint32_t>(l.name.size());
    std::memcpy(head, &next, 8);
    std::memcpy(head + 8, &l.ino, 8);
    std::memcpy(head + 16, &namlen, 4);
    head[20] = l.filetype;
    // The last entry is cut at the buffer's end, as the spec says; the guest sees a full
    // buffer and asks again from this entry's cookie.
    uint64_t n = std::min<uint64_t>(kDirentSize, buf_len - used);
    std::memcpy(m.at(buf + used), head, n);
    used += n;
    n = std::min<uint64_t>(namlen, buf_len - used);
    std::memcpy(m.at(buf + used), l.name.data(), n);
    used += n;
  }
  wr32(m, a[4], static_cast<uint32_t>(used));
  return kSuccess;
}

// ---- paths ---------------------------------------------------------------------------------

namespace {

// A folder's apparent size on common file systems: what each new folder is charged.
constexpr uint64_t kDirEntryBytes = 4096;

// Creates one entry (limits.output_files, and `bytes` of output_bytes), refunded when the
// call fails.
template <typename F>
uint32_t create_entry(Wasi& w, uint64_t bytes, F make) {
  uint16_t err = 0;
  if (!w.charge_entry(bytes, &err)) return err;
  if (make() != 0) {
    int e = errno;
    w.uncharge_entry(bytes);
    return errno_to_wasi(e);
  }
  return kSuccess;
}

}  // namespace

uint32_t path_open(Wasi& w, const uint64_t* a) {
  const uint64_t dirflags = a[1], oflags = a[4], want_base = a[5], want_inh = a[6], fdflags = a[7];
  const uint64_t out = a[8];
  uint64_t need = right::kPathOpen;
  if (oflags & oflag::kCreat) need |= right::kPathCreateFile;
  if (oflags & oflag::kTrunc) need |= right::kPathFilestatSetSize;
  Wasi::FdEntry* d;
  if (uint32_t r = get_dir(w, a[0], right::kPathOpen, &d)) return r;
  if (d->read_only && (need & right::kMutating)) return kRofs;
  // Truncating without the right is refused with PERM, as wasmtime and the corpus expect.
  if ((d->rights_base & need) != need)
    return (oflags & oflag::kTrunc) ? uint32_t{kPerm} : uint32_t{kNotCapable};
  if ((oflags & ~uint64_t{oflag::kAll}) || (fdflags & ~uint64_t{fdflag::kAll})) return kInval;
  {
    GuestMemory m = w.memory();
    if (!m.ok(out, 4)) return kFault;  // before anything is created
  }
  std::string path;
  if (uint32_t r = read_path(w, a[2], a[3], &path)) return r;

  // A new descriptor never holds more than its directory lets it inherit.
  uint64_t base = want_base & d->rights_inheriting, inh = want_inh & d->rights_inheriting;
  bool write = base & (right::kFdWrite | right::kFdAllocate | right::kFdFilestatSetSize);
  bool read = base & (right::kFdRead | right::kFdReaddir);
  // Write access to a directory fails with EISDIR in the kernel, as the corpus expects.
  int flags = O_NOCTTY | (write ? (read ? O_RDWR : O_WRONLY) : O_RDONLY);
  if (oflags & oflag::kDirectory) flags |= O_DIRECTORY;
  if (!(dirflags & kLookupSymlinkFollow)) flags |= O_NOFOLLOW;
  if (oflags & oflag::kCreat) flags |= O_CREAT;
  if (oflags & oflag::kExcl) flags |= O_EXCL;
  if (oflags & oflag::kTrunc) flags |= O_TRUNC;
  if (fdflags & fdflag::kAppend) flags |= O_APPEND;
  if (fdflags & fdflag::kDsync) flags |= O_DSYNC;
  if (fdflags & fdflag::kRsync) flags |= O_RSYNC;
  if (fdflags & fdflag::kSync) flags |= O_SYNC;
  if (fdflags & fdflag::kNonblock) flags |= O_NONBLOCK;
  // A file this call creates is a new entry (limits.output_files).
  bool charged = false;
  if (flags & O_CREAT) {
    UniqueFd exists((flags & O_EXCL) ? -1 : open_beneath(d->host_fd, path, O_PATH | (flags & O_NOFOLLOW), 0));
    if (exists.get() < 0) {
      uint16_t err = 0;
      if (!w.charge_entry(0, &err)) return err;
      charged = true;
    }
  }
  UniqueFd fd(open_beneath(d->host_fd, path, flags, 0666));
  if (fd.get() < 0) {
    int e = errno;
    if (charged) w.uncharge_entry(0);
    return resolve_errno(e);
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return errno_to_wasi(errno);

  Wasi::FdEntry e;
  e.filetype = filetype_of(st.st_mode);
  e.fdflags = static_cast<uint16_t>(fdflags);
  e.owned = true;
  e.read_only = d->read_only;
  if (e.filetype == kDirectory) {
    e.rights_base = base & right::kDirBase;
    e.rights_inheriting = inh & right::kDirInheriting;
  } else {
    e.rights_base = base & right::kFileBase;
    e.rights_inheriting = inh & right::kFileBase;
  }
  if (e.read_only) {
    e.rights_base &= ~right::kMutating;
    e.rights_inheriting &= ~right::kMutating;
  }
  e.host_fd = fd.release();
  int host_fd = e.host_fd;
  std::optional<uint32_t> n = w.add_fd(std::move(e));
  if (!n) {
    close(host_fd);
    return kMfile;
  }
  GuestMemory m = w.memory();
  if (!m.ok(out, 4)) {
    w.close_fd(*n);
    return kFault;
  }
  wr32(m, out, *n);
  return kSuccess;
}

uint32_t path_create_directory(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* d;
  if (uint32_t r = get_dir(w, a[0], right::kPathCreateDirectory, &d)) return r;
  std::string path;
  if (uint32_t r = read_path(w, a[1], a[2], &path)) return r;
  ParentRef p;
  if (uint32_t r = resolve_parent(d->host_fd, path, &p)) return r;
  return create_entry(w, kDirEntryBytes, [&] { return mkdirat(p.dir.get(), p.name.c_str(), 0777); });
}

uint32_t path_remove_directory(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* d;
  if (uint32_t r = get_dir(w, a[0], right::kPathRemoveDirectory, &d)) return r;
  std::string path;
  if (uint32_t r = read_path(w, a[1], a[2], &path)) return r;
  ParentRef p;
  if (uint32_t r = resolve_parent(d->host_fd, path, &p)) return r;
  return sys(unlinkat(p.dir.get(), p.name.c_str(), AT_REMOVEDIR));
}

uint32_t path_unlink_file(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* d;
  if (uint32_t r = get_dir(w, a[0], right::kPathUnlinkFile, &d)) return r;
  std::string path;
  if (uint32_t r = read_path(w, a[1], a[2], &path)) return r;
  ParentRef p;
  if (uint32_t r = resolve_parent(d->host_fd, path, &p)) return r;
  return sys(unlinkat(p.dir.get(), p.name.c_str(), 0));
}

uint32_t path_rename(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry *d1, *d2;
  if (uint32_t r = get_dir(w, a[0], right::kPathRenameSource, &d1)) return r;
  if (uint32_t r = get_dir(w, a[3], right::kPathRenameTarget, &d2)) return r;
  std::string from, to;
  if (uint32_t r = read_path(w, a[1], a[2], &from)) return r;
  if (uint32_t r = read_path(w, a[4], a[5], &to)) return r;
  ParentRef p1, p2;
  if (uint32_t r = resolve_parent(d1->host_fd, from, &p1)) return r;
  if (uint32_t r = resolve_parent(d2->host_fd, to, &p2)) return r;
  return sys(renameat(p1.dir.get(), p1.name.c_str(), p2.dir.get(), p2.name.c_str()));
}

// How many folders `dir` lies below the nearest preopened folder above it (walking ".."),
// or -1 when none is found.
int depth_below_preopen(Wasi& w, int dir) {
  std::vector<std::pair<dev_t, ino_t>> roots;
  for (const auto& e : w.fds()) {
    struct stat st{};
    if (e && e->is_preopen && e->host_fd >= 0 && fstat(e->host_fd, &st) == 0) roots.emplace_back(st.st_dev, st.st_ino);
  }
  UniqueFd cur(fcntl(dir, F_DUPFD_CLOEXEC, 0));
  struct stat st{};
  if (cur.get() < 0 || fstat(cur.get(), &st) != 0) return -1;
  for (int depth = 0; depth < PATH_MAX / 2; ++depth) {
    if (std::find(roots.begin(), roots.end(), std::pair{st.st_dev, st.st_ino}) != roots.end()) return depth;
    UniqueFd up(openat(cur.get(), "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
    struct stat ust{};
    if (up.get() < 0 || fstat(up.get(), &ust) != 0) return -1;
    if (ust.st_dev == st.st_dev && ust.st_ino == st.st_ino) return -1;  // the top: no preopen above
    cur = std::move(up);
    st = ust;
  }
  return -1;
}

// Whether a relative symlink target, read from a folder `depth` levels below its preopen,
// climbs above that preopen ("..", lexically: components are not resolved).
bool climbs_out(const std::string& target, int depth) {
  size_t i = 0;
  while (i <= target.size()) {
    size_t j = target.find('/', i);
    if (j == std::string::npos) j = target.size();
    std::string_view comp(target.data() + i, j - i);
    if (comp == "..") {
      if (--depth < 0) return true;
    } else if (!comp.empty() && comp != ".") {
      ++depth;
    }
    i = j + 1;
  }
  return false;
}

uint32_t path_symlink(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* d;
  if (uint32_t r = get_dir(w, a[2], right::kPathSymlink, &d)) return r;
  std::string target, path;
  if (uint32_t r = read_path(w, a[0], a[1], &target)) return r;
  if (uint32_t r = read_path(w, a[3], a[4], &path)) return r;
  // Resolution would refuse to follow it anyway; an absolute link would still point host
  // tools that later walk this directory outside of it (cap-std refuses it too).
  if (!target.empty() && target[0] == '/') return kPerm;
  ParentRef p;
  if (uint32_t r = resolve_parent(d->host_fd, path, &p)) return r;
  // A relative link may not climb above the preopen either: left in an output folder it
  // would point whoever later reads the results at host files.
  int depth = depth_below_preopen(w, p.dir.get());
  if (depth < 0 || climbs_out(target, depth)) return kPerm;
  return create_entry(w, target.size(), [&] { return symlinkat(target.c_str(), p.dir.get(), p.name.c_str()); });
}

uint32_t path_link(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry *d1, *d2;
  if (uint32_t r = get_dir(w, a[0], right::kPathLinkSource, &d1)) return r;
  if (uint32_t r = get_dir(w, a[4], right::kPathLinkTarget, &d2)) return r;
  // Following the source would need linkat(AT_EMPTY_PATH) and CAP_DAC_READ_SEARCH;
  // wasmtime refuses it the same way.
  if (a[1] & kLookupSymlinkFollow) return kInval;
  std::string from, to;
  if (uint32_t r = read_path(w, a[2], a[3], &from)) return r;
  if (uint32_t r = read_path(w, a[5], a[6], &to)) return r;
  ParentRef p1, p2;
  if (uint32_t r = resolve_parent(d1->host_fd, from, &p1)) return r;
  // "x/", "." and ".." make the kernel walk further than the parent (a trailing slash
  // follows a symlink): resolve them confined instead. They can only name directories,
  // which cannot be hard-linked.
  if (p1.trailing_slash || p1.dot_name) {
    UniqueFd t(open_beneath(d1->host_fd, from, O_PATH, 0));
    return t.get() < 0 ? resolve_errno(errno) : uint32_t{kPerm};
  }
  if (uint32_t r = resolve_parent(d2->host_fd, to, &p2)) return r;
  return create_entry(w, 0, [&] { return linkat(p1.dir.get(), p1.name.c_str(), p2.dir.get(), p2.name.c_str(), 0); });
}

uint32_t path_readlink(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* d;
  if (uint32_t r = get_dir(w, a[0], right::kPathReadlink, &d)) return r;
  const uint64_t buf = a[3], buf_len = a[4], used_ptr = a[5];
  {
    GuestMemory m = w.memory();
    if (!m.ok(buf, buf_len) || !m.ok(used_ptr, 4)) return kFault;
  }
  std::string path;
  if (uint32_t r = read_path(w, a[1], a[2], &path)) return r;
  ParentRef p;
  if (uint32_t r = resolve_parent(d->host_fd, path, &p)) return r;
  // As in path_link: these forms name a directory, never a link; check it confined.
  if (p.trailing_slash || p.dot_name) {
    UniqueFd t(open_beneath(d->host_fd, path, O_PATH, 0));
    return t.get() < 0 ? resolve_errno(errno) : uint32_t{kInval};
  }
  char target[PATH_MAX];
  ssize_t n = readlinkat(p.dir.get(), p.name.c_str(), target, sizeof target);
  if (n < 0) return errno_to_wasi(errno);
  GuestMemory m = w.memory();
  if (!m.ok(buf, buf_len) || !m.ok(used_ptr, 4)) return kFault;
  uint64_t copy = std::min<uint64_t>(static_cast<uint64_t>(n), buf_len);  // truncated, as readlink(2)
  std::memcpy(m.at(buf), target, copy);
  wr32(m, used_ptr, static_cast<uint32_t>(copy));
  return kSuccess;
}

uint32_t path_filestat_get(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* d;
  if (uint32_t r = get_dir(w, a[0], right::kPathFilestatGet, &d)) return r;
  {
    GuestMemory m = w.memory();
    if (!m.ok(a[4], kFilestatSize)) return kFault;
  }
  std::string path;
  if (uint32_t r = read_path(w, a[2], a[3], &path)) return r;
  int flags = O_PATH | ((a[1] & kLookupSymlinkFollow) ? 0 : O_NOFOLLOW);
  UniqueFd fd(open_beneath(d->host_fd, path, flags, 0));
  if (fd.get() < 0) return resolve_errno(errno);
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return errno_to_wasi(errno);
  GuestMemory m = w.memory();
  if (!m.ok(a[4], kFilestatSize)) return kFault;
  put_filestat(m, a[4], st);
  return kSuccess;
}

uint32_t path_filestat_set_times(Wasi& w, const uint64_t* a) {
  Wasi::FdEntry* d;
  if (uint32_t r = get_dir(w, a[0], right::kPathFilestatSetTimes, &d)) return r;
  timespec ts[2];
  if (uint32_t r = make_times(a[4], a[5], a[6], ts)) return r;
  std::string path;
  if (uint32_t r = read_path(w, a[2], a[3], &path)) return r;
  int flags = O_PATH | ((a[1] & kLookupSymlinkFollow) ? 0 : O_NOFOLLOW);
  UniqueFd fd(open_beneath(d->host_fd, path, flags, 0));
  if (fd.get() < 0) return resolve_errno(errno);
  // The O_PATH fd is exactly what openat2 confined; AT_EMPTY_PATH acts on it, not a path.
  return sys(utimensat(fd.get(), "", ts, AT_EMPTY_PATH));
}

}  // namespace wj::wasi
