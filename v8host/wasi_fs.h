// The descriptor, file and directory functions of wasi_snapshot_preview1 (fd_*, path_*).
// Every guest path resolves beneath its directory descriptor (v8host/confined.h); every
// guest pointer is checked against the memory's current size before it is touched.
//
// Host syscalls they make (for the seccomp policy): openat2, openat, close, fstat,
// newfstatat, getdents64, readv, writev, preadv, pwritev, lseek, fcntl(F_GETFL/F_SETFL),
// fadvise64, fallocate, fsync, fdatasync, ftruncate, utimensat, mkdirat, unlinkat,
// renameat/renameat2, symlinkat, linkat, readlinkat. Never ioctl.
#pragma once

#include <cstdint>

#include "v8host/wasi.h"

namespace wj::wasi {

uint32_t fd_advise(Wasi& w, const uint64_t* a);
uint32_t fd_allocate(Wasi& w, const uint64_t* a);
uint32_t fd_close(Wasi& w, const uint64_t* a);
uint32_t fd_datasync(Wasi& w, const uint64_t* a);
uint32_t fd_fdstat_get(Wasi& w, const uint64_t* a);
uint32_t fd_fdstat_set_flags(Wasi& w, const uint64_t* a);
uint32_t fd_fdstat_set_rights(Wasi& w, const uint64_t* a);
uint32_t fd_filestat_get(Wasi& w, const uint64_t* a);
uint32_t fd_filestat_set_size(Wasi& w, const uint64_t* a);
uint32_t fd_filestat_set_times(Wasi& w, const uint64_t* a);
uint32_t fd_pread(Wasi& w, const uint64_t* a);
uint32_t fd_prestat_get(Wasi& w, const uint64_t* a);
uint32_t fd_prestat_dir_name(Wasi& w, const uint64_t* a);
uint32_t fd_pwrite(Wasi& w, const uint64_t* a);
uint32_t fd_read(Wasi& w, const uint64_t* a);
uint32_t fd_readdir(Wasi& w, const uint64_t* a);
uint32_t fd_renumber(Wasi& w, const uint64_t* a);
uint32_t fd_seek(Wasi& w, const uint64_t* a);
uint32_t fd_sync(Wasi& w, const uint64_t* a);
uint32_t fd_tell(Wasi& w, const uint64_t* a);
uint32_t fd_write(Wasi& w, const uint64_t* a);
uint32_t path_create_directory(Wasi& w, const uint64_t* a);
uint32_t path_filestat_get(Wasi& w, const uint64_t* a);
uint32_t path_filestat_set_times(Wasi& w, const uint64_t* a);
uint32_t path_link(Wasi& w, const uint64_t* a);
uint32_t path_open(Wasi& w, const uint64_t* a);
uint32_t path_readlink(Wasi& w, const uint64_t* a);
uint32_t path_remove_directory(Wasi& w, const uint64_t* a);
uint32_t path_rename(Wasi& w, const uint64_t* a);
uint32_t path_symlink(Wasi& w, const uint64_t* a);
uint32_t path_unlink_file(Wasi& w, const uint64_t* a);

}  // namespace wj::wasi
