// gzip random access: streaming decode + checkpoints, random reads against the
// original bytes, truncation/corruption/trailing-byte errors, the serialised table.
#include "index/gzip_index.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "index/layer_decoder.h"
#include "tests/unit/compressed_fixtures.h"

namespace lazyroot {
namespace {

using Bytes = std::vector<uint8_t>;
constexpr uint64_t kSpan = 1 << 20;

// Compressible text interleaved with random runs, so deflate emits both
// stored-ish and Huffman blocks and checkpoints land at non-zero bit offsets.
Bytes MakeData(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  static const char* kWords[] = {"usr ", "lib ", "python3 ", "include ", "tar ", "layer ", "zran ", "\n"};
  Bytes out;
  out.reserve(size);
  while (out.size() < size) {
    size_t run = 1 + rng() % 20000;
    if (rng() % 4 == 0) {
      for (size_t i = 0; i < run && out.size() < size; ++i) out.push_back(static_cast<uint8_t>(rng()));
    } else {
      for (size_t i = 0; i < run && out.size() < size;) {
        for (const char* c = kWords[rng() % 8]; *c && out.size() < size; ++c, ++i) out.push_back(static_cast<uint8_t>(*c));
      }
    }
  }
  return out;
}

Bytes Gzip(const Bytes& in, int level = 6) { return fixtures::Deflate(in, 31, level); }

struct Built {
  Status feed;
  Status finish;
  Bytes output;
  CheckpointTable table;
};

Built Build(const Bytes& blob, size_t chunk, uint64_t span = kSpan, InflateEngine engine = InflateEngine::kIsal) {
  Built b;
  auto d = StreamDecoder::Create(Compression::kGzip, "layer test", span, engine);
  OutputFn sink = [&](std::span<const uint8_t> o) {
    b.output.insert(b.output.end(), o.begin(), o.end());
    return Status::Ok();
  };
  for (size_t off = 0; off < blob.size() && b.feed.ok(); off += chunk) {
    b.feed = d->Feed(std::span<const uint8_t>(blob).subspan(off, std::min(chunk, blob.size() - off)), sink);
  }
  if (b.feed.ok()) {
    b.finish = d->Finish(sink);
    if (b.finish.ok()) b.table = d->TakeCheckpoints();
  }
  return b;
}

std::unique_ptr<RandomReader> NewReader(const std::shared_ptr<const CheckpointTable>& table, const ByteSource* src,
                                        const std::string& name, InflateEngine engine) {
  return RandomReader::Create(table, NewGzipPointDecoder(table.get(), src, name, engine));
}

std::string EngineName(const ::testing::TestParamInfo<InflateEngine>& p) {
  return p.param == InflateEngine::kZlib ? "zlib" : "isal";
}

// Every reader test runs with both inflate engines; with ISA-L absent the
// second instance silently falls back to zlib.
class GzipIndexTest : public ::testing::TestWithParam<InflateEngine> {
 protected:
  std::unique_ptr<RandomReader> Reader(const std::shared_ptr<const CheckpointTable>& table, const ByteSource* src,
                                       const std::string& name) {
    return NewReader(table, src, name, GetParam());
  }

  void SetUp() override {
    data_ = MakeData(6 << 20, 1);
    blob_ = Gzip(data_);
    Built b = Build(blob_, 65536);
    ASSERT_TRUE(b.feed.ok()) << b.feed.ToString();
    ASSERT_TRUE(b.finish.ok()) << b.finish.ToString();
    ASSERT_EQ(b.output, data_);
    table_ = std::make_shared<const CheckpointTable>(std::move(b.table));
    source_ = MemoryByteSource(blob_, "blob test");
  }

  void ExpectRead(RandomReader* r, uint64_t offset, size_t len) {
    Bytes out(len, 0xAA);
    size_t n = 99;
    Status st = r->Read(offset, out, &n);
    ASSERT_TRUE(st.ok()) << st.ToString() << " at " << offset;
    size_t expect = offset >= data_.size() ? 0 : std::min<uint64_t>(len, data_.size() - offset);
    ASSERT_EQ(n, expect) << "offset " << offset;
    ASSERT_TRUE(std::equal(out.begin(), out.begin() + n, data_.begin() + static_cast<ptrdiff_t>(std::min<uint64_t>(offset, data_.size()))))
        << "offset " << offset << " len " << len;
  }

