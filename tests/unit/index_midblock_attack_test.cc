// Attacks on mid-block access points (fine point policy 2, isal_midblock.h):
// gzip streams built to put ISA-L's pass at its limits (a Huffman-coded block
// of megabytes, tiny blocks, blocks alternating stored/fixed/dynamic, sync
// flushes right where points fall due, empty members, a dynamic header of the
// maximal size written by hand) must index to tables that read back exactly
// zlib's bytes through both engines, the same for any chunking; and hostile
// tables (a header offset swept bit by bit around the right one and the
// point, a zero window, ...) must give kCorruption or bytes, never a crash or
// an out-of-bounds read (run under ASan/UBSan), and must leave the decoder
// usable for the next prime.
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
#include "index/isal_midblock.h"
#include "index/layer_decoder.h"
#include "tests/unit/midblock_streams.h"

namespace lazyroot {
namespace {

using midblock_test::Build;
using midblock_test::Built;
using midblock_test::Bytes;
using midblock_test::Words;
using midblock_test::ZlibDecode;

Bytes Noise(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  Bytes out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

// A deflate stream step: `n` more input bytes at (level, strategy), then `flush`.
struct Step {
  size_t n;
  int level;
  int strategy;
  int flush;
};

// One gzip member of `in` made by the steps (the last one finishes it).
Bytes GzipSteps(const Bytes& in, const std::vector<Step>& steps, int mem_level = 8) {
  z_stream s{};
  EXPECT_EQ(deflateInit2(&s, steps.empty() ? 6 : steps[0].level, Z_DEFLATED, 31, mem_level,
                         steps.empty() ? Z_DEFAULT_STRATEGY : steps[0].strategy),
            Z_OK);
  Bytes out(deflateBound(&s, in.size()) + 64 * steps.size() + 4096);
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  s.next_in = const_cast<Bytef*>(in.data());
  size_t at = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (i > 0) {
      EXPECT_EQ(deflateParams(&s, steps[i].level, steps[i].strategy), Z_OK);
    }
    const size_t n = i + 1 == steps.size() ? in.size() - at : std::min(steps[i].n, in.size() - at);
    s.avail_in = static_cast<uInt>(n);
    at += n;
    const int f = i + 1 == steps.size() ? Z_FINISH : steps[i].flush;
    EXPECT_EQ(deflate(&s, f), f == Z_FINISH ? Z_STREAM_END : Z_OK);
  }
  out.resize(s.total_out);
  deflateEnd(&s);
  return out;
}

// Deflate bits, LSB first; Huffman codes go in reversed.
struct BitWriter {
  Bytes out;
  uint64_t acc = 0;
  int n = 0;
  void Put(uint32_t v, int bits) {
    acc |= uint64_t{v} << n;
    n += bits;
    while (n >= 8) {
      out.push_back(static_cast<uint8_t>(acc));
      acc >>= 8;
      n -= 8;
    }
  }
  void PutCode(uint32_t code, int len) {
    uint32_t r = 0;
    for (int i = 0; i < len; ++i) r |= ((code >> i) & 1u) << (len - 1 - i);
    Put(r, len);
  }
  void Flush() {
    if (n > 0) Put(0, 8 - n);
  }
};

// Canonical codes (RFC 1951 3.2.2) for lengths `len`.
std::vector<uint32_t> Codes(const std::vector<int>& len) {
  int count[16] = {};
  for (int l : len) ++count[l];
  count[0] = 0;
  uint32_t next[16] = {};
  uint32_t code = 0;
  for (int b = 1; b < 16; ++b) {
    code = (code + count[b - 1]) << 1;
    next[b] = code;
  }
  std::vector<uint32_t> c(len.size());
  for (size_t i = 0; i < len.size(); ++i)
    if (len[i] != 0) c[i] = next[len[i]]++;
  return c;
}

// A gzip member of dynamic blocks whose headers are the largest deflate
// allows: 286 literal/length and 30 distance lengths, each sent as a 7-bit
// code-length code (3 + 14 + 57 + 316 * 7 = 2286 bits). The body: literals
// and length-3 matches at distances 1 to 4. `block` bytes of input a block.
Bytes MaxHeaderGzip(const Bytes& in, size_t block) {
  std::vector<int> lit(286), dist(30), cl(19);
  for (int i = 0; i < 286; ++i) lit[i] = i < 226 ? 8 : 9;  // 226/256 + 60/512 = 1
  for (int i = 0; i < 30; ++i) dist[i] = i < 2 ? 4 : 5;    // 2/16 + 28/32 = 1
  // Code-length code: the four lengths used (4, 5, 8, 9) at 7 bits, the rest
  // filling it up: 2/4 + 2/8 + 2/16 + 1/32 + 12/128 = 1.
  const int kClLen[19] = {2, 2, 3, 3, 7, 7, 4, 4, 7, 7, 5, 7, 7, 7, 7, 7, 7, 7, 7};
  for (int i = 0; i < 19; ++i) cl[i] = kClLen[i];
  const auto lc = Codes(lit), dc = Codes(dist), cc = Codes(cl);
  static constexpr int kOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
  BitWriter w;
  const Bytes head = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  w.out = head;
  for (size_t at = 0; at < in.size() || at == 0;) {
    const size_t end = std::min(in.size(), at + block);
    w.Put(end == in.size() ? 1 : 0, 1);
    w.Put(2, 2);
    w.Put(286 - 257, 5);
    w.Put(30 - 1, 5);
    w.Put(19 - 4, 4);
    for (int i = 0; i < 19; ++i) w.Put(static_cast<uint32_t>(cl[kOrder[i]]), 3);
    for (int l : lit) w.PutCode(cc[l], cl[l]);
    for (int l : dist) w.PutCode(cc[l], cl[l]);
    for (size_t i = at; i < end;) {
      int d = 0;
      for (int k = 1; k <= 4 && d == 0; ++k) {
        if (i >= static_cast<size_t>(k) && i + 3 <= end && in[i] == in[i - k] && in[i + 1] == in[i + 1 - k] &&
            in[i + 2] == in[i + 2 - k]) {
          d = k;
        }
      }
      if (d != 0) {
        w.PutCode(lc[257], lit[257]);       // length 3
        w.PutCode(dc[d - 1], dist[d - 1]);  // distances 1-4: codes 0-3, no extra bits
        i += 3;
      } else {
        w.PutCode(lc[in[i]], lit[in[i]]);
        ++i;
      }
    }
    w.PutCode(lc[256], lit[256]);
    at = end;
    if (in.empty()) break;
  }
  w.Flush();
  const uint32_t crc = static_cast<uint32_t>(crc32(0L, in.data(), static_cast<uInt>(in.size())));
  for (uint32_t v : {crc, static_cast<uint32_t>(in.size())})
    for (int i = 0; i < 4; ++i) w.out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  return w.out;
}

struct Shape {
  std::string name;
  Bytes data;
  Bytes blob;
  bool expect_mid;
};

std::vector<Shape> HostileShapes() {
  std::vector<Shape> v;
  {
    // One coded block of megabytes: every symbol a 258-byte match (zlib ends
    // a block after 32K symbols at memLevel 9).
    Bytes unit = Noise(1000, 3), data;
    while (data.size() < (6 << 20)) data.insert(data.end(), unit.begin(), unit.end());
    // The pass places no mid-block point in a member's first block (it
    // knows a block's header only from a stop at the block before): none
    // here, and no other point either; the reads must still be right.
    v.push_back({"a coded block of megabytes", data, GzipSteps(data, {{0, 9, Z_DEFAULT_STRATEGY, Z_FINISH}}, 9), false});
  }
  {
    // Tiny blocks: a sync flush every 97 bytes.
    const Bytes data = Words(600 << 10, 4);
    std::vector<Step> steps;
    for (size_t at = 0; at < data.size(); at += 97) steps.push_back({97, 6, Z_DEFAULT_STRATEGY, Z_SYNC_FLUSH});
    v.push_back({"tiny blocks", data, GzipSteps(data, steps), false});
  }
  {
    // Blocks alternating stored, fixed and dynamic (Z_BLOCK ends each).
    const Bytes data = Words(5 << 20, 5);
    std::vector<Step> steps;
    const int kinds[3][2] = {{0, Z_DEFAULT_STRATEGY}, {6, Z_FIXED}, {6, Z_DEFAULT_STRATEGY}};
    for (size_t at = 0, k = 0; at < data.size(); ++k) {
      const size_t n = k % 3 == 0 ? 5000 : 300 << 10;
      steps.push_back({n, kinds[k % 3][0], kinds[k % 3][1], Z_BLOCK});
      at += n;
    }
    v.push_back({"stored/fixed/dynamic", data, GzipSteps(data, steps), true});
  }
  {
    // Sync flushes every 128 KiB of input, right where points fall due,
    // and just after (fine points at the flushes: no block is long enough
    // for a mid-block point).
    const Bytes data = Words(5 << 20, 6);
    std::vector<Step> steps;
    for (size_t at = 0, k = 0; at < data.size(); ++k) {
      const size_t n = (128 << 10) + (k % 2 ? 1 : 0);
      steps.push_back({n, 6, Z_DEFAULT_STRATEGY, Z_SYNC_FLUSH});
      at += n;
    }
    v.push_back({"sync flushes at the points", data, GzipSteps(data, steps), false});
  }
  {
    // Members: empty ones first, between and last.
    Shape m{"empty members", {}, {}, true};
    const Bytes none;
    auto add = [&](const Bytes& part) {
      const Bytes g = GzipSteps(part, {{0, 6, Z_DEFAULT_STRATEGY, Z_FINISH}});
      m.data.insert(m.data.end(), part.begin(), part.end());
      m.blob.insert(m.blob.end(), g.begin(), g.end());
    };
    add(none);
    add(Words(2 << 20, 7));
    add(none);
    add(none);
    add(Words((1 << 20) + 3, 8));
    add(none);
    v.push_back(std::move(m));
  }
  {
    // Maximal dynamic headers, 700 KiB blocks of mostly literals.
    Bytes data = Noise(3 << 20, 9);
    std::mt19937 rng(10);
    for (size_t i = 0; i + 8 < data.size(); i += 1 + rng() % 40) std::fill_n(data.begin() + i, 4, data[i]);
    v.push_back({"maximal dynamic headers", data, MaxHeaderGzip(data, 700 << 10), true});
  }
  return v;
}

void ReadEverywhere(const Shape& s, std::shared_ptr<const CheckpointTable> table) {
  auto src = MemoryByteSource(s.blob, "blob");
  for (InflateEngine reader : {InflateEngine::kIsal, InflateEngine::kZlib}) {
    SCOPED_TRACE(reader == InflateEngine::kZlib ? "zlib reader" : "isal reader");
    auto r = RandomReader::Create(table, NewGzipPointDecoder(table.get(), src.get(), "blob", reader));
    Bytes buf(40000);
    std::mt19937 rng(5);
    std::vector<uint64_t> offsets;
    for (const Checkpoint& p : table->points) {
      offsets.push_back(p.out_offset);
      if (p.out_offset > 0) offsets.push_back(p.out_offset - 1);
    }
    for (int i = 0; i < 30; ++i) offsets.push_back(rng() % (s.data.size() + 1));
    std::shuffle(offsets.begin(), offsets.end(), rng);
    for (uint64_t off : offsets) {
      size_t n = 0;
      ASSERT_TRUE(r->Read(off, buf, &n).ok()) << "read at " << off;
      const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), s.data.size() - off));
      ASSERT_EQ(n, want) << "read at " << off;
      ASSERT_TRUE(std::equal(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(n),
                             s.data.begin() + static_cast<ptrdiff_t>(off)))
          << "read at " << off;
    }
  }
}

