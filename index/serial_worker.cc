#include "index/serial_worker.h"

#include <system_error>
#include <utility>

namespace lazyroot {

SerialWorker::SerialWorker(size_t max_queued) : max_queued_(max_queued == 0 ? 1 : max_queued) {
  try {
    thread_ = std::thread([this] { Run(); });
  } catch (const std::system_error&) {
    // Inline from here on (Post sees no thread).
  }
}

SerialWorker::~SerialWorker() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.clear();
    stop_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void SerialWorker::Post(std::function<void()> task) {
  if (!thread_.joinable()) {
    task();
    return;
  }
  {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [this] { return queue_.size() < max_queued_; });
    queue_.push_back(std::move(task));
  }
  changed_.notify_all();
}

void SerialWorker::Wait() {
  if (!thread_.joinable()) return;
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [this] { return queue_.empty() && !busy_; });
}

void SerialWorker::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    changed_.wait(lock, [this] { return !queue_.empty() || stop_; });
    if (stop_) return;
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    changed_.notify_all();  // room in the queue
    task();
    lock.lock();
    busy_ = false;
    changed_.notify_all();  // Wait may be done
  }
}

}  // namespace lazyroot
