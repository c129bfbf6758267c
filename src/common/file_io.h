// File helpers every part of src/ uses: bounded reads of regular files and
// atomic writes. They know nothing of the store's layout, so the registry's
// config files and the image readers use them without depending on the
// store (src/store/store.h re-exports them for its own callers).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "index/status.h"

namespace lazyroot {

// What a read calls a file that is there but unfit: a store file that is
// not regular or too big is corrupt; a user's config file is a bad
// argument (or over a limit).
struct UnfitFileCodes {
  ErrorCode not_regular = ErrorCode::kCorruption;
  ErrorCode too_large = ErrorCode::kCorruption;
};

// Reads a whole regular file of at most cap bytes. kNotFound "PATH does
// not exist" when it (or a parent) is absent; codes.not_regular for a
// FIFO, device or directory, which is never opened blocking, so a FIFO
// put where a file belongs cannot hang the caller; codes.too_large
// "PATH: larger than CAP bytes"; other errors from errno. Memory is
// bounded by cap whatever the file holds or becomes while it is read.
Result<std::string> ReadWholeFile(const std::string& path, uint64_t cap, UnfitFileCodes codes = {});
// The same for `name` in the open directory dir_fd (path names it in
// messages), except that a symlink there is refused (codes.not_regular),
// never followed: opening what it points to (a device, a file outside the
// store) is not this file's to do.
Result<std::string> ReadWholeFileAt(int dir_fd, const std::string& name, const std::string& path, uint64_t cap,
                                    UnfitFileCodes codes = {});

// fsync of a directory, so that a rename into it survives a crash.
Status FsyncDir(const std::string& dir);

// ".tmp.<pid>.<tid>.<n>": a temp name suffix no other process or thread
// uses (n counts per process). Every temp file in the store is path + this,
// or is protected by a lock (src/store/STORE.md); gc removes them under the
// exclusive lock only.
std::string UniqueTempSuffix();

// Whether a rename is made durable at once (fsync of its directory), or by
// the caller, once for a batch of renames into one directory (each fsync of
// a changed directory waits for a journal commit: ~3-8 ms here).
enum class DirSync { kNow, kCaller };

// Writes bytes to path atomically: a temp file beside it (path +
// UniqueTempSuffix()), fsync, rename, fsync of the directory (unless
// dir_sync is kCaller). Any number of
// threads and processes may write the same path at once: the file is always
// one complete version. The file is created with `mode` (less the umask):
// 0600 for a secret, so it is never readable by others, not even for a moment.
Status WriteFileAtomic(const std::string& path, std::string_view bytes, mode_t mode = 0644,
                       DirSync dir_sync = DirSync::kNow);

}  // namespace lazyroot
