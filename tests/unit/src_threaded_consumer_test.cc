// ThreadedConsumer, the pull's layer indexer moved off the downloading
// thread: the inner consumer sees exactly the bytes, in order, for any
// chunking and any switch point from inline to the thread; a layer index
// built through it is byte for byte the one IndexBlobFile (what fsck
// rebuilds) builds; the inner consumer's errors, and what it throws on the
// thread (out of memory), come back to the caller; abandoning it mid-stream
// joins the thread.
#include <gtest/gtest.h>

#include <atomic>
#include <new>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "index/byte_source.h"
#include "index/chunk_digests.h"
#include "index/layer_indexer.h"
#include "index/sha256.h"
#include "src/pull/threaded_consumer.h"
#include "tests/unit/compressed_fixtures.h"
#include "tests/unit/index_tar_test_builder.h"

namespace lazyroot {
namespace {

// Records what it is fed; fails (kind 1: a Status, kind 2: throws
// std::bad_alloc, kind 3: throws std::runtime_error) once it has seen
// fail_at bytes.
class Recorder final : public LayerConsumer {
 public:
  Recorder(std::vector<uint8_t>* seen, std::atomic<int>* finished, uint64_t fail_at = UINT64_MAX, int kind = 0)
      : seen_(seen), finished_(finished), fail_at_(fail_at), kind_(kind) {}
  Status Consume(std::span<const uint8_t> bytes) override {
    seen_->insert(seen_->end(), bytes.begin(), bytes.end());
    threads_.insert(std::this_thread::get_id() == main_ ? 0 : 1);
    if (seen_->size() >= fail_at_) {
      if (kind_ == 2) throw std::bad_alloc();
      if (kind_ == 3) throw std::runtime_error("boom");
      return Status::Corruption("bad byte at " + std::to_string(fail_at_));
    }
    return Status::Ok();
  }
  Status Finish(ChunkDigests chunks) override {
    ++*finished_;
    finished_on_main_ = std::this_thread::get_id() == main_;
    chunk_bytes_ = chunks.blob_size;
    return Status::Ok();
  }
  std::set<int> threads_;
  bool finished_on_main_ = false;
  uint64_t chunk_bytes_ = 0;

