#include "index/layer_indexer.h"

#include <algorithm>
#include <vector>

namespace lazyroot {

LayerIndexer::LayerIndexer(std::string blob_digest, Compression compression, std::string expected_diff_id,
                           uint64_t span_bytes, const Limits& limits, InflateEngine gzip_engine,
                           uint8_t fine_policy, uint64_t blob_size)
    : blob_digest_(std::move(blob_digest)), expected_diff_id_(std::move(expected_diff_id)) {
  const std::string name = "layer " + blob_digest_;
  const bool fine = fine_policy >= kFinePolicyV1 && fine_policy <= kMaxFinePolicy;
  fine_ranges_.policy = fine_policy >= kFinePolicyV3 && blob_size == 0 ? kFinePolicyV2 : fine_policy;
  fine_ranges_.blob_size = blob_size;
  decoder_ = StreamDecoder::Create(compression, name, span_bytes, gzip_engine, fine ? &fine_ranges_ : nullptr);
  TarReader::Limits tar_limits;
  tar_limits.budget = limits;
  tar_ = std::make_unique<TarReader>(
      name,
      [this, name, fine](const TarEntry& e) {
        if (e.type == EntryType::kRegular) {
          if (fine && e.stored_size >= kFineMinFileBytes) {
            fine_ranges_.Add(e.data_offset, e.data_offset + e.stored_size);
          }
          // The data follows the header, in this Feed or later ones.
          StreamHasher::File f;
          f.start = e.data_offset;
          f.end = e.data_offset + e.stored_size;
          if (!e.sparse.empty()) f.prefix = SparseContentPrefix(e.size, e.sparse);
          hasher_.AddFile(std::move(f));
        }
        Status st = writer_.Add(e);
        return st.ok() ? st : st.WithContext(name);
      },
      tar_limits);
}

Status LayerIndexer::Consume(std::span<const uint8_t> compressed) {
  blob_size_ += compressed.size();
  return decoder_->Feed(compressed, [this](std::span<const uint8_t> out) { return OnOutput(out); });
}

Status LayerIndexer::OnOutput(std::span<const uint8_t> out) {
  // The parser first: it announces the files whose headers are in `out`.
  LAZYROOT_RETURN_IF_ERROR(tar_->Feed(out));
  hasher_.Update(out);
  return Status::Ok();
}

Result<std::string> LayerIndexer::FinishFile(ChunkDigests chunks) {
  LAZYROOT_RETURN_IF_ERROR(decoder_->Finish([this](std::span<const uint8_t> out) { return OnOutput(out); }));
  LAZYROOT_RETURN_IF_ERROR(tar_->Finish());
  StreamHasher::Digests digests = hasher_.Finish();
  LayerIndex header;
  header.blob_digest = blob_digest_;
  header.diff_id = std::move(digests.diff_id);
  if (!expected_diff_id_.empty() && header.diff_id != expected_diff_id_) {
    return Status::Corruption("layer " + blob_digest_ + ": DiffID mismatch: the config says " + expected_diff_id_ +
                              ", the uncompressed layer hashes to " + header.diff_id);
  }
  if (fine_ranges_.blob_size != 0 && fine_ranges_.blob_size != blob_size_) {
    // The points were placed for the declared size; the pull has refused such a blob already.
    return Status::Corruption("layer " + blob_digest_ + ": " + std::to_string(blob_size_) + " bytes, " +
                              std::to_string(fine_ranges_.blob_size) + " declared");
  }
  header.blob_size = blob_size_;
  header.uncompressed_size = decoder_->total_out();
  header.checkpoints = decoder_->TakeCheckpoints();
  if (chunks.blob_size != blob_size_) {  // a caller's slip, not the blob's
    return Status::InvalidArgument("layer " + blob_digest_ + ": the chunk table covers " + std::to_string(chunks.blob_size) +
                            " bytes, the indexer saw " + std::to_string(blob_size_));
  }
  header.chunks = std::move(chunks);
  // The tar reader's Finish refused an archive ending inside a file's data.
  if (!digests.all_files_complete) return Status::Corruption("layer " + blob_digest_ + ": ends inside a file's data");
  header.file_digests = std::move(digests.file_digests);
  return writer_.Finish(header);
}

Result<LayerIndex> LayerIndexer::Finish(ChunkDigests chunks) {
  LAZYROOT_ASSIGN_OR_RETURN(std::string file, FinishFile(std::move(chunks)));
  return LayerIndex::Parse(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(file.data()), file.size()),
                           "of layer " + blob_digest_ + " (just built)", blob_digest_);
}

namespace {

// Feeds the whole blob to the indexer while hashing it: the chunk digests of
// a rebuilt index must describe the bytes the registry's digest names, not
// whatever the store holds now.
Status FeedBlob(const ByteSource& blob, const std::string& blob_digest, LayerIndexer* indexer, uint32_t chunk_bytes,
                ChunkDigests* chunks) {
  ChunkHasher hash(chunk_bytes);
  // An indexing error (say, gzip garbage) is held until the digest is known:
  // for changed bytes "hashes to" is the true diagnosis, as in the pull.
  Status consumed = Status::Ok();
  std::vector<uint8_t> buf(1 << 20);
  for (uint64_t off = 0; off < blob.Size();) {
    size_t n = 0;
    LAZYROOT_RETURN_IF_ERROR(blob.ReadAt(off, buf, &n));
    if (n == 0) break;
    const std::span<const uint8_t> bytes(buf.data(), n);
    hash.Update(bytes);
    if (consumed.ok()) consumed = indexer->Consume(bytes);
    off += n;
  }
  *chunks = hash.Finish();
  const std::string& got = hash.BlobDigest();
  if (got != blob_digest) {
    return Status::Corruption("blob " + blob_digest + ": the stored bytes hash to " + got +
                              " (changed on disk); cannot index it");
  }
  return consumed;
}

}  // namespace

Result<std::string> IndexBlobFile(const ByteSource& blob, const std::string& blob_digest, Compression compression,
                                  const std::string& expected_diff_id, const Limits& limits, InflateEngine gzip_engine,
                                  uint8_t fine_policy, uint32_t chunk_bytes) {
  LayerIndexer indexer(blob_digest, compression, expected_diff_id, kDefaultSpanBytes, limits, gzip_engine,
                       fine_policy, blob.Size());
  ChunkDigests chunks;
  LAZYROOT_RETURN_IF_ERROR(FeedBlob(blob, blob_digest, &indexer, chunk_bytes, &chunks));
  return indexer.FinishFile(std::move(chunks));
}

Result<LayerIndex> IndexBlob(const ByteSource& blob, const std::string& blob_digest, Compression compression,
                             const std::string& expected_diff_id, const Limits& limits) {
  LayerIndexer indexer(blob_digest, compression, expected_diff_id, kDefaultSpanBytes, limits, InflateEngine::kIsal,
                       kDefaultFinePolicy, blob.Size());
  ChunkDigests chunks;
  LAZYROOT_RETURN_IF_ERROR(FeedBlob(blob, blob_digest, &indexer, kDefaultChunkBytes, &chunks));
  return indexer.Finish(std::move(chunks));
}

}  // namespace lazyroot
