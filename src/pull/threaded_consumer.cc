#include "src/pull/threaded_consumer.h"

#include <algorithm>
#include <exception>
#include <system_error>
#include <utility>

#include "index/exception_status.h"

namespace lazyroot {

ThreadedConsumer::ThreadedConsumer(std::unique_ptr<LayerConsumer> inner, uint64_t threshold,
                                   std::function<bool()> may_start)
    : inner_(std::move(inner)), threshold_(threshold), may_start_(std::move(may_start)) {
  free_.reserve(kMaxQueued);  // the thread's push_back then never allocates (it must not throw)
}

ThreadedConsumer::~ThreadedConsumer() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.clear();  // abandoned (an error, a restart): nothing left is wanted
    done_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

Status ThreadedConsumer::ThreadStatus() {
  std::lock_guard<std::mutex> lock(mu_);
  return failed_;
}

Status ThreadedConsumer::Consume(std::span<const uint8_t> bytes) {
  seen_ += bytes.size();
  if (!thread_.joinable()) {
    bool inline_ = seen_ <= threshold_ || no_thread_ || (may_start_ && !may_start_());
    if (!inline_) {
      try {
        thread_ = std::thread([this] { Run(); });
      } catch (const std::system_error&) {  // EAGAIN: slower, not an error
        no_thread_ = inline_ = true;
      }
    }
    if (inline_) return inner_->Consume(bytes);
  }
  while (!bytes.empty()) {
    if (batch_.capacity() < kBatchBytes) batch_.reserve(kBatchBytes);
    const size_t take = std::min(bytes.size(), kBatchBytes - batch_.size());
    batch_.insert(batch_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(take));
    bytes = bytes.subspan(take);
    if (batch_.size() == kBatchBytes) HandOver();
  }
  return ThreadStatus();
}

void ThreadedConsumer::HandOver() {
  std::vector<uint8_t> next;
  {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [this] { return queue_.size() < kMaxQueued; });
    queue_.push_back(std::move(batch_));
    if (!free_.empty()) {
      next = std::move(free_.back());
      free_.pop_back();
    }
  }
  changed_.notify_all();
  next.clear();
  batch_ = std::move(next);
}

void ThreadedConsumer::Run() {
  for (;;) {
    std::vector<uint8_t> buf;
    bool failed = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [this] { return !queue_.empty() || done_; });
      if (queue_.empty()) return;
      buf = std::move(queue_.front());
      queue_.pop_front();
      failed = !failed_.ok();
    }
    changed_.notify_all();  // room in the queue
    if (!failed) {
      // An exception must not leave the thread (std::terminate): out of
      // memory in the indexer fails the layer, as it does inline.
      Status st;
      try {
        st = inner_->Consume(buf);
      } catch (...) {
        st = CurrentExceptionStatus("");
      }
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        failed_ = std::move(st);
      }
    }
    buf.clear();
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.size() < kMaxQueued) free_.push_back(std::move(buf));
  }
}

Status ThreadedConsumer::Finish(ChunkDigests chunks) {
  if (thread_.joinable()) {
    if (!batch_.empty()) HandOver();
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    changed_.notify_all();
    thread_.join();
    LAZYROOT_RETURN_IF_ERROR(failed_);  // joined: ours now
  }
  return inner_->Finish(std::move(chunks));
}

}  // namespace lazyroot