 private:
  std::vector<uint8_t>* seen_;
  std::atomic<int>* finished_;
  const uint64_t fail_at_;
  const int kind_;
  const std::thread::id main_ = std::this_thread::get_id();
};

// Feeds data in random pieces (up to max_piece bytes); stops at the first error.
Status FeedRandom(LayerConsumer& c, std::span<const uint8_t> data, uint32_t seed, size_t max_piece) {
  std::mt19937 rng(seed);
  for (size_t at = 0; at < data.size();) {
    const size_t n = std::min<size_t>(data.size() - at, 1 + rng() % max_piece);
    Status st = c.Consume(data.subspan(at, n));
    if (!st.ok()) return st;
    at += n;
  }
  return Status::Ok();
}

TEST(ThreadedConsumer, SameBytesInOrderForAnyChunkingAndSwitchPoint) {
  const std::vector<uint8_t> data = fixtures::RandomBytes(5 * ThreadedConsumer::kBatchBytes + 12345, 7);
  // Thresholds: from the first byte, inside the first batch, past the end (inline throughout).
  for (uint64_t threshold : {uint64_t{0}, uint64_t{300000}, uint64_t{3} << 20, uint64_t{1} << 40}) {
    for (uint32_t seed = 1; seed <= 3; ++seed) {
      SCOPED_TRACE(testing::Message() << "threshold " << threshold << " seed " << seed);
      std::vector<uint8_t> seen;
      std::atomic<int> finished{0};
      auto inner = std::make_unique<Recorder>(&seen, &finished);
      Recorder* rec = inner.get();
      ThreadedConsumer c(std::move(inner), threshold);
      ASSERT_TRUE(FeedRandom(c, data, seed, seed == 1 ? 70000 : 3 << 20).ok());
      EXPECT_EQ(c.threaded(), threshold < data.size());
      ChunkDigests chunks;
      chunks.blob_size = data.size();
      ASSERT_TRUE(c.Finish(std::move(chunks)).ok());
      EXPECT_EQ(finished.load(), 1);
      EXPECT_TRUE(rec->finished_on_main_);
      EXPECT_EQ(rec->chunk_bytes_, data.size());
      EXPECT_TRUE(seen == data);
      EXPECT_EQ(rec->threads_.count(1) == 1, threshold < data.size());
    }
  }
}

TEST(ThreadedConsumer, StaysInlineWhileNoCoreIsFree) {
  const std::vector<uint8_t> data = fixtures::RandomBytes(3 << 20, 8);
  std::vector<uint8_t> seen;
  std::atomic<int> finished{0};
  std::atomic<int> asked{0};
  bool free_core = false;
  ThreadedConsumer c(std::make_unique<Recorder>(&seen, &finished), 1 << 20, [&] {
    ++asked;
    return free_core;
  });
  ASSERT_TRUE(c.Consume(std::span(data).first(2 << 20)).ok());
  EXPECT_FALSE(c.threaded());
  EXPECT_GT(asked.load(), 0);
  free_core = true;  // a layer ended: the rest goes to the thread
  ASSERT_TRUE(c.Consume(std::span(data).subspan(2 << 20)).ok());
  EXPECT_TRUE(c.threaded());
  ASSERT_TRUE(c.Finish(ChunkDigests{}).ok());
  EXPECT_TRUE(seen == data);
}

TEST(ThreadedConsumer, ErrorsOnTheThreadComeBack) {
  const std::vector<uint8_t> data = fixtures::RandomBytes(6 << 20, 9);
  for (int kind : {1, 2, 3}) {
    // Failing in an early batch (seen by a later Consume) and in the last one (seen by Finish only).
    for (uint64_t fail_at : {uint64_t{1} << 20, uint64_t{data.size()}}) {
      SCOPED_TRACE(testing::Message() << "kind " << kind << " at " << fail_at);
      std::vector<uint8_t> seen;
      std::atomic<int> finished{0};
      ThreadedConsumer c(std::make_unique<Recorder>(&seen, &finished, fail_at, kind), 0);
      Status fed = FeedRandom(c, data, 3, 100000);
      Status st = fed.ok() ? c.Finish(ChunkDigests{}) : fed;
      ASSERT_FALSE(st.ok());
      EXPECT_EQ(finished.load(), 0);  // never finished after an error
      if (kind == 1) {
        EXPECT_EQ(st.code(), ErrorCode::kCorruption);
        EXPECT_EQ(st.message(), "bad byte at " + std::to_string(fail_at));
      } else if (kind == 2) {
        EXPECT_EQ(st.code(), ErrorCode::kIoError);
        EXPECT_EQ(st.message(), "out of memory");
      } else {
        EXPECT_EQ(st.message(), "internal error: boom");
      }
      // Nothing past the failing batch was fed to the inner consumer.
      EXPECT_LE(seen.size(), fail_at + ThreadedConsumer::kBatchBytes);
      if (fail_at < data.size()) {
        EXPECT_FALSE(fed.ok()) << "a later Consume reports it";
      }
    }
  }
}

TEST(ThreadedConsumer, AbandonedMidStreamJoins) {
  const std::vector<uint8_t> data = fixtures::RandomBytes(9 << 20, 10);
  for (size_t stop : {size_t{0}, size_t{1} << 20, size_t{5} << 20, data.size()}) {
    std::vector<uint8_t> seen;
    std::atomic<int> finished{0};
    {
      ThreadedConsumer c(std::make_unique<Recorder>(&seen, &finished), 0);
      ASSERT_TRUE(FeedRandom(c, std::span(data).first(stop), 4, 200000).ok());
    }  // destroyed without Finish: queued batches dropped, thread joined
    EXPECT_EQ(finished.load(), 0);
    EXPECT_LE(seen.size(), stop);
    EXPECT_TRUE(std::equal(seen.begin(), seen.end(), data.begin()));
  }
}

// The indexer behind a ThreadedConsumer, as the pull runs it.
class IndexerConsumer final : public LayerConsumer {
 public:
  // blob_size: the manifest's, as the pull passes it (policy 3 needs it).
  IndexerConsumer(const std::string& digest, uint64_t blob_size, std::string* out)
      : indexer_(digest, Compression::kGzip, "", kDefaultSpanBytes, Limits(), InflateEngine::kIsal, kDefaultFinePolicy,
                 blob_size),
        out_(out) {}
  Status Consume(std::span<const uint8_t> bytes) override { return indexer_.Consume(bytes); }
  Status Finish(ChunkDigests chunks) override {
    LAZYROOT_ASSIGN_OR_RETURN(*out_, indexer_.FinishFile(std::move(chunks)));
    return Status::Ok();
  }

