// StreamCache over real gzip and zstd layer blobs (compressed here with zlib
// and libzstd, indexed by our StreamDecoder): unit boundaries, each unit
// decoded once, read-ahead only for sequential readers, warm decoders handed
// between readers, single flight under concurrency, errors passed through.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fs/stream_cache.h"
#include "index/fine_points.h"
#include "index/layer_decoder.h"
#include "index/verified_source.h"
#include "tests/unit/compressed_fixtures.h"

namespace lazyroot {
namespace {

using fixtures::Bytes;
using fixtures::Compressible;
using fixtures::Gzip;
using fixtures::TableFor;
using fixtures::Zstd;

// One layer: the raw stream, its blob and the content over it.
struct Layer {
  std::string raw, blob;
  std::shared_ptr<const ImageContent> content;
  std::shared_ptr<const CheckpointTable> table;

  Layer(std::string raw_in, Compression c, uint64_t span, std::string blob_override = {}) : raw(std::move(raw_in)) {
    blob = c == Compression::kGzip ? Gzip(raw) : c == Compression::kZstd ? Zstd(raw) : raw;
    table = std::make_shared<const CheckpointTable>(TableFor(blob, c, span));
    if (!blob_override.empty()) blob = std::move(blob_override);
    std::vector<LayerBlob> layers;
    layers.push_back(LayerBlob{"sha256:l0", MemoryByteSource(Bytes(blob), "blob sha256:l0"), table});
    content = std::make_shared<const ImageContent>(std::move(layers));
  }
};

StreamCacheOptions Opts(unsigned workers, uint64_t capacity = 64 << 20) {
  StreamCacheOptions o;
  o.capacity_bytes = capacity;
  o.prefetch_workers = workers;
  o.max_unit_bytes = 512 << 10;
  o.unit_bytes = 128 << 10;
  return o;
}

std::string ReadRange(StreamCache& c, uint64_t off, size_t len) {
  std::string out(len, '\0');
  size_t n = 0;
  Status st = c.Read(0, off, {reinterpret_cast<uint8_t*>(out.data()), len}, &n);
  EXPECT_TRUE(st.ok()) << st.ToString();
  out.resize(n);
  return out;
}

TEST(StreamCache, GzipUnitsAreTheCheckpointSpans) {
  Layer l(Compressible(3 << 20, 1), Compression::kGzip, 256 << 10);
  ASSERT_GT(l.table->points.size(), 4u);
  StreamCache c(l.content, Opts(0));
  for (size_t i = 0; i < l.table->points.size(); ++i) {
    const uint64_t s = l.table->points[i].out_offset;
    const uint64_t e = i + 1 < l.table->points.size() ? l.table->points[i + 1].out_offset : l.raw.size();
    for (uint64_t off : {s, (s + e) / 2, e - 1}) {
      StreamCache::Unit u = c.UnitAt(0, off);
      EXPECT_EQ(u.start, s);
      EXPECT_EQ(u.end, e);
      EXPECT_TRUE(u.at_checkpoint);
    }
  }
}

TEST(StreamCache, LongSpansAreCutIntoBlocks) {
  Layer l(Compressible(1 << 20, 2), Compression::kZstd, 256 << 10);
  ASSERT_EQ(l.table->points.size(), 1u);  // one frame: one checkpoint
  StreamCache c(l.content, Opts(0));
  StreamCache::Unit u = c.UnitAt(0, 300 << 10);
  EXPECT_EQ(u.start, 256u << 10);
  EXPECT_EQ(u.end, 384u << 10);
  EXPECT_FALSE(u.at_checkpoint);
  EXPECT_TRUE(c.UnitAt(0, 5).at_checkpoint);
  EXPECT_EQ(c.UnitAt(0, (1 << 20) - 1).end, 1u << 20);
}

TEST(StreamCache, SequentialReadDecodesEachUnitOnceAndReadsAhead) {
  Layer l(Compressible(4 << 20, 3), Compression::kGzip, 256 << 10);
  StreamCache c(l.content, Opts(2));
  std::string got;
  for (uint64_t off = 0; off < l.raw.size(); off += 8192) got += ReadRange(c, off, 8192);
  ASSERT_EQ(got, l.raw);
  StreamCacheStats s = c.stats();
  EXPECT_EQ(s.decoded_bytes, l.raw.size());  // no byte inflated twice
  EXPECT_GT(s.prefetched_units, 0u);          // workers ran ahead of the reader
  EXPECT_LE(s.reprimes, l.table->points.size());
}

TEST(StreamCache, RandomReadsDecodeOnlyThePrefixTheyNeed) {
  Layer l(Compressible(4 << 20, 12), Compression::kGzip, 1 << 20);
  StreamCacheOptions o = Opts(0);
  o.max_unit_bytes = 4 << 20;
  o.random_chunk_bytes = 64 << 10;
  StreamCache c(l.content, o);
  const StreamCache::Unit u = c.UnitAt(0, 0);
  ASSERT_GT(u.end, 512u << 10);
  EXPECT_EQ(ReadRange(c, 1000, 100), l.raw.substr(1000, 100));
  EXPECT_EQ(c.stats().decoded_bytes, 64u << 10);  // one chunk, not the whole unit
  // Further into the unit: the prefix is extended by the decoder that stopped
  // at its end (no re-prime), to the chunk holding the new read.
  EXPECT_EQ(ReadRange(c, 300000, 100), l.raw.substr(300000, 100));
  EXPECT_EQ(c.stats().decoded_bytes, 320u << 10);
  EXPECT_EQ(c.stats().reprimes, 1u);
  // Inside the prefix: a hit.
  const uint64_t before = c.stats().decoded_bytes;
  EXPECT_EQ(ReadRange(c, 5000, 200000), l.raw.substr(5000, 200000));
  EXPECT_EQ(c.stats().decoded_bytes, before);
}

// Fine points (index/fine_points.h) inside a large file: units are still
// cut at the other points only (a sequential reader decodes each byte once),
// and a random read decodes from the fine point at or before it, only to
// the page holding the end of what it asked for.
TEST(StreamCache, FinePointsServeRandomReadsWithoutCuttingUnits) {
  std::mt19937 rng(4);
  std::string raw;
  while (raw.size() < (3u << 20)) {
    for (int i = 0; i < (200 << 10); ++i) raw.push_back(static_cast<char>(rng()));
    raw += Compressible(100 << 10, static_cast<unsigned>(raw.size()));
  }
  const std::string blob = Gzip(raw);
  FineRanges fine;
  fine.Add(0, raw.size());
  auto d = StreamDecoder::Create(Compression::kGzip, "fine", 1 << 20, InflateEngine::kIsal, &fine);
  const OutputFn sink = [](std::span<const uint8_t>) { return Status::Ok(); };
  ASSERT_TRUE(d->Feed(Bytes(blob), sink).ok());
  ASSERT_TRUE(d->Finish(sink).ok());
  auto table = std::make_shared<const CheckpointTable>(d->TakeCheckpoints());
  auto content_for = [&] {
    std::vector<LayerBlob> layers;
    layers.push_back(LayerBlob{"sha256:l0", MemoryByteSource(Bytes(blob), "blob sha256:l0"), table});
    return std::make_shared<const ImageContent>(std::move(layers));
  };
  std::vector<uint64_t> fine_at, unit_at;
  for (const Checkpoint& p : table->points) (p.fine ? fine_at : unit_at).push_back(p.out_offset);
  ASSERT_GT(fine_at.size(), 20u);
  StreamCacheOptions o = Opts(0);
  o.max_unit_bytes = 8 << 20;
  {
    StreamCache c(content_for(), o);
    for (uint64_t f : fine_at) {
      const StreamCache::Unit u = c.UnitAt(0, f);
      EXPECT_TRUE(std::find(unit_at.begin(), unit_at.end(), u.start) != unit_at.end()) << f;
      EXPECT_LT(u.start, f);
    }
    // A cold read well inside a unit, a little after a fine point.
    const uint64_t f = fine_at[fine_at.size() / 2];
    ASSERT_GT(f - c.UnitAt(0, f).start, 128u << 10);
    EXPECT_EQ(ReadRange(c, f + 5000, 4096), raw.substr(f + 5000, 4096));
    EXPECT_LE(c.stats().decoded_bytes, 12288u);  // to the page holding the read's end
  }
  StreamCache c(content_for(), o);
  std::string got;
  for (uint64_t off = 0; off < raw.size(); off += 65536) got += ReadRange(c, off, 65536);
  ASSERT_EQ(got, raw);
  EXPECT_EQ(c.stats().decoded_bytes, raw.size());  // sequential: whole units, no byte twice
  EXPECT_LE(c.stats().reprimes, unit_at.size());
}

// Policy 3 tables record stored blocks (incompressible data): a random
// read inside one is a read of the blob's bytes, through the verified
// source, with nothing decoded; a read that runs past the block's end is
// decoded as before; a flipped byte in a stored block fails the reads of
// its chunk and no other.
TEST(StreamCache, RandomReadsInStoredBlocksReadTheBlob) {
  std::mt19937 rng(8);
  std::string raw;
  while (raw.size() < (3u << 20)) {
    for (int i = 0; i < (300 << 10); ++i) raw.push_back(static_cast<char>(rng()));
    raw += Compressible(100 << 10, static_cast<unsigned>(raw.size()));
  }
  const std::string blob = Gzip(raw);
  FineRanges fine;
  fine.policy = kFinePolicyV3;
  fine.blob_size = blob.size();
  fine.Add(0, raw.size());
  auto d = StreamDecoder::Create(Compression::kGzip, "stored", 1 << 20, InflateEngine::kIsal, &fine);
  const OutputFn sink = [](std::span<const uint8_t>) { return Status::Ok(); };
  ASSERT_TRUE(d->Feed(Bytes(blob), sink).ok());
  ASSERT_TRUE(d->Finish(sink).ok());
  auto table = std::make_shared<const CheckpointTable>(d->TakeCheckpoints());
  std::vector<const Checkpoint*> stored;
  for (const Checkpoint& p : table->points) {
    if (p.StoredBytes() >= 16384) stored.push_back(&p);
  }
  ASSERT_GT(stored.size(), 20u);
  auto chunks = std::make_shared<const ChunkDigests>(ChunkDigestsOf(Bytes(blob)));
  auto content_for = [&](const std::string& bytes) {
    std::vector<LayerBlob> layers;
    layers.push_back(LayerBlob{"sha256:l0", NewVerifiedByteSource(MemoryByteSource(Bytes(bytes), "blob sha256:l0"), chunks),
                               table});
    return std::make_shared<const ImageContent>(std::move(layers));
  };
  StreamCacheOptions o = Opts(0);
  o.max_unit_bytes = 8 << 20;
  {
    StreamCache c(content_for(blob), o);
    size_t reads = 0;
    // From the end back: reads a little after a recent one would look sequential.
    for (size_t i = stored.size(); i-- > 0;) {
      const Checkpoint& p = *stored[i];
      const uint64_t off = p.out_offset + (p.StoredBytes() - 4096) / 2;
      EXPECT_EQ(ReadRange(c, off, 4096), raw.substr(off, 4096)) << off;
      ++reads;
    }
    EXPECT_EQ(c.stats().stored_reads, reads);
    EXPECT_EQ(c.stats().decoded_bytes, 0u);
    // Past a stored block's end into the next stored block, whose point is
    // at that end: both read from the blob. Into coded data after the last
    // block of a random run: the rest decoded from the point there. A read
    // past a block with no point at its end is decoded from the point before.
    size_t into_stored = 0, into_coded = 0;
    std::vector<const Checkpoint*> nexts;
    for (size_t i = 0; i + 1 < table->points.size(); ++i) {
      const Checkpoint& p = table->points[i];
      const Checkpoint& next = table->points[i + 1];
      if (p.stored_blocks.empty() || next.out_offset != p.out_offset + p.StoredBytes()) continue;
      if (!next.stored_blocks.empty() ? into_stored++ >= 3 : into_coded++ >= 3) continue;
      nexts.push_back(&next);
    }
    // In a fresh cache (the reads above would make some look sequential),
    // from the end back again.
    StreamCache fresh(content_for(blob), o);
    for (auto it = nexts.rbegin(); it != nexts.rend(); ++it) {
      const Checkpoint& next = **it;
      const StreamCacheStats before = fresh.stats();
      const uint64_t off = next.out_offset - 100;
      EXPECT_EQ(ReadRange(fresh, off, 4096), raw.substr(off, 4096)) << off;
      EXPECT_EQ(fresh.stats().stored_reads, before.stored_reads + (!next.stored_blocks.empty() ? 2 : 1)) << off;
      if (!next.stored_blocks.empty()) {
        EXPECT_EQ(fresh.stats().decoded_bytes, before.decoded_bytes);
      } else {
        EXPECT_GT(fresh.stats().decoded_bytes, before.decoded_bytes);
      }
    }
    EXPECT_GT(into_stored, 0u);  // (into coded data only where that point kept a cut window)
  }
  {
    // Without a cache (--cache-size 0) too.
    StreamCacheOptions none = o;
    none.capacity_bytes = 0;
    StreamCache c(content_for(blob), none);
    for (size_t i = 0; i < stored.size(); i += 3) {
      const uint64_t off = stored[i]->out_offset + 1000;
      EXPECT_EQ(ReadRange(c, off, 4096), raw.substr(off, 4096)) << off;
    }
    EXPECT_EQ(c.stats().stored_reads, (stored.size() + 2) / 3);
    EXPECT_EQ(c.stats().decoded_bytes, 0u);
  }
  // A flipped byte inside one stored block: that chunk's reads fail, the rest read.
  const Checkpoint& hit = *stored[stored.size() / 2];
  uint64_t flip_in = 0, left = 0;
  hit.StoredAt(hit.out_offset + hit.StoredBytes() / 2, &flip_in, &left);
  std::string bad = blob;
  bad[flip_in] ^= 0x40;
  StreamCache c(content_for(bad), o);
  const uint64_t flip_out = hit.out_offset + hit.StoredBytes() / 2;
  std::string out(4096, '\0');
  size_t n = 0;
  Status st = c.Read(0, flip_out - 1000, {reinterpret_cast<uint8_t*>(out.data()), out.size()}, &n);
  EXPECT_EQ(st.code(), ErrorCode::kCorruption) << st.ToString();
  const Checkpoint& other = *stored[2];
  const uint64_t off = other.out_offset + 100;
  EXPECT_EQ(ReadRange(c, off, 4096), raw.substr(off, 4096));
}

// Random reads inside a large file stay fine pieces: a read that crosses a
// fine point is not the next read of a sequential reader (its first piece's
// end made the rest look like one: the whole unit after the point was
// decoded), nor is a read in the unit after a recently read unit (random
// reads over a big file land in neighbouring units often; each such pair
// decoded a whole unit and read ahead).
TEST(StreamCache, RandomReadsAcrossFinePointsAndUnitsStayFinePieces) {
  std::mt19937 rng(7);
  std::string raw;
  while (raw.size() < (6u << 20)) raw.push_back(static_cast<char>(rng()));  // stored blocks: fine points every ~32-64 KiB
  const std::string blob = Gzip(raw);
  FineRanges fine;
  fine.Add(0, raw.size());
  auto d = StreamDecoder::Create(Compression::kGzip, "fine", 1 << 20, InflateEngine::kIsal, &fine);
  const OutputFn sink = [](std::span<const uint8_t>) { return Status::Ok(); };
  ASSERT_TRUE(d->Feed(Bytes(blob), sink).ok());
  ASSERT_TRUE(d->Finish(sink).ok());
  auto table = std::make_shared<const CheckpointTable>(d->TakeCheckpoints());
  std::vector<LayerBlob> layers;
  layers.push_back(LayerBlob{"sha256:l0", MemoryByteSource(Bytes(blob), "blob sha256:l0"), table});
  auto content = std::make_shared<const ImageContent>(std::move(layers));
  std::vector<uint64_t> fine_at;
  for (const Checkpoint& p : table->points) {
    if (p.fine) fine_at.push_back(p.out_offset);
  }
  ASSERT_GT(fine_at.size(), 40u);
  StreamCacheOptions o = Opts(0);
  o.max_unit_bytes = 8 << 20;
  StreamCache c(content, o);
  // Across a fine point in the middle of a unit: two fine pieces.
  const size_t k = fine_at.size() / 3;
  ASSERT_GT(fine_at[k] - c.UnitAt(0, fine_at[k]).start, 256u << 10);
  const uint64_t across = fine_at[k] - 2000;
  EXPECT_EQ(ReadRange(c, across, 4096), raw.substr(across, 4096));
  EXPECT_LE(c.stats().decoded_bytes, (fine_at[k] - fine_at[k - 1]) + 4096u);
  // The middle of one unit, then the middle of the next one (a fresh cache:
  // no unit read before).
  StreamCache c2(content, o);
  const StreamCache::Unit u1 = c2.UnitAt(0, 2 << 20);
  ASSERT_LT(u1.end, raw.size() - (256 << 10));
  const StreamCache::Unit u2 = c2.UnitAt(0, u1.end);
  const uint64_t a = (u1.start + u1.end) / 2, b = (u2.start + u2.end) / 2;
  ASSERT_GT(b - a, 128u << 10);
  EXPECT_EQ(ReadRange(c2, a, 4096), raw.substr(a, 4096));
  EXPECT_EQ(ReadRange(c2, b, 4096), raw.substr(b, 4096));
  // Each from the fine point before it: at most a fine gap plus 32 KiB each.
  uint64_t gap = 0;
  for (size_t i = 1; i < fine_at.size(); ++i) gap = std::max(gap, fine_at[i] - fine_at[i - 1]);
  EXPECT_LE(c2.stats().decoded_bytes, 2 * (gap + 4096u));
  EXPECT_LT(c2.stats().decoded_bytes, u2.end - u2.start);
  // Read in order, the same file is still decoded in whole units, each once.
  StreamCache seq(content, o);
  std::string got;
  for (uint64_t off = 0; off < raw.size(); off += 4096) got += ReadRange(seq, off, 4096);
  ASSERT_EQ(got, raw);
  EXPECT_EQ(seq.stats().decoded_bytes, raw.size());
}

TEST(StreamCache, WithoutACacheSequentialReadsStayWarm) {
  Layer l(Compressible(2 << 20, 13), Compression::kGzip, 256 << 10);
  StreamCache c(l.content, Opts(2, 0));
  std::string got;
  for (uint64_t off = 0; off < l.raw.size(); off += 5000) got += ReadRange(c, off, 5000);
  ASSERT_EQ(got, l.raw);
  EXPECT_EQ(c.stats().decoded_bytes, l.raw.size());  // nothing decoded twice
  EXPECT_EQ(c.stats().reprimes, 1u);                 // one decoder carried through
  EXPECT_EQ(c.stats().cache.insertions, 0u);
  EXPECT_EQ(ReadRange(c, 1000, 100), l.raw.substr(1000, 100));  // and backwards works
}

TEST(StreamCache, RandomReadersGetNoReadAhead) {
  Layer l(Compressible(4 << 20, 4), Compression::kGzip, 256 << 10);
  StreamCache c(l.content, Opts(2));
  // Units visited backwards are never "the next unit" of a previous access.
  for (size_t i = l.table->points.size(); i-- > 0;) {
    const uint64_t off = l.table->points[i].out_offset + 100;
    ASSERT_EQ(ReadRange(c, off, 50), l.raw.substr(off, 50));
  }
  EXPECT_EQ(c.stats().prefetched_units, 0u);
  EXPECT_EQ(c.stats().decoded_units, l.table->points.size());
}

TEST(StreamCache, OneFrameZstdIsDecodedOnceFromTheStartWhenReadInOrder) {
  Layer l(Compressible(2 << 20, 5), Compression::kZstd, 256 << 10);
  StreamCache c(l.content, Opts(2));
  std::string got;
  for (uint64_t off = 0; off < l.raw.size(); off += 10000) got += ReadRange(c, off, 10000);
  ASSERT_EQ(got, l.raw);
  // The decoder is handed from block to block (and to the read-ahead worker):
  // the frame is primed exactly once.
  EXPECT_EQ(c.stats().reprimes, 1u);
  EXPECT_EQ(c.stats().decoded_units, 16u);
  // A random block later on still reads right (decoding from the frame start).
  StreamCache cold(l.content, Opts(0));
  EXPECT_EQ(ReadRange(cold, 1500000, 3000), l.raw.substr(1500000, 3000));
}

// UnitCopies in memory: what a mount's store keeps as files.
class MemoryCopies final : public UnitCopies {
 public:
  bool Load(uint32_t layer, uint64_t start, std::span<uint8_t> out) override {
    std::lock_guard lock(mu);
    ++loads;
    auto it = copies.find({layer, start});
    if (it == copies.end() || it->second.size() != out.size()) return false;
    std::copy(it->second.begin(), it->second.end(), out.begin());
    return true;
  }
  bool Has(uint32_t layer, uint64_t start, uint64_t length) override {
    std::lock_guard lock(mu);
    auto it = copies.find({layer, start});
    return it != copies.end() && it->second.size() == length;
  }
  void Save(uint32_t layer, uint64_t start, std::span<const uint8_t> bytes) override {
    std::lock_guard lock(mu);
    copies[{layer, start}].assign(bytes.begin(), bytes.end());
  }
  std::mutex mu;
  std::map<std::pair<uint32_t, uint64_t>, std::string> copies;
  uint64_t loads = 0;
};

TEST(StreamCache, OneFrameZstdColdReadsCatchUpOnceLeavingCopiesThenReadThem) {
  Layer l(Compressible(2 << 20, 6), Compression::kZstd, 256 << 10);
  auto copies = std::make_shared<MemoryCopies>();
  StreamCacheOptions o = Opts(0);
  o.unit_copies = copies;
  {
    StreamCache c(l.content, o);
    // A cold read near the end passes every block before it: each gets a copy.
    EXPECT_EQ(ReadRange(c, 1900000, 4096), l.raw.substr(1900000, 4096));
    // Blocks 1..14 of 16 (the one read is copied too; the last is not
    // passed; block 0 starts at the checkpoint: a copy of it would never be read).
    EXPECT_EQ(copies->copies.size(), 14u);
    EXPECT_EQ(copies->copies.count({0, 0}), 0u);
    for (const auto& [key, bytes] : copies->copies) EXPECT_EQ(bytes, l.raw.substr(key.second, bytes.size()));
  }
  // A fresh cache (the next mount): cold random reads decode nothing.
  StreamCache c(l.content, o);
  std::mt19937 rng(4);
  for (int i = 0; i < 50; ++i) {
    const uint64_t off = (128 << 10) + rng() % (1800000 - (128 << 10));  // block 0 starts at the checkpoint: no copy needed
    ASSERT_EQ(ReadRange(c, off, 4096), l.raw.substr(off, 4096)) << off;
  }
  EXPECT_EQ(c.stats().decoded_bytes, 0u);
  EXPECT_GT(c.stats().copy_loads, 0u);
  // A copy that does not match its unit is never used: the unit is decoded.
  copies->copies[{0, 128 << 10}] = "short";
  StreamCache d(l.content, o);
  EXPECT_EQ(ReadRange(d, (128 << 10) + 10, 4096), l.raw.substr((128 << 10) + 10, 4096));
  EXPECT_GT(d.stats().decoded_bytes, 0u);
}

TEST(StreamCache, ReadsSpanningUnitsAndTheEnd) {
  Layer l(Compressible(1 << 20, 6), Compression::kGzip, 64 << 10);
  StreamCache c(l.content, Opts(1, 256 << 10));  // a small cache: evictions on the way
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    uint64_t off = rng() % (l.raw.size() + 1000);
    size_t len = rng() % 300000 + 1;
    std::string want = off < l.raw.size() ? l.raw.substr(off, len) : std::string();
    ASSERT_EQ(ReadRange(c, off, len), want) << off << " " << len;
  }
  EXPECT_LE(c.stats().cache.bytes, 256u << 10);
}

TEST(StreamCache, ConcurrentMissesOnOneUnitDecodeItOnce) {
  Layer l(Compressible(2 << 20, 8), Compression::kGzip, 1 << 20);
  StreamCache c(l.content, Opts(0));
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      if (ReadRange(c, 4096, 65536) != l.raw.substr(4096, 65536)) ++bad;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(c.stats().decoded_units, 1u);
}

TEST(StreamCache, ManyThreadsSequentialAndRandomWithTinyCache) {
  Layer l(Compressible(3 << 20, 9), Compression::kGzip, 128 << 10);
  StreamCache c(l.content, Opts(2, 512 << 10));
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      uint64_t seq = (l.raw.size() / 6) * t;
      for (int i = 0; i < 150; ++i) {
        uint64_t off = (t % 2) ? rng() % l.raw.size() : seq;
        seq = (seq + 40000) % l.raw.size();
        std::string want = l.raw.substr(off, 40000);
        if (ReadRange(c, off, 40000) != want) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_LE(c.stats().cache.bytes, 512u << 10);
}

TEST(StreamCache, PlainLayersArePreadsAndCacheNothing) {
  Layer l(Compressible(300000, 10), Compression::kNone, 64 << 10);
  StreamCache c(l.content, Opts(2));
  EXPECT_EQ(ReadRange(c, 1000, 5000), l.raw.substr(1000, 5000));
  EXPECT_EQ(ReadRange(c, 299990, 100), l.raw.substr(299990));
  EXPECT_EQ(c.stats().cache.insertions, 0u);
  EXPECT_EQ(c.stats().decoded_units, 0u);
}

TEST(StreamCache, ATruncatedBlobFailsItsUnitsAndKeepsTheGoodOnes) {
  const std::string raw = Compressible(2 << 20, 11);
  const std::string full = Gzip(raw);
  Layer l(raw, Compression::kGzip, 256 << 10, full.substr(0, full.size() / 2));
  StreamCache c(l.content, Opts(2));
  std::vector<uint8_t> buf(4096);
  size_t n = 0;
  Status st = c.Read(0, raw.size() - 5000, buf, &n);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("offset"), std::string::npos) << st.ToString();
  // Asking again fails again (nothing half-decoded was cached) ...
  EXPECT_FALSE(c.Read(0, raw.size() - 5000, buf, &n).ok());
  // ... and the intact first half still reads.
  EXPECT_EQ(ReadRange(c, 1000, 4096), raw.substr(1000, 4096));
}

// Many layers: blobs kept alive beside the content that reads them.
struct Layers {
  std::vector<std::string> raw, blobs;
  std::shared_ptr<const ImageContent> content;
};

Layers ManyLayers(int gzip, int zstd, size_t raw_bytes) {
  Layers ls;
  for (int i = 0; i < gzip + zstd; ++i) ls.raw.push_back(Compressible(raw_bytes, 100 + static_cast<unsigned>(i)));
  for (int i = 0; i < gzip + zstd; ++i) ls.blobs.push_back(i < gzip ? Gzip(ls.raw[i]) : Zstd(ls.raw[i]));
  std::vector<LayerBlob> layers;
  for (int i = 0; i < gzip + zstd; ++i) {
    const Compression c = i < gzip ? Compression::kGzip : Compression::kZstd;
    auto table = std::make_shared<const CheckpointTable>(TableFor(ls.blobs[i], c, 128 << 10));
    const std::string name = "sha256:l" + std::to_string(i);
    layers.push_back(LayerBlob{name, MemoryByteSource(Bytes(ls.blobs[i]), "blob " + name), table});
  }
  ls.content = std::make_shared<const ImageContent>(std::move(layers));
  return ls;
}

// Idle decoders are bounded over all layers by their bytes: readers of 40
// layers at once leave at most idle_decoder_bytes of them, freeing the least
// recently used (counted, not timed).
TEST(StreamCache, IdleDecodersStayWithinTheByteBoundAcrossLayers) {
  Layers ls = ManyLayers(20, 20, 600 << 10);
  StreamCacheOptions o = Opts(0, 1 << 20);  // no read-ahead: every decoder is back once the readers are done
  o.idle_decoder_bytes = 4 << 20;
  StreamCache c(ls.content, o);
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 200; ++i) {
        const uint32_t layer = static_cast<uint32_t>(rng() % ls.raw.size());
        const uint64_t off = rng() % (ls.raw[layer].size() - 5000);
        std::string out(5000, '\0');
        size_t n = 0;
        Status st = c.Read(layer, off, {reinterpret_cast<uint8_t*>(out.data()), out.size()}, &n);
        if (!st.ok() || out != ls.raw[layer].substr(off, 5000)) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  const StreamCacheStats s = c.stats();
  EXPECT_LE(s.idle_decoder_bytes, 4u << 20);
  EXPECT_LE(s.peak_idle_decoder_bytes, 4u << 20);
  EXPECT_GT(s.freed_decoders, 0u) << "the bound never had to act: the test reads too little";
  EXPECT_GT(s.idle_decoders, 0u);
  EXPECT_EQ(s.live_decoders, s.idle_decoders) << "a decoder in use was not returned";
  // Without the byte bound the per-layer count alone would keep up to 4 per layer.
  EXPECT_LT(s.idle_decoders, 4u * 40u);
}

// A decoder larger than the whole idle bound (a zstd frame with a big window
// holds the window) is kept outside the bound, but only one: the latest.
TEST(StreamCache, OneDecoderOverTheIdleBoundIsKept) {
  Layers ls = ManyLayers(0, 2, 6 << 20);
  StreamCacheOptions o = Opts(0, 0);  // no cache: reads go straight through pooled decoders
  o.idle_decoder_bytes = 1 << 20;
  StreamCache c(ls.content, o);
  std::string out(4096, '\0');
  size_t n = 0;
  for (uint32_t layer : {0u, 1u, 0u}) {
    ASSERT_TRUE(c.Read(layer, 5 << 20, {reinterpret_cast<uint8_t*>(out.data()), out.size()}, &n).ok());
    EXPECT_EQ(out, ls.raw[layer].substr(5 << 20, 4096));
  }
  const StreamCacheStats s = c.stats();
  EXPECT_EQ(s.idle_decoders, 1u);
  EXPECT_EQ(s.idle_decoder_bytes, 0u);
  EXPECT_GT(s.large_idle_decoder_bytes, 1u << 20);
  EXPECT_EQ(s.freed_decoders, 2u);
  EXPECT_EQ(s.live_decoders, 1u);
  EXPECT_EQ(s.peak_live_decoders, 2u);  // the idle one and the one reading
}

// A blob whose reads throw (out of memory deep in a decoder): foreground
// reads fail with an error naming the layer, read-ahead workers carry on, and
// no decoder stays counted as in use.
class ThrowingSource final : public ByteSource {
 public:
  explicit ThrowingSource(std::unique_ptr<ByteSource> inner) : inner_(std::move(inner)) {}
  Status ReadAt(uint64_t, std::span<uint8_t>, size_t*) const override { throw std::bad_alloc(); }
  uint64_t Size() const override { return inner_->Size(); }
  const std::string& Name() const override { return inner_->Name(); }

