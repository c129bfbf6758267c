// ExtractTree: eager extraction of an image's merged tree into a directory —
// what `lazyroot extract` does, and the alternative to mounting. Walks the
// ImageTree (not the layers), so each surviving node is written exactly once;
// file bytes come from the layer blobs through ImageContent, one warm decoder
// per worker thread. All writes happen beneath one directory fd without ever
// following a symlink on disk (extract_writer.h). Thread-safe: the tree and
// content are only read; any number of extractions may run at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "index/image_content.h"
#include "index/image_tree.h"
#include "index/status.h"

namespace lazyroot {

struct ExtractOptions {
  // Worker threads writing regular files; 0 = std::thread::hardware_concurrency().
  unsigned threads = 0;
  // Rootless mode even when running as root (it is always on when euid != 0):
  // no chown, devices as placeholders, on-disk modes without setuid, setgid,
  // sticky and group/other write (kRootlessModeMask), the image's
  // uid:gid:mode recorded in the xattr user.containers.override_stat. See
  // extract.cc for the details.
  bool rootless = false;
  // A layer is split between several workers only in pieces of at least this
  // many file bytes (each piece costs one decoder restart). Tests lower it.
  uint64_t min_split_bytes = 32u << 20;
  // The most file data the extraction may write, in bytes. 0 (the default):
  // what the target's file system has free (statvfs f_bavail) less a margin
  // (kFreeSpaceMargin or 1 % of its size, the larger). Checked twice: before
  // anything is written, against the tree's file data (sparse holes
  // excluded; runs of zeros are found only while writing, so they count
  // here), and while writing, against the bytes actually written (zero runs
  // left as holes do not count). An explicit bound replaces the free-space
  // one (a disk that then runs out fails with ENOSPC, and is cleaned up).
  uint64_t max_bytes = 0;
  // When set and nonzero (a signal number), the extraction stops at the next
  // file, directory, link or 1 MiB chunk with kAborted and removes what it
  // wrote, as for any error. The CLI sets it from SIGINT/SIGTERM/SIGHUP, so
  // an interrupted extract leaves neither DIR nor its temp dir behind.
  const std::atomic<int>* interrupted = nullptr;
};

// Kept free on the target's file system when no max_bytes is given.
inline constexpr uint64_t kFreeSpaceMargin = 64ull << 20;

struct ExtractReport {
  uint64_t files = 0;      // regular files (inodes) written
  uint64_t dirs = 0;       // directories, the root included
  uint64_t symlinks = 0;
  uint64_t hardlinks = 0;  // names beyond the first of any non-directory
  uint64_t devices = 0;    // character/block devices and fifos (rootless: placeholders for devices)
  uint64_t skipped = 0;    // entries not written (none today; kept for the summary line)
  uint64_t warnings = 0;   // xattrs refused with EPERM/ENOTSUP, device placeholders
  uint64_t bytes = 0;      // file data bytes written (sparse holes and zero runs excluded)
  uint64_t zero_bytes = 0; // runs of zeros in file data left as holes instead of written
  bool rootless = false;   // the mode that was used
  std::vector<std::string> warning_samples;  // the first few warnings, for the user
};

// Extracts `tree` with the bytes of `content` into `dir`.
// Preconditions: `dir` is absent (its parent must exist) or an empty
// directory (not a symlink to one); content holds the tree's layers.
// Postconditions on success: `dir` holds the tree, put in place by one
// rename(2) of a sibling temp dir "<dir>.lazyroot-tmp-XXXXXX". On failure
// nothing is left under either name (an empty `dir` that existed stays).
// Returns InvalidArgument if `dir` is unusable (non-empty, not a directory),
// LimitExceeded if the data is over max_bytes or the free space (before
// anything is written, or while writing), Corruption if the tree or a layer
// is bad, IoError naming the path for a failed system call (ENOSPC, a path
// past PATH_MAX, …) or naming the step that threw (out of memory).
Result<ExtractReport> ExtractTree(const ImageTree& tree, const ImageContent& content, const std::string& dir,
                                  const ExtractOptions& options = {});

// The xattr carrying an entry's image ownership and mode in rootless mode,
// read by libkrun's and crun's virtio-fs/passthrough servers and
// fuse-overlayfs. Value "<uid>:<gid>:0<st_mode octal>", file-type bits
// included (libkrun writes e.g. "0:0:0100755"; a device placeholder carries
// S_IFCHR/S_IFBLK so a guest sees the right type).
// What a rootless extraction keeps of an entry's permission bits on disk
// (the image's full mode is in override_stat): no setuid/setgid (a file the
// caller owns would run image code as the caller), no group/other write
// (other local users could change the tree), and no sticky bit, which only
// matters in a directory others can write to. containers/storage's
// force_mask has the same aim.
inline constexpr uint32_t kRootlessModeMask = 0755;

inline constexpr char kOverrideStatXattr[] = "user.containers.override_stat";
std::string OverrideStatValue(uint32_t uid, uint32_t gid, uint32_t st_mode);

}  // namespace lazyroot
