// ByteSource: the one way index/ reads stored bytes — a read at an offset.
// Implementations must be safe for concurrent ReadAt calls from many threads
// (like leveldb's RandomAccessFile); index/ never learns where the bytes live.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "index/status.h"

namespace lazyroot {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to out.size() bytes at offset into out; *n receives the count,
  // which is smaller than out.size() only at the end of the source.
  // Safe for concurrent use.
  virtual Status ReadAt(uint64_t offset, std::span<uint8_t> out, size_t* n) const = 0;
  virtual uint64_t Size() const = 0;
  // Names the source in error messages (e.g. "blob sha256:ab12…").
  virtual const std::string& Name() const = 0;
};

// How many bytes a sequential reader with `buffer` bytes of room reads at
// `pos` when `left` bytes remain: as many as fit, but ending on a multiple
// of `align` (64 KiB by default) when that still reads something. A verified
// blob (verified_source.h) checks chunks (32 KiB, or 64 KiB in older indexes:
// a multiple of 64 KiB ends a chunk of either): a read that ends mid-chunk
// verifies the whole chunk into a side buffer and copies out of it, while
// aligned reads are checked in place once. A reader's small first read after
// a prime aligns to 32 KiB: one that crossed a 32 KiB boundary verified a
// second chunk for the few KiB a random read decodes from (in an index of
// 64 KiB chunks the rest of the chunk is then in the verified-chunk cache).
inline constexpr uint64_t kSmallReadAlign = 32 << 10;
inline size_t AlignedReadSize(uint64_t pos, size_t buffer, uint64_t left, uint64_t align = 64 << 10) {
  const uint64_t want = buffer < left ? buffer : left;
  const uint64_t tail = (pos + want) % align;
  return static_cast<size_t>(want == left || tail >= want ? want : want - tail);
}

// Opens path read-only as a ByteSource backed by pread(2) on the descriptor
// opened here: the bytes are those of the file opened, even if the path is
// later renamed over or unlinked. Size() is its size at open; a read of
// bytes the file has lost since (truncated) is kIoError naming the source.
// Returns kNotFound / kIoError naming the path on failure.
Result<std::unique_ptr<ByteSource>> OpenFileByteSource(const std::string& path, std::string name);

// A ByteSource over bytes held in memory (tests, small blobs). Not owning a copy
// means the caller keeps the bytes alive.
std::unique_ptr<ByteSource> MemoryByteSource(std::span<const uint8_t> bytes, std::string name);

}  // namespace lazyroot