 private:
  LayerIndexer indexer_;
  std::string* out_;
};

TEST(ThreadedConsumer, LayerIndexIsByteIdenticalToTheRebuild) {
  // Text and random files, some large enough for fine points, ~12 MB of tar.
  std::string tar;
  for (int i = 0; i < 12; ++i) {
    const size_t n = (i % 3 == 0) ? (1 << 20) + 777 * i : 20000 + 1000 * i;
    std::string content = (i % 2 == 0) ? fixtures::Compressible(n, i) : [&] {
      auto r = fixtures::RandomBytes(n, i);
      return std::string(r.begin(), r.end());
    }();
    tar += tartest::File("d/f" + std::to_string(i), content);
  }
  tar += tartest::Zeros(2);
  const std::string blob = fixtures::Gzip(tar);
  const std::string digest = "sha256:" + Sha256::HexOf(std::string_view(blob));
  const auto bytes = fixtures::Bytes(blob);
  auto src = MemoryByteSource(bytes, "blob");
  auto rebuilt = IndexBlobFile(*src, digest, Compression::kGzip, "");
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
  for (uint64_t threshold : {uint64_t{0}, uint64_t{1} << 20}) {
    for (uint32_t seed = 1; seed <= 2; ++seed) {
      SCOPED_TRACE(testing::Message() << "threshold " << threshold << " seed " << seed);
      std::string built;
      ThreadedConsumer c(std::make_unique<IndexerConsumer>(digest, bytes.size(), &built), threshold);
      ASSERT_TRUE(FeedRandom(c, bytes, seed, seed == 1 ? 16384 : 600000).ok());
      EXPECT_TRUE(c.threaded());
      ChunkHasher h;
      h.Update(bytes);
      ASSERT_TRUE(c.Finish(h.Finish()).ok());
      EXPECT_TRUE(built == *rebuilt);
    }
  }
}

TEST(ThreadedConsumer, CorruptGzipOnTheThreadIsTheLayersError) {
  std::string tar = tartest::File("big", fixtures::Compressible(6 << 20, 3)) + tartest::Zeros(2);
  std::string blob = fixtures::Gzip(tar);
  blob[blob.size() / 2] ^= 0x55;  // deep in the deflate stream, past the threshold
  blob[blob.size() / 2 + 1] ^= 0xaa;
  const std::string digest = "sha256:" + Sha256::HexOf(std::string_view(blob));
  std::string built;
  ThreadedConsumer c(std::make_unique<IndexerConsumer>(digest, blob.size(), &built), 64 << 10);
  const auto bytes = fixtures::Bytes(blob);
  Status st = FeedRandom(c, bytes, 5, 50000);
  EXPECT_TRUE(c.threaded());
  if (st.ok()) {
    ChunkHasher h;
    h.Update(bytes);
    st = c.Finish(h.Finish());
  }
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), ErrorCode::kCorruption) << st.ToString();
  EXPECT_NE(st.message().find("layer " + digest), std::string::npos) << st.ToString();
  EXPECT_TRUE(built.empty());
}

}  // namespace
}  // namespace lazyroot
