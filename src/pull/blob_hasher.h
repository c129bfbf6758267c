// BlobHasher: the SHA-256 of a blob's bytes as they download, on a thread of
// its own once the blob is long enough to pay for one (shorter blobs are
// hashed inline). A layer's download thread also inflates and parses it, and
// was the longer of its two threads (the other hashes the uncompressed
// stream): a single-layer image, or the last layer of a pull, waited for it.
// Chunks are copied into a bounded queue (kMaxQueued in flight, so memory does
// not grow with the blob). One producer; not thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "index/sha256.h"

namespace lazyroot {

class BlobHasher {
 public:
  explicit BlobHasher(uint64_t threshold = kDefaultThreshold) : threshold_(threshold) {}
  ~BlobHasher();
  BlobHasher(const BlobHasher&) = delete;
  BlobHasher& operator=(const BlobHasher&) = delete;

  // The blob's next bytes.
  void Update(std::span<const uint8_t> bytes);
  // Waits for the thread; the digest's 64 hex digits. Call once.
  std::string FinishHex();

  static constexpr uint64_t kDefaultThreshold = 4 << 20;
  static constexpr size_t kMaxQueued = 8;
  // Small pieces (curl hands over up to 256 KiB) are gathered to this size
  // before they are queued: one hand-over per MiB, not per piece.
  static constexpr size_t kBatch = 1 << 20;

 private:
  void Flush();
  void Run();

  const uint64_t threshold_;
  uint64_t seen_ = 0;
  Sha256 hash_;                  // the producer's until the thread starts, then the thread's
  std::vector<uint8_t> pending_;  // producer side: not yet queued
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<std::vector<uint8_t>> queue_;  // guarded by mu_
  std::vector<std::vector<uint8_t>> free_;  // guarded by mu_: buffers to reuse
  bool done_ = false;                       // guarded by mu_
};

}  // namespace lazyroot
