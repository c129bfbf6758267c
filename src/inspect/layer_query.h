// Layer queries: where a path of a pulled image came from (which layers
// created, replaced, whited out or made opaque it or one of its parents, and
// which one the merged tree keeps), answered from the stored layer indexes
// and the merged tree alone: no mount, no unpacking. Plain functions; each
// call reads the store and returns values, nothing is shared between calls.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "index/image_tree.h"
#include "index/limits.h"
#include "index/status.h"
#include "index/tar_entry.h"
#include "index/tree_compose.h"
#include "src/store/store.h"

namespace lazyroot {

// What one layer entry did to the queried path or to one of its parents.
enum class TouchAction : uint8_t {
  kCreated,   // an entry where nothing (live) was before
  kReplaced,  // an entry over a live entry of a lower layer (a directory over a directory: new metadata)
  kWhiteout,  // `.wh.NAME`: deletes NAME (and what is below it) of the lower layers
  kOpaque,    // `.wh..wh..opq` in a directory: hides everything the lower layers put below it
};
std::string_view TouchActionName(TouchAction a);

struct PathTouch {
  uint32_t layer = 0;  // 0 = bottom
  std::string digest;  // the layer blob's digest
  TouchAction action = TouchAction::kCreated;
  std::string path;         // the image path it acted on, parents resolved as the merge does ("" = root)
  std::string entry;        // the tar entry's name, verbatim
  std::string type;         // "file", "dir", "symlink", "hardlink", "char", "block", "fifo"; "" for whiteouts
  std::string link_target;  // symlinks and hardlinks
};

struct WhichResult {
  std::string path;      // the query, cleaned lexically
  std::string resolved;  // its parents' symlinks expanded in the merged tree (the last component is not followed)
  std::vector<PathTouch> touches;  // bottom layer first, tar order within a layer
  // The layer whose entry the merged tree serves at `resolved`, nullopt when
  // the path is not in the merged tree.
  std::optional<uint32_t> winner;
};

// The layers of `record` that touched `path` or one of its parents. Entry
// names are mapped to image paths through the symlinks that existed when the
// entry was applied, as the merge did: an entry `lib/x` under a symlink
// `lib -> usr/lib` acted on `usr/lib/x`; an entry `bin/sh` of a layer below
// the one that turned the directory `bin` into a link acted on `bin/sh`; an
// entry through a link that a later layer replaced by a directory acted
// where the link pointed. (Not followed: a link whose name is gone from the
// merged tree, since nothing of that tree lies below it.)
// The root directory's own entries are not listed (every layer has one).
// REQUIRES: the store lock, held shared. Errors name the image and the layer.
Result<WhichResult> WhichPath(Store& store, const ImageRecord& record, std::string_view path,
                              const Limits& limits = Limits());

// The merged tree after the layers 1..upto alone (0 < upto <= layers),
// built now from the layer indexes (the cached full tree when upto is all of
// them). Regular files' bytes are read as for the full image: its nodes name
// their layers the same way. REQUIRES: the store lock, held shared.
Result<ImageTree> TreeUpTo(Store& store, const ImageRecord& record, uint32_t upto, const Limits& limits = Limits());

// The entries of layer `layer` (0 = bottom) of record exactly as its tar has
// them, whiteout files included, in tar order, read from its stored index
// (rebuilt from the blob when missing or corrupt). Holds them all: one
// layer's metadata. REQUIRES: the store lock, held shared.
Result<std::vector<TarEntry>> LayerEntries(Store& store, const ImageRecord& record, uint32_t layer,
                                           const Limits& limits = Limits());

// The layer `arg` names, as a 0-based index: "N" counts from 1 at the base
// (decimal digits alone are always N), anything else is a digest prefix,
// with or without "sha256:", of at least 4 hex digits, that must match
// exactly one of the image's layers ("sha256:1234" for an all-digit prefix).
// InvalidArgument naming the argument and the image's layer count, or the
// layers an ambiguous prefix matches.
Result<uint32_t> ResolveLayerArg(const ImageRecord& record, std::string_view arg);

// Layer `layer` (0 = bottom) of record alone, as `tar -x` of its blob would
// unpack it (MergeMode::kLiteral): whiteouts are the `.wh.*` files the tar
// holds, parents the tar omits are directories. Its nodes name the layer by
// its index in the full image, so the image's content object reads them.
// REQUIRES: the store lock, held shared.
Result<ImageTree> LayerTree(Store& store, const ImageRecord& record, uint32_t layer, const Limits& limits = Limits());

// The user.lazyroot.layer value of each layer: "<N> sha256:<digest>", N from 1.
std::vector<std::string> LayerXattrValues(const ImageRecord& record);

// The image config's `created` as Unix seconds; 0 when absent or unparsable.
// REQUIRES: the store lock, held shared.
int64_t ImageCreated(Store& store, const ImageRecord& record);

// `mount --layers`: one tree with merged/ (the full tree `merged`),
// layers/<N>-<12 hex of the digest>/ (LayerTree) and upto/<N>/ (the merge of
// layers 1..N, all of them built in one pass over the layers). The synthetic
// directories are 0555 root:root with mtime `mtime`. The composed tree holds
// the sum of its parts: over limits.image_entries nodes in all is
// LimitExceeded naming that budget. REQUIRES: the store lock, held shared.
Result<ComposedTree> LayersViewTree(Store& store, const ImageRecord& record, std::shared_ptr<const ImageTree> merged,
                                    int64_t mtime, const Limits& limits = Limits());

}  // namespace lazyroot
