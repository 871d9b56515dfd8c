// wasi_snapshot_preview1 ABI constants (witx): errno, filetypes, rights, layouts.
#pragma once

#include <cstdint>

namespace wj::wasi {

enum Errno : uint16_t {
  kSuccess = 0, k2Big = 1, kAcces = 2, kAddrInUse = 3, kAddrNotAvail = 4, kAfNoSupport = 5,
  kAgain = 6, kAlready = 7, kBadf = 8, kBadMsg = 9, kBusy = 10, kCanceled = 11, kChild = 12,
  kConnAborted = 13, kConnRefused = 14, kConnReset = 15, kDeadlk = 16, kDestAddrReq = 17,
  kDom = 18, kDquot = 19, kExist = 20, kFault = 21, kFbig = 22, kHostUnreach = 23, kIdrm = 24,
  kIlseq = 25, kInProgress = 26, kIntr = 27, kInval = 28, kIo = 29, kIsConn = 30, kIsDir = 31,
  kLoop = 32, kMfile = 33, kMlink = 34, kMsgSize = 35, kMultihop = 36, kNameTooLong = 37,
  kNetDown = 38, kNetReset = 39, kNetUnreach = 40, kNfile = 41, kNoBufs = 42, kNoDev = 43,
  kNoEnt = 44, kNoExec = 45, kNoLck = 46, kNoLink = 47, kNoMem = 48, kNoMsg = 49,
  kNoProtoOpt = 50, kNoSpc = 51, kNoSys = 52, kNotConn = 53, kNotDir = 54,
  kNotEmpty = 55, kNotRecoverable = 56, kNotSock = 57, kNotSup = 58, kNotTy = 59, kNxio = 60,
  kOverflow = 61, kOwnerDead = 62, kPerm = 63, kPipe = 64, kProto = 65, kProtoNoSupport = 66,
  kProtoType = 67, kRange = 68, kRofs = 69, kSpipe = 70, kSrch = 71, kStale = 72,
  kTimedOut = 73, kTxtBsy = 74, kXdev = 75, kNotCapable = 76,
};

enum Filetype : uint8_t {
  kUnknown = 0, kBlockDevice = 1, kCharacterDevice = 2, kDirectory = 3, kRegularFile = 4,
  kSocketDgram = 5, kSocketStream = 6, kSymbolicLink = 7,
};

namespace right {
constexpr uint64_t kFdDatasync = 1ull << 0, kFdRead = 1ull << 1, kFdSeek = 1ull << 2,
                   kFdFdstatSetFlags = 1ull << 3, kFdSync = 1ull << 4, kFdTell = 1ull << 5,
                   kFdWrite = 1ull << 6, kFdAdvise = 1ull << 7, kFdAllocate = 1ull << 8,
                   kPathCreateDirectory = 1ull << 9, kPathCreateFile = 1ull << 10,
                   kPathLinkSource = 1ull << 11, kPathLinkTarget = 1ull << 12,
                   kPathOpen = 1ull << 13, kFdReaddir = 1ull << 14, kPathReadlink = 1ull << 15,
                   kPathRenameSource = 1ull << 16, kPathRenameTarget = 1ull << 17,
                   kPathFilestatGet = 1ull << 18, kPathFilestatSetSize = 1ull << 19,
                   kPathFilestatSetTimes = 1ull << 20, kFdFilestatGet = 1ull << 21,
                   kFdFilestatSetSize = 1ull << 22, kFdFilestatSetTimes = 1ull << 23,
                   kPathSymlink = 1ull << 24, kPathRemoveDirectory = 1ull << 25,
                   kPathUnlinkFile = 1ull << 26, kPollFdReadwrite = 1ull << 27,
                   kSockShutdown = 1ull << 28, kSockAccept = 1ull << 29;
constexpr uint64_t kAll = (1ull << 30) - 1;

// What each kind of descriptor can ever hold (as wasmtime's wasi-common grants): a file
// never carries path_* rights, a directory never carries read/write/seek.
constexpr uint64_t kFileBase = kFdDatasync | kFdRead | kFdSeek | kFdFdstatSetFlags | kFdSync |
                               kFdTell | kFdWrite | kFdAdvise | kFdAllocate | kFdFilestatGet |
                               kFdFilestatSetSize | kFdFilestatSetTimes | kPollFdReadwrite;
constexpr uint64_t kDirBase =
    kFdFdstatSetFlags | kFdSync | kFdAdvise | kPathCreateDirectory | kPathCreateFile |
    kPathLinkSource | kPathLinkTarget | kPathOpen | kFdReaddir | kPathReadlink |
    kPathRenameSource | kPathRenameTarget | kPathFilestatGet | kPathFilestatSetSize |
    kPathFilestatSetTimes | kFdFilestatGet | kFdFilestatSetTimes | kPathSymlink |
    kPathRemoveDirectory | kPathUnlinkFile | kPollFdReadwrite;
constexpr uint64_t kDirInheriting = kDirBase | kFileBase;
// Rights that change the filesystem: a read-only preopen and everything opened beneath it
// never holds any of them.
constexpr uint64_t kMutating = kFdWrite | kFdAllocate | kFdFilestatSetSize | kFdFilestatSetTimes |
                               kPathCreateDirectory | kPathCreateFile | kPathLinkSource |
                               kPathLinkTarget | kPathRenameSource | kPathRenameTarget |
                               kPathFilestatSetSize | kPathFilestatSetTimes | kPathSymlink |
                               kPathRemoveDirectory | kPathUnlinkFile;
}  // namespace right

namespace fdflag {
constexpr uint16_t kAppend = 1, kDsync = 2, kNonblock = 4, kRsync = 8, kSync = 16;
constexpr uint16_t kAll = 31;
}

namespace oflag {
constexpr uint16_t kCreat = 1, kDirectory = 2, kExcl = 4, kTrunc = 8;
constexpr uint16_t kAll = 15;
}

namespace fstflag {
constexpr uint16_t kAtim = 1, kAtimNow = 2, kMtim = 4, kMtimNow = 8;
constexpr uint16_t kAll = 15;
}

constexpr uint32_t kLookupSymlinkFollow = 1;

enum Whence : uint8_t { kWhenceSet = 0, kWhenceCur = 1, kWhenceEnd = 2 };

enum Advice : uint8_t {
  kAdviceNormal = 0, kAdviceSequential = 1, kAdviceRandom = 2, kAdviceWillNeed = 3,
  kAdviceDontNeed = 4, kAdviceNoReuse = 5,
};

constexpr uint32_t kFilestatSize = 64;  // dev, ino, filetype, nlink, size, atim, mtim, ctim
constexpr uint32_t kFdstatSize = 24;
constexpr uint32_t kDirentSize = 24;  // d_next u64, d_ino u64, d_namlen u32, d_type u8

enum Clock : uint32_t { kRealtime = 0, kMonotonic = 1, kProcessCputime = 2, kThreadCputime = 3 };

enum EventType : uint8_t { kEventClock = 0, kEventFdRead = 1, kEventFdWrite = 2 };

constexpr uint32_t kSubscriptionSize = 48;
constexpr uint32_t kEventSize = 32;
constexpr uint16_t kSubscriptionClockAbstime = 1;

}  // namespace wj::wasi
