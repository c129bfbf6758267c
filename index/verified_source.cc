#include "index/verified_source.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <list>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "index/sha256.h"

namespace lazyroot {
namespace {

// A verified chunk's bytes. Not a std::vector: its zero fill of every chunk
// read (64 KiB before each read of it) was 10 % of a mount's CPU in random reads.
struct Chunk {
  explicit Chunk(size_t n) : bytes(std::make_unique_for_overwrite<uint8_t[]>(n)), size(n) {}
  std::unique_ptr<uint8_t[]> bytes;
  size_t size;
  std::span<uint8_t> span() { return {bytes.get(), size}; }
  const uint8_t* data() const { return bytes.get(); }
};
using ChunkBytes = std::shared_ptr<const Chunk>;

// Verified chunks, keyed by (source id, chunk index). Ids are never reused,
// so a chunk of a destroyed source can never be served for another blob.
// Process-wide rather than per source: an image of a hundred layers costs
// the same 2 MiB as one. Lookups copy a shared_ptr under the lock; the bytes
// are copied out after it is released.
class ChunkCache {
 public:
  static constexpr uint64_t kCapacityBytes = 2 << 20;

  ChunkBytes Find(uint64_t source, uint64_t chunk) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = lru_.begin(); it != lru_.end(); ++it) {
      if (it->source == source && it->chunk == chunk) {
        lru_.splice(lru_.begin(), lru_, it);  // most recently used first
        return it->bytes;
      }
    }
    return nullptr;
  }
  void Put(uint64_t source, uint64_t chunk, ChunkBytes bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Slot& s : lru_) {
      if (s.source == source && s.chunk == chunk) return;  // another reader verified it too
    }
    bytes_ += bytes->size;
    lru_.push_front(Slot{source, chunk, std::move(bytes)});
    while (bytes_ > kCapacityBytes && !lru_.empty()) {
      bytes_ -= lru_.back().bytes->size;
      lru_.pop_back();
    }
  }
  void Drop(uint64_t source) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = lru_.begin(); it != lru_.end();) {
      if (it->source == source) {
        bytes_ -= it->bytes->size;
        it = lru_.erase(it);
      } else {
        ++it;
      }
    }
  }
  uint64_t bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return bytes_;
  }

 private:
  struct Slot {
    uint64_t source, chunk;
    ChunkBytes bytes;
  };
  std::mutex mu_;
  std::list<Slot> lru_;
  uint64_t bytes_ = 0;
};

// Verified bytes of small reads, keyed by (source id, offset, length): a
// reader primed at a mid-block point reads its block's header (<= 640 bytes,
// isal_midblock.h), often far before the point, in a chunk nothing else of
// that read needs. Each block's header serves every point in the block (a
// dozen or more), so random reads return to the same few hundred headers
// again and again; without this each one verified the header's whole 32 KiB
// chunk (a cold pread and 32 KiB hashed per read, as much as the point's own
// input). Kept apart from ChunkCache so that it holds ~1,500 headers in the
// space of 32 chunks. Bytes are copied in after the chunk holding them was
// verified, and out under the lock (they are small).
class SmallReadCache {
 public:
  static constexpr size_t kMaxReadBytes = 1024;          // larger reads are not kept
  static constexpr uint64_t kCapacityBytes = 1 << 20;    // bytes plus kSlotOverhead each
  static constexpr uint64_t kSlotOverhead = 96;

  bool Find(uint64_t source, uint64_t offset, std::span<uint8_t> out) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(Key{source, offset, out.size()});
    if (it == map_.end()) return false;
    lru_.splice(lru_.begin(), lru_, it->second);
    std::memcpy(out.data(), it->second->bytes.data(), out.size());
    return true;
  }
  void Put(uint64_t source, uint64_t offset, std::span<const uint8_t> bytes) {
    if (bytes.empty() || bytes.size() > kMaxReadBytes) return;
    std::lock_guard<std::mutex> lock(mu_);
    const Key key{source, offset, bytes.size()};
    if (map_.count(key) != 0) return;
    lru_.push_front(Slot{key, std::vector<uint8_t>(bytes.begin(), bytes.end())});
    map_.emplace(key, lru_.begin());
    bytes_ += bytes.size() + kSlotOverhead;
    while (bytes_ > kCapacityBytes && !lru_.empty()) Erase(std::prev(lru_.end()));
  }
  void Drop(uint64_t source) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = lru_.begin(); it != lru_.end();) {
      auto next = std::next(it);
      if (it->key.source == source) Erase(it);
      it = next;
    }
  }
  uint64_t bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return bytes_;
  }

 private:
  struct Key {
    uint64_t source, offset, length;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      return std::hash<uint64_t>()(k.source * 0x9e3779b97f4a7c15ull ^ k.offset ^ (k.length << 48));
    }
  };
  struct Slot {
    Key key;
    std::vector<uint8_t> bytes;
  };
  void Erase(std::list<Slot>::iterator it) {
    bytes_ -= it->bytes.size() + kSlotOverhead;
    map_.erase(it->key);
    lru_.erase(it);
  }
  std::mutex mu_;
  std::list<Slot> lru_;
  std::unordered_map<Key, std::list<Slot>::iterator, KeyHash> map_;
  uint64_t bytes_ = 0;
};

