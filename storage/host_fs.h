// HostFs: the host file operations storage/ does on a job's behalf, each one beneath a
// directory fd it holds, never by re-walking a path a job, guest or local user can change:
//   - folders the server owns (output root, job folders, code cache) are checked for owner
//     and mode when opened, made with mkdirat beneath their parent's fd, and reopened with
//     openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS);
//   - sources are opened in one step (O_NONBLOCK, regular files only, bounded read), so a
//     FIFO, a device or a symlink swapped in after a check cannot hang or redirect us;
//   - files the host writes into a guest-writable folder are created O_NOFOLLOW|O_EXCL.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace wj {

// An owned file descriptor (-1: none). Move-only; closes on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

using SharedFd = std::shared_ptr<const UniqueFd>;

// openat2() beneath `dirfd`: `rel` must be relative and may not climb out; with
// `no_symlinks` no component may be a symlink. O_CLOEXEC is added. -1 with errno set.
int open_beneath(int dirfd, const std::string& rel, int flags, mode_t mode, bool no_symlinks);

// A folder only this process's user controls: opened O_NOFOLLOW (a symlink is refused),
// created (0700, parents 0755) when missing and `create`, and refused when another user
// owns it or when its group or others may write it. `what` names it in messages.
std::optional<std::string> open_private_dir(const std::string& path, bool create, const char* what,
                                            UniqueFd* out);

// Makes folder `name` (one component) beneath `dirfd` with `mode` and opens it beneath
// (no symlinks). `must_be_new`: an existing entry is an error (a planted job folder); else
// an existing real folder is reused.
std::optional<std::string> make_dir_beneath(int dirfd, const std::string& name, mode_t mode, bool must_be_new,
                                            UniqueFd* out);

// Creates file `name` beneath `dirfd` (no symlink followed; an existing entry of that
// name, a symlink included, is removed first) and writes `data`.
std::optional<std::string> write_new_file(int dirfd, const std::string& name, const std::string& data,
                                          mode_t mode = 0644);

// What a source path turned out to be when it was opened.
struct OpenedSource {
  UniqueFd fd;
  bool is_dir = false;
};

// Opens a local source in one step: beneath the first of `roots` that holds it lexically
// (openat2 RESOLVE_BENEATH: a symlink leading out fails), or as given when `roots` is
// empty (the local user's own job). O_NONBLOCK: a FIFO cannot block the open. Only
// regular files and folders are accepted. With `enforce_roots` and no roots, every local
// source is refused (a server that allows none).
std::optional<std::string> open_source(const std::string& path, const std::vector<std::string>& roots,
                                       bool enforce_roots, OpenedSource* out);

// The single regular `.wasm` file of an opened folder, opened beneath it.
std::optional<std::string> open_single_wasm(int dirfd, const std::string& shown, UniqueFd* out,
                                            std::string* name);

// Reads a whole regular file from `fd`, at most `cap` bytes (`limit` names the cap).
std::optional<std::string> read_fd_capped(int fd, const std::string& shown, uint64_t cap,
                                          std::vector<uint8_t>* out, const char* limit);

// Reads file `name` beneath `dirfd` (no symlinks, regular only, at most `cap` bytes).
// ENOENT is reported as nullopt with *missing set.
std::optional<std::string> read_file_beneath(int dirfd, const std::string& name, uint64_t cap,
                                             std::vector<uint8_t>* out, bool* missing = nullptr);

// Writes `data` to `name` beneath `dirfd` atomically (a private temp file, then renameat).
std::optional<std::string> replace_file_beneath(int dirfd, const std::string& name, const void* data,
                                                size_t size, mode_t mode = 0600);

}  // namespace wj
