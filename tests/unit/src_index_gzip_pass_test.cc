// zlib's and ISA-L's gzip passes place different (equally valid) checkpoints.
// A layer index records which pass made it, and a rebuild made to check a
// stored index (fsck) is made by the same pass, so a store indexed by an
// older lazyroot (zlib) and one indexed by the pull's ISA-L pass both compare
// equal byte for byte; a damaged index is rebuilt by the default pass.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <random>
#include <string>

#include "index/byte_source.h"
#include "index/gzip_index.h"
#include "index/gzip_isal_stream.h"
#include "index/layer_indexer.h"
#include "index/sha256.h"
#include "src/store/index_consumer.h"
#include "src/store/store.h"
#include "tests/unit/compressed_fixtures.h"
#include "tests/unit/index_tar_test_builder.h"

namespace lazyroot {
namespace {

using fixtures::Bytes;
using fixtures::Gzip;

// A tar of one 6 MiB file of text-like bytes: many deflate blocks, three spans.
std::string TarLayer() {
  const size_t size = 6 << 20;
  static const char* kWords[] = {"usr ", "lib ", "share ", "locale ", "\n", "x86_64 ", "tar "};
  std::mt19937 rng(5);
  std::string data;
  while (data.size() < size) data += kWords[rng() % 7];
  data.resize(size);
  return tartest::OneFileTar("words.txt", data);
}

class GzipPassRebuild : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lazyroot-pass-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto s = Store::Open(dir_ + "/store");
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(*s);
    const std::string tar = TarLayer();
    blob_ = Gzip(tar);
    digest_ = "sha256:" + Sha256::HexOf(std::string_view(blob_));
    diff_id_ = "sha256:" + Sha256::HexOf(std::string_view(tar));
    ASSERT_TRUE(store_->WriteBlob(digest_, blob_).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string IndexWith(InflateEngine pass, uint8_t fine_policy = kDefaultFinePolicy,
                        uint32_t chunk_bytes = kDefaultChunkBytes) {
    auto src = MemoryByteSource(Bytes(blob_), "blob");
    auto file = IndexBlobFile(*src, digest_, Compression::kGzip, diff_id_, Limits(), pass, fine_policy, chunk_bytes);
    EXPECT_TRUE(file.ok()) << file.status().message();
    return file.ok() ? *file : std::string();
  }

  std::string dir_, blob_, digest_, diff_id_;
  std::unique_ptr<Store> store_;
};

TEST_F(GzipPassRebuild, ARebuildUsesThePassThatMadeTheStoredIndex) {
  const std::string by_zlib = IndexWith(InflateEngine::kZlib);
  const std::string by_isal = IndexWith(InflateEngine::kIsal);
  ASSERT_FALSE(by_zlib.empty());
  ASSERT_FALSE(by_isal.empty());
  const bool isal = HaveIsal() && IsalCheckpointsWork();
  if (isal) {
    EXPECT_NE(by_zlib, by_isal) << "the two passes should place some checkpoint differently";
  }
  // An index by zlib (an older lazyroot's, or a machine without ISA-L).
  ASSERT_TRUE(WriteFileAtomic(store_->IndexPath(digest_), by_zlib).ok());
  auto rebuilt = BuildLayerIndexFile(*store_, digest_, diff_id_);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().message();
  EXPECT_EQ(*rebuilt, by_zlib);
  // An index by the pull's default pass.
  ASSERT_TRUE(WriteFileAtomic(store_->IndexPath(digest_), by_isal).ok());
  rebuilt = BuildLayerIndexFile(*store_, digest_, diff_id_);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().message();
  EXPECT_EQ(*rebuilt, by_isal);
  // A damaged index says nothing: the default pass rebuilds it.
  ASSERT_TRUE(WriteFileAtomic(store_->IndexPath(digest_), "LZRLIDX\0garbage").ok());
  rebuilt = BuildLayerIndexFile(*store_, digest_, diff_id_);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().message();
  EXPECT_EQ(*rebuilt, by_isal);
}

// An index made before fine points (policy 0: none, whole windows), or
// before mid-block points (policy 1), is rebuilt that way, by either pass;
// the pull's policy cuts the windows.
TEST_F(GzipPassRebuild, ARebuildUsesTheFinePolicyOfTheStoredIndex) {
  for (InflateEngine pass : {InflateEngine::kZlib, InflateEngine::kIsal}) {
    const std::string v1 = IndexWith(pass, kFinePolicyV1);
    ASSERT_TRUE(WriteFileAtomic(store_->IndexPath(digest_), v1).ok());
    auto v1_rebuilt = BuildLayerIndexFile(*store_, digest_, diff_id_);
    ASSERT_TRUE(v1_rebuilt.ok()) << v1_rebuilt.status().message();
    EXPECT_EQ(*v1_rebuilt, v1);
    auto v1_table = LayerIndex::ParseCheckpoints(Bytes(v1), "index", digest_, nullptr);
    ASSERT_TRUE(v1_table.ok());
    EXPECT_EQ(v1_table->fine_policy, kFinePolicyV1);
    const std::string old = IndexWith(pass, 0);
    const std::string now = IndexWith(pass);
    ASSERT_FALSE(old.empty());
    EXPECT_NE(old, now);
    auto old_table = LayerIndex::ParseCheckpoints(Bytes(old), "index", digest_, nullptr);
    auto new_table = LayerIndex::ParseCheckpoints(Bytes(now), "index", digest_, nullptr);
    ASSERT_TRUE(old_table.ok() && new_table.ok());
    EXPECT_EQ(old_table->fine_policy, 0);
    EXPECT_EQ(new_table->fine_policy, kDefaultFinePolicy);
    for (const Checkpoint& p : old_table->points) {
      EXPECT_FALSE(p.fine);
      if (p.out_offset != 0) {
        EXPECT_EQ(p.window_size, kMaxWindowBytes);
      }
    }
    ASSERT_TRUE(WriteFileAtomic(store_->IndexPath(digest_), old).ok());
    auto rebuilt = BuildLayerIndexFile(*store_, digest_, diff_id_);
    ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().message();
    EXPECT_EQ(*rebuilt, old);
    ASSERT_TRUE(WriteFileAtomic(store_->IndexPath(digest_), now).ok());
    rebuilt = BuildLayerIndexFile(*store_, digest_, diff_id_);
    ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().message();
    EXPECT_EQ(*rebuilt, now);
  }
}

// The pull records 32 KiB chunk digests; an index from before (64 KiB), or
// with any other valid size, is rebuilt with its own size, so fsck finds it
// byte for byte the same. Also for a layer that is not gzip (the chunk table
// is of every blob).
TEST_F(GzipPassRebuild, ARebuildUsesTheChunkSizeOfTheStoredIndex) {
  EXPECT_EQ(kDefaultChunkBytes, 32u << 10);
  ChunkDigests chunks;
  const std::string now = IndexWith(InflateEngine::kIsal);
  ASSERT_TRUE(LayerIndex::ParseCheckpoints(Bytes(now), "index", digest_, nullptr, &chunks).ok());
  EXPECT_EQ(chunks.chunk_size, kDefaultChunkBytes);
  for (uint32_t size : {64u << 10, kMinChunkBytes, kMaxChunkBytes, kDefaultChunkBytes}) {
    const std::string stored = IndexWith(InflateEngine::kIsal, kDefaultFinePolicy, size);
    ASSERT_TRUE(LayerIndex::ParseCheckpoints(Bytes(stored), "index", digest_, nullptr, &chunks).ok());
    EXPECT_EQ(chunks.chunk_size, size);
    EXPECT_EQ(stored == now, size == kDefaultChunkBytes) << size;
    ASSERT_TRUE(WriteFileAtomic(store_->IndexPath(digest_), stored).ok());
    auto rebuilt = BuildLayerIndexFile(*store_, digest_, diff_id_);
    ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().message();
    EXPECT_TRUE(*rebuilt == stored) << size;
  }
  // A plain tar layer.
  const std::string tar = TarLayer();
  const std::string digest = "sha256:" + Sha256::HexOf(std::string_view(tar));
  ASSERT_TRUE(store_->WriteBlob(digest, tar).ok());
  auto src = MemoryByteSource(Bytes(tar), "blob");
  auto old = IndexBlobFile(*src, digest, Compression::kNone, digest, Limits(), InflateEngine::kIsal, kFinePolicyV1,
                           64u << 10);
  ASSERT_TRUE(old.ok()) << old.status().message();
  ASSERT_TRUE(WriteFileAtomic(store_->IndexPath(digest), *old).ok());
  auto rebuilt = BuildLayerIndexFile(*store_, digest, digest);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().message();
  EXPECT_TRUE(*rebuilt == *old);
  // A damaged index says nothing: the pull's size.
  ASSERT_TRUE(WriteFileAtomic(store_->IndexPath(digest), "LZRLIDX\0garbage").ok());
  rebuilt = BuildLayerIndexFile(*store_, digest, digest);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().message();
  ASSERT_TRUE(LayerIndex::ParseCheckpoints(Bytes(*rebuilt), "index", digest, nullptr, &chunks).ok());
  EXPECT_EQ(chunks.chunk_size, kDefaultChunkBytes);
}

TEST_F(GzipPassRebuild, EachPassRecordsItself) {
  for (InflateEngine pass : {InflateEngine::kZlib, InflateEngine::kIsal}) {
    const std::string file = IndexWith(pass);
    auto table = LayerIndex::ParseCheckpoints(Bytes(file), "index", digest_, nullptr);
    ASSERT_TRUE(table.ok()) << table.status().message();
    const InflateEngine expect = HaveIsal() && IsalCheckpointsWork() ? pass : InflateEngine::kZlib;
    EXPECT_EQ(table->made_by, expect);
    EXPECT_GE(table->points.size(), 3u);
  }
}

}  // namespace
}  // namespace lazyroot
