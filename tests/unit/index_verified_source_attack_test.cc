// Attacks on the verified read path (one pread over a run of chunks, the
// cache of small verified reads): reads at every alignment around chunk
// edges and the small-read bound, a blob changed between and during reads
// (a flip, a shrink in the middle of a pread, an I/O error after garbage was
// written), the small-read cache across sources of other blobs, and readers
// racing a writer. The guarantee checked everywhere: every byte a read hands
// out (the first *n) is the original blob's, and no other byte of the
// caller's buffer holds anything the disk had but the pull did not.
#include <gtest/gtest.h>
#include <zlib.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "index/chunk_digests.h"
#include "index/gzip_index.h"
#include "index/layer_decoder.h"
#include "index/verified_source.h"
#include "tests/unit/compressed_fixtures.h"

namespace lazyroot {
namespace {

constexpr uint8_t kSentinel = 0xA5;

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

std::shared_ptr<const ChunkDigests> DigestsOf(const std::vector<uint8_t>& blob, uint32_t chunk) {
  ChunkHasher h(chunk);
  h.Update(blob);
  return std::make_shared<const ChunkDigests>(h.Finish());
}

// The blob on "disk", bytes held as atomics so a writer thread may change
// them while readers read (a real file changed under a mount). Hooks let a
// test shrink it in the middle of a read or fail a read after writing garbage.
class Disk final : public ByteSource {
 public:
  explicit Disk(const std::vector<uint8_t>& bytes) : bytes_(bytes.size()), size_(bytes.size()) {
    for (size_t i = 0; i < bytes.size(); ++i) bytes_[i].store(bytes[i], std::memory_order_relaxed);
  }
  Status ReadAt(uint64_t offset, std::span<uint8_t> out, size_t* n) const override {
    ++reads;
    *n = 0;
    if (garbage_then_error.load()) {
      std::memset(out.data(), 0x3C, out.size());
      return Status::IoError(name_ + ": injected read error");
    }
    uint64_t size = size_.load();
    if (offset >= size) return Status::Ok();
    size_t take = static_cast<size_t>(std::min<uint64_t>(out.size(), size - offset));
    if (shrink_mid_read.load() && take > 1) {
      // The file shrinks while this pread runs: it returns what was there.
      take /= 2;
      size_.store(offset + take);
    }
    for (size_t i = 0; i < take; ++i) out[i] = bytes_[offset + i].load(std::memory_order_relaxed);
    *n = take;
    return Status::Ok();
  }
  uint64_t Size() const override { return size_.load(); }
  const std::string& Name() const override { return name_; }
  void Flip(uint64_t at) { bytes_[at].fetch_xor(0xFF); }
  void SetSize(uint64_t n) { size_.store(std::min<uint64_t>(n, bytes_.size())); }

  mutable std::atomic<uint64_t> reads{0};
  std::atomic<bool> shrink_mid_read{false}, garbage_then_error{false};