 private:
  std::unique_ptr<ByteSource> inner_;
};

TEST(StreamCache, AThrowingDecoderBecomesAnError) {
  const std::string raw = Compressible(1 << 20, 21);
  const std::string blob = Gzip(raw);
  auto table = std::make_shared<const CheckpointTable>(TableFor(blob, Compression::kGzip, 128 << 10));
  std::vector<LayerBlob> layers;
  layers.push_back(LayerBlob{"sha256:l0", std::make_unique<ThrowingSource>(MemoryByteSource(Bytes(blob), "blob")), table});
  auto content = std::make_shared<const ImageContent>(std::move(layers));
  StreamCache c(content, Opts(2));
  std::vector<uint8_t> buf(4096);
  for (uint64_t off = 0; off < raw.size(); off += 4096) {  // sequential: read-ahead jobs are queued and throw too
    size_t n = 0;
    Status st = c.Read(0, off, buf, &n);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("sha256:l0"), std::string::npos) << st.ToString();
    EXPECT_NE(st.message().find("out of memory"), std::string::npos) << st.ToString();
  }
  EXPECT_EQ(c.stats().idle_decoders, 0u);
}

// What a decoder says it holds follows its window: a zstd decoder that
// decoded a 6 MiB frame holds megabytes, a gzip one well under one.
TEST(StreamCache, DecoderMemoryIsReported) {
  Layers ls = ManyLayers(1, 1, 6 << 20);
  std::vector<uint8_t> buf(4096);
  size_t n = 0;
  auto gz = ls.content->NewReader(0);
  auto zs = ls.content->NewReader(1);
  ASSERT_TRUE(gz->Read(5 << 20, buf, &n).ok());
  ASSERT_TRUE(zs->Read(5 << 20, buf, &n).ok());
  EXPECT_GT(gz->memory_bytes(), 32u << 10);
  EXPECT_LT(gz->memory_bytes(), 1u << 20);
  EXPECT_GT(zs->memory_bytes(), 2u << 20);
}

