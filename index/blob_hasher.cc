#include "index/blob_hasher.h"

#include <utility>

namespace lazyroot {

BlobHasher::BlobHasher(uint64_t threshold, std::function<bool()> may_start)
    : batches_(&worker_, kBatchBytes, kMaxQueued, [this](std::span<const uint8_t> b) { hasher_.Update(b); }),
      worker_(kMaxQueued, SerialWorker::StartRule{threshold, std::move(may_start)}) {}

void BlobHasher::Update(std::span<const uint8_t> bytes) {
  if (worker_.Offload(bytes.size())) {
    batches_.Add(bytes);
  } else {
    hasher_.Update(bytes);
  }
}

BlobHasher::Digests BlobHasher::Finish() {
  batches_.Flush();
  worker_.Join();  // rethrows what the hashing threw there
  Digests d;
  d.chunks = hasher_.Finish();
  d.digest = hasher_.BlobDigest();
  return d;
}

}  // namespace lazyroot