 private:
  std::vector<std::atomic<uint8_t>> bytes_;
  mutable std::atomic<uint64_t> size_;
  std::string name_ = "blob sha256:attack";
};

struct Source {
  std::vector<uint8_t> original;
  Disk* disk = nullptr;
  std::unique_ptr<ByteSource> src;
  Source(std::vector<uint8_t> bytes, uint32_t chunk) : original(std::move(bytes)) {
    auto d = std::make_unique<Disk>(original);
    disk = d.get();
    src = NewVerifiedByteSource(std::move(d), DigestsOf(original, chunk));
  }
};

// Reads into a sentinel-filled buffer and checks the guarantee; returns the
// status. *bad describes the first violation.
Status CheckedRead(const Source& s, uint64_t off, size_t len, std::string* bad, std::vector<uint8_t>* got = nullptr) {
  std::vector<uint8_t> buf(len, kSentinel);
  size_t n = 12345;
  Status st = s.src->ReadAt(off, buf, &n);
  const uint64_t size = s.original.size();
  const size_t expect = off >= size ? 0 : static_cast<size_t>(std::min<uint64_t>(len, size - off));
  if (n > len) {
    *bad = "n " + std::to_string(n) + " > len";
    return st;
  }
  if (st.ok() && n != expect) *bad = "ok with n " + std::to_string(n) + " want " + std::to_string(expect);
  for (size_t i = 0; i < n && bad->empty(); ++i) {
    if (buf[i] != s.original[off + i]) *bad = "byte " + std::to_string(off + i) + " handed out differs";
  }
  for (size_t i = n; i < len && bad->empty(); ++i) {
    // Past *n: the caller's sentinel, or zeros the source wrote over what it refused.
    if (buf[i] != kSentinel && buf[i] != 0 && !(off + i < size && buf[i] == s.original[off + i])) {
      *bad = "byte " + std::to_string(off + i) + " past n holds " + std::to_string(buf[i]);
    }
  }
  if (got) got->assign(buf.begin(), buf.begin() + static_cast<long>(n));
  return st;
}

std::vector<uint64_t> Offsets(uint64_t cs, uint64_t size) {
  std::vector<uint64_t> v;
  for (uint64_t edge : {uint64_t{0}, cs, 2 * cs, 7 * cs, size - size % cs, size}) {
    for (int64_t d : {-1025, -1024, -1023, -2, -1, 0, 1, 2, 1023}) {
      const int64_t o = static_cast<int64_t>(edge) + d;
      if (o >= 0 && o <= static_cast<int64_t>(size) + 1) v.push_back(static_cast<uint64_t>(o));
    }
  }
  return v;
}

std::vector<size_t> Lengths(uint64_t cs) {
  return {0, 1, 2, 1023, 1024, 1025, cs - 1, cs, cs + 1, 2 * cs, 2 * cs + 1, 8 * cs - 1, 8 * cs, 8 * cs + 3,
          (256u << 10) - 1, (256u << 10) + 1, (300u << 10)};
}

// Every offset near a chunk edge (and near the blob's short last chunk) with
// every length around the small-read bound, 1, 2 and 8 chunks and the 256 KiB
// spanning read, on fresh sources (cold caches) and on one warm source.
TEST(VerifiedSourceAttack, EveryAlignmentReturnsTheBlob) {
  for (uint32_t cs : {4096u, 32768u}) {
    // 4 KiB chunks: past the 64 chunks of one spanning read; 32 KiB: 10 chunks do.
    const std::vector<uint8_t> blob = RandomBytes((cs == 4096 ? 90 : 12) * cs + 777, cs);
    Source warm(blob, cs);
    for (uint64_t off : Offsets(cs, blob.size())) {
      for (size_t len : Lengths(cs)) {
        Source cold(blob, cs);
        std::string bad;
        ASSERT_TRUE(CheckedRead(cold, off, len, &bad).ok()) << cs << " " << off << "+" << len;
        ASSERT_EQ(bad, "") << cs << " " << off << "+" << len;
        ASSERT_TRUE(CheckedRead(warm, off, len, &bad).ok()) << cs << " " << off << "+" << len;
        ASSERT_EQ(bad, "") << "warm " << cs << " " << off << "+" << len;
      }
    }
  }
}

// One changed byte in each chunk a read touches: the read fails with
// kCorruption naming the blob and the bad chunk's range, and hands out only
// bytes of chunks before it; a read that does not touch it succeeds.
TEST(VerifiedSourceAttack, AFlipAnywhereInAReadFailsItWithoutLeakingBytes) {
  const uint32_t cs = 4096;
  const std::vector<uint8_t> blob = RandomBytes(80 * cs + 300, 7);
  for (uint64_t flip : {uint64_t{0}, uint64_t{cs - 1}, uint64_t{cs}, uint64_t{3 * cs + 5}, uint64_t{9 * cs + 2},
                        uint64_t{79 * cs}, uint64_t{80 * cs + 299}}) {
    for (uint64_t off : Offsets(cs, blob.size())) {
      for (size_t len : Lengths(cs)) {
        Source s(blob, cs);
        s.disk->Flip(flip);
        std::string bad;
        Status st = CheckedRead(s, off, len, &bad);
        ASSERT_EQ(bad, "") << flip << " " << off << "+" << len;
        const uint64_t end = std::min<uint64_t>(off + len, blob.size());
        const bool touches = off < blob.size() && len > 0 && flip / cs >= off / cs && flip / cs <= (end - 1) / cs;
        ASSERT_EQ(st.ok(), !touches) << flip << " " << off << "+" << len << " " << st.message();
        if (!touches) continue;
        // The whole-chunk runs and the 256 KiB spanning read may stop before
        // the bad chunk (the rest read chunk by chunk): its range is named.
        EXPECT_EQ(st.code(), ErrorCode::kCorruption);
        const uint64_t first = flip / cs * cs, last = std::min<uint64_t>(first + cs, blob.size()) - 1;
        EXPECT_NE(st.message().find("blob sha256:attack: bytes " + std::to_string(first) + "–" + std::to_string(last)),
                  std::string::npos)
            << st.message();
      }
    }
  }
}

// The file shrinks while a pread runs (short read, then end of file) and a
// read fails after writing garbage into the buffer: kCorruption / the I/O
// error, nothing unverified left in the caller's buffer, at every alignment.
TEST(VerifiedSourceAttack, ShortAndFailedPreadsLeaveNoUnverifiedBytes) {
  const uint32_t cs = 4096;
  const std::vector<uint8_t> blob = RandomBytes(40 * cs + 100, 9);
  for (int mode = 0; mode < 2; ++mode) {
    for (uint64_t off : Offsets(cs, blob.size())) {
      for (size_t len : Lengths(cs)) {
        Source s(blob, cs);
        (mode == 0 ? s.disk->shrink_mid_read : s.disk->garbage_then_error).store(true);
        std::string bad;
        Status st = CheckedRead(s, off, len, &bad);
        ASSERT_EQ(bad, "") << mode << " " << off << "+" << len;
        if (off < blob.size() && len > 0) {
          ASSERT_FALSE(st.ok()) << mode << " " << off << "+" << len;
          if (mode == 0) {
            EXPECT_EQ(st.code(), ErrorCode::kCorruption);
            EXPECT_NE(st.message().find("truncated"), std::string::npos) << st.message();
          }
        }
      }
    }
  }
}

// The small-read cache is keyed by source: a small read of one blob is never
// served for another blob at the same offset and length, nor for a source
// re-opened over a blob that changed on disk since (it is verified again
// and fails); the same digest re-opened reads the same bytes.
TEST(VerifiedSourceAttack, SmallReadCacheNeverCrossesBlobs) {
  const uint32_t cs = 4096;
  const std::vector<uint8_t> a = RandomBytes(10 * cs, 1), b = RandomBytes(10 * cs, 2);
  for (size_t len : {size_t{1}, size_t{640}, size_t{1024}}) {
    for (uint64_t off : {uint64_t{0}, uint64_t{cs - 10}, uint64_t{5 * cs + 3}}) {
      auto sa = std::make_unique<Source>(a, cs);
      Source sb(b, cs);
      std::string bad;
      std::vector<uint8_t> got;
      ASSERT_TRUE(CheckedRead(*sa, off, len, &bad, &got).ok());
      ASSERT_TRUE(CheckedRead(*sa, off, len, &bad, &got).ok());  // now cached
      ASSERT_TRUE(CheckedRead(sb, off, len, &bad, &got).ok());
      ASSERT_EQ(bad, "");
      EXPECT_TRUE(std::equal(got.begin(), got.end(), b.begin() + static_cast<long>(off)));
      // A's file changes on disk; a new source over it with A's digests (the
      // index not rebuilt) must not find A's old verified bytes.
      Source again(a, cs);
      again.disk->Flip(off);
      Status st = CheckedRead(again, off, len, &bad);
      EXPECT_EQ(st.code(), ErrorCode::kCorruption) << len << " " << off;
      EXPECT_EQ(bad, "");
      // The old source still serves its verified bytes (they were verified).
      ASSERT_TRUE(CheckedRead(*sa, off, len, &bad).ok());
      sa.reset();
      // Re-opened on an unchanged blob: the same bytes.
      Source same(a, cs);
      ASSERT_TRUE(CheckedRead(same, off, len, &bad).ok());
      EXPECT_EQ(bad, "");
    }
  }
  EXPECT_LE(VerifiedSmallReadCacheBytes(), uint64_t{1} << 20);
  EXPECT_LE(VerifiedChunkCacheBytes(), uint64_t{2} << 20);
}

// Readers on one source while a writer flips bytes back and forth and
// shrinks and regrows the file: every byte handed out is the blob's, the
// buffer past *n holds nothing from the disk, and the caches stay bounded.
TEST(VerifiedSourceAttack, ReadersRacingAWriterNeverSeeChangedBytes) {
  const uint32_t cs = 4096;
  const std::vector<uint8_t> blob = RandomBytes(120 * cs + 55, 3);
  Source s(blob, cs);
  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0}, errors{0}, clean{0};
  std::thread writer([&] {
    std::mt19937 rng(1);
    while (!stop.load()) {
      const uint64_t at = rng() % blob.size();
      s.disk->Flip(at);
      std::this_thread::yield();
      s.disk->Flip(at);
      if (rng() % 16 == 0) {
        s.disk->SetSize(rng() % blob.size());
        std::this_thread::yield();
        s.disk->SetSize(blob.size());
      }
    }
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 6; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937 rng(50 + t);
      const std::vector<size_t> lens = Lengths(cs);
      for (int i = 0; i < 1500; ++i) {
        const uint64_t off = rng() % (blob.size() + 10);
        const size_t len = (i % 2) ? lens[rng() % lens.size()] : 1 + rng() % (3 * cs);
        std::string bad;
        Status st = CheckedRead(s, off, len, &bad);
        if (!bad.empty()) {
          ++wrong;
          ADD_FAILURE() << off << "+" << len << ": " << bad;
        }
        if (!st.ok() && st.code() != ErrorCode::kCorruption) ++wrong;
        (st.ok() ? clean : errors)++;
      }
    });
  }
  for (auto& t : readers) t.join();
  stop.store(true);
  writer.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(clean.load(), 0);
  EXPECT_LE(VerifiedSmallReadCacheBytes(), uint64_t{1} << 20);
  EXPECT_LE(VerifiedChunkCacheBytes(), uint64_t{2} << 20);
}

