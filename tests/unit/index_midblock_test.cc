// Mid-block access points (fine point policy 2, isal_midblock.h): ISA-L's
// pass places them inside long Huffman-coded blocks, and every one resumes
// byte for byte (ISA-L reader) against zlib's own decode of the whole stream,
// on gzip -6 text, a binary-like stream, Z_FIXED, level 9 with sync and full
// flushes and several members; zlib readers prime at the point before one;
// the table does not depend on the chunking; a table naming a wrong header
// is an error, never a crash; the header walk agrees with zlib's blocks.
#include "index/isal_midblock.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "index/byte_source.h"
#include "index/fine_points.h"
#include "index/gzip_index.h"
#include "index/layer_decoder.h"
#include "tests/unit/midblock_streams.h"

namespace lazyroot {
namespace {

using midblock_test::Build;
using midblock_test::Built;
using midblock_test::Bytes;
using midblock_test::Words;
using midblock_test::ZlibDecode;

// Log lines: matches reach back a line or two (windows cut to 1 KiB).
Bytes LogLines(size_t n) {
  Bytes out;
  char line[64];
  for (unsigned i = 0; out.size() < n; ++i) {
    const int len = std::snprintf(line, sizeof line, "line %08u of a compressible log file\n", i);
    out.insert(out.end(), line, line + len);
  }
  out.resize(n);
  return out;
}

// Binary-like: short random records repeated with variations.
Bytes Binary(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  Bytes rec(64);
  Bytes out;
  while (out.size() < n) {
    if (rng() % 16 == 0)
      for (auto& b : rec) b = static_cast<uint8_t>(rng());
    rec[rng() % rec.size()] = static_cast<uint8_t>(rng());
    out.insert(out.end(), rec.begin(), rec.end());
    if (rng() % 4 == 0) out.push_back(static_cast<uint8_t>(rng() % 4));
  }
  out.resize(n);
  return out;
}

// One gzip member; flush_every > 0 calls deflate with `flush` that often.
Bytes Gzip(const Bytes& in, int level, int strategy = Z_DEFAULT_STRATEGY, size_t flush_every = 0,
           int flush = Z_NO_FLUSH) {
  z_stream s{};
  EXPECT_EQ(deflateInit2(&s, level, Z_DEFLATED, 31, 8, strategy), Z_OK);
  Bytes out(deflateBound(&s, in.size()) + 1024 + (flush_every ? in.size() / flush_every * 16 : 0));
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  size_t at = 0;
  do {
    const size_t n = flush_every ? std::min(flush_every, in.size() - at) : in.size() - at;
    s.next_in = const_cast<Bytef*>(in.data() + at);
    s.avail_in = static_cast<uInt>(n);
    at += n;
    const int f = at == in.size() ? Z_FINISH : flush;
    const int r = deflate(&s, f);
    EXPECT_TRUE(r == (f == Z_FINISH ? Z_STREAM_END : Z_OK)) << r;
  } while (at < in.size());
  out.resize(s.total_out);
  deflateEnd(&s);
  return out;
}

struct Shape {
  const char* name;
  Bytes data;
  Bytes blob;
  bool expect_mid;  // long coded blocks: mid-block points expected
};

std::vector<Shape> Shapes() {
  std::vector<Shape> v;
  const Bytes text = Words(6 << 20, 1);
  v.push_back({"gzip -6 text", text, Gzip(text, 6), true});
  const Bytes bin = Binary(4 << 20, 2);
  v.push_back({"binary", bin, Gzip(bin, 6), false});
  v.push_back({"Z_FIXED", text, Gzip(text, 6, Z_FIXED), true});
  // Level 9 on the words needs whole windows (no mid-block points there):
  // log lines, whose windows cut.
  const Bytes log = LogLines(6 << 20);
  v.push_back({"level 9, sync flushes", log, Gzip(log, 9, Z_DEFAULT_STRATEGY, 900 << 10, Z_SYNC_FLUSH), true});
  v.push_back({"level 9, full flushes", log, Gzip(log, 9, Z_DEFAULT_STRATEGY, 700 << 10, Z_FULL_FLUSH), true});
  // Three members.
  Shape m{"members", {}, {}, true};
  for (unsigned i = 0; i < 3; ++i) {
    const Bytes part = Words((2 << 20) + 777 * i, 10 + i);
    const Bytes g = Gzip(part, 6);
    m.data.insert(m.data.end(), part.begin(), part.end());
    m.blob.insert(m.blob.end(), g.begin(), g.end());
  }
  v.push_back(std::move(m));
  return v;
}

TEST(MidBlock, HeaderWalkAgreesWithZlibsBlocks) {
  const Bytes text = Words(2 << 20, 3);
  for (const Bytes& blob : {Gzip(text, 6), Gzip(text, 6, Z_FIXED), Gzip(text, 1)}) {
    std::vector<uint64_t> headers;
    ZlibDecode(blob, &headers);
    ASSERT_GT(headers.size(), 1u);
    for (size_t i = 0; i + 1 < headers.size(); ++i) {
      DeflateHeader h;
      // zlib's boundary list includes the stored/empty ones a flush makes.
      if (!WalkDeflateHeader(blob, headers[i], &h)) continue;
      EXPECT_GT(h.symbols_bit, headers[i]);
      EXPECT_LT(h.symbols_bit, headers[i + 1]);
      EXPECT_GE(h.eob_bits, 1);
    }
  }
  // Cut short, stored, invalid: refused.
  DeflateHeader h;
  const Bytes stored = {0x01, 0x00, 0x00, 0xff, 0xff};
  EXPECT_FALSE(WalkDeflateHeader(stored, 0, &h));
  const Bytes blob = Gzip(text, 6);
  EXPECT_FALSE(WalkDeflateHeader(std::span<const uint8_t>(blob).first(14), 80, &h));
}

TEST(MidBlock, EveryPointResumesExactlyOnEveryShape) {
  if (!MidBlockSupported()) GTEST_SKIP() << "built without ISA-L";
  for (const Shape& s : Shapes()) {
    SCOPED_TRACE(s.name);
    const Bytes truth = ZlibDecode(s.blob, nullptr);
    ASSERT_EQ(truth, s.data);
    const Built b = Build(s.blob, s.data.size(), nullptr);
    ASSERT_EQ(b.output, s.data);
    EXPECT_EQ(b.table.fine_policy, kFinePolicyV2);
    auto table = std::make_shared<const CheckpointTable>(b.table);
    size_t mid = 0;
    for (const Checkpoint& p : table->points) mid += p.mid_block;
    if (s.expect_mid) {
      EXPECT_GT(mid, 2u);
    }
    std::printf("%s: %zu points, %zu mid-block\n", s.name, table->points.size(), mid);
    // Serialised and parsed back unchanged.
    const std::string ser = table->Serialize();
    auto back = CheckpointTable::Parse(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(ser.data()), ser.size()), "t");
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(*back == *table);
    auto src = MemoryByteSource(s.blob, "blob");
    for (InflateEngine reader : {InflateEngine::kIsal, InflateEngine::kZlib}) {
      SCOPED_TRACE(reader == InflateEngine::kZlib ? "zlib reader" : "isal reader");
      auto r = RandomReader::Create(table, NewGzipPointDecoder(table.get(), src.get(), "blob", reader));
      Bytes buf(70000);
      std::mt19937 rng(5);
      std::vector<uint64_t> offsets;
      for (const Checkpoint& p : table->points) {
        offsets.push_back(p.out_offset);
        if (p.out_offset > 0) offsets.push_back(p.out_offset - 1);  // across the point
      }
      for (int i = 0; i < 50; ++i) offsets.push_back(rng() % s.data.size());
      std::shuffle(offsets.begin(), offsets.end(), rng);  // cold reads, backwards too
      for (uint64_t off : offsets) {
        size_t n = 0;
        ASSERT_TRUE(r->Read(off, buf, &n).ok()) << "read at " << off;
        const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), s.data.size() - off));
        ASSERT_EQ(n, want);
        ASSERT_TRUE(std::equal(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(n),
                               s.data.begin() + static_cast<ptrdiff_t>(off)))
            << "read at " << off;
      }
    }
    // A mid-block point's window is the last bytes before it.
    for (const Checkpoint& p : table->points) {
      if (!p.mid_block) continue;
      EXPECT_TRUE(p.fine);
      EXPECT_LT(p.header_bit, p.bit_offset());
      std::vector<uint8_t> w;
      ASSERT_TRUE(ExpandWindow(p, "t", &w).ok());
      EXPECT_TRUE(std::equal(w.begin(), w.end(), s.data.begin() + static_cast<ptrdiff_t>(p.out_offset - w.size())));
    }
  }
}

