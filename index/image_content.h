// ImageContent and ReadFileData: how the bytes of a regular file of an
// ImageTree are read back from the compressed layer blobs. ImageContent holds
// one ByteSource and one immutable CheckpointTable per layer and is
// thread-safe; each reading thread creates its own RandomReader (a warm
// decoder) per layer with NewReader. ReadFileData maps a file offset through
// the node's sparse map (holes read as zeros) to the layer's stream.
//
// A layer may be opened lazily (a mount's): its table and chunk digests,
// which grow with the blob (a 768 MiB layer's are 3.6 MB), are loaded at its
// first use instead of before the mount is ready.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
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
  uint64_t blob_size = 0;  // as the pull recorded it
};

// Loads a lazily opened layer: its verified blob and its checkpoint table
// (digest need not be set). Runs at most once per layer to an end, on the
// thread of the first use. cancel (may be null): once set, the loader may
// give up (kAborted) instead of finishing; a mount being stopped must not
// wait for a whole blob to be indexed again in memory.
using LayerLoader = std::function<Result<LayerBlob>(const std::atomic<bool>* cancel)>;

class ImageContent {
 public:
  // Every layer loaded.
  explicit ImageContent(std::vector<LayerBlob> layers);
  // Layer i is loaded by loaders[i] if that is set (layers[i] then holds only
  // its digest), else it is layers[i]. REQUIRES: loaders.size() == layers.size().
  ImageContent(std::vector<LayerBlob> layers, std::vector<LayerLoader> loaders);
  ~ImageContent();
  // Movable before any Load (tests build it and hand it over); not copyable.
  ImageContent(ImageContent&&) noexcept;
  ImageContent& operator=(ImageContent&&) noexcept;

  size_t layer_count() const { return layers_.size(); }
  // The layer's digest; its blob and checkpoints only once Load(i) returned Ok
  // (null before). REQUIRES: i < layer_count().
  const LayerBlob& layer(uint32_t i) const { return layers_.at(i); }
  // Loads layer i if it was opened lazily: once; concurrent callers wait for
  // that load. A failure is kept and returned by every later call (a load may
  // rebuild the layer's index from the blob: it is not tried per read).
  // Ok at once for a layer that is loaded. A load that fails once cancel is
  // set is not kept: the next call tries again.
  Status Load(uint32_t i, const std::atomic<bool>* cancel = nullptr) const;
  // A fresh decoder for layer i, loading the layer first; if that fails, a
  // reader whose every Read returns the failure. REQUIRES: i < layer_count().
  std::unique_ptr<RandomReader> NewReader(uint32_t i) const;

 private:
  struct Lazy {
    LayerLoader load;
    std::mutex mu;
    std::atomic<bool> done{false};  // set (release) once layers_[i] or status is final
    std::optional<Status> status;   // the load's failure
  };
  // Mutable: a lazy load fills its layer in once, under its Lazy's mutex;
  // readers see it only after done (acquire).
  mutable std::vector<LayerBlob> layers_;
  std::vector<std::unique_ptr<Lazy>> lazy_;  // null for a layer given loaded
};

// Reads up to out.size() bytes of regular file `id` at offset into out; *n is
// smaller only at end of file. reader must be a reader of the node's layer.
// Errors name the file's layer and offset.
Status ReadFileData(const ImageTree& tree, NodeId id, RandomReader& reader, uint64_t offset, std::span<uint8_t> out,
                    size_t* n);

}  // namespace lazyroot
