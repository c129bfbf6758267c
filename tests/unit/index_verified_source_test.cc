// Chunk digests (ChunkHasher, the layer index's v2 section) and the verifying
// ByteSource: clean reads return the blob; a flipped byte in any position
// class (first, middle, last whole chunk, a short last chunk) fails exactly
// the reads that touch its chunk, with kCorruption naming the blob and the
// byte range, and never hands out a changed byte; a truncated blob fails the
// same way; concurrent readers share one source; a gzip decoder over it
// reports the corruption instead of decoding different bytes.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "index/chunk_digests.h"
#include "index/layer_index.h"
#include "index/layer_indexer.h"
#include "index/sha256.h"
#include "index/verified_source.h"
#include "tests/unit/compressed_fixtures.h"
#include "tests/unit/index_tar_test_builder.h"

namespace lazyroot {
namespace {

using fixtures::Bytes;

constexpr uint32_t kChunk = 4096;

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

ChunkDigests DigestsOf(const std::string& blob, uint32_t chunk) {
  ChunkHasher h(chunk);
  h.Update(Bytes(blob));
  return h.Finish();
}

// The blob on "disk" (held by the test, so it can be changed under the
// source) and a counting view of it.
class DiskBlob final : public ByteSource {
 public:
  explicit DiskBlob(const std::string* bytes) : bytes_(bytes), name_("blob sha256:feed") {}
  Status ReadAt(uint64_t offset, std::span<uint8_t> out, size_t* n) const override {
    read_bytes += out.size();
    *n = 0;
    if (offset >= bytes_->size()) return Status::Ok();
    *n = static_cast<size_t>(std::min<uint64_t>(out.size(), bytes_->size() - offset));
    std::memcpy(out.data(), bytes_->data() + offset, *n);
    return Status::Ok();
  }
  uint64_t Size() const override { return bytes_->size(); }
  const std::string& Name() const override { return name_; }
  mutable std::atomic<uint64_t> read_bytes{0};

