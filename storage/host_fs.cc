#include "storage/host_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace wj {
namespace fs = std::filesystem;

namespace {

std::string strerr(int e) {
  return std::strerror(e);
}

const char* kind_of(mode_t m) {
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISLNK(m)) return "a symlink";
  if (S_ISDIR(m)) return "a folder";
  return "not a regular file";
}

std::string octal(mode_t m) {
  char b[16];
  std::snprintf(b, sizeof b, "%04o", static_cast<unsigned>(m & 07777));
  return b;
}

}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = o.release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) close(fd_);
}

int open_beneath(int dirfd, const std::string& rel, int flags, mode_t mode, bool no_symlinks) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | (no_symlinks ? RESOLVE_NO_SYMLINKS : 0);
  for (;;) {
    long fd = syscall(SYS_openat2, dirfd, rel.c_str(), &how, sizeof how);
    if (fd < 0 && (errno == EAGAIN || errno == EINTR)) continue;  // EAGAIN: a rename raced the lookup
    return static_cast<int>(fd);
  }
}

std::optional<std::string> open_private_dir(const std::string& path, bool create, const char* what,
                                            UniqueFd* out) {
  if (path.empty() || path[0] != '/')
    return std::string(what) + " must be an absolute path, got \"" + path + "\"";
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd && errno == ENOENT && create) {
    std::error_code ec;
    fs::path parent = fs::path(path).parent_path();
    if (!parent.empty() && !fs::exists(parent, ec)) {
      const mode_t old = umask(022);
      fs::create_directories(parent, ec);
      umask(old);
      if (ec) return std::string("cannot create ") + what + " " + path + ": " + ec.message();
    }
    if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
      return std::string("cannot create ") + what + " " + path + ": " + strerr(errno);
    fd = UniqueFd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  }
  if (!fd) {
    if (errno == ELOOP || errno == ENOTDIR) {
      struct stat st {};
      if (lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
        return std::string(what) + " " + path + " is a symlink; name the real folder";
    }
    return std::string("cannot open ") + what + " " + path + ": " + strerr(errno);
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0)
    return std::string("cannot stat ") + what + " " + path + ": " + strerr(errno);
  if (st.st_uid != geteuid())
    return std::string(what) + " " + path + " is owned by uid " + std::to_string(st.st_uid) +
           ", not by this user (uid " + std::to_string(geteuid()) + "); remove it or name another folder";
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return std::string(what) + " " + path + " has mode " + octal(st.st_mode) +
           ": others may write it; make it 0700 (chmod go-w) or name another folder";
  *out = std::move(fd);
  return std::nullopt;
}

std::optional<std::string> make_dir_beneath(int dirfd, const std::string& name, mode_t mode, bool must_be_new,
                                            UniqueFd* out) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
    return "\"" + name + "\" is not a plain folder name";
  if (mkdirat(dirfd, name.c_str(), mode) != 0) {
    if (errno != EEXIST || must_be_new) return "cannot create folder " + name + ": " + strerr(errno);
  }
  UniqueFd fd(open_beneath(dirfd, name, O_RDONLY | O_DIRECTORY, 0, true));
  if (!fd) {
    int e = errno;
    if (e == ELOOP) return "folder " + name + " is a symlink; it was not followed";
    return "cannot open folder " + name + ": " + strerr(e);
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || st.st_uid != geteuid())
    return "folder " + name + " is not owned by this user; it was not used";
  *out = std::move(fd);
  return std::nullopt;
}

std::optional<std::string> write_new_file(int dirfd, const std::string& name, const std::string& data,
                                          mode_t mode) {
  // unlinkat removes a symlink itself, never its target; O_EXCL|O_NOFOLLOW then refuses
  // anything that appeared in between.
  if (unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT)
    return "cannot replace " + name + ": " + strerr(errno);
  UniqueFd fd(openat(dirfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd) return "cannot create " + name + ": " + strerr(errno);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "cannot write " + name + ": " + strerr(n < 0 ? errno : EIO);
    off += static_cast<size_t>(n);
  }
  return std::nullopt;
}

