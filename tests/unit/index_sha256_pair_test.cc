#include "index/sha256_pair.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "index/blob_hasher.h"
#include "index/chunk_digests.h"
#include "index/sha256.h"
#include "tests/unit/compressed_fixtures.h"

namespace lazyroot {
namespace {

std::vector<uint8_t> Bytes(size_t n, uint32_t seed) { return fixtures::RandomBytes(n, seed); }

class Sha256PairTest : public ::testing::TestWithParam<Sha256Pair::Engine> {};

TEST_P(Sha256PairTest, KnownVectorsOnEitherLane) {
  Sha256Pair p(GetParam());
  p.Update(1, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("abc"), 3));
  EXPECT_EQ(p.Finish(1), Sha256::Of(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("abc"), 3)));
  EXPECT_EQ(p.Finish(0), Sha256::Of({}));
  EXPECT_EQ(p.Finish(1), Sha256::Of({}));  // Finish restarted the lane
}

// Every padding case: lengths around the 55/56/64-byte boundaries and beyond.
TEST_P(Sha256PairTest, EveryLengthUpTo300MatchesOpenSsl) {
  const std::vector<uint8_t> data = Bytes(300, 1);
  Sha256Pair p(GetParam());
  for (size_t n = 0; n <= data.size(); ++n) {
    const std::span<const uint8_t> s(data.data(), n);
    p.UpdateBoth(s);
    const auto want = Sha256::Of(s);
    ASSERT_EQ(p.Finish(0), want) << n;
    ASSERT_EQ(p.Finish(1), want) << n;
  }
}

// The pattern of the layer hasher: one lane takes everything (the DiffID),
// the other only stretches of it (each file), starting at any phase, with
// a prefix of its own now and then (a sparse file); pieces of any size.
TEST_P(Sha256PairTest, RandomInterleavingsMatchTwoOpenSslStreams) {
  std::mt19937 rng(7);
  const std::vector<uint8_t> data = Bytes(1 << 20, 2);
  for (int round = 0; round < 40; ++round) {
    Sha256Pair p(GetParam());
    Sha256 whole, part;
    size_t pos = 0;
    while (pos < data.size()) {
      const size_t n = std::min<size_t>(data.size() - pos, rng() % 3 == 0 ? rng() % 200 : rng() % 70000);
      const std::span<const uint8_t> s(data.data() + pos, n);
      switch (rng() % 6) {
        case 0:
          p.Update(0, s), whole.Update(s);
          break;
        case 1: {  // the part lane's own prefix, out of step with lane 0
          const std::span<const uint8_t> pre(data.data(), rng() % 100);
          p.Update(1, pre), part.Update(pre);
          break;
        }
        case 2:
          ASSERT_EQ(p.Finish(1), part.Finish()) << round;
          part.Reset();
          break;
        default:
          p.UpdateBoth(s), whole.Update(s), part.Update(s);
      }
      pos += n;
    }
    ASSERT_EQ(p.Finish(0), whole.Finish()) << round;
    ASSERT_EQ(p.Finish(1), part.Finish()) << round;
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, Sha256PairTest,
                         ::testing::Values(Sha256Pair::Engine::kAuto, Sha256Pair::Engine::kOpenSsl));

TEST(Sha256Pair, UsesShaNiWhereTheCpuHasIt) {
  EXPECT_EQ(Sha256Pair().UsesShaNi(), Sha256Pair::CpuHasShaNi());
  EXPECT_FALSE(Sha256Pair(Sha256Pair::Engine::kOpenSsl).UsesShaNi());
}

// The pull's one pass over a blob: the whole digest and each chunk's, as
// OpenSSL computes them one by one, whatever pieces the bytes come in.
TEST(ChunkHasher, BlobDigestAndChunkTableMatchOpenSslPerChunk) {
  const std::vector<uint8_t> blob = Bytes((5 << 16) + 777, 3);
  for (uint32_t chunk : {kMinChunkBytes, kDefaultChunkBytes}) {
    std::mt19937 rng(chunk);
    ChunkHasher h(chunk);
    for (size_t off = 0; off < blob.size();) {
      const size_t n = std::min<size_t>(blob.size() - off, rng() % 9000);
      h.Update(std::span<const uint8_t>(blob).subspan(off, n));
      off += n;
    }
    const ChunkDigests table = h.Finish();
    EXPECT_EQ(h.BlobDigest(), "sha256:" + Sha256::HexOf(std::span<const uint8_t>(blob)));
    ASSERT_EQ(table.digests.size(), ChunkDigests::ChunkCount(blob.size(), chunk));
    EXPECT_EQ(table.blob_size, blob.size());
    for (size_t i = 0; i < table.digests.size(); ++i) {
      const auto piece = std::span<const uint8_t>(blob).subspan(i * chunk, table.ChunkLength(i));
      ASSERT_EQ(table.digests[i], Sha256::Of(piece)) << "chunk " << i << " of " << chunk;
    }
    EXPECT_EQ(ChunkDigestsOf(blob, chunk), table);
  }
}

// The pull's blob hashing on a thread of its own: the same digest and chunk
// table as the inline pass, whether the thread starts at once, midway or
// never, in any chunking.
TEST(BlobHasher, ThreadedEqualsInline) {
  const std::vector<uint8_t> blob = Bytes((3 << 20) + 12345, 4);
  const ChunkDigests want = ChunkDigestsOf(blob);
  for (uint64_t threshold : {uint64_t{0}, uint64_t{1} << 20, uint64_t{64} << 20}) {
    std::mt19937 rng(static_cast<uint32_t>(threshold));
    BlobHasher h(threshold);
    for (size_t off = 0; off < blob.size();) {
      const size_t n = std::min<size_t>(blob.size() - off, rng() % 3 == 0 ? rng() % 100 : rng() % 300000);
      h.Update(std::span<const uint8_t>(blob).subspan(off, n));
      off += n;
    }
    const BlobHasher::Digests d = h.Finish();
    EXPECT_EQ(d.digest, "sha256:" + Sha256::HexOf(std::span<const uint8_t>(blob))) << threshold;
    EXPECT_EQ(d.chunks, want) << threshold;
  }
}

// The pull lets the thread start only once a core is free: asked at each
// Update past the threshold, it may start late or never; same digests.
TEST(BlobHasher, ThreadStartingLateOrNeverGivesTheSameDigests) {
  const std::vector<uint8_t> blob = Bytes((2 << 20) + 999, 6);
  for (int yes_after : {0, 5, 1 << 30}) {
    int asked = 0;
    BlobHasher h(0, [&] { return ++asked > yes_after; });
    for (size_t off = 0; off < blob.size(); off += 40000) {
      h.Update(std::span<const uint8_t>(blob).subspan(off, std::min<size_t>(40000, blob.size() - off)));
    }
    const BlobHasher::Digests d = h.Finish();
    EXPECT_EQ(d.digest, "sha256:" + Sha256::HexOf(std::span<const uint8_t>(blob))) << yes_after;
    EXPECT_EQ(d.chunks, ChunkDigestsOf(blob)) << yes_after;
    EXPECT_EQ(asked, std::min(yes_after + 1, 53)) << "asked until it said yes";
  }
}

// A pull that fails midway drops its hasher unfinished: no hang, no leak
// (TSan and ASan builds run this too).
TEST(BlobHasher, AbandonedMidwayStopsItsThread) {
  const std::vector<uint8_t> blob = Bytes(6 << 20, 5);
  BlobHasher h(0);
  h.Update(blob);
}

}  // namespace
}  // namespace lazyroot