// Bounded memory: a million distinct small reads and chunks of many sources
// keep both caches within their bounds, and a destroyed source leaves nothing.
TEST(VerifiedSourceAttack, CachesStayBoundedAndDropADestroyedSource) {
  const uint32_t cs = 4096;
  const std::vector<uint8_t> blob = RandomBytes(600 * cs, 4);
  std::vector<std::unique_ptr<Source>> sources;
  for (int i = 0; i < 4; ++i) sources.push_back(std::make_unique<Source>(blob, cs));
  std::mt19937 rng(8);
  for (int i = 0; i < 20000; ++i) {
    std::string bad;
    const uint64_t off = rng() % blob.size();
    ASSERT_TRUE(CheckedRead(*sources[i % 4], off, 1 + rng() % 1024, &bad).ok());
    ASSERT_EQ(bad, "");
  }
  EXPECT_LE(VerifiedSmallReadCacheBytes(), uint64_t{1} << 20);
  EXPECT_GT(VerifiedSmallReadCacheBytes(), uint64_t{512} << 10);
  EXPECT_LE(VerifiedChunkCacheBytes(), uint64_t{2} << 20);
  sources.clear();
  EXPECT_EQ(VerifiedSmallReadCacheBytes(), 0u);
  EXPECT_EQ(VerifiedChunkCacheBytes(), 0u);
}