  Bytes data_;
  Bytes blob_;
  std::shared_ptr<const CheckpointTable> table_;
  std::unique_ptr<ByteSource> source_;
};

TEST_P(GzipIndexTest, TableShape) {
  EXPECT_EQ(table_->compression, Compression::kGzip);
  EXPECT_EQ(table_->uncompressed_size, data_.size());
  EXPECT_EQ(table_->compressed_size, blob_.size());
  ASSERT_GE(table_->points.size(), 5u);
  EXPECT_EQ(table_->points[0].out_offset, 0u);
  EXPECT_EQ(table_->points[0].window_size, 0u);
  bool saw_bits = false;
  for (size_t i = 1; i < table_->points.size(); ++i) {
    const Checkpoint& p = table_->points[i];
    EXPECT_GE(p.out_offset - table_->points[i - 1].out_offset, kSpan);
    EXPECT_EQ(p.window_size, kMaxWindowBytes);
    EXPECT_LT(p.window.size(), p.window_size);  // stored compressed
    saw_bits |= p.bits != 0;
  }
  EXPECT_TRUE(saw_bits) << "expected some checkpoint at a non-byte-aligned block boundary";
}

TEST_P(GzipIndexTest, OneByteFeedsOnSmallInput) {
  // ISA-L's checkpoints come ~64 KiB past due (its decode-ahead): enough
  // data for several.
  Bytes small = MakeData(600000, 7);
  Bytes gz = Gzip(small);
  Built b = Build(gz, 1, 16384, GetParam());
  ASSERT_TRUE(b.feed.ok()) << b.feed.ToString();
  ASSERT_TRUE(b.finish.ok()) << b.finish.ToString();
  EXPECT_EQ(b.output, small);
  EXPECT_GT(b.table.points.size(), 3u);
}

// Both passes' tables depend on the stream only (ISA-L's through its fixed
// slices): fsck compares a rebuilt index byte for byte.
TEST_P(GzipIndexTest, RandomChunkingsGiveTheSameOutputAndTable) {
  const InflateEngine engine = GetParam();
  CheckpointTable reference;
  {
    auto d = NewGzipStreamDecoder("layer test", kSpan, engine);
    OutputFn discard = [](std::span<const uint8_t>) { return Status::Ok(); };
    ASSERT_TRUE(d->Feed(blob_, discard).ok());
    ASSERT_TRUE(d->Finish(discard).ok());
    reference = d->TakeCheckpoints();
  }
  std::mt19937 rng(3);
  for (int round = 0; round < 3; ++round) {
    Built b;
    auto d = NewGzipStreamDecoder("layer test", kSpan, engine);
    OutputFn sink = [&](std::span<const uint8_t> o) {
      b.output.insert(b.output.end(), o.begin(), o.end());
      return Status::Ok();
    };
    for (size_t off = 0; off < blob_.size();) {
      size_t n = std::min<size_t>(blob_.size() - off, 1 + rng() % 300000);
      ASSERT_TRUE(d->Feed(std::span<const uint8_t>(blob_).subspan(off, n), sink).ok());
      off += n;
    }
    ASSERT_TRUE(d->Finish(sink).ok());
    EXPECT_EQ(b.output, data_);
    CheckpointTable table = d->TakeCheckpoints();
    EXPECT_EQ(table, reference);
    EXPECT_EQ(table.uncompressed_size, reference.uncompressed_size);
    EXPECT_EQ(table.compressed_size, reference.compressed_size);
  }
}

TEST_P(GzipIndexTest, RandomReadsAtEveryOffsetClass) {
  auto reader = Reader(table_, source_.get(), "layer test");
  std::vector<uint64_t> offsets = {0, 1, data_.size() - 1, data_.size(), data_.size() + 10};
  for (const Checkpoint& p : table_->points) {
    for (int64_t d : {-1, 0, 1}) {
      if (static_cast<int64_t>(p.out_offset) + d >= 0) offsets.push_back(p.out_offset + d);
    }
  }
  for (uint64_t off : offsets) {
    ExpectRead(reader.get(), off, 4096);
    auto fresh = Reader(table_, source_.get(), "layer test");
    ExpectRead(fresh.get(), off, 1);
  }
  // A read spanning two (and three) checkpoints.
  uint64_t c1 = table_->points[1].out_offset;
  ExpectRead(reader.get(), c1 - 100, 200);
  ExpectRead(reader.get(), c1 - 1000, static_cast<size_t>(table_->points[3].out_offset - c1 + 2000));
  // Random offsets, backwards and forwards.
  std::mt19937_64 rng(5);
  for (int i = 0; i < 200; ++i) ExpectRead(reader.get(), rng() % (data_.size() + 100), 1 + rng() % 70000);
}

TEST_P(GzipIndexTest, SequentialReadsStayWarm) {
  auto reader = Reader(table_, source_.get(), "layer test");
  for (uint64_t off = 0; off < data_.size(); off += 65536) ExpectRead(reader.get(), off, 65536);
  EXPECT_EQ(reader->reprimes(), 1u);
  // Forward skips within a span continue the warm decoder too.
  auto r2 = Reader(table_, source_.get(), "layer test");
  ExpectRead(r2.get(), 10, 100);
  ExpectRead(r2.get(), 5000, 100);
  ExpectRead(r2.get(), kSpan / 2, 100);
  EXPECT_EQ(r2->reprimes(), 1u);
  // Going backwards, or past a checkpoint, re-primes.
  ExpectRead(r2.get(), 20, 10);
  EXPECT_EQ(r2->reprimes(), 2u);
  ExpectRead(r2.get(), table_->points[2].out_offset + 5, 10);
  EXPECT_EQ(r2->reprimes(), 3u);
}

TEST_P(GzipIndexTest, ConcurrentReadersShareOneTable) {
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto reader = Reader(table_, source_.get(), "layer test");
      std::mt19937_64 rng(100 + t);
      Bytes out(8192);
      for (int i = 0; i < 100; ++i) {
        uint64_t off = rng() % data_.size();
        size_t n = 0;
        if (!reader->Read(off, out, &n).ok() ||
            !std::equal(out.begin(), out.begin() + n, data_.begin() + static_cast<ptrdiff_t>(off)) ||
            n != std::min<uint64_t>(out.size(), data_.size() - off)) {
          ++failures[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int f : failures) EXPECT_EQ(f, 0);
}

TEST_P(GzipIndexTest, SerializeParseRoundTrip) {
  std::string s = table_->Serialize();
  EXPECT_LT(s.size(), blob_.size() / 20);
  auto parsed = CheckpointTable::Parse(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()), "index test");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, *table_);
  auto shared = std::make_shared<const CheckpointTable>(std::move(parsed).value());
  auto reader = Reader(shared, source_.get(), "layer test");
  Bytes out(1000);
  size_t n = 0;
  ASSERT_TRUE(reader->Read(table_->points[2].out_offset + 3, out, &n).ok());
  EXPECT_TRUE(std::equal(out.begin(), out.end(), data_.begin() + static_cast<ptrdiff_t>(table_->points[2].out_offset + 3)));
}

TEST_P(GzipIndexTest, ParseRejectsTruncatedOrCorruptedTable) {
  std::string s = table_->Serialize();
  auto as_span = [](const std::string& x) { return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(x.data()), x.size()); };
  for (size_t len : {size_t{0}, size_t{10}, size_t{44}, s.size() / 2, s.size() - 1}) {
    auto r = CheckpointTable::Parse(as_span(s.substr(0, len)), "index sha256:ab12");
    ASSERT_FALSE(r.ok()) << len;
    EXPECT_EQ(r.status().code(), ErrorCode::kCorruption);
    EXPECT_NE(r.status().message().find("index sha256:ab12"), std::string::npos) << r.status().message();
  }
  for (size_t pos : {size_t{0}, size_t{8}, size_t{20}, size_t{50}, s.size() / 2, s.size() - 1}) {
    std::string bad = s;
    bad[pos] ^= 0x40;
    auto r = CheckpointTable::Parse(as_span(bad), "index sha256:ab12");
    EXPECT_FALSE(r.ok()) << pos;
  }
}

TEST_P(GzipIndexTest, ReadOfACorruptedBlobFailsCleanly) {
  Bytes bad = blob_;
  for (size_t i = bad.size() / 2; i < bad.size() / 2 + 64; ++i) bad[i] ^= 0xff;
  auto src = MemoryByteSource(bad, "blob bad");
  auto reader = Reader(table_, src.get(), "layer bad");
  Bytes out(1 << 20);
  Status first_error;
  for (uint64_t off = 0; off < data_.size() && first_error.ok(); off += out.size()) {
    size_t n = 0;
    Status st = reader->Read(off, out, &n);
    if (!st.ok()) first_error = st;
    else if (!std::equal(out.begin(), out.begin() + n, data_.begin() + static_cast<ptrdiff_t>(off))) first_error = Status::Corruption("silent");
  }
  ASSERT_FALSE(first_error.ok());
  // Either zlib notices (data error), or the bytes differ — we only need "no crash, no hang";
  // a raw-inflate reader cannot check CRCs mid-member.
  // A truncated blob must report the end of data.
  Bytes cut(blob_.begin(), blob_.begin() + static_cast<ptrdiff_t>(blob_.size() / 2));
  auto cut_src = MemoryByteSource(cut, "blob cut");
  auto r2 = Reader(table_, cut_src.get(), "layer cut");
  size_t n = 0;
  Status st = r2->Read(data_.size() - 10, out, &n);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("layer cut"), std::string::npos) << st.message();
}