TEST(MidBlockAttack, HostileStreamsIndexAndReadBackExactly) {
  if (!MidBlockSupported()) GTEST_SKIP() << "built without ISA-L";
  for (const Shape& s : HostileShapes()) {
    SCOPED_TRACE(s.name);
    ASSERT_EQ(ZlibDecode(s.blob), s.data);
    const Built b = Build(s.blob, s.data.size(), nullptr);
    ASSERT_TRUE(b.ok);
    ASSERT_EQ(b.output, s.data);
    size_t mid = 0, bare = 0;
    for (const Checkpoint& p : b.table.points) {
      mid += p.mid_block;
      bare += p.mid_block && p.window_size == 0;
    }
    std::printf("%s: %zu bytes -> %zu, %zu points, %zu mid-block (%zu without a window)\n", s.name.c_str(),
                s.data.size(), s.blob.size(), b.table.points.size(), mid, bare);
    if (s.expect_mid) {
      EXPECT_GT(mid, 0u);
    }
    // Literals and short matches: the pass stores mid-block points without a
    // window, which a fresh reader resumed with a null window (UBSan).
    if (s.name == "maximal dynamic headers") {
      EXPECT_GT(bare, 0u);
    }
    const std::string ser = b.table.Serialize();
    auto back = CheckpointTable::Parse(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(ser.data()), ser.size()), "t");
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    ASSERT_TRUE(*back == b.table);
    ReadEverywhere(s, std::make_shared<const CheckpointTable>(b.table));
    // fsck's rebuild: the same table whatever the chunking.
    std::mt19937 rng(11);
    const Built chunked = Build(s.blob, s.data.size(), &rng, kFinePolicyV2, 70000);
    EXPECT_TRUE(chunked.table == b.table);
  }
}

