// The layer indexer in the pull's consumer slot, and the store side of layer
// indexes: an index is staged in tmp/<hex>.index once its layer's digest and
// DiffID are verified, and moves into index/sha256/<hex> together with the
// blob when the pull publishes. Indexes missing or failing validation are
// rebuilt from the stored blob.
#pragma once

#include <memory>
#include <string>

#include "index/layer_index.h"
#include "index/limits.h"
#include "src/layer_consumer.h"
#include "src/store.h"

namespace lazyroot {

// A factory for Pull's consumer_factory that indexes every layer under
// `limits`: the tar reader enforces the kernel limits and the per-layer
// budgets while the layer streams in; the image-wide budgets are checked as
// the layers stream in, over the layers this factory indexes (layers the
// store already held are added where the image's tree is merged, in
// OpenImage). Errors name the layer, the entry and the limit.
LayerConsumerFactory MakeIndexingConsumerFactory(Store& store, const Limits& limits = Limits());

// Where a verified layer's index waits until the pull publishes it.
std::string StagedIndexPath(const Store& store, const std::string& blob_digest);

// Moves a staged index into index/sha256/ (no-op when none is staged).
Status CommitStagedIndex(Store& store, const std::string& blob_digest);

// Loads the index of a stored layer blob; if it is missing, corrupt or
// foreign, rebuilds it from the blob (checking diff_id) and stores it.
// *rebuilt tells which happened (may be null). A rebuild is under `limits`.
Result<LayerIndex> LoadOrBuildLayerIndex(Store& store, const std::string& blob_digest, const std::string& diff_id,
                                         bool* rebuilt, const Limits& limits = Limits());

// Only the checkpoint table of a stored layer's index (what serving a tree
// that is already merged needs), falling back to LoadOrBuildLayerIndex when
// the index is missing, corrupt or not for diff_id.
Result<CheckpointTable> LoadLayerCheckpoints(Store& store, const std::string& blob_digest, const std::string& diff_id,
                                             const Limits& limits = Limits());

}  // namespace lazyroot
