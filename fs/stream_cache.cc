#include "fs/stream_cache.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <exception>
#include <system_error>
#include <utility>

#include "index/exception_status.h"

namespace lazyroot {
namespace {

// A random read's fine piece is decoded to the end of the read, rounded up
// to this (a page): every byte past it is inflate (text) and verified blob
// (stored data) that no one asked for. (32 KiB past: the bench's text reads
// inflated 282 KB each, random-data reads 41 KB and 102 KB of blob; to the
// page: 230 KB, 28 KB and 94 KB.)
constexpr uint64_t kFinePieceChunk = 4 << 10;
constexpr size_t kOnePage = 4096;

}  // namespace

struct StreamCache::Flight {
  bool prefetch = false;  // a read-ahead job's: a reader retries its failure itself
  bool done = false;
  Status status;
  std::shared_ptr<const Span> span;
  std::condition_variable cv;  // waits under StreamCache::mu_
};

struct StreamCache::IdleDecoder {
  uint32_t layer = 0;
  uint64_t bytes = 0;  // memory_bytes() when it was returned
  bool large = false;  // over idle_decoder_bytes on its own: kept outside the bound, one at most
  std::unique_ptr<RandomReader> reader;
};

struct StreamCache::Lease {
  std::unique_ptr<RandomReader> d;
  uint64_t charge = 0;  // bytes charged against decoder_bytes for it
};

// Frees (and uncounts) a decoder taken from the pool that was not returned
// to it, on every way out, exceptions included.
struct StreamCache::DecoderGuard {
  StreamCache* cache;
  Lease& lease;
  DecoderGuard(StreamCache* c, Lease& l) : cache(c), lease(l) {}
  ~DecoderGuard() {
    if (lease.d) cache->DropDecoder(std::move(lease));
  }
  DecoderGuard(const DecoderGuard&) = delete;
  DecoderGuard& operator=(const DecoderGuard&) = delete;
};

struct StreamCache::LayerState {
  std::mutex mu;
  // Where the most recent foreground reads ended, and the ends of the units
  // they were in: a read just after one of them (or at the start of the next
  // unit) continues a sequential run. A few slots, so that a handful of
  // interleaved sequential readers of one layer each keep theirs.
  std::array<uint64_t, 8> read_ends, unit_ends;
  size_t next_read = 0, next_unit = 0;
  // A frame over window_limit_bytes was met: decoders get the pull's limit.
  std::atomic<bool> large_windows{false};
  // With fine points in the table (inside large files): where units start,
  // the other points. Empty: every point starts a unit. Set (under mu) before
  // ready is; read without the lock after ready (acquire).
  std::vector<uint64_t> unit_starts;
  // The layer is loaded (ImageContent::Load) and unit_starts is set.
  std::atomic<bool> ready{false};
  LayerState() {
    read_ends.fill(RandomReader::kNoPosition);
    unit_ends.fill(RandomReader::kNoPosition);
  }
};

StreamCache::StreamCache(std::shared_ptr<const ImageContent> content, StreamCacheOptions options)
    : content_(std::move(content)), options_(options), cache_(options.capacity_bytes) {
  layers_.reserve(content_->layer_count());
  for (size_t i = 0; i < content_->layer_count(); ++i) {
    layers_.push_back(std::make_unique<LayerState>());
    // A layer the content holds loaded is ready now; one it loads lazily at
    // its first read (or when the warm-up thread below gets to it).
    if (content_->layer(static_cast<uint32_t>(i)).checkpoints) {
      (void)PrepareLayer(static_cast<uint32_t>(i));
    }
  }
  idle_per_layer_.assign(content_->layer_count(), 0);
  for (unsigned i = 0; i < options_.prefetch_workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

void StreamCache::StartWarmUp() {
  std::lock_guard lock(mu_);
  if (warmer_.joinable() || stop_) return;
  bool lazy = false;
  for (const auto& ls : layers_) lazy = lazy || !ls->ready.load(std::memory_order_acquire);
  if (!lazy) return;
  // In layer order, so that the first read of each rarely waits for its
  // table. A failure is kept by the content and reported to that layer's
  // readers. Out of memory: the layer's first reader tries again.
  try {
    warmer_ = std::thread([this] {
      for (uint32_t i = 0; i < layers_.size(); ++i) {
        {
          std::lock_guard stopping(mu_);
          if (stop_) return;
        }
        try {
          (void)PrepareLayer(i);
        } catch (...) {
        }
      }
    });
  } catch (const std::system_error&) {
    // No thread to be had: each layer loads at its first read.
  }
}

StreamCache::~StreamCache() {
  cancel_loads_.store(true, std::memory_order_relaxed);
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
  if (warmer_.joinable()) warmer_.join();
}

Status StreamCache::PrepareLayer(uint32_t layer) {
  LayerState& ls = *layers_[layer];
  if (ls.ready.load(std::memory_order_acquire)) return Status::Ok();
  LAZYROOT_RETURN_IF_ERROR(content_->Load(layer, &cancel_loads_));
  std::lock_guard lock(ls.mu);
  if (ls.ready.load(std::memory_order_relaxed)) return Status::Ok();
  const CheckpointTable& t = *content_->layer(layer).checkpoints;
  if (std::any_of(t.points.begin(), t.points.end(), [](const Checkpoint& p) { return p.fine; })) {
    for (const Checkpoint& p : t.points) {
      if (!p.fine) ls.unit_starts.push_back(p.out_offset);
    }
  }
  ls.ready.store(true, std::memory_order_release);
  return Status::Ok();
}

StreamCache::Unit StreamCache::UnitAt(uint32_t layer, uint64_t offset) const {
  const CheckpointTable& t = *content_->layer(layer).checkpoints;
  uint64_t s = 0, e = 0;
  if (const std::vector<uint64_t>& starts = layers_[layer]->unit_starts; !starts.empty()) {
    // Fine points do not cut units: sequential readers keep whole spans.
    auto it = std::upper_bound(starts.begin(), starts.end(), offset);
    s = it == starts.begin() ? 0 : *std::prev(it);
    e = it == starts.end() ? t.uncompressed_size : *it;
  } else {
    const size_t i = t.FindPoint(offset);
    s = t.points[i].out_offset;
    e = i + 1 < t.points.size() ? t.points[i + 1].out_offset : t.uncompressed_size;
  }
  if (e - s <= options_.max_unit_bytes || options_.unit_bytes == 0) return Unit{s, e, true};
  const uint64_t k = (offset - s) / options_.unit_bytes;
  const uint64_t us = s + k * options_.unit_bytes;
  return Unit{us, std::min(us + options_.unit_bytes, e), k == 0};
}

Status StreamCache::Read(uint32_t layer, uint64_t offset, std::span<uint8_t> out, size_t* n) {
  *n = 0;
  LAZYROOT_RETURN_IF_ERROR(PrepareLayer(layer));
  const CheckpointTable& t = *content_->layer(layer).checkpoints;
  if (t.compression == Compression::kNone || t.points.empty()) {
    // Plain tar (or an empty stream): the blob is the stream.
    return content_->NewReader(layer)->Read(offset, out, n);
  }
  if (options_.capacity_bytes == 0) {
    // Nothing is cached: a read inside the stored blocks after a point is a
    // read of the blob (see below); else decode straight into the caller's
    // buffer with the pooled decoder nearest before offset (a sequential
    // reader's own).
    const Checkpoint& p = t.points[t.FindPoint(offset)];
    const uint64_t end = std::min<uint64_t>(offset + out.size(), t.uncompressed_size);
    if (!p.stored_blocks.empty() && offset < end && end <= p.out_offset + p.StoredBytes()) {
      LAZYROOT_RETURN_IF_ERROR(ReadStored(layer, p, offset, out.first(static_cast<size_t>(end - offset))));
      *n = static_cast<size_t>(end - offset);
      return Status::Ok();
    }
    Lease lease = TakeDecoder(layer, offset, false);
    DecoderGuard guard(this, lease);
    bool skipped = false;
    uint64_t reprimes = 0;
    Status st = ChargedRead(layer, lease, offset, out, n, true, &skipped, &reprimes);
    {
      std::lock_guard lock(mu_);
      counters_.reprimes += reprimes;
      counters_.decoded_bytes += *n;
    }
    if (st.ok()) ReturnDecoder(layer, std::move(lease));  // else the guard frees it
    return st;
  }
  // A read that crosses into another unit or fine piece keeps the verdict of
  // its first piece: its own first piece's end would otherwise make the rest
  // look like a sequential reader's next read (a random 4 KiB read across a
  // fine point then decoded the whole 2 MiB unit after it, and read ahead).
  bool first = true, sequential = false, near = false;
  while (*n < out.size() && offset < t.uncompressed_size) {
    Unit u = UnitAt(layer, offset);
    uint64_t want_end = std::min(u.end, offset + (out.size() - *n));
    // The access point at or before offset, and the piece up to the next
    // one: [ps, pe), a fine piece when narrower than the unit (a large
    // file's data).
    const size_t i = t.FindPoint(offset);
    const uint64_t ps = t.points[i].out_offset;
    const uint64_t pe = i + 1 < t.points.size() ? t.points[i + 1].out_offset : t.uncompressed_size;
    const bool in_fine = !layers_[layer]->unit_starts.empty() && (ps > u.start || pe < u.end);
    bool near_here = false;
    const bool sequential_here = NoteAccess(layer, u, offset, want_end, in_fine, &near_here);
    if (first) {
      sequential = sequential_here;
      // A request of one page is not the kernel's read-ahead (which asks for
      // more): near a recent read or not, it is a random read. (In the
      // bench's 2,000 random 4 KiB reads, 4 % landed within 2 MiB of one of
      // the last 8 and decoded a unit prefix, ~1 MiB each, instead of a
      // fine piece.)
      near = near_here && out.size() > kOnePage;
      first = false;
    }
    if (sequential) ScheduleReadAhead(layer, u);
    if (!sequential && !near) {
      // Inside the stored deflate blocks after a point (policy 3 tables
      // record them): the stream's bytes are the blob's, read (and verified)
      // as they are, with no decoder, window or span. A read past their end
      // is served to there when the next point starts at that end (the rest
      // goes on from it), else not at all: it would decode them again.
      const Checkpoint& p = t.points[i];
      const uint64_t stored_end = ps + p.StoredBytes();
      if (!p.stored_blocks.empty() && offset < stored_end && (want_end <= stored_end || pe == stored_end)) {
        const uint64_t to = std::min(want_end, stored_end);
        LAZYROOT_RETURN_IF_ERROR(ReadStored(layer, p, offset, out.subspan(*n, static_cast<size_t>(to - offset))));
        *n += static_cast<size_t>(to - offset);
        offset = to;
        continue;
      }
    }
    bool fine_piece = false;
    // Not for a read near a recent one: the kernel's read-ahead requests of
    // a sequential reader can arrive out of order, and their unit prefix is
    // what the reader's decoder continues.
    if (!sequential && !near && in_fine) {
      // A random read inside a large file decodes from the fine point at or
      // before it, as its own piece, unless the unit's decoded prefix
      // already holds it.
      std::shared_ptr<const Span> have = cache_.Peek(layer, u.start);
      if (!have || have->size() < want_end - u.start) {
        u = Unit{ps, pe, true};
        want_end = std::min(u.end, want_end);
        fine_piece = true;
      }
    }
    // A reader moving through the layer gets whole units; a random one only
    // the unit's prefix up to what it asked for (rounded up), which halves
    // the inflate of a cold random read on average. A later read further in
    // extends the prefix, usually with the decoder that stopped there.
    uint64_t decode_to = u.end - u.start;
    if (!sequential) {
      // A fine piece only to the end of the read: the next fine point is
      // near, and a later read further in extends the piece.
      const uint64_t chunk = fine_piece ? kFinePieceChunk : std::max<uint64_t>(options_.random_chunk_bytes, 1);
      decode_to = std::min(decode_to, (want_end - u.start + chunk - 1) / chunk * chunk);
    }
    LAZYROOT_ASSIGN_OR_RETURN(std::shared_ptr<const Span> span,
                              GetUnit(layer, u, decode_to, want_end - u.start, false));
    // Blocks inside a long span can only be read ahead by the decoder that
    // just finished the one before: offer them again now that it is idle.
    if (sequential && u.end < t.uncompressed_size && !UnitAt(layer, u.end).at_checkpoint) {
      ScheduleReadAhead(layer, u);
    }
    const uint64_t within = offset - u.start;
    if (within >= span->size()) break;
    const size_t take = static_cast<size_t>(std::min<uint64_t>(span->size() - within, out.size() - *n));
    std::memcpy(out.data() + *n, span->data() + within, take);
    *n += take;
    offset += take;
  }
  return Status::Ok();
}

Status StreamCache::ReadStored(uint32_t layer, const Checkpoint& p, uint64_t offset, std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    uint64_t at = 0, left = 0;
    p.StoredAt(offset + done, &at, &left);
    const size_t len = static_cast<size_t>(std::min<uint64_t>(left, out.size() - done));
    size_t got = 0;
    if (len == 0) return Status::Corruption("layer " + content_->layer(layer).digest + ": a read past a point's stored blocks");
    LAZYROOT_RETURN_IF_ERROR(content_->layer(layer).blob->ReadAt(at, out.subspan(done, len), &got));
    if (got != len) {
      return Status::Corruption("layer " + content_->layer(layer).digest +
                                ": blob ends inside the stored block at compressed offset " + std::to_string(at));
    }
    done += len;
  }
  std::lock_guard lock(mu_);
  ++counters_.stored_reads;
  return Status::Ok();
}

bool StreamCache::NoteAccess(uint32_t layer, const Unit& unit, uint64_t offset, uint64_t end, bool in_fine,
                             bool* near) {
  LayerState& ls = *layers_[layer];
  std::lock_guard lock(ls.mu);
  // Within the kernel's read-ahead window (1 MiB as root) of a recent read, either way.
  constexpr uint64_t kReaderWindow = 2 << 20;
  *near = false;
  for (uint64_t e : ls.read_ends) {
    if (e != RandomReader::kNoPosition && (offset >= e ? offset - e : e - offset) <= kReaderWindow) *near = true;
  }
  // Sequential: the read starts at most kNearBytes after where a recent one
  // ended (the next file in tar order is a header and some padding further
  // on), or the read is the first one in the unit after a recent unit --
  // except inside a large file's data (in_fine): a reader going through a
  // file reads on from where it was, while random reads there land in
  // neighbouring units often enough (8 slots of ~400 units for the bench's
  // 768 MiB) that each such pair cost 3 units of read-ahead.
  constexpr uint64_t kNearBytes = 64 << 10;
  bool sequential = false;
  for (uint64_t& e : ls.read_ends) {
    if (e != RandomReader::kNoPosition && offset >= e && offset - e <= kNearBytes) {
      e = end;  // the run moves on; its slot follows it
      sequential = true;
      break;
    }
  }
  if (!sequential) {
    ls.read_ends[ls.next_read] = end;
    ls.next_read = (ls.next_read + 1) % ls.read_ends.size();
  }
  auto& ends = ls.unit_ends;
  if (std::find(ends.begin(), ends.end(), unit.end) == ends.end()) {
    auto prev = std::find(ends.begin(), ends.end(), unit.start);
    if (prev != ends.end()) {
      *prev = unit.end;
      if (!in_fine) sequential = true;
    } else {
      ends[ls.next_unit] = unit.end;
      ls.next_unit = (ls.next_unit + 1) % ends.size();
    }
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
    if (std::shared_ptr<const Span> have = cache_.Peek(layer, u.start); have && have->size() == u.end - u.start) {
      continue;
    }
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
    // Nor is an exception (out of memory): it must not end the daemon.
    const Unit& u = job.second;
    try {
      (void)GetUnit(job.first, u, u.end - u.start, u.end - u.start, true);
    } catch (...) {
    }
  }
}

Result<std::shared_ptr<const Span>> StreamCache::GetUnit(uint32_t layer, const Unit& unit, uint64_t decode_to,
                                                         uint64_t need, bool prefetch) {
  const Key key{layer, unit.start};
  for (;;) {
    if (!prefetch) {
      std::shared_ptr<const Span> hit = cache_.Get(layer, unit.start);
      if (hit && hit->size() >= need) return hit;
    }
    std::shared_ptr<Flight> flight;
    {
      std::unique_lock lock(mu_);
      if (auto it = flights_.find(key); it != flights_.end()) {
        if (prefetch) return std::shared_ptr<const Span>();
        std::shared_ptr<Flight> f = it->second;
        ++counters_.waited;
        f->cv.wait(lock, [&] { return f->done; });
        if (!f->status.ok() && !f->prefetch) return f->status;
        if (f->status.ok() && f->span && f->span->size() >= need) return f->span;
        continue;  // a shorter prefix, or a read-ahead that failed: decode it ourselves
      }
      // A decode may have finished between the lookup above and this lock (it
      // publishes to the cache before leaving flights_).
      std::shared_ptr<const Span> have = cache_.Peek(layer, unit.start);
      if (have && have->size() >= (prefetch ? decode_to : need)) return prefetch ? nullptr : have;
      flight = std::make_shared<Flight>();
      flight->prefetch = prefetch;
      flights_.emplace(key, flight);
    }
    std::shared_ptr<const Span> span;
    bool skipped = false;
    Status st;
    // The flight must end whatever happens, or every later reader of this
    // unit would wait for it forever: an exception (out of memory) becomes
    // an error for this read.
    try {
      st = Decode(layer, unit, std::max(decode_to, need), prefetch, &span, &skipped);
    } catch (...) {
      st = CurrentExceptionStatus("layer " + content_->layer(layer).digest + ": decoding");
    }
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
}

Status StreamCache::Decode(uint32_t layer, const Unit& unit, uint64_t decode_to, bool prefetch,
                           std::shared_ptr<const Span>* out, bool* skipped) {
  // What is cached of this unit already (a prefix a random reader left) is
  // kept; decoding continues where it ends.
  std::shared_ptr<const Span> prefix = cache_.Peek(layer, unit.start);
  const uint64_t have = prefix ? prefix->size() : 0;
  const uint64_t from = unit.start + have;
  // A unit inside a long span (a block of a single-frame zstd layer) is
  // decoded whole when copies are kept, so that it can be copied.
  UnitCopies* copies = unit.at_checkpoint ? nullptr : options_.unit_copies.get();
  const uint64_t to = copies != nullptr ? unit.end : unit.start + std::min(decode_to, unit.end - unit.start);
  if (from >= to) {
    *out = prefix;
    return Status::Ok();
  }
  // A decoder standing at the unit (a sequential reader's, or read-ahead's)
  // goes on: that is faster than reading and checking a copy, and what a
  // sequential pass decodes is not copied (it costs a compression per unit
  // and is cheap to decode again in order). Otherwise a copy, if there is
  // one; else a decoder catches up to the unit, copying what it passes.
  Lease lease;
  bool warm = false;
  if (copies != nullptr) {
    lease = TakeDecoder(layer, from, /*need_warm=*/true);
    warm = lease.d != nullptr;
    // Read-ahead does not load copies: it runs ahead of a sequential
    // reader, whose own decoder gets there at about the cost of loading
    // (measured: read-all of a one-frame layer 1.7 s without, 2.9 s when
    // read-ahead loaded the copies).
    if (!warm && have == 0 && !prefetch) {
      auto copy = std::make_shared<Span>();
      copy->resize(static_cast<size_t>(unit.end - unit.start));
      (void)PopulateSpan(copy.get());
      if (copies->Load(layer, unit.start, *copy)) {
        {
          std::lock_guard lock(mu_);
          ++counters_.copy_loads;
          ++counters_.decoded_units;
          if (prefetch) ++counters_.prefetched_units;
        }
        cache_.Put(layer, unit.start, copy);
        *out = std::move(copy);
        return Status::Ok();
      }
    }
  }
  // Read-ahead of a block inside a long span only pays with a decoder already
  // there; a cold one would decode the span from its start (for a single-frame
  // zstd layer: from the start of the blob).
  if (!lease.d) lease = TakeDecoder(layer, from, prefetch && !(unit.at_checkpoint && have == 0));
  if (!lease.d) {
    *skipped = true;
    return Status::Ok();
  }
  DecoderGuard guard(this, lease);
  if (copies != nullptr && !warm) {
    bool stop = false;
    LAZYROOT_RETURN_IF_ERROR(CatchUp(layer, lease, from, prefetch, &stop));
    if (stop) {
      *skipped = true;
      ReturnDecoder(layer, std::move(lease));
      return Status::Ok();
    }
  }
  auto span = std::make_shared<Span>();
  span->resize(static_cast<size_t>(to - unit.start));  // default-initialised: no memset
  (void)PopulateSpan(span.get());  // best effort: else the decoder's writes fault the pages in
  if (have > 0) std::memcpy(span->data(), prefix->data(), static_cast<size_t>(have));
  size_t got = 0;
  uint64_t reprimes = 0;
  // Read-ahead never waits for decoder memory: the reader decodes the unit
  // itself if it still needs it.
  Status st = ChargedRead(layer, lease, from, std::span<uint8_t>(span->data() + have, static_cast<size_t>(to - from)),
                          &got, !prefetch, skipped, &reprimes);
  if (*skipped) {
    ReturnDecoder(layer, std::move(lease));
    return Status::Ok();
  }
  if (st.ok() && got != to - from) {
    st = Status::Corruption("layer " + content_->layer(layer).digest + ": stream ends at offset " +
                            std::to_string(from + got) + ", inside the indexed size");
  }
  {
    std::lock_guard lock(mu_);
    counters_.reprimes += reprimes;
    counters_.decoded_bytes += got;
    if (st.ok()) {
      ++counters_.decoded_units;
      if (prefetch) ++counters_.prefetched_units;
    }
  }
  if (!st.ok()) return st;  // the guard frees the decoder: it may be mid-stream in a bad state
  ReturnDecoder(layer, std::move(lease));
  if (copies != nullptr && !warm && !copies->Has(layer, unit.start, unit.end - unit.start)) {
    copies->Save(layer, unit.start, *span);
    std::lock_guard lock(mu_);
    ++counters_.copy_saves;
  }
  cache_.Put(layer, unit.start, span);
  *out = std::move(span);
  return Status::Ok();
}

Status StreamCache::CatchUp(uint32_t layer, Lease& lease, uint64_t from, bool prefetch, bool* stop) {
  const CheckpointTable& t = *content_->layer(layer).checkpoints;
  const uint64_t span_start = t.points[t.FindPoint(from)].out_offset;
  const uint64_t pos = lease.d->position();
  uint64_t at = pos != RandomReader::kNoPosition && pos <= from && pos >= span_start ? pos : span_start;
  // The decoder has to pass every byte before `from` anyway (a zstd frame
  // cannot be entered in the middle): whole units on the way that have no
  // copy yet get one, so the next cold read of them is one unit's work. A
  // decoder standing inside a unit (a random read's prefix) decodes to its
  // end without a copy.
  Span buf;
  while (at < from) {
    const Unit u = UnitAt(layer, at);
    const uint64_t end = std::min(u.end, from);
    buf.resize(static_cast<size_t>(end - at));
    size_t got = 0;
    uint64_t reprimes = 0;
    bool skipped = false;
    LAZYROOT_RETURN_IF_ERROR(ChargedRead(layer, lease, at, buf, &got, !prefetch, &skipped, &reprimes));
    if (skipped) {
      *stop = true;
      return Status::Ok();
    }
    if (got != buf.size()) {
      return Status::Corruption("layer " + content_->layer(layer).digest + ": stream ends at offset " +
                                std::to_string(at + got) + ", inside the indexed size");
    }
    // A unit starting at a checkpoint needs no copy: a cold decoder starts
    // there for free, and Decode never loads one.
    const bool save = !u.at_checkpoint && at == u.start && end == u.end &&
                      !options_.unit_copies->Has(layer, u.start, u.end - u.start);
    if (save) options_.unit_copies->Save(layer, u.start, buf);
    {
      std::lock_guard lock(mu_);
      counters_.reprimes += reprimes;
      counters_.decoded_bytes += got;
      if (save) ++counters_.copy_saves;
    }
    at = end;
  }
  return Status::Ok();
}

StreamCache::Lease StreamCache::TakeDecoder(uint32_t layer, uint64_t start, bool need_warm) {
  const CheckpointTable& t = *content_->layer(layer).checkpoints;
  const size_t span = t.FindPoint(start);
  {
    std::lock_guard lock(idle_mu_);
    // Best: the decoder standing exactly at start. Next: the nearest one
    // before it in the same span (it decodes on from there). Else a cold one.
    // A decoder standing in another span is left alone: it is warm for a
    // reader there, and priming a fresh one costs us the same.
    auto best = idle_.end();
    auto cold = idle_.end();
    if (idle_per_layer_[layer] > 0) {
      for (auto it = idle_.begin(); it != idle_.end(); ++it) {
        if (it->layer != layer) continue;
        const uint64_t p = it->reader->position();
        if (p == start) {
          best = it;
          break;
        }
        if (p == RandomReader::kNoPosition) {
          cold = it;
          continue;
        }
        if (need_warm || p > start || t.FindPoint(p) != span) continue;
        if (best == idle_.end() || p > best->reader->position()) best = it;
      }
    }
    if (best == idle_.end() && !need_warm) best = cold;
    // At the layer's idle cap a fresh decoder would push the least recently
    // returned one out when it comes back: re-prime that one instead. A new
    // decoder costs its allocation (~300 KiB of state and buffers, zeroed
    // and faulted in): with random reads all over a layer that churn was a
    // fifth of the mount's CPU.
    if (best == idle_.end() && !need_warm && idle_per_layer_[layer] >= std::max(1u, options_.idle_decoders_per_layer)) {
      best = std::find_if(idle_.begin(), idle_.end(), [&](const IdleDecoder& i) { return i.layer == layer && !i.large; });
    }
    if (best != idle_.end()) {
      // Its charge moves from idle to in use.
      Lease lease{std::move(best->reader), best->bytes};
      --idle_per_layer_[layer];
      --decoder_counters_.idle_decoders;
      (best->large ? decoder_counters_.large_idle_decoder_bytes : decoder_counters_.idle_decoder_bytes) -=
          best->bytes;
      in_use_bytes_ += lease.charge;
      if (lease.charge > 0) ++in_use_charged_;
      idle_.erase(best);
      return lease;
    }
    if (need_warm) return Lease{};
    ++decoder_counters_.live_decoders;
    decoder_counters_.peak_live_decoders =
        std::max(decoder_counters_.peak_live_decoders, decoder_counters_.live_decoders);
  }
  // Charged (for what it will hold) by Charge before it decodes anything.
  return Lease{content_->NewReader(layer), 0};
}

bool StreamCache::MakeRoom(uint64_t more, std::vector<std::unique_ptr<RandomReader>>* freed) {
  const uint64_t budget = options_.decoder_bytes;
  uint64_t& total = decoder_counters_.decoder_bytes;
  if (total + more <= budget) return true;
  const uint64_t idle = decoder_counters_.idle_decoder_bytes + decoder_counters_.large_idle_decoder_bytes;
  // Nothing is freed for a charge that would not fit anyway.
  if (total - idle + more > budget) return false;
  while (total + more > budget && !idle_.empty()) FreeIdle(idle_.begin(), freed);
  return true;
}

Status StreamCache::ChargedRead(uint32_t layer, Lease& lease, uint64_t from, std::span<uint8_t> out, size_t* n,
                                bool wait, bool* skipped, uint64_t* reprimes) {
  *n = 0;
  const uint64_t to = std::min<uint64_t>(from + out.size(), content_->layer(layer).checkpoints->uncompressed_size);
  for (int attempt = 0;; ++attempt) {
    if (!Charge(layer, lease, from, to, wait)) {
      std::lock_guard lock(idle_mu_);
      ++decoder_counters_.memory_skips;
      *skipped = true;
      return Status::Ok();
    }
    const uint64_t before = lease.d->reprimes();
    Status st = lease.d->Read(from, out, n);
    *reprimes += lease.d->reprimes() - before;
    // A frame over the window charged for: nothing of it was allocated. The
    // layer's decoders get the pull's limit from now on; charge and retry.
    if (st.code() != ErrorCode::kLimitExceeded || attempt > 0) return st;
    layers_[layer]->large_windows.store(true, std::memory_order_relaxed);
    std::lock_guard lock(idle_mu_);
    ++decoder_counters_.window_retries;
  }
}

bool StreamCache::Charge(uint32_t layer, Lease& lease, uint64_t from, uint64_t to, bool wait) {
  const CheckpointTable& t = *content_->layer(layer).checkpoints;
  // What the decoder may hold once it has decoded [from, to): its memory now
  // plus every byte it decodes on the way (from where it stands, or from the
  // checkpoint it restarts at), at most its ceiling. Slack for buffers a
  // prime allocates (a gzip window).
  const uint64_t window_limit =
      layers_[layer]->large_windows.load(std::memory_order_relaxed) ? 0 : options_.window_limit_bytes;
  auto need_for = [&](RandomReader& d) {
    const uint64_t ceiling = d.LimitWindow(window_limit);
    const uint64_t pos = d.position();
    const uint64_t begin =
        pos != RandomReader::kNoPosition && pos <= from ? pos : t.points[t.FindPoint(from)].out_offset;
    constexpr uint64_t kSlack = 64 << 10;
    return std::min(ceiling, d.memory_bytes() + (std::max(to, begin) - begin) + kSlack);
  };
  // REQUIRES: idle_mu_ held. Charges the lease `need` if that fits once idle
  // decoders are freed, or if it is alone: no other decoder in use holds a
  // charge, so once the idle ones are freed it may take what it needs, over
  // the budget if it must.
  auto try_grant = [&](uint64_t need, std::vector<std::unique_ptr<RandomReader>>* freed) {
    if (need <= lease.charge) return true;
    const uint64_t more = need - lease.charge;
    if (!MakeRoom(more, freed)) {
      if (in_use_bytes_ != lease.charge) return false;
      while (!idle_.empty()) FreeIdle(idle_.begin(), freed);
    }
    decoder_counters_.decoder_bytes += more;
    in_use_bytes_ += more;
    if (lease.charge == 0) ++in_use_charged_;
    lease.charge = need;
    if (decoder_counters_.decoder_bytes > options_.decoder_bytes) ++decoder_counters_.alone_grants;
    NoteCharges();
    return true;
  };
  std::vector<std::unique_ptr<RandomReader>> freed;  // destroyed after the lock is released
  std::unique_lock lock(idle_mu_);
  // Others waiting go first.
  if (next_ticket_ == serving_ticket_ && try_grant(need_for(*lease.d), &freed)) return true;
  if (!wait) return false;
  // Wait in line holding no charge (so there is no deadlock): the decoder
  // goes back to the pool, where it stays warm unless its memory is needed,
  // and when our turn comes the best decoder there is taken again.
  ReturnLocked(layer, std::move(lease), &freed);
  // What it held may be what the head of the line waits for (a read tried
  // again after a window over the limit comes here with a charge).
  ++returns_;
  memory_cv_.notify_all();
  ++decoder_counters_.memory_waits;
  const uint64_t ticket = next_ticket_++;
  try {
    for (;;) {
      if (!freed.empty()) {
        lock.unlock();
        freed.clear();
        lock.lock();
      }
      memory_cv_.wait(lock, [&] { return ticket == serving_ticket_; });
      lock.unlock();
      lease = TakeDecoder(layer, from, false);
      const uint64_t need = need_for(*lease.d);
      lock.lock();
      if (try_grant(need, &freed)) break;
      ReturnLocked(layer, std::move(lease), &freed);
      // Until a decoder in use is returned or freed: then there may be room.
      const uint64_t seen = returns_;
      memory_cv_.wait(lock, [&] { return returns_ != seen; });
    }
  } catch (...) {
    // Out of memory taking a decoder: the turn passes on, or every later
    // waiter would wait for this one forever. (The caller's guard frees the lease.)
    if (!lock.owns_lock()) lock.lock();
    ++serving_ticket_;
    lock.unlock();
    memory_cv_.notify_all();
    throw;
  }
  ++serving_ticket_;
  lock.unlock();
  memory_cv_.notify_all();
  return true;
}

void StreamCache::FreeIdle(std::list<IdleDecoder>::iterator it, std::vector<std::unique_ptr<RandomReader>>* freed) {
  freed->push_back(std::move(it->reader));  // first: if it throws, nothing has changed
  StreamCacheStats& c = decoder_counters_;
  --idle_per_layer_[it->layer];
  --c.idle_decoders;
  (it->large ? c.large_idle_decoder_bytes : c.idle_decoder_bytes) -= it->bytes;
  c.decoder_bytes -= it->bytes;
  ++c.freed_decoders;
  --c.live_decoders;
  idle_.erase(it);
}

void StreamCache::NoteCharges() {
  StreamCacheStats& c = decoder_counters_;
  c.peak_decoder_bytes = std::max(c.peak_decoder_bytes, c.decoder_bytes);
  c.peak_idle_decoder_bytes = std::max(c.peak_idle_decoder_bytes, c.idle_decoder_bytes);
  if (c.idle_decoders + in_use_charged_ >= 2) {
    c.peak_shared_decoder_bytes = std::max(c.peak_shared_decoder_bytes, c.decoder_bytes);
  }
}

void StreamCache::ReturnDecoder(uint32_t layer, Lease lease) {
  std::vector<std::unique_ptr<RandomReader>> freed;  // destroyed after the lock is released
  {
    std::lock_guard lock(idle_mu_);
    ReturnLocked(layer, std::move(lease), &freed);
    ++returns_;
  }
  memory_cv_.notify_all();
}

void StreamCache::ReturnLocked(uint32_t layer, Lease lease, std::vector<std::unique_ptr<RandomReader>>* freed) {
  const uint64_t bytes = lease.d->memory_bytes();
  const bool large = bytes > options_.idle_decoder_bytes;
  StreamCacheStats& c = decoder_counters_;
  in_use_bytes_ -= lease.charge;
  if (lease.charge > 0) --in_use_charged_;
  c.decoder_bytes -= lease.charge;
  if (large) {
    // One decoder over the whole idle bound (a zstd layer with a window
    // larger than it) is still kept, the most recent one: freeing it would
    // make the next unit of that layer decode its frame from the start again.
    auto other = std::find_if(idle_.begin(), idle_.end(), [](const IdleDecoder& i) { return i.large; });
    if (other != idle_.end()) FreeIdle(other, freed);
  }
  idle_.push_back(IdleDecoder{layer, bytes, large, std::move(lease.d)});
  ++idle_per_layer_[layer];
  ++c.idle_decoders;
  (large ? c.large_idle_decoder_bytes : c.idle_decoder_bytes) += bytes;
  c.decoder_bytes += bytes;
  if (idle_per_layer_[layer] > std::max(1u, options_.idle_decoders_per_layer)) {
    FreeIdle(std::find_if(idle_.begin(), idle_.end(), [&](const IdleDecoder& i) { return i.layer == layer; }), freed);
  }
  while (c.idle_decoder_bytes > options_.idle_decoder_bytes) {
    FreeIdle(std::find_if(idle_.begin(), idle_.end(), [](const IdleDecoder& i) { return !i.large; }), freed);
  }
  // The budget: over it, only one decoder may hold a charge.
  while (c.decoder_bytes > options_.decoder_bytes && !idle_.empty() && c.idle_decoders + in_use_charged_ >= 2) {
    FreeIdle(idle_.begin(), freed);
  }
  NoteCharges();
}

void StreamCache::DropDecoder(Lease lease) {
  lease.d.reset();
  {
    std::lock_guard lock(idle_mu_);
    in_use_bytes_ -= lease.charge;
    if (lease.charge > 0) --in_use_charged_;
    decoder_counters_.decoder_bytes -= lease.charge;
    --decoder_counters_.live_decoders;
    ++returns_;
  }
  memory_cv_.notify_all();
}

StreamCacheStats StreamCache::stats() const {
  StreamCacheStats s;
  {
    std::lock_guard lock(mu_);
    s = counters_;
  }
  s.cache = cache_.stats();
  {
    std::lock_guard lock(idle_mu_);
    s.idle_decoders = decoder_counters_.idle_decoders;
    s.idle_decoder_bytes = decoder_counters_.idle_decoder_bytes;
    s.large_idle_decoder_bytes = decoder_counters_.large_idle_decoder_bytes;
    s.peak_idle_decoder_bytes = decoder_counters_.peak_idle_decoder_bytes;
    s.freed_decoders = decoder_counters_.freed_decoders;
    s.live_decoders = decoder_counters_.live_decoders;
    s.peak_live_decoders = decoder_counters_.peak_live_decoders;
    s.decoder_bytes = decoder_counters_.decoder_bytes;
    s.peak_decoder_bytes = decoder_counters_.peak_decoder_bytes;
    s.peak_shared_decoder_bytes = decoder_counters_.peak_shared_decoder_bytes;
    s.alone_grants = decoder_counters_.alone_grants;
    s.memory_waits = decoder_counters_.memory_waits;
    s.memory_skips = decoder_counters_.memory_skips;
    s.window_retries = decoder_counters_.window_retries;
  }
  return s;
}

}  // namespace lazyroot
