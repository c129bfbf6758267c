// CheckpointNeedsWindow / WithoutWindow: a table whose unneeded windows are
// dropped reads exactly the bytes of the original, with both inflate engines;
// windows are dropped where the data after a point is incompressible and
// kept where matches reach back. AlignedReadSize's arithmetic. CompressWindow
// (one reused deflate state per thread) writes exactly compress2's bytes:
// indexes made before it must rebuild byte for byte (fsck).
#include "index/checkpoint_window.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "index/byte_source.h"
#include "index/checkpoint.h"
#include "index/gzip_index.h"
#include "index/layer_decoder.h"
#include "tests/unit/compressed_fixtures.h"

namespace lazyroot {
namespace {

using Bytes = std::vector<uint8_t>;

// Alternating 256 KiB runs of random bytes (stored blocks) and of repetitive
// text (Huffman blocks whose matches reach back across any boundary).
Bytes MakeData(size_t runs) {
  std::mt19937 rng(7);
  Bytes out;
  for (size_t r = 0; r < runs; ++r) {
    for (size_t i = 0; i < (256u << 10); ++i) {
      if (r % 2 == 0) {
        out.push_back(static_cast<uint8_t>(rng()));
      } else {
        out.push_back(static_cast<uint8_t>("line of a log file\n"[i % 19]));
      }
    }
  }
  return out;
}

Bytes Gzip(const Bytes& in) { return fixtures::Deflate(in, 31); }

CheckpointTable Index(const Bytes& blob, uint64_t span) {
  auto d = NewGzipStreamDecoder("layer test", span, InflateEngine::kZlib);
  const OutputFn sink = [](std::span<const uint8_t>) { return Status::Ok(); };
  EXPECT_TRUE(d->Feed(blob, sink).ok());
  EXPECT_TRUE(d->Finish(sink).ok());
  return d->TakeCheckpoints();
}

TEST(CheckpointWindow, DroppedWindowsReadTheSameBytesWithBothEngines) {
  const Bytes data = MakeData(8);
  const Bytes blob = Gzip(data);
  auto src = MemoryByteSource(blob, "blob");
  CheckpointTable table = Index(blob, 16 << 10);
  ASSERT_GT(table.points.size(), 20u);
  size_t dropped = 0, kept = 0;
  for (size_t i = 0; i < table.points.size(); ++i) {
    Result<bool> need = CheckpointNeedsWindow(table, i, *src, "blob");
    ASSERT_TRUE(need.ok()) << need.status().ToString();
    if (table.points[i].window_size == 0) continue;
    if (*need) {
      ++kept;
    } else {
      table.points[i] = WithoutWindow(table.points[i]);
      ++dropped;
    }
  }
  // Random runs lose their windows, text runs keep theirs.
  EXPECT_GT(dropped, 5u);
  EXPECT_GT(kept, 0u);
  // The table still parses (a windowless point with bits is valid).
  const std::string serialized = table.Serialize();
  ASSERT_TRUE(CheckpointTable::Parse(
                  std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(serialized.data()), serialized.size()), "t")
                  .ok());
  auto shared = std::make_shared<const CheckpointTable>(table);
  for (InflateEngine engine : {InflateEngine::kZlib, InflateEngine::kIsal}) {
    auto reader = RandomReader::Create(shared, NewGzipPointDecoder(shared.get(), src.get(), "blob", engine));
    std::mt19937 rng(3);
    Bytes buf(4096);
    for (int i = 0; i < 300; ++i) {
      const uint64_t off = rng() % (data.size() - buf.size());
      size_t n = 0;
      ASSERT_TRUE(reader->Read(off, buf, &n).ok());
      ASSERT_EQ(n, buf.size());
      ASSERT_TRUE(std::equal(buf.begin(), buf.end(), data.begin() + static_cast<ptrdiff_t>(off))) << off;
    }
    // And at every point exactly, where a missing window would show first.
    for (const Checkpoint& p : table.points) {
      size_t n = 0;
      ASSERT_TRUE(reader->Read(p.out_offset, buf, &n).ok());
      ASSERT_TRUE(std::equal(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(n),
                             data.begin() + static_cast<ptrdiff_t>(p.out_offset)));
    }
  }
}

TEST(CheckpointWindow, APointWhoseMatchesReachBackKeepsItsWindow) {
  // Pure repetitive text: every point after the first needs its window.
  Bytes data;
  for (size_t i = 0; i < (2u << 20); ++i) data.push_back(static_cast<uint8_t>("abcdefghij\n"[i % 11]));
  const Bytes blob = Gzip(data);
  auto src = MemoryByteSource(blob, "blob");
  CheckpointTable table = Index(blob, 64 << 10);
  for (size_t i = 0; i < table.points.size(); ++i) {
    Result<bool> need = CheckpointNeedsWindow(table, i, *src, "blob");
    ASSERT_TRUE(need.ok());
    EXPECT_EQ(*need, table.points[i].window_size != 0) << i;
  }
}

// The old CompressWindow: compress2 at level 1.
std::string Compress2(std::span<const uint8_t> raw) {
  uLongf len = compressBound(static_cast<uLong>(raw.size()));
  std::string out(len, '\0');
  EXPECT_EQ(compress2(reinterpret_cast<Bytef*>(out.data()), &len, raw.data(), static_cast<uLong>(raw.size()), 1), Z_OK);
  out.resize(len);
  return out;
}

TEST(CompressWindow, WritesCompress2sBytesWithItsStateReused) {
  const Bytes data = MakeData(2);  // random, then text
  std::mt19937 rng(11);
  // Sizes and places vary, in an order where a large window follows small
  // ones and random follows text: what a reused state could carry over.
  for (int i = 0; i < 200; ++i) {
    const size_t n = i % 7 == 0 ? kMaxWindowBytes : 1 + rng() % kMaxWindowBytes;
    const size_t at = rng() % (data.size() - n);
    const std::span<const uint8_t> raw(data.data() + at, n);
    const std::string got = CompressWindow(raw);
    ASSERT_EQ(got, Compress2(raw)) << "window " << i << ": " << n << " bytes at " << at;
    Checkpoint p;
    p.window_size = static_cast<uint32_t>(n);
    p.window = got;
    Bytes back;
    ASSERT_TRUE(ExpandWindow(p, "test", &back).ok());
    ASSERT_TRUE(std::equal(back.begin(), back.end(), raw.begin(), raw.end()));
  }
  EXPECT_EQ(CompressWindow({}), "");
}

TEST(AlignedReadSize, EndsReadsOnChunkBoundariesWhenItCan) {
  constexpr uint64_t k64 = 64 << 10;
  EXPECT_EQ(AlignedReadSize(0, k64, 1 << 30), k64);
  EXPECT_EQ(AlignedReadSize(100, k64, 1 << 30), k64 - 100);      // up to the boundary
  EXPECT_EQ(AlignedReadSize(k64 - 10, k64, 1 << 30), 10u);         // a short read, then aligned ones
  EXPECT_EQ(AlignedReadSize(100, 4096, 1 << 30), 4096u);          // inside one chunk: as asked
  EXPECT_EQ(AlignedReadSize(100, k64, 500), 500u);                // the rest of the blob
  EXPECT_EQ(AlignedReadSize(100, 2 * k64, 1 << 30), 2 * k64 - 100);
  // A first read after a prime, aligned to a 32 KiB chunk: it stops at the
  // chunk's end rather than verifying the next chunk for a few bytes.
  constexpr uint64_t k16 = 16 << 10, k32 = 32 << 10;
  EXPECT_EQ(AlignedReadSize(k32 - 100, k16, 1 << 30, kSmallReadAlign), 100u);
  EXPECT_EQ(AlignedReadSize(k32 + 100, k16, 1 << 30, kSmallReadAlign), k16);
  EXPECT_EQ(AlignedReadSize(k32 - 100, k16, 1 << 30), k16);  // 64 KiB alignment crosses it
}

}  // namespace
}  // namespace lazyroot