INSTANTIATE_TEST_SUITE_P(GzipIndex, GzipIndexTest, ::testing::Values(InflateEngine::kZlib, InflateEngine::kIsal),
                         EngineName);

// The pull's pass on both engines (kIsal falls back to zlib without ISA-L).
class GzipStreamTest : public ::testing::TestWithParam<InflateEngine> {};
INSTANTIATE_TEST_SUITE_P(GzipStream, GzipStreamTest, ::testing::Values(InflateEngine::kZlib, InflateEngine::kIsal),
                         EngineName);

TEST_P(GzipStreamTest, TruncatedIsAnError) {
  Bytes data = MakeData(300000, 2);
  Bytes gz = Gzip(data);
  for (size_t cut : {size_t{5}, size_t{20}, gz.size() / 2, gz.size() - 4, gz.size() - 1}) {
    Built b = Build(Bytes(gz.begin(), gz.begin() + static_cast<ptrdiff_t>(cut)), 4096, kSpan, GetParam());
    ASSERT_TRUE(b.feed.ok()) << cut << b.feed.ToString();
    ASSERT_FALSE(b.finish.ok()) << cut;
    EXPECT_NE(b.finish.message().find("truncated"), std::string::npos) << b.finish.message();
    EXPECT_NE(b.finish.message().find("layer test"), std::string::npos);
  }
  Built empty = Build(Bytes{}, 1, kSpan, GetParam());
  EXPECT_FALSE(empty.finish.ok());
}

