// LayerIndexer: builds a LayerIndex from a layer blob's compressed bytes as
// they stream in (the pull's single pass): decompress -> DiffID hash + tar
// parser, recording checkpoints on the way. Finish() checks the DiffID.
// One per layer; not thread-safe.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "index/compression.h"
#include "index/layer_decoder.h"
#include "index/layer_index.h"
#include "index/sha256.h"
#include "index/tar_reader.h"

namespace lazyroot {

class LayerIndexer {
 public:
  // blob_digest names the layer in errors; expected_diff_id "" skips the check.
  LayerIndexer(std::string blob_digest, Compression compression, std::string expected_diff_id,
               uint64_t span_bytes = kDefaultSpanBytes);

  // The next compressed bytes, in order.
  Status Consume(std::span<const uint8_t> compressed);
  // End of the blob: finishes decoding and parsing, verifies the DiffID
  // (kCorruption "DiffID mismatch" naming both digests) and returns the index.
  Result<LayerIndex> Finish();

 private:
  std::string blob_digest_, expected_diff_id_;
  std::unique_ptr<StreamDecoder> decoder_;
  Sha256 diff_hash_;
  std::vector<TarEntry> entries_;
  std::unique_ptr<TarReader> tar_;
  uint64_t blob_size_ = 0;
};

// Builds the index of a blob already on disk (imported without an index, or
// pulled by an older lazyroot, or an index that failed validation).
Result<LayerIndex> IndexBlob(const ByteSource& blob, const std::string& blob_digest, Compression compression,
                             const std::string& expected_diff_id);

}  // namespace lazyroot
