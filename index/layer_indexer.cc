#include "index/layer_indexer.h"

#include <vector>

namespace lazyroot {

LayerIndexer::LayerIndexer(std::string blob_digest, Compression compression, std::string expected_diff_id,
                           uint64_t span_bytes)
    : blob_digest_(std::move(blob_digest)), expected_diff_id_(std::move(expected_diff_id)) {
  const std::string name = "layer " + blob_digest_;
  decoder_ = StreamDecoder::Create(compression, name, span_bytes);
  tar_ = std::make_unique<TarReader>(name, [this](const TarEntry& e) {
    entries_.push_back(e);
    return Status::Ok();
  });
}

Status LayerIndexer::Consume(std::span<const uint8_t> compressed) {
  blob_size_ += compressed.size();
  return decoder_->Feed(compressed, [this](std::span<const uint8_t> out) {
    diff_hash_.Update(out);
    return tar_->Feed(out);
  });
}

Result<LayerIndex> LayerIndexer::Finish() {
  LAZYROOT_RETURN_IF_ERROR(decoder_->Finish());
  LAZYROOT_RETURN_IF_ERROR(tar_->Finish());
  LayerIndex idx;
  idx.blob_digest = blob_digest_;
  idx.diff_id = "sha256:" + diff_hash_.FinishHex();
  if (!expected_diff_id_.empty() && idx.diff_id != expected_diff_id_) {
    return Status::Corruption("layer " + blob_digest_ + ": DiffID mismatch: the config says " + expected_diff_id_ +
                              ", the uncompressed layer hashes to " + idx.diff_id);
  }
  idx.blob_size = blob_size_;
  idx.uncompressed_size = decoder_->total_out();
  idx.entries = std::move(entries_);
  idx.checkpoints = decoder_->TakeCheckpoints();
  return idx;
}

Result<LayerIndex> IndexBlob(const ByteSource& blob, const std::string& blob_digest, Compression compression,
                             const std::string& expected_diff_id) {
  LayerIndexer indexer(blob_digest, compression, expected_diff_id);
  std::vector<uint8_t> buf(1 << 20);
  for (uint64_t off = 0; off < blob.Size();) {
    size_t n = 0;
    LAZYROOT_RETURN_IF_ERROR(blob.ReadAt(off, buf, &n));
    if (n == 0) break;
    LAZYROOT_RETURN_IF_ERROR(indexer.Consume(std::span<const uint8_t>(buf.data(), n)));
    off += n;
  }
  return indexer.Finish();
}

}  // namespace lazyroot
