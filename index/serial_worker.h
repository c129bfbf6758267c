// SerialWorker: runs posted tasks in order on one thread of its own, so a
// producer can hand work off its critical path (the pull's layer thread,
// which inflates and parses) without reordering it. At most max_queued
// tasks wait; Post blocks beyond that, so memory stays bounded. If the
// thread cannot be started (EAGAIN, out of memory), tasks run inline in
// Post: slower, never an error. One producer.
//
// Every handoff of the pull runs on it (LayerIndexWriter's deflate,
// BlobHasher, StreamHasher, src/pull/threaded_consumer.h), with:
//  - a start rule: a thread pays for itself only on a long stream, and only
//    while a core is free for it, so the owner counts its bytes through
//    Offload and works inline until the rule starts the thread;
//  - a task's exception kept (it must not leave the thread: std::terminate)
//    and rethrown by Wait/Join on the producer, as inline work would have
//    thrown it; the tasks after it are dropped;
//  - RecyclePool and ByteBatcher: batches of bytes in buffers that go back
//    and forth instead of being allocated per handoff.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <span>
#include <thread>
#include <utility>
#include <vector>

namespace lazyroot {

class SerialWorker {
 public:
  // When a lazily started worker's thread starts: once the bytes counted by
  // Offload are past threshold and may_start (if set; asked at each Offload
  // from then on until it says yes) agrees.
  struct StartRule {
    uint64_t threshold = 0;
    std::function<bool()> may_start;
  };

  explicit SerialWorker(size_t max_queued = 4);  // the thread starts now
  SerialWorker(size_t max_queued, StartRule rule);  // the thread starts in Offload
  ~SerialWorker();  // drops the tasks not yet started, lets the running one finish
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;

  // Counts n more bytes of the owner's stream. True: post them (the thread
  // runs, started now if the rule just allowed it); false: do them inline.
  bool Offload(uint64_t n);
  bool threaded() const { return thread_.joinable(); }

  // With no thread the task runs here, and what it throws propagates.
  void Post(std::function<void()> task);
  // Returns once every posted task has run; what they wrote is then visible
  // here. Rethrows the first exception a task threw on the thread.
  void Wait();
  // Wait, then ends the thread (later Posts run inline).
  void Join();

 private:
  void Run();

  const size_t max_queued_;
  const StartRule rule_;
  uint64_t seen_ = 0;       // producer's: bytes counted by Offload
  bool no_thread_ = false;  // producer's: the thread could not be started
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  bool busy_ = false;                        // guarded by mu_: a task is running
  bool stop_ = false;                        // guarded by mu_
  std::exception_ptr failed_;                // guarded by mu_: the first task's exception
};

// Buffers handed back by the worker for the producer's next batch. Give
// never allocates (it runs on the worker, which must not throw): it keeps
// at most `keep` and frees the rest.
template <class T>
class RecyclePool {
 public:
  explicit RecyclePool(size_t keep) : keep_(keep) { free_.reserve(keep); }
  T Take() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) return T();
    T t = std::move(free_.back());
    free_.pop_back();
    return t;
  }
  void Give(T t) {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.size() < keep_) free_.push_back(std::move(t));
  }

 private:
  const size_t keep_;
  std::mutex mu_;
  std::vector<T> free_;  // guarded by mu_
};

// Copies a byte stream into batch_bytes buffers and posts each full one to
// `worker`, where `consume` sees the bytes in order (a handoff per network
// read costs more than it saves). Declare it before the worker: the
// worker's tasks use it until the worker is destroyed. One producer.
class ByteBatcher {
 public:
  ByteBatcher(SerialWorker* worker, size_t batch_bytes, size_t keep,
              std::function<void(std::span<const uint8_t>)> consume)
      : worker_(worker), batch_bytes_(batch_bytes), pool_(keep), consume_(std::move(consume)) {}
  void Add(std::span<const uint8_t> bytes);
  void Flush();  // posts the partial batch

 private:
  SerialWorker* const worker_;
  const size_t batch_bytes_;
  RecyclePool<std::vector<uint8_t>> pool_;
  const std::function<void(std::span<const uint8_t>)> consume_;
  std::vector<uint8_t> batch_;
};

}  // namespace lazyroot
