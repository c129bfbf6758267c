// ChunkDigests: the SHA-256 of every fixed-size chunk of a layer blob's
// stored (compressed) bytes, recorded during the pull while the blob's own
// digest is being verified, so that any later read of the blob can be checked
// against what the registry's digest vouched for (VerifiedByteSource). Stored
// in the layer index file (index/FORMAT.md, "Chunk digest section"). Value
// type; ChunkHasher builds one from the bytes in order (one per blob; not
// thread-safe).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include <string>

#include "index/sha256_pair.h"

namespace lazyroot {

using Digest32 = std::array<uint8_t, 32>;

// 32 KiB, what the pull writes: a cold random read verifies whole chunks
// around the bytes its decoder reads (a prime's first 16 KiB, a 4 KiB read
// of an uncompressed layer), so smaller chunks hash less per read (the
// bench's random 4 KiB reads in `large`: 91 -> 64 KB of blob hashed per read
// in random data, 59 -> 41 KB in text, against 64 KiB chunks), and the table
// costs 1 MiB per GiB of blob (0.1 %; `usr`'s index 1.82 -> 1.87 % of its
// blobs, where 16 KiB would be 1.97 %, too near the 2 % bound). Indexes with other sizes (64 KiB
// before) stay valid, and a rebuild keeps the stored index's size.
inline constexpr uint32_t kDefaultChunkBytes = 32 << 10;
// What a reader accepts: powers of two in [4 KiB, 1 MiB] (a read buffers at
// most one chunk, so a file cannot make every read allocate much).
inline constexpr uint32_t kMinChunkBytes = 4 << 10;
inline constexpr uint32_t kMaxChunkBytes = 1 << 20;

struct ChunkDigests {
  uint32_t chunk_size = kDefaultChunkBytes;
  uint64_t blob_size = 0;
  std::vector<Digest32> digests;  // exactly ChunkCount(blob_size, chunk_size)

  // ceil(blob_size / chunk_size); chunk_size > 0.
  static uint64_t ChunkCount(uint64_t blob_size, uint32_t chunk_size) {
    return blob_size / chunk_size + (blob_size % chunk_size != 0 ? 1 : 0);
  }
  // Bytes of chunk i (the last one may be short). REQUIRES: i < digests.size().
  uint64_t ChunkLength(uint64_t i) const {
    const uint64_t start = i * chunk_size;
    return blob_size - start < chunk_size ? blob_size - start : chunk_size;
  }
  bool operator==(const ChunkDigests&) const = default;
};

// Hashes the blob as a whole (the digest the pull verifies) and chunk by
// chunk in one interleaved pass (Sha256Pair: chunks start at multiples of
// 64 bytes, in step with the whole's blocks), so whoever verifies a blob's
// digest gets its chunk table for ~10 % more.
class ChunkHasher {
 public:
  explicit ChunkHasher(uint32_t chunk_size = kDefaultChunkBytes) { table_.chunk_size = chunk_size; }
  // The blob's next bytes, in any chunking.
  void Update(std::span<const uint8_t> bytes);
  // The table of everything Update saw. Call once.
  ChunkDigests Finish();
  // "sha256:<hex>" of everything Update saw. Valid after Finish.
  const std::string& BlobDigest() const { return blob_digest_; }

 private:
  static constexpr int kBlobLane = 0, kChunkLane = 1;
  ChunkDigests table_;
  Sha256Pair hash_;
  uint64_t in_chunk_ = 0;  // bytes of the current chunk hashed so far
  std::string blob_digest_;
};

// The chunk table of a whole blob in memory (tests, fuzzers, small blobs).
ChunkDigests ChunkDigestsOf(std::span<const uint8_t> blob, uint32_t chunk_size = kDefaultChunkBytes);

}  // namespace lazyroot
