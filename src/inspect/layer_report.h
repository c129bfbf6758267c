// LayerReport: what each layer of a pulled image contributes, computed from
// the stored layer indexes alone (no blob is decompressed): entries, files
// added / modified / deleted / made opaque, the regular-file bytes it ships
// and how many of them later layers shadow or delete, and the config
// history's created_by; then the image's wasted bytes and efficiency. What
// `lazyroot layers` prints. Pure apart from reading the store; one thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "index/limits.h"
#include "index/status.h"
#include "src/store/store.h"

namespace lazyroot {

// One entry of the image config's history (docker/OCI "history" array).
struct HistoryEntry {
  std::string created, created_by, author, comment;
  bool empty_layer = false;  // no layer belongs to it
};

// The config's history; absent or null is empty. Wrong JSON types are
// kCorruption naming the field ("config.history[2].created_by: want a string").
Result<std::vector<HistoryEntry>> ParseConfigHistory(std::string_view config_body);

// The history entry each layer came from, as docker history and dive match
// them: the entries without empty_layer, in order, one per layer from the
// base. -1 where the history has too few (a layer with no history).
std::vector<int> MatchHistoryToLayers(const std::vector<HistoryEntry>& history, size_t layer_count);

struct LayerStats {
  uint32_t index = 0;  // 1 = base
  std::string digest, diff_id, media_type, created_by;
  uint64_t compressed_size = 0, uncompressed_size = 0;
  uint64_t entries = 0;         // tar entries in the layer, whiteouts included
  uint64_t added = 0;           // non-directory entries at a path the tree of the layers below did not hold
  uint64_t modified = 0;        // non-directory entries at a path the tree of the layers below held
  uint64_t deleted = 0;         // ".wh.NAME" whiteouts
  uint64_t opaque = 0;          // ".wh..wh..opq" opaque markers
  uint64_t bytes_added = 0;     // logical sizes of its regular files (hardlinks add none)
  uint64_t bytes_shadowed = 0;  // of bytes_added: what later layers (or itself) replace or white out
};

struct ImageLayerReport {
  std::vector<LayerStats> layers;
  uint64_t bytes_shipped = 0;  // sum of bytes_added
  uint64_t bytes_merged = 0;   // of those, what reaches the merged tree
  uint64_t bytes_wasted = 0;   // bytes_shipped - bytes_merged
  double efficiency = 1.0;     // bytes_merged / bytes_shipped (1 when nothing is shipped)
};

// The report of a pulled image. Entries count at the image paths the merge
// applied them at (src/inspect/layer_paths.h: cleaned, symlinked parents resolved as
// they stood), so a file written through `lib -> usr/lib` modifies
// usr/lib/x and a whiteout through the link deletes it. A whiteout or opaque marker removes only what lower
// layers put there (the OCI rule); a hardlink shares its target's bytes,
// which stay in the merged tree while any of the names survives. Memory: one
// path set for the image; more paths than limits.image_entries is
// kLimitExceeded. Layer indexes missing or corrupt are rebuilt from their
// blobs (as mount does).
// REQUIRES: the store lock, held shared (src/store/STORE.md).
Result<ImageLayerReport> ComputeLayerReport(Store& store, const ImageRecord& record, const Limits& limits = Limits());

}  // namespace lazyroot
