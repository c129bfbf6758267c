// ImageContent and ReadFileData: how the bytes of a regular file of an
// ImageTree are read back from the compressed layer blobs. ImageContent holds
// one ByteSource and one immutable CheckpointTable per layer and is
// thread-safe; each reading thread creates its own RandomReader (a warm
// decoder) per layer with NewReader. ReadFileData maps a file offset through
// the node's sparse map (holes read as zeros) to the layer's stream.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "index/byte_source.h"
#include "index/checkpoint.h"
#include "index/image_tree.h"
#include "index/layer_decoder.h"
#include "index/status.h"

namespace lazyroot {

struct LayerBlob {
  std::string digest;
  std::unique_ptr<ByteSource> blob;
  std::shared_ptr<const CheckpointTable> checkpoints;
};

class ImageContent {
 public:
  explicit ImageContent(std::vector<LayerBlob> layers) : layers_(std::move(layers)) {}
  size_t layer_count() const { return layers_.size(); }
  const LayerBlob& layer(uint32_t i) const { return layers_.at(i); }
  // A fresh decoder for layer i. REQUIRES: i < layer_count().
  std::unique_ptr<RandomReader> NewReader(uint32_t i) const;

 private:
  std::vector<LayerBlob> layers_;
};

// Reads up to out.size() bytes of regular file `id` at offset into out; *n is
// smaller only at end of file. reader must be a reader of the node's layer.
// Errors name the file's layer and offset.
Status ReadFileData(const ImageTree& tree, NodeId id, RandomReader& reader, uint64_t offset, std::span<uint8_t> out,
                    size_t* n);

}  // namespace lazyroot