SmallReadCache& Small() {
  static SmallReadCache* cache = new SmallReadCache;  // never destroyed, as Cache()
  return *cache;
}

ChunkCache& Cache() {
  // Never destroyed: sources may outlive static destruction in an embedding process.
  static ChunkCache* cache = new ChunkCache;
  return *cache;
}

std::atomic<uint64_t> next_source_id{1};

std::string Range(uint64_t first, uint64_t last) { return std::to_string(first) + "–" + std::to_string(last); }

class VerifiedSource final : public ByteSource {
 public:
  VerifiedSource(std::unique_ptr<ByteSource> blob, std::shared_ptr<const ChunkDigests> chunks)
      : blob_(std::move(blob)), chunks_(std::move(chunks)), id_(next_source_id.fetch_add(1)) {}
  ~VerifiedSource() override {
    Cache().Drop(id_);
    Small().Drop(id_);
  }
  VerifiedSource(const VerifiedSource&) = delete;
  VerifiedSource& operator=(const VerifiedSource&) = delete;

  Status ReadAt(uint64_t offset, std::span<uint8_t> out, size_t* n) const override {
    *n = 0;
    const uint64_t size = chunks_->blob_size;
    if (offset >= size || out.empty()) return Status::Ok();
    const size_t want = static_cast<size_t>(std::min<uint64_t>(out.size(), size - offset));
    const bool small = want <= SmallReadCache::kMaxReadBytes;
    if (small && Small().Find(id_, offset, out.first(want))) {
      *n = want;
      return Status::Ok();
    }
    const uint64_t cs = chunks_->chunk_size;
    size_t done = 0;
    if (offset % cs != 0 && (offset + want - 1) / cs > offset / cs && !Cache().Find(id_, offset / cs)) {
      Status st = ReadSpanning(offset, out.first(want), &done);
      if (!st.ok()) {
        *n = done;
        return st;
      }
      if (done == want) {
        *n = done;
        if (small) Small().Put(id_, offset, out.first(want));
        return Status::Ok();
      }
    }
    while (done < want) {
      const uint64_t pos = offset + done;
      const uint64_t chunk = pos / cs;
      const uint64_t in_chunk = pos - chunk * cs;
      const uint64_t len = chunks_->ChunkLength(chunk);
      if (in_chunk == 0 && want - done >= len) {
        // A run of whole chunks: one read into the caller's buffer, each chunk
        // checked in place.
        uint64_t last = chunk;
        uint64_t run = len;
        while (last + 1 < chunks_->digests.size() && want - done - run >= chunks_->ChunkLength(last + 1)) {
          run += chunks_->ChunkLength(++last);
        }
        std::span<uint8_t> dst = out.subspan(done, static_cast<size_t>(run));
        Status st = ReadExactly(pos, dst);
        for (uint64_t c = chunk; st.ok() && c <= last; ++c) {
          const uint64_t at = (c - chunk) * cs;
          st = Check(c, dst.subspan(static_cast<size_t>(at), static_cast<size_t>(chunks_->ChunkLength(c))));
        }
        if (!st.ok()) {
          std::memset(dst.data(), 0, dst.size());  // nothing unverified leaves
          *n = done;
          return st;
        }
        done += static_cast<size_t>(run);
        continue;
      }
      // Part of a chunk: verify all of it once, keep it for the next read.
      ChunkBytes bytes = Cache().Find(id_, chunk);
      if (!bytes) {
        auto fresh = std::make_shared<Chunk>(static_cast<size_t>(len));
        Status st = ReadExactly(chunk * cs, fresh->span());
        if (st.ok()) st = Check(chunk, fresh->span());
        if (!st.ok()) {
          *n = done;
          return st;
        }
        bytes = fresh;
        Cache().Put(id_, chunk, bytes);
      }
      const size_t take = static_cast<size_t>(std::min<uint64_t>(want - done, len - in_chunk));
      std::memcpy(out.data() + done, bytes->data() + in_chunk, take);
      done += take;
    }
    *n = done;
    if (small) Small().Put(id_, offset, out.first(want));
    return Status::Ok();
  }
  uint64_t Size() const override { return chunks_->blob_size; }
  const std::string& Name() const override { return blob_->Name(); }

