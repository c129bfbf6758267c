#include "fs/span_cache.h"

#include <algorithm>
#include <cstring>

namespace lazyroot {

std::shared_ptr<const Span> SpanCache::Get(uint32_t layer, uint64_t offset) {
  std::lock_guard lock(mu_);
  auto it = map_.find(Key{layer, offset});
  if (it == map_.end()) {
    ++stats_.misses;
    return nullptr;
  }
  ++stats_.hits;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->span;
}

void SpanCache::Put(uint32_t layer, uint64_t offset, std::shared_ptr<const Span> span) {
  if (!span || span->size() > capacity_) return;
  std::lock_guard lock(mu_);
  const Key key{layer, offset};
  if (auto it = map_.find(key); it != map_.end()) {
    // Another reader filled the same block meanwhile; keep the newer copy.
    stats_.bytes -= it->second->span->size();
    lru_.erase(it->second);
    map_.erase(it);
    --stats_.entries;
  }
  stats_.bytes += span->size();
  ++stats_.entries;
  ++stats_.insertions;
  lru_.push_front(Entry{key, std::move(span)});
  map_.emplace(key, lru_.begin());
  EvictLocked();
}

void SpanCache::EvictLocked() {
  while (stats_.bytes > capacity_ && !lru_.empty()) {
    Entry& victim = lru_.back();
    stats_.bytes -= victim.span->size();
    --stats_.entries;
    ++stats_.evictions;
    map_.erase(victim.key);
    lru_.pop_back();
  }
}

SpanCacheStats SpanCache::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

Status CachedLayerReader::Read(uint64_t offset, std::span<uint8_t> out, size_t* n) {
  *n = 0;
  while (*n < out.size() && offset < stream_size_) {
    const uint64_t block = offset / block_ * block_;
    std::shared_ptr<const Span> span = cache_->Get(layer_, block);
    if (!span) {
      // Decode the whole block with our own decoder; sequential readers keep it warm
      // because the next miss starts exactly where this one ended.
      auto fresh = std::make_shared<Span>(static_cast<size_t>(std::min(block_, stream_size_ - block)));
      size_t got = 0;
      LAZYROOT_RETURN_IF_ERROR(inner_->Read(block, *fresh, &got));
      fresh->resize(got);
      span = fresh;
      cache_->Put(layer_, block, std::move(fresh));
    }
    const uint64_t within = offset - block;
    if (within >= span->size()) break;  // the stream ended early; the caller sees a short read
    const size_t take = static_cast<size_t>(std::min<uint64_t>(span->size() - within, out.size() - *n));
    std::memcpy(out.data() + *n, span->data() + within, take);
    *n += take;
    offset += take;
  }
  return Status::Ok();
}

}  // namespace lazyroot
