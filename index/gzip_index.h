// gzip random access, zran-style (madler/zlib examples/zran.c; erofs-utils
// lib/gzran.c for the streaming shape). Use it through layer_decoder.h.
//
// Streaming (the pull): zlib inflate with the gzip wrapper (CRC-32 and ISIZE of
// every member checked) and Z_BLOCK, so inflate stops at each deflate block
// boundary. Once span_bytes of output have passed since the last checkpoint,
// the next boundary becomes one: (compressed byte offset, unused bits of the
// previous byte, uncompressed offset, the <= 32 KiB window before it, stored
// zlib-compressed). A member start is a free checkpoint (no window). Members
// are decoded iteratively (inflateReset after Z_STREAM_END while input
// remains; CVE-2022-30631 was recursion), so the member count needs no cap: the
// work is linear in the input and checkpoints stay bounded by output/span.
//
// After the last member, ANY further byte — including NULs, which GNU gzip and
// Python accept — is an error, as in Go's compress/gzip (containerd, ggcr):
// correctness.md row 66. A blob that ends inside a member is an error (row 65).
//
// Reading: raw inflate (-15) primed with inflatePrime + inflateSetDictionary at
// the checkpoint; at a member end it skips the 8-byte trailer and continues in
// gzip mode, so later members are CRC-checked again.
//
// Not thread-safe (both objects); the table they produce/consume is immutable.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "index/byte_source.h"
#include "index/checkpoint.h"
#include "index/layer_decoder.h"

namespace lazyroot {

std::unique_ptr<StreamDecoder> NewGzipStreamDecoder(std::string name, uint64_t span_bytes);

// Which inflate implementation a reader uses. ISA-L (when built with it)
// decodes ~2.5x faster than zlib, which is what a random read costs.
enum class InflateEngine { kZlib, kIsal };
// True if built with ISA-L (LAZYROOT_HAVE_ISAL); kIsal falls back to kZlib otherwise.
bool HaveIsal();

// table->compression must be kGzip; table and blob must outlive the decoder.
std::unique_ptr<PointDecoder> NewGzipPointDecoder(const CheckpointTable* table, const ByteSource* blob,
                                                  std::string name, InflateEngine engine = InflateEngine::kIsal);

}  // namespace lazyroot
