#include "index/image_content.h"

#include <algorithm>
#include <cstring>

namespace lazyroot {

std::unique_ptr<RandomReader> ImageContent::NewReader(uint32_t i) const {
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
