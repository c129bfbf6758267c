// zstd random access: frames as checkpoints, skippable frames, the window
// limit, truncation and trailing bytes, random and concurrent reads.
#include "index/zstd_index.h"

#include <gtest/gtest.h>
#include <zstd.h>

#include <algorithm>
#include <random>
#include <thread>
#include <vector>

#include "index/layer_decoder.h"

namespace lazyroot {
namespace {

using Bytes = std::vector<uint8_t>;
constexpr uint64_t kSpan = 1 << 20;

Bytes MakeData(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes out;
  out.reserve(size);
  while (out.size() < size) {
    size_t run = 1 + rng() % 20000;
    bool random = rng() % 4 == 0;
    for (size_t i = 0; i < run && out.size() < size; ++i) {
      out.push_back(random ? static_cast<uint8_t>(rng()) : static_cast<uint8_t>("lazyroot zstd frame\n"[i % 20]));
    }
  }
  return out;
}

// With a content checksum, as the zstd CLI and Go's encoder write by default
// (without one, a flipped byte inside a raw block is only caught by the blob digest).
Bytes Zstd(const Bytes& in, int level = 3) {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
  Bytes out(ZSTD_compressBound(in.size()));
  size_t n = ZSTD_compress2(c, out.data(), out.size(), in.data(), in.size());
  EXPECT_FALSE(ZSTD_isError(n));
  ZSTD_freeCCtx(c);
  out.resize(n);
  return out;
}

Bytes Skippable(size_t payload) {
  Bytes b = {0x5a, 0x2a, 0x4d, 0x18};
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(payload >> (8 * i)));
  b.resize(b.size() + payload, 0x77);
  return b;
}

// A frame with the given window log and no content size in its header, so the
// decoder must honour the window as declared.
Bytes ZstdWithWindowLog(const Bytes& in, int window_log) {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log);
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
  Bytes out(ZSTD_compressBound(in.size()) + 1024);
  ZSTD_outBuffer o{out.data(), out.size(), 0};
  ZSTD_inBuffer i{in.data(), in.size(), 0};
  EXPECT_FALSE(ZSTD_isError(ZSTD_compressStream2(c, &o, &i, ZSTD_e_continue)));
  ZSTD_inBuffer none{nullptr, 0, 0};
  EXPECT_EQ(ZSTD_compressStream2(c, &o, &none, ZSTD_e_end), 0u);
  ZSTD_freeCCtx(c);
  out.resize(o.pos);
  return out;
}

struct Built {
  Status status;  // first error of Feed or Finish
  Bytes output;
  CheckpointTable table;
};

Built Build(const Bytes& blob, size_t chunk, uint64_t span = kSpan) {
  Built b;
  auto d = StreamDecoder::Create(Compression::kZstd, "layer z", span);
  OutputFn sink = [&](std::span<const uint8_t> o) {
    b.output.insert(b.output.end(), o.begin(), o.end());
    return Status::Ok();
  };
  for (size_t off = 0; off < blob.size() && b.status.ok(); off += chunk) {
    b.status = d->Feed(std::span<const uint8_t>(blob).subspan(off, std::min(chunk, blob.size() - off)), sink);
  }
  if (b.status.ok()) b.status = d->Finish(sink);
  if (b.status.ok()) b.table = d->TakeCheckpoints();
  return b;
}

// Frames of 300 KB: a checkpoint at every frame start >= 1 MiB after the last,
// with skippable frames at the start and in the middle.
struct MultiFrame {
  Bytes data, blob;
  MultiFrame() {
    blob = Skippable(100);
    for (int f = 0; f < 20; ++f) {
      Bytes part = MakeData(300000 + f, 20 + f);
      data.insert(data.end(), part.begin(), part.end());
      Bytes z = Zstd(part);
      blob.insert(blob.end(), z.begin(), z.end());
      if (f == 7) {
        Bytes s = Skippable(5000);
        blob.insert(blob.end(), s.begin(), s.end());
      }
    }
  }
};

void ExpectReads(const std::shared_ptr<const CheckpointTable>& table, const ByteSource* src, const Bytes& data,
                 uint64_t seed, int count) {
  auto reader = RandomReader::Create(table, src, "layer z");
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> offsets = {0, data.size() - 1, data.size(), data.size() + 1};
  for (const Checkpoint& p : table->points) {
    if (p.out_offset > 0) offsets.push_back(p.out_offset - 1);
    offsets.push_back(p.out_offset);
    offsets.push_back(p.out_offset + 1);
  }
  for (int i = 0; i < count; ++i) offsets.push_back(rng() % data.size());
  for (uint64_t off : offsets) {
    Bytes out(1 + rng() % 400000);
    size_t n = 0;
    Status st = reader->Read(off, out, &n);
    ASSERT_TRUE(st.ok()) << st.ToString();
    size_t expect = off >= data.size() ? 0 : std::min<uint64_t>(out.size(), data.size() - off);
    ASSERT_EQ(n, expect) << off;
    if (n > 0) {
      ASSERT_TRUE(std::equal(out.begin(), out.begin() + n, data.begin() + static_cast<ptrdiff_t>(off))) << off;
    }
  }
}