// A hostile table whose in/out ratio makes the ISA-L reader's first read
// after a prime (ExpectOutput) as large or as small as it can: the reads of
// the blob stay within the reader's 64 KiB buffer, and the bytes decoded are
// the layer's (the size of a read is a hint, never what decides the output).
TEST(VerifiedSourceAttack, HostileRatioKeepsTheFirstReadBoundedAndTheBytesRight) {
  if (!HaveIsal()) GTEST_SKIP() << "ISA-L not built in";
  std::mt19937 rng(12);
  std::vector<uint8_t> data(3 << 20);
  for (size_t i = 0; i < data.size(); ++i) data[i] = (i / 4096) % 3 == 0 ? static_cast<uint8_t>(rng()) : "lazyroot\n"[i % 9];
  const std::vector<uint8_t> blob = fixtures::Deflate(data, 31, 6);
  auto dec = StreamDecoder::Create(Compression::kGzip, "layer hostile", 256 << 10, InflateEngine::kIsal);
  OutputFn sink = [](std::span<const uint8_t>) { return Status::Ok(); };
  ASSERT_TRUE(dec->Feed(blob, sink).ok());
  ASSERT_TRUE(dec->Finish(sink).ok());
  const CheckpointTable real = dec->TakeCheckpoints();
  ASSERT_GT(real.points.size(), 4u);
  class Recording final : public ByteSource {
   public:
    explicit Recording(const std::vector<uint8_t>& b) : inner_(MemoryByteSource(b, "blob hostile")) {}
    Status ReadAt(uint64_t offset, std::span<uint8_t> out, size_t* n) const override {
      max_read = std::max<size_t>(max_read, out.size());
      if (out.empty()) ++empty_reads;
      return inner_->ReadAt(offset, out, n);
    }
    uint64_t Size() const override { return inner_->Size(); }
    const std::string& Name() const override { return inner_->Name(); }
    mutable size_t max_read = 0, empty_reads = 0;

   private:
    std::unique_ptr<ByteSource> inner_;
  };
  for (int variant = 0; variant < 3; ++variant) {
    CheckpointTable t = real;
    const size_t keep = 3;  // point 2 is then the last: its ratio is to the table's sizes
    if (variant > 0) t.points.resize(keep);
    if (variant == 1) t.uncompressed_size = uint64_t{1} << 50;  // ratio ~0: the smallest first read
    if (variant == 2) t.compressed_size = uint64_t{1} << 50;    // ratio huge: the largest
    auto table = std::make_shared<const CheckpointTable>(t);
    for (size_t len : {size_t{1}, size_t{4096}, size_t{200} << 10}) {
      Recording src(blob);
      auto reader = RandomReader::Create(table, NewGzipPointDecoder(table.get(), &src, "layer hostile", InflateEngine::kIsal));
      const uint64_t at = real.points[2].out_offset + 17;
      std::vector<uint8_t> out(len);
      size_t n = 0;
      Status st = reader->Read(at, out, &n);
      ASSERT_TRUE(st.ok()) << variant << " " << len << " " << st.ToString();
      ASSERT_EQ(n, len);
      EXPECT_TRUE(std::equal(out.begin(), out.end(), data.begin() + static_cast<ptrdiff_t>(at))) << variant << " " << len;
      EXPECT_LE(src.max_read, size_t{64} << 10) << variant << " " << len;
      EXPECT_EQ(src.empty_reads, 0u) << variant << " " << len;
    }
  }
}