 private:
  const std::string* bytes_;
  std::string name_;
};

struct Fixture {
  std::string original, disk;
  DiskBlob* raw = nullptr;
  std::unique_ptr<ByteSource> source;
  explicit Fixture(size_t size, uint32_t chunk = kChunk) : original(RandomBytes(size, 11)), disk(original) {
    auto blob = std::make_unique<DiskBlob>(&disk);
    raw = blob.get();
    source = NewVerifiedByteSource(std::move(blob), std::make_shared<const ChunkDigests>(DigestsOf(original, chunk)));
  }
  Status Read(uint64_t off, size_t len, std::string* out) const {
    out->assign(len, '\0');
    size_t n = 0;
    Status st = source->ReadAt(off, std::span<uint8_t>(reinterpret_cast<uint8_t*>(out->data()), len), &n);
    out->resize(n);
    return st;
  }
};

TEST(ChunkHasher, AnyChunkingGivesTheSameTableOfCeilSizeOverChunkDigests) {
  const std::string blob = RandomBytes(5 * kChunk + 123, 1);
  const ChunkDigests whole = DigestsOf(blob, kChunk);
  ASSERT_EQ(whole.digests.size(), 6u);
  EXPECT_EQ(whole.blob_size, blob.size());
  EXPECT_EQ(whole.digests[5], Sha256::Of(Bytes(blob).subspan(5 * kChunk)));
  EXPECT_EQ(whole.digests[0], Sha256::Of(Bytes(blob).first(kChunk)));
  for (size_t step : {size_t{1}, size_t{7}, size_t{kChunk}, size_t{kChunk + 1}}) {
    ChunkHasher h(kChunk);
    for (size_t off = 0; off < blob.size(); off += step) h.Update(Bytes(blob).subspan(off, std::min(step, blob.size() - off)));
    EXPECT_EQ(h.Finish(), whole) << step;
  }
  EXPECT_EQ(DigestsOf("", kChunk).digests.size(), 0u);
  EXPECT_EQ(DigestsOf(std::string(2 * kChunk, 'x'), kChunk).digests.size(), 2u);
}

TEST(VerifiedSource, CleanReadsReturnTheBlob) {
  Fixture f(7 * kChunk + 1000);
  std::mt19937 rng(3);
  for (int i = 0; i < 2000; ++i) {
    const uint64_t off = rng() % (f.original.size() + 10);
    const size_t len = rng() % (3 * kChunk);
    std::string got;
    ASSERT_TRUE(f.Read(off, len, &got).ok()) << off << "+" << len;
    EXPECT_EQ(got, off >= f.original.size() ? "" : f.original.substr(off, len)) << off << "+" << len;
  }
  std::string all;
  ASSERT_TRUE(f.Read(0, f.original.size() + 5, &all).ok());
  EXPECT_EQ(all, f.original);
  EXPECT_EQ(f.source->Size(), f.original.size());
}

// Each position class of a changed byte: the reads that touch its chunk fail
// naming the blob and the chunk's byte range; no returned byte is the changed
// one; reads of other chunks are unaffected.
TEST(VerifiedSource, FlippedByteFailsExactlyTheReadsOfItsChunk) {
  const size_t size = 6 * kChunk + 700;  // chunk 6 is short
  struct Case {
    const char* what;
    uint64_t at;
  };
  for (const Case& c : {Case{"first byte", 0}, Case{"middle chunk", 3 * kChunk + 77},
                        Case{"last byte of a whole chunk", 6 * kChunk - 1}, Case{"short last chunk", size - 1}}) {
    SCOPED_TRACE(c.what);
    Fixture f(size);
    f.disk[c.at] = static_cast<char>(f.disk[c.at] ^ 0x20);
    const uint64_t chunk = c.at / kChunk;
    const uint64_t first = chunk * kChunk, last = std::min<uint64_t>(first + kChunk, size) - 1;
    const std::string range = "bytes " + std::to_string(first) + "–" + std::to_string(last);
    // Reads touching the chunk, through both paths (part of it: cached; all
    // of it: checked in the caller's buffer).
    for (auto [off, len] : {std::pair<uint64_t, size_t>{c.at, 1}, {first, static_cast<size_t>(last - first + 1)},
                            {first > 10 ? first - 10 : 0, 40}, {0, size}}) {
      std::string got;
      Status st = f.Read(off, len, &got);
      ASSERT_FALSE(st.ok()) << off << "+" << len;
      EXPECT_EQ(st.code(), ErrorCode::kCorruption);
      EXPECT_NE(st.message().find("blob sha256:feed: " + range + " do not match the digest recorded at pull"),
                std::string::npos)
          << st.message();
      // What came back before the error is verified and precedes the chunk.
      if (!got.empty()) {
        EXPECT_LE(off + got.size(), first);
      }
      EXPECT_EQ(got, f.original.substr(off, got.size()));
    }
    // The caller's buffer never holds the changed byte after a failed read.
    std::string buf(size, '\0');
    size_t n = 0;
    ASSERT_FALSE(f.source->ReadAt(0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(buf.data()), size), &n).ok());
    const size_t span = static_cast<size_t>(last - first + 1);
    EXPECT_NE(buf.substr(first, span), f.disk.substr(first, span));
    // Other chunks read fine.
    for (uint64_t other = 0; other * kChunk < size; ++other) {
      if (other == chunk) continue;
      std::string got;
      ASSERT_TRUE(f.Read(other * kChunk + 5, 100, &got).ok()) << other;
      EXPECT_EQ(got, f.original.substr(other * kChunk + 5, 100));
    }
  }
}

// A chunk verified before the change may still be served from memory (it is
// what the pull vouched for); one read after it never.
TEST(VerifiedSource, ChangeAfterAReadIsCaughtOnceTheChunkIsReadAgainFromDisk) {
  Fixture f(4 * kChunk);
  std::string got;
  ASSERT_TRUE(f.Read(10, 20, &got).ok());
  f.disk[2 * kChunk + 1] ^= 1;
  ASSERT_TRUE(f.Read(2 * kChunk, kChunk, &got).ok() == false);
  ASSERT_TRUE(f.Read(15, 10, &got).ok());
  EXPECT_EQ(got, f.original.substr(15, 10));
}

TEST(VerifiedSource, TruncatedBlobIsCorruption) {
  Fixture f(5 * kChunk + 300);
  f.disk.resize(3 * kChunk + 10);  // same chunks before, a short one, none after
  std::string got;
  ASSERT_TRUE(f.Read(kChunk, 2 * kChunk, &got).ok());
  EXPECT_EQ(got, f.original.substr(kChunk, 2 * kChunk));
  for (auto [off, len] : {std::pair<uint64_t, size_t>{3 * kChunk, 5}, {4 * kChunk + 1, 10}, {0, 5 * kChunk + 300}}) {
    Status st = f.Read(off, len, &got);
    ASSERT_FALSE(st.ok()) << off;
    EXPECT_EQ(st.code(), ErrorCode::kCorruption);
    EXPECT_NE(st.message().find("blob sha256:feed: bytes "), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("truncated"), std::string::npos) << st.message();
  }
  // Bytes appended to the file are never served: Size() is what the pull saw.
  Fixture g(2 * kChunk);
  g.disk += "appended";
  ASSERT_TRUE(g.Read(0, 3 * kChunk, &got).ok());
  EXPECT_EQ(got, g.original);
}

// A decoder reading a few KiB at a time across chunk boundaries hashes each
// chunk about once (the cache of verified chunks), not once per read.
TEST(VerifiedSource, SequentialSmallReadsReadEachChunkOnce) {
  Fixture f(64 * kChunk + 5);
  std::string got;
  for (uint64_t off = 0; off < f.original.size(); off += 1500) {
    ASSERT_TRUE(f.Read(off, 1500, &got).ok());
    ASSERT_EQ(got, f.original.substr(off, 1500));
  }
  EXPECT_LE(f.raw->read_bytes.load(), f.original.size() + kChunk);
  EXPECT_LE(VerifiedChunkCacheBytes(), uint64_t{2} << 20);
}

// A small read (a mid-block point's block header) is kept by offset and
// length after its chunk has left the chunk cache: read again, it reads
// nothing from the blob. Another length or offset is not served from it, a
// failed read keeps nothing, and the cache stays within its bound.
TEST(VerifiedSource, SmallReadsAreKeptApartFromTheirChunk) {
  const size_t chunks = ((2u << 20) / kChunk) * 5 / 4;  // more than the chunk cache holds
  Fixture f(chunks * kChunk);
  std::string got;
  ASSERT_TRUE(f.Read(kChunk + 100, 640, &got).ok());
  EXPECT_EQ(got, f.original.substr(kChunk + 100, 640));
  for (uint64_t c = 2; c < chunks; ++c) ASSERT_TRUE(f.Read(c * kChunk + 1, 8, &got).ok());  // evicts chunk 1
  const uint64_t before = f.raw->read_bytes.load();
  ASSERT_TRUE(f.Read(kChunk + 100, 640, &got).ok());
  EXPECT_EQ(got, f.original.substr(kChunk + 100, 640));
  EXPECT_EQ(f.raw->read_bytes.load(), before);  // served from the small-read cache
  ASSERT_TRUE(f.Read(kChunk + 100, 641, &got).ok());  // another length: read and verified again
  EXPECT_EQ(got, f.original.substr(kChunk + 100, 641));
  EXPECT_EQ(f.raw->read_bytes.load(), before + kChunk);
  // A failed small read keeps nothing: after the disk is put right it is read again.
  const uint64_t bad = (chunks - 1) * kChunk;
  f.disk[bad + 3] ^= 1;
  for (uint64_t c = 0; c + 1 < chunks; ++c) ASSERT_TRUE(f.Read(c * kChunk + 2, 4, &got).ok());  // evicts the last chunk
  EXPECT_EQ(f.Read(bad, 16, &got).code(), ErrorCode::kCorruption);
  f.disk[bad + 3] ^= 1;
  ASSERT_TRUE(f.Read(bad, 16, &got).ok());
  EXPECT_EQ(got, f.original.substr(bad, 16));
  EXPECT_LE(VerifiedSmallReadCacheBytes(), uint64_t{1} << 20);
}

TEST(VerifiedSource, ConcurrentReadersSeeTheBlobOrAnErrorNeverOtherBytes) {
  Fixture f(40 * kChunk + 99);
  f.disk[17 * kChunk + 3] ^= 0x80;
  const uint64_t bad_first = 17 * kChunk, bad_end = 18 * kChunk;
  std::atomic<int> wrong{0}, errors{0}, clean{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      for (int i = 0; i < 400; ++i) {
        const uint64_t off = rng() % f.original.size();
        const size_t len = 1 + rng() % (2 * kChunk + 500);
        std::string got;
        Status st = f.Read(off, len, &got);
        const bool touches = off < bad_end && off + len > bad_first;
        if (got != f.original.substr(off, got.size())) ++wrong;
        if (st.ok() == touches) ++wrong;  // an error exactly when the bad chunk is touched
        (st.ok() ? clean : errors)++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(errors.load(), 0);
  EXPECT_GT(clean.load(), 0);
}

// Through the gzip decoder (what a mount and extract do): a changed byte of
// the compressed blob is an error naming the blob and range, not other bytes.
TEST(VerifiedSource, GzipDecoderOverAChangedBlobFails) {
  std::mt19937 rng(5);
  std::string letters(3 << 20, '\0');
  for (auto& c : letters) c = static_cast<char>('a' + rng() % 20);
  const std::string tar = tartest::File("big.txt", letters) + tartest::Zeros(2);
  std::string disk = fixtures::Gzip(tar);
  const std::string original = disk;
  auto indexer = std::make_unique<LayerIndexer>("sha256:" + Sha256::HexOf(std::string_view(original)),
                                                Compression::kGzip, "", 1 << 20);
  ASSERT_TRUE(indexer->Consume(Bytes(original)).ok());
  auto idx = indexer->Finish(DigestsOf(original, kDefaultChunkBytes));
  ASSERT_TRUE(idx.ok()) << idx.status().message();
  auto table = std::make_shared<const CheckpointTable>(idx->checkpoints);
  auto chunks = std::make_shared<const ChunkDigests>(idx->chunks);
  const uint64_t flip = original.size() / 2;
  disk[flip] = static_cast<char>(disk[flip] ^ 0x01);
  auto source = NewVerifiedByteSource(std::make_unique<DiskBlob>(&disk), chunks);
  auto reader = RandomReader::Create(table, source.get(), "layer sha256:feed");
  std::string out(tar.size(), '\0');
  size_t n = 0;
  Status st = reader->Read(0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()), out.size()), &n);
  ASSERT_FALSE(st.ok());
  const uint64_t first = flip / kDefaultChunkBytes * kDefaultChunkBytes;
  EXPECT_NE(st.message().find("blob sha256:feed: bytes " + std::to_string(first) + "–"), std::string::npos)
      << st.message();
  // The start of the stream, before the changed chunk, still decodes.
  auto fresh = RandomReader::Create(table, source.get(), "layer sha256:feed");
  ASSERT_TRUE(fresh->Read(0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()), 4096), &n).ok());
  EXPECT_EQ(out.substr(0, 4096), tar.substr(0, 4096));
}

