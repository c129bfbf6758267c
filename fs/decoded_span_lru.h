// DecodedSpanLru: a byte-bounded LRU of decompressed spans of layer streams, keyed
// by (layer, aligned uncompressed offset). It is the one shared mutable
// structure of a mount: every method is safe to call from any number of
// threads at once (one mutex, held only for the map/list update, never while
// decompressing or copying). Spans are handed out as shared_ptr, so a reader
// keeps its span alive while it copies even if the cache evicts it meanwhile.
//
// StreamCache (stream_cache.h) fills it with decoded units and owns the
// decoders; this class is only the bounded map.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

namespace lazyroot {

// Resizing a span must not zero it: every byte is overwritten by the decoder
// right away, and zeroing 2 MiB per unit showed up in profiles.
template <typename T>
struct DefaultInitAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  DefaultInitAllocator() = default;
  template <typename U>
  DefaultInitAllocator(const DefaultInitAllocator<U>&) noexcept {}  // NOLINT: allocator rebinding
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

using Span = std::vector<uint8_t, DefaultInitAllocator<uint8_t>>;

// Makes the whole pages inside the span's bytes resident and writable in one
// call (MADV_POPULATE_WRITE), before a decoder writes them. A span of fresh
// memory (glibc maps each one of 128 KiB or more on its own) otherwise takes
// a page fault per 4 KiB as the decoder writes: a fifth of the mount
// daemon's CPU in cold random reads. One call costs the same page
// allocations without the faults (tests/bench/replay_reads on `large`:
// 68,700 -> 5,200 faults, text reads 266-277 -> 241-247 µs of CPU each).
// Spans under kPopulateMinBytes are left alone (mostly recycled heap memory:
// the call would cost more than it saves). Bytes already there are kept.
// Best effort: false if the kernel refused (before Linux 5.14), and the
// pages then fault in as before.
inline constexpr size_t kPopulateMinBytes = 64 << 10;
bool PopulateSpan(Span* span);

struct DecodedSpanLruStats {
  uint64_t hits = 0, misses = 0, insertions = 0, evictions = 0;
  uint64_t bytes = 0;    // bytes of span data currently held
  uint64_t entries = 0;  // spans currently held
};

class DecodedSpanLru {
 public:
  // capacity_bytes bounds the span bytes held; 0 disables caching (Put drops).
  explicit DecodedSpanLru(uint64_t capacity_bytes) : capacity_(capacity_bytes) {}
  DecodedSpanLru(const DecodedSpanLru&) = delete;
  DecodedSpanLru& operator=(const DecodedSpanLru&) = delete;

  // The span stored under (layer, offset), now most recently used; nullptr on a miss.
  std::shared_ptr<const Span> Get(uint32_t layer, uint64_t offset);
  // The span under (layer, offset) or nullptr; counts nothing and leaves the
  // LRU order alone (for checks that must not look like use).
  std::shared_ptr<const Span> Peek(uint32_t layer, uint64_t offset) const;
  // Stores span under (layer, offset), replacing what was there, then evicts
  // least recently used spans until the bytes held are within the capacity.
  // A span larger than the whole capacity is not stored.
  void Put(uint32_t layer, uint64_t offset, std::shared_ptr<const Span> span);

  uint64_t capacity() const { return capacity_; }
  DecodedSpanLruStats stats() const;

 private:
  struct Key {
    uint32_t layer;
    uint64_t offset;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return std::hash<uint64_t>()(k.offset * 31 + k.layer); }
  };
  struct Entry {
    Key key;
    std::shared_ptr<const Span> span;
  };
  void EvictLocked();

  const uint64_t capacity_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // front = most recently used
  std::unordered_map<Key, std::list<Entry>::iterator, KeyHash> map_;
  DecodedSpanLruStats stats_;
};

}  // namespace lazyroot
