// Mount namespace contents: the child pivots into an empty tmpfs root that holds only the
// job's trees, at their guest paths (inputs read-only; every tree nosuid, nodev, noexec),
// with no /proc, /dev or /sys, and the host's root unmounted. Runs in the child, inside its
// new mount namespace (and after its uid/gid maps are written, when a user namespace exists).
//
// The trees are cloned with open_tree() before the tmpfs goes up, so no host path can be
// shadowed by the staging mount; each clone is checked to be the directory the supervisor
// opened. Afterwards the preopen fds are replaced by fds opened through the new mounts:
// the old ones belong to the host's mount table, where ".." leads anywhere and "read-only"
// is not enforced.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "sandbox/lockdown.h"

namespace wj::sandbox {
namespace {

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

std::vector<std::string> components(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string c = path.substr(i, j - i);
    if (!c.empty() && c != ".") out.push_back(c);
    i = j + 1;
  }
  return out;
}

bool is_prefix(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  if (a.size() > b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return false;
  return true;
}

bool same_dir(int a, int b) {
  struct stat sa {
  }, sb{};
  return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

}  // namespace

std::optional<std::string> pivot_into_job_root(const std::vector<PreopenMount>& mounts,
                                               const std::vector<int>& preopen_fds) {
  if (mounts.size() != preopen_fds.size()) return "preopen list and fds differ";
  // Nothing we mount may propagate back to the host's mount table.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return errno_message("mount(/, MS_REC|MS_PRIVATE)", errno);

  // Where each tree goes in the new root: its guest path, unless that path is unusable
  // (empty, "..", or nested in another tree, which would mean creating mount points inside
  // a host directory); then a private place. The guest reaches trees through its preopen
  // fds, never by these paths, so the place only matters to someone reading /proc.
  std::vector<std::vector<std::string>> where;
  for (size_t i = 0; i < mounts.size(); ++i) {
    auto c = components(mounts[i].guest_path);
    bool usable = !c.empty();
    for (const auto& part : c)
      if (part == "..") usable = false;
    for (const auto& prev : where)
      if (is_prefix(prev, c) || is_prefix(c, prev)) usable = false;
    if (!usable) c = {".wasmjail", "preopen-" + std::to_string(i)};
    where.push_back(std::move(c));
  }

  std::vector<Fd> trees;
  for (size_t i = 0; i < mounts.size(); ++i) {
    Fd t(
        open_tree(AT_FDCWD, mounts[i].host_path.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE));
    if (t.fd < 0) return errno_message(("open_tree(" + mounts[i].host_path + ")").c_str(), errno);
    if (!same_dir(t.fd, preopen_fds[i]))
      return mounts[i].host_path + " changed since the supervisor opened it";
    mount_attr attr{};
    attr.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC |
                    (mounts[i].read_only ? MOUNT_ATTR_RDONLY : 0);
    if (mount_setattr(t.fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0)
      return errno_message("mount_setattr", errno);
    trees.push_back(std::move(t));
  }

  // The staging point only needs to exist; the tmpfs on it becomes "/" below.
  const char* staging = access("/tmp", F_OK) == 0 ? "/tmp" : "/mnt";
  if (mount("wasmjail-root", staging, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
            "size=64k,nr_inodes=256,mode=0755") != 0)
    return errno_message("mount(tmpfs)", errno);
  for (size_t i = 0; i < trees.size(); ++i) {
    std::string path = staging;
    for (const auto& part : where[i]) {
      path += "/" + part;
      if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
        return errno_message(("mkdir " + path).c_str(), errno);
    }
    if (move_mount(trees[i].fd, "", AT_FDCWD, path.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0)
      return errno_message(("move_mount(" + path + ")").c_str(), errno);
  }
  // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves
  // the tmpfs as "/" with the host's tree unreachable.
  if (chdir(staging) != 0) return errno_message("chdir", errno);
  if (syscall(SYS_pivot_root, ".", ".") != 0) return errno_message("pivot_root", errno);
  if (umount2(".", MNT_DETACH) != 0) return errno_message("umount2(old root)", errno);
  if (chdir("/") != 0) return errno_message("chdir(/)", errno);
  if (mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
            nullptr) != 0)
    return errno_message("mount(/, MS_RDONLY)", errno);

  for (size_t i = 0; i < mounts.size(); ++i) {
    std::string path;
    for (const auto& part : where[i]) path += "/" + part;
    Fd nfd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (nfd.fd < 0) return errno_message(("open " + path).c_str(), errno);
    if (!same_dir(nfd.fd, preopen_fds[i])) return path + " is not the mounted tree";
    if (dup2(nfd.fd, preopen_fds[i]) < 0) return errno_message("dup2", errno);
  }
  return std::nullopt;
}

}  // namespace wj::sandbox
