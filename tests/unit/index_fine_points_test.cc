// Fine access points (fine_points.h), for both gzip passes: they lie at
// deflate block boundaries zlib sees (inside the ranges asked for), every
// point decodes byte for byte with both readers, with its window cut or
// dropped; the table does not depend on the chunking (decoder alone and
// through LayerIndexer's tar parser); the thinning keeps fine points within
// their budget; the table's fine flags and policy survive Serialize/Parse
// and a hostile table is refused.
#include "index/fine_points.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include "index/byte_source.h"
#include "index/gzip_index.h"
#include "index/layer_decoder.h"
#include "index/layer_index.h"
#include "index/layer_indexer.h"
#include "index/sha256.h"
#include "tests/unit/compressed_fixtures.h"
#include "tests/unit/index_tar_test_builder.h"

namespace lazyroot {
namespace {

using Bytes = std::vector<uint8_t>;

// 256 KiB runs: random bytes (stored blocks: no window needed), log lines
// (matches reach back a line or two), then words (matches reach far back).
Bytes MakeData(size_t runs, unsigned seed = 7) {
  std::mt19937 rng(seed);
  static const char* kWords[] = {"usr ", "lib ", "share ", "locale ", "\n", "x86_64 ", "tar "};
  Bytes out;
  for (size_t r = 0; r < runs; ++r) {
    const size_t end = out.size() + (256u << 10);
    char line[64];
    unsigned n = 0;
    while (out.size() < end) {
      if (r % 3 == 0) {
        out.push_back(static_cast<uint8_t>(rng()));
      } else if (r % 3 == 1) {
        const int len = std::snprintf(line, sizeof line, "line %08u of a compressible log file\n", n++);
        out.insert(out.end(), line, line + len);
      } else {
        for (const char* c = kWords[rng() % 7]; *c; ++c) out.push_back(static_cast<uint8_t>(*c));
      }
    }
    out.resize(end);
  }
  return out;
}

struct Built {
  Bytes output;
  CheckpointTable table;
};

// The ranges as LayerIndexer would announce them: all before their data.
Built Build(const Bytes& blob, const std::vector<std::pair<uint64_t, uint64_t>>& ranges, InflateEngine engine,
            std::mt19937* chunking, uint64_t span = 1 << 20) {
  FineRanges fine;
  for (const auto& [s, e] : ranges) fine.Add(s, e);
  auto d = NewGzipStreamDecoder("layer test", span, engine, &fine);
  Built b;
  OutputFn sink = [&](std::span<const uint8_t> o) {
    b.output.insert(b.output.end(), o.begin(), o.end());
    return Status::Ok();
  };
  for (size_t off = 0; off < blob.size();) {
    const size_t n = chunking == nullptr ? blob.size() : std::min<size_t>(blob.size() - off, 1 + (*chunking)() % 70000);
    EXPECT_TRUE(d->Feed(std::span<const uint8_t>(blob).subspan(off, n), sink).ok());
    off += n;
  }
  EXPECT_TRUE(d->Finish(sink).ok());
  b.table = d->TakeCheckpoints();
  return b;
}

std::vector<InflateEngine> Engines() { return {InflateEngine::kZlib, InflateEngine::kIsal}; }

// Both readers read 40000 bytes (or to the end) at every point of table,
// each read exactly data's bytes there.
void ExpectEveryPointReads(const std::shared_ptr<const CheckpointTable>& table, const Bytes& blob, const Bytes& data) {
  auto src = MemoryByteSource(blob, "blob");
  for (InflateEngine reader : Engines()) {
    auto r = RandomReader::Create(table, NewGzipPointDecoder(table.get(), src.get(), "blob", reader));
    Bytes buf(40000);
    for (const Checkpoint& p : table->points) {
      size_t n = 0;
      ASSERT_TRUE(r->Read(p.out_offset, buf, &n).ok()) << "point at " << p.out_offset;
      const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), data.size() - p.out_offset));
      ASSERT_EQ(n, want);
      ASSERT_TRUE(std::equal(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(n),
                             data.begin() + static_cast<ptrdiff_t>(p.out_offset)))
          << "point at " << p.out_offset << (p.fine ? " (fine)" : "") << " window " << p.window_size;
    }
  }
}