// Readers of many zstd layers at once, read-ahead included, under a decoder
// budget far smaller than what they would hold unbounded: every byte is
// right, and whenever two or more decoders held charges their total stayed
// within the budget (counted, not timed). Readers had to wait or skip.
TEST(StreamCache, DecodersInUseStayWithinTheBudget) {
  Layers ls = ManyLayers(2, 6, 3 << 20);
  StreamCacheOptions o = Opts(2, 4 << 20);
  o.decoder_bytes = 8 << 20;
  o.idle_decoder_bytes = 4 << 20;
  StreamCache c(ls.content, o);
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(50 + t);
      for (int i = 0; i < 60; ++i) {
        const uint32_t layer = static_cast<uint32_t>(rng() % ls.raw.size());
        // Half sequential runs (read-ahead), half random reads deep in a frame.
        uint64_t off = rng() % (ls.raw[layer].size() - (64 << 10));
        const int run = i % 2 ? 8 : 1;
        for (int k = 0; k < run && off + 8192 <= ls.raw[layer].size(); ++k, off += 8192) {
          std::string out(8192, '\0');
          size_t n = 0;
          Status st = c.Read(layer, off, {reinterpret_cast<uint8_t*>(out.data()), out.size()}, &n);
          if (!st.ok() || out != ls.raw[layer].substr(off, 8192)) ++bad;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  // Read-ahead workers may still be decoding a unit: wait until they are idle.
  for (int i = 0; i < 1000 && c.stats().live_decoders != c.stats().idle_decoders; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const StreamCacheStats s = c.stats();
  EXPECT_LE(s.peak_shared_decoder_bytes, 8u << 20);
  EXPECT_GT(s.peak_decoder_bytes, 2u << 20) << "the readers held too little to test the budget";
  EXPECT_GT(s.memory_waits + s.memory_skips, 0u) << "the budget never had to act";
  EXPECT_EQ(s.decoder_bytes, s.idle_decoder_bytes + s.large_idle_decoder_bytes) << "a charge was not returned";
  EXPECT_EQ(s.live_decoders, s.idle_decoders) << "a decoder in use was not returned";
}

// A decoder that needs more than the whole budget (a deep read in a
// single-frame zstd layer) still runs, alone: concurrent readers make
// progress one after the other and no two charges ever add up over it.
TEST(StreamCache, ADecoderOverTheBudgetRunsAlone) {
  Layers ls = ManyLayers(0, 3, 4 << 20);
  for (uint64_t capacity : {uint64_t{0}, uint64_t{2} << 20}) {
    StreamCacheOptions o = Opts(2, capacity);
    o.decoder_bytes = 1 << 20;
    StreamCache c(ls.content, o);
    std::vector<std::thread> threads;
    std::atomic<int> bad{0};
    for (int t = 0; t < 6; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(70 + t);
        for (int i = 0; i < 10; ++i) {
          const uint32_t layer = static_cast<uint32_t>(rng() % ls.raw.size());
          const uint64_t off = (2 << 20) + rng() % (1 << 20);
          std::string out(4096, '\0');
          size_t n = 0;
          Status st = c.Read(layer, off, {reinterpret_cast<uint8_t*>(out.data()), out.size()}, &n);
          if (!st.ok() || out != ls.raw[layer].substr(off, 4096)) ++bad;
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(bad.load(), 0);
    for (int i = 0; i < 1000 && c.stats().live_decoders != c.stats().idle_decoders; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const StreamCacheStats s = c.stats();
    EXPECT_GT(s.alone_grants, 0u);
    EXPECT_GT(s.peak_decoder_bytes, 1u << 20);
    EXPECT_LE(s.peak_shared_decoder_bytes, 1u << 20);
    EXPECT_LE(s.idle_decoders, 1u);  // over the budget, only one may stay
    EXPECT_EQ(s.live_decoders, s.idle_decoders);
  }
}

// What a decoder may grow to is known before it decodes: a zstd one up to
// the largest window the pull accepts, a gzip one a few hundred KiB.
TEST(StreamCache, DecoderCeilingIsKnownBeforeDecoding) {
  Layers ls = ManyLayers(1, 1, 1 << 20);
  auto gz = ls.content->NewReader(0);
  auto zs = ls.content->NewReader(1);
  EXPECT_LT(gz->max_memory_bytes(), 1u << 20);
  EXPECT_GT(zs->max_memory_bytes(), 512u << 20);
  EXPECT_LT(zs->max_memory_bytes(), 514u << 20);
  std::vector<uint8_t> buf(4096);
  size_t n = 0;
  ASSERT_TRUE(gz->Read(900 << 10, buf, &n).ok());
  ASSERT_TRUE(zs->Read(900 << 10, buf, &n).ok());
  EXPECT_LE(gz->memory_bytes(), gz->max_memory_bytes());
  EXPECT_LE(zs->memory_bytes(), zs->max_memory_bytes());
}

// Deep cold reads in single-frame zstd layers whose window is small are
// charged the window limit, not every byte decoded: they share the budget
// (none alone). Without the limit each would be charged ~7 MiB, over it.
TEST(StreamCache, AWindowLimitKeepsDeepReadsWithinTheBudget) {
  std::vector<std::string> raw, blobs;
  std::vector<LayerBlob> layers;
  for (int i = 0; i < 3; ++i) {
    raw.push_back(Compressible(8 << 20, 300 + static_cast<unsigned>(i)));
    blobs.push_back(Zstd(raw.back(), 1));  // level 1: a 512 KiB window, smaller than the frame
    auto table = std::make_shared<const CheckpointTable>(TableFor(blobs.back(), Compression::kZstd, 128 << 10));
    ASSERT_EQ(table->points.size(), 1u);
    const std::string name = "sha256:w" + std::to_string(i);
    layers.push_back(LayerBlob{name, MemoryByteSource(Bytes(blobs.back()), "blob " + name), table});
  }
  auto content = std::make_shared<const ImageContent>(std::move(layers));
  for (uint64_t limit : {uint64_t{1} << 20, uint64_t{0}}) {
    StreamCacheOptions o = Opts(0, 0);
    o.decoder_bytes = 3 << 20;
    o.window_limit_bytes = limit;
    StreamCache c(content, o);
    std::vector<std::thread> threads;
    std::atomic<int> bad{0};
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(90 + t);
        for (int i = 0; i < 4; ++i) {
          const uint32_t layer = static_cast<uint32_t>(rng() % raw.size());
          const uint64_t off = (7 << 20) + rng() % (512 << 10);
          std::string out(4096, '\0');
          size_t n = 0;
          Status st = c.Read(layer, off, {reinterpret_cast<uint8_t*>(out.data()), out.size()}, &n);
          if (!st.ok() || out != raw[layer].substr(off, 4096)) ++bad;
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(bad.load(), 0);
    const StreamCacheStats s = c.stats();
    EXPECT_EQ(s.window_retries, 0u);
    EXPECT_LE(s.peak_shared_decoder_bytes, 3u << 20);
    if (limit != 0) {
      EXPECT_EQ(s.alone_grants, 0u) << "deep reads were charged more than the window";
    } else {
      EXPECT_GT(s.alone_grants, 0u);
    }
  }
}

// A frame whose window is over the limit fails before its window is
// allocated; the read is charged the pull's limit and tried again, once for
// the layer: later reads go straight to the larger charge.
TEST(StreamCache, AFrameOverTheWindowLimitIsRetriedWithTheLargerCharge) {
  Layers ls = ManyLayers(0, 1, 4 << 20);  // one frame declaring its 4 MiB size as its window
  StreamCacheOptions o = Opts(0, 0);
  o.window_limit_bytes = 1 << 20;
  StreamCache c(ls.content, o);
  for (uint64_t off : {uint64_t{3} << 20, uint64_t{1} << 20, uint64_t{2} << 20}) {
    std::string out(4096, '\0');
    size_t n = 0;
    Status st = c.Read(0, off, {reinterpret_cast<uint8_t*>(out.data()), out.size()}, &n);
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(out, ls.raw[0].substr(off, 4096));
  }
  EXPECT_EQ(c.stats().window_retries, 1u);
}

// Many readers meeting frames over the window limit at once, under a small
// budget: the retries (which enter the line for memory holding a charge)
// leave no reader waiting forever, and every byte is right.
TEST(StreamCache, WindowRetriesUnderContentionAllFinish) {
  Layers ls = ManyLayers(0, 4, 3 << 20);
  for (uint64_t capacity : {uint64_t{0}, uint64_t{1} << 20}) {
    StreamCacheOptions o = Opts(2, capacity);
    o.window_limit_bytes = 1 << 20;
    o.decoder_bytes = 4 << 20;
    StreamCache c(ls.content, o);
    std::vector<std::thread> threads;
    std::atomic<int> bad{0};
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(120 + t);
        for (int i = 0; i < 8; ++i) {
          const uint32_t layer = static_cast<uint32_t>(rng() % ls.raw.size());
          const uint64_t off = rng() % (ls.raw[layer].size() - 4096);
          std::string out(4096, '\0');
          size_t n = 0;
          Status st = c.Read(layer, off, {reinterpret_cast<uint8_t*>(out.data()), out.size()}, &n);
          if (!st.ok() || out != ls.raw[layer].substr(off, 4096)) ++bad;
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(bad.load(), 0);
    for (int i = 0; i < 1000 && c.stats().live_decoders != c.stats().idle_decoders; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const StreamCacheStats s = c.stats();
    EXPECT_GE(s.window_retries, 4u);
    EXPECT_LE(s.peak_shared_decoder_bytes, 4u << 20);
    EXPECT_EQ(s.live_decoders, s.idle_decoders);
  }
}

}  // namespace
}  // namespace lazyroot
