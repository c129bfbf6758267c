#include "index/blob_hasher.h"

#include <algorithm>
#include <exception>
#include <system_error>
#include <utility>

namespace lazyroot {

BlobHasher::BlobHasher(uint64_t threshold, std::function<bool()> may_start)
    : threshold_(threshold), may_start_(std::move(may_start)) {
  free_.reserve(kMaxQueued);  // the thread's push_back then never allocates (it must not throw)
}

BlobHasher::~BlobHasher() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.clear();  // abandoned: nothing left is wanted
    done_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void BlobHasher::Update(std::span<const uint8_t> bytes) {
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
    if (inline_) {
      hasher_.Update(bytes);
      return;
    }
  }
  while (!bytes.empty()) {
    if (batch_.capacity() < kBatchBytes) batch_.reserve(kBatchBytes);
    const size_t take = std::min(bytes.size(), kBatchBytes - batch_.size());
    batch_.insert(batch_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(take));
    bytes = bytes.subspan(take);
    if (batch_.size() == kBatchBytes) HandOver();
  }
}

void BlobHasher::HandOver() {
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

void BlobHasher::Run() {
  for (;;) {
    std::vector<uint8_t> buf;
    {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [this] { return !queue_.empty() || done_; });
      if (queue_.empty()) return;
      buf = std::move(queue_.front());
      queue_.pop_front();
    }
    changed_.notify_all();  // room in the queue
    // An exception must not leave the thread (std::terminate): Finish
    // rethrows it on the producer's, where the pull fails the layer.
    if (!failed_) {
      try {
        hasher_.Update(buf);
      } catch (...) {
        failed_ = std::current_exception();
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.size() < kMaxQueued) free_.push_back(std::move(buf));
  }
}

BlobHasher::Digests BlobHasher::Finish() {
  if (thread_.joinable()) {
    if (!batch_.empty()) HandOver();
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    changed_.notify_all();
    thread_.join();
    if (failed_) std::rethrow_exception(failed_);
  }
  Digests d;
  d.chunks = hasher_.Finish();
  d.digest = hasher_.BlobDigest();
  return d;
}

}  // namespace lazyroot
