#include "src/pull/blob_hasher.h"

#include <pthread.h>

#include <utility>

namespace lazyroot {

BlobHasher::~BlobHasher() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.clear();  // abandoned (an error or a restart): nothing left is wanted
    done_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void BlobHasher::Update(std::span<const uint8_t> bytes) {
  seen_ += bytes.size();
  if (!thread_.joinable() && seen_ <= threshold_) {
    hash_.Update(bytes);
    return;
  }
  if (!thread_.joinable()) {
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "lz-blobhash");  // for perf and top
      Run();
    });
  }
  pending_.insert(pending_.end(), bytes.begin(), bytes.end());
  if (pending_.size() >= kBatch) Flush();
}

void BlobHasher::Flush() {
  std::vector<uint8_t> buf;
  {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [this] { return queue_.size() < kMaxQueued; });
    if (!free_.empty()) {
      buf = std::move(free_.back());
      free_.pop_back();
    }
  }
  buf.clear();
  buf.swap(pending_);  // pending_ takes the recycled buffer's capacity
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(buf));
  }
  changed_.notify_all();
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
    hash_.Update(buf);
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.size() < kMaxQueued) free_.push_back(std::move(buf));
  }
}

std::string BlobHasher::FinishHex() {
  if (thread_.joinable()) {
    if (!pending_.empty()) Flush();
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  return hash_.FinishHex();
}

}  // namespace lazyroot
