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

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "index/chunk_digests.h"
#include "index/serial_worker.h"

namespace lazyroot {

class BlobHasher {
 public:
  // threshold: bytes hashed inline before the thread may start; past it,
  // may_start (if set) is asked at each Update until it says yes.
  explicit BlobHasher(uint64_t threshold = kDefaultThreshold, std::function<bool()> may_start = nullptr);
  ~BlobHasher() = default;  // an unfinished hash is abandoned
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
  ChunkHasher hasher_;  // the producer's until the thread starts, then the thread's until joined
  ByteBatcher batches_;
  SerialWorker worker_;  // declared last: its tasks use the rest
};

}  // namespace lazyroot