TEST_P(GzipStreamTest, CorruptedByteIsAnError) {
  Bytes data = MakeData(300000, 4);
  Bytes gz = Gzip(data);
  // A flipped byte in the deflate data, in the CRC, and in ISIZE.
  // Chunks of 5 bytes split the 8-byte trailer across Feed calls.
  for (size_t chunk : {size_t{8192}, size_t{5}}) {
    for (size_t pos : {gz.size() / 3, gz.size() - 6, gz.size() - 2}) {
      Bytes bad = gz;
      bad[pos] ^= 0x01;
      Built b = Build(bad, chunk, kSpan, GetParam());
      Status st = b.feed.ok() ? b.finish : b.feed;
      ASSERT_FALSE(st.ok()) << pos << " in chunks of " << chunk;
      EXPECT_EQ(st.code(), ErrorCode::kCorruption);
      EXPECT_NE(st.message().find("compressed offset"), std::string::npos) << st.message();
    }
    EXPECT_TRUE(Build(gz, chunk, kSpan, GetParam()).finish.ok()) << "the intact stream in chunks of " << chunk;
  }
}

TEST_P(GzipStreamTest, TrailingBytesAfterLastMemberAreAnError) {
  Bytes data = MakeData(100000, 5);
  Bytes gz = Gzip(data);
  for (const Bytes& tail : {Bytes(1, 0), Bytes(512, 0), Bytes{'j', 'u', 'n', 'k'}, Bytes{0x1f}, Bytes{0x1f, 0x8b}}) {
    Bytes bad = gz;
    bad.insert(bad.end(), tail.begin(), tail.end());
    Built b = Build(bad, 1000, kSpan, GetParam());
    Status st = b.feed.ok() ? b.finish : b.feed;
    EXPECT_FALSE(st.ok()) << "tail of " << tail.size();
  }
}

