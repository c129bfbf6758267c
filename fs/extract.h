// ExtractTree: eager extraction of an image's merged tree into a directory —
// what `lazyroot extract` does, and the alternative to mounting. Walks the
// ImageTree (not the layers), so each surviving node is written exactly once;
// file bytes come from the layer blobs through ImageContent, one warm decoder
// per worker thread. All writes happen beneath one directory fd without ever
// following a symlink on disk (extract_writer.h). Thread-safe: the tree and
// content are only read; any number of extractions may run at once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "index/file_reader.h"
#include "index/image_tree.h"
#include "index/status.h"

namespace lazyroot {

struct ExtractOptions {
  // Worker threads writing regular files; 0 = std::thread::hardware_concurrency().
  unsigned threads = 0;
  // Rootless mode even when running as root (it is always on when euid != 0):
  // no chown, devices as placeholders, the image's uid:gid:mode recorded in
  // the xattr user.containers.override_stat. See extract.cc for the details.
  bool rootless = false;
  // A layer is split between several workers only in pieces of at least this
  // many file bytes (each piece costs one decoder restart). Tests lower it.
  uint64_t min_split_bytes = 32u << 20;
};

struct ExtractReport {
  uint64_t files = 0;      // regular files (inodes) written
  uint64_t dirs = 0;       // directories, the root included
  uint64_t symlinks = 0;
  uint64_t hardlinks = 0;  // names beyond the first of any non-directory
  uint64_t devices = 0;    // character/block devices and fifos (rootless: placeholders for devices)
  uint64_t skipped = 0;    // entries not written (none today; kept for the summary line)
  uint64_t warnings = 0;   // xattrs refused with EPERM/ENOTSUP, device placeholders
  uint64_t bytes = 0;      // file data bytes written (sparse holes excluded)
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
// Corruption if the tree or a layer is bad, IoError naming the path for a
// failed system call (ENOSPC, a path past PATH_MAX, …).
Result<ExtractReport> ExtractTree(const ImageTree& tree, const ImageContent& content, const std::string& dir,
                                  const ExtractOptions& options = {});

// The xattr carrying an entry's image ownership and mode in rootless mode,
// read by libkrun's and crun's virtio-fs/passthrough servers and
// fuse-overlayfs. Value "<uid>:<gid>:0<st_mode octal>", file-type bits
// included (libkrun writes e.g. "0:0:0100755"; a device placeholder carries
// S_IFCHR/S_IFBLK so a guest sees the right type).
inline constexpr char kOverrideStatXattr[] = "user.containers.override_stat";
std::string OverrideStatValue(uint32_t uid, uint32_t gid, uint32_t st_mode);

}  // namespace lazyroot