TEST(MidBlock, RandomChunkingsGiveTheSameTable) {
  if (!MidBlockSupported()) GTEST_SKIP() << "built without ISA-L";
  const Bytes text = Words(5 << 20, 7);
  const Bytes blob = Gzip(text, 6);
  const Built whole = Build(blob, text.size(), nullptr);
  for (unsigned seed = 1; seed <= 3; ++seed) {
    std::mt19937 rng(seed);
    const Built chunked = Build(blob, text.size(), &rng);
    EXPECT_EQ(chunked.output, text);
    EXPECT_TRUE(chunked.table == whole.table) << "seed " << seed;
  }
}

TEST(MidBlock, PolicyOneTablesHaveNone) {
  const Bytes text = Words(3 << 20, 8);
  const Built b = Build(Gzip(text, 6), text.size(), nullptr, kFinePolicyV1);
  EXPECT_EQ(b.table.fine_policy, kFinePolicyV1);
  for (const Checkpoint& p : b.table.points) EXPECT_FALSE(p.mid_block);
}

TEST(MidBlock, ParseRefusesHostileMidBlockFields) {
  CheckpointTable t;
  t.compression = Compression::kGzip;
  t.made_by = InflateEngine::kIsal;
  t.fine_policy = kFinePolicyV2;
  t.compressed_size = 100000;
  t.uncompressed_size = 500000;
  t.points.push_back(Checkpoint{10, 0, 0, 0, {}, false});
  Checkpoint m{5000, 200000, 3, 0, {}, true};
  m.mid_block = true;
  m.header_bit = 800;
  t.points.push_back(m);
  auto bytes = [](const std::string& x) { return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(x.data()), x.size()); };
  const std::string good = t.Serialize();
  ASSERT_TRUE(CheckpointTable::Parse(bytes(good), "t").ok());
  auto refused = [&](const CheckpointTable& bad) {
    auto r = CheckpointTable::Parse(bytes(bad.Serialize()), "t");
    return !r.ok() && r.status().code() == ErrorCode::kCorruption;
  };
  CheckpointTable bad = t;
  bad.fine_policy = kFinePolicyV1;  // mid-block needs policy 2
  EXPECT_TRUE(refused(bad));
  bad = t;
  bad.points[1].fine = false;  // mid-block is a fine point
  EXPECT_TRUE(refused(bad));
  bad = t;
  bad.points[1].header_bit = bad.points[1].bit_offset();  // not before the point
  EXPECT_TRUE(refused(bad));
  bad.points[1].header_bit = ~uint64_t{0};
  EXPECT_TRUE(refused(bad));
  // Truncated inside the header offset (crc recomputed by the caller's skip).
  for (size_t cut = 1; cut <= 8; ++cut) {
    std::string s = good.substr(0, good.size() - 4 - cut);
    s.append(4, '\0');
    EXPECT_FALSE(CheckpointTable::Parse(bytes(s), "t", true).ok()) << cut;
  }
  // Flag bits beyond bit 1.
  std::string s = good;
  const size_t flags_at = 40 + 28 + 8 + 8 + 1;  // header, point 0, point 1's offsets and bits
  s[flags_at] = 7;
  EXPECT_FALSE(CheckpointTable::Parse(bytes(s), "t", true).ok());
}

