// DecodedSpanLru: LRU order, the byte bound, replacement, concurrency.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <vector>
#include <random>
#include <thread>

#include "fs/decoded_span_lru.h"

namespace lazyroot {
namespace {

std::shared_ptr<const Span> Filled(size_t n, uint8_t v) { return std::make_shared<const Span>(n, v); }

TEST(DecodedSpanLru, GetPutAndMisses) {
  DecodedSpanLru c(1000);
  EXPECT_EQ(c.Get(0, 0), nullptr);
  c.Put(0, 0, Filled(100, 1));
  c.Put(1, 0, Filled(100, 2));  // same offset, other layer: another key
  ASSERT_NE(c.Get(0, 0), nullptr);
  EXPECT_EQ((*c.Get(0, 0))[0], 1);
  EXPECT_EQ((*c.Get(1, 0))[0], 2);
  DecodedSpanLruStats s = c.stats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.hits, 3u);
  EXPECT_EQ(s.bytes, 200u);
  EXPECT_EQ(s.entries, 2u);
}

TEST(DecodedSpanLru, EvictsLeastRecentlyUsedWithinTheByteBound) {
  DecodedSpanLru c(300);
  c.Put(0, 0, Filled(100, 0));
  c.Put(0, 100, Filled(100, 1));
  c.Put(0, 200, Filled(100, 2));
  ASSERT_NE(c.Get(0, 0), nullptr);  // 0 is now the most recent; 100 the least
  c.Put(0, 300, Filled(100, 3));
  EXPECT_EQ(c.Get(0, 100), nullptr);
  EXPECT_NE(c.Get(0, 0), nullptr);
  EXPECT_NE(c.Get(0, 200), nullptr);
  EXPECT_NE(c.Get(0, 300), nullptr);
  EXPECT_EQ(c.stats().bytes, 300u);
  EXPECT_EQ(c.stats().evictions, 1u);

  c.Put(0, 400, Filled(250, 4));  // one big span pushes out three
  EXPECT_LE(c.stats().bytes, 300u);
  EXPECT_NE(c.Get(0, 400), nullptr);
  EXPECT_EQ(c.stats().entries, 1u);
}

TEST(DecodedSpanLru, OversizedSpansAreNotStoredAndZeroCapacityStoresNothing) {
  DecodedSpanLru c(100);
  c.Put(0, 0, Filled(50, 0));
  c.Put(0, 64, Filled(101, 1));
  EXPECT_EQ(c.Get(0, 64), nullptr);
  EXPECT_NE(c.Get(0, 0), nullptr);  // and nothing was evicted for it
  DecodedSpanLru off(0);
  off.Put(0, 0, Filled(1, 0));
  EXPECT_EQ(off.Get(0, 0), nullptr);
  EXPECT_EQ(off.stats().bytes, 0u);
}

TEST(DecodedSpanLru, ReplacingAKeyAccountsBytesOnce) {
  DecodedSpanLru c(1000);
  c.Put(0, 0, Filled(100, 0));
  c.Put(0, 0, Filled(300, 9));
  EXPECT_EQ(c.stats().bytes, 300u);
  EXPECT_EQ(c.stats().entries, 1u);
  EXPECT_EQ((*c.Get(0, 0))[0], 9);
}

TEST(DecodedSpanLru, EvictedSpansStayValidForTheirHolders) {
  DecodedSpanLru c(100);
  c.Put(0, 0, Filled(100, 7));
  std::shared_ptr<const Span> held = c.Get(0, 0);
  c.Put(0, 100, Filled(100, 8));
  EXPECT_EQ(c.Get(0, 0), nullptr);
  EXPECT_EQ(held->size(), 100u);
  EXPECT_EQ((*held)[99], 7);
}

TEST(DecodedSpanLru, ConcurrentGetPutKeepsTheBoundAndTheContents) {
  DecodedSpanLru c(64 * 1024);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 20000; ++i) {
        uint32_t layer = rng() % 3;
        uint64_t offset = (rng() % 64) * 4096;
        const uint8_t tag = static_cast<uint8_t>(layer * 64 + offset / 4096);
        if (auto s = c.Get(layer, offset)) {
          if (s->size() != 4096 || (*s)[0] != tag || (*s)[4095] != tag) ++wrong;
        } else {
          c.Put(layer, offset, Filled(4096, tag));
        }
        if (c.stats().bytes > 64 * 1024) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  DecodedSpanLruStats s = c.stats();
  EXPECT_LE(s.bytes, 64u * 1024);
  EXPECT_EQ(s.bytes, s.entries * 4096);
  EXPECT_GT(s.evictions, 0u);
}


// Pages of [data, data + size) resident now, by mincore, over the whole pages inside.
size_t ResidentPages(const Span& s, size_t* pages) {
  const uintptr_t kPage = 4096;
  const auto start = reinterpret_cast<uintptr_t>(s.data());
  const uintptr_t first = (start + kPage - 1) & ~(kPage - 1);
  const uintptr_t end = (start + s.size()) & ~(kPage - 1);
  *pages = (end - first) / kPage;
  std::vector<unsigned char> vec(*pages);
  if (mincore(reinterpret_cast<void*>(first), end - first, vec.data()) != 0) return 0;
  size_t n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n;
}

// A fresh span's pages are made resident in one call, before anything is
// written (64 MiB: over glibc's largest mmap threshold, so fresh pages
// whatever this process freed before); bytes already written stay.
TEST(PopulateSpan, MakesAFreshSpansPagesResidentAndKeepsItsBytes) {
  Span fresh;
  fresh.resize(64 << 20);
  size_t pages = 0;
  const size_t before = ResidentPages(fresh, &pages);
  ASSERT_GE(pages, (64u << 20) / 4096 - 1);
  ASSERT_LT(before, pages / 2) << "a fresh 64 MiB span should not be resident yet";
  errno = 0;
  if (!PopulateSpan(&fresh)) {
    if (errno == EINVAL) GTEST_SKIP() << "MADV_POPULATE_WRITE needs Linux 5.14";
    FAIL() << "PopulateSpan: " << std::strerror(errno);
  }
  const size_t after = ResidentPages(fresh, &pages);
  EXPECT_EQ(after, pages);
  Span written;
  written.resize(300 << 10);
  for (size_t i = 0; i < written.size(); ++i) written[i] = static_cast<uint8_t>(i * 7 + 3);
  ASSERT_TRUE(PopulateSpan(&written));
  for (size_t i = 0; i < written.size(); ++i) ASSERT_EQ(written[i], static_cast<uint8_t>(i * 7 + 3)) << i;
  // Small spans are left alone; empty ones too.
  Span small, empty;
  small.resize(kPopulateMinBytes - 1);
  EXPECT_TRUE(PopulateSpan(&small));
  EXPECT_TRUE(PopulateSpan(&empty));
}

}  // namespace
}  // namespace lazyroot