// A gzip member of data whose header carries a comment of comment_len bytes:
// it moves everything after it by any amount.
std::vector<uint8_t> GzipMember(const std::vector<uint8_t>& data, size_t comment_len) {
  std::vector<uint8_t> out = {0x1f, 0x8b, 8, static_cast<uint8_t>(comment_len ? 0x10 : 0), 0, 0, 0, 0, 0, 3};
  if (comment_len) {
    out.insert(out.end(), comment_len, 'c');
    out.push_back(0);
  }
  const std::vector<uint8_t> raw = fixtures::Deflate(data, -15, 6);
  out.insert(out.end(), raw.begin(), raw.end());
  const uint32_t crc = static_cast<uint32_t>(crc32(0, data.data(), static_cast<uInt>(data.size())));
  const uint32_t isize = static_cast<uint32_t>(data.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(crc >> (8 * i)));
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(isize >> (8 * i)));
  return out;
}

// An ISA-L point whose bits sit in the last byte of a 32 KiB chunk (in_offset
// a multiple of 32 KiB, bits != 0), primed without ExpectOutput (the
// interface's default: a hint): the first refill starts a byte early to read
// the point's bits with the rest, and its 32 KiB alignment must not cut it to
// that one byte (which left nothing to inflate: "truncated" at a good blob).
TEST(VerifiedSourceAttack, IsalPointWithBitsAtAChunkEdgeDecodesWithoutAHint) {
  if (!HaveIsal()) GTEST_SKIP() << "ISA-L not built in";
  std::mt19937 rng(21);
  std::vector<uint8_t> data;
  while (data.size() < (2u << 20)) {
    if (rng() % 3 == 0) {
      for (size_t i = 0, n = 1 + rng() % 20000; i < n; ++i) data.push_back(static_cast<uint8_t>(rng()));
    } else {
      for (size_t i = 0, n = 1 + rng() % 20000; i < n; ++i) data.push_back("usr lib layer\n"[i % 14]);
    }
  }
  const std::vector<uint8_t> hello = {'h', 'i', '\n'};
  auto build = [&](size_t comment_len, std::vector<uint8_t>* blob) {
    *blob = GzipMember(hello, comment_len);
    const std::vector<uint8_t> second = GzipMember(data, 0);
    blob->insert(blob->end(), second.begin(), second.end());
    auto dec = StreamDecoder::Create(Compression::kGzip, "layer edge", 64 << 10, InflateEngine::kIsal);
    OutputFn sink = [](std::span<const uint8_t>) { return Status::Ok(); };
    EXPECT_TRUE(dec->Feed(*blob, sink).ok());
    EXPECT_TRUE(dec->Finish(sink).ok());
    return dec->TakeCheckpoints();
  };
  std::vector<uint8_t> blob;
  const CheckpointTable probe = build(1, &blob);
  int tried = 0;
  for (const Checkpoint& p : probe.points) {
    if (p.bits == 0 || p.out_offset < 1000 || p.out_offset + 8192 > probe.uncompressed_size) continue;
    const size_t comment = 1 + (32768 - p.in_offset % 32768) % 32768;  // p lands on a 32 KiB edge
    const CheckpointTable t = build(comment, &blob);
    for (const Checkpoint& q : t.points) {
      if (q.out_offset != p.out_offset) continue;
      ASSERT_EQ(q.in_offset % 32768, 0u);
      ASSERT_EQ(q.bits, p.bits);
      auto src = MemoryByteSource(blob, "blob edge");
      auto d = NewGzipPointDecoder(&t, src.get(), "layer edge", InflateEngine::kIsal);
      ASSERT_TRUE(d->Prime(q).ok());
      std::vector<uint8_t> out(4096);
      Status st = d->Decode(out);
      ASSERT_TRUE(st.ok()) << "point at compressed " << q.in_offset << " bits " << int(q.bits) << ": " << st.ToString();
      EXPECT_TRUE(std::equal(out.begin(), out.end(), data.begin() + static_cast<ptrdiff_t>(q.out_offset - hello.size())));
      ++tried;
    }
    if (tried >= 3) break;
  }
  ASSERT_GT(tried, 0) << "no point with bits found";
}

}  // namespace
}  // namespace lazyroot