std::optional<std::string> open_source(const std::string& path, const std::vector<std::string>& roots,
                                       bool enforce_roots, OpenedSource* out) {
  if (enforce_roots && roots.empty()) return path + ": local sources are not allowed here (no local_roots)";
  const int flags = O_RDONLY | O_NONBLOCK | O_NOCTTY;
  UniqueFd fd;
  if (roots.empty()) {
    fd = UniqueFd(open(path.c_str(), flags | O_CLOEXEC));
    if (!fd) return "cannot read " + path + ": " + strerr(errno);
  } else {
    // The root that holds it by name; the open beneath it decides what it really is.
    const fs::path p = fs::path(path).lexically_normal();
    bool inside = false;
    for (const std::string& root : roots) {
      const fs::path r = fs::path(root).lexically_normal();
      fs::path rel = p.lexically_relative(r);
      if (rel.empty() || *rel.begin() == "..") continue;
      inside = true;
      UniqueFd rfd(open(r.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!rfd) return "cannot open local root " + r.string() + ": " + strerr(errno);
      fd = UniqueFd(open_beneath(rfd.get(), rel.string(), flags, 0, false));
      if (!fd) {
        if (errno == EXDEV || errno == ELOOP)
          return path + " leads outside the server's local_roots (through a symlink); it was not opened";
        return "cannot read " + path + ": " + strerr(errno);
      }
      break;
    }
    if (!inside) return path + " is outside the server's local_roots";
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return "cannot stat " + path + ": " + strerr(errno);
  if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
    return path + " is " + kind_of(st.st_mode) + "; only regular files and folders can be sources";
  if (!S_ISDIR(st.st_mode)) {
    // Blocking reads again: a regular file never blocks, and the flag must not leak into reads.
    int fl = fcntl(fd.get(), F_GETFL);
    if (fl >= 0) fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK);
  }
  out->is_dir = S_ISDIR(st.st_mode);
  out->fd = std::move(fd);
  return std::nullopt;
}

std::optional<std::string> open_single_wasm(int dirfd, const std::string& shown, UniqueFd* out,
                                            std::string* name) {
  int dup = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return "cannot list " + shown + ": " + strerr(errno);
  DIR* d = fdopendir(dup);
  if (!d) {
    close(dup);
    return "cannot list " + shown + ": " + strerr(errno);
  }
  std::vector<std::string> found;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 5 && n.compare(n.size() - 5, 5, ".wasm") == 0) found.push_back(n);
  }
  closedir(d);
  if (found.size() != 1)
    return "folder " + shown + " holds " + std::to_string(found.size()) +
           " .wasm files; it must hold exactly one (or name the file)";
  UniqueFd fd(open_beneath(dirfd, found[0], O_RDONLY | O_NONBLOCK | O_NOCTTY, 0, true));
  if (!fd) {
    if (errno == ELOOP) return shown + "/" + found[0] + " is a symlink; name the file itself";
    return "cannot open " + shown + "/" + found[0] + ": " + strerr(errno);
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return shown + "/" + found[0] + " is " + kind_of(st.st_mode) + ", not a regular file";
  int fl = fcntl(fd.get(), F_GETFL);
  if (fl >= 0) fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK);
  *out = std::move(fd);
  *name = found[0];
  return std::nullopt;
}

std::optional<std::string> read_fd_capped(int fd, const std::string& shown, uint64_t cap,
                                          std::vector<uint8_t>* out, const char* limit) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return "cannot read " + shown + ": " + strerr(errno);
  if (!S_ISREG(st.st_mode))
    return "cannot read " + shown + ": it is " + kind_of(st.st_mode) + ", not a regular file";
  if (static_cast<uint64_t>(st.st_size) > cap)
    return shown + " is " + std::to_string(st.st_size) + " bytes, over the " + limit + " of " +
           std::to_string(cap) + " bytes";
  // Read straight into the buffer (no bounce copy), sized from fstat plus room to notice
  // growth. A large buffer is asked to be backed by huge pages (best effort; the kernel may
  // decline): reading a 30 MB module added ~340 minor faults to a `run` here (1,700 against
  // 1,365 for hello, /usr/bin/time %R), where 4 KiB pages would take ~7,500.
  out->clear();
  const size_t want = static_cast<size_t>(st.st_size);
  std::vector<uint8_t> buf;
  buf.reserve(want + 1);
  constexpr size_t kHuge = 2u << 20;
  if (want >= 2 * kHuge) {
    auto a = (reinterpret_cast<uintptr_t>(buf.data()) + kHuge - 1) & ~(kHuge - 1);
    auto b = (reinterpret_cast<uintptr_t>(buf.data()) + want) & ~(kHuge - 1);
    if (b > a) madvise(reinterpret_cast<void*>(a), b - a, MADV_HUGEPAGE);
  }
  size_t have = 0;
  for (;;) {
    if (have == buf.size()) buf.resize(have < want + 1 ? want + 1 : have + (1 << 16));
    ssize_t n = read(fd, buf.data() + have, buf.size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return "cannot read " + shown + ": " + strerr(errno);
    if (n == 0) break;
    have += static_cast<size_t>(n);
    if (have > cap)
      return shown + " grew over the " + std::string(limit) + " of " + std::to_string(cap) +
             " bytes while being read";
  }
  buf.resize(have);
  *out = std::move(buf);
  return std::nullopt;
}

std::optional<std::string> read_file_beneath(int dirfd, const std::string& name, uint64_t cap,
                                             std::vector<uint8_t>* out, bool* missing) {
  if (missing) *missing = false;
  UniqueFd fd(open_beneath(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0, true));
  if (!fd) {
    if (errno == ENOENT && missing) {
      *missing = true;
      return std::nullopt;
    }
    return "cannot open " + name + ": " + strerr(errno);
  }
  return read_fd_capped(fd.get(), name, cap, out, "size limit");
}

std::optional<std::string> replace_file_beneath(int dirfd, const std::string& name, const void* data,
                                                size_t size, mode_t mode) {
  unsigned char rnd[8];
  if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd) return std::string("getrandom: ") + strerr(errno);
  std::string tmp = "." + name + ".tmp.";
  static const char* hex = "0123456789abcdef";
  for (unsigned char c : rnd) tmp += hex[c >> 4], tmp += hex[c & 15];
  UniqueFd fd(openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd) return "cannot create " + tmp + ": " + strerr(errno);
  const char* p = static_cast<const char*>(data);
  size_t off = 0;
  while (off < size) {
    ssize_t n = write(fd.get(), p + off, size - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;
      unlinkat(dirfd, tmp.c_str(), 0);
      return "cannot write " + tmp + ": " + strerr(e);
    }
    off += static_cast<size_t>(n);
  }
  if (renameat(dirfd, tmp.c_str(), dirfd, name.c_str()) != 0) {
    int e = errno;
    unlinkat(dirfd, tmp.c_str(), 0);
    return "cannot rename " + tmp + " to " + name + ": " + strerr(e);
  }
  return std::nullopt;
}

}  // namespace wj
