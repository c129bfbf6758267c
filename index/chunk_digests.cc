#include "index/chunk_digests.h"

#include <algorithm>

namespace lazyroot {

void ChunkHasher::Update(std::span<const uint8_t> bytes) {
  table_.blob_size += bytes.size();
  while (!bytes.empty()) {
    const size_t take = static_cast<size_t>(std::min<uint64_t>(bytes.size(), table_.chunk_size - in_chunk_));
    hash_.UpdateBoth(bytes.first(take));
    bytes = bytes.subspan(take);
    in_chunk_ += take;
    if (in_chunk_ == table_.chunk_size) {
      table_.digests.push_back(hash_.Finish(kChunkLane));
      in_chunk_ = 0;
    }
  }
}

ChunkDigests ChunkHasher::Finish() {
  if (in_chunk_ > 0) table_.digests.push_back(hash_.Finish(kChunkLane));
  in_chunk_ = 0;
  blob_digest_ = "sha256:" + ToHex(hash_.Finish(kBlobLane));
  return std::move(table_);
}

ChunkDigests ChunkDigestsOf(std::span<const uint8_t> blob, uint32_t chunk_size) {
  ChunkHasher h(chunk_size);
  h.Update(blob);
  return h.Finish();
}

}  // namespace lazyroot
