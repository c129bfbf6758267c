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

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>

#include "index/serial_worker.h"
#include "src/pull/layer_consumer.h"

namespace lazyroot {

class ThreadedConsumer final : public LayerConsumer {
 public:
  // threshold: bytes consumed inline before the thread may start; past it,
  // may_start (if set) is asked at each Consume until it says yes.
  ThreadedConsumer(std::unique_ptr<LayerConsumer> inner, uint64_t threshold = kDefaultThreshold,
                   std::function<bool()> may_start = nullptr);
  ~ThreadedConsumer() override = default;  // what is queued is abandoned
  ThreadedConsumer(const ThreadedConsumer&) = delete;
  ThreadedConsumer& operator=(const ThreadedConsumer&) = delete;

  Status Consume(std::span<const uint8_t> bytes) override;
  // Waits for the thread, then finishes the inner consumer on this one.
  Status Finish(ChunkDigests chunks) override;

  // Whether the thread was started (for tests).
  bool threaded() const { return worker_.threaded(); }

  static constexpr uint64_t kDefaultThreshold = 8 << 20;
  static constexpr size_t kBatchBytes = 1 << 20;
  static constexpr size_t kMaxQueued = 4;

 private:
  void ConsumeOnThread(std::span<const uint8_t> bytes);
  Status ThreadStatus();  // the thread's first error so far

  std::unique_ptr<LayerConsumer> inner_;  // the producer's until the thread starts, then the thread's until joined
  std::mutex mu_;
  Status failed_;  // guarded by mu_: the inner consumer's first error on the thread
  ByteBatcher batches_;
  SerialWorker worker_;  // declared last: its tasks use the rest
};

}  // namespace lazyroot
