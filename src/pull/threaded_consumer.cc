#include "src/pull/threaded_consumer.h"

#include <utility>

#include "index/exception_status.h"

namespace lazyroot {

ThreadedConsumer::ThreadedConsumer(std::unique_ptr<LayerConsumer> inner, uint64_t threshold,
                                   std::function<bool()> may_start)
    : inner_(std::move(inner)),
      batches_(&worker_, kBatchBytes, kMaxQueued, [this](std::span<const uint8_t> b) { ConsumeOnThread(b); }),
      worker_(kMaxQueued, SerialWorker::StartRule{threshold, std::move(may_start)}) {}

Status ThreadedConsumer::ThreadStatus() {
  std::lock_guard<std::mutex> lock(mu_);
  return failed_;
}

Status ThreadedConsumer::Consume(std::span<const uint8_t> bytes) {
  if (!worker_.Offload(bytes.size())) return inner_->Consume(bytes);
  batches_.Add(bytes);
  return ThreadStatus();
}

void ThreadedConsumer::ConsumeOnThread(std::span<const uint8_t> bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!failed_.ok()) return;  // the bytes after an error are dropped
  }
  // Out of memory in the indexer fails the layer, as it does inline.
  Status st;
  try {
    st = inner_->Consume(bytes);
  } catch (...) {
    st = CurrentExceptionStatus("");
  }
  if (!st.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    failed_ = std::move(st);
  }
}

Status ThreadedConsumer::Finish(ChunkDigests chunks) {
  if (worker_.threaded()) {
    batches_.Flush();
    worker_.Join();
    LAZYROOT_RETURN_IF_ERROR(failed_);  // joined: ours now
  }
  return inner_->Finish(std::move(chunks));
}

}  // namespace lazyroot