TEST(ZstdIndex, MultiFrameWithSkippableFrames) {
  MultiFrame m;
  Built b = Build(m.blob, 65536);
  ASSERT_TRUE(b.status.ok()) << b.status.ToString();
  ASSERT_EQ(b.output, m.data);
  EXPECT_EQ(b.table.compression, Compression::kZstd);
  EXPECT_EQ(b.table.compressed_size, m.blob.size());
  EXPECT_EQ(b.table.uncompressed_size, m.data.size());
  ASSERT_GE(b.table.points.size(), 4u);
  EXPECT_EQ(b.table.points[0].in_offset, 0u);  // before the leading skippable frame
  for (size_t i = 1; i < b.table.points.size(); ++i) {
    EXPECT_GE(b.table.points[i].out_offset - b.table.points[i - 1].out_offset, kSpan);
    EXPECT_EQ(b.table.points[i].window_size, 0u);
  }
  auto table = std::make_shared<const CheckpointTable>(b.table);
  auto src = MemoryByteSource(m.blob, "blob z");
  ExpectReads(table, src.get(), m.data, 1, 100);
}

TEST(ZstdIndex, OneByteFeedsAndRandomChunking) {
  Bytes data = MakeData(150000, 3);
  Bytes blob = Zstd(data);
  Bytes s = Skippable(10);
  blob.insert(blob.end(), s.begin(), s.end());
  Bytes z2 = Zstd(data, 1);
  blob.insert(blob.end(), z2.begin(), z2.end());
  Bytes all = data;
  all.insert(all.end(), data.begin(), data.end());
  Built one = Build(blob, 1, 1000);
  ASSERT_TRUE(one.status.ok()) << one.status.ToString();
  EXPECT_EQ(one.output, all);
  // Offset 0, then the skippable frame's start; the second frame starts at the
  // same output offset, so it adds nothing.
  ASSERT_EQ(one.table.points.size(), 2u);
  EXPECT_EQ(one.table.points[1].in_offset, blob.size() - z2.size() - s.size());
  Built big = Build(blob, 1 << 20, 1000);
  ASSERT_TRUE(big.status.ok());
  EXPECT_EQ(big.table, one.table);
}

TEST(ZstdIndex, SingleFrameHasOneCheckpointAndStillReads) {
  Bytes data = MakeData(3 << 20, 4);
  Bytes blob = Zstd(data);
  Built b = Build(blob, 100000);
  ASSERT_TRUE(b.status.ok());
  ASSERT_EQ(b.table.points.size(), 1u);
  auto table = std::make_shared<const CheckpointTable>(b.table);
  auto src = MemoryByteSource(blob, "blob z");
  ExpectReads(table, src.get(), data, 2, 20);
  auto reader = RandomReader::Create(table, src.get(), "layer z");
  Bytes out(65536);
  for (uint64_t off = 0; off < data.size(); off += out.size()) {
    size_t n = 0;
    ASSERT_TRUE(reader->Read(off, out, &n).ok());
  }
  EXPECT_EQ(reader->reprimes(), 1u);
}

TEST(ZstdIndex, SequentialReadsStayWarmAcrossFrames) {
  MultiFrame m;
  Built b = Build(m.blob, 1 << 20);
  auto table = std::make_shared<const CheckpointTable>(b.table);
  auto src = MemoryByteSource(m.blob, "blob z");
  auto reader = RandomReader::Create(table, src.get(), "layer z");
  Bytes out(10000), got;
  for (uint64_t off = 0; off < m.data.size(); off += out.size()) {
    size_t n = 0;
    ASSERT_TRUE(reader->Read(off, out, &n).ok());
    got.insert(got.end(), out.begin(), out.begin() + n);
  }
  EXPECT_EQ(got, m.data);
  EXPECT_EQ(reader->reprimes(), 1u);
}

TEST(ZstdIndex, WindowLogLimitIs29) {
  Bytes data = MakeData(200000, 5);
  Built ok = Build(ZstdWithWindowLog(data, 28), 65536);  // libzstd's default limit (27) would refuse this
  ASSERT_TRUE(ok.status.ok()) << ok.status.ToString();
  EXPECT_EQ(ok.output, data);
  Built big = Build(ZstdWithWindowLog(data, 30), 65536);
  ASSERT_FALSE(big.status.ok());
  EXPECT_EQ(big.status.code(), ErrorCode::kCorruption);
  EXPECT_NE(big.status.message().find("layer z"), std::string::npos);
}