class FinePoints : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = MakeData(12);
    // Two members, so that a fine range crosses a member start.
    const size_t half = data_.size() / 2 + 12345;
    blob_ = fixtures::Deflate(std::span<const uint8_t>(data_).first(half), 31);
    const Bytes second = fixtures::Deflate(std::span<const uint8_t>(data_).subspan(half), 31, 9);
    blob_.insert(blob_.end(), second.begin(), second.end());
    // Every run but the first, as if one large file.
    ranges_ = {{(256u << 10) + 1000, data_.size() - 5000}};
  }
  Bytes data_, blob_;
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;
};

TEST_F(FinePoints, LieAtZlibBlockBoundariesInsideTheRanges) {
  // zlib's pass with a 1-byte span records every block boundary.
  auto zlib = NewGzipStreamDecoder("boundaries", 1, InflateEngine::kZlib);
  const OutputFn sink = [](std::span<const uint8_t>) { return Status::Ok(); };
  ASSERT_TRUE(zlib->Feed(blob_, sink).ok());
  ASSERT_TRUE(zlib->Finish(sink).ok());
  std::set<std::tuple<uint64_t, uint64_t, uint8_t>> boundaries;
  for (const Checkpoint& p : zlib->TakeCheckpoints().points) boundaries.emplace(p.in_offset, p.out_offset, p.bits);
  for (InflateEngine engine : Engines()) {
    SCOPED_TRACE(engine == InflateEngine::kZlib ? "zlib" : "isal");
    const Built b = Build(blob_, ranges_, engine, nullptr);
    ASSERT_EQ(b.output, data_);
    EXPECT_EQ(b.table.fine_policy, kFinePolicyV1);
    size_t fine = 0;
    for (const Checkpoint& p : b.table.points) {
      EXPECT_TRUE(boundaries.count({p.in_offset, p.out_offset, p.bits})) << "point at " << p.out_offset;
      if (!p.fine) continue;
      ++fine;
      EXPECT_GE(p.out_offset, ranges_[0].first);
      // ISA-L stops at the end of the block it was in at the check: a
      // point there past the range is not recorded.
      EXPECT_LT(p.out_offset, ranges_[0].second);
    }
    // 32 KiB apart in the random runs at least: 3 of them inside the range.
    EXPECT_GT(fine, 3 * 3u);
  }
}

TEST_F(FinePoints, EveryPointDecodesWithBothReadersAndWindowsAreCut) {
  for (InflateEngine engine : Engines()) {
    SCOPED_TRACE(engine == InflateEngine::kZlib ? "zlib" : "isal");
    const Built b = Build(blob_, ranges_, engine, nullptr);
    auto table = std::make_shared<const CheckpointTable>(b.table);
    size_t free = 0, cut = 0;
    for (const Checkpoint& p : table->points) {
      if (p.fine && p.window_size == 0) ++free;
      if (p.window_size != 0 && p.window_size < kMaxWindowBytes) {
        ++cut;
        // A cut window is the last bytes before the point.
        std::vector<uint8_t> w;
        ASSERT_TRUE(ExpandWindow(p, "t", &w).ok());
        ASSERT_LE(w.size(), p.out_offset);
        EXPECT_TRUE(std::equal(w.begin(), w.end(), data_.begin() + static_cast<ptrdiff_t>(p.out_offset - w.size())));
      }
    }
    EXPECT_GT(free, 0u);
    EXPECT_GT(cut, 0u);
    ASSERT_NO_FATAL_FAILURE(ExpectEveryPointReads(table, blob_, data_));
  }
}

TEST_F(FinePoints, RandomChunkingsGiveTheSameTable) {
  for (InflateEngine engine : Engines()) {
    SCOPED_TRACE(engine == InflateEngine::kZlib ? "zlib" : "isal");
    const Built whole = Build(blob_, ranges_, engine, nullptr);
    for (unsigned seed = 1; seed <= 4; ++seed) {
      std::mt19937 rng(seed);
      const Built chunked = Build(blob_, ranges_, engine, &rng);
      EXPECT_EQ(chunked.output, whole.output);
      EXPECT_TRUE(chunked.table == whole.table) << "seed " << seed;
    }
  }
}

