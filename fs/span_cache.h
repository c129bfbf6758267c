// SpanCache: a byte-bounded LRU of decompressed spans of layer streams, keyed
// by (layer, aligned uncompressed offset). It is the one shared mutable
// structure of a mount: every method is safe to call from any number of
// threads at once (one mutex, held only for the map/list update, never while
// decompressing or copying). Spans are handed out as shared_ptr, so a reader
// keeps its span alive while it copies even if the cache evicts it meanwhile.
//
// Why it exists next to warm decoders (layer_decoder.h): a file handle's own
// RandomReader makes sequential reads cheap, but two readers of the same hot
// region, or random reads into a gzip span / single-frame zstd layer, would
// each decompress from a checkpoint again. CachedLayerReader puts the cache in
// front of a handle's warm decoder: a miss decodes one whole aligned block
// (continuing the warm decoder when the reads are sequential) and publishes it.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_map>
#include <vector>

#include "index/layer_decoder.h"
#include "index/status.h"

namespace lazyroot {

using Span = std::vector<uint8_t>;

struct SpanCacheStats {
  uint64_t hits = 0, misses = 0, insertions = 0, evictions = 0;
  uint64_t bytes = 0;    // bytes of span data currently held
  uint64_t entries = 0;  // spans currently held
};

class SpanCache {
 public:
  // capacity_bytes bounds the span bytes held; 0 disables caching (Put drops).
  explicit SpanCache(uint64_t capacity_bytes) : capacity_(capacity_bytes) {}
  SpanCache(const SpanCache&) = delete;
  SpanCache& operator=(const SpanCache&) = delete;

  // The span stored under (layer, offset), now most recently used; nullptr on a miss.
  std::shared_ptr<const Span> Get(uint32_t layer, uint64_t offset);
  // Stores span under (layer, offset), replacing what was there, then evicts
  // least recently used spans until the bytes held are within the capacity.
  // A span larger than the whole capacity is not stored.
  void Put(uint32_t layer, uint64_t offset, std::shared_ptr<const Span> span);

  uint64_t capacity() const { return capacity_; }
  SpanCacheStats stats() const;

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
  SpanCacheStats stats_;
};

// CachedLayerReader: a RandomReader over one layer's uncompressed stream that
// serves block_bytes-aligned blocks from a SpanCache and fills misses through
// its own (warm) inner reader. Like every RandomReader it is not thread-safe:
// one per open file; any number may share one cache.
class CachedLayerReader final : public RandomReader {
 public:
  // stream_size: the layer's uncompressed size (the table's). cache must
  // outlive the reader. REQUIRES: block_bytes > 0.
  CachedLayerReader(SpanCache* cache, uint32_t layer, uint64_t stream_size, uint64_t block_bytes,
                    std::unique_ptr<RandomReader> inner)
      : cache_(cache), layer_(layer), stream_size_(stream_size), block_(block_bytes), inner_(std::move(inner)) {}

  // As RandomReader::Read. Returns the inner reader's error unchanged.
  Status Read(uint64_t offset, std::span<uint8_t> out, size_t* n) override;
  uint64_t reprimes() const override { return inner_->reprimes(); }

 private:
  SpanCache* cache_;
  uint32_t layer_;
  uint64_t stream_size_, block_;
  std::unique_ptr<RandomReader> inner_;
};

}  // namespace lazyroot