TEST_P(GzipStreamTest, MultiMemberStreams) {
  // Members of exactly one span make member starts due as checkpoints; an empty
  // member sits at one of them.
  std::vector<Bytes> parts = {MakeData(kSpan, 10), Bytes{}, MakeData(kSpan, 11), MakeData(700, 12), Bytes{},
                              MakeData(kSpan + 5, 13), MakeData(1500000, 14)};
  Bytes all, blob;
  for (const Bytes& p : parts) {
    all.insert(all.end(), p.begin(), p.end());
    Bytes g = Gzip(p, 1);
    blob.insert(blob.end(), g.begin(), g.end());
  }
  for (size_t chunk : {size_t{333}, size_t{1 << 20}}) {
    Built b = Build(blob, chunk, kSpan, GetParam());
    ASSERT_TRUE(b.feed.ok()) << b.feed.ToString();
    ASSERT_TRUE(b.finish.ok()) << b.finish.ToString();
    ASSERT_EQ(b.output, all);
    std::vector<uint64_t> member_points;
    for (const Checkpoint& p : b.table.points) {
      if (p.window_size == 0 && p.out_offset > 0) member_points.push_back(p.out_offset);
    }
    EXPECT_EQ(member_points, (std::vector<uint64_t>{kSpan, 2 * kSpan, 3 * kSpan + 705}));
    auto table = std::make_shared<const CheckpointTable>(b.table);
    auto src = MemoryByteSource(blob, "blob multi");
    for (InflateEngine engine : {InflateEngine::kZlib, InflateEngine::kIsal}) {
    auto reader = NewReader(table, src.get(), "layer multi", engine);
    std::mt19937_64 rng(9);
    for (int i = 0; i < 100; ++i) {
      uint64_t off = rng() % all.size();
      Bytes out(1 + rng() % 600000);
      size_t n = 0;
      ASSERT_TRUE(reader->Read(off, out, &n).ok());
      ASSERT_EQ(n, std::min<uint64_t>(out.size(), all.size() - off));
      ASSERT_TRUE(std::equal(out.begin(), out.begin() + n, all.begin() + static_cast<ptrdiff_t>(off))) << off;
    }
    // One sequential pass over every member boundary.
    auto seq = NewReader(table, src.get(), "layer multi", engine);
    Bytes whole(all.size());
    size_t n = 0;
    ASSERT_TRUE(seq->Read(0, whole, &n).ok());
    EXPECT_EQ(n, all.size());
    EXPECT_EQ(whole, all);
    }
  }
}

// Members whose headers carry FNAME, FCOMMENT, FEXTRA and FHCRC (gzip -N, pigz, eStargz).
Bytes GzipWithHeader(const Bytes& in, const char* name) {
  z_stream s{};
  EXPECT_EQ(deflateInit2(&s, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
  static Bytef extra[] = {'l', 'z', 4, 0, 1, 2, 3, 4};
  gz_header h{};
  h.name = reinterpret_cast<Bytef*>(const_cast<char*>(name));
  h.comment = reinterpret_cast<Bytef*>(const_cast<char*>("a comment"));
  h.extra = extra;
  h.extra_len = sizeof(extra);
  h.hcrc = 1;
  EXPECT_EQ(deflateSetHeader(&s, &h), Z_OK);
  Bytes out(deflateBound(&s, in.size()) + 256);
  s.next_in = const_cast<Bytef*>(in.data());
  s.avail_in = static_cast<uInt>(in.size());
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&s, Z_FINISH), Z_STREAM_END);
  out.resize(s.total_out);
  deflateEnd(&s);
  return out;
}

