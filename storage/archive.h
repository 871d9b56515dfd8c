// Archives of job folders (libarchive, pax tar in memory): output folders travel back from
// a queue worker as one blob, folder inputs travel to it the same way.
//
// Packing reads only regular files and directories (symlinks, FIFOs, devices and sockets
// are left out and counted) beneath a directory fd, never following a symlink. Unpacking
// writes only regular files and directories, each opened beneath the destination's fd one
// component at a time with O_NOFOLLOW: no path outside DEST (absolute, `..`), no symlink
// followed, no special file, no hard link, no set-id bits, whatever the archive says.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace wj {

struct PackStats {
  uint64_t files = 0, dirs = 0, skipped = 0;  // skipped: symlinks and special files
};

// Packs each (name, host folder) as NAME/... into a tar held in *out. Fails past max_bytes.
std::optional<std::string> pack_folders(const std::vector<std::pair<std::string, std::string>>& folders,
                                        uint64_t max_bytes, std::string* out, PackStats* stats = nullptr);

struct UnpackStats {
  uint64_t files = 0, dirs = 0, refused = 0;  // refused: entries that were not a plain file or folder
  std::vector<std::string> refused_names;     // the first few, for messages
};

// Unpacks a tar into `dest` (created if missing). Entries that are not plain files or
// folders are refused and skipped (counted); a path leaving DEST fails the whole unpack.
// `max_bytes` caps the total of the files' sizes.
std::optional<std::string> unpack_archive(const std::string& tar, const std::string& dest, uint64_t max_bytes,
                                          UnpackStats* stats = nullptr);

}  // namespace wj
