// LayerConsumer: the slot in the pull's single pass over a layer. Every
// compressed byte that is hashed and written to the temp file is also handed
// to the consumer (the layer indexer plugs in here), so a layer is never read
// twice. Resumed downloads replay the bytes already on disk first.
// One consumer per layer download; called from one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "index/chunk_digests.h"
#include "index/status.h"
#include "src/image/manifest.h"

namespace lazyroot {

class LayerConsumer {
 public:
  virtual ~LayerConsumer() = default;
  // The next compressed bytes, in order from offset 0.
  virtual Status Consume(std::span<const uint8_t> bytes) = 0;
  // The whole blob was consumed and its digest verified; chunks is its chunk
  // table (the pull hashes the chunks in the pass that verifies the digest).
  // The consumer may now verify (DiffID) and publish what it built.
  virtual Status Finish(ChunkDigests chunks) = 0;
};

// Creates the consumer for layer `position` of the manifest; nullptr means "no
// consumer". diff_id is the config's rootfs.diff_ids entry for the layer.
using LayerConsumerFactory =
    std::function<Result<std::unique_ptr<LayerConsumer>>(const Layer& layer, size_t position, const std::string& diff_id)>;

}  // namespace lazyroot
