// A layer index of an older format version (v1, before chunk digests) found
// in a store is a cache to rebuild from the blob, never an error: loading it
// rebuilds it as v2 (with the blob's chunk digests) and stores that. A blob
// changed on disk cannot be re-indexed: the rebuild names the blob.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "index/chunk_digests.h"
#include "index/sha256.h"
#include "src/store/index_consumer.h"
#include "src/store/store.h"
#include "tests/unit/index_tar_test_builder.h"

namespace lazyroot {
namespace {

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// An uncompressed layer of one file and 3 x 64 KiB of data.
std::string Layer() {
  std::string data(196608, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 4096);
  return tartest::OneFileTar("data.bin", data);
}

class IndexRebuild : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lazyroot-v1-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto s = Store::Open(dir_ + "/store");
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(*s);
    layer_ = Layer();
    digest_ = "sha256:" + Sha256::HexOf(std::string_view(layer_));
    diff_id_ = digest_;  // uncompressed: the blob is the stream
    ASSERT_TRUE(store_->WriteBlob(digest_, layer_).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_, layer_, digest_, diff_id_;
  std::unique_ptr<Store> store_;
};

TEST_F(IndexRebuild, VersionOneIndexIsRebuiltAsVersionTwo) {
  bool rebuilt = false;
  auto first = LoadOrBuildLayerIndex(*store_, digest_, diff_id_, &rebuilt);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_TRUE(rebuilt);  // no index yet
  // What an older lazyroot left: the same file with version 1 in its header
  // (v1 readers stop at the version field; nothing after it is read).
  auto v2 = ReadWholeFile(store_->IndexPath(digest_), 1 << 20);
  ASSERT_TRUE(v2.ok());
  std::string v1 = *v2;
  v1[8] = 1;
  ASSERT_TRUE(WriteFileAtomic(store_->IndexPath(digest_), v1).ok());

  ChunkDigests chunks;
  auto table = LoadLayerCheckpoints(*store_, digest_, diff_id_, Limits(), &chunks);
  ASSERT_TRUE(table.ok()) << table.status().message();
  ChunkHasher h;
  h.Update(Bytes(layer_));
  EXPECT_EQ(chunks, h.Finish());
  auto stored = ReadWholeFile(store_->IndexPath(digest_), 1 << 20);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, *v2) << "the store holds the rebuilt v2 file again";

  // The streaming loader (the merge's) rebuilds it the same way.
  ASSERT_TRUE(WriteFileAtomic(store_->IndexPath(digest_), v1).ok());
  bool restart = false;
  size_t entries = 0;
  ChunkDigests streamed;
  auto t2 = ForEachStoredLayerEntry(
      *store_, digest_, diff_id_, Limits(), [&](TarEntry&) { ++entries; return Status::Ok(); }, &restart, &streamed);
  ASSERT_TRUE(t2.ok()) << t2.status().message();
  EXPECT_FALSE(restart);
  EXPECT_EQ(entries, 1u);
  EXPECT_EQ(streamed, chunks);
}

// Version 2 (before file digests): `diff` asking for the file digests gets
// the rebuilt file's, and the store holds the current version again.
TEST_F(IndexRebuild, VersionTwoIndexIsRebuiltForFileDigests) {
  ASSERT_TRUE(LoadOrBuildLayerIndex(*store_, digest_, diff_id_, nullptr).ok());
  auto current = ReadWholeFile(store_->IndexPath(digest_), 1 << 20);
  ASSERT_TRUE(current.ok());
  std::string v2 = *current;
  v2[8] = 2;
  ASSERT_TRUE(WriteFileAtomic(store_->IndexPath(digest_), v2).ok());
  auto digests = LoadLayerFileDigests(*store_, digest_, diff_id_);
  ASSERT_TRUE(digests.ok()) << digests.status().message();
  ASSERT_EQ(digests->size(), 1u);
  EXPECT_EQ((*digests)[0].data_offset, 512u);
  EXPECT_EQ((*digests)[0].digest, Sha256::Of(Bytes(layer_).subspan(512, 196608)));
  auto stored = ReadWholeFile(store_->IndexPath(digest_), 1 << 20);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, *current);
}

// An index of another format version is not read past its header (its
// parser says which version from that alone): a hostile or damaged store
// could otherwise make every command that loads it read up to the 16 GiB
// cap of a sparse file into memory (a 3 GiB one took 17 s and 4.2 GB of RSS)
// before rebuilding it.
TEST_F(IndexRebuild, SparseOlderIndexIsNotReadBeforeTheRebuild) {
  auto first = LoadOrBuildLayerIndex(*store_, digest_, diff_id_, nullptr);
  ASSERT_TRUE(first.ok()) << first.status().message();
  const std::string path = store_->IndexPath(digest_);
  {
    FILE* f = std::fopen(path.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::fseek(f, 8, SEEK_SET), 0);
    std::fputc(2, f);  // format version 2
    std::fclose(f);
  }
  ASSERT_EQ(truncate(path.c_str(), off_t{1} << 30), 0);  // 1 GiB, all holes past the old file
  auto bytes = ReadLayerIndexFile(path);
  ASSERT_TRUE(bytes.ok()) << bytes.status().message();
  EXPECT_LE(bytes->size(), 4096u) << "read the older file whole";
  auto parsed = LayerIndex::Parse(Bytes(*bytes), path, digest_);
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("format version 2"), std::string::npos) << parsed.status().message();

  bool rebuilt = false;
  auto idx = LoadOrBuildLayerIndex(*store_, digest_, diff_id_, &rebuilt);
  ASSERT_TRUE(idx.ok()) << idx.status().message();
  EXPECT_TRUE(rebuilt);
  EXPECT_EQ(std::filesystem::file_size(path), ReadWholeFile(path, 1 << 20)->size()) << "stored again as version 4";
}

TEST_F(IndexRebuild, ChangedBlobIsNotReindexed) {
  std::string changed = layer_;
  changed[5000] ^= 1;
  {
    FILE* f = std::fopen(store_->BlobPath(digest_).c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(changed.data(), 1, changed.size(), f);
    std::fclose(f);
  }
  bool rebuilt = false;
  auto idx = LoadOrBuildLayerIndex(*store_, digest_, diff_id_, &rebuilt);
  ASSERT_FALSE(idx.ok());
  EXPECT_EQ(idx.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(idx.status().message().find("blob " + digest_ + ": the stored bytes hash to"), std::string::npos)
      << idx.status().message();
}

}  // namespace
}  // namespace lazyroot
