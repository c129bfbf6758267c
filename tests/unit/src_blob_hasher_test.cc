// BlobHasher gives Sha256's digest inline and on its thread, whatever the
// chunking, and stops cleanly when abandoned with bytes queued.
#include "src/pull/blob_hasher.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace lazyroot {
namespace {

TEST(BlobHasher, InlineAndThreadedAgreeWithSha256) {
  std::mt19937 rng(5);
  std::vector<uint8_t> blob((11 << 20) + 777);
  for (auto& b : blob) b = static_cast<uint8_t>(rng());
  const std::string want = Sha256::HexOf(std::span<const uint8_t>(blob));
  for (uint64_t threshold : {uint64_t{0}, uint64_t{3} << 20, ~uint64_t{0}}) {
    for (unsigned seed : {1u, 2u}) {
      std::mt19937 cut(seed);
      BlobHasher h(threshold);
      for (size_t at = 0; at < blob.size();) {
        const size_t n = std::min<size_t>(blob.size() - at, cut() % 3 == 0 ? 3 << 20 : cut() % 300000);
        h.Update(std::span<const uint8_t>(blob).subspan(at, n));
        at += n;
      }
      EXPECT_EQ(h.FinishHex(), want) << "threshold " << threshold << " seed " << seed;
    }
  }
  BlobHasher empty(0);
  EXPECT_EQ(empty.FinishHex(), Sha256::HexOf(std::string_view()));
}

TEST(BlobHasher, AbandonedWithBytesQueuedStopsCleanly) {
  std::vector<uint8_t> chunk(1 << 20, 9);
  BlobHasher h(0);
  for (int i = 0; i < 20; ++i) h.Update(chunk);
  // No FinishHex: the destructor drops what is queued and joins.
}

}  // namespace
}  // namespace lazyroot
