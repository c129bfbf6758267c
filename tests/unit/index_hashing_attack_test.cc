// Attacks on the pull's hashing: Sha256Pair against OpenSSL under long random
// sequences of operations (either lane finished at any point, empty updates,
// one lane fed alone to put the lanes out of step and back), a stream past
// 2^32 bits, StreamHasher's file digests against OpenSSL for random layouts
// with sparse prefixes on and off its thread, and BlobHasher abandoned and
// finished at every batch boundary. Out of memory on the hashing and
// deflating threads (BlobHasher, StreamHasher, LayerIndexWriter's worker)
// is the layer's error on the caller's thread, never std::terminate.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "index/blob_hasher.h"
#include "index/chunk_digests.h"
#include "index/layer_index.h"
#include "index/sha256.h"
#include "index/sha256_pair.h"
#include "index/stream_hasher.h"
#include "tests/unit/compressed_fixtures.h"

// Allocations of at least g_fail_min bytes on a thread other than g_main
// throw std::bad_alloc while g_fail is set: out of memory on a worker
// thread, as RLIMIT_AS gives it. Not in sanitizer builds (they own new).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LAZYROOT_NEW_HOOK 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define LAZYROOT_NEW_HOOK 0
#endif
#endif
#ifndef LAZYROOT_NEW_HOOK
#define LAZYROOT_NEW_HOOK 1
#endif

namespace {
std::atomic<bool> g_fail{false};
std::atomic<size_t> g_fail_min{0};
std::thread::id g_main;
}  // namespace

