// Image diff: the added, removed and changed paths between the merged trees
// of two images (or below one path of them), from the trees and the layer
// indexes alone: no mount, no decompression. Contents compare equal when
// both nodes read the same bytes of the same layer blob, else by the
// SHA-256 of each file recorded in the layer index at pull (index/FORMAT.md
// "File digest section").
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "index/image_tree.h"
#include "index/layer_index.h"
#include "index/limits.h"
#include "index/status.h"
#include "src/store/store.h"

namespace lazyroot {

enum class DiffKind : uint8_t { kAdded, kRemoved, kModified };

// What differs between two nodes at one path (bits of DiffChange::what).
enum DiffWhat : uint32_t {
  kDiffType = 1 << 0,     // file, dir, symlink, …: nothing else is compared
  kDiffMode = 1 << 1,     // permission bits incl. setuid/setgid/sticky
  kDiffOwner = 1 << 2,    // uid or gid
  kDiffSize = 1 << 3,     // regular files (symlinks: see kDiffTarget)
  kDiffContent = 1 << 4,  // regular files
  kDiffTarget = 1 << 5,   // symlink target
  kDiffXattrs = 1 << 6,
  kDiffLinks = 1 << 7,   // hard link count of a non-directory
  kDiffDevice = 1 << 8,  // device numbers
  kDiffMtime = 1 << 9,   // only with DiffOptions::mtime
};
// "type", "mode", …, in DiffWhat's order (the JSON and table names).
std::vector<std::string_view> DiffWhatNames(uint32_t what);

// One side of a change: what the tree holds at the path.
struct DiffSide {
  NodeType type = NodeType::kRegular;
  uint32_t mode = 0, uid = 0, gid = 0, nlink = 0;
  uint64_t size = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint32_t rdev_major = 0, rdev_minor = 0;
  std::string link_target;         // symlinks
  uint64_t entries = 0;            // directories: the entries below it
  uint32_t layer = 0;              // 0 = bottom
  std::optional<Digest32> digest;  // regular files whose content was compared by digest
};

struct DiffChange {
  std::string path;  // image path, "" = root
  DiffKind kind = DiffKind::kModified;
  uint32_t what = 0;                     // kModified: DiffWhat bits
  std::optional<DiffSide> a, b;          // a unless added, b unless removed
  std::vector<std::string> xattr_names;  // kDiffXattrs: the names added, removed or changed
};

struct DiffOptions {
  bool mtime = false;  // also compare modification times (rebuilds change them all)
};

// Whether the contents of regular file `ia` of tree a and `ib` of tree b are
// equal (sizes are equal and non-zero when it is called). *da / *db receive
// the digests compared, when digests were used.
using ContentEqualFn =
    std::function<Result<bool>(NodeId ia, NodeId ib, std::optional<Digest32>* da, std::optional<Digest32>* db)>;

// The changes from tree a below node ra to tree b below node rb, both named
// `path` (ra and rb themselves compared first), in path order (an entry
// before what is below it). An added or removed directory is one change,
// its entries counted in DiffSide::entries; a node that changed type is not
// descended into. Iterative: the depth of a hostile tree costs heap, not stack.
Result<std::vector<DiffChange>> DiffTrees(const ImageTree& a, NodeId ra, const ImageTree& b, NodeId rb,
                                          const std::string& path, const DiffOptions& options,
                                          const ContentEqualFn& content_equal);

struct ImageDiff {
  std::string path;  // the PATH compared below ("" = root), parents resolved in image a
  std::vector<DiffChange> changes;
  uint64_t nodes_a = 0, nodes_b = 0;  // entries compared on each side
};

// DiffTrees on the merged trees of two pulled images below `path` (its
// parents' symlinks resolved in each image, the last component not
// followed; absent from one image: that path is the one change; from both:
// kNotFound). Contents by (layer blob, data offset), then by the file
// digests of the layer indexes, which are rebuilt from their blobs when
// missing or of an older format. REQUIRES: the store lock, held shared.
Result<ImageDiff> DiffImages(Store& store, const ImageRecord& a, const ImageRecord& b, std::string_view path,
                             const DiffOptions& options, const Limits& limits = Limits());

}  // namespace lazyroot
