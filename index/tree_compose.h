// ComposeTrees: one ImageTree made of a few synthetic directories with whole
// trees placed below them, for `lazyroot mount --layers` (merged/,
// layers/<N>-<digest>/, upto/<N>/ in one mount). Each part keeps its nodes,
// names, xattrs, sparse maps and layer numbers (so the image's content object
// reads them as it reads the full tree); only node ids shift. The composed
// tree costs the sum of its parts, so the caller passes a node budget.
//
// Numbering: the synthetic directories come first (0 = root, breadth-first),
// then each part's nodes in its own order, shifted by where the part starts.
// So node ids below synthetic_nodes are the synthetic directories.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "index/image_tree.h"
#include "index/status.h"

namespace lazyroot {

struct TreePart {
  // Where the part's root goes below the composed root, one name per level
  // (e.g. {"layers", "1-0123456789ab"}). Non-empty; no two parts at one path,
  // and no part above another.
  std::vector<std::string> path;
  std::shared_ptr<const ImageTree> tree;
};

struct ComposeOptions {
  // The synthetic directories' mode (permission bits), owner and mtime.
  uint32_t dir_mode = 0555, uid = 0, gid = 0;
  int64_t mtime_sec = 0;
  // The layer table of the composed tree: every part's nodes must name
  // layers below its size (the image's layers).
  std::vector<std::string> layer_digests;
  std::string image_digest;
  // Nodes of the composed tree at most; over it is LimitExceeded naming the
  // total and `budget_name` (how the caller lets the user raise it).
  uint64_t max_nodes = uint64_t{1} << 20;
  std::string budget_name = "image-entries";
  std::string name = "composed tree";
};

struct ComposedTree {
  ImageTree tree;
  uint32_t synthetic_nodes = 0;  // ids [0, synthetic_nodes) are the synthetic directories
};

// InvalidArgument for a bad part path or a part naming a layer past the
// table; LimitExceeded over max_nodes (checked before anything is built).
Result<ComposedTree> ComposeTrees(std::span<const TreePart> parts, const ComposeOptions& options);

}  // namespace lazyroot