TEST_P(GzipStreamTest, MemberHeadersWithOptionalFields) {
  Bytes a = MakeData(kSpan + 1000, 30), b = MakeData(2 * kSpan, 31);
  Bytes blob = GzipWithHeader(a, "usr.tar"), all = a;
  Bytes gb = GzipWithHeader(b, "second-member-name");
  blob.insert(blob.end(), gb.begin(), gb.end());
  all.insert(all.end(), b.begin(), b.end());
  Built built = Build(blob, 7777, kSpan, GetParam());
  ASSERT_TRUE(built.finish.ok()) << built.feed.ToString() << built.finish.ToString();
  ASSERT_EQ(built.output, all);
  auto table = std::make_shared<const CheckpointTable>(built.table);
  auto src = MemoryByteSource(blob, "blob hdr");
  for (InflateEngine engine : {InflateEngine::kZlib, InflateEngine::kIsal}) {
    auto reader = NewReader(table, src.get(), "layer hdr", engine);
    for (uint64_t off : {uint64_t{0}, a.size() - 10, a.size() + 3, all.size() - 5000}) {
      Bytes out(20000);
      size_t n = 0;
      ASSERT_TRUE(reader->Read(off, out, &n).ok()) << off;
      ASSERT_TRUE(std::equal(out.begin(), out.begin() + n, all.begin() + static_cast<ptrdiff_t>(off))) << off;
    }
  }
}

TEST(GzipStream, ParseRejectsInconsistentTablesWithAValidCrc) {
  Bytes data = MakeData(3 * kSpan, 32);
  Built b = Build(Gzip(data), 1 << 20, kSpan);
  ASSERT_TRUE(b.finish.ok());
  ASSERT_GE(b.table.points.size(), 3u);
  auto parse = [](const CheckpointTable& t) {
    std::string s = t.Serialize();
    return CheckpointTable::Parse(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()), "index x");
  };
  CheckpointTable t = b.table;
  std::swap(t.points[1], t.points[2]);
  EXPECT_FALSE(parse(t).ok());
  t = b.table;
  t.points[1].bits = 9;
  EXPECT_FALSE(parse(t).ok());
  t = b.table;
  t.points[1].window_size = kMaxWindowBytes + 1;
  EXPECT_FALSE(parse(t).ok());
  t = b.table;
  t.points[2].in_offset = t.compressed_size + 1;
  EXPECT_FALSE(parse(t).ok());
  t = b.table;
  t.points[0].out_offset = 5;
  EXPECT_FALSE(parse(t).ok());
  t = b.table;
  t.compression = Compression::kZstd;  // zstd points carry no windows
  auto r = parse(t);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("index x: checkpoint table at byte"), std::string::npos) << r.status().message();
  // A corrupted stored window is caught when a reader needs it.
  t = b.table;
  t.points[1].window[3] ^= 0xff;
  auto shared = std::make_shared<const CheckpointTable>(t);
  Bytes gz = Gzip(data);
  auto src = MemoryByteSource(gz, "blob");
  auto reader = RandomReader::Create(shared, src.get(), "layer w");
  Bytes out(10);
  size_t n = 0;
  EXPECT_FALSE(reader->Read(t.points[1].out_offset + 1, out, &n).ok());
}

TEST_P(GzipStreamTest, ManyEmptyMembersIterate) {
  Bytes one = Gzip(Bytes{});
  Bytes blob;
  for (int i = 0; i < 100000; ++i) blob.insert(blob.end(), one.begin(), one.end());
  Built b = Build(blob, 1 << 20, kSpan, GetParam());
  ASSERT_TRUE(b.feed.ok());
  ASSERT_TRUE(b.finish.ok());
  EXPECT_TRUE(b.output.empty());
  EXPECT_LE(b.table.points.size(), 1u);
}

