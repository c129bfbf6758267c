// LayerIndexWriter (entries serialised and deflated as they arrive) against
// LayerIndex::Serialize: both files parse to the same index.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "index/layer_index.h"

namespace lazyroot {
namespace {

std::vector<TarEntry> SampleEntries(size_t n) {
  std::vector<TarEntry> out;
  for (size_t i = 0; i < n; ++i) {
    TarEntry e;
    e.path = "dir" + std::to_string(i % 37) + "/file-" + std::to_string(i);
    e.type = i % 5 == 0 ? EntryType::kSymlink : EntryType::kRegular;
    if (e.type == EntryType::kSymlink) e.link_target = "../target/" + std::to_string(i);
    e.mode = 0644;
    e.uid = static_cast<uint32_t>(i);
    e.uname = "user";
    e.mtime_sec = -static_cast<int64_t>(i);
    e.header_offset = i * 1024;
    e.data_offset = i * 1024 + 512;
    e.size = e.stored_size = i % 7;
    if (i % 11 == 0) e.xattrs = {{"user.a", std::string(i % 300, 'x')}, {"user.b", "y"}};
    if (i % 13 == 0) e.sparse = {{0, 1}, {4096, 2}};
    out.push_back(std::move(e));
  }
  return out;
}

std::span<const uint8_t> Bytes(const std::string& s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

std::string Describe(const TarEntry& e) {
  std::string s = e.path + "|" + e.link_target + "|" + e.uname + "|" + std::to_string(e.uid) + "|" +
                  std::to_string(e.mtime_sec) + "|" + std::to_string(e.data_offset) + "|" + std::to_string(e.size);
  for (const auto& [k, v] : e.xattrs) s += "|" + k + "=" + v;
  for (const SparseExtent& x : e.sparse) s += "|" + std::to_string(x.logical_offset) + "+" + std::to_string(x.length);
  return s;
}

TEST(LayerIndexWriter, SameIndexAsSerialize) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{5000}}) {  // 5000 entries cross several deflate batches
    LayerIndex idx;
    idx.blob_digest = "sha256:" + std::string(64, 'a');
    idx.diff_id = "sha256:" + std::string(64, 'b');
    idx.blob_size = 1234;
    ChunkHasher chunks;
    chunks.Update(Bytes(std::string(1234, 'x')));
    idx.chunks = chunks.Finish();  // the table must fit the blob size
    idx.uncompressed_size = 5678 + n * 1024;  // the entries lie inside the stream
    idx.entries = SampleEntries(n);
    LayerIndexWriter w;
    for (const TarEntry& e : idx.entries) ASSERT_TRUE(w.Add(e).ok());
    EXPECT_EQ(w.count(), n);
    auto file = w.Finish(idx);
    ASSERT_TRUE(file.ok()) << file.status().message();
    auto streamed = LayerIndex::Parse(Bytes(*file), "streamed", idx.blob_digest);
    ASSERT_TRUE(streamed.ok()) << n << ": " << streamed.status().message();
    const std::string serialized = idx.Serialize();
    auto whole = LayerIndex::Parse(Bytes(serialized), "serialized", idx.blob_digest);
    ASSERT_TRUE(whole.ok()) << whole.status().message();
    ASSERT_EQ(streamed->entries.size(), n);
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(Describe(streamed->entries[i]), Describe(whole->entries[i])) << i;
    EXPECT_EQ(streamed->diff_id, idx.diff_id);
    EXPECT_EQ(streamed->blob_size, 1234u);
    EXPECT_EQ(streamed->uncompressed_size, 5678 + n * 1024);
    // A flipped byte in the deflated records fails the checksum.
    if (n > 0) {
      std::string bad = *file;
      bad[200] ^= 1;
      EXPECT_FALSE(LayerIndex::Parse(Bytes(bad), "bad", idx.blob_digest).ok());
    }
  }
}

}  // namespace
}  // namespace lazyroot
