// A test image: layers of hand-made TarEntry values whose bytes sit in
// in-memory plain (Compression::kNone) layers, merged into an ImageTree.
// Shared by the extract and rootfs-check tests.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "index/image_content.h"
#include "index/merge.h"

namespace lazyroot::testing_image {

// Layers of entries plus the blob bytes their data offsets point into.
class Image {
 public:
  explicit Image(size_t layers) : entries_(layers), blobs_(layers, std::string(512, '\0')) {}

  TarEntry& Dir(size_t l, std::string path, uint32_t mode = 0755) { return Add(l, Entry(std::move(path), EntryType::kDirectory, mode)); }
  TarEntry& File(size_t l, std::string path, const std::string& content, uint32_t mode = 0644) {
    TarEntry e = Entry(std::move(path), EntryType::kRegular, mode);
    e.size = e.stored_size = content.size();
    e.data_offset = blobs_[l].size();
    blobs_[l] += content;
    blobs_[l].append(512 - blobs_[l].size() % 512, '\0');
    return Add(l, std::move(e));
  }
  // A sparse file of `size` bytes whose data extents hold `data`.
  TarEntry& Sparse(size_t l, std::string path, uint64_t size, const std::vector<std::pair<uint64_t, std::string>>& data) {
    TarEntry e = Entry(std::move(path), EntryType::kRegular, 0644);
    e.size = size;
    e.data_offset = blobs_[l].size();
    for (const auto& [off, bytes] : data) {
      e.sparse.push_back({off, bytes.size()});
      e.stored_size += bytes.size();
      blobs_[l] += bytes;
    }
    blobs_[l].append(512 - blobs_[l].size() % 512, '\0');
    return Add(l, std::move(e));
  }
  TarEntry& Sym(size_t l, std::string path, std::string target) {
    TarEntry e = Entry(std::move(path), EntryType::kSymlink, 0777);
    e.link_target = std::move(target);
    return Add(l, std::move(e));
  }
  TarEntry& Link(size_t l, std::string path, std::string target) {
    TarEntry e = Entry(std::move(path), EntryType::kHardlink, 0644);
    e.link_target = std::move(target);
    return Add(l, std::move(e));
  }
  TarEntry& Node(size_t l, std::string path, EntryType type, uint32_t major, uint32_t minor, uint32_t mode = 0666) {
    TarEntry e = Entry(std::move(path), type, mode);
    e.dev_major = major;
    e.dev_minor = minor;
    return Add(l, std::move(e));
  }

  ImageTree Tree() {
    TreeBuilder b;
    for (uint32_t l = 0; l < entries_.size(); ++l) {
      EXPECT_TRUE(b.BeginLayer(l, "sha256:layer" + std::to_string(l)).ok());
      for (const TarEntry& e : entries_[l]) {
        Status st = b.Apply(e);
        EXPECT_TRUE(st.ok()) << st.message();
      }
      EXPECT_TRUE(b.EndLayer().ok());
    }
    auto tree = std::move(b).Finish("test tree");
    EXPECT_TRUE(tree.ok()) << tree.status().message();
    return std::move(tree).value();
  }

  // The blobs behind sources made by `wrap` (tests of failing reads).
  ImageContent ContentWith(const std::function<std::unique_ptr<ByteSource>(std::unique_ptr<ByteSource>)>& wrap) {
    ImageContent plain = Content();
    std::vector<LayerBlob> layers;
    for (size_t l = 0; l < blobs_.size(); ++l) {
      std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(blobs_[l].data()), blobs_[l].size());
      layers.push_back({"sha256:layer" + std::to_string(l), wrap(MemoryByteSource(bytes, "layer " + std::to_string(l))),
                        plain.layer(l).checkpoints});
    }
    return ImageContent(std::move(layers));
  }

  // `truncate` cuts every blob to that many bytes (to make reads fail).
  ImageContent Content(size_t truncate = SIZE_MAX) {
    std::vector<LayerBlob> layers;
    for (size_t l = 0; l < blobs_.size(); ++l) {
      auto table = std::make_shared<CheckpointTable>();
      table->compression = Compression::kNone;
      size_t size = std::min(truncate, blobs_[l].size());
      table->compressed_size = table->uncompressed_size = size;
      std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(blobs_[l].data()), size);
      layers.push_back({"sha256:layer" + std::to_string(l), MemoryByteSource(bytes, "layer " + std::to_string(l)), table});
    }
    return ImageContent(std::move(layers));
  }

 private:
  static TarEntry Entry(std::string path, EntryType type, uint32_t mode) {
    TarEntry e;
    e.path = std::move(path);
    e.type = type;
    e.mode = mode;
    e.mtime_sec = 1600000000;
    e.mtime_nsec = 123456789;
    return e;
  }
  TarEntry& Add(size_t l, TarEntry e) {
    entries_[l].push_back(std::move(e));
    return entries_[l].back();
  }
  std::vector<std::vector<TarEntry>> entries_;
  std::vector<std::string> blobs_;
};

}  // namespace lazyroot::testing_image
