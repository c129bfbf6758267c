// BlobHasher: a ChunkHasher (a blob's digest and its chunk table in one
// interleaved pass) run on a thread of its own once the blob is long enough
// to pay for one and a core is free for it (the caller says; the pull keeps
// it inline when the layer's indexer gets that thread instead,
// src/pull/threaded_consumer.h). On the pull's
// layer thread it competes with the inflate, and that thread is the critical
// path of an image whose one big layer runs alone (debootstrap's: 93 of
// 105 MB); while every core has a layer of its own, a thread would only add
// its copies and handoffs (measured: 3-9 % more CPU). Bytes are batched into 1 MiB buffers
// before the handoff (a handoff per 16 KiB network write costs more than it
// saves), and at most kMaxQueued buffers are in flight: memory does not grow
// with the blob. Not thread-safe: one producer.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "index/chunk_digests.h"

namespace lazyroot {

class BlobHasher {
 public:
  // threshold: bytes hashed inline before the thread may start; past it,
  // may_start (if set) is asked at each Update until it says yes.
  explicit BlobHasher(uint64_t threshold = kDefaultThreshold, std::function<bool()> may_start = nullptr);
  ~BlobHasher();  // an unfinished hash is abandoned
  BlobHasher(const BlobHasher&) = delete;
  BlobHasher& operator=(const BlobHasher&) = delete;

  // The blob's next bytes, in any chunking.
  void Update(std::span<const uint8_t> bytes);

  struct Digests {
    std::string digest;  // "sha256:<hex>"
    ChunkDigests chunks;
  };
  // Waits for the thread; call once. Rethrows what the thread's hashing
  // threw (std::bad_alloc), as the inline hashing would have.
  Digests Finish();

  static constexpr uint64_t kDefaultThreshold = 8 << 20;
  static constexpr size_t kBatchBytes = 1 << 20;
  static constexpr size_t kMaxQueued = 4;

 private:
  void HandOver();  // the batch to the thread
  void Run();

  const uint64_t threshold_;
  const std::function<bool()> may_start_;
  uint64_t seen_ = 0;
  bool no_thread_ = false;      // the thread could not be started: inline for good
  std::vector<uint8_t> batch_;  // producer side
  ChunkHasher hasher_;          // the producer's until the thread starts, then the thread's
  std::exception_ptr failed_;   // the thread's: what its hashing threw (read after join)

  std::thread thread_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<std::vector<uint8_t>> queue_;  // guarded by mu_
  std::vector<std::vector<uint8_t>> free_;  // guarded by mu_: buffers to reuse
  bool done_ = false;                       // guarded by mu_
};

}  // namespace lazyroot
