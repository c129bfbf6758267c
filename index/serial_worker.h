// SerialWorker: runs posted tasks in order on one thread of its own, so a
// producer can hand work off its critical path (the pull's layer thread,
// which inflates and parses) without reordering it. At most max_queued
// tasks wait; Post blocks beyond that, so memory stays bounded. If the
// thread cannot be started (EAGAIN, out of memory), tasks run inline in
// Post: slower, never an error. One producer; tasks must not throw.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace lazyroot {

class SerialWorker {
 public:
  explicit SerialWorker(size_t max_queued = 4);
  ~SerialWorker();  // drops the tasks not yet started, lets the running one finish
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;

  void Post(std::function<void()> task);
  // Returns once every posted task has run; what they wrote is then visible here.
  void Wait();

 private:
  void Run();

  const size_t max_queued_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  bool busy_ = false;                        // guarded by mu_: a task is running
  bool stop_ = false;                        // guarded by mu_
};

}  // namespace lazyroot
