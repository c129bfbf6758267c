// The layer indexer in the pull's consumer slot, and the store side of layer
// indexes: an index is staged in tmp/<hex>.index once its layer's digest and
// DiffID are verified, and moves into index/sha256/<hex> together with the
// blob when the pull publishes. Indexes missing or failing validation are
// rebuilt from the stored blob.
#pragma once

#include <atomic>

#include <functional>
#include <memory>
#include <string>

#include "index/layer_index.h"
#include "index/limits.h"
#include "src/pull/layer_consumer.h"
#include "src/store/store.h"

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

// The stored layer index file at path, read only if its header describes
// exactly its length (ReadSelfSizedFile): a garbage or sparse file there is
// refused after one header read, and the caller rebuilds it.
Result<std::string> ReadLayerIndexFile(const std::string& path);

// The index file of a stored layer blob, built from the blob (checking
// diff_id, under `limits`) without storing it: what a rebuild writes, and
// what fsck compares a stored index with (made with the gzip pass, fine
// point policy and chunk size recorded in the stored index when that one is
// sound, so that the two can be equal). Once *cancel (if given) is set,
// reads of the blob fail (kAborted) and so does the build.
Result<std::string> BuildLayerIndexFile(const Store& store, const std::string& blob_digest, const std::string& diff_id,
                                        const Limits& limits = Limits(), const std::atomic<bool>* cancel = nullptr);

// Loads the index of a stored layer blob; if it is missing, corrupt, foreign
// or of an older format version, rebuilds it from the blob (checking the
// blob's digest and diff_id) and stores it.
// *rebuilt tells which happened (may be null). A rebuild is under `limits`.
Result<LayerIndex> LoadOrBuildLayerIndex(Store& store, const std::string& blob_digest, const std::string& diff_id,
                                         bool* rebuilt, const Limits& limits = Limits());

// LoadOrBuildLayerIndex without keeping the entries: streams them to fn
// (LayerIndex::ForEachEntry; memory of about one inflate chunk, not one
// TarEntry per entry) and returns the checkpoint table. A missing, corrupt or
// foreign index is rebuilt from the blob and the rebuilt bytes are streamed.
// If the index proves corrupt only after fn has seen some of its entries, it
// is rebuilt, *restart is set and the error returned: the caller must drop
// what it made from them and start over (the stored index is sound now). An
// error from fn is returned as is. *chunks (may be null) receives the blob's
// chunk digests.
Result<CheckpointTable> ForEachStoredLayerEntry(Store& store, const std::string& blob_digest,
                                                const std::string& diff_id, const Limits& limits,
                                                const std::function<Status(TarEntry&)>& fn, bool* restart,
                                                ChunkDigests* chunks = nullptr);

// Only the checkpoint table of a stored layer's index (what serving a tree
// that is already merged needs), falling back to LoadOrBuildLayerIndex when
// the index is missing, corrupt or not for diff_id. *chunks (may be null)
// receives the blob's chunk digests (what VerifiedByteSource checks reads by).
Result<CheckpointTable> LoadLayerCheckpoints(Store& store, const std::string& blob_digest, const std::string& diff_id,
                                             const Limits& limits = Limits(), ChunkDigests* chunks = nullptr);

// The header of a stored layer's index (LayerIndex::ReadSummary) if the file
// is there, its header sound and made for diff_id (when non-empty); else the
// error, and the caller loads (or rebuilds) the index whole.
Result<LayerIndex> ReadLayerIndexSummary(const Store& store, const std::string& blob_digest,
                                         const std::string& diff_id);

// LoadLayerCheckpoints for a caller holding no store lock (a mount's daemon
// loading a layer at its first read; the image's in-use marker keeps the
// blob): an index that is missing, damaged or not for diff_id is built from
// the blob in memory and not stored (fsck --repair stores it); a build
// given up once *cancel (if given) is set (kAborted). blob_size: the stored
// blob's, as the index read at open said; an index now made for another size
// is treated as damaged before its sections are read.
Result<CheckpointTable> LoadLayerCheckpointsUnlocked(const Store& store, const std::string& blob_digest,
                                                     const std::string& diff_id, const Limits& limits,
                                                     uint64_t blob_size, ChunkDigests* chunks,
                                                     const std::atomic<bool>* cancel = nullptr);

// Only the file digests of a stored layer's index (ascending data offset; what
// `diff` compares contents by), with LoadLayerCheckpoints' fallback: an index
// missing, corrupt, of an older format version or not for diff_id is rebuilt
// from the blob first.
Result<std::vector<FileDigest>> LoadLayerFileDigests(Store& store, const std::string& blob_digest,
                                                     const std::string& diff_id, const Limits& limits = Limits());

}  // namespace lazyroot
