#include "storage/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace wj {

namespace {

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

std::string errstr(int e) {
  return std::strerror(e);
}

struct Writer {
  archive* a;
  std::string* out;
  uint64_t max;
  bool over = false;
};

la_ssize_t write_cb(archive*, void* ud, const void* buf, size_t n) {
  auto* w = static_cast<Writer*>(ud);
  if (w->out->size() + n > w->max) {
    w->over = true;
    return -1;
  }
  w->out->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

std::optional<std::string> add_tree(Writer& w, int dirfd, const std::string& prefix, int depth,
                                    PackStats* st) {
  if (depth > 64) return prefix + ": folders nested more than 64 deep";
  int dup = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return prefix + ": " + errstr(errno);
  std::unique_ptr<DIR, int (*)(DIR*)> d(fdopendir(dup), closedir);
  if (!d) {
    close(dup);
    return prefix + ": " + errstr(errno);
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d.get())) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    std::string path = prefix + "/" + n;
    struct stat sb;
    if (fstatat(dirfd, n.c_str(), &sb, AT_SYMLINK_NOFOLLOW) != 0) return path + ": " + errstr(errno);
    if (!S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode)) {
      ++st->skipped;
      continue;
    }
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> ent(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(ent.get(), path.c_str());
    archive_entry_set_mtime(ent.get(), sb.st_mtime, 0);
    if (S_ISDIR(sb.st_mode)) {
      archive_entry_set_filetype(ent.get(), AE_IFDIR);
      archive_entry_set_perm(ent.get(), 0755);
      if (archive_write_header(w.a, ent.get()) != ARCHIVE_OK)
        return w.over ? std::string("the archive is larger than its limit")
                      : path + ": " + archive_error_string(w.a);
      ++st->dirs;
      Fd sub(openat(dirfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (sub.fd < 0) return path + ": " + errstr(errno);
      if (auto e = add_tree(w, sub.fd, path, depth + 1, st)) return e;
      continue;
    }
    Fd f(openat(dirfd, n.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (f.fd < 0) return path + ": " + errstr(errno);
    if (fstat(f.fd, &sb) != 0 || !S_ISREG(sb.st_mode)) return path + ": changed while being archived";
    archive_entry_set_filetype(ent.get(), AE_IFREG);
    archive_entry_set_perm(ent.get(), 0644);
    archive_entry_set_size(ent.get(), sb.st_size);
    if (archive_write_header(w.a, ent.get()) != ARCHIVE_OK)
      return w.over ? std::string("the archive is larger than its limit")
                    : path + ": " + archive_error_string(w.a);
    char buf[65536];
    int64_t left = sb.st_size;
    while (left > 0) {
      ssize_t r = read(f.fd, buf, static_cast<size_t>(std::min<int64_t>(left, sizeof buf)));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return path + ": " + (r < 0 ? errstr(errno) : std::string("shrank while being archived"));
      if (archive_write_data(w.a, buf, static_cast<size_t>(r)) < 0)
        return w.over ? std::string("the archive is larger than its limit")
                      : path + ": " + archive_error_string(w.a);
      left -= r;
    }
    ++st->files;
  }
  return std::nullopt;
}

// Splits an archive path into components; refuses absolute paths, `..`, and odd names.
std::optional<std::string> split_path(const std::string& p, std::vector<std::string>* parts) {
  if (p.empty()) return std::string("an entry with an empty name");
  if (p[0] == '/') return "\"" + p + "\" is an absolute path";
  size_t start = 0;
  while (start <= p.size()) {
    size_t slash = p.find('/', start);
    std::string c = p.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (c == "..") return "\"" + p + "\" leads out of the folder (..)";
    if (!c.empty() && c != ".") parts->push_back(c);
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (parts->empty()) return "\"" + p + "\" names no file";
  return std::nullopt;
}

}  // namespace

std::optional<std::string> pack_folders(const std::vector<std::pair<std::string, std::string>>& folders,
                                        uint64_t max_bytes, std::string* out, PackStats* stats) {
  PackStats local;
  PackStats* st = stats ? stats : &local;
  out->clear();
  std::unique_ptr<archive, int (*)(archive*)> a(archive_write_new(), archive_write_free);
  Writer w{a.get(), out, max_bytes};
  archive_write_set_format_pax_restricted(a.get());
  archive_write_set_bytes_in_last_block(a.get(), 1);
  if (archive_write_open2(a.get(), &w, nullptr, write_cb, nullptr, nullptr) != ARCHIVE_OK)
    return std::string("cannot start an archive: ") + archive_error_string(a.get());
  for (const auto& [name, dir] : folders) {
    Fd d(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (d.fd < 0) return "output " + name + ": cannot open " + dir + ": " + errstr(errno);
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> ent(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(ent.get(), name.c_str());
    archive_entry_set_filetype(ent.get(), AE_IFDIR);
    archive_entry_set_perm(ent.get(), 0755);
    if (archive_write_header(a.get(), ent.get()) != ARCHIVE_OK)
      return std::string("archive: ") + archive_error_string(a.get());
    ++st->dirs;
    if (auto e = add_tree(w, d.fd, name, 0, st)) return "output " + *e;
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK)
    return w.over ? std::string("the archive is larger than its limit")
                  : std::string("archive: ") + archive_error_string(a.get());
  return std::nullopt;
}

std::optional<std::string> unpack_archive(const std::string& tar, const std::string& dest, uint64_t max_bytes,
                                          UnpackStats* stats) {
  UnpackStats local;
  UnpackStats* st = stats ? stats : &local;
  if (mkdir(dest.c_str(), 0755) != 0 && errno != EEXIST)
    return "cannot create " + dest + ": " + errstr(errno);
  Fd root(open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root.fd < 0) return "cannot open " + dest + ": " + errstr(errno);
  std::unique_ptr<archive, int (*)(archive*)> a(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(a.get());
  if (archive_read_open_memory(a.get(), tar.data(), tar.size()) != ARCHIVE_OK)
    return std::string("not a tar archive: ") + archive_error_string(a.get());
  uint64_t total = 0;
  archive_entry* ent = nullptr;
  for (;;) {
    int r = archive_read_next_header(a.get(), &ent);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
      return std::string("malformed archive: ") + archive_error_string(a.get());
    const char* pn = archive_entry_pathname(ent);
    std::string name = pn ? pn : "";
    std::vector<std::string> parts;
    if (auto e = split_path(name, &parts)) return "archive entry " + *e;
    mode_t type = archive_entry_filetype(ent);
    if ((type != AE_IFREG && type != AE_IFDIR) || archive_entry_hardlink(ent) || archive_entry_symlink(ent)) {
      ++st->refused;
      if (st->refused_names.size() < 8) st->refused_names.push_back(name);
      continue;
    }
    // Walk to the parent, one component at a time, creating folders, never following a link.
    int cur = root.fd;
    std::vector<std::unique_ptr<Fd>> held;
    size_t ndirs = type == AE_IFDIR ? parts.size() : parts.size() - 1;
    for (size_t i = 0; i < ndirs; ++i) {
      if (mkdirat(cur, parts[i].c_str(), 0755) != 0 && errno != EEXIST)
        return name + ": cannot create folder " + parts[i] + ": " + errstr(errno);
      int fd = openat(cur, parts[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return name + ": " + parts[i] + " is not a plain folder (" + errstr(errno) + ")";
      held.push_back(std::make_unique<Fd>(fd));
      cur = fd;
    }
    if (type == AE_IFDIR) {
      ++st->dirs;
      continue;
    }
    int64_t size = archive_entry_size(ent);
    if (size < 0 || total + static_cast<uint64_t>(size) > max_bytes)
      return name + ": the unpacked files exceed " + std::to_string(max_bytes) + " bytes";
    total += static_cast<uint64_t>(size);
    const std::string& leaf = parts.back();
    // An existing name is replaced only when it is a plain file (never written through a link).
    struct stat sb;
    if (fstatat(cur, leaf.c_str(), &sb, AT_SYMLINK_NOFOLLOW) == 0) {
      if (!S_ISREG(sb.st_mode)) return name + ": exists in " + dest + " and is not a plain file";
      if (unlinkat(cur, leaf.c_str(), 0) != 0) return name + ": cannot replace: " + errstr(errno);
    }
    Fd f(openat(cur, leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (f.fd < 0) return name + ": cannot create: " + errstr(errno);
    const void* buf;
    size_t len;
    la_int64_t off;
    int64_t written = 0;
    for (;;) {
      int rr = archive_read_data_block(a.get(), &buf, &len, &off);
      if (rr == ARCHIVE_EOF) break;
      if (rr != ARCHIVE_OK) return name + ": malformed archive data: " + archive_error_string(a.get());
      if (off + static_cast<int64_t>(len) > size) return name + ": more data than its header says";
      const char* p = static_cast<const char*>(buf);
      size_t left = len;
      while (left > 0) {
        ssize_t w = pwrite(f.fd, p, left, off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return name + ": write failed: " + errstr(errno);
        p += w, left -= static_cast<size_t>(w), off += w;
      }
      written = std::max<int64_t>(written, off);
    }
    if (written < size && ftruncate(f.fd, size) != 0) return name + ": " + errstr(errno);
    ++st->files;
  }
  return std::nullopt;
}

}  // namespace wj
