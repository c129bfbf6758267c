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
//   gzip: a checkpoint at a deflate block boundary after each span (zlib: the
//         first; ISA-L, the pull's default: maybe a later one, past its decode-ahead
//         of up to ~64 KiB), or at
//         a member start (no window); each window (<= 32 KiB) is stored
//         zlib-compressed, ~10 KiB: 3.4 % of the blob at 1 MiB spans, 0.9 % at 4 MiB.
//   zstd: checkpoints only at frame starts (a frame needs no window). A
//         single-frame layer (what `zstd`, containerd and buildkit write by default)
//         has ONE checkpoint, so every random read decodes from the start of the
//         blob up to the offset, and only sequential reading is cheap. The
//         mount's StreamCache keeps re-encoded copies of the units it decodes
//         there (index/unit_copy.h), so each cold read pays that once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "index/byte_source.h"
#include "index/checkpoint.h"
#include "index/compression.h"
#include "index/fine_points.h"
#include "index/status.h"

namespace lazyroot {

// Uncompressed bytes between checkpoints unless the caller asks otherwise.
// Measured on a 228 MiB /usr tar (gzip -6, 62 MB) with tests/bench/bench_inflate
// (see index/gzip_index.h), CPU time, ISA-L reads:
//   span   table/blob   random 4 KiB read median / p99   streaming CPU cost
//   1 MiB  3.4 %        0.67 / 2.1 ms                    ~7-10 %
//   2 MiB  1.8 %        1.23 / 3.9 ms                    ~4 %
//   4 MiB  0.9 %        2.24 / 6.9 ms                    ~2 %
// 2 MiB is the one that meets both the index-size goal (<= 2 % of the blob)
// and a p99 under 5 ms for a cold random read through the mount.
inline constexpr uint64_t kDefaultSpanBytes = 2 << 20;

// Receives each decompressed chunk in stream order. A non-OK status stops Feed,
// which returns it unchanged.
using OutputFn = std::function<Status(std::span<const uint8_t>)>;

class StreamDecoder {
 public:
  virtual ~StreamDecoder() = default;

  // `name` prefixes every error ("layer sha256:ab12…"). span_bytes > 0.
  // gzip_engine kIsal: ISA-L's pass (gzip_isal_stream.h) if this build and
  // machine can, else zlib's; the table's made_by says which one ran.
  // fine (gzip): the output ranges that get fine access points, filled as
  // the output is parsed (fine_points.h, fine_policy 1); nullptr: policy 0.
  static std::unique_ptr<StreamDecoder> Create(Compression c, std::string name,
                                               uint64_t span_bytes = kDefaultSpanBytes,
                                               InflateEngine gzip_engine = InflateEngine::kIsal,
                                               FineRanges* fine = nullptr);

  // Feeds the next compressed bytes (any size, including 0) and hands every
  // decompressed byte they complete to on_output, in order. Output is bounded:
  // memory does not grow with the compression ratio.
  // Returns kCorruption naming the compressed offset on bad data (header, block,
  // CRC/ISIZE, junk after the last gzip member, zstd window > 2^29, …).
  // After any error the decoder is dead: further calls return an error.
  virtual Status Feed(std::span<const uint8_t> compressed, const OutputFn& on_output) = 0;

  // Declares the end of the blob and hands on_output what is still held (a
  // decoder may hold input back to keep its checkpoints independent of the
  // chunking). Returns kCorruption if the stream is truncated (inside a gzip
  // member / zstd frame, or no member at all).
  virtual Status Finish(const OutputFn& on_output) = 0;

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

  // The stream offset a Read would continue from without re-priming, or
  // kNoPosition for a cold decoder (or one that needs none: plain layers).
  // Lets a pool of readers hand a request to the decoder already there.
  static constexpr uint64_t kNoPosition = ~uint64_t{0};
  virtual uint64_t position() const { return kNoPosition; }

  // Heap bytes the reader holds now (its decoder's state, window and
  // buffers): what a pool of idle readers costs. Plain layers: ~0.
  virtual uint64_t memory_bytes() const { return 0; }
  // The most memory_bytes() can grow to, whatever the blob holds; and never
  // by more than the bytes the reader decodes (a zstd window fills as the
  // frame is decoded). Lets a pool reserve memory before a Read.
  virtual uint64_t max_memory_bytes() const { return memory_bytes(); }
  // PointDecoder::LimitWindow: a smaller ceiling for what the reader may
  // hold, at the price of kLimitExceeded from Read on a frame over it.
  virtual uint64_t LimitWindow(uint64_t window_bytes) {
    (void)window_bytes;
    return max_memory_bytes();
  }
};

}  // namespace lazyroot