TEST_P(GzipStreamTest, OutputCallbackErrorStopsFeed) {
  Bytes gz = Gzip(MakeData(100000, 6));
  auto d = StreamDecoder::Create(Compression::kGzip, "layer test", kSpan, GetParam());
  // ISA-L's pass holds a short last slice until Finish.
  OutputFn refuse = [](std::span<const uint8_t>) { return Status::Aborted("tar parser said no"); };
  Status st = d->Feed(gz, refuse);
  if (st.ok()) st = d->Finish(refuse);
  EXPECT_EQ(st.code(), ErrorCode::kAborted);
  EXPECT_FALSE(d->Feed(gz, [](std::span<const uint8_t>) { return Status::Ok(); }).ok());
}

// A forged index whose point carries a window cut shorter than the matches
// after it reach back (what fine points store, window_size < 32 KiB): a
// read from there must fail ("invalid distance too far back"), never give
// other bytes (zeros where the missing history was), with either engine.
TEST(GzipStream, ACutWindowTooShortFailsTheReadOnBothEngines) {
  Bytes data;
  std::mt19937 rng(77);
  // Text whose matches reach far back: 20 KiB of random words repeated.
  Bytes phrase;
  while (phrase.size() < (20 << 10)) {
    static const char* kPhraseWords[] = {"usr ", "lib ", "python3 ", "include ", "tar ", "layer ", "zran ", "\n"};
    const char* w = kPhraseWords[rng() % 8];
    phrase.insert(phrase.end(), w, w + std::strlen(w));
    phrase.push_back(static_cast<uint8_t>('a' + rng() % 26));
  }
  while (data.size() < 4 * kSpan) data.insert(data.end(), phrase.begin(), phrase.end());
  const Bytes blob = Gzip(data);
  Built b = Build(blob, 1 << 20, kSpan, InflateEngine::kZlib);
  ASSERT_TRUE(b.finish.ok()) << b.finish.ToString();
  auto src = MemoryByteSource(blob, "blob cut");
  int forged = 0, failed[2] = {0, 0};
  for (size_t i = 1; i < b.table.points.size(); ++i) {
    if (b.table.points[i].window_size != kMaxWindowBytes) continue;
    for (uint32_t keep : {0u, 1u, 1024u, 8192u}) {
      CheckpointTable t = b.table;
      Checkpoint& p = t.points[i];
      std::vector<uint8_t> raw;
      ASSERT_TRUE(ExpandWindow(p, "cut", &raw).ok());
      p.window_size = keep;
      p.window = keep == 0 ? std::string() : CompressWindow(std::span<const uint8_t>(raw).last(keep));
      p.fine = true;
      ++forged;
      auto table = std::make_shared<const CheckpointTable>(std::move(t));
      for (InflateEngine engine : {InflateEngine::kZlib, InflateEngine::kIsal}) {
        auto reader = NewReader(table, src.get(), "layer cut", engine);
        const uint64_t off = table->points[i].out_offset;
        Bytes out(64 << 10, 0xAA);
        size_t n = 0;
        Status st = reader->Read(off, out, &n);
        if (st.ok()) {
          ASSERT_TRUE(std::equal(out.begin(), out.begin() + static_cast<ptrdiff_t>(n),
                                 data.begin() + static_cast<ptrdiff_t>(off)))
              << "point " << i << " window " << keep << " engine " << (engine == InflateEngine::kZlib ? "zlib" : "isal")
              << ": other bytes from a cut window";
        } else {
          EXPECT_EQ(st.code(), ErrorCode::kCorruption) << st.ToString();
          ++failed[engine == InflateEngine::kZlib ? 0 : 1];
        }
      }
    }
  }
  EXPECT_GT(forged, 0);
  if (!HaveIsal()) std::printf("[ cut      ] built without ISA-L: kIsal read with zlib\n");
  // The matches reach back ~20 KiB: every cut window fails, on both engines.
  EXPECT_EQ(failed[0], forged);
  EXPECT_EQ(failed[1], forged);
}