#if LAZYROOT_NEW_HOOK
void* operator new(size_t n) {
  if (g_fail.load(std::memory_order_relaxed) && n >= g_fail_min.load(std::memory_order_relaxed) &&
      std::this_thread::get_id() != g_main) {
    throw std::bad_alloc();
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
// libstdc++'s operator delete is free(): it stays.
#endif

namespace lazyroot {
namespace {

std::vector<uint8_t> Bytes(size_t n, uint32_t seed) { return fixtures::RandomBytes(n, seed); }

// Random operations on both lanes, each lane mirrored by an OpenSSL stream.
TEST(HashingAttack, Sha256PairRandomOpsMatchOpenSsl) {
  const std::vector<uint8_t> data = Bytes(1 << 18, 11);
  for (auto engine : {Sha256Pair::Engine::kAuto, Sha256Pair::Engine::kOpenSsl}) {
    std::mt19937 rng(12);
    Sha256Pair p(engine);
    Sha256 ref[2];
    for (int op = 0; op < 60000; ++op) {
      const uint32_t kind = rng() % 16;
      // Lengths near the block and padding boundaries, sometimes long.
      size_t n;
      switch (rng() % 5) {
        case 0: n = rng() % 3; break;
        case 1: n = 55 + rng() % 11; break;
        case 2: n = 64 * (1 + rng() % 4) + rng() % 3 - 1; break;
        case 3: n = rng() % 200; break;
        default: n = rng() % 70000;
      }
      const size_t off = rng() % (data.size() - n);
      const std::span<const uint8_t> s(data.data() + off, n);
      if (kind < 8) {
        p.UpdateBoth(s), ref[0].Update(s), ref[1].Update(s);
      } else if (kind < 11) {
        const int lane = static_cast<int>(kind & 1);
        p.Update(lane, s), ref[lane].Update(s);
      } else if (kind < 13) {
        const int lane = static_cast<int>(kind & 1);
        ASSERT_EQ(p.Finish(lane), ref[lane].Finish()) << "op " << op << " lane " << lane;
        ref[lane].Reset();
      }
    }
    ASSERT_EQ(p.Finish(0), ref[0].Finish());
    ASSERT_EQ(p.Finish(1), ref[1].Finish());
  }
}

// Every (lane 0 length, lane 1 length, both length) in a small cube: each
// phase pairing of the lanes, in step and out.
TEST(HashingAttack, Sha256PairEveryPhasePairing) {
  const std::vector<uint8_t> data = Bytes(400, 13);
  for (size_t a = 0; a <= 130; a += 1) {
    for (size_t b : {size_t{0}, size_t{1}, size_t{55}, size_t{56}, size_t{63}, size_t{64}, size_t{65}, a}) {
      for (size_t both : {size_t{0}, size_t{8}, size_t{56}, size_t{64}, size_t{120}, size_t{191}, size_t{256}}) {
        Sha256Pair p;
        Sha256 r0, r1;
        const std::span<const uint8_t> sa(data.data(), a), sb(data.data() + 1, b), s(data.data() + 7, both);
        p.Update(0, sa), r0.Update(sa);
        p.Update(1, sb), r1.Update(sb);
        p.UpdateBoth(s), r0.Update(s), r1.Update(s);
        p.UpdateBoth(sa), r0.Update(sa), r1.Update(sa);
        ASSERT_EQ(p.Finish(1), r1.Finish()) << a << " " << b << " " << both;
        ASSERT_EQ(p.Finish(0), r0.Finish()) << a << " " << b << " " << both;
      }
    }
  }
}

// More than 2^32 bits (512 MiB) through both lanes: the length field's high
// word. One lane a byte behind the other.
TEST(HashingAttack, Sha256PairPast4GiBits) {
  const std::vector<uint8_t> block = Bytes(1 << 20, 14);
  Sha256Pair p;
  Sha256 r0, r1;
  const std::span<const uint8_t> one(block.data(), 1);
  p.Update(1, one), r1.Update(one);
  for (int i = 0; i < 513; ++i) {
    p.UpdateBoth(block), r0.Update(block), r1.Update(block);
  }
  const std::span<const uint8_t> tail(block.data(), 77);
  p.UpdateBoth(tail), r0.Update(tail), r1.Update(tail);
  EXPECT_EQ(p.Finish(0), r0.Finish());
  EXPECT_EQ(p.Finish(1), r1.Finish());
}

// StreamHasher against OpenSSL: files at 512-byte offsets (in step with the
// DiffID), some with a sparse prefix (out of step), some empty, some at
// the end; the stream in random chunks; inline and on its thread.
TEST(HashingAttack, StreamHasherRandomLayoutsMatchOpenSsl) {
  const std::vector<uint8_t> stream = Bytes(3 << 20, 15);
  for (int round = 0; round < 30; ++round) {
    std::mt19937 rng(100 + round);
    std::vector<StreamHasher::File> files;
    for (uint64_t pos = 512 * (rng() % 4); pos < stream.size();) {
      StreamHasher::File f;
      f.start = pos;
      const uint64_t len = rng() % 4 == 0 ? 0 : (rng() % 2 ? rng() % 1000 : rng() % 300000);
      f.end = std::min<uint64_t>(stream.size(), pos + len);
      if (rng() % 3 == 0) f.prefix = std::string(rng() % 130, static_cast<char>('a' + rng() % 26));
      files.push_back(f);
      pos = (f.end + 511) / 512 * 512 + 512 * (rng() % 3);
    }
    for (uint64_t threshold : {uint64_t{0}, uint64_t{1} << 20, uint64_t{1} << 40}) {
      StreamHasher h(threshold);
      size_t next_file = 0;
      for (size_t off = 0; off < stream.size();) {
        const size_t n = std::min<size_t>(stream.size() - off, rng() % 3 == 0 ? rng() % 700 : rng() % 200000);
        // Announce the files that start in this chunk, before it.
        while (next_file < files.size() && files[next_file].start < off + n) h.AddFile(files[next_file++]);
        h.Update(std::span<const uint8_t>(stream).subspan(off, n));
        off += n;
      }
      while (next_file < files.size()) h.AddFile(files[next_file++]);
      const StreamHasher::Digests d = h.Finish();
      ASSERT_EQ(d.diff_id, "sha256:" + Sha256::HexOf(std::span<const uint8_t>(stream))) << round;
      ASSERT_TRUE(d.all_files_complete);
      ASSERT_EQ(d.file_digests.size(), files.size()) << round << " " << threshold;
      for (size_t i = 0; i < files.size(); ++i) {
        Sha256 want;
        want.Update(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(files[i].prefix.data()),
                                             files[i].prefix.size()));
        want.Update(std::span<const uint8_t>(stream).subspan(files[i].start, files[i].end - files[i].start));
        ASSERT_EQ(d.file_digests[i].data_offset, files[i].start);
        ASSERT_EQ(d.file_digests[i].digest, want.Finish()) << round << " file " << i << " thr " << threshold;
      }
    }
  }
}

// BlobHasher with the thread starting at every offset near a batch edge, fed
// in pieces that straddle the 1 MiB batches; and abandoned at each point.
TEST(HashingAttack, BlobHasherAtBatchEdges) {
  const size_t batch = BlobHasher::kBatchBytes;
  const std::vector<uint8_t> blob = Bytes(6 * batch + 63, 16);
  const ChunkDigests want = ChunkDigestsOf(blob);
  const std::string want_digest = "sha256:" + Sha256::HexOf(std::span<const uint8_t>(blob));
  for (uint64_t threshold : {uint64_t{0}, uint64_t{63}, uint64_t{64}, batch - 1, batch, batch + 1, 5 * batch}) {
    for (size_t piece : {size_t{1} << 14, batch - 1, batch, batch + 1, 3 * batch + 7}) {
      BlobHasher h(threshold);
      for (size_t off = 0; off < blob.size(); off += piece) {
        h.Update(std::span<const uint8_t>(blob).subspan(off, std::min(piece, blob.size() - off)));
      }
      const BlobHasher::Digests d = h.Finish();
      ASSERT_EQ(d.digest, want_digest) << threshold << " " << piece;
      ASSERT_EQ(d.chunks, want) << threshold << " " << piece;
      // Abandoned with batches queued: the destructor must not hang.
      BlobHasher gone(threshold);
      gone.Update(std::span<const uint8_t>(blob).first(std::min(blob.size(), piece * 2)));
    }
  }
}

// Fails the worker threads' allocations of at least min_bytes while alive.
class WorkerOutOfMemory {
 public:
  explicit WorkerOutOfMemory(size_t min_bytes) {
    g_main = std::this_thread::get_id();
    g_fail_min = min_bytes;
    g_fail = true;
  }
  ~WorkerOutOfMemory() { g_fail = false; }
};

TEST(HashingAttack, BlobHasherThreadOutOfMemoryIsRethrownByFinish) {
  if (!LAZYROOT_NEW_HOOK) GTEST_SKIP() << "sanitizer build: operator new is not ours";
  const std::vector<uint8_t> blob = Bytes(3 << 20, 17);
  BlobHasher h(0);  // the thread from the first byte
  {
    WorkerOutOfMemory oom(0);
    for (size_t off = 0; off < blob.size(); off += 100000) {
      h.Update(std::span<const uint8_t>(blob).subspan(off, std::min<size_t>(100000, blob.size() - off)));
    }
    EXPECT_THROW(h.Finish(), std::bad_alloc);
  }
}

TEST(HashingAttack, StreamHasherThreadOutOfMemoryIsRethrownByFinish) {
  if (!LAZYROOT_NEW_HOOK) GTEST_SKIP() << "sanitizer build: operator new is not ours";
  const std::vector<uint8_t> stream = Bytes(2 << 20, 18);
  StreamHasher h(0);
  {
    WorkerOutOfMemory oom(0);
    for (uint64_t off = 0; off < stream.size(); off += 65536) {
      h.AddFile(StreamHasher::File{off + 512, off + 1000, {}});
      h.Update(std::span<const uint8_t>(stream).subspan(off, 65536));
    }
    EXPECT_THROW(h.Finish(), std::bad_alloc);
  }
}

TEST(HashingAttack, IndexWriterWorkerOutOfMemoryIsAnError) {
  if (!LAZYROOT_NEW_HOOK) GTEST_SKIP() << "sanitizer build: operator new is not ours";
  LayerIndex idx;
  idx.blob_digest = "sha256:" + std::string(64, 'a');
  idx.diff_id = "sha256:" + std::string(64, 'b');
  idx.blob_size = 10;
  idx.chunks = ChunkDigestsOf(std::vector<uint8_t>(10, 1));
  LayerIndexWriter w;
  std::optional<Result<std::string>> file;
  {
    WorkerOutOfMemory oom(16 << 10);  // the file's growth by a batch; not the error's message
    for (int i = 0; i < 20000; ++i) {
      TarEntry e;
      e.path = "dir/file-" + std::to_string(i);
      e.type = EntryType::kRegular;
      e.mode = 0644;
      e.header_offset = static_cast<uint64_t>(i) * 1024;
      e.data_offset = e.header_offset + 512;
      ASSERT_TRUE(w.Add(e).ok());
    }
    idx.uncompressed_size = 20000ull * 1024 + 1024;
    file.emplace(w.Finish(idx));
  }
  ASSERT_FALSE(file->ok());
  EXPECT_NE(file->status().message().find("out of memory"), std::string::npos) << file->status().message();
}

}  // namespace
}  // namespace lazyroot
