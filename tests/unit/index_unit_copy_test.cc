// UnitCopy files: a round trip, and every way a stored copy can be wrong
// (truncated, flipped, another layer's, another unit's, a header claiming a
// huge unit, a frame that lies about its size) is a clean kCorruption.
#include "index/unit_copy.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace lazyroot {
namespace {

const std::string kLayer = "sha256:" + std::string(64, 'a');
const std::string kOther = "sha256:" + std::string(64, 'b');

std::vector<uint8_t> Unit(size_t n) {
  std::mt19937 rng(5);
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = i % 3 == 0 ? static_cast<uint8_t>(rng()) : 'x';
  return v;
}

std::span<const uint8_t> Bytes(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

void PutLe(std::string* s, size_t at, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) (*s)[at + static_cast<size_t>(i)] = static_cast<char>(v >> (8 * i));
}

// Recomputes the header checksum, as an attacker who writes a consistent file would.
void Reseal(std::string* s);

TEST(UnitCopy, RoundTrip) {
  const std::vector<uint8_t> unit = Unit(2 << 20);
  Result<std::string> f = EncodeUnitCopy(kLayer, 6 << 20, unit);
  ASSERT_TRUE(f.ok());
  EXPECT_LT(f->size(), unit.size());
  std::vector<uint8_t> out(unit.size());
  ASSERT_TRUE(DecodeUnitCopy(Bytes(*f), kLayer, 6 << 20, out, "f").ok());
  EXPECT_EQ(out, unit);
  Result<UnitCopyInfo> info = CheckUnitCopy(Bytes(*f), "f");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->layer_digest, kLayer);
  EXPECT_EQ(info->start, uint64_t{6} << 20);
  EXPECT_EQ(info->length, unit.size());
}

TEST(UnitCopy, EncodeRefusesWhatNoUnitIs) {
  EXPECT_FALSE(EncodeUnitCopy("sha256:xyz", 0, Unit(10)).ok());
  EXPECT_FALSE(EncodeUnitCopy(kLayer, 0, {}).ok());
  EXPECT_FALSE(EncodeUnitCopy(kLayer, 0, std::vector<uint8_t>(kMaxUnitCopyBytes + 1)).ok());
}

TEST(UnitCopy, EveryDamageIsCorruptionNeverOtherBytes) {
  const std::vector<uint8_t> unit = Unit(256 << 10);
  const std::string good = *EncodeUnitCopy(kLayer, 1 << 20, unit);
  std::vector<uint8_t> out(unit.size());
  auto decode = [&](const std::string& f, const std::string& layer = kLayer, uint64_t start = 1 << 20) {
    return DecodeUnitCopy(Bytes(f), layer, start, out, "f");
  };
  // Truncated anywhere, including to nothing.
  for (size_t n : {size_t{0}, size_t{7}, size_t{50}, good.size() / 2, good.size() - 1}) {
    Status st = decode(good.substr(0, n));
    EXPECT_EQ(st.code(), ErrorCode::kCorruption) << n;
  }
  // Any flipped byte: the header checksum or zstd's content checksum catches it.
  for (size_t at = 0; at < good.size(); at += 97) {
    std::string bad = good;
    bad[at] = static_cast<char>(bad[at] ^ 0x40);
    EXPECT_EQ(decode(bad).code(), ErrorCode::kCorruption) << at;
  }
  // Another layer's copy, another unit's, a unit of another length.
  EXPECT_EQ(decode(good, kOther).code(), ErrorCode::kCorruption);
  EXPECT_EQ(decode(good, kLayer, 2 << 20).code(), ErrorCode::kCorruption);
  std::vector<uint8_t> shorter(unit.size() - 1);
  EXPECT_EQ(DecodeUnitCopy(Bytes(good), kLayer, 1 << 20, shorter, "f").code(), ErrorCode::kCorruption);
  // Consistent files that lie: a huge unit length, a frame size past the
  // file, another version.
  std::string huge = good;
  PutLe(&huge, 8 + 71 + 8, uint64_t{1} << 40, 8);
  Reseal(&huge);
  EXPECT_EQ(decode(huge).code(), ErrorCode::kCorruption);
  EXPECT_EQ(CheckUnitCopy(Bytes(huge), "f").status().code(), ErrorCode::kCorruption);
  std::string frame = good;
  PutLe(&frame, 8 + 71 + 8 + 8, 0xffffffffu, 4);
  Reseal(&frame);
  EXPECT_EQ(decode(frame).code(), ErrorCode::kCorruption);
  std::string version = good;
  version[7] = 2;
  Reseal(&version);
  EXPECT_EQ(decode(version).code(), ErrorCode::kCorruption);
  // A consistent header over a frame whose content changed: zstd's content
  // checksum refuses it.
  std::string content = good;
  content[content.size() - 10] = static_cast<char>(content[content.size() - 10] ^ 0x01);
  EXPECT_EQ(decode(content).code(), ErrorCode::kCorruption);
}

}  // namespace
}  // namespace lazyroot

#include <zlib.h>

namespace lazyroot {
namespace {
void Reseal(std::string* s) {
  constexpr size_t kHeader = 8 + 71 + 8 + 8 + 4;  // the header crc follows
  const uLong c = crc32(0, reinterpret_cast<const Bytef*>(s->data()), static_cast<uInt>(kHeader));
  PutLe(s, kHeader, c, 4);
}
}  // namespace
}  // namespace lazyroot
