// Fine point policy 3 (fine_points.h, checkpoint.h): a block-boundary point
// whose block is a stored one records the block's length, and a random read
// there is a read of the blob. Pinned for both gzip passes and any chunking:
// every recorded block's bytes in the blob are the stream's bytes there
// (checked against the data, not against our own decoder), stored blocks
// are found where zlib wrote them, older policies record none, hostile
// lengths are refused. Also policy 3's mid-block budget, shared out of the
// whole blob: a compressible file at the start of a layer gets mid-block
// points as one after incompressible data does, within the same bound.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

#include "index/byte_source.h"
#include "index/fine_points.h"
#include "index/gzip_index.h"
#include "index/isal_midblock.h"
#include "index/layer_decoder.h"
#include "index/layer_index.h"
#include "index/layer_indexer.h"
#include "index/sha256.h"
#include "tests/unit/compressed_fixtures.h"
#include "tests/unit/index_tar_test_builder.h"

namespace lazyroot {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes RandomRun(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  Bytes out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

Bytes LogLines(size_t n, unsigned first) {
  Bytes out;
  char line[64];
  for (unsigned i = first; out.size() < n; ++i) {
    const int len = std::snprintf(line, sizeof line, "line %08u of a compressible log file\n", i);
    out.insert(out.end(), line, line + len);
  }
  out.resize(n);
  return out;
}

// Random runs (stored blocks) between text runs (coded blocks).
Bytes Mixed(size_t runs, unsigned seed) {
  Bytes out;
  for (size_t r = 0; r < runs; ++r) {
    const Bytes run = r % 2 == 0 ? RandomRun(300 << 10, seed + static_cast<unsigned>(r)) : LogLines(200 << 10, 1000 * r);
    out.insert(out.end(), run.begin(), run.end());
  }
  return out;
}

CheckpointTable Build(const Bytes& blob, uint64_t out_size, InflateEngine engine, uint8_t policy,
                      std::mt19937* chunking) {
  FineRanges fine;
  fine.policy = policy;
  fine.blob_size = blob.size();
  fine.Add(0, out_size);
  auto d = NewGzipStreamDecoder("layer test", 1 << 20, engine, &fine);
  const OutputFn sink = [](std::span<const uint8_t>) { return Status::Ok(); };
  for (size_t off = 0; off < blob.size();) {
    const size_t n = chunking == nullptr ? blob.size() : std::min<size_t>(blob.size() - off, 1 + (*chunking)() % 70000);
    EXPECT_TRUE(d->Feed(std::span<const uint8_t>(blob).subspan(off, n), sink).ok());
    off += n;
  }
  EXPECT_TRUE(d->Finish(sink).ok());
  return d->TakeCheckpoints();
}

// Every recorded stored block: the blob's bytes from its data offset are the
// data's bytes there, for its whole length (offsets walked here from the
// format's rule, not with Checkpoint::StoredAt). Returns the output bytes
// covered.
uint64_t ExpectStoredBlocksAreTheData(const CheckpointTable& t, const Bytes& blob, const Bytes& data) {
  uint64_t covered = 0;
  for (const Checkpoint& p : t.points) {
    if (p.stored_blocks.empty()) continue;
    EXPECT_FALSE(p.mid_block);
    uint64_t at = p.stored_data_offset(), out = p.out_offset;
    for (uint16_t len : p.stored_blocks) {
      EXPECT_LE(at + len, blob.size());
      EXPECT_LE(out + len, data.size());
      if (at + len > blob.size() || out + len > data.size()) return covered;
      EXPECT_TRUE(std::equal(blob.begin() + static_cast<ptrdiff_t>(at), blob.begin() + static_cast<ptrdiff_t>(at + len),
                             data.begin() + static_cast<ptrdiff_t>(out)))
          << "stored block at " << out << " of " << len << " bytes";
      if (len != 0) {  // (a flush marker holds no byte)
        uint64_t blob_at = 0, left = 0;
        p.StoredAt(out + len / 2, &blob_at, &left);
        EXPECT_EQ(blob_at, at + len / 2);
        EXPECT_EQ(left, len - len / 2);
      }
      at += len + 5;
      out += len;
      covered += len;
    }
    EXPECT_EQ(out - p.out_offset, p.StoredBytes());
  }
  return covered;
}

TEST(StoredPoints, EveryRecordedBlockIsTheDataInTheBlobWithBothPassesAndAnyChunking) {
  const Bytes data = Mixed(9, 3);
  // Two members, and one written at level 0 (stored blocks only, a byte
  // boundary anywhere) after one at level 6.
  const size_t half = data.size() / 2 + 777;
  Bytes blob = fixtures::Deflate(std::span<const uint8_t>(data).first(half), 31);
  const Bytes second = fixtures::Deflate(std::span<const uint8_t>(data).subspan(half), 31, 0);
  blob.insert(blob.end(), second.begin(), second.end());
  for (InflateEngine engine : {InflateEngine::kZlib, InflateEngine::kIsal}) {
    SCOPED_TRACE(engine == InflateEngine::kZlib ? "zlib" : "isal");
    const CheckpointTable whole = Build(blob, data.size(), engine, kFinePolicyV3, nullptr);
    EXPECT_EQ(whole.fine_policy, kFinePolicyV3);
    const uint64_t covered = ExpectStoredBlocksAreTheData(whole, blob, data);
    // The random runs: 3 in the first member, and the whole second member
    // (level 0), mostly covered (zlib writes ~16 KiB stored blocks at
    // level 6, a point's blocks reach the next point); the text never.
    uint64_t random_bytes = data.size() - half;
    for (size_t r = 0; r < 9; r += 2) {
      const uint64_t s = r / 2 * ((300u << 10) + (200u << 10)), e = s + (300u << 10);
      if (s < half) random_bytes += std::min<uint64_t>(e, half) - s;
    }
    EXPECT_GT(covered, random_bytes * 8 / 10) << covered << " of " << random_bytes;
    for (const Checkpoint& p : whole.points) {
      for (uint64_t out = p.out_offset; out < p.out_offset + p.StoredBytes() && out < half; out += 4096) {
        const uint64_t in_run = out % ((300u << 10) + (200u << 10));
        EXPECT_LT(in_run, 300u << 10) << "a stored block recorded in text at " << out;
      }
    }
    std::mt19937 rng(11);
    EXPECT_TRUE(Build(blob, data.size(), engine, kFinePolicyV3, &rng) == whole);
    // Serialised and parsed, the lengths stay.
    const std::string s = whole.Serialize();
    auto back = CheckpointTable::Parse(fixtures::Bytes(s), "t");
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(*back == whole);
    // Readers are unchanged by the lengths: every point reads the data.
    auto table = std::make_shared<const CheckpointTable>(whole);
    auto src = MemoryByteSource(blob, "blob");
    auto r = RandomReader::Create(table, src.get(), "blob");
    Bytes buf(20000);
    for (const Checkpoint& p : table->points) {
      size_t n = 0;
      ASSERT_TRUE(r->Read(p.out_offset, buf, &n).ok());
      ASSERT_TRUE(std::equal(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(n),
                             data.begin() + static_cast<ptrdiff_t>(p.out_offset)));
    }
    // Policy 2 records none, at the same points.
    const CheckpointTable v2 = Build(blob, data.size(), engine, kFinePolicyV2, nullptr);
    ASSERT_EQ(v2.points.size(), whole.points.size());
    for (size_t i = 0; i < v2.points.size(); ++i) {
      EXPECT_TRUE(v2.points[i].stored_blocks.empty());
      EXPECT_EQ(v2.points[i].out_offset, whole.points[i].out_offset);
    }
  }
}

// Random data written with a flush every `every` bytes: stored blocks, each
// followed by a flush marker (an empty stored block) in one gzip member.
Bytes FlushedGzip(const Bytes& data, size_t every, int flush) {
  z_stream s{};
  EXPECT_EQ(deflateInit2(&s, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out(data.size() + data.size() / 100 + 4096);
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  for (size_t at = 0; at < data.size(); at += every) {
    const size_t n = std::min(every, data.size() - at);
    s.next_in = const_cast<Bytef*>(data.data() + at);
    s.avail_in = static_cast<uInt>(n);
    EXPECT_EQ(deflate(&s, at + n == data.size() ? Z_FINISH : flush), at + n == data.size() ? Z_STREAM_END : Z_OK);
  }
  out.resize(s.total_out);
  deflateEnd(&s);
  return out;
}

// Found in session 9 (h-attack9): a point falls due at the first block end
// after kFineSpacing; in a flushed stream (pigz writes them) that is often
// the end of a data block, before its flush marker, an empty stored block:
// a run that stopped at empty blocks recorded nothing there (zlib's sync
// flushes every 4 KiB of random data: no stored block at all). Markers are
// now part of the run (length 0).
TEST(StoredPoints, FlushMarkersInsideARunAreKept) {
  const Bytes data = RandomRun(3 << 20, 21);
  for (int flush : {Z_SYNC_FLUSH, Z_FULL_FLUSH}) {
    for (size_t every : {size_t{4099}, size_t{65535}, size_t{100000}}) {
      const Bytes blob = FlushedGzip(data, every, flush);
      for (InflateEngine engine : {InflateEngine::kZlib, InflateEngine::kIsal}) {
        SCOPED_TRACE(std::to_string(flush) + " every " + std::to_string(every) +
                     (engine == InflateEngine::kZlib ? " zlib" : " isal"));
        const CheckpointTable t = Build(blob, data.size(), engine, kFinePolicyV3, nullptr);
        // Nearly all of it is covered: random data has no other blocks.
        EXPECT_GT(ExpectStoredBlocksAreTheData(t, blob, data), data.size() * 8 / 10);
        size_t markers = 0;
        for (const Checkpoint& p : t.points) markers += std::count(p.stored_blocks.begin(), p.stored_blocks.end(), 0);
        if (every < kMaxWindowBytes) {
          EXPECT_GT(markers, 10u);
        }
        std::mt19937 rng(5);
        EXPECT_TRUE(Build(blob, data.size(), engine, kFinePolicyV3, &rng) == t);
        auto back = CheckpointTable::Parse(fixtures::Bytes(t.Serialize()), "t");
        ASSERT_TRUE(back.ok()) << back.status().ToString();
        EXPECT_TRUE(*back == t);
      }
    }
  }
}

TEST(StoredPointsFormat, HostileLengthsAndFlagsAreRefused) {
  CheckpointTable t;
  t.compression = Compression::kGzip;
  t.made_by = InflateEngine::kIsal;
  t.fine_policy = kFinePolicyV3;
  t.compressed_size = 300000;
  t.uncompressed_size = 300000;
  t.points.push_back(Checkpoint{10, 0, 0, 0, {}, false});
  Checkpoint coarse{5000, 60000, 3, 0, {}, false};
  coarse.stored_blocks = {30000, 16384};
  t.points.push_back(coarse);
  Checkpoint fine{120000, 120000, 0, 0, {}, true};
  fine.stored_blocks = {65535};
  t.points.push_back(fine);
  auto parses = [](const CheckpointTable& x) { return CheckpointTable::Parse(fixtures::Bytes(x.Serialize()), "t").ok(); };
  ASSERT_TRUE(parses(t));
  auto back = CheckpointTable::Parse(fixtures::Bytes(t.Serialize()), "t");
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(*back == t);
  uint64_t at = 0, left = 0;
  t.points[1].StoredAt(60000 + 30000 + 10, &at, &left);  // 10 bytes into the second block
  EXPECT_EQ(at, t.points[1].stored_data_offset() + 30000 + 5 + 10);
  EXPECT_EQ(left, 16384u - 10);
  CheckpointTable bad = t;
  bad.fine_policy = kFinePolicyV2;  // before the policy
  EXPECT_FALSE(parses(bad));
  bad = t;
  bad.points[2].stored_blocks = {0};  // nothing but a flush marker
  EXPECT_FALSE(parses(bad));
  bad.points[2].stored_blocks = {100, 0};  // a run ending on a marker
  EXPECT_FALSE(parses(bad));
  bad.points[2].stored_blocks = {0, 0, 100, 0, 200};  // markers inside a run
  EXPECT_TRUE(parses(bad));
  bad = t;
  bad.points[2].stored_blocks.assign(kMaxStoredBlocks + 1, 1);  // over the cap
  EXPECT_FALSE(parses(bad));
  bad = t;
  bad.compressed_size = t.points[2].stored_data_offset() + 65534;  // data beyond the blob
  EXPECT_FALSE(parses(bad));
  bad = t;
  bad.points[1].stored_blocks = {30000, 16384, 65535, 65535, 65535};  // the 5-byte headers count too
  bad.compressed_size = t.points[1].stored_data_offset() + 30000 + 16384 + 3 * 65535 + 4 * 5 - 1;
  bad.uncompressed_size = 1 << 20;
  bad.points.pop_back();
  EXPECT_FALSE(parses(bad));
  bad.compressed_size += 1;
  EXPECT_TRUE(parses(bad));
  bad = t;
  bad.uncompressed_size = 120000 + 65534;  // beyond the stream
  EXPECT_FALSE(parses(bad));
  bad = t;
  bad.points[2].mid_block = true;  // a coded block's point cannot start a stored one
  bad.points[2].header_bit = 8;
  EXPECT_FALSE(parses(bad));
  bad = t;
  bad.points[0].stored_blocks = {100};  // never the first point
  EXPECT_FALSE(parses(bad));
  // Found in session 8 (h-attack9): an offset whose bit offset (x 8) wraps
  // made stored_data_offset() small, so "data inside the blob" held for a
  // claimed compressed size near 2^64 and a reader read the blob's first
  // bytes as the block's. No blob is that large: the size is refused.
  bad = t;
  bad.compressed_size = ~uint64_t{0};
  bad.points[2].in_offset = uint64_t{1} << 61;
  ASSERT_EQ(bad.points[2].stored_data_offset(), 5u);  // wrapped
  EXPECT_FALSE(parses(bad));
  bad.points[2].stored_blocks.clear();  // the same without the stored blocks: a mid-block header check wrapped too
  bad.points[2].mid_block = true;
  bad.points[2].bits = 1;
  bad.points[2].header_bit = 8;
  EXPECT_FALSE(parses(bad));
  // A count of 0 with the flag set (written by hand: Serialize sets the flag from the blocks).
  std::string raw = t.Serialize();
  const size_t count_at = raw.size() - 4 - 2 - 2;  // the last point's count, before its one length and the crc
  raw[count_at] = raw[count_at + 1] = 0;
  EXPECT_FALSE(CheckpointTable::Parse(fixtures::Bytes(raw), "t", /*crc_covered_by_caller=*/true).ok());
}

std::string Tar(const std::vector<std::pair<std::string, Bytes>>& files) {
  std::string tar;
  for (const auto& [name, data] : files) {
    tar += tartest::File(name, std::string_view(reinterpret_cast<const char*>(data.data()), data.size()));
  }
  return tar + tartest::Zeros(2);
}

// Mid-block points in [from, to) of the stream, and what all of them weigh.
size_t MidPointsIn(const CheckpointTable& t, uint64_t from, uint64_t to) {
  size_t n = 0;
  for (const Checkpoint& p : t.points) n += p.mid_block && p.out_offset >= from && p.out_offset < to;
  return n;
}

TEST(StoredPointsMidBudget, ACompressibleFileFirstIsNotStarvedAndTheBoundHolds) {
  if (!MidBlockSupported()) GTEST_SKIP() << "mid-block points need ISA-L";
  const Bytes text = LogLines(12 << 20, 0);
  const std::string tar = Tar({{"first.log", text}, {"second.bin", RandomRun(24 << 20, 5)}});
  const Bytes blob = fixtures::Deflate(fixtures::Bytes(tar), 31);
  const std::string digest = "sha256:" + Sha256::HexOf(std::string_view(reinterpret_cast<const char*>(blob.data()), blob.size()));
  auto index_with = [&](uint8_t policy, uint64_t declared) -> Result<std::string> {
    LayerIndexer indexer(digest, Compression::kGzip, "", kDefaultSpanBytes, Limits(), InflateEngine::kIsal, policy,
                         declared);
    LAZYROOT_RETURN_IF_ERROR(indexer.Consume(blob));
    return indexer.FinishFile(ChunkDigestsOf(blob));
  };
  auto table_of = [&](const std::string& file) {
    auto t = LayerIndex::ParseCheckpoints(fixtures::Bytes(file), "index", digest, nullptr);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? *t : CheckpointTable();
  };
  auto v2 = index_with(kFinePolicyV2, blob.size());
  auto v3 = index_with(kFinePolicyV3, blob.size());
  ASSERT_TRUE(v2.ok() && v3.ok());
  const CheckpointTable t2 = table_of(*v2), t3 = table_of(*v3);
  EXPECT_EQ(t3.fine_policy, kFinePolicyV3);
  const size_t first2 = MidPointsIn(t2, 0, text.size()), first3 = MidPointsIn(t3, 0, text.size());
  // The text's blocks are long: policy 2 could afford few points in it (a
  // share of the bytes before them), policy 3 nearly one per kMidSpacing.
  EXPECT_GT(first3, 3 * first2) << first2 << " -> " << first3;
  EXPECT_GT(first3, text.size() / kMidSpacing * 3 / 4) << first3;
  uint64_t mid_bytes = 0;
  for (const Checkpoint& p : t3.points) mid_bytes += p.mid_block ? 28 + 8 + p.window.size() : 0;
  EXPECT_LE(mid_bytes, blob.size() / kMidBudgetDivisor + kFineBudgetSlack);
  // Without a declared size the indexer falls back to policy 2, byte for byte.
  auto undeclared = index_with(kFinePolicyV3, 0);
  ASSERT_TRUE(undeclared.ok());
  EXPECT_EQ(*undeclared, *v2);
  // A blob of another size than declared is refused: its points were placed for that size.
  auto wrong = index_with(kFinePolicyV3, blob.size() + 1);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), ErrorCode::kCorruption) << wrong.status().ToString();
  // The rebuild from the blob (fsck's) is the same file.
  auto src = MemoryByteSource(blob, "blob");
  auto rebuilt = IndexBlobFile(*src, digest, Compression::kGzip, "", Limits(), InflateEngine::kIsal, kFinePolicyV3);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
  EXPECT_EQ(*rebuilt, *v3);
}

}  // namespace
}  // namespace lazyroot
