#include "index/compression.h"

namespace lazyroot {

std::string_view CompressionName(Compression c) {
  switch (c) {
    case Compression::kNone: return "tar";
    case Compression::kGzip: return "gzip";
    case Compression::kZstd: return "zstd";
  }
  return "?";
}

Compression SniffCompression(std::span<const uint8_t> b) {
  if (b.size() >= 3 && b[0] == 0x1f && b[1] == 0x8b && b[2] == 0x08) return Compression::kGzip;
  if (b.size() >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd) return Compression::kZstd;
  if (b.size() >= 4 && (b[0] & 0xf0) == 0x50 && b[1] == 0x2a && b[2] == 0x4d && b[3] == 0x18) return Compression::kZstd;
  return Compression::kNone;
}

}  // namespace lazyroot
