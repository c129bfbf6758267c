#include "fs/decoded_span_lru.h"

#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older headers lack it
#endif

namespace lazyroot {

bool PopulateSpan(Span* span) {
  if (span->size() < kPopulateMinBytes) return true;
  constexpr uintptr_t kPage = 4096;
  const auto start = reinterpret_cast<uintptr_t>(span->data());
  const uintptr_t first = (start + kPage - 1) & ~(kPage - 1);
  const uintptr_t end = (start + span->size()) & ~(kPage - 1);
  if (end <= first) return true;
  return madvise(reinterpret_cast<void*>(first), end - first, MADV_POPULATE_WRITE) == 0;
}

std::shared_ptr<const Span> DecodedSpanLru::Get(uint32_t layer, uint64_t offset) {
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

std::shared_ptr<const Span> DecodedSpanLru::Peek(uint32_t layer, uint64_t offset) const {
  std::lock_guard lock(mu_);
  auto it = map_.find(Key{layer, offset});
  return it == map_.end() ? nullptr : it->second->span;
}

void DecodedSpanLru::Put(uint32_t layer, uint64_t offset, std::shared_ptr<const Span> span) {
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

void DecodedSpanLru::EvictLocked() {
  while (stats_.bytes > capacity_ && !lru_.empty()) {
    Entry& victim = lru_.back();
    stats_.bytes -= victim.span->size();
    --stats_.entries;
    ++stats_.evictions;
    map_.erase(victim.key);
    lru_.pop_back();
  }
}

DecodedSpanLruStats DecodedSpanLru::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace lazyroot
