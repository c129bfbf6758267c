#include "index/serial_worker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <new>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

namespace lazyroot {
namespace {

TEST(SerialWorker, RunsTasksInOrderAndWaitSeesTheirWrites) {
  SerialWorker w(2);
  std::vector<int> seen;  // written by the worker only, read after Wait
  for (int i = 0; i < 1000; ++i) w.Post([&seen, i] { seen.push_back(i); });
  w.Wait();
  ASSERT_EQ(seen.size(), 1000u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(seen[i], i);
  w.Post([&seen] { seen.push_back(-1); });  // usable after a Wait
  w.Wait();
  EXPECT_EQ(seen.back(), -1);
}

// Post blocks while max_queued tasks wait: the producer cannot run ahead
// without bound.
TEST(SerialWorker, PostBlocksBeyondTheQueueBound) {
  SerialWorker w(1);
  std::atomic<bool> release{false};
  std::atomic<int> posted{0};
  w.Post([&] {
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  std::thread producer([&] {
    for (int i = 0; i < 3; ++i) {
      w.Post([] {});
      ++posted;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_LE(posted.load(), 1) << "one task may wait, not more";
  release = true;
  producer.join();
  w.Wait();
  EXPECT_EQ(posted.load(), 3);
}

TEST(SerialWorker, DestroyedWithTasksQueuedDropsThemAndJoins) {
  std::atomic<int> ran{0};
  {
    SerialWorker w(8);
    w.Post([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      ++ran;
    });
    for (int i = 0; i < 5; ++i) w.Post([&] { ++ran; });
  }
  // Nothing runs after the destructor returned (the tasks' captures are gone).
  const int after = ran.load();
  EXPECT_LE(after, 6);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(ran.load(), after);
}

// The start rule: inline (Offload false, no thread) up to the threshold,
// then asked may_start at each Offload until it says yes; from then on
// every Offload is true.
TEST(SerialWorker, StartsOnlyPastTheThresholdAndWhenAllowed) {
  int asked = 0;
  bool allow = false;
  SerialWorker w(4, SerialWorker::StartRule{100, [&] {
                                               ++asked;
                                               return allow;
                                             }});
  EXPECT_FALSE(w.Offload(60));
  EXPECT_FALSE(w.Offload(40));  // 100: not past it
  EXPECT_EQ(asked, 0);
  EXPECT_FALSE(w.threaded());
  EXPECT_FALSE(w.Offload(1));
  EXPECT_FALSE(w.Offload(1));
  EXPECT_EQ(asked, 2);
  EXPECT_FALSE(w.threaded());
  allow = true;
  EXPECT_TRUE(w.Offload(1));
  EXPECT_TRUE(w.threaded());
  EXPECT_TRUE(w.Offload(1));
  EXPECT_EQ(asked, 3) << "not asked once started";
  std::thread::id ran_on;
  w.Post([&] { ran_on = std::this_thread::get_id(); });
  w.Join();
  EXPECT_NE(ran_on, std::this_thread::get_id());
  EXPECT_FALSE(w.threaded());
  w.Post([&] { ran_on = std::this_thread::get_id(); });  // after Join: inline
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(SerialWorker, WithoutARuleStartsPastZeroBytes) {
  SerialWorker w(4, SerialWorker::StartRule{});
  EXPECT_FALSE(w.threaded());
  EXPECT_FALSE(w.Offload(0));
  EXPECT_TRUE(w.Offload(1));
  EXPECT_TRUE(w.threaded());
}

// What a task throws on the thread is the producer's at Wait and Join (as
// inline it would have been Post's); the tasks posted after it do not run.
TEST(SerialWorker, ATasksExceptionIsRethrownAndTheRestDropped) {
  for (bool join : {false, true}) {
    SerialWorker w(2);
    std::atomic<int> ran{0};
    w.Post([&] { ++ran; });
    w.Post([] { throw std::bad_alloc(); });
    for (int i = 0; i < 10; ++i) w.Post([&] { ++ran; });
    w.Post([] { throw std::runtime_error("second"); });
    if (join) {
      EXPECT_THROW(w.Join(), std::bad_alloc);
    } else {
      EXPECT_THROW(w.Wait(), std::bad_alloc);
      EXPECT_THROW(w.Wait(), std::bad_alloc) << "kept";
    }
    EXPECT_EQ(ran.load(), 1);
  }
}

TEST(SerialWorker, InlineATasksExceptionLeavesPost) {
  SerialWorker w(2, SerialWorker::StartRule{1 << 20, nullptr});
  ASSERT_FALSE(w.Offload(10));
  EXPECT_THROW(w.Post([] { throw std::runtime_error("inline"); }), std::runtime_error);
  EXPECT_NO_THROW(w.Join());
}

// ByteBatcher: the consumer sees the stream's bytes in order, in full
// batches but the last, for any chunking.
TEST(ByteBatcher, SameBytesInOrderInFullBatches) {
  std::mt19937 rng(5);
  std::vector<uint8_t> data(10000);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  for (size_t max_piece : {size_t{1}, size_t{7}, size_t{999}, size_t{2500}}) {
    SCOPED_TRACE(max_piece);
    std::vector<uint8_t> seen;  // the worker's until Join
    std::vector<size_t> sizes;
    SerialWorker w(2);
    ByteBatcher batches(&w, 1000, 2, [&](std::span<const uint8_t> b) {
      seen.insert(seen.end(), b.begin(), b.end());
      sizes.push_back(b.size());
    });
    for (size_t at = 0; at < data.size() - 1;) {
      const size_t n = std::min<size_t>(data.size() - 1 - at, 1 + rng() % max_piece);
      batches.Add(std::span(data).subspan(at, n));
      at += n;
    }
    batches.Flush();
    batches.Flush();  // nothing more: no empty batch
    batches.Add(std::span(data).last(1));
    batches.Flush();
    w.Join();
    EXPECT_TRUE(seen == data);
    ASSERT_EQ(sizes.size(), 11u);
    for (size_t i = 0; i < 9; ++i) EXPECT_EQ(sizes[i], 1000u);
    EXPECT_EQ(sizes[9], 999u);
    EXPECT_EQ(sizes[10], 1u);
  }
}

// A pool keeps at most `keep` buffers and hands them out again.
TEST(RecyclePool, KeepsAtMostItsBound) {
  RecyclePool<std::vector<uint8_t>> pool(2);
  EXPECT_TRUE(pool.Take().empty());
  std::vector<const uint8_t*> given;
  for (int i = 0; i < 3; ++i) {
    std::vector<uint8_t> v(10 + i);
    given.push_back(v.data());
    pool.Give(std::move(v));
  }
  std::vector<uint8_t> a = pool.Take(), b = pool.Take(), c = pool.Take();
  EXPECT_EQ(b.data(), given[0]);
  EXPECT_EQ(a.data(), given[1]);
  EXPECT_TRUE(c.empty()) << "the third was freed";
}

}  // namespace
}  // namespace lazyroot
