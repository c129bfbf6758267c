// Pins the undocumented ISA-L behaviour the pull's gzip pass relies on (the
// "bfinal poke", index/gzip_isal_stream.h): on every stream shape below, every
// checkpoint the ISA-L stream decoder records is one of zlib's own stops
// (Z_BLOCK: a deflate block boundary or a member header's end) at the same
// uncompressed offset, its window is the 32 KiB before it, and decoding resumes
// there byte-for-byte with zlib (inflatePrime + inflateSetDictionary) and with
// ISA-L (read_in + isal_inflate_set_dict). Shapes: multi-member (empty, FNAME,
// stored members), stored blocks, fixed Huffman, Huffman-only, sync and full
// flush, levels 0/1/9, pigz-shaped and GNU gzip's own deflate.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "index/gzip_index.h"
#include "index/gzip_isal_stream.h"
#include "index/layer_decoder.h"

namespace lazyroot {
namespace {

using Bytes = std::vector<uint8_t>;

// Text-like runs with random runs between: dynamic blocks, stored blocks and
// block ends at every bit offset.
Bytes MakeData(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  static const char* kWords[] = {"usr ", "lib ", "share ", "locale ", "\n", "x86_64 ", "tar ", "zran "};
  Bytes out;
  while (out.size() < size) {
    const size_t run = 1 + rng() % 30000;
    const bool noise = rng() % 4 == 0;
    for (size_t i = 0; i < run && out.size() < size; ++i) {
      if (noise) {
        out.push_back(static_cast<uint8_t>(rng()));
      } else {
        for (const char* c = kWords[rng() % 8]; *c && out.size() < size; ++c) out.push_back(static_cast<uint8_t>(*c));
      }
    }
  }
  return out;
}

struct Deflater {
  z_stream s{};
  Deflater(int level, int strategy, int window_bits, const char* name = nullptr) {
    EXPECT_EQ(deflateInit2(&s, level, Z_DEFLATED, window_bits, 8, strategy), Z_OK);
    if (name != nullptr) {
      static gz_header h{};
      h.name = reinterpret_cast<Bytef*>(const_cast<char*>(name));
      EXPECT_EQ(deflateSetHeader(&s, &h), Z_OK);
    }
  }
  ~Deflater() { deflateEnd(&s); }
  void Run(const uint8_t* in, size_t n, int flush, Bytes* out) {
    s.next_in = const_cast<Bytef*>(in);
    s.avail_in = static_cast<uInt>(n);
    uint8_t buf[65536];
    do {
      s.next_out = buf;
      s.avail_out = sizeof buf;
      int ret = deflate(&s, flush);
      ASSERT_TRUE(ret == Z_OK || ret == Z_STREAM_END || ret == Z_BUF_ERROR) << ret;
      out->insert(out->end(), buf, buf + (sizeof buf - s.avail_out));
    } while (s.avail_out == 0 || s.avail_in > 0);
  }
};

// One gzip member; flush_every > 0 flushes with `flush` after each that many input bytes.
Bytes Member(const Bytes& in, int level, int strategy = Z_DEFAULT_STRATEGY, int flush = Z_NO_FLUSH,
             size_t flush_every = 0, const char* name = nullptr) {
  Deflater d(level, strategy, 31, name);
  Bytes out;
  size_t at = 0;
  if (flush_every > 0) {
    for (; at + flush_every < in.size(); at += flush_every) d.Run(in.data() + at, flush_every, flush, &out);
  }
  d.Run(in.data() + at, in.size() - at, Z_FINISH, &out);
  return out;
}

void PutLe32(Bytes* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// pigz's shape: the input in 128 KiB pieces, each deflated on its own (raw,
// primed with the previous 32 KiB as a dictionary) and byte-aligned with a
// sync flush, the last one finished; one gzip header and trailer around all.
Bytes PigzShaped(const Bytes& in) {
  Bytes out = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
  constexpr size_t kPiece = 128 << 10;
  for (size_t at = 0; at < in.size(); at += kPiece) {
    const size_t n = std::min(kPiece, in.size() - at);
    Deflater d(6, Z_DEFAULT_STRATEGY, -15);
    if (at > 0) {
      const size_t dict = std::min<size_t>(at, 32768);
      EXPECT_EQ(deflateSetDictionary(&d.s, in.data() + at - dict, static_cast<uInt>(dict)), Z_OK);
    }
    d.Run(in.data() + at, n, at + n == in.size() ? Z_FINISH : Z_SYNC_FLUSH, &out);
  }
  PutLe32(&out, static_cast<uint32_t>(crc32(0, in.data(), static_cast<uInt>(in.size()))));
  PutLe32(&out, static_cast<uint32_t>(in.size()));
  return out;
}

// GNU gzip's own deflate (not zlib's); empty if /usr/bin/gzip is missing.
Bytes GnuGzip(const Bytes& in, int level) {
  const std::string dir = ::testing::TempDir();
  // Per process: CTest runs this file's tests in parallel processes.
  const std::string plain = dir + "/isal_test_plain." + std::to_string(getpid()), gz = plain + ".gz";
  std::ofstream(plain, std::ios::binary).write(reinterpret_cast<const char*>(in.data()), static_cast<std::streamsize>(in.size()));
  const std::string cmd = "gzip -f -" + std::to_string(level) + " '" + plain + "' 2>/dev/null";
  if (std::system(cmd.c_str()) != 0) return {};
  std::ifstream f(gz, std::ios::binary);
  Bytes out((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::remove(gz.c_str());
  return out;
}

// Every place zlib's inflate(Z_BLOCK) stops: (bit offset, uncompressed offset).
std::set<std::pair<uint64_t, uint64_t>> ZlibStops(const Bytes& blob) {
  std::set<std::pair<uint64_t, uint64_t>> stops;
  z_stream s{};
  EXPECT_EQ(inflateInit2(&s, 31), Z_OK);
  s.next_in = const_cast<Bytef*>(blob.data());
  s.avail_in = static_cast<uInt>(blob.size());
  Bytes out(1 << 20);
  uint64_t total_out = 0;
  while (s.avail_in > 0) {
    s.next_out = out.data();
    s.avail_out = static_cast<uInt>(out.size());
    int ret = inflate(&s, Z_BLOCK);
    total_out += out.size() - s.avail_out;
    if (ret == Z_STREAM_END) {
      inflateReset(&s);
      continue;
    }
    EXPECT_TRUE(ret == Z_OK || ret == Z_BUF_ERROR) << ret;
    if (ret != Z_OK && ret != Z_BUF_ERROR) break;
    if ((s.data_type & 128) != 0) {
      const uint64_t in = static_cast<uint64_t>(s.next_in - blob.data());
      stops.insert({in * 8 - static_cast<uint64_t>(s.data_type & 7), total_out});
    }
  }
  inflateEnd(&s);
  return stops;
}

struct Decoded {
  Bytes output;
  CheckpointTable table;
};

Decoded Stream(const Bytes& blob, size_t chunk, uint64_t span, InflateEngine engine) {
  Decoded d;
  // kIsal here is ISA-L's stream decoder itself, whatever the run-time check said.
  // (Built without ISA-L: the zlib fallback.)
  auto dec = engine == InflateEngine::kIsal && HaveIsal() ? NewIsalGzipStreamDecoder("layer shape", span)
                                                          : NewGzipStreamDecoder("layer shape", span, engine);
  OutputFn sink = [&](std::span<const uint8_t> o) {
    d.output.insert(d.output.end(), o.begin(), o.end());
    return Status::Ok();
  };
  for (size_t at = 0; at < blob.size(); at += chunk) {
    Status st = dec->Feed(std::span<const uint8_t>(blob).subspan(at, std::min(chunk, blob.size() - at)), sink);
    EXPECT_TRUE(st.ok()) << st.ToString();
    if (!st.ok()) return d;
  }
  Status st = dec->Finish(sink);
  EXPECT_TRUE(st.ok()) << st.ToString();
  if (st.ok()) d.table = dec->TakeCheckpoints();
  return d;
}

struct Shape {
  std::string name;
  Bytes data;
  Bytes blob;
};

std::vector<Shape> Shapes() {
  std::vector<Shape> v;
  const Bytes text = MakeData(3 << 20, 1);
  auto add = [&](std::string name, Bytes data, Bytes blob) { v.push_back({std::move(name), std::move(data), std::move(blob)}); };
  {
    // Members: normal, empty, FNAME, stored (level 0), tiny, level 9.
    const std::vector<std::pair<Bytes, Bytes>> parts = {
        {MakeData(700000, 2), {}}, {Bytes{}, {}}, {MakeData(400000, 3), {}}, {MakeData(300000, 4), {}},
        {MakeData(100, 5), {}},   {MakeData(500000, 6), {}}};
    Bytes data, blob;
    for (size_t i = 0; i < parts.size(); ++i) {
      const Bytes& p = parts[i].first;
      Bytes m = i == 2 ? Member(p, 6, Z_DEFAULT_STRATEGY, Z_NO_FLUSH, 0, "usr.tar") : Member(p, i == 3 ? 0 : i == 5 ? 9 : 6);
      data.insert(data.end(), p.begin(), p.end());
      blob.insert(blob.end(), m.begin(), m.end());
    }
    add("multi", data, blob);
  }
  {
    Bytes random(1 << 20);
    std::mt19937 rng(7);
    for (uint8_t& b : random) b = static_cast<uint8_t>(rng());
    add("stored", random, Member(random, 6));
  }
  add("fixed", text, Member(text, 6, Z_FIXED));
  add("huffonly", text, Member(text, 6, Z_HUFFMAN_ONLY));
  add("sync", text, Member(text, 6, Z_DEFAULT_STRATEGY, Z_SYNC_FLUSH, 50000));
  add("fullflush", text, Member(text, 6, Z_DEFAULT_STRATEGY, Z_FULL_FLUSH, 70001));
  add("level0", text, Member(text, 0));
  add("level1", text, Member(text, 1));
  add("level9", text, Member(text, 9));
  add("pigz", text, PigzShaped(text));
  Bytes gnu = GnuGzip(text, 6);
  if (!gnu.empty()) add("gnu-gzip-6", text, gnu);
  return v;
}

TEST(GzipIsalStream, RunTimeCheckPassesWithIsal) {
  // On this machine's libisal the mechanism must hold; without ISA-L the pull uses zlib.
  EXPECT_EQ(IsalCheckpointsWork(), HaveIsal());
}

TEST(GzipIsalStream, CheckpointsAreZlibStopsAndResumeWithBothEngines) {
  if (!HaveIsal()) GTEST_SKIP() << "built without ISA-L";
  size_t unaligned = 0, checked = 0;
  for (const Shape& shape : Shapes()) {
    SCOPED_TRACE(shape.name);
    const auto stops = ZlibStops(shape.blob);
    ASSERT_FALSE(stops.empty());
    auto src = MemoryByteSource(shape.blob, "blob " + shape.name);
    for (const uint64_t span : {uint64_t{20000}, uint64_t{300000}}) {
      for (const size_t chunk : {size_t{4093}, size_t{1} << 20, shape.blob.size()}) {
        SCOPED_TRACE("span " + std::to_string(span) + " chunk " + std::to_string(chunk));
        Decoded d = Stream(shape.blob, chunk, span, InflateEngine::kIsal);
        ASSERT_EQ(d.output, shape.data);
        ASSERT_FALSE(d.table.points.empty());
        ASSERT_EQ(d.table.points[0].out_offset, 0u);
        EXPECT_EQ(d.table.compressed_size, shape.blob.size());
        auto table = std::make_shared<const CheckpointTable>(d.table);
        auto zlib_reader = RandomReader::Create(table, NewGzipPointDecoder(table.get(), src.get(), "zlib", InflateEngine::kZlib));
        auto isal_reader = RandomReader::Create(table, NewGzipPointDecoder(table.get(), src.get(), "isal", InflateEngine::kIsal));
        for (size_t i = 0; i < table->points.size(); ++i) {
          const Checkpoint& p = table->points[i];
          if (i > 0) {
            EXPECT_GE(p.out_offset - table->points[i - 1].out_offset, span);
          }
          const uint64_t bitpos = p.in_offset * 8 - p.bits;
          EXPECT_TRUE(stops.count({bitpos, p.out_offset})) << "checkpoint " << i << " at in " << p.in_offset << " bits "
                                                           << int{p.bits} << " out " << p.out_offset
                                                           << " is not a zlib stop";
          unaligned += p.bits != 0;
          std::vector<uint8_t> window;
          ASSERT_TRUE(ExpandWindow(p, "w", &window).ok());
          ASSERT_LE(window.size(), p.out_offset);
          EXPECT_TRUE(std::equal(window.begin(), window.end(), shape.data.begin() + static_cast<ptrdiff_t>(p.out_offset - window.size())));
          // Resume exactly here (a read at a point's offset primes at that point).
          for (RandomReader* r : {zlib_reader.get(), isal_reader.get()}) {
            Bytes out(std::min<uint64_t>(70000, shape.data.size() - p.out_offset));
            size_t n = 0;
            ASSERT_TRUE(r->Read(p.out_offset, out, &n).ok()) << "checkpoint " << i;
            ASSERT_EQ(n, out.size());
            EXPECT_TRUE(std::equal(out.begin(), out.begin() + static_cast<ptrdiff_t>(n), shape.data.begin() + static_cast<ptrdiff_t>(p.out_offset)))
                << "resume at checkpoint " << i;
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_GT(unaligned, 10u) << "expected checkpoints at unaligned block ends";
  EXPECT_GT(checked, 200u);
}

// The zlib decoder stays the fallback and decodes the same streams to the same bytes.
TEST(GzipIsalStream, ZlibFallbackDecodesTheSameStreams) {
  for (const Shape& shape : Shapes()) {
    SCOPED_TRACE(shape.name);
    Decoded z = Stream(shape.blob, 65536, 300000, InflateEngine::kZlib);
    Decoded i = Stream(shape.blob, 65536, 300000, InflateEngine::kIsal);
    ASSERT_EQ(z.output, shape.data);
    ASSERT_EQ(i.output, shape.data);
  }
}

}  // namespace
}  // namespace lazyroot

namespace lazyroot {
namespace {

// A member header far longer than ISA-L's 256 KiB input slices (zlib takes
// any length): FEXTRA of 65535 bytes, a 700 KB name and a 300 KB comment.
// ISA-L must take it across slices, whatever the feeding, and give the same
// table both ways.
TEST(GzipIsalStream, HeaderFieldsLongerThanASlice) {
  const Bytes data = MakeData(3 << 20, 9);
  Bytes deflated = Member(data, 6);
  // Member() wrote a plain 10-byte header; put a long one in its place.
  Bytes blob = {0x1f, 0x8b, 8, 4 | 8 | 16, 0, 0, 0, 0, 0, 3};
  blob.push_back(0xff);
  blob.push_back(0xff);
  for (int i = 0; i < 65535; ++i) blob.push_back(static_cast<uint8_t>('x'));
  for (int i = 0; i < 700000; ++i) blob.push_back(static_cast<uint8_t>('a' + i % 26));
  blob.push_back(0);
  for (int i = 0; i < 300000; ++i) blob.push_back(static_cast<uint8_t>('c'));
  blob.push_back(0);
  blob.insert(blob.end(), deflated.begin() + 10, deflated.end());
  Decoded whole = Stream(blob, blob.size(), 1 << 20, InflateEngine::kIsal);
  ASSERT_EQ(whole.output, data);
  Decoded chunked = Stream(blob, 4093, 1 << 20, InflateEngine::kIsal);
  ASSERT_EQ(chunked.output, data);
  EXPECT_EQ(whole.table, chunked.table);
  ASSERT_FALSE(whole.table.points.empty());
  // The first point is the member's first deflate byte, after the header.
  EXPECT_EQ(whole.table.points[0].in_offset, blob.size() - (deflated.size() - 10));
}

}  // namespace
}  // namespace lazyroot
