#include "index/image_content.h"

#include <algorithm>
#include <cstring>

#include "index/exception_status.h"

namespace lazyroot {

namespace {

// What NewReader hands out for a layer that could not be loaded.
class FailedReader : public RandomReader {
 public:
  explicit FailedReader(Status status) : status_(std::move(status)) {}
  Status Read(uint64_t, std::span<uint8_t>, size_t* n) override {
    *n = 0;
    return status_;
  }
  uint64_t reprimes() const override { return 0; }

 private:
  Status status_;
};

}  // namespace

ImageContent::ImageContent(std::vector<LayerBlob> layers) : layers_(std::move(layers)), lazy_(layers_.size()) {
  for (LayerBlob& l : layers_) {
    if (l.blob_size == 0 && l.blob) l.blob_size = l.blob->Size();
  }
}

ImageContent::ImageContent(std::vector<LayerBlob> layers, std::vector<LayerLoader> loaders)
    : layers_(std::move(layers)), lazy_(layers_.size()) {
  for (size_t i = 0; i < loaders.size() && i < lazy_.size(); ++i) {
    if (!loaders[i]) continue;
    lazy_[i] = std::make_unique<Lazy>();
    lazy_[i]->load = std::move(loaders[i]);
  }
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (!lazy_[i] && layers_[i].blob_size == 0 && layers_[i].blob) layers_[i].blob_size = layers_[i].blob->Size();
  }
}

ImageContent::~ImageContent() = default;
ImageContent::ImageContent(ImageContent&&) noexcept = default;
ImageContent& ImageContent::operator=(ImageContent&&) noexcept = default;

Status ImageContent::Load(uint32_t i, const std::atomic<bool>* cancel) const {
  Lazy* lazy = lazy_.at(i).get();
  if (lazy == nullptr) return Status::Ok();
  if (!lazy->done.load(std::memory_order_acquire)) {
    std::lock_guard lock(lazy->mu);
    if (!lazy->done.load(std::memory_order_relaxed)) {
      // No exception may leave a load half done: it fails the layer.
      std::optional<Result<LayerBlob>> got;
      try {
        got.emplace(lazy->load(cancel));
      } catch (...) {
        got.emplace(CurrentExceptionStatus("layer " + layers_[i].digest + ": loading its index"));
      }
      // Given up because asked to (the mount stops): not the layer's failure.
      if (!got->ok() && cancel != nullptr && cancel->load(std::memory_order_relaxed)) return got->status();
      if (!got->ok()) {
        lazy->status = got->status();
      } else if (!(*got)->blob || !(*got)->checkpoints) {
        lazy->status = Status::Corruption("layer " + layers_[i].digest + ": loaded without its blob or checkpoint table");
      } else {
        layers_[i].blob = std::move((*got)->blob);
        layers_[i].checkpoints = std::move((*got)->checkpoints);
      }
      lazy->load = nullptr;  // what it captured (an open blob) is owned by the layer now, or dropped
      lazy->done.store(true, std::memory_order_release);
    }
  }
  return lazy->status ? *lazy->status : Status::Ok();
}

std::unique_ptr<RandomReader> ImageContent::NewReader(uint32_t i) const {
  if (Status st = Load(i); !st.ok()) return std::make_unique<FailedReader>(std::move(st));
  const LayerBlob& l = layers_.at(i);
  return RandomReader::Create(l.checkpoints, l.blob.get(), "layer " + l.digest);
}

Status ReadFileData(const ImageTree& tree, NodeId id, RandomReader& reader, uint64_t offset, std::span<uint8_t> out,
                    size_t* n) {
  *n = 0;
  const Node node = tree.GetNode(id);
  if (offset >= node.size) return Status::Ok();
  const size_t want = static_cast<size_t>(std::min<uint64_t>(out.size(), node.size - offset));
  const uint32_t extents = node.sparse_count;
  if (extents == 0) {
    // Plain file: contiguous bytes at data_offset.
    size_t got = 0;
    LAZYROOT_RETURN_IF_ERROR(reader.Read(node.data_offset + offset, out.subspan(0, want), &got));
    if (got != want) {
      return Status::Corruption("layer " + std::to_string(node.layer) + ": file data ends early at stream offset " +
                                std::to_string(node.data_offset + offset + got));
    }
    *n = want;
    return Status::Ok();
  }
  // Sparse: walk the extents; data for extent k is stored right after that of
  // extents 0..k-1. Everything else is a hole.
  std::memset(out.data(), 0, want);
  uint64_t stored = 0;
  const uint64_t end = offset + want;
  for (uint32_t k = 0; k < extents; ++k) {
    SparseExtent x = tree.SparseAt(id, k);
    uint64_t xs = x.logical_offset, xe = x.logical_offset + x.length;
    uint64_t s = std::max(xs, offset), e = std::min(xe, end);
    if (s < e) {
      size_t got = 0;
      auto dst = out.subspan(static_cast<size_t>(s - offset), static_cast<size_t>(e - s));
      LAZYROOT_RETURN_IF_ERROR(reader.Read(node.data_offset + stored + (s - xs), dst, &got));
      if (got != dst.size()) {
        return Status::Corruption("layer " + std::to_string(node.layer) + ": sparse data ends early");
      }
    }
    stored += x.length;
    if (xs >= end) break;
  }
  *n = want;
  return Status::Ok();
}

}  // namespace lazyroot