 private:
  // A read that starts inside an uncached chunk and goes on into the next:
  // one pread of every chunk it touches (up to kMaxSpanningBytes), not one
  // for the first chunk and another for the rest: on a cold page cache each
  // pread is a disk read, and a random read's decode from a fine point
  // usually needs two chunks. Each chunk is checked; the partial ones at
  // both ends go to the cache. *done: the bytes of out filled, all verified
  // (fewer than out.size() when the read went past kMaxSpanningBytes: the
  // caller goes on chunk by chunk). On a mismatch, out holds only verified
  // bytes (those before the bad chunk) and *done says how many.
  static constexpr uint64_t kMaxSpanningBytes = 256 << 10;
  Status ReadSpanning(uint64_t offset, std::span<uint8_t> out, size_t* done) const {
    const uint64_t cs = chunks_->chunk_size;
    const uint64_t c0 = offset / cs;
    uint64_t c1 = (offset + out.size() - 1) / cs;
    c1 = std::min(c1, c0 + std::max<uint64_t>(kMaxSpanningBytes / cs, 2) - 1);
    const uint64_t first = c0 * cs;
    const uint64_t end = std::min(chunks_->blob_size, (c1 + 1) * cs);
    const size_t len = static_cast<size_t>(end - first);
    auto buf = std::make_unique_for_overwrite<uint8_t[]>(len);
    const std::span<uint8_t> all(buf.get(), len);
    LAZYROOT_RETURN_IF_ERROR(ReadExactly(first, all));
    for (uint64_t c = c0; c <= c1; ++c) {
      const std::span<uint8_t> bytes =
          all.subspan(static_cast<size_t>((c - c0) * cs), static_cast<size_t>(chunks_->ChunkLength(c)));
      Status st = Check(c, bytes);
      if (!st.ok()) {
        // Only the chunks before this one, all verified, reach the caller.
        const uint64_t good_end = c * cs;
        if (good_end > offset) {
          std::memcpy(out.data(), all.data() + (offset - first), static_cast<size_t>(good_end - offset));
          *done = static_cast<size_t>(good_end - offset);
        }
        return st;
      }
      const uint64_t cstart = c * cs, cend = cstart + bytes.size();
      if (cstart < offset || cend > offset + out.size()) {  // partial: keep it for the next read
        auto chunk = std::make_shared<Chunk>(bytes.size());
        std::memcpy(chunk->bytes.get(), bytes.data(), bytes.size());
        Cache().Put(id_, c, std::move(chunk));
      }
    }
    const size_t take = static_cast<size_t>(std::min<uint64_t>(end - offset, out.size()));
    std::memcpy(out.data(), all.data() + (offset - first), take);
    *done = take;
    return Status::Ok();
  }

  // Reads exactly dst.size() bytes at offset: a blob shorter than the pull
  // recorded is corrupt, whatever the bytes before its end.
  Status ReadExactly(uint64_t offset, std::span<uint8_t> dst) const {
    size_t got = 0;
    LAZYROOT_RETURN_IF_ERROR(blob_->ReadAt(offset, dst, &got));
    if (got != dst.size()) {
      std::memset(dst.data(), 0, dst.size());
      return Status::Corruption(blob_->Name() + ": bytes " + Range(offset, offset + dst.size() - 1) +
                                ": the blob ends at byte " + std::to_string(offset + got) + ", the pull recorded " +
                                std::to_string(chunks_->blob_size) + " bytes (truncated on disk)");
    }
    return Status::Ok();
  }
  Status Check(uint64_t chunk, std::span<const uint8_t> bytes) const {
    if (Sha256::Of(bytes) == chunks_->digests[chunk]) return Status::Ok();
    const uint64_t first = chunk * chunks_->chunk_size;
    return Status::Corruption(blob_->Name() + ": bytes " + Range(first, first + bytes.size() - 1) +
                              " do not match the digest recorded at pull: the blob or its index changed on disk"
                              " (lazyroot fsck tells which; fsck --repair rebuilds an index)");
  }

  std::unique_ptr<ByteSource> blob_;
  std::shared_ptr<const ChunkDigests> chunks_;
  const uint64_t id_;
};

}  // namespace

std::unique_ptr<ByteSource> NewVerifiedByteSource(std::unique_ptr<ByteSource> blob,
                                                  std::shared_ptr<const ChunkDigests> chunks) {
  return std::make_unique<VerifiedSource>(std::move(blob), std::move(chunks));
}

uint64_t VerifiedChunkCacheBytes() { return Cache().bytes(); }
uint64_t VerifiedSmallReadCacheBytes() { return Small().bytes(); }

}  // namespace lazyroot
