#include "index/stream_hasher.h"

#include <algorithm>
#include <exception>
#include <system_error>
#include <utility>

namespace lazyroot {

StreamHasher::StreamHasher(uint64_t threshold) : threshold_(threshold) {
  free_.reserve(kMaxQueued);  // the thread's push_back then never allocates (it must not throw)
}

StreamHasher::~StreamHasher() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.clear();  // abandoned (an error): nothing left is wanted
    done_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void StreamHasher::AddFile(File f) { new_files_.push_back(std::move(f)); }

void StreamHasher::Update(std::span<const uint8_t> chunk) {
  seen_ += chunk.size();
  if (!thread_.joinable() && (seen_ <= threshold_ || no_thread_)) {
    Hash(new_files_, chunk);
    return;
  }
  if (!thread_.joinable()) {
    try {
      thread_ = std::thread([this] { Run(); });
    } catch (const std::system_error&) {  // EAGAIN: hash inline, slower, not an error
      no_thread_ = true;
      Hash(new_files_, chunk);
      return;
    }
  }
  Chunk c;
  {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [this] { return queue_.size() < kMaxQueued; });
    if (!free_.empty()) {
      c = std::move(free_.back());
      free_.pop_back();
    }
  }
  c.files.swap(new_files_);
  new_files_.clear();
  c.bytes.assign(chunk.begin(), chunk.end());
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(c));
  }
  changed_.notify_all();
}

void StreamHasher::Run() {
  for (;;) {
    Chunk c;
    {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [this] { return !queue_.empty() || done_; });
      if (queue_.empty()) return;
      c = std::move(queue_.front());
      queue_.pop_front();
    }
    changed_.notify_all();  // room in the queue
    // An exception must not leave the thread (std::terminate): Finish
    // rethrows it on the producer's, where the pull fails the layer.
    if (!failed_) {
      try {
        Hash(c.files, c.bytes);
      } catch (...) {
        failed_ = std::current_exception();
      }
    }
    c.files.clear();
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.size() < kMaxQueued) free_.push_back(std::move(c));
  }
}

void StreamHasher::Hash(std::vector<File>& added, std::span<const uint8_t> bytes) {
  for (File& f : added) files_.push_back(std::move(f));
  added.clear();
  const uint64_t end = out_pos_ + bytes.size();
  auto piece = [&](uint64_t lo, uint64_t hi) {
    return bytes.subspan(static_cast<size_t>(lo - out_pos_), static_cast<size_t>(hi - lo));
  };
  uint64_t diff_next = out_pos_;  // the DiffID lane has taken the bytes before this
  while (!files_.empty()) {
    File& f = files_.front();
    if (!file_started_) {
      if (!f.prefix.empty()) hash_.Update(kFileLane, std::span<const uint8_t>(
                                                          reinterpret_cast<const uint8_t*>(f.prefix.data()), f.prefix.size()));
      file_next_ = f.start;
      file_started_ = true;
    }
    const uint64_t lo = std::max(file_next_, out_pos_), hi = std::min(f.end, end);
    if (lo < hi) {
      if (lo < diff_next) {  // never from the tar reader (its files do not overlap); kept correct anyway
        hash_.Update(kFileLane, piece(lo, hi));
      } else {
        if (diff_next < lo) hash_.Update(kDiffLane, piece(diff_next, lo));
        hash_.UpdateBoth(piece(lo, hi));
        diff_next = hi;
      }
      file_next_ = hi;
    }
    if (file_next_ < f.end) break;  // continues in the next chunk
    file_digests_.push_back(FileDigest{f.start, hash_.Finish(kFileLane)});
    files_.pop_front();
    file_started_ = false;
  }
  if (diff_next < end) hash_.Update(kDiffLane, piece(diff_next, end));
  out_pos_ = end;
}

StreamHasher::Digests StreamHasher::Finish() {
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    changed_.notify_all();
    thread_.join();
    if (failed_) std::rethrow_exception(failed_);
  }
  // Files announced after the last chunk (empty files at the end of the stream).
  Hash(new_files_, {});
  Digests d;
  d.diff_id = "sha256:" + ToHex(hash_.Finish(kDiffLane));
  d.all_files_complete = files_.empty();
  d.file_digests = std::move(file_digests_);
  return d;
}

}  // namespace lazyroot
