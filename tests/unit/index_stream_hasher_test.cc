// StreamHasher gives the same DiffID and file digests inline and on its
// second thread, whatever the chunking: each digest is the SHA-256 of the
// file's prefix and its stream range, computed here directly.
#include "index/stream_hasher.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace lazyroot {
namespace {

struct Case {
  std::vector<uint8_t> stream;
  std::vector<StreamHasher::File> files;  // ascending, non-overlapping
};

Case MakeCase(unsigned seed) {
  std::mt19937 rng(seed);
  Case c;
  c.stream.resize(3 << 20);
  for (auto& b : c.stream) b = static_cast<uint8_t>(rng());
  uint64_t at = 0;
  while (true) {
    at += 512 + rng() % 4096;  // a "header"
    const uint64_t len = rng() % 5 == 0 ? 0 : rng() % 200000;
    if (at + len > c.stream.size()) break;
    StreamHasher::File f;
    f.start = at;
    f.end = at + len;
    if (rng() % 7 == 0) f.prefix = "lazyroot sparse\n" + std::to_string(rng());
    c.files.push_back(f);
    at += len;
  }
  return c;
}

std::vector<FileDigest> Expected(const Case& c) {
  std::vector<FileDigest> out;
  for (const auto& f : c.files) {
    Sha256 h;
    h.Update(std::string_view(f.prefix));
    h.Update(std::span<const uint8_t>(c.stream).subspan(f.start, f.end - f.start));
    out.push_back(FileDigest{f.start, h.Finish()});
  }
  return out;
}

// Feeds c in random chunks of 1..max_chunk bytes, announcing each file
// before the chunk its data starts in (small chunks: as the pass hands over
// output when it stops at every block end of a large file).
StreamHasher::Digests HashInChunks(const Case& c, uint64_t threshold, unsigned seed, uint64_t max_chunk = 700000) {
  StreamHasher h(threshold);
  std::mt19937 rng(seed);
  size_t next_file = 0;
  for (uint64_t at = 0; at < c.stream.size();) {
    const uint64_t n = std::min<uint64_t>(c.stream.size() - at, 1 + rng() % max_chunk);
    while (next_file < c.files.size() && c.files[next_file].start < at + n) h.AddFile(c.files[next_file++]);
    h.Update(std::span<const uint8_t>(c.stream).subspan(at, n));
    at += n;
  }
  while (next_file < c.files.size()) h.AddFile(c.files[next_file++]);
  return h.Finish();
}

TEST(StreamHasher, InlineAndThreadedAgreeWithDirectHashes) {
  const Case c = MakeCase(1);
  ASSERT_GT(c.files.size(), 10u);
  const std::vector<FileDigest> want = Expected(c);
  const std::string diff_id = "sha256:" + Sha256::HexOf(std::span<const uint8_t>(c.stream));
  for (uint64_t threshold : {uint64_t{0}, uint64_t{1} << 20, ~uint64_t{0}}) {
    for (uint64_t max_chunk : {uint64_t{700000}, uint64_t{30000}}) {
      for (unsigned seed : {1u, 2u, 3u}) {
        StreamHasher::Digests d = HashInChunks(c, threshold, seed, max_chunk);
        EXPECT_EQ(d.diff_id, diff_id) << threshold << " " << max_chunk;
        EXPECT_TRUE(d.all_files_complete);
        ASSERT_EQ(d.file_digests.size(), want.size()) << threshold << " " << max_chunk;
        for (size_t i = 0; i < want.size(); ++i) {
          EXPECT_EQ(d.file_digests[i].data_offset, want[i].data_offset);
          EXPECT_EQ(d.file_digests[i].digest, want[i].digest)
              << "file " << i << " threshold " << threshold << " max_chunk " << max_chunk;
        }
      }
    }
  }
}

TEST(StreamHasher, AStreamEndingInsideAFileSaysSo) {
  for (uint64_t threshold : {uint64_t{0}, ~uint64_t{0}}) {
    StreamHasher h(threshold);
    std::vector<uint8_t> bytes(1000, 7);
    h.AddFile({100, 5000, ""});
    h.Update(bytes);
    StreamHasher::Digests d = h.Finish();
    EXPECT_FALSE(d.all_files_complete);
    EXPECT_TRUE(d.file_digests.empty());
  }
}

TEST(StreamHasher, AbandonedWithChunksQueuedStopsCleanly) {
  const Case c = MakeCase(2);
  StreamHasher h(0);
  for (uint64_t at = 0; at < c.stream.size(); at += 65536) {
    h.Update(std::span<const uint8_t>(c.stream).subspan(at, std::min<uint64_t>(65536, c.stream.size() - at)));
  }
  // No Finish: the destructor drops what is queued and joins.
}

}  // namespace
}  // namespace lazyroot
