#include "index/verified_source.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <list>
#include <mutex>
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
  ~VerifiedSource() override { Cache().Drop(id_); }
  VerifiedSource(const VerifiedSource&) = delete;
  VerifiedSource& operator=(const VerifiedSource&) = delete;

  Status ReadAt(uint64_t offset, std::span<uint8_t> out, size_t* n) const override {
    *n = 0;
    const uint64_t size = chunks_->blob_size;
    if (offset >= size || out.empty()) return Status::Ok();
    const size_t want = static_cast<size_t>(std::min<uint64_t>(out.size(), size - offset));
    const uint64_t cs = chunks_->chunk_size;
    size_t done = 0;
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
    return Status::Ok();
  }
  uint64_t Size() const override { return chunks_->blob_size; }
  const std::string& Name() const override { return blob_->Name(); }

 private:
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

}  // namespace lazyroot