TEST(FinePointsBudget, ThinningKeepsFinePointsWithinTheirShare) {
  // Text only, many blocks (level 1 ends blocks often), all one large file:
  // windowed fine points everywhere unless thinned.
  Bytes data;
  std::mt19937 rng(3);
  static const char* kWords[] = {"alpha ", "beta ", "gamma ", "delta\n", "epsilon ", "zeta ", "eta "};
  while (data.size() < (12u << 20)) {
    for (const char* c = kWords[rng() % 7]; *c; ++c) data.push_back(static_cast<uint8_t>(*c));
  }
  const Bytes blob = fixtures::Deflate(data, 31, 1);
  for (InflateEngine engine : Engines()) {
    SCOPED_TRACE(engine == InflateEngine::kZlib ? "zlib" : "isal");
    const Built b = Build(blob, {{0, data.size()}}, engine, nullptr, 4 << 20);
    ASSERT_EQ(b.output, data);
    uint64_t spent = 0;
    size_t fine = 0;
    for (const Checkpoint& p : b.table.points) {
      if (!p.fine) continue;
      ++fine;
      spent += 28 + p.window.size();
      EXPECT_LE(spent, p.in_offset / kFineBudgetDivisor + kFineBudgetSlack) << "point at " << p.out_offset;
    }
    EXPECT_GT(fine, 0u);
    // Unthinned they would be one per 64 KiB.
    EXPECT_LT(fine, data.size() / kFineSpacing / 2);
  }
}

TEST(FinePointsFormat, FlagsAndPolicySurviveAndHostileOnesAreRefused) {
  CheckpointTable t;
  t.compression = Compression::kGzip;
  t.made_by = InflateEngine::kIsal;
  t.fine_policy = kFinePolicyV1;
  t.compressed_size = 1000;
  t.uncompressed_size = 5000;
  t.points.push_back(Checkpoint{10, 0, 0, 0, {}, false});
  t.points.push_back(Checkpoint{200, 1000, 3, 0, {}, true});
  const Bytes w(100, 'x');
  t.points.push_back(Checkpoint{400, 3000, 0, 100, CompressWindow(w), true});
  const std::string s = t.Serialize();
  auto bytes = [](const std::string& x) { return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(x.data()), x.size()); };
  auto back = CheckpointTable::Parse(bytes(s), "t");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == t);
  // A fine point in a table without the policy, on the first point, unknown flags or policy.
  auto refused = [&](CheckpointTable bad) {
    auto r = CheckpointTable::Parse(bytes(bad.Serialize()), "t");
    return !r.ok() && r.status().code() == ErrorCode::kCorruption;
  };
  CheckpointTable bad = t;
  bad.fine_policy = 0;
  EXPECT_TRUE(refused(bad));
  bad = t;
  bad.points[0].fine = true;
  EXPECT_TRUE(refused(bad));
  bad = t;
  bad.fine_policy = kMaxFinePolicy + 1;
  EXPECT_TRUE(refused(bad));
  std::string raw = s;
  raw[40 + 17] = 2;  // the second byte after point 0's in/out offsets: its flags
  auto r = CheckpointTable::Parse(bytes(raw), "t", /*crc_covered_by_caller=*/true);
  EXPECT_FALSE(r.ok());
}

// A tar of one file: header, data, padding, end of archive.
std::string Tar(const Bytes& data) {
  return tartest::OneFileTar("big.bin", std::string_view(reinterpret_cast<const char*>(data.data()), data.size()));
}

// Through the pull's indexer: the tar parser names the file's data, the
// pass places fine points there, and the index file does not depend on the
// chunking.
TEST(FinePointsIndexer, ALargeFileGetsFinePointsWhateverTheChunking) {
  const std::string tar = Tar(MakeData(9, 11));
  const Bytes blob = fixtures::Deflate(fixtures::Bytes(tar), 31);
  const std::string digest = "sha256:" + Sha256::HexOf(std::string_view(reinterpret_cast<const char*>(blob.data()), blob.size()));
  const std::string diff_id = "sha256:" + Sha256::HexOf(std::string_view(tar));
  for (InflateEngine engine : Engines()) {
    SCOPED_TRACE(engine == InflateEngine::kZlib ? "zlib" : "isal");
    std::string first;
    for (unsigned seed = 0; seed < 3; ++seed) {
      LayerIndexer indexer(digest, Compression::kGzip, diff_id, kDefaultSpanBytes, Limits(), engine);
      std::mt19937 rng(seed);
      for (size_t off = 0; off < blob.size();) {
        const size_t n = seed == 0 ? blob.size() : std::min<size_t>(blob.size() - off, 1 + rng() % 100000);
        ASSERT_TRUE(indexer.Consume(std::span<const uint8_t>(blob).subspan(off, n)).ok());
        off += n;
      }
      auto file = indexer.FinishFile(ChunkDigestsOf(blob));
      ASSERT_TRUE(file.ok()) << file.status().ToString();
      if (seed == 0) {
        first = *file;
        auto table = LayerIndex::ParseCheckpoints(fixtures::Bytes(first), "index", digest, nullptr);
        ASSERT_TRUE(table.ok()) << table.status().ToString();
        size_t fine = 0;
        for (const Checkpoint& p : table->points) {
          fine += p.fine;
          if (p.fine) {
            EXPECT_GE(p.out_offset, 512u);
          }
        }
        EXPECT_GT(fine, 6u);
      } else {
        EXPECT_EQ(*file, first) << "seed " << seed;
      }
    }
    // Without the policy: no fine points.
    auto src = MemoryByteSource(blob, "blob");
    auto old = IndexBlobFile(*src, digest, Compression::kGzip, diff_id, Limits(), engine, 0);
    ASSERT_TRUE(old.ok());
    auto table = LayerIndex::ParseCheckpoints(fixtures::Bytes(*old), "index", digest, nullptr);
    ASSERT_TRUE(table.ok());
    for (const Checkpoint& p : table->points) EXPECT_FALSE(p.fine);
  }
}


