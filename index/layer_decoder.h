// The uniform facade over a layer blob's compression (none, gzip, zstd):
//   StreamDecoder — the one pass during the pull: compressed bytes in, in any
//     chunking; decompressed bytes out to a callback (tar parser, DiffID hash);
//     a CheckpointTable recorded on the way. One per layer; not thread-safe.
//   RandomReader — read-time random access to the uncompressed stream through
//     a shared, immutable CheckpointTable and a thread-safe ByteSource. Each
//     reader owns one warm decoder: not thread-safe, use one per thread / open
//     file; any number may share one table and one ByteSource concurrently.
//
// Warm decoders: a Read at or after the reader's current position continues the
// decoder it already has unless a checkpoint lies in between (then re-priming
// is cheaper). Sequential reads therefore never re-prime; a random read costs
// on average span/2 bytes of decompression (plus the window inflate, gzip).
//
// Cost per compression (spans are uncompressed bytes between checkpoints):
//   none: no checkpoints, reads go straight to the blob.
//   gzip: a checkpoint at the first deflate block boundary after each span, or at
//         a member start (no window); each window (<= 32 KiB) is stored
//         zlib-compressed, ~10 KiB: 3.4 % of the blob at 1 MiB spans, 0.9 % at 4 MiB.
//   zstd: checkpoints only at frame starts (a frame needs no window). A
//         single-frame layer (what `zstd`, containerd and buildkit write by default)
//         has ONE checkpoint, so every random read decodes from the start of the
//         blob up to the offset, and only sequential reading is cheap. A later
//         change may re-encode such layers locally into a seekable form; until then
//         callers should read zstd layers sequentially or cache spans.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "index/byte_source.h"
#include "index/checkpoint.h"
#include "index/compression.h"
#include "index/status.h"

namespace lazyroot {

// Uncompressed bytes between checkpoints unless the caller asks otherwise.
// 1 MiB, not SOCI's 4 MiB: on a 228 MiB /usr tar (gzip -6, 62 MB) the table is
// 3.4 % of the blob (0.9 % at 4 MiB) and costs ~7 % of the streaming inflate CPU
// (~2 % at 4 MiB: one level-1 deflate of a 32 KiB window per span), while a
// random 4 KiB read costs a median 0.68 ms / p99 2.3 ms CPU with ISA-L
// (4 MiB: 2.3 / 7.9 ms; zlib: 1.55 / 5.0 ms vs 5.6 / 16 ms). The read latency
// is what a lazily mounted rootfs feels, so the smaller span wins.
// Numbers: tests/bench/bench_inflate (see index/gzip_index.h).
inline constexpr uint64_t kDefaultSpanBytes = 1 << 20;

// Receives each decompressed chunk in stream order. A non-OK status stops Feed,
// which returns it unchanged.
using OutputFn = std::function<Status(std::span<const uint8_t>)>;

class StreamDecoder {
 public:
  virtual ~StreamDecoder() = default;

  // `name` prefixes every error ("layer sha256:ab12…"). span_bytes > 0.
  static std::unique_ptr<StreamDecoder> Create(Compression c, std::string name,
                                               uint64_t span_bytes = kDefaultSpanBytes);

  // Feeds the next compressed bytes (any size, including 0) and hands every
  // decompressed byte they complete to on_output, in order. Output is bounded:
  // memory does not grow with the compression ratio.
  // Returns kCorruption naming the compressed offset on bad data (header, block,
  // CRC/ISIZE, junk after the last gzip member, zstd window > 2^29, …).
  // After any error the decoder is dead: further calls return an error.
  virtual Status Feed(std::span<const uint8_t> compressed, const OutputFn& on_output) = 0;

  // Declares the end of the blob. Returns kCorruption if the stream is
  // truncated (inside a gzip member / zstd frame, or no member at all).
  virtual Status Finish() = 0;

  virtual uint64_t total_in() const = 0;
  virtual uint64_t total_out() const = 0;

  // REQUIRES: Finish() returned OK. Moves the table out; call once.
  virtual CheckpointTable TakeCheckpoints() = 0;
};

class RandomReader {
 public:
  virtual ~RandomReader() = default;

  // blob must outlive the reader; it must be the same bytes the table was built from.
  static std::unique_ptr<RandomReader> Create(std::shared_ptr<const CheckpointTable> table,
                                              const ByteSource* blob, std::string name);

  // Random access over a specific PointDecoder built for *table (tests and
  // benchmarks pick the inflate engine this way).
  static std::unique_ptr<RandomReader> Create(std::shared_ptr<const CheckpointTable> table,
                                              std::unique_ptr<PointDecoder> decoder);

  // Reads uncompressed bytes [offset, offset + out.size()) into out; *n is the
  // count, smaller than out.size() only at the end of the stream (0 past it).
  // Returns kCorruption naming the compressed offset if the blob does not
  // decode (or ends early), or the ByteSource's error.
  virtual Status Read(uint64_t offset, std::span<uint8_t> out, size_t* n) = 0;

  // How often the decoder was (re)started from a checkpoint; tests use it to
  // prove that sequential reads stay warm.
  virtual uint64_t reprimes() const = 0;
};

}  // namespace lazyroot
