// gzip random access, zran-style (madler/zlib examples/zran.c; erofs-utils
// lib/gzran.c for the streaming shape). Use it through layer_decoder.h.
//
// Streaming (the pull without ISA-L): zlib inflate with the gzip wrapper (CRC-32 and ISIZE of
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
// ISA-L streams too (gzip_isal_stream.h: the "bfinal poke" makes isal_inflate
// stop at a block boundary when a checkpoint is due); this zlib decoder is the
// fallback and the tests' oracle. Priming ISA-L at a recorded checkpoint is
// possible (read_in/read_in_length + isal_inflate_set_dict) and is what the
// reader does. Measured on a 228 MiB /usr tar, gzip -6 (CPU-time MB/s of
// output, 2-vCPU VM; bench_inflate usr.tar.gz 1 4):
//   zlib plain 372-377 | ISA-L plain 819-947 | StreamDecoder 347 (1 MiB span),
//   340-372 (4 MiB) — with no checkpoints at all it equals plain zlib (372);
//   random 4 KiB read median/p99 CPU: zlib 1.55/5.0 ms (1 MiB), 5.6/16 ms (4 MiB);
//   ISA-L 0.68/2.3 ms (1 MiB), 2.3/7.9 ms (4 MiB). zcat 3.6 s, igzip -dc 0.9 s wall.
//
// Not thread-safe (both objects); the table they produce/consume is immutable.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "index/byte_source.h"
#include "index/checkpoint.h"
#include "index/fine_points.h"
#include "index/layer_decoder.h"

namespace lazyroot {

// True if built with ISA-L (LAZYROOT_HAVE_ISAL); kIsal falls back to kZlib otherwise.
bool HaveIsal();

// The pull's pass. kIsal streams on ISA-L with the block-boundary stop of
// gzip_isal_stream.h, unless built without ISA-L or its run-time check
// (IsalCheckpointsWork) failed: then zlib, as described above. Both give
// tables every PointDecoder reads; ISA-L's checkpoints may sit a block later.
// fine: the large files' data ranges that get fine points (fine_points.h;
// the table's fine_policy 1), filled by the caller as the output is parsed;
// nullptr: policy 0, the tables made before fine points.
std::unique_ptr<StreamDecoder> NewGzipStreamDecoder(std::string name, uint64_t span_bytes,
                                                    InflateEngine engine = InflateEngine::kIsal,
                                                    FineRanges* fine = nullptr);

// table->compression must be kGzip; table and blob must outlive the decoder.
std::unique_ptr<PointDecoder> NewGzipPointDecoder(const CheckpointTable* table, const ByteSource* blob,
                                                  std::string name, InflateEngine engine = InflateEngine::kIsal);

}  // namespace lazyroot
