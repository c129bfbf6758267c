#include "index/serial_worker.h"

#include <algorithm>
#include <system_error>
#include <utility>

namespace lazyroot {

SerialWorker::SerialWorker(size_t max_queued) : max_queued_(max_queued == 0 ? 1 : max_queued) {
  try {
    thread_ = std::thread([this] { Run(); });
  } catch (const std::system_error&) {
    no_thread_ = true;  // inline from here on (Post sees no thread)
  }
}

SerialWorker::SerialWorker(size_t max_queued, StartRule rule)
    : max_queued_(max_queued == 0 ? 1 : max_queued), rule_(std::move(rule)) {}

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

bool SerialWorker::Offload(uint64_t n) {
  seen_ += n;
  if (thread_.joinable()) return true;
  if (seen_ <= rule_.threshold || no_thread_ || (rule_.may_start && !rule_.may_start())) return false;
  try {
    thread_ = std::thread([this] { Run(); });
  } catch (const std::system_error&) {  // EAGAIN: slower, not an error
    no_thread_ = true;
    return false;
  }
  return true;
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
  if (failed_) std::rethrow_exception(failed_);
}

void SerialWorker::Join() {
  if (!thread_.joinable()) return;
  {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [this] { return queue_.empty() && !busy_; });
    stop_ = true;
  }
  changed_.notify_all();
  thread_.join();
  if (failed_) std::rethrow_exception(failed_);  // joined: ours now
}

void SerialWorker::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    changed_.wait(lock, [this] { return !queue_.empty() || stop_; });
    if (stop_) return;
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    const bool skip = failed_ != nullptr;  // what follows a failed task is not wanted
    busy_ = true;
    lock.unlock();
    changed_.notify_all();  // room in the queue
    std::exception_ptr thrown;
    if (!skip) {
      try {
        task();
      } catch (...) {
        thrown = std::current_exception();
      }
    }
    task = nullptr;  // its captures go before Wait returns
    lock.lock();
    if (thrown && !failed_) failed_ = std::move(thrown);
    busy_ = false;
    changed_.notify_all();  // Wait may be done
  }
}

void ByteBatcher::Add(std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    if (batch_.capacity() < batch_bytes_) batch_.reserve(batch_bytes_);
    const size_t take = std::min(bytes.size(), batch_bytes_ - batch_.size());
    batch_.insert(batch_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(take));
    bytes = bytes.subspan(take);
    if (batch_.size() == batch_bytes_) Flush();
  }
}

void ByteBatcher::Flush() {
  if (batch_.empty()) return;
  worker_->Post([this, buf = std::move(batch_)]() mutable {
    consume_(buf);
    buf.clear();
    pool_.Give(std::move(buf));
  });
  batch_ = pool_.Take();
  batch_.clear();
}

}  // namespace lazyroot