// Decodes `len` bytes at a regular point with `d` and compares: a failed
// hostile prime must not leave state behind.
void ExpectCleanAfter(PointDecoder* d, const CheckpointTable& t, const Bytes& truth) {
  size_t i = t.points.size() / 2;
  while (t.points[i].fine) --i;
  const Checkpoint& p = t.points[i];
  ASSERT_TRUE(d->Prime(p).ok());
  Bytes buf(5000);
  ASSERT_TRUE(d->Decode(buf).ok());
  ASSERT_TRUE(std::equal(buf.begin(), buf.end(), truth.begin() + static_cast<ptrdiff_t>(p.out_offset)));
}

TEST(MidBlockAttack, HeaderOffsetSweptBitByBitIsCorruptionOrBytes) {
  if (!MidBlockSupported()) GTEST_SKIP() << "built without ISA-L";
  const Bytes data = Words(3 << 20, 12);
  const Bytes blob = GzipSteps(data, {{0, 6, Z_DEFAULT_STRATEGY, Z_FINISH}});
  const Built b = Build(blob, data.size(), nullptr);
  ASSERT_TRUE(b.ok);
  auto src = MemoryByteSource(blob, "blob");
  auto d = NewGzipPointDecoder(&b.table, src.get(), "blob", InflateEngine::kIsal);
  size_t mids = 0, tried = 0, errors = 0, same = 0;
  for (size_t i = 0; i < b.table.points.size() && mids < 2; ++i) {
    const Checkpoint& good = b.table.points[i];
    if (!good.mid_block) continue;
    ++mids;
    std::vector<uint64_t> bits;
    for (uint64_t h = good.header_bit > 3000 ? good.header_bit - 3000 : 0; h < good.header_bit + 3000; ++h) bits.push_back(h);
    for (uint64_t h = good.bit_offset() - 3000; h < good.bit_offset() + 16; ++h) bits.push_back(h);
    for (uint64_t h = blob.size() * 8 - 16; h < blob.size() * 8 + 16; ++h) bits.push_back(h);
    bits.push_back(~uint64_t{0});
    for (uint64_t h : bits) {
      Checkpoint p = good;
      p.header_bit = h;
      ++tried;
      Status st = d->Prime(p);
      Bytes buf(33000);
      if (st.ok()) st = d->Decode(buf);
      if (!st.ok()) {
        ++errors;
        ASSERT_EQ(st.code(), ErrorCode::kCorruption) << st.ToString();
        ASSERT_NE(st.message().find("compressed offset"), std::string::npos) << st.ToString();
      } else if (std::equal(buf.begin(), buf.end(), data.begin() + static_cast<ptrdiff_t>(p.out_offset))) {
        ++same;
      }
      if (tried % 97 == 0) ExpectCleanAfter(d.get(), b.table, data);
    }
  }
  ASSERT_EQ(mids, 2u);
  std::printf("%zu header offsets: %zu errors, %zu read the right bytes\n", tried, errors, same);
  EXPECT_GT(errors, tried * 9 / 10);
  ExpectCleanAfter(d.get(), b.table, data);
}

