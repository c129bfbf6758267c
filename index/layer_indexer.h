// LayerIndexer: builds a layer's index from its blob's compressed bytes as
// they stream in (the pull's single pass): decompress -> DiffID hash + tar
// parser, recording checkpoints
// on the way. Entries are serialised as they
// arrive (LayerIndexWriter), never held as TarEntry values; the DiffID and
// each regular file's digest are hashed by a StreamHasher, beside the inflate
// and the tar parser on a second thread for a long layer; the tar
// parser refuses an entry over a kernel limit or a layer over its budget
// (index/limits.h) as soon as it is seen. Finish() checks the DiffID.
// One per layer; not thread-safe.
#pragma once

#include <deque>
#include <memory>
#include <span>
#include <string>

#include "index/compression.h"
#include "index/layer_decoder.h"
#include "index/layer_index.h"
#include "index/limits.h"
#include "index/sha256.h"
#include "index/stream_hasher.h"
#include "index/tar_reader.h"

namespace lazyroot {

class LayerIndexer {
 public:
  // blob_digest names the layer in errors; expected_diff_id "" skips the check.
  // gzip_engine: the pass that places gzip checkpoints (StreamDecoder::Create).
  // fine_policy: kFinePolicyV1 places fine points inside the data of regular
  // files of kFineMinFileBytes or more and cuts windows (fine_points.h);
  // kFinePolicyV2 also mid-block points (ISA-L's pass); kFinePolicyV3 (the
  // default) also records where stored blocks start; 0 as
  // the indexes made before (fsck rebuilds such an index that way).
  // blob_size: the blob's size, when known before its bytes (the manifest's
  // descriptor, a stored file). Policy 3 shares the mid-block points' budget
  // out of the whole blob, so it needs it: without it (0) the indexer uses
  // policy 2. With it, a blob of another size is refused at the end.
  LayerIndexer(std::string blob_digest, Compression compression, std::string expected_diff_id,
               uint64_t span_bytes = kDefaultSpanBytes, const Limits& limits = Limits(),
               InflateEngine gzip_engine = InflateEngine::kIsal, uint8_t fine_policy = kDefaultFinePolicy,
               uint64_t blob_size = 0);

  // The next compressed bytes, in order. kLimitExceeded names the layer, the
  // entry's offset and path, and the limit.
  Status Consume(std::span<const uint8_t> compressed);
  // End of the blob: finishes decoding and parsing, verifies the DiffID
  // (kCorruption "DiffID mismatch" naming both digests) and returns the
  // index file's bytes (LayerIndex::Serialize's format). chunks: the blob's
  // chunk table, from the ChunkHasher that verified the blob's digest (the
  // caller's: it hashes the blob whole anyway). Call once.
  Result<std::string> FinishFile(ChunkDigests chunks);
  // FinishFile, decoded: for callers that merge the entries next.
  Result<LayerIndex> Finish(ChunkDigests chunks);

  // What the layer's entries count against the budgets (valid after Finish).
  uint64_t entries() const { return tar_->entries(); }
  uint64_t metadata_bytes() const { return tar_->metadata_bytes(); }

 private:
  // The decoder's output: tar parser, then the hashes.
  Status OnOutput(std::span<const uint8_t> out);

  std::string blob_digest_, expected_diff_id_;
  FineRanges fine_ranges_;  // large files' data, announced by the tar parser ahead of the decoder
  std::unique_ptr<StreamDecoder> decoder_;
  StreamHasher hasher_;
  LayerIndexWriter writer_;
  std::unique_ptr<TarReader> tar_;
  uint64_t blob_size_ = 0;
};

// Builds the index of a blob already on disk (imported without an index, or
// pulled by an older lazyroot, or an index that failed validation), under
// the same limits as a pull. The blob is hashed on the way: unless it hashes
// to blob_digest (a "sha256:<hex>" digest) the result is kCorruption naming
// the blob, so chunk digests are only ever recorded for bytes the registry's
// digest vouched for. IndexBlobFile returns the file's bytes.
// gzip_engine, fine_policy: as LayerIndexer's; chunk_bytes: the chunk
// digests' chunk size (fsck rebuilds with the pass, policy and chunk size
// that made the stored index). REQUIRES: chunk_bytes a power of two in
// [kMinChunkBytes, kMaxChunkBytes].
Result<std::string> IndexBlobFile(const ByteSource& blob, const std::string& blob_digest, Compression compression,
                                  const std::string& expected_diff_id, const Limits& limits = Limits(),
                                  InflateEngine gzip_engine = InflateEngine::kIsal,
                                  uint8_t fine_policy = kDefaultFinePolicy, uint32_t chunk_bytes = kDefaultChunkBytes);
Result<LayerIndex> IndexBlob(const ByteSource& blob, const std::string& blob_digest, Compression compression,
                             const std::string& expected_diff_id, const Limits& limits = Limits());

}  // namespace lazyroot