// --- The chunk digest section of the layer index file (format v2).

std::string SmallTar() {
  // A file, then a few chunks of end-of-archive zeros (202752 bytes in all).
  return tartest::File("f", "hello") + tartest::Zeros(394);
}

void Rehash(std::string* b) {
  ResealLayerIndexFile(std::span<uint8_t>(reinterpret_cast<uint8_t*>(b->data()), b->size()));
}
void PutU64(std::string* b, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) (*b)[at + i] = static_cast<char>(v >> (8 * i));
}

std::string SmallIndexFile(std::string* blob_out = nullptr) {
  const std::string blob = SmallTar();
  if (blob_out) *blob_out = blob;
  auto src = MemoryByteSource(Bytes(blob), "blob");
  auto file = IndexBlobFile(*src, "sha256:" + Sha256::HexOf(std::string_view(blob)), Compression::kNone, "");
  EXPECT_TRUE(file.ok()) << file.status().message();
  return file.ok() ? *file : std::string();
}

TEST(LayerIndexV2, ChunkDigestsRoundTripAndBoundTheFile) {
  std::string blob;
  const std::string file = SmallIndexFile(&blob);
  ASSERT_EQ(file.compare(0, 8, std::string("LZRLIDX\0", 8)), 0);
  EXPECT_EQ(static_cast<uint8_t>(file[8]), 4);
  auto idx = LayerIndex::Parse(Bytes(file), "x.index", "");
  ASSERT_TRUE(idx.ok()) << idx.status().message();
  EXPECT_EQ(idx->chunks, DigestsOf(blob, kDefaultChunkBytes));
  ChunkDigests only;
  auto table = LayerIndex::ParseCheckpoints(Bytes(file), "x.index", "", nullptr, &only);
  ASSERT_TRUE(table.ok()) << table.status().message();
  EXPECT_EQ(only, idx->chunks);
  auto again = LayerIndex::Parse(Bytes(idx->Serialize()), "again", "");
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->chunks, idx->chunks);
}

