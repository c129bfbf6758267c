// The facade: one StreamDecoder / RandomReader shape for tar, gzip and zstd,
// driven by the sniffed compression; the stored table round trip per kind.
#include "index/layer_decoder.h"

#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <random>
#include <vector>

namespace lazyroot {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes MakeData(size_t size) {
  std::mt19937 rng(42);
  Bytes out(size);
  for (size_t i = 0; i < size; ++i) out[i] = (i / 4096) % 3 == 0 ? static_cast<uint8_t>(rng()) : static_cast<uint8_t>('a' + i % 7);
  return out;
}

Bytes Compress(Compression c, const Bytes& in) {
  if (c == Compression::kNone) return in;
  if (c == Compression::kZstd) {
    Bytes out(ZSTD_compressBound(in.size()));
    out.resize(ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3));
    return out;
  }
  z_stream s{};
  deflateInit2(&s, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  Bytes out(deflateBound(&s, in.size()) + 64);
  s.next_in = const_cast<Bytef*>(in.data());
  s.avail_in = static_cast<uInt>(in.size());
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  deflate(&s, Z_FINISH);
  out.resize(s.total_out);
  deflateEnd(&s);
  return out;
}

class LayerDecoderTest : public ::testing::TestWithParam<Compression> {};

TEST_P(LayerDecoderTest, StreamThenRandomReadThroughStoredTable) {
  Bytes data = MakeData(3 << 20);
  Bytes blob = Compress(GetParam(), data);
  ASSERT_EQ(SniffCompression(blob), GetParam());
  auto d = StreamDecoder::Create(SniffCompression(blob), "layer sha256:ab12", 512 << 10);
  Bytes out;
  OutputFn sink = [&](std::span<const uint8_t> o) {
    out.insert(out.end(), o.begin(), o.end());
    return Status::Ok();
  };
  for (size_t off = 0; off < blob.size(); off += 100000) {
    ASSERT_TRUE(d->Feed(std::span<const uint8_t>(blob).subspan(off, std::min<size_t>(100000, blob.size() - off)), sink).ok());
  }
  ASSERT_TRUE(d->Finish(sink).ok());
  EXPECT_EQ(out, data);
  EXPECT_EQ(d->total_in(), blob.size());
  EXPECT_EQ(d->total_out(), data.size());
  std::string stored = d->TakeCheckpoints().Serialize();
  auto table = CheckpointTable::Parse(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(stored.data()), stored.size()), "index sha256:ab12");
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  EXPECT_EQ(table->compression, GetParam());
  EXPECT_EQ(table->uncompressed_size, data.size());
  auto shared = std::make_shared<const CheckpointTable>(std::move(table).value());
  auto src = MemoryByteSource(blob, "blob sha256:ab12");
  auto reader = RandomReader::Create(shared, src.get(), "layer sha256:ab12");
  std::mt19937_64 rng(1);
  for (int i = 0; i < 50; ++i) {
    uint64_t off = rng() % (data.size() + 10);
    Bytes buf(1 + rng() % 200000);
    size_t n = 0;
    ASSERT_TRUE(reader->Read(off, buf, &n).ok());
    size_t expect = off >= data.size() ? 0 : std::min<uint64_t>(buf.size(), data.size() - off);
    ASSERT_EQ(n, expect);
    ASSERT_TRUE(std::equal(buf.begin(), buf.begin() + n, data.begin() + static_cast<ptrdiff_t>(std::min<uint64_t>(off, data.size()))));
  }
}

INSTANTIATE_TEST_SUITE_P(LayerDecoder, LayerDecoderTest,
                         ::testing::Values(Compression::kNone, Compression::kGzip, Compression::kZstd),
                         [](const auto& p) { return std::string(CompressionName(p.param)); });

TEST(LayerDecoder, EmptyTarLayer) {
  auto d = StreamDecoder::Create(Compression::kNone, "layer empty");
  ASSERT_TRUE(d->Finish([](std::span<const uint8_t>) { return Status::Ok(); }).ok());
  auto table = std::make_shared<const CheckpointTable>(d->TakeCheckpoints());
  EXPECT_EQ(table->uncompressed_size, 0u);
  std::string s = table->Serialize();
  EXPECT_TRUE(CheckpointTable::Parse(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()), "i").ok());
  auto src = MemoryByteSource({}, "blob empty");
  auto r = RandomReader::Create(table, src.get(), "layer empty");
  uint8_t b[4];
  size_t n = 7;
  ASSERT_TRUE(r->Read(0, b, &n).ok());
  EXPECT_EQ(n, 0u);
}

TEST(LayerDecoder, PlainReaderReportsAShortBlob) {
  Bytes data = MakeData(10000);
  CheckpointTable t;
  t.compressed_size = t.uncompressed_size = 20000;  // the table claims more than the blob has
  auto src = MemoryByteSource(data, "blob short");
  auto r = RandomReader::Create(std::make_shared<const CheckpointTable>(t), src.get(), "layer short");
  Bytes out(5000);
  size_t n = 0;
  EXPECT_TRUE(r->Read(0, out, &n).ok());
  Status st = r->Read(8000, out, &n);
  EXPECT_EQ(st.code(), ErrorCode::kCorruption);
  EXPECT_NE(st.message().find("layer short"), std::string::npos);
}

}  // namespace
}  // namespace lazyroot