TEST(MidBlock, WrongHeaderOffsetsAreErrorsNotCrashes) {
  if (!MidBlockSupported()) GTEST_SKIP() << "built without ISA-L";
  // Text with random runs: stored blocks to point at as well.
  Bytes data = Words(3 << 20, 9);
  std::mt19937 rng(4);
  const Bytes noise = [&] {
    Bytes n(300 << 10);
    for (auto& b : n) b = static_cast<uint8_t>(rng());
    return n;
  }();
  data.insert(data.begin() + (1 << 20), noise.begin(), noise.end());
  const Bytes blob = Gzip(data, 6);
  std::vector<uint64_t> headers;
  ZlibDecode(blob, &headers);
  const Built b = Build(blob, data.size(), nullptr);
  auto src = MemoryByteSource(blob, "blob");
  size_t tried = 0, errors = 0;
  for (size_t i = 0; i < b.table.points.size(); ++i) {
    const Checkpoint& p = b.table.points[i];
    if (!p.mid_block) continue;
    std::vector<uint64_t> bogus = {p.bit_offset() - 1, p.header_bit + 1, p.header_bit + 3, 0, 80,
                                   p.bit_offset() + 1000, uint64_t{blob.size()} * 8 + 5};
    for (uint64_t h : headers) {
      if (h != p.header_bit && h < p.bit_offset()) bogus.push_back(h);  // other blocks' headers, stored ones too
    }
    for (int k = 0; k < 20; ++k) bogus.push_back(rng() % p.bit_offset());
    for (uint64_t h : bogus) {
      auto t = std::make_shared<CheckpointTable>(b.table);
      t->points[i].header_bit = h;
      auto d = NewGzipPointDecoder(t.get(), src.get(), "blob", InflateEngine::kIsal);
      Bytes buf(40000);
      ++tried;
      Status st = d->Prime(t->points[i]);
      if (st.ok()) st = d->Decode(buf);
      if (!st.ok()) {
        ++errors;
        EXPECT_EQ(st.code(), ErrorCode::kCorruption) << st.ToString();
        continue;
      }
      // A header decoding to a coded block elsewhere: the table is the
      // index's word (its SHA-256, fsck's rebuild), as a window is.
    }
  }
  ASSERT_GT(tried, 0u);
  EXPECT_GT(errors, tried / 2);
}

}  // namespace
}  // namespace lazyroot
