// ExtractImage: everything `lazyroot extract` does with a pulled image, for
// the CLI and the public API alike (lazyroot_extract): the merged tree into
// a directory, or into the store's cached rootfs (checked before reuse) and
// from there a private copy (--copy, --reflink); an OCI runtime bundle
// (--bundle: DIR/rootfs + DIR/config.json); /.krun_config.json written into
// the root without following anything the image planted there.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>

#include "fs/extract.h"
#include "fs/rootfs_copy.h"
#include "index/limits.h"
#include "index/status.h"
#include "src/store/store.h"

namespace lazyroot {

struct ExtractImageOptions {
  std::string dir;     // the target (absent or empty); "" = the store's cached rootfs
  std::string copy;    // with dir "": a private copy of the cached rootfs here
  bool reflink = false;  // the copy shares extents (FICLONE), never falls back
  std::string bundle;  // an OCI runtime bundle here (dir and copy must be "")
  bool krun_config = false;  // /.krun_config.json in the written root (not the shared cache)
  bool rootless = false;     // also on when not root (fs/extract.h)
  unsigned threads = 0;
  uint64_t max_bytes = 0;
  Limits limits;
  // Set to a signal number (from any thread) to stop: what was being written
  // is removed; the bundle directory too, if this call made it.
  const std::atomic<int>* interrupted = nullptr;
  // Lines worth telling the user ("rootfs … changed: extracting again").
  std::function<void(const std::string&)> note;
};

struct ExtractImageResult {
  std::string path;        // what was asked for: the root, the copy, or the bundle directory
  std::string cached_dir;  // the store's cached rootfs, when it was used
  bool extracted = false;  // a tree was written now (not a cached one reused)
  std::optional<ExtractReport> report;  // when extracted now
  double seconds = 0;                   // of that extraction
  std::optional<CopyReport> copied;     // with copy
  double copy_seconds = 0;
};

// Checks the targets of `options` (absent or empty directories, the flags'
// combinations) before anything is pulled: InvalidArgument naming the one
// at fault.
Status CheckExtractTargets(const ExtractImageOptions& options);

// Extracts `record` as `options` says. REQUIRES: the store lock, held
// shared from before the record was read (gc cannot remove what is read or
// being written into rootfs/). Errors name the image and the directory.
Result<ExtractImageResult> ExtractImage(Store& store, const ImageRecord& record, const ExtractImageOptions& options);

}  // namespace lazyroot