// A hostile shape for the placer inside one large file: runs of tiny deflate
// blocks (a block every 200 bytes), stored blocks (level 0), full flushes,
// empty blocks, and gzip members that start and end inside the file. The
// pass gives the data, the table parses, fine points stay in budget, and
// every point reads back exactly with both readers, whatever the chunking.
TEST(FinePointsHostile, TinyBlocksStoredBlocksAndMembersInsideOneFile) {
  const Bytes text = MakeData(9, 11);  // random, log lines, words
  Bytes blob, data;
  std::mt19937 rng(5);
  size_t off = 0;
  while (off < text.size()) {
    // One member of 100-700 KiB, in pieces flushed in different ways.
    const size_t member_end = std::min(text.size(), off + (100u << 10) + rng() % (600u << 10));
    z_stream z{};
    ASSERT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    Bytes out(1 << 20);
    while (off < member_end) {
      const size_t n = std::min<size_t>(member_end - off, rng() % 3 == 0 ? 200 : 1 + rng() % 40000);
      const int mode = static_cast<int>(rng() % 5);
      if (mode == 0 || mode == 1) {
        ASSERT_EQ(deflateParams(&z, mode == 0 ? 0 : 6, Z_DEFAULT_STRATEGY), Z_OK);  // level 0: stored blocks next
      }
      const bool last = off + n >= member_end;
      const int flush = last ? Z_FINISH : (mode == 2 ? Z_FULL_FLUSH : mode == 3 ? Z_SYNC_FLUSH : Z_BLOCK);
      z.next_in = const_cast<uint8_t*>(text.data() + off);
      z.avail_in = static_cast<uInt>(n);
      do {
        z.next_out = out.data();
        z.avail_out = static_cast<uInt>(out.size());
        const int ret = deflate(&z, flush);
        ASSERT_TRUE(ret == Z_OK || ret == Z_STREAM_END || ret == Z_BUF_ERROR) << ret;
        blob.insert(blob.end(), out.data(), out.data() + (out.size() - z.avail_out));
      } while (z.avail_out == 0 || z.avail_in > 0);
      if (mode == 4 && !last) {
        // After Z_BLOCK, a sync flush with no input: an empty stored block.
        z.next_out = out.data();
        z.avail_out = static_cast<uInt>(out.size());
        ASSERT_EQ(deflate(&z, Z_SYNC_FLUSH), Z_OK);
        blob.insert(blob.end(), out.data(), out.data() + (out.size() - z.avail_out));
      }
      off += n;
    }
    deflateEnd(&z);
  }
  data = text;
  for (InflateEngine engine : Engines()) {
    SCOPED_TRACE(engine == InflateEngine::kZlib ? "zlib" : "isal");
    std::mt19937 chunking(9);
    const Built b = Build(blob, {{1000, data.size() - 1000}}, engine, &chunking, 1 << 20);
    ASSERT_EQ(b.output, data);
    const std::string serial = b.table.Serialize();
    ASSERT_TRUE(CheckpointTable::Parse(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(serial.data()),
                                                                serial.size()),
                                       "hostile")
                    .ok());
    uint64_t spent = 0;
    size_t fine = 0;
    for (const Checkpoint& p : b.table.points) {
      if (!p.fine) continue;
      ++fine;
      spent += 28 + p.window.size();
      EXPECT_LE(spent, p.in_offset / kFineBudgetDivisor + kFineBudgetSlack);
    }
    EXPECT_GT(fine, 0u);
    ASSERT_NO_FATAL_FAILURE(ExpectEveryPointReads(std::make_shared<const CheckpointTable>(b.table), blob, data));
  }
}

}  // namespace
}  // namespace lazyroot
