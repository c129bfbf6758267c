// The compressions a layer blob can have, and sniffing them from magic bytes
// (containerd sniffs; the media type is only a hint we warn about).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace lazyroot {

enum class Compression { kNone, kGzip, kZstd };

std::string_view CompressionName(Compression c);

// gzip: 1f 8b 08; zstd: 28 b5 2f fd or a skippable frame 5? 2a 4d 18; else kNone.
Compression SniffCompression(std::span<const uint8_t> first_bytes);

}  // namespace lazyroot