TEST(LayerIndexV2, VersionOneIsRefusedAsOlderFormat) {
  std::string file = SmallIndexFile();
  file[8] = 1;
  auto r = LayerIndex::Parse(Bytes(file), "store/index/x", "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(r.status().message().find("older lazyroot (format version 1"), std::string::npos) << r.status().message();
  file[8] = 2;
  r = LayerIndex::Parse(Bytes(file), "store/index/x", "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("older lazyroot (format version 2"), std::string::npos) << r.status().message();
}

// The chunk count must be exactly ceil(blob size / chunk size) and fill the
// section; checked (with a valid file hash) before any digest is kept.
TEST(LayerIndexV2, ChunkTableShapeIsCheckedBeforeUse) {
  const std::string good = SmallIndexFile();
  const uint64_t count = [&] {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(good[144 + i]);
    return v;
  }();
  ASSERT_EQ(count, 7u);  // 202752 bytes in 32 KiB chunks
  for (uint64_t bad_count : {count - 1, count + 1, uint64_t{1} << 40, ~uint64_t{0}}) {
    std::string bad = good;
    PutU64(&bad, 144, bad_count);
    Rehash(&bad);
    auto r = LayerIndex::Parse(Bytes(bad), "x.index", "");
    ASSERT_FALSE(r.ok()) << bad_count;
    EXPECT_NE(r.status().message().find("chunk digests for a blob of"), std::string::npos) << r.status().message();
  }
  for (uint32_t size : {0u, 1000u, 2048u, 3u << 16, 2u << 20}) {
    std::string bad = good;
    for (int i = 0; i < 4; ++i) bad[140 + i] = static_cast<char>(size >> (8 * i));
    Rehash(&bad);
    EXPECT_FALSE(LayerIndex::Parse(Bytes(bad), "x.index", "").ok()) << size;
  }
  // A blob size that claims more chunks than the section holds.
  std::string bad = good;
  PutU64(&bad, 80, uint64_t{1} << 50);
  PutU64(&bad, 144, (uint64_t{1} << 50) / kDefaultChunkBytes);
  Rehash(&bad);
  auto r = LayerIndex::Parse(Bytes(bad), "x.index", "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("chunk digest section is not"), std::string::npos) << r.status().message();
  // A changed digest is a changed file.
  bad = good;
  bad[bad.size() - 1] ^= 1;
  EXPECT_FALSE(LayerIndex::Parse(Bytes(bad), "x.index", "").ok());
}

// A rebuild hashes the blob: chunk digests are never recorded for bytes the
// blob's digest does not vouch for.
TEST(LayerIndexV2, RebuildFromAChangedBlobFailsNamingTheBlob) {
  std::string blob = SmallTar();
  const std::string digest = "sha256:" + Sha256::HexOf(std::string_view(blob));
  blob[600] ^= 1;
  auto src = MemoryByteSource(Bytes(blob), "blob");
  auto file = IndexBlobFile(*src, digest, Compression::kNone, "");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(file.status().message().find("blob " + digest + ": the stored bytes hash to"), std::string::npos)
      << file.status().message();
}

}  // namespace
}  // namespace lazyroot