// A fuzzer's frame (declared content size 0, then empty raw blocks and a
// compressed block of size 0): libzstd refused it when the whole frame came
// in one call (its single-pass shortcut) and accepted it in pieces. Input is
// now cut at fixed stream offsets, so the verdict is the same either way.
TEST(ZstdIndex, VerdictDoesNotDependOnChunking) {
  std::vector<uint8_t> frame = {0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x00};
  frame.resize(15, 0);  // three empty raw blocks
  frame.push_back(0x04);
  frame.resize(105, 0);
  for (uint8_t b : {0x01, 0x00, 0x00, 0x99, 0xe9, 0xd8, 0x51}) frame.push_back(b);
  OutputFn discard = [](std::span<const uint8_t>) { return Status::Ok(); };
  std::vector<bool> ok;
  for (size_t chunk : {frame.size(), size_t{1}, size_t{7}, size_t{16}, size_t{50}}) {
    auto d = StreamDecoder::Create(Compression::kZstd, "layer z", 4096);
    Status st;
    for (size_t at = 0; at < frame.size() && st.ok(); at += chunk) {
      st = d->Feed(std::span<const uint8_t>(frame).subspan(at, std::min(chunk, frame.size() - at)), discard);
    }
    if (st.ok()) st = d->Finish(discard);
    ok.push_back(st.ok());
  }
  EXPECT_EQ(std::count(ok.begin(), ok.end(), ok[0]), static_cast<ptrdiff_t>(ok.size()));
  EXPECT_FALSE(ok[0]) << "libzstd's single pass refuses this frame";
}

TEST(ZstdIndex, TruncatedCorruptedAndTrailingBytesAreErrors) {
  MultiFrame m;
  for (size_t cut : {size_t{3}, size_t{50}, size_t{200}, m.blob.size() / 2, m.blob.size() - 1}) {
    Built b = Build(Bytes(m.blob.begin(), m.blob.begin() + static_cast<ptrdiff_t>(cut)), 4096);
    ASSERT_FALSE(b.status.ok()) << cut;
    EXPECT_EQ(b.status.code(), ErrorCode::kCorruption);
  }
  Bytes bad = m.blob;
  for (size_t i = bad.size() / 2; i < bad.size() / 2 + 16; ++i) bad[i] ^= 0x5a;
  EXPECT_FALSE(Build(bad, 4096).status.ok());
  for (const Bytes& tail : {Bytes(1, 0), Bytes(64, 0), Bytes{'j', 'u', 'n', 'k', '!'}}) {
    Bytes t = m.blob;
    t.insert(t.end(), tail.begin(), tail.end());
    EXPECT_FALSE(Build(t, 4096).status.ok()) << tail.size();
  }
  // A reader over a blob cut after indexing reports the end of data.
  Built b = Build(m.blob, 1 << 20);
  auto table = std::make_shared<const CheckpointTable>(b.table);
  Bytes cut(m.blob.begin(), m.blob.begin() + static_cast<ptrdiff_t>(m.blob.size() - 100));
  auto src = MemoryByteSource(cut, "blob cut");
  auto reader = RandomReader::Create(table, src.get(), "layer cut");
  Bytes out(1000);
  size_t n = 0;
  Status st = reader->Read(m.data.size() - 10, out, &n);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("layer cut"), std::string::npos);
}

TEST(ZstdIndex, ConcurrentReadersAndSerializedTable) {
  MultiFrame m;
  Built b = Build(m.blob, 1 << 20);
  std::string s = b.table.Serialize();
  auto parsed = CheckpointTable::Parse(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()), "index z");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, b.table);
  auto table = std::make_shared<const CheckpointTable>(std::move(parsed).value());
  auto src = MemoryByteSource(m.blob, "blob z");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back([&, t] { ExpectReads(table, src.get(), m.data, 50 + t, 30); });
  for (auto& th : threads) th.join();
}

}  // namespace
}  // namespace lazyroot

namespace lazyroot {
namespace {

// Found by the zstd_index fuzzer: a frame declaring 10 bytes of content but
// holding an empty last block (`zstd -d` says "Data corruption detected").
// Fed whole and byte by byte, the decoder must give the same verdict.
TEST(ZstdIndex, ChunkingDoesNotChangeTheVerdict) {
  const Bytes blob = {0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x0a, 0x01, 0x00, 0x00, 0x99, 0xe9, 0xd8, 0x51};
  Built whole = Build(blob, blob.size());
  EXPECT_FALSE(whole.status.ok());
  for (size_t chunk : {size_t{1}, size_t{2}, size_t{5}, size_t{7}}) {
    Built b = Build(blob, chunk);
    EXPECT_FALSE(b.status.ok()) << "in chunks of " << chunk;
    // The same error, not only a failure: input reaches libzstd cut at
    // fixed stream offsets whatever the chunking.
    EXPECT_EQ(b.status.message(), whole.status.message());
  }
}

}  // namespace
}  // namespace lazyroot
