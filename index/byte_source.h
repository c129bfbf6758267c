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
