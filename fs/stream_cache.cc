#include "fs/stream_cache.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

namespace lazyroot {

struct StreamCache::Flight {
  bool done = false;
  Status status;
  std::shared_ptr<const Span> span;
  std::condition_variable cv;  // waits under StreamCache::mu_
};

struct StreamCache::LayerState {
  std::mutex mu;
  std::vector<std::unique_ptr<RandomReader>> idle;  // oldest first
  // Ends of the units most recently accessed in the foreground: an access
  // starting at one of them continues a sequential run. A few slots, so that
  // a handful of interleaved sequential readers of one layer each keep theirs.
  std::array<uint64_t, 8> recent_ends;
  size_t next_slot = 0;
  LayerState() { recent_ends.fill(RandomReader::kNoPosition); }
};

StreamCache::StreamCache(std::shared_ptr<const ImageContent> content, StreamCacheOptions options)
    : content_(std::move(content)), options_(options), cache_(options.capacity_bytes) {
  layers_.reserve(content_->layer_count());
  for (size_t i = 0; i < content_->layer_count(); ++i) layers_.push_back(std::make_unique<LayerState>());
  for (unsigned i = 0; i < options_.prefetch_workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

StreamCache::~StreamCache() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

StreamCache::Unit StreamCache::UnitAt(uint32_t layer, uint64_t offset) const {
  const CheckpointTable& t = *content_->layer(layer).checkpoints;
  const size_t i = t.FindPoint(offset);
  const uint64_t s = t.points[i].out_offset;
  const uint64_t e = i + 1 < t.points.size() ? t.points[i + 1].out_offset : t.uncompressed_size;
  if (e - s <= options_.max_unit_bytes || options_.unit_bytes == 0) return Unit{s, e, true};
  const uint64_t k = (offset - s) / options_.unit_bytes;
  const uint64_t us = s + k * options_.unit_bytes;
  return Unit{us, std::min(us + options_.unit_bytes, e), k == 0};
}

Status StreamCache::Read(uint32_t layer, uint64_t offset, std::span<uint8_t> out, size_t* n) {
  *n = 0;
  const CheckpointTable& t = *content_->layer(layer).checkpoints;
  if (t.compression == Compression::kNone || t.points.empty()) {
    // Plain tar (or an empty stream): the blob is the stream.
    return content_->NewReader(layer)->Read(offset, out, n);
  }
  while (*n < out.size() && offset < t.uncompressed_size) {
    const Unit u = UnitAt(layer, offset);
    const bool sequential = NoteAccess(layer, u);
    if (sequential) ScheduleReadAhead(layer, u);
    LAZYROOT_ASSIGN_OR_RETURN(std::shared_ptr<const Span> span, GetUnit(layer, u, false));
    // Blocks inside a long span can only be read ahead by the decoder that
    // just finished the one before: offer them again now that it is idle.
    if (sequential && !u.at_checkpoint) ScheduleReadAhead(layer, u);
    const uint64_t within = offset - u.start;
    if (within >= span->size()) break;
    const size_t take = static_cast<size_t>(std::min<uint64_t>(span->size() - within, out.size() - *n));
    std::memcpy(out.data() + *n, span->data() + within, take);
    *n += take;
    offset += take;
  }
  return Status::Ok();
}

bool StreamCache::NoteAccess(uint32_t layer, const Unit& unit) {
  LayerState& ls = *layers_[layer];
  std::lock_guard lock(ls.mu);
  auto& ends = ls.recent_ends;
  if (std::find(ends.begin(), ends.end(), unit.end) != ends.end()) return false;  // same unit again
  auto prev = std::find(ends.begin(), ends.end(), unit.start);
  const bool sequential = prev != ends.end();
  if (sequential) {
    *prev = unit.end;  // the run moves on; its slot follows it
  } else {
    ends[ls.next_slot] = unit.end;
    ls.next_slot = (ls.next_slot + 1) % ends.size();
  }
  return sequential;
}

void StreamCache::ScheduleReadAhead(uint32_t layer, const Unit& unit) {
  if (workers_.empty() || options_.capacity_bytes == 0) return;
  const uint64_t size = content_->layer(layer).checkpoints->uncompressed_size;
  Unit u = unit;
  bool queued = false;
  for (unsigned i = 0; i < options_.prefetch_units && u.end < size; ++i) {
    u = UnitAt(layer, u.end);
    if (cache_.Contains(layer, u.start)) continue;
    std::lock_guard lock(mu_);
    if (flights_.count({layer, u.start})) continue;
    auto same = [&](const std::pair<uint32_t, Unit>& j) { return j.first == layer && j.second.start == u.start; };
    if (std::find_if(jobs_.begin(), jobs_.end(), same) != jobs_.end()) continue;
    // A bounded queue: stale read-ahead for a reader that moved on is dropped first.
    if (jobs_.size() >= 64) jobs_.pop_front();
    jobs_.emplace_back(layer, u);
    queued = true;
  }
  if (queued) work_cv_.notify_all();
}

void StreamCache::WorkerLoop() {
  for (;;) {
    std::pair<uint32_t, Unit> job;
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
      if (stop_) return;
      job = jobs_.front();
      jobs_.pop_front();
    }
    // A read-ahead failure is not reported here: the reader that needs the
    // unit decodes it again and reports its own error.
    (void)GetUnit(job.first, job.second, true);
  }
}

Result<std::shared_ptr<const Span>> StreamCache::GetUnit(uint32_t layer, const Unit& unit, bool prefetch) {
  if (!prefetch) {
    if (std::shared_ptr<const Span> hit = cache_.Get(layer, unit.start)) return hit;
  }
  const Key key{layer, unit.start};
  std::shared_ptr<Flight> flight;
  {
    std::unique_lock lock(mu_);
    if (auto it = flights_.find(key); it != flights_.end()) {
      if (prefetch) return std::shared_ptr<const Span>();
      std::shared_ptr<Flight> f = it->second;
      ++counters_.waited;
      f->cv.wait(lock, [&] { return f->done; });
      if (!f->status.ok()) return f->status;
      return f->span;
    }
    // A decode may have finished between the lookup above and this lock (it
    // publishes to the cache before leaving flights_).
    if (cache_.Contains(layer, unit.start)) {
      if (prefetch) return std::shared_ptr<const Span>();
      lock.unlock();
      if (std::shared_ptr<const Span> hit = cache_.Get(layer, unit.start)) return hit;
      lock.lock();
    }
    flight = std::make_shared<Flight>();
    flights_.emplace(key, flight);
  }
  std::shared_ptr<const Span> span;
  bool skipped = false;
  Status st = Decode(layer, unit, prefetch, &span, &skipped);
  {
    std::lock_guard lock(mu_);
    flight->done = true;
    flight->status = st;
    flight->span = span;
    flights_.erase(key);
  }
  flight->cv.notify_all();
  if (!st.ok()) return st;
  return span;
}

Status StreamCache::Decode(uint32_t layer, const Unit& unit, bool prefetch, std::shared_ptr<const Span>* out,
                           bool* skipped) {
  // Read-ahead of a block inside a long span only pays with a decoder already
  // there; a cold one would decode the span from its start (for a single-frame
  // zstd layer: from the start of the blob).
  std::unique_ptr<RandomReader> d = TakeDecoder(layer, unit.start, prefetch && !unit.at_checkpoint);
  if (!d) {
    *skipped = true;
    return Status::Ok();
  }
  const uint64_t reprimes_before = d->reprimes();
  auto span = std::make_shared<Span>();
  span->resize(static_cast<size_t>(unit.end - unit.start));  // default-initialised: no memset
  size_t got = 0;
  Status st = d->Read(unit.start, *span, &got);
  if (st.ok() && got != span->size()) {
    st = Status::Corruption("layer " + content_->layer(layer).digest + ": stream ends at offset " +
                            std::to_string(unit.start + got) + ", inside the indexed size");
  }
  {
    std::lock_guard lock(mu_);
    counters_.reprimes += d->reprimes() - reprimes_before;
    if (st.ok()) {
      ++counters_.decoded_units;
      if (prefetch) ++counters_.prefetched_units;
    }
  }
  if (!st.ok()) return st;  // the decoder may be mid-stream in a bad state: dropped
  ReturnDecoder(layer, std::move(d));
  cache_.Put(layer, unit.start, span);
  *out = std::move(span);
  return Status::Ok();
}

std::unique_ptr<RandomReader> StreamCache::TakeDecoder(uint32_t layer, uint64_t start, bool need_warm) {
  LayerState& ls = *layers_[layer];
  {
    std::lock_guard lock(ls.mu);
    auto& idle = ls.idle;
    // Best: the decoder standing exactly at start. Next: the nearest one
    // before it (it continues unless a checkpoint lies in between, in which
    // case it re-primes: never worse than a cold one). Else any idle one.
    auto best = idle.end();
    for (auto it = idle.begin(); it != idle.end(); ++it) {
      const uint64_t p = (*it)->position();
      if (p == start) {
        best = it;
        break;
      }
      if (need_warm || p == RandomReader::kNoPosition || p > start) continue;
      if (best == idle.end() || (*best)->position() == RandomReader::kNoPosition || p > (*best)->position()) best = it;
    }
    if (best == idle.end() && !need_warm && !idle.empty()) best = idle.end() - 1;
    if (best != idle.end()) {
      std::unique_ptr<RandomReader> d = std::move(*best);
      idle.erase(best);
      return d;
    }
  }
  if (need_warm) return nullptr;
  return content_->NewReader(layer);
}

void StreamCache::ReturnDecoder(uint32_t layer, std::unique_ptr<RandomReader> d) {
  LayerState& ls = *layers_[layer];
  std::unique_ptr<RandomReader> dropped;  // destroyed outside the lock
  std::lock_guard lock(ls.mu);
  ls.idle.push_back(std::move(d));
  if (ls.idle.size() > std::max(1u, options_.idle_decoders_per_layer)) {
    dropped = std::move(ls.idle.front());
    ls.idle.erase(ls.idle.begin());
  }
}

StreamCacheStats StreamCache::stats() const {
  StreamCacheStats s;
  {
    std::lock_guard lock(mu_);
    s = counters_;
  }
  s.cache = cache_.stats();
  return s;
}

}  // namespace lazyroot
