// UnitCopy: one decoded unit of a layer's uncompressed stream, re-encoded as
// an independent zstd frame, so that a read can start there. A single-frame
// zstd layer (what `zstd`, buildkit and containerd write by default) has one
// checkpoint, its start: without copies every cold read decodes the layer
// from its start up to the offset. The mount keeps one file of this format
// per unit it has decoded (fs/stream_cache.h "unit copies"); it is a cache,
// rebuilt by decoding the layer again whenever a file does not validate.
//
// Serialised form (little-endian):
//   "LZUNIT\0\1"   magic (8 bytes; the last byte is the format version)
//   u8[71]        the layer digest, "sha256:<64 hex>"
//   u64 start     offset of the unit in the layer's uncompressed stream
//   u64 length    its uncompressed length (<= kMaxUnitCopyBytes)
//   u32 frame size (the rest of the file)
//   u32 crc32 of the header (every byte before it)
//   the zstd frame: content size = length, content checksum on (zstd
//   verifies it as it decodes: a damaged frame never yields bytes)
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "index/status.h"

namespace lazyroot {

// The largest unit a copy may hold (the mount's units are at most 8 MiB).
inline constexpr uint64_t kMaxUnitCopyBytes = 8ull << 20;

// The file for `bytes` at stream offset start of layer_digest ("sha256:<hex>").
// zstd level 1: ~0.3-0.5 GB/s of input, incompressible runs faster.
// kInvalidArgument if bytes is over kMaxUnitCopyBytes or the digest is malformed.
Result<std::string> EncodeUnitCopy(const std::string& layer_digest, uint64_t start, std::span<const uint8_t> bytes);

// Fills out (exactly the unit: out.size() is its length) from a file, after
// checking magic, version, the header checksum, that it is the copy of
// [start, start + out.size()) of layer_digest, and the frame with its
// content checksum. Returns kCorruption naming `name` on any mismatch; on error out's
// contents are unspecified (the caller decodes the unit instead).
Status DecodeUnitCopy(std::span<const uint8_t> file, const std::string& layer_digest, uint64_t start,
                      std::span<uint8_t> out, const std::string& name);

// What a file says it is, checked as DecodeUnitCopy checks it but without an
// expected unit (fsck): its layer digest, start and length. Decodes the frame
// into a scratch buffer of at most kMaxUnitCopyBytes.
struct UnitCopyInfo {
  std::string layer_digest;
  uint64_t start = 0, length = 0;
};
Result<UnitCopyInfo> CheckUnitCopy(std::span<const uint8_t> file, const std::string& name);

}  // namespace lazyroot
