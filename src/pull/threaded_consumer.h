// ThreadedConsumer: a layer's consumer (the indexer: inflate, tar parser,
// checkpoints) moved off the thread that downloads the layer, once the
// layer is long enough to pay for it and a core is free for it (the caller
// says). The downloading thread then only receives, writes and hashes the
// compressed bytes; on a layer that runs alone at the end of a pull (the
// debootstrap image's 93 of 105 MB) that thread's socket and file writes
// were a quarter of the critical path's CPU, on the same thread as the
// inflate. Bytes are copied into 1 MiB batches (a handoff per network read
// costs more than it saves) and at most kMaxQueued batches wait: memory
// stays bounded, a slow indexer slows the download as before.
//
// The inner consumer sees the same bytes in the same order, whichever
// thread runs it, so what it builds is the same. Its first error (or what
// it throws: out of memory on a hostile layer, as a Status) is returned by
// a later Consume and by Finish; the bytes after it are dropped, as the
// pull drops them after an inline error. Not thread-safe: one producer.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "src/pull/layer_consumer.h"

namespace lazyroot {

class ThreadedConsumer final : public LayerConsumer {
 public:
  // threshold: bytes consumed inline before the thread may start; past it,
  // may_start (if set) is asked at each Consume until it says yes.
  ThreadedConsumer(std::unique_ptr<LayerConsumer> inner, uint64_t threshold = kDefaultThreshold,
                   std::function<bool()> may_start = nullptr);
  ~ThreadedConsumer() override;  // what is queued is abandoned
  ThreadedConsumer(const ThreadedConsumer&) = delete;
  ThreadedConsumer& operator=(const ThreadedConsumer&) = delete;

  Status Consume(std::span<const uint8_t> bytes) override;
  // Waits for the thread, then finishes the inner consumer on this one.
  Status Finish(ChunkDigests chunks) override;

  // Whether the thread was started (for tests).
  bool threaded() const { return thread_.joinable(); }

  static constexpr uint64_t kDefaultThreshold = 8 << 20;
  static constexpr size_t kBatchBytes = 1 << 20;
  static constexpr size_t kMaxQueued = 4;

 private:
  void HandOver();  // the batch to the thread
  void Run();
  Status ThreadStatus();  // the thread's first error so far

  std::unique_ptr<LayerConsumer> inner_;  // the producer's until the thread starts, then the thread's until joined
  const uint64_t threshold_;
  std::function<bool()> may_start_;
  uint64_t seen_ = 0;
  bool no_thread_ = false;  // the thread could not be started: inline for good
  std::vector<uint8_t> batch_;

  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<std::vector<uint8_t>> queue_;  // guarded by mu_
  std::vector<std::vector<uint8_t>> free_;  // guarded by mu_: buffers to reuse
  Status failed_;                           // guarded by mu_: the inner consumer's first error on the thread
  bool done_ = false;                       // guarded by mu_
  std::thread thread_;                      // declared last: started after the rest exists
};

}  // namespace lazyroot
