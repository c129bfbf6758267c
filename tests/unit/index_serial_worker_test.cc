#include "index/serial_worker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
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

}  // namespace
}  // namespace lazyroot