TEST(MidBlockAttack, WindowsNeverWrittenAreCorruptionOrBytes) {
  if (!MidBlockSupported()) GTEST_SKIP() << "built without ISA-L";
  const Bytes data = Words(3 << 20, 13);
  const Bytes blob = GzipSteps(data, {{0, 6, Z_DEFAULT_STRATEGY, Z_FINISH}});
  const Built b = Build(blob, data.size(), nullptr);
  ASSERT_TRUE(b.ok);
  auto src = MemoryByteSource(blob, "blob");
  size_t mids = 0;
  for (const Checkpoint& good : b.table.points) {
    if (!good.mid_block) continue;
    ++mids;
    std::vector<uint8_t> whole;
    ASSERT_TRUE(ExpandWindow(good, "t", &whole).ok());
    for (uint32_t w : {0u, 1u, 7u, 1024u, 32767u, 32768u}) {
      Checkpoint p = good;
      p.window_size = w;
      Bytes raw(w, 'x');
      p.window = w == 0 ? std::string() : CompressWindow(raw);
      // A fresh decoder each time: its window buffer never allocated.
      auto d = NewGzipPointDecoder(&b.table, src.get(), "blob", InflateEngine::kIsal);
      Status st = d->Prime(p);
      Bytes buf(40000);
      if (st.ok()) st = d->Decode(buf);
      if (!st.ok()) {
        EXPECT_EQ(st.code(), ErrorCode::kCorruption) << st.ToString();
      }
      ExpectCleanAfter(d.get(), b.table, data);
    }
  }
  EXPECT_GT(mids, 0u);
}

}  // namespace
}  // namespace lazyroot
