// The store's cached extract of an image, <store>/rootfs/<manifest hex>:
// what `lazyroot extract IMAGE` (no DIR) and lazyroot_extract(…, NULL, …)
// hand to krun_set_root. Extracted once; before each reuse it is compared
// with the image's tree (fs/rootfs_check.h: a VM may have written it) and,
// if it changed, a fresh tree is extracted beside it and swapped in with one
// rename, the changed one left as <hex>.stale-* for gc. <hex>.done marks a
// complete tree and says how it was made ("root" / "rootless"); <hex>.lock
// serialises extracts of one image between processes. src/store/STORE.md.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "fs/extract.h"
#include "index/status.h"
#include "src/store/open_image.h"
#include "src/store/store.h"

namespace lazyroot {

struct CachedRootfsOptions {
  ExtractOptions extract;  // rootless (also when not root), threads, max_bytes, interrupted
  // One line per thing worth telling (reused, changed and what differs,
  // extracted again and why). May be empty.
  std::function<void(const std::string&)> note;
  // Around the extraction itself, when there is one (the CLI arms its
  // signal handling there, so a signal removes the half-written tree).
  std::function<void()> before_extract, after_extract;
};

struct CachedRootfs {
  std::string dir;
  bool reused = false;
  std::optional<ExtractReport> report;  // when extracted now
  double seconds = 0;                   // the extraction's
  // The image's extract lock, held: no other extract replaces `dir` until
  // this is released (`extract --copy` copies under it).
  FileLock lock;
};

// The cached extract of `image` (opened by OpenImage from `record`), checked
// and reused, or extracted now. Errors name the image and the directory; a
// failed extraction leaves no tree and no .done marker.
// REQUIRES: the store lock, held shared (src/store/STORE.md).
Result<CachedRootfs> EnsureCachedRootfs(Store& store, const ImageRecord& record, const OpenedImage& image,
                                        const CachedRootfsOptions& options);

}  // namespace lazyroot