// A reader primed at a point reads the blob 16 KiB at a time until 64 KiB
// are read, then 64 KiB at a time: a random read needs a few KiB of
// compressed bytes, and over a blob verified in small chunks each byte read
// is a byte hashed, while a sequential reader soon reads 64 KiB again. The
// ISA-L reader is told what the read will decode (ExpectOutput): its first
// read is then one read of what that needs, on to the end of that 32 KiB
// chunk (verified whole anyway) and no further; the byte holding the
// point's bits comes with it.
TEST(GzipReader, ReadsTheBlobInSmallStepsAfterAPrimeThenInWholeBuffers) {
  class Recording final : public ByteSource {
   public:
    explicit Recording(const Bytes& b) : inner_(MemoryByteSource(b, "blob rec")) {}
    Status ReadAt(uint64_t offset, std::span<uint8_t> out, size_t* n) const override {
      sizes.push_back(out.size());
      offsets.push_back(offset);
      return inner_->ReadAt(offset, out, n);
    }
    uint64_t Size() const override { return inner_->Size(); }
    const std::string& Name() const override { return inner_->Name(); }
    mutable std::vector<size_t> sizes;
    mutable std::vector<uint64_t> offsets;

   private:
    std::unique_ptr<ByteSource> inner_;
  };
  std::mt19937 rng(9);
  Bytes data(6 << 20);
  for (uint8_t& b : data) b = static_cast<uint8_t>(rng());  // stored blocks: compressed ~ output
  const Bytes blob = Gzip(data);
  Built b = Build(blob, 1 << 20, kSpan, InflateEngine::kZlib);
  ASSERT_TRUE(b.finish.ok()) << b.finish.ToString();
  ASSERT_GT(b.table.points.size(), 3u);
  auto table = std::make_shared<const CheckpointTable>(b.table);
  for (InflateEngine engine : {InflateEngine::kZlib, InflateEngine::kIsal}) {
    Recording src(blob);
    auto reader = NewReader(table, &src, "layer rec", engine);
    const uint64_t at = table->points[2].out_offset;
    Bytes out(4096);
    size_t n = 0;
    ASSERT_TRUE(reader->Read(at, out, &n).ok());
    ASSERT_TRUE(std::equal(out.begin(), out.end(), data.begin() + static_cast<ptrdiff_t>(at)));
    size_t first = 0;
    for (size_t z : src.sizes) first += z;
    if (engine == InflateEngine::kZlib) {
      EXPECT_LE(first, (16u << 10) + 1) << "a 4 KiB read from a point";  // + the prime's byte
    } else {
      ASSERT_EQ(src.sizes.size(), 1u) << "a 4 KiB read from a point: one read of the blob";
      const Checkpoint& p = table->points[2];
      EXPECT_EQ(src.offsets[0], p.in_offset - (p.bits != 0 ? 1 : 0));
      EXPECT_EQ((src.offsets[0] + src.sizes[0]) % (32u << 10), 0u) << "ends a 32 KiB chunk";
      EXPECT_GE(src.offsets[0] + src.sizes[0], p.in_offset + 4096) << "covers the stored bytes read";
      EXPECT_LE(src.sizes[0], (32u << 10) + 8192) << "no further than the chunk that holds them";
    }
    // On, sequentially: the reads grow to 64 KiB; every byte is right.
    Bytes rest(3 << 20);
    ASSERT_TRUE(reader->Read(at + 4096, rest, &n).ok());
    ASSERT_EQ(n, rest.size());
    EXPECT_TRUE(std::equal(rest.begin(), rest.end(), data.begin() + static_cast<ptrdiff_t>(at + 4096)));
    EXPECT_EQ(*std::max_element(src.sizes.begin(), src.sizes.end()), 64u << 10);
    size_t small = 0;
    for (size_t z : src.sizes) small += z < (64u << 10) ? 1 : 0;
    EXPECT_LE(small, 8u) << "a unit of 3 MiB pays a few more reads, not one per 16 KiB";
  }
}

}  // namespace
}  // namespace lazyroot
